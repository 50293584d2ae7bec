// Package signing signs and verifies Matrix JSON objects as described in
// https://spec.matrix.org/v1.16/appendices/#signing-json.
//
// A signature covers the Canonical JSON encoding of the object without its
// top-level "signatures" and "unsigned" members. [Sign] adds a signature and
// keeps (merges with) any signatures already present; [Verify] checks one
// signature by one signer and key ID. To check several signatures on the same
// object, [Parse] it once and call [Object.Verify].
//
// Input is decoded with the strict rules of package canonicaljson: duplicate
// keys, out-of-range integers, floats, invalid UTF-8 and lone surrogates are
// refused before any signature is looked at, so two parsers can never
// disagree about what was signed.
//
// Failures are [*SignatureError] values naming the signer and the key ID, and
// wrapping [ErrMissingSignature], [ErrMalformedSignature] or
// [ErrInvalidSignature].
package signing
