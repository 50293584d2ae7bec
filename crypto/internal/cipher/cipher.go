// Package cipher is the authenticated encryption shared by Olm, Megolm and
// the curve25519-aes-sha2 key backup: AES-256-CBC with PKCS#7 padding, keyed
// from one secret by HKDF-SHA-256 (zero salt, 80 bytes: AES key, HMAC key,
// IV), and authenticated by HMAC-SHA-256 truncated to 8 bytes.
//
// See https://spec.matrix.org/v1.16/olm-megolm/olm/ (the "OLM_KEYS"
// derivation) and ../shared/docs/crypto-digest.md §1-§3. Callers check the
// MAC with [Keys.VerifyMAC] before they call [Keys.Decrypt].
package cipher

import (
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
)

// MACSize is the length of the truncated MAC on Olm, Megolm and backup
// ciphertexts.
const MACSize = 8

var (
	// ErrInvalidCiphertext reports a ciphertext that is empty or not a whole
	// number of AES blocks.
	ErrInvalidCiphertext = errors.New("cipher: ciphertext is not a whole number of blocks")
	// ErrInvalidPadding reports PKCS#7 padding that does not check out.
	ErrInvalidPadding = errors.New("cipher: invalid padding")
	// ErrBadMAC reports a MAC that does not match.
	ErrBadMAC = errors.New("cipher: MAC mismatch")
)

// Keys holds the AES key, the HMAC key and the IV derived from one secret.
type Keys struct {
	aesKey  [32]byte
	macKey  [32]byte
	iv      [16]byte
	derived bool
}

// DeriveKeys expands secret with HKDF-SHA-256 under a zero salt and the given
// info string into an AES-256 key, an HMAC-SHA-256 key and a CBC IV.
func DeriveKeys(secret []byte, info string) Keys {
	var k Keys
	// hkdf.Key fails only for output lengths over 255*32 bytes.
	out, err := hkdf.Key(sha256.New, secret, nil, info, 80)
	if err != nil {
		panic("cipher: internal error: " + err.Error())
	}
	copy(k.aesKey[:], out[:32])
	copy(k.macKey[:], out[32:64])
	copy(k.iv[:], out[64:80])
	clear(out)
	k.derived = true
	return k
}

// EncryptedLen returns the ciphertext length for a plaintext of n bytes.
func EncryptedLen(n int) int { return (n/aes.BlockSize + 1) * aes.BlockSize }

// Encrypt encrypts plaintext with AES-256-CBC and PKCS#7 padding, appending
// the ciphertext to dst.
func (k *Keys) Encrypt(dst, plaintext []byte) []byte {
	k.mustBeDerived()
	n := EncryptedLen(len(plaintext))
	dst, out := grow(dst, n)
	copy(out, plaintext)
	pad := byte(n - len(plaintext))
	for i := len(plaintext); i < n; i++ {
		out[i] = pad
	}
	block, _ := aes.NewCipher(k.aesKey[:]) // 32-byte key cannot fail
	gocipher.NewCBCEncrypter(block, k.iv[:]).CryptBlocks(out, out)
	return dst
}

// Decrypt decrypts an AES-256-CBC ciphertext and removes its PKCS#7 padding.
// It does not authenticate: check the MAC first.
func (k *Keys) Decrypt(ciphertext []byte) ([]byte, error) {
	k.mustBeDerived()
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, ErrInvalidCiphertext
	}
	out := make([]byte, len(ciphertext))
	block, _ := aes.NewCipher(k.aesKey[:])
	gocipher.NewCBCDecrypter(block, k.iv[:]).CryptBlocks(out, ciphertext)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize {
		clear(out)
		return nil, ErrInvalidPadding
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			clear(out)
			return nil, ErrInvalidPadding
		}
	}
	return out[:len(out)-pad], nil
}

// MAC returns HMAC-SHA-256 of data under the derived MAC key, truncated to
// [MACSize] bytes.
func (k *Keys) MAC(data []byte) [MACSize]byte {
	k.mustBeDerived()
	var sum [sha256.Size]byte
	h := hmac.New(sha256.New, k.macKey[:])
	h.Write(data)
	h.Sum(sum[:0])
	var out [MACSize]byte
	copy(out[:], sum[:MACSize])
	return out
}

// FullMAC returns the untruncated HMAC-SHA-256 of data under the MAC key.
func (k *Keys) FullMAC(data []byte) [sha256.Size]byte {
	k.mustBeDerived()
	var sum [sha256.Size]byte
	var h hash.Hash = hmac.New(sha256.New, k.macKey[:])
	h.Write(data)
	h.Sum(sum[:0])
	return sum
}

// VerifyMAC checks a truncated MAC over data in constant time.
func (k *Keys) VerifyMAC(data, mac []byte) error {
	want := k.MAC(data)
	if !hmac.Equal(want[:], mac) {
		return ErrBadMAC
	}
	return nil
}

// Wipe clears the derived keys.
func (k *Keys) Wipe() {
	clear(k.aesKey[:])
	clear(k.macKey[:])
	clear(k.iv[:])
	k.derived = false
}

func (k *Keys) mustBeDerived() {
	if !k.derived {
		panic("cipher: internal error: keys used before DeriveKeys or after Wipe")
	}
}

// grow extends dst by n bytes and returns the whole slice and the new tail.
func grow(dst []byte, n int) ([]byte, []byte) {
	total := len(dst) + n
	if cap(dst) < total {
		nd := make([]byte, len(dst), total)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:total]
	return dst, dst[total-n:]
}
