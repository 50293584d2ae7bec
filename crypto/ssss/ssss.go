package ssss

import (
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"myelin/crypto/internal/recoverykey"
	"myelin/keys"
)

// Algorithm is the secret-storage algorithm this package implements.
const Algorithm = "m.secret_storage.v1.aes-hmac-sha2"

// PassphraseAlgorithm is the only passphrase derivation the spec defines.
const PassphraseAlgorithm = "m.pbkdf2"

// KeySize is the size of a secret-storage key.
const KeySize = 32

// MinPBKDF2Iterations is the lowest PBKDF2 iteration count we accept from a
// key description. The spec sets no floor, and a server that lowers the
// count makes a passphrase cheap to brute-force if any client re-derives
// under the lowered parameters (threat model B8). Element and
// matrix-rust-sdk write 500,000; the spec's own example and some older
// clients use 100,000, which is also the lowest count recommended for
// PBKDF2-HMAC-SHA-512 in common guidance. 100,000 keeps those accounts
// working while refusing anything drastically weakened.
const MinPBKDF2Iterations = 100_000

// DefaultPBKDF2Iterations is the count we write for new passphrase keys (the
// value Element and matrix-rust-sdk use).
const DefaultPBKDF2Iterations = 500_000

// MaxPBKDF2Iterations bounds the work a key description can make us do (a
// server could otherwise set a count that hangs the client).
const MaxPBKDF2Iterations = 10_000_000

// MinSaltLength is the shortest passphrase salt we accept. Salts are random
// strings (32 characters in Element and matrix-rust-sdk).
const MinSaltLength = 16

// MaxSaltLength bounds the salt.
const MaxSaltLength = 256

// MaxSecretSize bounds a secret's ciphertext. Secrets are keys of a few dozen
// bytes; 64 KiB leaves room for anything reasonable.
const MaxSecretSize = 64 << 10

// MaxContentSize bounds the JSON this package parses (key descriptions and
// secret account data).
const MaxContentSize = 256 << 10

// MaxKeysPerSecret bounds the entries in a secret's "encrypted" map.
const MaxKeysPerSecret = 32

var (
	// ErrWrongKey reports a key that does not pass the description's key
	// check, or a passphrase that derives such a key.
	ErrWrongKey = errors.New("ssss: wrong key")
	// ErrMissingKeyCheck reports a key description without iv and mac.
	ErrMissingKeyCheck = errors.New("ssss: key description has no key check")
	// ErrBadMAC reports a secret whose MAC does not match: it was altered, or
	// was written under another key or secret name.
	ErrBadMAC = errors.New("ssss: MAC mismatch")
	// ErrUnsupportedAlgorithm reports an algorithm other than [Algorithm] or
	// [PassphraseAlgorithm].
	ErrUnsupportedAlgorithm = errors.New("ssss: unsupported algorithm")
	// ErrWeakPassphraseParams reports passphrase parameters outside what we
	// accept (iterations, salt, bits).
	ErrWeakPassphraseParams = errors.New("ssss: passphrase parameters refused")
	// ErrNoPassphrase reports a key description without passphrase
	// parameters when a passphrase was given.
	ErrNoPassphrase = errors.New("ssss: key has no passphrase")
	// ErrInvalidRecoveryKey reports text that is not a recovery key.
	ErrInvalidRecoveryKey = errors.New("ssss: invalid recovery key")
	// ErrMalformed reports JSON or base64 that does not have the expected
	// shape or size.
	ErrMalformed = errors.New("ssss: malformed data")
)

// Key is a 32-byte secret-storage key. Use it through a pointer.
type Key struct {
	_ [0]func() // == on secrets is a compile error
	b [KeySize]byte
}

// GenerateKey reads 32 bytes from rand as a new key.
func GenerateKey(rand io.Reader) (*Key, error) {
	k := new(Key)
	if _, err := io.ReadFull(rand, k.b[:]); err != nil {
		return nil, fmt.Errorf("ssss: generate key: %w", err)
	}
	return k, nil
}

