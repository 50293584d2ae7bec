// Package backup is server-side key backup with the
// m.megolm_backup.v1.curve25519-aes-sha2 algorithm, plus the authentication
// of MSC4048 so that entries written by the user can be told from entries
// the server (or anyone else who knows the public key) injected.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups
// and https://github.com/matrix-org/matrix-spec-proposals/pull/4048.
//
// # Use
//
// A [DecryptionKey] is the backup's Curve25519 private key (shown to users as
// a recovery key, stored in secret storage as [SecretName]). Anyone who knows
// the public key can [Encrypt] an entry; only the holder of the private key,
// or of the [MACKey] derived from it, can [EncryptAuthenticated].
// [DecryptionKey.Decrypt] returns the plaintext with its [Provenance]:
// [Authenticated] only when the entry carries a valid MSC4048 MAC for the
// given user.
//
// # The v1 "MAC"
//
// The v1 algorithm's mac field is HMAC-SHA-256 over the EMPTY string,
// truncated to 8 bytes (libolm's bug, reproduced by vodozemac and mautrix-go
// and written into the spec in v1.10). It proves only that the writer did the
// key agreement with the ephemeral key; it authenticates nothing, and the
// ciphertext (AES-CBC) is malleable. This package computes and checks it
// exactly that way, for compatibility, and never treats it as
// authentication.
//
// # MSC4048
//
// The backup MAC key is HKDF-SHA-256(no salt, private key, info
// "MATRIX_BACKUP_MAC_KEY", 32 bytes). The MAC is HMAC-SHA-256 over the
// canonical JSON of session_data without signatures and unsigned, stored in
// session_data.signatures.<user id>."org.matrix.msc4048.hmac-sha-256:backup_mac_key"
// (the MSC's unstable name). The server knows only the public key, so it can
// write entries but cannot MAC them. Other clients ignore the field.
//
// One deliberate difference from the MSC text: for entries in a v1 backup,
// MSC4048 asks writers to change the v1 mac field to a real MAC over the
// ciphertext. libolm, vodozemac and mautrix-go check the empty-string MAC on
// decryption and would refuse such entries, so this package keeps the
// compatible v1 mac and relies on the MSC4048 field alone for authenticity.
package backup
