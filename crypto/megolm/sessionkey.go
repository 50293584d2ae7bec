package megolm

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"

	"myelin/keys"
)

const (
	// SessionKeyVersion is the version byte of the signed session-sharing
	// format carried in m.room_key.
	SessionKeyVersion = 0x02
	// ExportedSessionKeyVersion is the version byte of the unsigned export
	// format carried in m.forwarded_room_key, key backups and key-export
	// files.
	ExportedSessionKeyVersion = 0x01

	// ExportedSessionKeySize is the raw length of an [ExportedSessionKey]:
	// version(1) | index(4, big-endian) | ratchet(128) | signing key(32).
	ExportedSessionKeySize = 1 + 4 + RatchetSize + keys.Ed25519PublicKeySize // 165
	// SessionKeySize is the raw length of a [SessionKey]: the export layout
	// with version 0x02 followed by an Ed25519 signature over those 165 bytes.
	SessionKeySize = ExportedSessionKeySize + keys.Ed25519SignatureSize // 229
)

// SessionKey is the signed session-sharing key (format 0x02) that a sender
// distributes in m.room_key over Olm. Obtain one from
// [OutboundSession.SessionKey] or [ParseSessionKey] (which verifies the
// signature) and turn it into an [InboundSession] with [NewInboundSession].
//
// It contains the ratchet, a secret: fmt verbs print a redacted form.
// [SessionKey.String] and [SessionKey.Marshal] return the secret encoding.
type SessionKey struct {
	k         exportedKey
	signature keys.Ed25519Signature
	valid     bool // parsed and signature-checked, or made by an outbound session
}

// ExportedSessionKey is the unsigned export format (0x01) used by
// m.forwarded_room_key, server-side key backup and key-export files. Its
// authenticity rests entirely on the channel it came from: an
// [InboundSession] imported from it reports SigningKeyVerified() == false.
//
// It contains the ratchet, a secret: fmt verbs print a redacted form.
type ExportedSessionKey struct {
	k     exportedKey
	valid bool
}

type exportedKey struct {
	ratchet    ratchet
	signingKey keys.Ed25519PublicKey
}

func (k *exportedKey) appendTo(b []byte, version byte) []byte {
	b = append(b, version)
	b = binary.BigEndian.AppendUint32(b, k.ratchet.counter)
	b = append(b, k.ratchet.data[:]...)
	pub := k.signingKey.Array()
	return append(b, pub[:]...)
}

func (k *exportedKey) decode(b []byte, version byte) error {
	if b[0] != version {
		return fmt.Errorf("%w: session key version %d (want %d)", ErrBadVersion, b[0], version)
	}
	k.ratchet.counter = binary.BigEndian.Uint32(b[1:5])
	copy(k.ratchet.data[:], b[5:5+RatchetSize])
	pub, err := keys.NewEd25519PublicKey(b[5+RatchetSize : ExportedSessionKeySize])
	if err != nil {
		return fmt.Errorf("%w: bad signing key", ErrInvalidSessionKey)
	}
	k.signingKey = pub
	return nil
}

// decodeKeyBase64 decodes standard base64, padded or not (the spec says
// decoders SHOULD accept both; libolm accepts only unpadded), into exactly n
// bytes.
func decodeKeyBase64(s string, n int) ([]byte, error) {
	// A bound before decoding: the padded encoding of n bytes.
	if len(s) > (n+2)/3*4 {
		return nil, fmt.Errorf("%w: session key of %d base64 characters", ErrInvalidSessionKey, len(s))
	}
	b, err := keys.DecodeBase64Lenient(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrInvalidSessionKey)
	}
	if len(b) != n {
		clear(b)
		return nil, fmt.Errorf("%w: session key of %d bytes (want %d)", ErrInvalidSessionKey, len(b), n)
	}
	return b, nil
}

// ParseSessionKey decodes a base64 session-sharing key (padded or unpadded)
// and verifies its signature. It fails with [ErrBadSignature] if the
// signature does not verify under the embedded signing key.
func ParseSessionKey(s string) (SessionKey, error) {
	b, err := decodeKeyBase64(s, SessionKeySize)
	if err != nil {
		return SessionKey{}, err
	}
	defer clear(b)
	return NewSessionKey(b)
}