// NewKey copies a raw 32-byte key.
func NewKey(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("ssss: key of %d bytes: %w", len(b), ErrMalformed)
	}
	k := new(Key)
	copy(k.b[:], b)
	return k, nil
}

// ParseRecoveryKey parses the text form users write down (base58 with the
// 0x8B 0x01 prefix and a parity byte; whitespace is ignored).
func ParseRecoveryKey(s string) (*Key, error) {
	b, err := recoverykey.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("ssss: %w: %w", ErrInvalidRecoveryKey, err)
	}
	k := &Key{b: b}
	clear(b[:])
	return k, nil
}

// RecoveryKey returns the text form to show the user.
func (k *Key) RecoveryKey() string { return recoverykey.Encode(&k.b) }

// Bytes returns a copy of the raw key, for persistence only.
func (k *Key) Bytes() []byte { b := k.b; return b[:] }

// Equal reports in constant time whether k and o are the same key.
func (k *Key) Equal(o *Key) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// Wipe clears the key.
func (k *Key) Wipe() { clear(k.b[:]) }

// String is redacted.
func (k *Key) String() string { return "ssss.Key(REDACTED)" }

// GoString is redacted.
func (k *Key) GoString() string { return k.String() }

// Format prints the redacted form for every verb.
func (k *Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// PassphraseParams are the m.pbkdf2 parameters of a key description.
type PassphraseParams struct {
	Algorithm  string `json:"algorithm"`
	Salt       string `json:"salt"`
	Iterations int    `json:"iterations"`
	// Bits is the derived key size; 0 means the default, 256, the only size
	// this package accepts.
	Bits int `json:"bits,omitempty"`
}

// Check refuses parameters outside the bounds of this package.
func (p *PassphraseParams) Check() error {
	switch {
	case p.Algorithm != PassphraseAlgorithm:
		return fmt.Errorf("ssss: passphrase algorithm: %w", ErrUnsupportedAlgorithm)
	case p.Iterations < MinPBKDF2Iterations:
		return fmt.Errorf("ssss: %d iterations is below the floor of %d: %w", p.Iterations, MinPBKDF2Iterations, ErrWeakPassphraseParams)
	case p.Iterations > MaxPBKDF2Iterations:
		return fmt.Errorf("ssss: %d iterations is above the ceiling of %d: %w", p.Iterations, MaxPBKDF2Iterations, ErrWeakPassphraseParams)
	case len(p.Salt) < MinSaltLength || len(p.Salt) > MaxSaltLength:
		return fmt.Errorf("ssss: salt of %d bytes: %w", len(p.Salt), ErrWeakPassphraseParams)
	case p.Bits != 0 && p.Bits != 8*KeySize:
		return fmt.Errorf("ssss: %d-bit key: %w", p.Bits, ErrWeakPassphraseParams)
	}
	return nil
}

// NewPassphraseParams makes parameters for a new passphrase key: a random
// 32-character alphanumeric salt and [DefaultPBKDF2Iterations].
func NewPassphraseParams(rand io.Reader) (*PassphraseParams, error) {
	salt, err := randomAlphanumeric(rand, 32)
	if err != nil {
		return nil, fmt.Errorf("ssss: passphrase salt: %w", err)
	}
	return &PassphraseParams{Algorithm: PassphraseAlgorithm, Salt: salt, Iterations: DefaultPBKDF2Iterations, Bits: 8 * KeySize}, nil
}

// DeriveKeyFromPassphrase derives a key with PBKDF2-HMAC-SHA-512 after
// checking the parameters (see [PassphraseParams.Check]). The salt is used as
// its UTF-8 bytes, as the spec says.
func DeriveKeyFromPassphrase(passphrase string, p *PassphraseParams) (*Key, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	return derivePBKDF2(passphrase, p.Salt, p.Iterations)
}

func derivePBKDF2(passphrase, salt string, iterations int) (*Key, error) {
	b, err := pbkdf2.Key(sha512.New, passphrase, []byte(salt), iterations, KeySize)
	if err != nil {
		return nil, fmt.Errorf("ssss: pbkdf2: %w", err)
	}
	k := new(Key)
	copy(k.b[:], b)
	clear(b)
	return k, nil
}

// KeyDescription is the content of the m.secret_storage.key.<key id>
// account data.
type KeyDescription struct {
	Name       string            `json:"name,omitempty"`
	Algorithm  string            `json:"algorithm"`
	Passphrase *PassphraseParams `json:"passphrase,omitempty"`
	// IV and MAC are the key check, base64 (padded or not on input,
	// unpadded on output).
	IV  string `json:"iv,omitempty"`
	MAC string `json:"mac,omitempty"`
}

// ParseKeyDescription parses and checks a key description: the algorithm
// must be [Algorithm], passphrase parameters (if any) must pass
// [PassphraseParams.Check], and iv/mac (if any) must be 16 and 32 bytes.
// A description without a key check parses; [Unlock] refuses it.
func ParseKeyDescription(b []byte) (*KeyDescription, error) {
	if len(b) > MaxContentSize {
		return nil, fmt.Errorf("ssss: key description of %d bytes: %w", len(b), ErrMalformed)
	}
	var d KeyDescription
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("ssss: key description: %w", ErrMalformed)
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return &d, nil
}

func (d *KeyDescription) check() error {
	if d.Algorithm != Algorithm {
		return fmt.Errorf("ssss: key algorithm: %w", ErrUnsupportedAlgorithm)
	}
	if d.Passphrase != nil {
		if err := d.Passphrase.Check(); err != nil {
			return err
		}
	}
	if d.IV != "" {
		if _, err := decodeIV(d.IV); err != nil {
			return err
		}
	}
	if d.MAC != "" {
		if _, err := decodeMAC(d.MAC); err != nil {
			return err
		}
	}
	return nil
}

// HasKeyCheck reports whether the description carries the iv/mac key check.
func (d *KeyDescription) HasKeyCheck() bool { return d.IV != "" && d.MAC != "" }

// NewKeyDescription describes key for storage on the server, with a fresh
// key check (16 random bytes of IV, bit 63 cleared). passphrase may be nil.
func NewKeyDescription(rand io.Reader, key *Key, name string, passphrase *PassphraseParams) (*KeyDescription, error) {
	if passphrase != nil {
		if err := passphrase.Check(); err != nil {
			return nil, err
		}
	}
	iv, err := newIV(rand)
	if err != nil {
		return nil, fmt.Errorf("ssss: key check iv: %w", err)
	}
	mac := keyCheckMAC(key, iv)
	return &KeyDescription{
		Name:       name,
		Algorithm:  Algorithm,
		Passphrase: passphrase,
		IV:         keys.EncodeBase64(iv[:]),
		MAC:        keys.EncodeBase64(mac[:]),
	}, nil
}

// keyCheckMAC is the MAC of 32 zero bytes encrypted under the keys derived
// with the empty info.
func keyCheckMAC(key *Key, iv [16]byte) [sha256.Size]byte {
	var zeros [32]byte
	ek := deriveKeys(key, "")
	defer ek.wipe()
	ct := ek.ctr(iv, zeros[:])
	return ek.mac(ct)
}

// UnlockedKey is a [Key] that passed its description's key check. It is the
// only type that encrypts and decrypts secrets.
type UnlockedKey struct {
	key *Key
}

// Unlock checks key against the description's key check in constant time.
// It refuses a description without a key check ([ErrMissingKeyCheck]) and a
// key that fails it ([ErrWrongKey]). The returned value holds its own copy
// of the key.
func Unlock(d *KeyDescription, key *Key) (*UnlockedKey, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if !d.HasKeyCheck() {
		return nil, ErrMissingKeyCheck
	}
	iv, err := decodeIV(d.IV)
	if err != nil {
		return nil, err
	}
	want, err := decodeMAC(d.MAC)
	if err != nil {
		return nil, err
	}
	got := keyCheckMAC(key, iv)
	if !hmac.Equal(got[:], want) {
		return nil, ErrWrongKey
	}
	c := new(Key)
	c.b = key.b
	return &UnlockedKey{key: c}, nil
}

// UnlockWithPassphrase derives the key from passphrase with the
// description's parameters and unlocks it.
func UnlockWithPassphrase(d *KeyDescription, passphrase string) (*UnlockedKey, error) {
	if d.Passphrase == nil {
		return nil, ErrNoPassphrase
	}
	k, err := DeriveKeyFromPassphrase(passphrase, d.Passphrase)
	if err != nil {
		return nil, err
	}
	defer k.Wipe()
	return Unlock(d, k)
}

// Key returns a copy of the unlocked key.
func (u *UnlockedKey) Key() *Key { c := new(Key); c.b = u.key.b; return c }

// Wipe clears the key.
func (u *UnlockedKey) Wipe() { u.key.Wipe() }

// String is redacted.
func (u *UnlockedKey) String() string { return "ssss.UnlockedKey(REDACTED)" }

// GoString is redacted.
func (u *UnlockedKey) GoString() string { return u.String() }

// Format prints the redacted form for every verb.
func (u *UnlockedKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, u.String()) }

