-- Core homeserver schema: accounts, rooms, events, state, account data.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE users (
	user_id       TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL DEFAULT '',
	displayname   TEXT NOT NULL DEFAULT '',
	avatar_url    TEXT NOT NULL DEFAULT '',
	deactivated   INTEGER NOT NULL DEFAULT 0,
	created_ts    INTEGER NOT NULL
);

CREATE TABLE devices (
	user_id      TEXT NOT NULL REFERENCES users(user_id),
	device_id    TEXT NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	last_seen_ip TEXT NOT NULL DEFAULT '',
	last_seen_ts INTEGER NOT NULL DEFAULT 0,
	created_ts   INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- Access tokens are stored as SHA-256 hashes only.
CREATE TABLE access_tokens (
	token_hash BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens(user_id, device_id);

CREATE TABLE account_data (
	user_id    TEXT NOT NULL,
	room_id    TEXT NOT NULL DEFAULT '',
	type       TEXT NOT NULL,
	content    TEXT NOT NULL,
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_pos ON account_data(user_id, stream_pos);

CREATE TABLE filters (
	user_id   TEXT NOT NULL,
	filter_id INTEGER NOT NULL,
	filter    TEXT NOT NULL,
	PRIMARY KEY (user_id, filter_id)
);

-- Client transaction results, keyed by (user, device, method+path).
CREATE TABLE txns (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	path       TEXT NOT NULL,
	status     INTEGER NOT NULL,
	body       TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, path)
);

CREATE TABLE rooms (
	room_id   TEXT PRIMARY KEY,
	version   TEXT NOT NULL,
	creator   TEXT NOT NULL,
	published INTEGER NOT NULL DEFAULT 0
);

-- Events in stream order. pdu is the federation-format JSON (redacted once a
-- redaction applies).
CREATE TABLE events (
	stream_pos     INTEGER PRIMARY KEY,
	event_id       TEXT NOT NULL UNIQUE,
	room_id        TEXT NOT NULL,
	type           TEXT NOT NULL,
	state_key      TEXT,
	sender         TEXT NOT NULL,
	origin_ts      INTEGER NOT NULL,
	depth          INTEGER NOT NULL,
	membership     TEXT NOT NULL DEFAULT '',
	pdu            TEXT NOT NULL,
	redacted_by    TEXT NOT NULL DEFAULT '',
	replaces_state TEXT NOT NULL DEFAULT '',
	txn_id         TEXT NOT NULL DEFAULT '',
	txn_device     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_room ON events(room_id, stream_pos);
CREATE INDEX events_state ON events(room_id, type, state_key, stream_pos) WHERE state_key IS NOT NULL;

-- Current state of each room.
CREATE TABLE room_state (
	room_id    TEXT NOT NULL,
	type       TEXT NOT NULL,
	state_key  TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	stream_pos INTEGER NOT NULL,
	membership TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX room_state_member ON room_state(state_key, type);

CREATE TABLE forgotten (
	room_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	PRIMARY KEY (room_id, user_id)
);

CREATE TABLE room_aliases (
	alias   TEXT PRIMARY KEY,
	room_id TEXT NOT NULL,
	creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases(room_id);

CREATE TABLE receipts (
	room_id    TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	type       TEXT NOT NULL,
	thread_id  TEXT NOT NULL DEFAULT '',
	event_id   TEXT NOT NULL,
	ts         INTEGER NOT NULL,
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (room_id, user_id, type, thread_id)
);
CREATE INDEX receipts_pos ON receipts(room_id, stream_pos);
