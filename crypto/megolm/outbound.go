package megolm

import (
	"fmt"
	"io"
	"log/slog"

	"myelin/crypto/internal/cipher"
	"myelin/keys"
)

// megolmKeysInfo is the HKDF info string for per-message keys.
const megolmKeysInfo = "MEGOLM_KEYS"

// OutboundRandomSize is the number of random bytes [NewOutboundSession]
// reads: 128 for the ratchet, then a 32-byte Ed25519 seed, the layout of
// libolm's olm_init_outbound_group_session.
const OutboundRandomSize = RatchetSize + keys.Ed25519SeedSize // 160

// OutboundSession is the sending side of a Megolm session: a ratchet and the
// Ed25519 key that signs every message. Share [OutboundSession.SessionKey]
// with each recipient device over Olm before sending, and rotate (make a new
// session) as m.room.encryption and membership changes require.
//
// An OutboundSession is not safe for concurrent use.
type OutboundSession struct {
	ratchet   ratchet
	signing   *keys.Ed25519SecretKey
	exhausted bool // index 2^32-1 has been used
}

// NewOutboundSession reads exactly [OutboundRandomSize] (160) bytes from rand
// and starts a session at index 0.
func NewOutboundSession(rand io.Reader) (*OutboundSession, error) {
	var buf [OutboundRandomSize]byte
	defer clear(buf[:])
	if _, err := io.ReadFull(rand, buf[:]); err != nil {
		return nil, fmt.Errorf("megolm: new outbound session: reading randomness: %w", err)
	}
	sk, err := keys.NewEd25519SecretKeyFromSeed(buf[RatchetSize:])
	if err != nil {
		return nil, fmt.Errorf("megolm: new outbound session: %w", err)
	}
	o := &OutboundSession{signing: sk}
	copy(o.ratchet.data[:], buf[:RatchetSize])
	return o, nil
}

// ID returns the session ID: the unpadded base64 of the Ed25519 public key.
func (o *OutboundSession) ID() string { return o.signing.PublicKey().String() }

// SigningKey returns the session's Ed25519 public key.
func (o *OutboundSession) SigningKey() keys.Ed25519PublicKey { return o.signing.PublicKey() }

// MessageIndex returns the index the next message will use.
func (o *OutboundSession) MessageIndex() uint32 { return o.ratchet.counter }

// Exhausted reports whether the session has used message index 2^32-1, the
// last one. [OutboundSession.Encrypt] panics on an exhausted session; a
// session rotated as the spec asks (every 100 messages by default) never
// gets there.
func (o *OutboundSession) Exhausted() bool { return o.exhausted }

// SessionKey returns the signed session-sharing key (format 0x02) at the
// current index, for m.room_key. Recipients can decrypt this message index
// and later ones.
func (o *OutboundSession) SessionKey() SessionKey {
	k := SessionKey{k: exportedKey{ratchet: o.ratchet, signingKey: o.signing.PublicKey()}, valid: true}
	var buf [ExportedSessionKeySize]byte
	k.k.appendTo(buf[:0], SessionKeyVersion)
	k.signature = o.signing.Sign(buf[:])
	clear(buf[:])
	return k
}

// Encrypt encrypts plaintext at the current index, signs the message and
// advances the ratchet. It returns the raw message bytes (base64 them for
// the event's ciphertext field). Plaintexts that make the message larger
// than [MaxMessageSize] produce messages that receivers refuse; Matrix
// events cannot be that large anyway.
//
// Encrypt panics if the session is [OutboundSession.Exhausted].
func (o *OutboundSession) Encrypt(plaintext []byte) []byte {
	if o.exhausted {
		panic("megolm: encrypt on an exhausted outbound session (2^32 messages); rotate sessions")
	}
	k := deriveMessageKeys(&o.ratchet)
	defer k.Wipe()
	ctLen := cipher.EncryptedLen(len(plaintext))
	index := o.ratchet.counter
	out := appendHeader(make([]byte, 0, encodedLen(index, ctLen)), index, ctLen)
	out = k.Encrypt(out, plaintext)
	mac := k.MAC(out)
	out = append(out, mac[:]...)
	sig := o.signing.Sign(out).Array()
	out = append(out, sig[:]...)
	if index == ^uint32(0) {
		o.exhausted = true
	} else {
		o.ratchet.advance()
	}
	return out
}

// String returns a redacted description naming the session ID and index.
// Value receivers, so that printing a dereferenced session is redacted too.
func (o OutboundSession) String() string {
	id := "none"
	if o.signing != nil {
		id = o.signing.PublicKey().String()
	}
	return fmt.Sprintf("megolm.OutboundSession(REDACTED, session %s, index %d)", id, o.ratchet.counter)
}

// GoString is redacted like String.
func (o OutboundSession) GoString() string { return o.String() }

// LogValue keeps secrets out of structured logs.
func (o OutboundSession) LogValue() slog.Value { return slog.StringValue(o.String()) }

// Format makes every fmt verb print the redacted form.
func (o OutboundSession) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, o.String()) }
