package megolm

import "myelin/crypto/internal/cipher"

// deriveMessageKeys runs HKDF-SHA-256 (no salt) over the whole 128-byte
// ratchet with info "MEGOLM_KEYS": AES key(32) | HMAC key(32) | IV(16)
// (digest pitfall 8: all four parts, not just R3).
func deriveMessageKeys(r *ratchet) cipher.Keys {
	return cipher.DeriveKeys(r.data[:], megolmKeysInfo)
}
