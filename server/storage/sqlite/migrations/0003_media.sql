-- Uploaded media metadata; the bytes live in files under the data directory.
CREATE TABLE media (
	media_id     TEXT PRIMARY KEY,
	content_type TEXT NOT NULL,
	filename     TEXT NOT NULL DEFAULT '',
	size         INTEGER NOT NULL,
	uploader     TEXT NOT NULL,
	created_ts   INTEGER NOT NULL
);
