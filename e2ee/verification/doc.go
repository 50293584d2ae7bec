// Package verification runs interactive key verification (the key
// verification framework and SAS, m.sas.v1) as a pure state machine: no
// network, no storage, the clock and randomness passed in. It turns verified
// MACs into a typed [Outcome] naming exactly the public keys that were proven,
// and builds the /keys/signatures/upload body from it.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#key-verification-framework
// and https://spec.matrix.org/v1.16/client-server-api/#short-authentication-string-sas-verification
//
// # Use
//
// Create one [Machine] per device ([NewMachine]) with our identity, an
// io.Reader for randomness and a [KeyLookup] into the caller's device store.
// Feed it every verification event ([Incoming]: to-device
// m.key.verification.*, or in-room m.room.message with msgtype
// m.key.verification.request and the m.key.verification.* room events) with
// the sender as the transport authenticated it; every call returns a [Result]
// with the messages to send ([Outgoing]), the SAS to show, the [Outcome] or
// the [Cancellation]. User actions are methods on [Machine]: [Machine.RequestToDevice],
// [Machine.RequestInRoom], [Machine.Accept] (send ready), [Machine.StartSAS],
// [Machine.AcceptSAS], [Machine.Confirm], [Machine.Mismatch],
// [Machine.Cancel]. Call [Machine.Tick] now and then for timeouts.
//
// On success, [Outcome.SignatureUpload] signs the other user's master key with
// our user-signing key (or, for our own device, its device keys with our
// self-signing key) and returns the upload body.
//
// # Rules (threat model A2, B11)
//
//   - The keys to verify are fixed when the other device becomes known (ready
//     sent or received, or a start without request): the other device's
//     Ed25519 key and the other user's master key as the [KeyLookup] returns
//     them then (sas.Pin). A user with a device whose ID equals the base64 of
//     one of its cross-signing keys is refused (m.key_mismatch,
//     sas.ErrDeviceIDCollision). Before the outcome the lookup is asked again;
//     a changed key cancels with m.key_mismatch.
//   - MAC key IDs resolve only against the pinned keys (sas.VerifyMACs); an
//     Outcome holds only keys whose MAC verified, with the pinned public key.
//   - Every message must come from the user (and, where known, the device) the
//     flow is with, in order; anything else cancels (m.user_mismatch,
//     m.unexpected_message). done before a verified MAC cancels.
//   - curve25519-hkdf-sha256, sha256 and hkdf-hmac-sha256.v2 only; the legacy
//     hkdf-hmac-sha256 MAC only with [Options.AllowLegacyMAC] and only when the
//     peer offers nothing better. The accepter's commitment is checked.
//   - Flows time out 10 minutes after they began; a received request that is
//     10 minutes old (or 5 minutes in the future) is ignored, and its prompt
//     expires 2 minutes after receipt.
package verification
