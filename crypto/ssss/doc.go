// Package ssss is secret storage ("4S"): secrets such as the cross-signing
// private keys and the key-backup decryption key, encrypted client-side with
// the m.secret_storage.v1.aes-hmac-sha2 algorithm and kept in the user's
// account data on the server, which must not be able to read or alter them.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#storage
// (key descriptions, m.secret_storage.v1.aes-hmac-sha2, deriving keys from
// passphrases) and
// https://spec.matrix.org/v1.16/appendices/#cryptographic-key-representation
// (the recovery-key text form).
//
// # Use
//
// A [Key] is the 32-byte secret-storage key, obtained from [GenerateKey],
// [ParseRecoveryKey] (what the user types) or [DeriveKeyFromPassphrase].
// A [KeyDescription] is the server-held m.secret_storage.key.<id> content.
// [Unlock] checks a key against a description and returns an [UnlockedKey],
// the only type that encrypts or decrypts secrets. [NewKeyDescription] makes
// a fresh description (with its key check) for a key we created.
//
// # Rules this package enforces
//
//   - The MAC over the ciphertext is checked in constant time before anything
//     is decrypted; a secret whose MAC fails yields no plaintext.
//   - A key description without the key check (iv and mac) is refused by
//     [Unlock]: the spec tells clients to assume such a key is valid, which
//     lets a server that strips the check get secrets written under a key of
//     its choosing (threat model B8). A user with such a description must
//     create a new one.
//   - Passphrase parameters below [MinPBKDF2Iterations] or above
//     [MaxPBKDF2Iterations] are refused, as are salts and key sizes we do not
//     expect.
//   - Each secret's keys are derived with the secret's name as HKDF info, so
//     a ciphertext moved from one secret to another fails its MAC.
//
// # What the MAC does not cover (threat model A6)
//
// The MAC covers the ciphertext only, not the IV. Whoever controls account
// data (the server) can therefore replace the IV of a valid entry, and the
// entry still passes the MAC check: it decrypts to the original plaintext
// XOR'd with the difference of two keystreams, that is, to garbage of the
// right length (or, if the IV comes from another entry under the same
// secret's keys, to a mix of both). The format cannot be changed without
// breaking every other client, so the defence sits with the caller: a
// decrypted secret must be checked semantically before use (a cross-signing
// seed must produce the trusted public key, a backup key must match the
// trusted backup's public key), and every failure (MAC, decoding, semantic
// mismatch) must look the same to the server. [DecodeKeySecret] does the
// decoding half of that for the key-shaped secrets.
package ssss
