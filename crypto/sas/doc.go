// Package sas is the cryptography of interactive key verification: the
// m.sas.v1 short authentication string (commitment, shared secret, emoji and
// decimal forms, MACs of the keys being verified) and the QR code payloads
// of m.qr_code.show.v1 / m.reciprocate.v1. It holds no flow state; the
// verification state machine lives in the client and calls in here.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#short-authentication-string-sas-verification
// and https://spec.matrix.org/v1.16/client-server-api/#qr-code-format.
//
// # Use
//
//   - [NewEphemeral] makes the flow's X25519 key (32 bytes from rand, as
//     libolm's olm_create_sas). [Ephemeral.Establish] with the other side's
//     key gives an [Established] SAS; non-contributory (low-order) keys are
//     refused.
//   - The accepter sends [Commitment] of its key and the canonical JSON of
//     the start content; the starter checks it with [VerifyCommitment].
//   - [Established.ShortAuthString] gives the bytes to show, as
//     [ShortAuthString.Emoji] or [ShortAuthString.Decimal].
//   - [Pin] fixes, when the flow starts, the keys the other side may prove:
//     its device key and its user's master key. [Established.MACs] builds
//     our m.key.verification.mac content; [Established.VerifyMACs] checks
//     theirs against the pinned keys only, and returns what was verified.
//
// # Key IDs (CVE-2022-39250)
//
// Device keys are named ed25519:<device ID> and cross-signing keys
// ed25519:<base64 public key>, in one namespace, and the server chooses
// device IDs. A [KeyID] is built only by [DeviceKeyID] or [CrossSigningKeyID]
// and never parsed from a string, so the kind of key is always known. [Pin]
// refuses a device whose ID equals the base64 of any of the user's
// cross-signing keys, and [Established.VerifyMACs] refuses any key ID that is
// not one of the pinned ones. A key is reported verified together with the
// public key that was pinned for it, never looked up afterwards.
//
// # Methods
//
// Key agreement is curve25519-hkdf-sha256 only (the deprecated curve25519
// variant is not offered). MACs use hkdf-hmac-sha256.v2 ([MACv2]); the two
// legacy methods with libolm's broken base64 exist only to talk to old
// clients and are named accordingly ([MACInsecureLegacyHKDF],
// [MACInsecureLegacyLongKDF]); never choose them when the peer offers v2.
package sas
