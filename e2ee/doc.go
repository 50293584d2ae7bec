// Package e2ee is myelin's end-to-end encryption machine: a state machine
// with no network I/O that turns sync input into decrypted events and
// outgoing requests, under a trust policy that a malicious homeserver cannot
// subvert. The rules it enforces, and the test that shows each, are listed
// in RULES.md next to this file (rule IDs from docs/threat-model.md).
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
//
// # Using the machine
//
// Open a Machine with a Config: user and device ID, a Store (package
// e2ee/store/memory or e2ee/store/sqlite), a pickle key of at least 32
// bytes that encrypts every secret before it reaches the store, randomness
// (io.Reader), a clock and an optional *slog.Logger. The device's Olm
// account is created and persisted on first Open.
//
// The caller moves bytes; the machine decides:
//
//   - Machine.Receive takes one /sync response (SyncInput: to-device events,
//     device_lists changed/left, one-time key counts, unused fallback key
//     types, and the m.room.member / m.room.encryption events of each room)
//     and returns a Result: Alerts to show, decrypted to-device events the
//     machine did not consume (verification), and Rejections (security log).
//   - Machine.Outgoing returns the requests to send (keys/upload,
//     keys/query, keys/claim, sendToDevice), each with an ID. Post each and
//     call Machine.MarkSent(ID, responseBody). Requests are persisted before
//     they are returned and stay pending until acknowledged, so sending one
//     twice is harmless (the send-to-device transaction ID is the request ID).
//   - Machine.Encrypt(room, type, content) returns m.room.encrypted
//     content. It fails with *NotReadyError (ErrNotReady) while it waits for
//     keys/query or keys/claim: flush Outgoing and retry. After it succeeds,
//     flush Outgoing (the room-key to-device messages) before sending the
//     event. It refuses with ErrRoomNotEncrypted, *EncryptionStateError or
//     *SendBlockedError; Machine.PlaintextAllowed says whether a room may
//     ever receive plaintext.
//   - Machine.Decrypt and Machine.DecryptBatch return a Decrypted event with
//     a typed Provenance (Trust), or a *UTDError with a typed UTDReason.
//   - Machine.AcknowledgeIdentityChange unblocks sending after an identity
//     change; Machine.TrustOwnIdentity records our own cross-signing keys
//     (issue 6 sets them after bootstrap or verification);
//     Machine.SendEncryptedToDevice sends an Olm-encrypted to-device event;
//     Machine.SaveSecret / LoadSecret keep sealed secrets.
//   - EncryptAttachment / DecryptAttachment handle encrypted media.
//   - Room-key bundles (MSC4268, history sharing): before inviting, call
//     Machine.BuildRoomKeyBundle, upload the ciphertext, set the file's URL
//     and call Machine.ShareRoomKeyBundle. On the invitee's side, after the
//     user accepted an invite from inviter, Machine.RoomKeyBundle gives the
//     file to download and Machine.ImportRoomKeyBundle imports it
//     (Provenance.SharedBy names the inviter).
//   - Provenance.Timestamp flags an origin_server_ts that does not fit the
//     session's other events (informational: the server sets it).
//
// # Trust
//
// TrustPolicy's zero value is strict: room keys go only to cross-signed
// devices of pinned (trust on first use) or verified identities, with
// m.room_key.withheld (m.unverified, m.blacklisted, m.no_olm) to the
// others; messages whose session came from a device that is not
// cross-signed are hidden (UTDInsecureDeviceHidden); a changed identity
// raises an Alert and blocks sending in shared rooms until acknowledged.
// Key-bearing to-device events are processed only after Olm decryption and
// the sender-binding checks; forwarded keys only as answers to our own
// requests from our own cross-signed devices.
//
// # Persistence
//
// Every step writes one Changes batch through Store.Save (atomic). If a
// step fails, the machine drops its caches and reloads from the store, so
// memory never runs ahead of disk.
package e2ee
