-- One-time keys clustered by (device, algorithm, upload order): a claim
-- deletes the first row of each device's range, touching one b-tree page per
-- device instead of three (table and two indexes). Key-ID uniqueness per
-- device is checked by the writer when keys are uploaded.
CREATE TABLE e2ee_otk (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, algorithm, seq)
) WITHOUT ROWID;
INSERT INTO e2ee_otk(user_id, device_id, algorithm, seq, key_id, key_json)
	SELECT user_id, device_id, algorithm, id, key_id, key_json FROM e2ee_one_time_keys;
DROP TABLE e2ee_one_time_keys;
