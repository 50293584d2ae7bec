package megolm

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// The per-message AEAD of m.megolm.v1.aes-sha2: HKDF-SHA-256 (no salt) of
// the 128-byte ratchet with info "MEGOLM_KEYS" gives AES key(32) | HMAC
// key(32) | IV(16); AES-256-CBC with PKCS#7; HMAC-SHA-256 truncated to 8
// bytes. This is the construction of crypto/internal/cipher, written here
// without heap allocations (the standard library's hmac and hkdf allocate
// their hash states; local sha256 digests stay on the stack). The tests check
// it byte for byte against crypto/internal/cipher.

var errPadding = errors.New("invalid padding")

const hmacBlock = 64

type messageKeys struct {
	aesKey [32]byte
	macKey [32]byte
	iv     [16]byte
}

// hmacSHA256 returns HMAC-SHA-256(key, a | b | c) for a key of at most 64
// bytes, without allocating.
func hmacSHA256(key []byte, a, b, c []byte) [sha256.Size]byte {
	if len(key) > hmacBlock {
		panic("megolm: internal error: HMAC key longer than a block")
	}
	var pad [hmacBlock]byte
	copy(pad[:], key)
	for i := range pad {
		pad[i] ^= 0x36
	}
	var sum [sha256.Size]byte
	h := sha256.New()
	h.Write(pad[:])
	h.Write(a)
	h.Write(b)
	h.Write(c)
	h.Sum(sum[:0])
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	h = sha256.New()
	h.Write(pad[:])
	h.Write(sum[:])
	h.Sum(sum[:0])
	clear(pad[:])
	return sum
}

// deriveMessageKeys runs HKDF-SHA-256(salt none, ikm = ratchet, info
// "MEGOLM_KEYS", 80 bytes).
func deriveMessageKeys(r *ratchet) messageKeys {
	const info = megolmKeysInfo
	// Extract with an absent salt: a zero-length HMAC key (same as 32 zeros).
	prk := hmacSHA256(nil, r.data[:], nil, nil)
	var ctr [1]byte
	var k messageKeys
	ctr[0] = 1
	t1 := hmacSHA256(prk[:], []byte(info), ctr[:], nil)
	ctr[0] = 2
	t2 := hmacSHA256(prk[:], t1[:], []byte(info), ctr[:])
	ctr[0] = 3
	t3 := hmacSHA256(prk[:], t2[:], []byte(info), ctr[:])
	k.aesKey = t1
	k.macKey = t2
	copy(k.iv[:], t3[:16])
	clear(prk[:])
	clear(t1[:])
	clear(t2[:])
	clear(t3[:])
	return k
}

// mac returns the truncated MAC over data.
func (k *messageKeys) mac(data []byte) [macSize]byte {
	sum := hmacSHA256(k.macKey[:], data, nil, nil)
	var out [macSize]byte
	copy(out[:], sum[:macSize])
	return out
}

// verifyMAC compares in constant time.
func (k *messageKeys) verifyMAC(data, mac []byte) bool {
	want := k.mac(data)
	return hmac.Equal(want[:], mac)
}

// encryptedLen is the PKCS#7-padded length of n bytes.
func encryptedLen(n int) int { return (n/blockSize + 1) * blockSize }

// encrypt appends the AES-256-CBC encryption of plaintext (PKCS#7 padded) to
// dst, which must have room for it.
func (k *messageKeys) encrypt(dst, plaintext []byte) []byte {
	n := encryptedLen(len(plaintext))
	start := len(dst)
	dst = append(dst, plaintext...)
	pad := byte(n - len(plaintext))
	for range int(pad) {
		dst = append(dst, pad)
	}
	block, err := aes.NewCipher(k.aesKey[:])
	if err != nil {
		panic("megolm: internal error: " + err.Error())
	}
	// CBC by hand: cipher.NewCBCEncrypter would make the IV (and with it the
	// keys) escape to the heap.
	out := dst[start:]
	prev := k.iv[:]
	for i := 0; i < len(out); i += blockSize {
		b := out[i : i+blockSize]
		subtle.XORBytes(b, b, prev)
		block.Encrypt(b, b)
		prev = b
	}
	return dst
}

// decrypt decrypts and unpads a ciphertext that is a non-empty whole number
// of blocks (the parser checked). Call it only after the MAC has verified.
func (k *messageKeys) decrypt(ciphertext []byte) ([]byte, error) {
	out := make([]byte, len(ciphertext))
	block, err := aes.NewCipher(k.aesKey[:])
	if err != nil {
		panic("megolm: internal error: " + err.Error())
	}
	for i := 0; i < len(out); i += blockSize {
		block.Decrypt(out[i:i+blockSize], ciphertext[i:i+blockSize])
	}
	// P_0 = D(C_0) ^ IV, P_i = D(C_i) ^ C_{i-1}.
	subtle.XORBytes(out[:blockSize], out[:blockSize], k.iv[:])
	subtle.XORBytes(out[blockSize:], out[blockSize:], ciphertext[:len(ciphertext)-blockSize])
	// The MAC has authenticated the ciphertext, so there is no padding
	// oracle; the check only catches a broken sender.
	pad := int(out[len(out)-1])
	if pad == 0 || pad > blockSize {
		clear(out)
		return nil, errPadding
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			clear(out)
			return nil, errPadding
		}
	}
	return out[:len(out)-pad], nil
}

func (k *messageKeys) wipe() {
	clear(k.aesKey[:])
	clear(k.macKey[:])
	clear(k.iv[:])
}