// EncryptedData is one key's entry in a secret's "encrypted" map
// (AesHmacSha2EncryptedData): base64 strings, padded or not on input.
type EncryptedData struct {
	IV         string `json:"iv"`
	Ciphertext string `json:"ciphertext"`
	MAC        string `json:"mac"`
}

// Encrypt encrypts secret (the secret's text, e.g. the base64 of a key) for
// the account-data type name: AES-256-CTR under keys derived with name as
// HKDF info, a random IV with bit 63 cleared, and HMAC-SHA-256 over the
// ciphertext. It reads 16 bytes from rand.
func (u *UnlockedKey) Encrypt(rand io.Reader, name string, secret []byte) (*EncryptedData, error) {
	if len(secret) > MaxSecretSize {
		return nil, fmt.Errorf("ssss: secret of %d bytes: %w", len(secret), ErrMalformed)
	}
	iv, err := newIV(rand)
	if err != nil {
		return nil, fmt.Errorf("ssss: encrypt: %w", err)
	}
	ek := deriveKeys(u.key, name)
	defer ek.wipe()
	ct := ek.ctr(iv, secret)
	mac := ek.mac(ct)
	return &EncryptedData{
		IV:         keys.EncodeBase64(iv[:]),
		Ciphertext: keys.EncodeBase64(ct),
		MAC:        keys.EncodeBase64(mac[:]),
	}, nil
}

