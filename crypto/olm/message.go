package olm

import (
	"crypto/aes"
	"crypto/sha256"
	"fmt"
	"math"

	"myelin/crypto/internal/cipher"
	"myelin/keys"
)

// MessageType is the Olm message type carried next to the body in an
// m.room.encrypted event (the "type" field of a ciphertext entry).
type MessageType int

const (
	// MessageTypePreKey marks a [PreKeyMessage] (type 0): sent until the
	// session has decrypted a message from the peer.
	MessageTypePreKey MessageType = 0
	// MessageTypeNormal marks a [NormalMessage] (type 1).
	MessageTypeNormal MessageType = 1
)

// Message is an Olm message on the wire: a *[PreKeyMessage] or a
// *[NormalMessage]. Marshal returns the raw bytes (callers base64 them for
// JSON).
type Message interface {
	Type() MessageType
	Marshal() []byte
}

var (
	_ Message = (*PreKeyMessage)(nil)
	_ Message = (*NormalMessage)(nil)
)

const (
	// ProtocolVersion is the version byte of Olm messages this package
	// reads and writes (m.olm.v1.curve25519-aes-sha2 with 8-byte MACs).
	// vodozemac's experimental version 4 is rejected.
	ProtocolVersion = 3

	// MaxPlaintextSize is the largest plaintext [Session.Encrypt] accepts:
	// 64 KiB, the Matrix limit for a whole event, so nothing legitimate is
	// refused.
	MaxPlaintextSize = 64 << 10

	// MaxMessageSize bounds the wire size of any message this package
	// parses: a pre-key message wrapping the encryption of a
	// [MaxPlaintextSize] plaintext (at most 65,552 bytes of ciphertext plus
	// 161 bytes of framing), rounded up. Larger inputs are refused before
	// any work is done.
	MaxMessageSize = MaxPlaintextSize + 256

	macSize = cipher.MACSize
	keySize = keys.Curve25519Size

	tagRatchetKey  = 0x0A // field 1, bytes
	tagChainIndex  = 0x10 // field 2, varint
	tagCiphertext  = 0x22 // field 4, bytes
	tagOneTimeKey  = 0x0A // field 1, bytes
	tagBaseKey     = 0x12 // field 2, bytes
	tagIdentityKey = 0x1A // field 3, bytes
	tagInner       = 0x22 // field 4, bytes
)

// NormalMessage is an Olm message of type 1:
//
//	0x03 | 0x0A 0x20 ratchet-key | 0x10 varint(chain index) | 0x22 varint(len) ciphertext | MAC(8)
//
// Values are immutable and always in canonical encoding.
type NormalMessage struct {
	ratchetKey keys.Curve25519PublicKey
	chainIndex uint32
	ctOff      int    // offset of the ciphertext in raw
	raw        []byte // the whole message, MAC included
}

// PreKeyMessage is an Olm message of type 0, which carries the keys the
// recipient needs to build the session next to a [NormalMessage]:
//
//	0x03 | 0x0A 0x20 one-time-key | 0x12 0x20 base-key | 0x1A 0x20 identity-key | 0x22 varint(len) message
//
// The wrapper has no MAC of its own; only the inner message is
// authenticated. Values are immutable; see [ParsePreKeyMessage] for the
// field orders accepted.
type PreKeyMessage struct {
	oneTimeKey  keys.Curve25519PublicKey
	baseKey     keys.Curve25519PublicKey
	identityKey keys.Curve25519PublicKey
	message     *NormalMessage
	raw         []byte
}

// Type returns [MessageTypeNormal].
func (m *NormalMessage) Type() MessageType { return MessageTypeNormal }

// Marshal returns a copy of the message's wire bytes.
func (m *NormalMessage) Marshal() []byte { return append([]byte(nil), m.raw...) }

// RatchetKey returns the sender's ratchet key T_i.
func (m *NormalMessage) RatchetKey() keys.Curve25519PublicKey { return m.ratchetKey }

