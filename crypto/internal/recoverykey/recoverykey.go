// Package recoverykey is the text form of 32-byte keys that users write down:
// the secret-storage key and the key-backup decryption key. It is the
// "cryptographic key representation" of the spec
// (https://spec.matrix.org/v1.16/appendices/#cryptographic-key-representation):
//
//	0x8B 0x01 | key (32 bytes) | parity (XOR of the 34 preceding bytes)
//
// encoded in base58 with the Bitcoin alphabet and shown in groups of four
// characters separated by spaces.
//
// crypto/ssss and crypto/backup wrap it in their own key types.
package recoverykey

import (
	"crypto/subtle"
	"errors"
	"strings"
)

// KeySize is the size of the encoded key.
const KeySize = 32

// MaxTextLength bounds the text Decode accepts, whitespace included. A valid
// key is 48 base58 characters plus 11 spaces; the bound leaves room for other
// whitespace a user may paste, and caps the quadratic base58 decoding.
const MaxTextLength = 256

// prefix is the two-byte header of the spec's key representation.
var prefix = [2]byte{0x8B, 0x01}

const encodedLen = len(prefix) + KeySize + 1

const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var (
	// ErrInvalid reports text that is not a recovery key: wrong characters,
	// wrong length, wrong prefix or wrong parity. The error says which, but
	// never includes the text.
	ErrInvalid = errors.New("recoverykey: invalid recovery key")
)

// Error gives the reason a recovery key was refused.
type Error struct{ Reason string }

// Error implements error.
func (e *Error) Error() string { return "recoverykey: invalid recovery key: " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Error) Unwrap() error { return ErrInvalid }

// Encode returns the display form of a 32-byte key: base58 in groups of four
// characters separated by single spaces.
func Encode(key *[KeySize]byte) string {
	var raw [encodedLen]byte
	copy(raw[:], prefix[:])
	copy(raw[len(prefix):], key[:])
	var parity byte
	for _, b := range raw[:encodedLen-1] {
		parity ^= b
	}
	raw[encodedLen-1] = parity
	enc := base58Encode(raw[:])
	clear(raw[:])
	var sb strings.Builder
	sb.Grow(len(enc) + len(enc)/4)
	for i := 0; i < len(enc); i++ {
		if i > 0 && i%4 == 0 {
			sb.WriteByte(' ')
		}
		sb.WriteByte(enc[i])
	}
	clear(enc)
	return sb.String()
}

// Decode parses a recovery key. It ignores all ASCII whitespace (users copy
// keys with line breaks and odd spacing) and is strict about everything else:
// the alphabet, the decoded length, the 0x8B 0x01 prefix and the parity byte.
func Decode(s string) ([KeySize]byte, error) {
	var key [KeySize]byte
	if len(s) > MaxTextLength {
		return key, &Error{"too long"}
	}
	compact := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			compact = append(compact, c)
		}
	}
	raw, ok := base58Decode(compact)
	clear(compact)
	defer clear(raw)
	if !ok {
		return key, &Error{"not base58"}
	}
	if len(raw) != encodedLen {
		return key, &Error{"wrong length"}
	}
	if raw[0] != prefix[0] || raw[1] != prefix[1] {
		return key, &Error{"wrong prefix"}
	}
	var parity byte
	for _, b := range raw {
		parity ^= b // XOR over all bytes, parity included, is zero when it checks
	}
	if subtle.ConstantTimeByteEq(parity, 0) != 1 {
		return key, &Error{"wrong parity"}
	}
	copy(key[:], raw[len(prefix):len(prefix)+KeySize])
	return key, nil
}

// base58Encode encodes b in base58 (Bitcoin alphabet), leading zero bytes
// as leading '1's.
func base58Encode(b []byte) []byte {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) < 1.37
	digits := make([]byte, 0, len(b)*137/100+1)
	for _, c := range b[zeros:] {
		carry := int(c)
		for i := range digits {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := make([]byte, zeros+len(digits))
	for i := range zeros {
		out[i] = alphabet[0]
	}
	for i, d := range digits {
		out[len(out)-1-i] = alphabet[d]
	}
	clear(digits)
	return out
}

// base58Decode reverses base58Encode; ok is false for a character outside
// the alphabet.
func base58Decode(s []byte) ([]byte, bool) {
	zeros := 0
	for zeros < len(s) && s[zeros] == alphabet[0] {
		zeros++
	}
	// log(58)/log(256) < 0.74
	val := make([]byte, 0, len(s)*74/100+1) // little-endian base-256 digits
	for _, c := range s[zeros:] {
		d := strings.IndexByte(alphabet, c)
		if d < 0 {
			clear(val)
			return nil, false
		}
		carry := d
		for i := range val {
			carry += int(val[i]) * 58
			val[i] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			val = append(val, byte(carry))
			carry >>= 8
		}
	}
	out := make([]byte, zeros+len(val))
	for i, v := range val {
		out[len(out)-1-i] = v
	}
	clear(val)
	return out, true
}
