package keys

import (
	"crypto/ecdh"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// Curve25519Size is the size in bytes of Curve25519 public and secret keys
// and of their shared secrets.
const Curve25519Size = 32

// Curve25519PublicKey is an X25519 public key. The zero value is not a
// valid key; obtain one from [ParseCurve25519PublicKey],
// [NewCurve25519PublicKey] or [Curve25519SecretKey.PublicKey].
type Curve25519PublicKey struct {
	b [Curve25519Size]byte
}

// ParseCurve25519PublicKey parses the unpadded base64 form used in Matrix JSON.
func ParseCurve25519PublicKey(s string) (Curve25519PublicKey, error) {
	var k Curve25519PublicKey
	if err := decodeFixed(k.b[:], s); err != nil {
		return Curve25519PublicKey{}, fmt.Errorf("keys: parse curve25519 public key: %w", err)
	}
	return k, nil
}

// NewCurve25519PublicKey copies a raw 32-byte public key.
func NewCurve25519PublicKey(b []byte) (Curve25519PublicKey, error) {
	var k Curve25519PublicKey
	if len(b) != Curve25519Size {
		return k, fmt.Errorf("keys: curve25519 public key of %d bytes: %w", len(b), ErrInvalidKey)
	}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns a copy of the raw 32 bytes.
func (k Curve25519PublicKey) Bytes() []byte { b := k.b; return b[:] }

// Array returns the raw 32 bytes as an array.
func (k Curve25519PublicKey) Array() [Curve25519Size]byte { return k.b }

// IsZero reports whether k is the zero value (not a parsed key).
func (k Curve25519PublicKey) IsZero() bool { return k == Curve25519PublicKey{} }

// String returns the unpadded base64 form.
func (k Curve25519PublicKey) String() string { return EncodeBase64(k.b[:]) }

// MarshalText implements encoding.TextMarshaler (unpadded base64).
func (k Curve25519PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (unpadded base64).
func (k *Curve25519PublicKey) UnmarshalText(t []byte) error {
	p, err := ParseCurve25519PublicKey(string(t))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Curve25519SecretKey is an X25519 private key together with its public key,
// derived once. Use it through a pointer; copy it only with care, since a copy
// is a second place the secret lives.
type Curve25519SecretKey struct {
	_   noCompare
	b   [Curve25519Size]byte
	pub Curve25519PublicKey
	sk  *ecdh.PrivateKey
}

type noCompare [0]func()

// GenerateCurve25519SecretKey reads exactly 32 bytes from rand and uses them
// as the private key (X25519 clamps at use), as libolm and vodozemac do.
func GenerateCurve25519SecretKey(rand io.Reader) (*Curve25519SecretKey, error) {
	var b [Curve25519Size]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("keys: generate curve25519 key: %w", err)
	}
	k, err := NewCurve25519SecretKey(b[:])
	clear(b[:])
	return k, err
}

// NewCurve25519SecretKey copies a raw 32-byte private key.
func NewCurve25519SecretKey(b []byte) (*Curve25519SecretKey, error) {
	if len(b) != Curve25519Size {
		return nil, fmt.Errorf("keys: curve25519 secret key of %d bytes: %w", len(b), ErrInvalidKey)
	}
	sk, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("keys: curve25519 secret key: %w", ErrInvalidKey)
	}
	k := &Curve25519SecretKey{sk: sk}
	copy(k.b[:], b)
	copy(k.pub.b[:], sk.PublicKey().Bytes())
	return k, nil
}

// PublicKey returns the matching public key (computed once, at construction).
func (k *Curve25519SecretKey) PublicKey() Curve25519PublicKey { return k.pub }

// SharedSecret performs X25519 with a peer's public key. It returns
// [ErrNonContributory] when the result is all zeros (a low-order peer key).
func (k *Curve25519SecretKey) SharedSecret(pub Curve25519PublicKey) ([Curve25519Size]byte, error) {
	var out [Curve25519Size]byte
	pk, err := ecdh.X25519().NewPublicKey(pub.b[:])
	if err != nil {
		return out, fmt.Errorf("keys: x25519: %w", ErrInvalidKey)
	}
	s, err := k.sk.ECDH(pk)
	if err != nil {
		// crypto/ecdh refuses an all-zero result, the only way ECDH on
		// X25519 can fail with a well-formed key.
		return out, ErrNonContributory
	}
	copy(out[:], s)
	clear(s)
	var zero [Curve25519Size]byte
	if subtle.ConstantTimeCompare(out[:], zero[:]) == 1 {
		return out, ErrNonContributory
	}
	return out, nil
}

// Bytes returns a copy of the raw private key, for persistence only.
func (k *Curve25519SecretKey) Bytes() []byte { b := k.b; return b[:] }

// Equal reports whether k and o hold the same private key, in constant time.
func (k *Curve25519SecretKey) Equal(o *Curve25519SecretKey) bool {
	return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// Wipe clears the private key bytes this value owns. The key must not be used
// afterwards.
func (k *Curve25519SecretKey) Wipe() {
	clear(k.b[:])
	k.sk = nil
}

// String returns a redacted description that names only the public key.
func (k Curve25519SecretKey) String() string {
	return "Curve25519SecretKey(REDACTED, public " + k.pub.String() + ")"
}

// GoString is redacted like String.
func (k Curve25519SecretKey) GoString() string { return k.String() }

// Format makes every fmt verb print the redacted form.
func (k Curve25519SecretKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue keeps the secret out of structured logs.
func (k Curve25519SecretKey) LogValue() slog.Value { return slog.StringValue(k.String()) }
