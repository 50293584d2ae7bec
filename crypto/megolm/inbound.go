package megolm

import (
	"fmt"
	"io"
	"log/slog"

	"myelin/keys"
)

// InboundSession is the receiving side of a Megolm session. It keeps the
// ratchet at its first known index, which never moves, so every message from
// that index on stays decryptable in any order. It caches two more ratchets,
// at the highest index decrypted and at the last index decrypted below it, so
// that reading new messages and reading older history in order each cost
// one ratchet step per message.
//
// An InboundSession is not safe for concurrent use.
type InboundSession struct {
	initial    ratchet // at FirstKnownIndex; never advanced
	latest     ratchet // cache: the highest index decrypted (>= initial)
	recent     ratchet // cache: the last index decrypted below latest (>= initial)
	signingKey keys.Ed25519PublicKey
	verified   bool
}

// NewInboundSession starts an inbound session from a session-sharing key
// received in m.room_key. The key's signature was checked when it was parsed,
// so [InboundSession.SigningKeyVerified] is true. Callers must still check
// that the session ID in the event equals [InboundSession.ID] and bind the
// session to the Olm sender it came from.
func NewInboundSession(k SessionKey) (*InboundSession, error) {
	if !k.valid {
		return nil, fmt.Errorf("%w: unparsed (zero) session key", ErrInvalidSessionKey)
	}
	return newInbound(k.k.ratchet, k.k.signingKey, true), nil
}

// ImportInboundSession starts an inbound session from an exported key
// (forwarded key, backup, key file). Nothing proves the signing key belongs
// to the ratchet, so [InboundSession.SigningKeyVerified] is false until a
// [InboundSession.Merge] with a connected verified session.
func ImportInboundSession(k ExportedSessionKey) (*InboundSession, error) {
	if !k.valid {
		return nil, fmt.Errorf("%w: unparsed (zero) exported session key", ErrInvalidSessionKey)
	}
	return newInbound(k.k.ratchet, k.k.signingKey, false), nil
}

func newInbound(r ratchet, signingKey keys.Ed25519PublicKey, verified bool) *InboundSession {
	return &InboundSession{initial: r, latest: r, recent: r, signingKey: signingKey, verified: verified}
}

// ID returns the session ID: the unpadded base64 of the signing key.
func (s *InboundSession) ID() string { return s.signingKey.String() }

// SigningKey returns the session's Ed25519 public key.
func (s *InboundSession) SigningKey() keys.Ed25519PublicKey { return s.signingKey }

// SigningKeyVerified reports whether the signing key is known to belong to
// the ratchet: true for sessions from a signed [SessionKey] and for merges
// with one, false for sessions imported from an [ExportedSessionKey].
func (s *InboundSession) SigningKeyVerified() bool { return s.verified }

// FirstKnownIndex returns the lowest message index this session can
// decrypt.
func (s *InboundSession) FirstKnownIndex() uint32 { return s.initial.counter }

// ratchetAt returns a copy of the ratchet advanced to index, which must be
// >= FirstKnownIndex. It starts from the closest of the initial and the
// cached ratchets that is not past index.
func (s *InboundSession) ratchetAt(index uint32) ratchet {
	r := &s.initial
	for _, c := range [...]*ratchet{&s.recent, &s.latest} {
		if c.counter <= index && c.counter > r.counter {
			r = c
		}
	}
	out := *r
	if out.counter != index {
		out.advanceTo(index)
	}
	return out
}

// Decrypt authenticates and decrypts a raw Megolm message and returns the
// plaintext and the message index. It checks, in order: the structure and
// size ([MaxMessageSize]), the Ed25519 signature ([ErrBadSignature]), the
// index ([ErrUnknownMessageIndex] below FirstKnownIndex), the MAC
// ([ErrBadMAC]), then decrypts. On any error the session is unchanged and no
// plaintext is returned.
//
// Decrypt does not detect replays: callers must reject a second, different
// event with an index already seen in this session.
func (s *InboundSession) Decrypt(msg []byte) (plaintext []byte, index uint32, err error) {
	var m message
	if err := parseMessage(msg, &m); err != nil {
		return nil, 0, err
	}
	sig, err := keys.NewEd25519Signature(m.signature)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: bad signature length", ErrInvalidMessage)
	}
	if err := s.signingKey.Verify(m.signed, sig); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if m.index < s.initial.counter {
		return nil, 0, &UnknownMessageIndexError{FirstKnownIndex: s.initial.counter, Index: m.index}
	}
	r := s.ratchetAt(m.index)
	defer r.wipe()
	k := deriveMessageKeys(&r)
	defer k.Wipe()
	if k.VerifyMAC(m.macInput, m.mac[:]) != nil {
		return nil, 0, ErrBadMAC
	}
	pt, err := k.Decrypt(m.ciphertext)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	// Authenticated: commit the caches (the only state Decrypt changes).
	if m.index >= s.latest.counter {
		s.latest = r
	} else {
		s.recent = r
	}
	return pt, m.index, nil
}