// Decrypt checks the MAC of e in constant time and only then decrypts it.
// name must be the account-data type the secret was read from. Read the
// package documentation on what the MAC does not cover: validate the
// result before use.
func (u *UnlockedKey) Decrypt(name string, e *EncryptedData) ([]byte, error) {
	iv, err := decodeIV(e.IV)
	if err != nil {
		return nil, err
	}
	mac, err := decodeMAC(e.MAC)
	if err != nil {
		return nil, err
	}
	if len(e.Ciphertext) > base64.StdEncoding.EncodedLen(MaxSecretSize) {
		return nil, fmt.Errorf("ssss: ciphertext too long: %w", ErrMalformed)
	}
	ct, err := keys.DecodeBase64Lenient(e.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("ssss: ciphertext: %w", ErrMalformed)
	}
	ek := deriveKeys(u.key, name)
	defer ek.wipe()
	want := ek.mac(ct)
	if !hmac.Equal(want[:], mac) {
		return nil, ErrBadMAC
	}
	return ek.ctr(iv, ct), nil
}

// DecodeKeySecret decodes a secret that holds a 32-byte key as base64
// (padded or not), the form used for m.cross_signing.* and
// m.megolm_backup.v1. The caller must still check the key against the
// trusted public key before using it.
func DecodeKeySecret(plaintext []byte) ([KeySize]byte, error) {
	var out [KeySize]byte
	if len(plaintext) > 64 {
		return out, fmt.Errorf("ssss: key secret: %w", ErrMalformed)
	}
	b, err := keys.DecodeBase64Lenient(string(plaintext))
	if err != nil || len(b) != KeySize {
		clear(b)
		return out, fmt.Errorf("ssss: key secret: %w", ErrMalformed)
	}
	copy(out[:], b)
	clear(b)
	return out, nil
}

