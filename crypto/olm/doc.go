// Package olm implements Olm (m.olm.v1.curve25519-aes-sha2), the double
// ratchet Matrix uses between two devices, byte-compatible with libolm
// 3.2.13 and vodozemac.
//
// The specification is https://spec.matrix.org/v1.17/olm-megolm/olm/ (the
// Olm document joined the Matrix spec in v1.17; the algorithm's use is in
// https://spec.matrix.org/v1.16/client-server-api/#molmv1curve25519-aes-sha2).
//
// # What to use
//
//   - [NewAccount] creates a device's identity. Publish its
//     [Account.IdentityKeys], one-time keys ([Account.GenerateOneTimeKeys],
//     [Account.OneTimeKeys], then [Account.MarkKeysAsPublished]) and a
//     fallback key ([Account.GenerateFallbackKey]), signed with
//     [Account.Sign].
//   - To write to a device, claim one of its one-time keys and call
//     [Account.NewOutboundSession]; then [Session.Encrypt].
//   - On a pre-key message (type 0), first try each existing session with
//     that sender ([Session.MatchesInbound]); otherwise
//     [Account.NewInboundSession], which returns the session and the
//     plaintext and removes the one-time key only if decryption succeeded.
//     Normal messages (type 1) go to [Session.Decrypt].
//   - Persist with [Account.Pickle] and [Session.Pickle] (authenticated
//     encryption under a caller-supplied key) and restore with
//     [UnpickleAccount] and [UnpickleSession].
//
// Randomness is always an io.Reader argument, and the bytes read match
// libolm's random buffers, so fixed input gives libolm's exact output.
//
// # Security properties
//
// Session.Decrypt verifies the MAC before decrypting, works on copies and
// changes the session only on success. Every peer-controlled collection is
// bounded ([MaxReceiverChains], [MaxSkippedMessageKeys], [MaxMessageGap],
// [MaxMessageSize]), non-contributory X25519 results are refused
// (keys.ErrNonContributory), and the normal-message parser accepts only the
// canonical encoding, so an authenticated message has exactly one encoding
// (pre-key wrappers, which carry no MAC, may order their fields freely, as
// goolm does; see [ParsePreKeyMessage]). Secret-holding
// types print only public data through fmt and slog. Go cannot guarantee
// that secrets are erased from memory: the garbage collector may copy them.
package olm
