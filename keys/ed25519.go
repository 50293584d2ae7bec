package keys

import (
	"crypto/ed25519"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// Sizes of Ed25519 values.
const (
	Ed25519PublicKeySize = ed25519.PublicKeySize // 32
	Ed25519SeedSize      = ed25519.SeedSize      // 32
	Ed25519SignatureSize = ed25519.SignatureSize // 64
)

// Ed25519PublicKey is an Ed25519 public key: a device fingerprint key, a
// cross-signing key or a Megolm session's signing key.
type Ed25519PublicKey struct {
	b [Ed25519PublicKeySize]byte
}

// ParseEd25519PublicKey parses the unpadded base64 form used in Matrix JSON.
func ParseEd25519PublicKey(s string) (Ed25519PublicKey, error) {
	var k Ed25519PublicKey
	if err := decodeFixed(k.b[:], s); err != nil {
		return Ed25519PublicKey{}, fmt.Errorf("keys: parse ed25519 public key: %w", err)
	}
	return k, nil
}

// NewEd25519PublicKey copies a raw 32-byte public key.
func NewEd25519PublicKey(b []byte) (Ed25519PublicKey, error) {
	var k Ed25519PublicKey
	if len(b) != Ed25519PublicKeySize {
		return k, fmt.Errorf("keys: ed25519 public key of %d bytes: %w", len(b), ErrInvalidKey)
	}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns a copy of the raw 32 bytes.
func (k Ed25519PublicKey) Bytes() []byte { b := k.b; return b[:] }

// Array returns the raw 32 bytes as an array.
func (k Ed25519PublicKey) Array() [Ed25519PublicKeySize]byte { return k.b }

// IsZero reports whether k is the zero value (not a parsed key).
func (k Ed25519PublicKey) IsZero() bool { return k == Ed25519PublicKey{} }

// String returns the unpadded base64 form.
func (k Ed25519PublicKey) String() string { return EncodeBase64(k.b[:]) }

// MarshalText implements encoding.TextMarshaler (unpadded base64).
func (k Ed25519PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (unpadded base64).
func (k *Ed25519PublicKey) UnmarshalText(t []byte) error {
	p, err := ParseEd25519PublicKey(string(t))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Verify checks sig over msg. It refuses small-order public keys (which Go's
// ed25519.Verify accepts) so that our notion of a valid signature is as strict
// as vodozemac's verify_strict; the standard library already refuses
// non-canonical S values.
func (k Ed25519PublicKey) Verify(msg []byte, sig Ed25519Signature) error {
	if isSmallOrder(k.b) {
		return ErrWeakPublicKey
	}
	if !ed25519.Verify(k.b[:], msg, sig.b[:]) {
		return ErrBadSignature
	}
	return nil
}

// smallOrder lists the encodings of the eight points of small order on
// edwards25519, canonical and non-canonical (y >= p), with either sign bit.
// Source: the list used by libsodium's crypto_sign_ed25519 verification
// (ge25519_has_small_order), reproduced from the curve's definition.
var smallOrder = [...][32]byte{
	// 0 (order 4): y = 0
	{0},
	// 1 (order 1): y = 1
	{1},
	// order 8: y = 2707385501144840649318225287225658788936804267575313519463743609750303402022
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	// order 8: y = 55188659117513257062467267217118295137698188065244968500265048394206261417927
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	// p-1 (order 2)
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	// p (non-canonical 0)
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	// p+1 (non-canonical 1)
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// isSmallOrder reports whether the encoding is one of the small-order points,
// ignoring the sign bit (both signs of each x give small-order points or
// invalid encodings). Public data: a plain comparison is fine.
func isSmallOrder(b [32]byte) bool {
	b[31] &= 0x7f
	for _, p := range smallOrder {
		q := p
		q[31] &= 0x7f
		if b == q {
			return true
		}
	}
	return false
}

// Ed25519Signature is a 64-byte Ed25519 signature.
type Ed25519Signature struct {
	b [Ed25519SignatureSize]byte
}

// ParseEd25519Signature parses the unpadded base64 form used in Matrix JSON.
func ParseEd25519Signature(s string) (Ed25519Signature, error) {
	var sig Ed25519Signature
	if err := decodeFixed(sig.b[:], s); err != nil {
		return Ed25519Signature{}, fmt.Errorf("keys: parse ed25519 signature: %w", err)
	}
	return sig, nil
}

// NewEd25519Signature copies a raw 64-byte signature.
func NewEd25519Signature(b []byte) (Ed25519Signature, error) {
	var sig Ed25519Signature
	if len(b) != Ed25519SignatureSize {
		return sig, fmt.Errorf("keys: ed25519 signature of %d bytes: %w", len(b), ErrInvalidKey)
	}
	copy(sig.b[:], b)
	return sig, nil
}

// Bytes returns a copy of the raw 64 bytes.
func (s Ed25519Signature) Bytes() []byte { b := s.b; return b[:] }

// Array returns the raw 64 bytes as an array.
func (s Ed25519Signature) Array() [Ed25519SignatureSize]byte { return s.b }

// String returns the unpadded base64 form.
func (s Ed25519Signature) String() string { return EncodeBase64(s.b[:]) }

// MarshalText implements encoding.TextMarshaler (unpadded base64).
func (s Ed25519Signature) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (unpadded base64).
func (s *Ed25519Signature) UnmarshalText(t []byte) error {
	p, err := ParseEd25519Signature(string(t))
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// Ed25519SecretKey is an Ed25519 signing key. It keeps the expanded private
// key so that signing does not re-derive the public key.
type Ed25519SecretKey struct {
	_    noCompare
	priv ed25519.PrivateKey // seed || public, as crypto/ed25519 wants it
	pub  Ed25519PublicKey
}

// GenerateEd25519SecretKey reads exactly 32 bytes (the seed) from rand.
func GenerateEd25519SecretKey(rand io.Reader) (*Ed25519SecretKey, error) {
	var seed [Ed25519SeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("keys: generate ed25519 key: %w", err)
	}
	k, err := NewEd25519SecretKeyFromSeed(seed[:])
	clear(seed[:])
	return k, err
}

// NewEd25519SecretKeyFromSeed builds a signing key from a 32-byte seed.
func NewEd25519SecretKeyFromSeed(seed []byte) (*Ed25519SecretKey, error) {
	if len(seed) != Ed25519SeedSize {
		return nil, fmt.Errorf("keys: ed25519 seed of %d bytes: %w", len(seed), ErrInvalidKey)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	k := &Ed25519SecretKey{priv: priv}
	copy(k.pub.b[:], priv[Ed25519SeedSize:])
	return k, nil
}

// PublicKey returns the matching public key.
func (k *Ed25519SecretKey) PublicKey() Ed25519PublicKey { return k.pub }

// Sign signs msg.
func (k *Ed25519SecretKey) Sign(msg []byte) Ed25519Signature {
	var s Ed25519Signature
	copy(s.b[:], ed25519.Sign(k.priv, msg))
	return s
}

// Seed returns a copy of the 32-byte seed, for persistence only.
func (k *Ed25519SecretKey) Seed() []byte { return append([]byte(nil), k.priv[:Ed25519SeedSize]...) }

// Equal reports whether k and o are the same key, in constant time.
func (k *Ed25519SecretKey) Equal(o *Ed25519SecretKey) bool {
	return subtle.ConstantTimeCompare(k.priv, o.priv) == 1
}

// Wipe clears the private key bytes this value owns. The key must not be used
// afterwards.
func (k *Ed25519SecretKey) Wipe() { clear(k.priv) }

// String returns a redacted description that names only the public key.
func (k Ed25519SecretKey) String() string {
	return "Ed25519SecretKey(REDACTED, public " + k.pub.String() + ")"
}

// GoString is redacted like String.
func (k Ed25519SecretKey) GoString() string { return k.String() }

// Format makes every fmt verb print the redacted form.
func (k Ed25519SecretKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue keeps the secret out of structured logs.
func (k Ed25519SecretKey) LogValue() slog.Value { return slog.StringValue(k.String()) }
