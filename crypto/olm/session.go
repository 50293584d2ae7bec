package olm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"myelin/crypto/internal/cipher"
	"myelin/keys"
)

// noCompare makes == on a struct a compile error.
type noCompare [0]func()

// Session is one Olm session: a double ratchet between two devices.
// Create one with [Account.NewOutboundSession] or
// [Account.NewInboundSession]; persist it with [Session.Pickle].
//
// A Session is not safe for concurrent use. Its secrets never appear in
// fmt or slog output.
type Session struct {
	_ noCompare

	// The pre-key triple: initiator identity key I_A, base key E_A and the
	// recipient's one-time key E_B. They identify the session.
	aliceIdentity keys.Curve25519PublicKey
	aliceBase     keys.Curve25519PublicKey
	bobOneTime    keys.Curve25519PublicKey
	id            string

	root      [32]byte
	sender    *senderChain    // nil until we need to send on a new chain
	receivers []receiverChain // oldest first, at most MaxReceiverChains
}

func newSession(identity, base, oneTime keys.Curve25519PublicKey) *Session {
	return &Session{
		aliceIdentity: identity,
		aliceBase:     base,
		bobOneTime:    oneTime,
		id:            sessionID(identity, base, oneTime),
	}
}

// ID returns the session ID, b64(SHA-256(I_A || E_A || E_B)); both sides
// compute the same value.
func (s *Session) ID() string { return s.id }

// HasReceivedMessage reports whether the session has decrypted a message
// from the peer (an inbound session has, by construction). Until it has,
// [Session.Encrypt] produces pre-key messages.
func (s *Session) HasReceivedMessage() bool { return len(s.receivers) > 0 }

// MatchesInbound reports whether the pre-key message m belongs to this
// session: same one-time key, base key and identity key, and the identity
// key is theirIdentityKey. Check existing sessions this way before creating
// a new one from a pre-key message, so that a retried message does not
// create a duplicate session.
func (s *Session) MatchesInbound(theirIdentityKey keys.Curve25519PublicKey, m *PreKeyMessage) bool {
	// Public values: == is fine.
	return m != nil && m.identityKey == theirIdentityKey && s.matches(m)
}

func (s *Session) matches(m *PreKeyMessage) bool {
	return m.identityKey == s.aliceIdentity && m.baseKey == s.aliceBase && m.oneTimeKey == s.bobOneTime
}

// Encrypt encrypts plaintext (at most [MaxPlaintextSize] bytes) to the
// peer. It returns a *[PreKeyMessage] until the session has received a
// message, then a *[NormalMessage].
//
// Encrypt reads 32 bytes from rand only when it needs a new ratchet key
// (the first message after receiving on a new chain, as libolm's
// olm_encrypt_random_length says); otherwise rand is not touched and may be
// nil. On error the session is unchanged.
func (s *Session) Encrypt(rand io.Reader, plaintext []byte) (Message, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("olm: encrypt: plaintext of %d bytes: %w", len(plaintext), ErrMessageTooLarge)
	}
	sender := s.sender
	var newRoot [32]byte
	if sender == nil {
		if len(s.receivers) == 0 {
			panic("olm: internal error: session with neither sender nor receiver chain")
		}
		if rand == nil {
			return nil, errors.New("olm: encrypt: a new ratchet key is needed but rand is nil")
		}
		rk, err := keys.GenerateCurve25519SecretKey(rand)
		if err != nil {
			return nil, fmt.Errorf("olm: encrypt: %w", err)
		}
		shared, err := rk.SharedSecret(s.receivers[len(s.receivers)-1].ratchetKey)
		if err != nil {
			rk.Wipe()
			return nil, fmt.Errorf("olm: encrypt: %w", err)
		}
		var ck [32]byte
		newRoot, ck = kdf64(s.root[:], shared[:], infoRatchet)
		clear(shared[:])
		sender = &senderChain{ratchet: rk, chain: chainKey{key: ck}}
		clear(ck[:])
	}

	mk := sender.chain.messageKey()
	ck := mk.cipherKeys()
	clear(mk.key[:])
	ctLen := cipher.EncryptedLen(len(plaintext))
	raw := make([]byte, 0, normalSize(mk.index, ctLen))
	raw = appendNormalHeader(raw, sender.ratchet.PublicKey(), mk.index, ctLen)
	ctOff := len(raw)
	raw = ck.Encrypt(raw, plaintext)
	mac := ck.MAC(raw)
	raw = append(raw, mac[:]...)
	ck.Wipe()
	msg := &NormalMessage{ratchetKey: sender.ratchet.PublicKey(), chainIndex: mk.index, ctOff: ctOff, raw: raw}

	// Commit.
	if s.sender == nil {
		s.root = newRoot
		clear(newRoot[:])
		s.sender = sender
	}
	s.sender.chain.advance()

	if !s.HasReceivedMessage() {
		return newPreKeyMessage(s.bobOneTime, s.aliceBase, s.aliceIdentity, msg), nil
	}
	return msg, nil
}