// SecretContent is the account data of a stored secret.
type SecretContent struct {
	Encrypted map[string]EncryptedData `json:"encrypted"`
}

// ParseSecretContent parses a secret's account data within the size bounds
// of this package.
func ParseSecretContent(b []byte) (*SecretContent, error) {
	if len(b) > MaxContentSize {
		return nil, fmt.Errorf("ssss: secret of %d bytes: %w", len(b), ErrMalformed)
	}
	var c SecretContent
	if err := json.Unmarshal(b, &c); err != nil || c.Encrypted == nil {
		return nil, fmt.Errorf("ssss: secret: %w", ErrMalformed)
	}
	if len(c.Encrypted) > MaxKeysPerSecret {
		return nil, fmt.Errorf("ssss: secret encrypted for %d keys: %w", len(c.Encrypted), ErrMalformed)
	}
	return &c, nil
}

// GenerateKeyID returns a random 32-character alphanumeric key ID, the form
// matrix-rust-sdk uses.
func GenerateKeyID(rand io.Reader) (string, error) {
	id, err := randomAlphanumeric(rand, 32)
	if err != nil {
		return "", fmt.Errorf("ssss: key id: %w", err)
	}
	return id, nil
}

// encKeys are the AES and HMAC keys derived for one secret name.
type encKeys struct {
	aesKey, macKey [32]byte
}

// deriveKeys is HKDF-SHA-256 with a salt of 32 zero bytes and the secret
// name as info, 64 bytes: AES key then MAC key.
func deriveKeys(k *Key, name string) encKeys {
	var salt [32]byte
	out, err := hkdf.Key(sha256.New, k.b[:], salt[:], name, 64)
	if err != nil {
		panic("ssss: internal error: " + err.Error()) // only for lengths > 255*32
	}
	var ek encKeys
	copy(ek.aesKey[:], out[:32])
	copy(ek.macKey[:], out[32:])
	clear(out)
	return ek
}

func (ek *encKeys) wipe() { clear(ek.aesKey[:]); clear(ek.macKey[:]) }

func (ek *encKeys) ctr(iv [16]byte, in []byte) []byte {
	block, _ := aes.NewCipher(ek.aesKey[:]) // a 32-byte key cannot fail
	out := make([]byte, len(in))
	gocipher.NewCTR(block, iv[:]).XORKeyStream(out, in)
	return out
}

func (ek *encKeys) mac(ct []byte) [sha256.Size]byte {
	h := hmac.New(sha256.New, ek.macKey[:])
	h.Write(ct)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// newIV reads 16 random bytes and clears bit 63 (the top bit of byte 8), so
// that AES-CTR implementations with a 64-bit counter agree with 128-bit ones.
func newIV(rand io.Reader) ([16]byte, error) {
	var iv [16]byte
	if _, err := io.ReadFull(rand, iv[:]); err != nil {
		return iv, err
	}
	iv[8] &= 0x7f
	return iv, nil
}

func decodeIV(s string) ([16]byte, error) {
	var iv [16]byte
	if len(s) > 24 {
		return iv, fmt.Errorf("ssss: iv: %w", ErrMalformed)
	}
	b, err := keys.DecodeBase64Lenient(s)
	if err != nil || len(b) != len(iv) {
		return iv, fmt.Errorf("ssss: iv: %w", ErrMalformed)
	}
	copy(iv[:], b)
	return iv, nil
}

func decodeMAC(s string) ([]byte, error) {
	if len(s) > 44 {
		return nil, fmt.Errorf("ssss: mac: %w", ErrMalformed)
	}
	b, err := keys.DecodeBase64Lenient(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("ssss: mac: %w", ErrMalformed)
	}
	return b, nil
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomAlphanumeric draws n characters uniformly from [A-Za-z0-9] by
// rejection sampling (248 = 4*62 is the largest multiple of 62 below 256).
func randomAlphanumeric(rand io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	var buf [64]byte
	for tries := 0; len(out) < n; tries++ {
		if tries == 16 { // about 3% of bytes are rejected: a source this biased is broken
			return "", errors.New("ssss: random source rejected")
		}
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, alnum[b%62])
			}
		}
	}
	return string(out), nil
}