// ChainIndex returns the index j of the message key in the sender's chain.
func (m *NormalMessage) ChainIndex() uint32 { return m.chainIndex }

// Ciphertext returns a copy of the AES-CBC ciphertext.
func (m *NormalMessage) Ciphertext() []byte {
	return append([]byte(nil), m.ciphertext()...)
}

func (m *NormalMessage) ciphertext() []byte { return m.raw[m.ctOff : len(m.raw)-macSize] }
func (m *NormalMessage) macInput() []byte   { return m.raw[:len(m.raw)-macSize] }
func (m *NormalMessage) mac() []byte        { return m.raw[len(m.raw)-macSize:] }

// Type returns [MessageTypePreKey].
func (m *PreKeyMessage) Type() MessageType { return MessageTypePreKey }

// Marshal returns a copy of the message's wire bytes.
func (m *PreKeyMessage) Marshal() []byte { return append([]byte(nil), m.raw...) }

// OneTimeKey returns the recipient's one-time (or fallback) key E_B that the
// sender claimed.
func (m *PreKeyMessage) OneTimeKey() keys.Curve25519PublicKey { return m.oneTimeKey }

// BaseKey returns the sender's base key E_A.
func (m *PreKeyMessage) BaseKey() keys.Curve25519PublicKey { return m.baseKey }

// IdentityKey returns the sender's identity key I_A. It is not
// authenticated by the message itself: compare it with the event's sender
// key (as [Account.NewInboundSession] does).
func (m *PreKeyMessage) IdentityKey() keys.Curve25519PublicKey { return m.identityKey }

// Message returns the embedded normal message.
func (m *PreKeyMessage) Message() *NormalMessage { return m.message }

// SessionID returns the ID of the session this message belongs to,
// b64(SHA-256(I_A || E_A || E_B)).
func (m *PreKeyMessage) SessionID() string {
	return sessionID(m.identityKey, m.baseKey, m.oneTimeKey)
}

func sessionID(identity, base, oneTime keys.Curve25519PublicKey) string {
	var buf [3 * keySize]byte
	a, b, c := identity.Array(), base.Array(), oneTime.Array()
	copy(buf[0:], a[:])
	copy(buf[keySize:], b[:])
	copy(buf[2*keySize:], c[:])
	sum := sha256.Sum256(buf[:])
	return keys.EncodeBase64(sum[:])
}

// ParseMessage parses b as a message of type t.
func ParseMessage(t MessageType, b []byte) (Message, error) {
	switch t {
	case MessageTypePreKey:
		return ParsePreKeyMessage(b)
	case MessageTypeNormal:
		return ParseNormalMessage(b)
	default:
		return nil, fmt.Errorf("olm: parse: message type %d: %w", int(t), ErrInvalidMessage)
	}
}

// ParseNormalMessage parses a type 1 message. It accepts only the canonical
// encoding (the one libolm and vodozemac emit): version 3, the fields in
// order ratchet key, chain index, ciphertext, each exactly once, no unknown
// fields, minimal varints, a 32-byte ratchet key, a chain index below 2^32,
// and a non-empty ciphertext of whole AES blocks. So Marshal of the result
// returns exactly b, and no two encodings decode to the same message. The
// MAC is checked later, by [Session.Decrypt].
func ParseNormalMessage(b []byte) (*NormalMessage, error) {
	m, err := parseNormal(b)
	if err != nil {
		return nil, fmt.Errorf("olm: parse message: %w", err)
	}
	return m, nil
}