// NewSessionKey decodes a raw 229-byte session-sharing key and verifies its
// signature.
func NewSessionKey(b []byte) (SessionKey, error) {
	if len(b) != SessionKeySize {
		return SessionKey{}, fmt.Errorf("%w: session key of %d bytes (want %d)", ErrInvalidSessionKey, len(b), SessionKeySize)
	}
	var k SessionKey
	if err := k.k.decode(b, SessionKeyVersion); err != nil {
		return SessionKey{}, err
	}
	sig, err := keys.NewEd25519Signature(b[ExportedSessionKeySize:])
	if err != nil {
		return SessionKey{}, fmt.Errorf("%w: bad signature length", ErrInvalidSessionKey)
	}
	if err := k.k.signingKey.Verify(b[:ExportedSessionKeySize], sig); err != nil {
		k.k.ratchet.wipe()
		return SessionKey{}, fmt.Errorf("%w: session key: %w", ErrBadSignature, err)
	}
	k.signature = sig
	k.valid = true
	return k, nil
}

// Marshal returns the raw 229 bytes. They are secret.
func (k SessionKey) Marshal() []byte {
	if !k.valid {
		return nil
	}
	b := k.k.appendTo(make([]byte, 0, SessionKeySize), SessionKeyVersion)
	sig := k.signature.Array()
	return append(b, sig[:]...)
}

// String returns the unpadded base64 encoding sent in m.room_key. It is
// secret; fmt verbs (%v, %s, ...) print a redacted form instead.
func (k SessionKey) String() string {
	b := k.Marshal()
	defer clear(b)
	return keys.EncodeBase64(b)
}

// Index returns the message index of the ratchet the key carries.
func (k SessionKey) Index() uint32 { return k.k.ratchet.counter }

// SigningKey returns the session's Ed25519 public key.
func (k SessionKey) SigningKey() keys.Ed25519PublicKey { return k.k.signingKey }

// ID returns the session ID: the unpadded base64 of the signing key.
func (k SessionKey) ID() string { return k.k.signingKey.String() }

// GoString is redacted.
func (k SessionKey) GoString() string {
	return fmt.Sprintf("megolm.SessionKey(REDACTED, session %s, index %d)", k.ID(), k.Index())
}

// LogValue keeps secrets out of structured logs.
func (k SessionKey) LogValue() slog.Value { return slog.StringValue(k.GoString()) }

// Format makes every fmt verb print the redacted form.
func (k SessionKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.GoString()) }

// ParseExportedSessionKey decodes a base64 exported session key (padded or
// unpadded). There is no signature to check.
func ParseExportedSessionKey(s string) (ExportedSessionKey, error) {
	b, err := decodeKeyBase64(s, ExportedSessionKeySize)
	if err != nil {
		return ExportedSessionKey{}, err
	}
	defer clear(b)
	return NewExportedSessionKey(b)
}

// NewExportedSessionKey decodes a raw 165-byte exported session key. Input
// of any other length is refused (vodozemac ignores trailing bytes; we keep
// one byte form per key).
func NewExportedSessionKey(b []byte) (ExportedSessionKey, error) {
	if len(b) != ExportedSessionKeySize {
		return ExportedSessionKey{}, fmt.Errorf("%w: exported session key of %d bytes (want %d)", ErrInvalidSessionKey, len(b), ExportedSessionKeySize)
	}
	var k ExportedSessionKey
	if err := k.k.decode(b, ExportedSessionKeyVersion); err != nil {
		return ExportedSessionKey{}, err
	}
	k.valid = true
	return k, nil
}

// Marshal returns the raw 165 bytes. They are secret.
func (k ExportedSessionKey) Marshal() []byte {
	if !k.valid {
		return nil
	}
	return k.k.appendTo(make([]byte, 0, ExportedSessionKeySize), ExportedSessionKeyVersion)
}

// String returns the unpadded base64 encoding used in forwarded keys and
// backups. It is secret; fmt verbs print a redacted form instead.
func (k ExportedSessionKey) String() string {
	b := k.Marshal()
	defer clear(b)
	return keys.EncodeBase64(b)
}

// Index returns the message index of the ratchet the key carries.
func (k ExportedSessionKey) Index() uint32 { return k.k.ratchet.counter }

// SigningKey returns the session's Ed25519 public key (unverified).
func (k ExportedSessionKey) SigningKey() keys.Ed25519PublicKey { return k.k.signingKey }

// ID returns the session ID: the unpadded base64 of the signing key.
func (k ExportedSessionKey) ID() string { return k.k.signingKey.String() }

// GoString is redacted.
func (k ExportedSessionKey) GoString() string {
	return fmt.Sprintf("megolm.ExportedSessionKey(REDACTED, session %s, index %d)", k.ID(), k.Index())
}

// LogValue keeps secrets out of structured logs.
func (k ExportedSessionKey) LogValue() slog.Value { return slog.StringValue(k.GoString()) }

// Format makes every fmt verb print the redacted form.
func (k ExportedSessionKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.GoString()) }
