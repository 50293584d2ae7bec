package keys

import (
	"encoding/base64"
	"strings"
)

// EncodeBase64 returns the unpadded standard base64 encoding of b, the form
// Matrix uses for keys, signatures and ciphertexts in JSON.
func EncodeBase64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// DecodeBase64 decodes unpadded standard base64 and rejects padding and
// non-canonical trailing bits, so that every accepted string has exactly one
// byte form.
func DecodeBase64(s string) ([]byte, error) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, ErrInvalidBase64
	}
	return b, nil
}

// DecodeBase64Lenient decodes standard base64 with or without padding. Use it
// only where the spec or deployed clients emit padded text (secret storage's
// iv and mac, for example); key fields use [DecodeBase64].
func DecodeBase64Lenient(s string) ([]byte, error) {
	return DecodeBase64(strings.TrimRight(s, "="))
}

// decodeFixed decodes unpadded base64 into exactly len(dst) bytes.
func decodeFixed(dst []byte, s string) error {
	if base64.RawStdEncoding.DecodedLen(len(s)) != len(dst) {
		return ErrInvalidKey
	}
	n, err := base64.RawStdEncoding.Strict().Decode(dst, []byte(s))
	if err != nil || n != len(dst) {
		return ErrInvalidKey
	}
	return nil
}