func parseNormal(b []byte) (*NormalMessage, error) {
	if len(b) > MaxMessageSize {
		return nil, ErrMessageTooLarge
	}
	if len(b) < 1+macSize {
		return nil, fmt.Errorf("truncated: %w", ErrInvalidMessage)
	}
	if b[0] != ProtocolVersion {
		return nil, fmt.Errorf("version %d: %w", b[0], ErrBadVersion)
	}
	r := reader{b: b[: len(b)-macSize : len(b)-macSize], off: 1} // no reading into the MAC
	m := &NormalMessage{}
	var err error
	if m.ratchetKey, err = r.key(tagRatchetKey); err != nil {
		return nil, err
	}
	if err = r.tag(tagChainIndex); err != nil {
		return nil, err
	}
	idx, err := r.varint(math.MaxUint32)
	if err != nil {
		return nil, err
	}
	m.chainIndex = uint32(idx)
	ct, off, err := r.bytes(tagCiphertext)
	if err != nil {
		return nil, err
	}
	if !r.done() {
		return nil, fmt.Errorf("trailing data: %w", ErrInvalidMessage)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ciphertext of %d bytes: %w", len(ct), ErrInvalidMessage)
	}
	m.ctOff = off
	m.raw = append([]byte(nil), b...)
	return m, nil
}

// ParsePreKeyMessage parses a type 0 message. Its four fields (one-time
// key, base key, identity key, message) must each appear exactly once, with
// keys of 32 bytes, no unknown fields, minimal varints, and an embedded
// message that [ParseNormalMessage] accepts. Unlike the normal message, the
// fields may come in any order: libolm and vodozemac write 1, 2, 3, 4 (as
// does [Session.Encrypt]), but goolm (mautrix-go) writes 1, 3, 2, 4. Marshal
// returns the bytes as received. The wrapper is not authenticated by
// anything but the 3DH its keys feed, so the order carries no meaning.
func ParsePreKeyMessage(b []byte) (*PreKeyMessage, error) {
	m, err := parsePreKey(b)
	if err != nil {
		return nil, fmt.Errorf("olm: parse pre-key message: %w", err)
	}
	return m, nil
}

func parsePreKey(b []byte) (*PreKeyMessage, error) {
	if len(b) > MaxMessageSize {
		return nil, ErrMessageTooLarge
	}
	if len(b) < 1 {
		return nil, fmt.Errorf("truncated: %w", ErrInvalidMessage)
	}
	if b[0] != ProtocolVersion {
		return nil, fmt.Errorf("version %d: %w", b[0], ErrBadVersion)
	}
	r := reader{b: b[:len(b):len(b)], off: 1}
	m := &PreKeyMessage{}
	var seen [4]bool
	var inner []byte
	for range len(seen) {
		if r.done() {
			return nil, fmt.Errorf("missing field: %w", ErrInvalidMessage)
		}
		tag := r.b[r.off]
		var field int
		var dst *keys.Curve25519PublicKey
		switch tag {
		case tagOneTimeKey:
			field, dst = 0, &m.oneTimeKey
		case tagBaseKey:
			field, dst = 1, &m.baseKey
		case tagIdentityKey:
			field, dst = 2, &m.identityKey
		case tagInner:
			field = 3
		default:
			return nil, fmt.Errorf("unexpected tag 0x%02x: %w", tag, ErrInvalidMessage)
		}
		if seen[field] {
			return nil, fmt.Errorf("duplicate tag 0x%02x: %w", tag, ErrInvalidMessage)
		}
		seen[field] = true
		var err error
		if dst != nil {
			*dst, err = r.key(tag)
		} else {
			inner, _, err = r.bytes(tag)
		}
		if err != nil {
			return nil, err
		}
	}
	if !r.done() {
		return nil, fmt.Errorf("trailing data: %w", ErrInvalidMessage)
	}
	var err error
	if m.message, err = parseNormal(inner); err != nil {
		return nil, err
	}
	m.raw = append([]byte(nil), b...)
	return m, nil
}

// reader walks the protobuf-like payload of an Olm message.
type reader struct {
	b   []byte
	off int
}

func (r *reader) done() bool { return r.off == len(r.b) }

func (r *reader) tag(want byte) error {
	if r.off >= len(r.b) {
		return fmt.Errorf("missing field: %w", ErrInvalidMessage)
	}
	if r.b[r.off] != want {
		return fmt.Errorf("unexpected tag 0x%02x: %w", r.b[r.off], ErrInvalidMessage)
	}
	r.off++
	return nil
}