// Export returns the session's ratchet at index in the unsigned export
// format, for forwarding or backup. The recipient will be able to decrypt
// messages from index on. It fails with [ErrIndexTooLow] below
// FirstKnownIndex.
func (s *InboundSession) Export(index uint32) (ExportedSessionKey, error) {
	if index < s.initial.counter {
		return ExportedSessionKey{}, fmt.Errorf("%w: export at %d (first known index %d)", ErrIndexTooLow, index, s.initial.counter)
	}
	return ExportedSessionKey{k: exportedKey{ratchet: s.ratchetAt(index), signingKey: s.signingKey}, valid: true}, nil
}

// Comparison is the result of [InboundSession.Compare].
type Comparison int

// The possible results of [InboundSession.Compare].
const (
	// Unconnected: the sessions are not the same Megolm session (different
	// signing keys, or ratchets that do not lead to each other).
	Unconnected Comparison = iota
	// Better: the same session, and the receiver has the lower first known
	// index (it decrypts more).
	Better
	// Equal: the same session at the same first known index.
	Equal
	// Worse: the same session, and the other has the lower first known index.
	Worse
)

// String returns "better", "worse", "equal" or "unconnected".
func (c Comparison) String() string {
	switch c {
	case Better:
		return "better"
	case Worse:
		return "worse"
	case Equal:
		return "equal"
	case Unconnected:
		return "unconnected"
	}
	return fmt.Sprintf("megolm.Comparison(%d)", int(c))
}

// Compare tells whether s is a better copy of the same session than o. Two
// sessions are connected when they have the same signing key and advancing
// the ratchet with the lower first known index to the other's index yields
// exactly the other's ratchet (compared in constant time). A connected
// session with a lower first known index is Better. Use it to decide whether
// a newly received key may replace a stored one: only if it is Better, and
// only if it also came from a source trusted for this session (spec: "Room
// key forwarding"). Neither session changes.
func (s *InboundSession) Compare(o *InboundSession) Comparison {
	if !s.connected(o) {
		return Unconnected
	}
	switch {
	case s.initial.counter < o.initial.counter:
		return Better
	case s.initial.counter > o.initial.counter:
		return Worse
	}
	return Equal
}

func (s *InboundSession) connected(o *InboundSession) bool {
	// The signing key is public: a plain comparison is fine.
	if s.signingKey != o.signingKey {
		return false
	}
	lo, hi := &s.initial, &o.initial
	if lo.counter > hi.counter {
		lo, hi = hi, lo
	}
	r := *lo
	defer r.wipe()
	r.advanceTo(hi.counter)
	return r.equal(hi)
}

// Merge combines two copies of the same session into a new one with the
// lower first known index, which is verified if either input was (as
// vodozemac's merge does: a ratchet that advances to a verified one is
// authentic). It fails with [ErrUnconnected] if the sessions are not
// connected; neither input changes.
func (s *InboundSession) Merge(o *InboundSession) (*InboundSession, error) {
	var best *InboundSession
	switch s.Compare(o) {
	case Better, Equal:
		best = s
	case Worse:
		best = o
	default:
		return nil, ErrUnconnected
	}
	m := newInbound(best.initial, s.signingKey, s.verified || o.verified)
	// Both caches lie on the same chain; keep the furthest one.
	for _, c := range []*ratchet{&s.latest, &o.latest} {
		if c.counter > m.latest.counter {
			m.latest = *c
		}
	}
	return m, nil
}

// String returns a redacted description naming the session ID and first
// known index. Value receivers keep dereferenced sessions redacted too.
func (s InboundSession) String() string {
	return fmt.Sprintf("megolm.InboundSession(REDACTED, session %s, first index %d, verified %t)", s.signingKey.String(), s.initial.counter, s.verified)
}

// GoString is redacted like String.
func (s InboundSession) GoString() string { return s.String() }

// LogValue keeps secrets out of structured logs.
func (s InboundSession) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Format makes every fmt verb print the redacted form.
func (s InboundSession) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }
