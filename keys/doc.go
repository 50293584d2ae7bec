// Package keys holds one type per key role used by Matrix end-to-end
// encryption: Curve25519 public and secret keys (Olm identity, one-time,
// fallback and ratchet keys, SAS and backup keys) and Ed25519 public keys,
// secret keys and signatures (device fingerprint keys, cross-signing keys,
// Megolm signing keys).
//
// Keys are parsed at the boundary: [ParseCurve25519PublicKey],
// [ParseEd25519PublicKey] and [ParseEd25519Signature] take the unpadded
// standard base64 that Matrix JSON uses (see
// https://spec.matrix.org/v1.16/appendices/#unpadded-base64) and return a
// value that is valid by construction. Public keys are small comparable
// values; secret keys live behind pointers, compare in constant time with
// Equal, and never print their bytes: String, GoString and LogValue are
// redacted.
//
// Diffie-Hellman through [Curve25519SecretKey.SharedSecret] refuses
// non-contributory (all-zero) results, and [Ed25519PublicKey.Verify] refuses
// small-order public keys, matching vodozemac's strict verification.
//
// The package is pure: randomness comes in as an io.Reader, and nothing here
// logs, stores or talks to the network. Go cannot promise that secrets are
// erased from memory (the garbage collector may copy them); Wipe clears what
// the value owns, which is the best a Go program can do.
package keys
