package megolm

import (
	"fmt"
	"math"

	"myelin/crypto/internal/cipher"
	"myelin/keys"
)

const (
	// MessageVersion is the version byte of m.megolm.v1.aes-sha2 messages
	// (8-byte truncated MAC). vodozemac's experimental version 4 (full MAC)
	// is not used in Matrix and is refused.
	MessageVersion = 0x03

	// MaxMessageSize bounds the raw message bytes [InboundSession.Decrypt]
	// and [ParseMessage] accept. A Matrix event, ciphertext included, is at
	// most 65536 bytes of JSON (spec: "Size limits"), so a genuine
	// base64-encoded ciphertext is always well under this.
	MaxMessageSize = 65536

	macSize       = cipher.MACSize            // 8
	signatureSize = keys.Ed25519SignatureSize // 64
	suffixSize    = macSize + signatureSize

	tagIndex      = 0x08 // field 1, varint
	tagCiphertext = 0x12 // field 2, length-delimited

	blockSize = 16
)

// Message is a parsed Megolm message:
//
//	0x03 | 0x08 varint(index) | 0x12 varint(len) ciphertext | MAC(8) | signature(64)
//
// The MAC covers everything before it and the Ed25519 signature everything
// before the signature. Parsing checks the structure only; authenticate with
// [InboundSession.Decrypt]. Most callers never need this type: Decrypt takes
// the raw bytes. It is useful to read the index before decrypting.
type Message struct {
	index      uint32
	ciphertext []byte
	mac        [macSize]byte
	signature  keys.Ed25519Signature
}

// message is the allocation-free form used by Decrypt: slices into the input.
type message struct {
	index      uint32
	ciphertext []byte
	macInput   []byte // version .. ciphertext
	mac        []byte
	signed     []byte // version .. MAC
	signature  []byte
}

// ParseMessage parses raw message bytes (not base64). It accepts only the
// canonical encoding that [OutboundSession.Encrypt], libolm and vodozemac
// produce, so that Marshal returns exactly the input.
func ParseMessage(b []byte) (*Message, error) {
	var m message
	if err := parseMessage(b, &m); err != nil {
		return nil, err
	}
	sig, err := keys.NewEd25519Signature(m.signature)
	if err != nil {
		return nil, fmt.Errorf("%w: bad signature length", ErrInvalidMessage)
	}
	out := &Message{index: m.index, ciphertext: append([]byte(nil), m.ciphertext...), signature: sig}
	copy(out.mac[:], m.mac)
	return out, nil
}

// Index returns the message index, the sender's ratchet counter.
func (m *Message) Index() uint32 { return m.index }

// Ciphertext returns a copy of the AES-CBC ciphertext.
func (m *Message) Ciphertext() []byte { return append([]byte(nil), m.ciphertext...) }

// Signature returns the Ed25519 signature over the rest of the message.
func (m *Message) Signature() keys.Ed25519Signature { return m.signature }

// Marshal returns the raw message bytes.
func (m *Message) Marshal() []byte {
	b := appendHeader(make([]byte, 0, encodedLen(m.index, len(m.ciphertext))), m.index, len(m.ciphertext))
	b = append(b, m.ciphertext...)
	b = append(b, m.mac[:]...)
	sig := m.signature.Array()
	return append(b, sig[:]...)
}

func parseMessage(b []byte, m *message) error {
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: message of %d bytes (maximum %d)", ErrMessageTooLarge, len(b), MaxMessageSize)
	}
	if len(b) == 0 {
		return fmt.Errorf("%w: empty message", ErrInvalidMessage)
	}
	if b[0] != MessageVersion {
		return fmt.Errorf("%w: message version %d", ErrBadVersion, b[0])
	}
	if len(b) < 1+suffixSize {
		return fmt.Errorf("%w: message truncated", ErrInvalidMessage)
	}
	body := b[:len(b)-suffixSize]
	p := body[1:]
	if len(p) == 0 || p[0] != tagIndex {
		return fmt.Errorf("%w: message index field missing", ErrInvalidMessage)
	}
	idx, n := uvarint(p[1:])
	if n <= 0 || idx > math.MaxUint32 {
		return fmt.Errorf("%w: bad message index varint", ErrInvalidMessage)
	}
	p = p[1+n:]
	if len(p) == 0 || p[0] != tagCiphertext {
		return fmt.Errorf("%w: ciphertext field missing", ErrInvalidMessage)
	}
	l, n := uvarint(p[1:])
	if n <= 0 {
		return fmt.Errorf("%w: bad ciphertext length varint", ErrInvalidMessage)
	}
	p = p[1+n:]
	if l != uint64(len(p)) {
		return fmt.Errorf("%w: ciphertext length does not match the message", ErrInvalidMessage)
	}
	if len(p) == 0 || len(p)%blockSize != 0 {
		return fmt.Errorf("%w: ciphertext is not a whole number of blocks", ErrInvalidMessage)
	}
	*m = message{
		index:      uint32(idx),
		ciphertext: p,
		macInput:   body,
		mac:        b[len(body) : len(body)+macSize],
		signed:     b[:len(b)-signatureSize],
		signature:  b[len(b)-signatureSize:],
	}
	return nil
}

// encodedLen is the length of a message with the given index and ciphertext
// length.
func encodedLen(index uint32, ctLen int) int {
	return 1 + 1 + varintLen(uint64(index)) + 1 + varintLen(uint64(ctLen)) + ctLen + suffixSize
}

// appendHeader appends version | 0x08 varint(index) | 0x12 varint(ctLen).
// The index is always written, even when 0: libolm needs it.
func appendHeader(b []byte, index uint32, ctLen int) []byte {
	b = append(b, MessageVersion, tagIndex)
	b = appendUvarint(b, uint64(index))
	b = append(b, tagCiphertext)
	return appendUvarint(b, uint64(ctLen))
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// uvarint decodes a minimal unsigned LEB128 varint of at most 5 bytes (enough
// for the uint32 index and for lengths under MaxMessageSize). It returns n <= 0
// on truncation, overflow or an over-long (non-minimal) encoding, so that
// every accepted message has exactly one byte form.
func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c < 0x80 {
			if i > 0 && c == 0 {
				return 0, -1 // over-long: a trailing zero group
			}
			return v, i + 1
		}
	}
	return 0, -1
}