// varint reads a minimal little-endian base-128 varint no larger than max.
func (r *reader) varint(max uint64) (uint64, error) {
	var v uint64
	for i := 0; ; i++ {
		if r.off >= len(r.b) {
			return 0, fmt.Errorf("truncated varint: %w", ErrInvalidMessage)
		}
		c := r.b[r.off]
		r.off++
		if i == 9 && c > 1 {
			return 0, fmt.Errorf("varint overflow: %w", ErrInvalidMessage)
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if i > 0 && c == 0 {
				return 0, fmt.Errorf("non-minimal varint: %w", ErrInvalidMessage)
			}
			break
		}
		if v > max {
			return 0, fmt.Errorf("varint out of range: %w", ErrInvalidMessage)
		}
	}
	if v > max {
		return 0, fmt.Errorf("varint out of range: %w", ErrInvalidMessage)
	}
	return v, nil
}

// bytes reads a length-delimited field with the given tag and returns its
// contents and their offset.
func (r *reader) bytes(tag byte) ([]byte, int, error) {
	if err := r.tag(tag); err != nil {
		return nil, 0, err
	}
	n, err := r.varint(MaxMessageSize)
	if err != nil {
		return nil, 0, err
	}
	if n > uint64(len(r.b)-r.off) {
		return nil, 0, fmt.Errorf("field runs past the end: %w", ErrInvalidMessage)
	}
	off := r.off
	r.off += int(n)
	return r.b[off:r.off], off, nil
}

func (r *reader) key(tag byte) (keys.Curve25519PublicKey, error) {
	b, _, err := r.bytes(tag)
	if err != nil {
		return keys.Curve25519PublicKey{}, err
	}
	if len(b) != keySize {
		return keys.Curve25519PublicKey{}, fmt.Errorf("key of %d bytes: %w", len(b), ErrInvalidMessage)
	}
	k, err := keys.NewCurve25519PublicKey(b)
	if err != nil {
		return keys.Curve25519PublicKey{}, fmt.Errorf("key: %w", ErrInvalidMessage)
	}
	return k, nil
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// encodeNormalPrefix appends the MACed part of a normal message up to the
// ciphertext's length prefix; the caller appends the ciphertext and MAC.
func appendNormalHeader(b []byte, ratchetKey keys.Curve25519PublicKey, chainIndex uint32, ctLen int) []byte {
	k := ratchetKey.Array()
	b = append(b, ProtocolVersion, tagRatchetKey, keySize)
	b = append(b, k[:]...)
	b = append(b, tagChainIndex)
	b = appendVarint(b, uint64(chainIndex))
	b = append(b, tagCiphertext)
	return appendVarint(b, uint64(ctLen))
}

func normalSize(chainIndex uint32, ctLen int) int {
	return 1 + 2 + keySize + 1 + varintLen(uint64(chainIndex)) + 1 + varintLen(uint64(ctLen)) + ctLen + macSize
}

// newPreKeyMessage wraps inner in a pre-key message.
func newPreKeyMessage(oneTime, base, identity keys.Curve25519PublicKey, inner *NormalMessage) *PreKeyMessage {
	raw := make([]byte, 0, 1+3*(2+keySize)+1+varintLen(uint64(len(inner.raw)))+len(inner.raw))
	raw = append(raw, ProtocolVersion)
	for _, f := range []struct {
		tag byte
		k   keys.Curve25519PublicKey
	}{{tagOneTimeKey, oneTime}, {tagBaseKey, base}, {tagIdentityKey, identity}} {
		a := f.k.Array()
		raw = append(raw, f.tag, keySize)
		raw = append(raw, a[:]...)
	}
	raw = append(raw, tagInner)
	raw = appendVarint(raw, uint64(len(inner.raw)))
	raw = append(raw, inner.raw...)
	return &PreKeyMessage{oneTimeKey: oneTime, baseKey: base, identityKey: identity, message: inner, raw: raw}
}
