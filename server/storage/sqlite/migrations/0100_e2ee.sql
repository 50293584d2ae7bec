-- End-to-end encryption: keys, signatures, to-device queue, device-list
-- changes, key backup. Every JSON column holds the client's object as
-- received (compacted); the server never interprets the key material.

-- Device keys (/keys/upload device_keys), one row per device.
CREATE TABLE e2ee_device_keys (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- One-time keys; id orders them by upload (claims hand out the oldest first).
CREATE TABLE e2ee_one_time_keys (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	UNIQUE (user_id, device_id, algorithm, key_id)
);
CREATE INDEX e2ee_one_time_keys_claim ON e2ee_one_time_keys(user_id, device_id, algorithm, id);

-- Fallback keys: at most one per (device, algorithm); used is set once a
-- claim has handed it out.
CREATE TABLE e2ee_fallback_keys (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	used      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, device_id, algorithm)
);

-- Cross-signing keys, one per (user, usage).
CREATE TABLE e2ee_cross_signing_keys (
	user_id    TEXT NOT NULL,
	usage      TEXT NOT NULL,
	public_key TEXT NOT NULL,
	key_json   TEXT NOT NULL,
	PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded through /keys/signatures/upload, merged into the
-- target key's "signatures" on /keys/query.
CREATE TABLE e2ee_key_signatures (
	target_user_id TEXT NOT NULL,
	target_key_id  TEXT NOT NULL,
	signer_user_id TEXT NOT NULL,
	signer_key_id  TEXT NOT NULL,
	signature      TEXT NOT NULL,
	PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);

-- Device-list changes in stream order (drives device_lists and /keys/changes).
CREATE TABLE e2ee_device_list_changes (
	stream_pos INTEGER NOT NULL,
	user_id    TEXT NOT NULL,
	self_only  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX e2ee_device_list_changes_pos ON e2ee_device_list_changes(stream_pos);

-- Queued to-device messages; id is the per-message ID carried in sync tokens.
CREATE TABLE e2ee_to_device (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	stream_pos INTEGER NOT NULL,
	sender     TEXT NOT NULL,
	type       TEXT NOT NULL,
	content    TEXT NOT NULL
);
CREATE INDEX e2ee_to_device_device ON e2ee_to_device(user_id, device_id, id);

-- Processed sendToDevice transactions (idempotency).
CREATE TABLE e2ee_to_device_txns (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
);

-- Key backup versions; version numbers are per user and never reused
-- (deleted versions stay as tombstones). etag counts changes of the key set.
CREATE TABLE e2ee_backup_versions (
	user_id   TEXT NOT NULL,
	version   INTEGER NOT NULL,
	algorithm TEXT NOT NULL,
	auth_data TEXT NOT NULL,
	etag      INTEGER NOT NULL DEFAULT 0,
	deleted   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, version)
);

CREATE TABLE e2ee_backup_keys (
	user_id             TEXT NOT NULL,
	version             INTEGER NOT NULL,
	room_id             TEXT NOT NULL,
	session_id          TEXT NOT NULL,
	first_message_index INTEGER NOT NULL,
	forwarded_count     INTEGER NOT NULL,
	is_verified         INTEGER NOT NULL,
	session_data        TEXT NOT NULL,
	PRIMARY KEY (user_id, version, room_id, session_id)
);
