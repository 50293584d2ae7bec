package sas

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"myelin/keys"
)

// QRMode is the verification mode byte of a QR code.
type QRMode byte

const (
	// QRVerifyingAnotherUser: key1 is the displaying user's master key,
	// key2 what they believe the other user's master key is.
	QRVerifyingAnotherUser QRMode = 0x00
	// QRSelfVerifyingTrusted: self-verification by a device that trusts the
	// master key; key1 is the master key, key2 what it believes the other
	// device's Ed25519 key is.
	QRSelfVerifyingTrusted QRMode = 0x01
	// QRSelfVerifyingUntrusted: self-verification by a device that does not
	// yet trust the master key; key1 is its own device key, key2 what it
	// believes the master key is.
	QRSelfVerifyingUntrusted QRMode = 0x02
)

// QRVersion is the only payload version.
const QRVersion = 0x02

// MinQRSecretSize is the shortest shared secret accepted (matrix-rust-sdk
// rejects fewer than 8 bytes); NewQRSecret makes 16.
const MinQRSecretSize = 8

// MaxQRPayloadSize is the most a QR code can hold in byte mode (version 40,
// error correction L).
const MaxQRPayloadSize = 2953

const qrHeader = "MATRIX"

var (
	// ErrInvalidQRCode reports a payload that does not parse or encode.
	ErrInvalidQRCode = errors.New("sas: invalid QR code payload")
	// ErrQRSecretMismatch reports a reciprocated secret that is not ours.
	ErrQRSecretMismatch = errors.New("sas: QR code secret mismatch")
)

// QRError gives the reason a payload was refused.
type QRError struct{ Reason string }

// Error implements error.
func (e *QRError) Error() string { return "sas: invalid QR code payload: " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidQRCode) hold.
func (e *QRError) Unwrap() error { return ErrInvalidQRCode }

// QRCode is the content of a verification QR code.
type QRCode struct {
	Mode   QRMode
	FlowID string
	Key1   keys.Ed25519PublicKey
	Key2   keys.Ed25519PublicKey
	// Secret is the shared secret the scanner returns in m.reciprocate.v1.
	Secret []byte
}

// NewQRSecret reads a 16-byte shared secret from rand.
func NewQRSecret(rand io.Reader) ([]byte, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("sas: QR secret: %w", err)
	}
	return b, nil
}

func (q *QRCode) check() error {
	switch {
	case q.Mode > QRSelfVerifyingUntrusted:
		return &QRError{"unknown mode"}
	case q.FlowID == "" || len(q.FlowID) > 0xffff:
		return &QRError{"flow ID length"}
	case !utf8.ValidString(q.FlowID):
		return &QRError{"flow ID not UTF-8"}
	case q.Key1.IsZero() || q.Key2.IsZero():
		return &QRError{"missing key"}
	case len(q.Secret) < MinQRSecretSize:
		return &QRError{"shared secret too short"}
	}
	return nil
}

// Encode returns the payload to put in a byte-mode QR segment.
func (q *QRCode) Encode() ([]byte, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(qrHeader)+4+len(q.FlowID)+64+len(q.Secret))
	b = append(b, qrHeader...)
	b = append(b, QRVersion, byte(q.Mode))
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.FlowID)))
	b = append(b, q.FlowID...)
	b = append(b, q.Key1.Bytes()...)
	b = append(b, q.Key2.Bytes()...)
	b = append(b, q.Secret...)
	if len(b) > MaxQRPayloadSize {
		return nil, &QRError{"payload too large for a QR code"}
	}
	return b, nil
}

// ParseQRCode parses a scanned payload strictly: header, version, mode,
// length-prefixed UTF-8 flow ID within the payload, two 32-byte keys, and a
// shared secret of at least [MinQRSecretSize] bytes.
func ParseQRCode(b []byte) (*QRCode, error) {
	if len(b) > MaxQRPayloadSize {
		return nil, &QRError{"payload too large"}
	}
	if len(b) < len(qrHeader)+4 || string(b[:len(qrHeader)]) != qrHeader {
		return nil, &QRError{"header"}
	}
	b = b[len(qrHeader):]
	if b[0] != QRVersion {
		return nil, &QRError{"version"}
	}
	q := &QRCode{Mode: QRMode(b[1])}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	b = b[4:]
	if len(b) < n+64 {
		return nil, &QRError{"truncated"}
	}
	q.FlowID = string(b[:n])
	b = b[n:]
	var err error
	if q.Key1, err = keys.NewEd25519PublicKey(b[:32]); err != nil {
		return nil, &QRError{"key1"}
	}
	if q.Key2, err = keys.NewEd25519PublicKey(b[32:64]); err != nil {
		return nil, &QRError{"key2"}
	}
	q.Secret = append([]byte(nil), b[64:]...)
	if err := q.check(); err != nil {
		return nil, err
	}
	return q, nil
}

// VerifySecret checks, in constant time, the secret received in an
// m.key.verification.start with method m.reciprocate.v1 (base64, padding
// tolerated) against the one we displayed.
func (q *QRCode) VerifySecret(received string) error {
	got, err := keys.DecodeBase64Lenient(received)
	if err != nil || subtle.ConstantTimeCompare(got, q.Secret) != 1 {
		return ErrQRSecretMismatch
	}
	return nil
}
