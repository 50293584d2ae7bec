package olm

import "crypto/sha256"

// hmacMaxMsg is the longest message hmacSHA256 accepts: the 96-byte 3DH
// secret is the longest input the ratchet MACs.
const hmacMaxMsg = 96

// hmacSHA256 computes HMAC-SHA-256 (RFC 2104) of the concatenation of msg
// under a key of at most 64 bytes, on the stack: the ratchet calls it for
// every chain step and KDF, and crypto/hmac allocates on each use. The
// result is checked against crypto/hmac in TestHMAC.
func hmacSHA256(key []byte, msg ...[]byte) [32]byte {
	if len(key) > 64 {
		panic("olm: internal error: HMAC key over 64 bytes")
	}
	var buf [64 + hmacMaxMsg]byte
	copy(buf[:], key)
	for i := range 64 {
		buf[i] ^= 0x36
	}
	n := 64
	for _, m := range msg {
		if n+len(m) > len(buf) {
			panic("olm: internal error: HMAC message too long")
		}
		n += copy(buf[n:], m)
	}
	inner := sha256.Sum256(buf[:n])
	var obuf [64 + 32]byte
	copy(obuf[:], key)
	for i := range 64 {
		obuf[i] ^= 0x5c
	}
	copy(obuf[64:], inner[:])
	out := sha256.Sum256(obuf[:])
	clear(buf[:])
	clear(obuf[:64])
	return out
}

// hkdf64 is HKDF-SHA-256 (RFC 5869) with 64 bytes of output, split in two.
// An empty salt is the same as 32 zero bytes.
func hkdf64(salt, ikm []byte, info string) (a, b [32]byte) {
	var zero [32]byte
	if len(salt) == 0 {
		salt = zero[:]
	}
	prk := hmacSHA256(salt, ikm)
	a = hmacSHA256(prk[:], []byte(info), []byte{1})
	b = hmacSHA256(prk[:], a[:], []byte(info), []byte{2})
	clear(prk[:])
	return a, b
}
