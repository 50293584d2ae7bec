// Package attachment encrypts and decrypts files sent in encrypted rooms
// (EncryptedFile, "v": "v2"): AES-256-CTR under a fresh key and IV per file,
// with the SHA-256 of the ciphertext carried in the (end-to-end encrypted)
// event.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#sending-encrypted-attachments
//
// # Use
//
// To send: [NewEncryptor] wraps the plaintext reader; read the ciphertext
// from it, upload it, then take [Encryptor.Info] and put it (with the mxc
// URL) in the event. For small files, [Encrypt] does it in one call.
//
// To receive: [ParseInfo] validates the JSON strictly (v, kty, alg,
// key_ops, ext, key and IV lengths, hash). [Decrypt] checks the hash of the
// whole ciphertext in constant time before it decrypts anything; [DecryptTo]
// does the same in two passes over an [io.ReadSeeker], so large files need
// not be held in memory. A ciphertext whose hash does not match never yields
// a byte of plaintext.
//
// The server holds the ciphertext and may alter or truncate it (threat model
// B15); the key, IV and hash travel inside the encrypted event, so they are
// authenticated by Megolm. Every size is bounded by the caller's limit.
package attachment
