// Package auth holds the homeserver's credential primitives: argon2id password
// hashing ([HashPassword], [VerifyPassword]), access tokens of 256 random bits
// that are stored only as SHA-256 hashes ([NewAccessToken], [HashToken]) and
// device IDs ([NewDeviceID]).
//
// See https://spec.matrix.org/v1.16/client-server-api/#client-authentication.
package auth
