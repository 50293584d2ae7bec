// Package cipher is the authenticated encryption shared by Olm, Megolm and
// the curve25519-aes-sha2 key backup: AES-256-CBC with PKCS#7 padding, keyed
// from one secret by HKDF-SHA-256 (zero salt, 80 bytes: AES key, HMAC key,
// IV), and authenticated by HMAC-SHA-256 truncated to 8 bytes. It also
// exports the HMAC and HKDF it is built from, which the Olm and Megolm
// ratchets use.
//
// Everything here works without heap allocations (crypto/hmac and
// crypto/hkdf allocate their hash states on every call, which dominated the
// allocation profile of a Megolm or Olm message); tests check each function
// byte for byte against the standard library.
//
// See https://spec.matrix.org/v1.17/olm-megolm/olm/ (the "OLM_KEYS"
// derivation). Callers check the MAC with [Keys.VerifyMAC] before they call
// [Keys.Decrypt].
package cipher

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// MACSize is the length of the truncated MAC on Olm, Megolm and backup
// ciphertexts.
const MACSize = 8

const blockSize = aes.BlockSize

var (
	// ErrInvalidCiphertext reports a ciphertext that is empty or not a whole
	// number of AES blocks.
	ErrInvalidCiphertext = errors.New("cipher: ciphertext is not a whole number of blocks")
	// ErrInvalidPadding reports PKCS#7 padding that does not check out.
	ErrInvalidPadding = errors.New("cipher: invalid padding")
	// ErrBadMAC reports a MAC that does not match.
	ErrBadMAC = errors.New("cipher: MAC mismatch")
)

// HMAC returns HMAC-SHA-256 (RFC 2104) under key of the concatenation of
// parts. Keys longer than the 64-byte SHA-256 block are hashed first, as the
// RFC says.
func HMAC(key []byte, parts ...[]byte) [sha256.Size]byte {
	var pad [64]byte
	if len(key) > len(pad) {
		kh := sha256.Sum256(key)
		copy(pad[:], kh[:])
	} else {
		copy(pad[:], key)
	}
	for i := range pad {
		pad[i] ^= 0x36
	}
	var sum [sha256.Size]byte
	h := sha256.New()
	h.Write(pad[:])
	for _, p := range parts {
		h.Write(p)
	}
	h.Sum(sum[:0])
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	h.Reset()
	h.Write(pad[:])
	h.Write(sum[:])
	h.Sum(sum[:0])
	clear(pad[:])
	return sum
}

// HKDF fills out with HKDF-SHA-256 (RFC 5869) of ikm under salt and info. An
// empty salt means a zero salt (HMAC pads keys with zeros, so an empty salt,
// one zero byte and 32 zero bytes are the same). out may be at most 255*32
// bytes long.
func HKDF(out, salt, ikm []byte, info string) {
	if len(out) > 255*sha256.Size {
		panic("cipher: internal error: HKDF output too long")
	}
	prk := HMAC(salt, ikm)
	var t [sha256.Size]byte
	var ctr [1]byte
	infoBytes := []byte(info)
	for i, n := 0, 0; n < len(out); i++ {
		ctr[0] = byte(i + 1)
		if i == 0 {
			t = HMAC(prk[:], infoBytes, ctr[:])
		} else {
			t = HMAC(prk[:], t[:], infoBytes, ctr[:])
		}
		n += copy(out[n:], t[:])
	}
	clear(prk[:])
	clear(t[:])
}

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
	var out [80]byte
	HKDF(out[:], nil, secret, info)
	var k Keys
	copy(k.aesKey[:], out[:32])
	copy(k.macKey[:], out[32:64])
	copy(k.iv[:], out[64:80])
	clear(out[:])
	k.derived = true
	return k
}

// EncryptedLen returns the ciphertext length for a plaintext of n bytes.
func EncryptedLen(n int) int { return (n/blockSize + 1) * blockSize }

// Encrypt encrypts plaintext with AES-256-CBC and PKCS#7 padding, appending
// the ciphertext to dst. dst and plaintext must not overlap.
func (k *Keys) Encrypt(dst, plaintext []byte) []byte {
	k.mustBeDerived()
	n := EncryptedLen(len(plaintext))
	dst, out := grow(dst, n)
	copy(out, plaintext)
	pad := byte(n - len(plaintext))
	for i := len(plaintext); i < n; i++ {
		out[i] = pad
	}
	block, err := aes.NewCipher(k.aesKey[:])
	if err != nil {
		panic("cipher: internal error: " + err.Error())
	}
	// CBC by hand: crypto/cipher.NewCBCEncrypter would move the IV (and so
	// the key material) to the heap.
	prev := k.iv[:]
	for i := 0; i < len(out); i += blockSize {
		b := out[i : i+blockSize]
		subtle.XORBytes(b, b, prev)
		block.Encrypt(b, b)
		prev = b
	}
	return dst
}

// Decrypt decrypts an AES-256-CBC ciphertext and removes its PKCS#7 padding.
// It does not authenticate: check the MAC first, so that the padding check
// is no oracle.
func (k *Keys) Decrypt(ciphertext []byte) ([]byte, error) {
	k.mustBeDerived()
	if len(ciphertext) == 0 || len(ciphertext)%blockSize != 0 {
		return nil, ErrInvalidCiphertext
	}
	out := make([]byte, len(ciphertext))
	block, err := aes.NewCipher(k.aesKey[:])
	if err != nil {
		panic("cipher: internal error: " + err.Error())
	}
	for i := 0; i < len(out); i += blockSize {
		block.Decrypt(out[i:i+blockSize], ciphertext[i:i+blockSize])
	}
	// P_0 = D(C_0) ^ IV, P_i = D(C_i) ^ C_{i-1}.
	subtle.XORBytes(out[:blockSize], out[:blockSize], k.iv[:])
	subtle.XORBytes(out[blockSize:], out[blockSize:], ciphertext[:len(ciphertext)-blockSize])
	pad := int(out[len(out)-1])
	if pad == 0 || pad > blockSize {
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
	sum := HMAC(k.macKey[:], data)
	var out [MACSize]byte
	copy(out[:], sum[:MACSize])
	return out
}

// FullMAC returns the untruncated HMAC-SHA-256 of data under the MAC key.
func (k *Keys) FullMAC(data []byte) [sha256.Size]byte {
	k.mustBeDerived()
	return HMAC(k.macKey[:], data)
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
