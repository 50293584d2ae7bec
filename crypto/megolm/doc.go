// Package megolm implements the Megolm group ratchet, m.megolm.v1.aes-sha2,
// byte-compatible with libolm 3.2.13 and vodozemac.
//
// The algorithm and wire formats are specified at
// https://spec.matrix.org/v1.17/olm-megolm/megolm/ (the page joined the spec
// in v1.17; v1.16 refers to the same document on gitlab.matrix.org). The
// event layer that carries it is
// https://spec.matrix.org/v1.16/client-server-api/#mmegolmv1aes-sha2.
//
// # What to use
//
// A sender creates an [OutboundSession] with [NewOutboundSession], sends
// [OutboundSession.SessionKey] to every recipient device over Olm
// (m.room_key), then calls [OutboundSession.Encrypt] per message. It rotates
// to a new session when the room's rotation period or message count is
// reached or when a recipient leaves.
//
// A recipient turns a received key into an [InboundSession]:
//
//   - [ParseSessionKey] + [NewInboundSession] for the signed sharing format
//     (0x02) from m.room_key. The signature is verified, and
//     [InboundSession.SigningKeyVerified] is true.
//   - [ParseExportedSessionKey] + [ImportInboundSession] for the unsigned
//     export format (0x01) from m.forwarded_room_key, key backup or key files.
//     Only the channel vouches for it; SigningKeyVerified is false.
//
// [InboundSession.Decrypt] verifies the signature, then the MAC, then
// decrypts, and returns the message index. When a key arrives for a session
// already stored, [InboundSession.Compare] says whether it is the same
// session with a lower first known index ([Better]), and
// [InboundSession.Merge] combines them; an [Unconnected] key never replaces
// a stored one.
//
// What this package does not do, and callers must: check that the event's
// session_id equals the session's ID, bind each session to the Olm device
// that shared it, check the room_id inside the plaintext, and reject a second
// different event with an index already seen (replays).
//
// Sessions persist with Pickle and [UnpickleOutboundSession] /
// [UnpickleInboundSession]: a versioned binary format, encrypted and
// authenticated under a caller-supplied key.
//
// # Indices
//
// Message indices are uint32 and compared as plain integers, as vodozemac
// does: an inbound session decrypts any index >= its first known index, up
// to 2^32-1, by advancing a copy of its ratchet (at most 1020 HMACs). libolm
// 3.2.13 instead decrypts within a window of 2^31 indices modulo 2^32, so it
// refuses a message 2^31 or more ahead of the first known index (we accept
// it) and accepts an index that has wrapped past 2^32 (we refuse it with
// [ErrUnknownMessageIndex]); its export advances to any index, wrapping
// (ours refuses indices below the first known one with [ErrIndexTooLow]).
// These differences were checked against libolm and arise only from hostile
// or broken senders: a sender rotating as the spec asks never gets near
// them. An [OutboundSession] never wraps: after index 2^32-1 it is
// [OutboundSession.Exhausted].
//
// # Secrets
//
// Sessions and session keys hold ratchet secrets. Their String, GoString and
// Format print only the session ID and index, except [SessionKey.String] and
// [ExportedSessionKey.String], which return the base64 key itself (fmt
// verbs still print a redacted form). Go cannot guarantee erasure: the
// garbage collector may copy memory, and the package clears the buffers it
// owns on a best-effort basis.
package megolm