// Decrypt authenticates and decrypts m, a message from the peer. A
// *[PreKeyMessage] must belong to this session (see
// [Session.MatchesInbound]).
//
// The MAC is verified before anything is decrypted, all work is done on
// copies, and the session changes only when Decrypt succeeds: on any error
// it is exactly as before. A message key is used once, so a replayed
// message fails with [ErrUnknownMessageIndex].
func (s *Session) Decrypt(m Message) ([]byte, error) {
	var nm *NormalMessage
	switch v := m.(type) {
	case *NormalMessage:
		nm = v
	case *PreKeyMessage:
		if v == nil {
			break
		}
		if !s.matches(v) {
			return nil, fmt.Errorf("olm: decrypt: %w", ErrSessionMismatch)
		}
		nm = v.message
	}
	if nm == nil || len(nm.raw) == 0 { // nil, or a zero value not made by a parser
		return nil, fmt.Errorf("olm: decrypt: no message: %w", ErrInvalidMessage)
	}
	pt, err := s.decrypt(nm)
	if err != nil {
		return nil, fmt.Errorf("olm: decrypt: %w", err)
	}
	return pt, nil
}

func (s *Session) decrypt(m *NormalMessage) ([]byte, error) {
	// Find the receiver chain for the message's ratchet key (public data).
	for i := len(s.receivers) - 1; i >= 0; i-- {
		rc := &s.receivers[i]
		if rc.ratchetKey != m.ratchetKey {
			continue
		}
		if m.chainIndex < rc.chain.index {
			j := slices.IndexFunc(rc.skipped, func(k messageKey) bool { return k.index == m.chainIndex })
			if j < 0 {
				return nil, ErrUnknownMessageIndex
			}
			pt, err := decryptWith(&rc.skipped[j], m)
			if err != nil {
				return nil, err
			}
			clear(rc.skipped[j].key[:])
			rc.skipped = slices.Delete(rc.skipped, j, j+1)
			return pt, nil
		}
		if gap := uint64(m.chainIndex - rc.chain.index); gap > MaxMessageGap {
			return nil, &MessageGapError{Got: gap, Max: MaxMessageGap}
		}
		next, skipped, mk := advanceTo(rc.chain, m.chainIndex)
		pt, err := decryptWith(&mk, m)
		clear(mk.key[:])
		if err != nil {
			next.wipe()
			wipeKeys(skipped)
			return nil, err
		}
		rc.chain = next
		rc.addSkipped(skipped)
		return pt, nil
	}

	// A new chain: the peer has ratcheted.
	if s.sender == nil {
		return nil, ErrUnexpectedRatchetKey
	}
	if m.chainIndex > MaxMessageGap {
		return nil, &MessageGapError{Got: uint64(m.chainIndex), Max: MaxMessageGap}
	}
	shared, err := s.sender.ratchet.SharedSecret(m.ratchetKey)
	if err != nil {
		return nil, err
	}
	newRoot, ck := kdf64(s.root[:], shared[:], infoRatchet)
	clear(shared[:])
	next, skipped, mk := advanceTo(chainKey{key: ck}, m.chainIndex)
	clear(ck[:])
	pt, err := decryptWith(&mk, m)
	clear(mk.key[:])
	if err != nil {
		clear(newRoot[:])
		next.wipe()
		wipeKeys(skipped)
		return nil, err
	}
	s.root = newRoot
	s.sender.wipe()
	s.sender = nil // a new ratchet key is made on the next Encrypt
	rc := receiverChain{ratchetKey: m.ratchetKey, chain: next}
	rc.addSkipped(skipped)
	s.pushReceiver(rc)
	return pt, nil
}

func (s *Session) pushReceiver(rc receiverChain) {
	if len(s.receivers) >= MaxReceiverChains {
		s.receivers[0].wipe()
		s.receivers = slices.Delete(s.receivers, 0, 1)
	}
	s.receivers = append(s.receivers, rc)
}

func (r *receiverChain) addSkipped(ks []messageKey) {
	r.skipped = append(r.skipped, ks...)
	if over := len(r.skipped) - MaxSkippedMessageKeys; over > 0 {
		wipeKeys(r.skipped[:over])
		r.skipped = slices.Delete(r.skipped, 0, over)
	}
}

func wipeKeys(ks []messageKey) {
	for i := range ks {
		clear(ks[i].key[:])
	}
}

// advanceTo returns the chain advanced past index target, the message keys
// skipped on the way (only the last MaxSkippedMessageKeys) and the message
// key for target. c is not modified.
func advanceTo(c chainKey, target uint32) (chainKey, []messageKey, messageKey) {
	var skipped []messageKey
	for c.index < target {
		if target-c.index <= MaxSkippedMessageKeys {
			skipped = append(skipped, c.messageKey())
		}
		c.advance()
	}
	mk := c.messageKey()
	c.advance()
	return c, skipped, mk
}

// decryptWith verifies the MAC of m under mk and only then decrypts.
func decryptWith(mk *messageKey, m *NormalMessage) ([]byte, error) {
	ck := mk.cipherKeys()
	defer ck.Wipe()
	if err := ck.VerifyMAC(m.macInput(), m.mac()); err != nil {
		return nil, ErrBadMAC
	}
	pt, err := ck.Decrypt(m.ciphertext())
	if err != nil {
		return nil, err
	}
	return pt, nil
}

// wipe clears the session's secrets. The session is unusable afterwards.
func (s *Session) wipe() {
	clear(s.root[:])
	s.sender.wipe()
	s.sender = nil
	for i := range s.receivers {
		s.receivers[i].wipe()
	}
	s.receivers = nil
}

// String returns the session ID and nothing secret.
func (s Session) String() string { return "olm.Session{id: " + s.id + "}" }

// GoString is [Session.String].
func (s Session) GoString() string { return s.String() }

// Format prints [Session.String] for every verb, so no secret is printed.
func (s Session) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue logs the session ID only.
func (s Session) LogValue() slog.Value { return slog.StringValue(s.String()) }
