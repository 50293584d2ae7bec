package olm

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of these
// (or an error of package keys or cipher) and can be tested with errors.Is.
// No error message contains key material or plaintext.
var (
	// ErrBadMAC reports a message whose MAC does not verify under the key the
	// session derives for it. The session is unchanged.
	ErrBadMAC = errors.New("olm: bad message MAC")
	// ErrBadVersion reports a message or pickle with an unsupported version
	// byte. Olm messages must be version 3.
	ErrBadVersion = errors.New("olm: unsupported version")
	// ErrInvalidMessage reports a message that does not follow the canonical
	// wire format: truncated, unknown, duplicate or out-of-order fields,
	// non-minimal or over-long varints, keys that are not 32 bytes, or a
	// ciphertext that is not a whole number of AES blocks.
	ErrInvalidMessage = errors.New("olm: invalid message encoding")
	// ErrMessageTooLarge reports a message longer than [MaxMessageSize] or a
	// plaintext longer than [MaxPlaintextSize].
	ErrMessageTooLarge = errors.New("olm: message too large")
	// ErrMessageGap reports a chain index more than [MaxMessageGap] ahead of
	// the receiver chain. Use errors.As with *[MessageGapError] for detail.
	ErrMessageGap = errors.New("olm: message gap too large")
	// ErrUnknownMessageIndex reports a message whose chain index is behind the
	// receiver chain and whose key is not (or no longer) stored: a replay, or
	// a message older than the [MaxSkippedMessageKeys] window.
	ErrUnknownMessageIndex = errors.New("olm: unknown message index")
	// ErrUnexpectedRatchetKey reports a message on a new ratchet key while we
	// have no sender chain, that is before we replied on the peer's previous
	// chain. libolm refuses this too.
	ErrUnexpectedRatchetKey = errors.New("olm: new ratchet key before we have replied")
	// ErrNoMatchingKey reports a pre-key message naming a one-time key that
	// is neither a stored one-time key nor the current or previous fallback
	// key.
	ErrNoMatchingKey = errors.New("olm: no matching one-time key")
	// ErrSenderKeyMismatch reports a pre-key message whose identity key is
	// not the sender key the caller expected.
	ErrSenderKeyMismatch = errors.New("olm: pre-key message identity key does not match the sender")
	// ErrSessionMismatch reports a pre-key message given to a session it does
	// not belong to (see [Session.MatchesInbound]).
	ErrSessionMismatch = errors.New("olm: pre-key message does not belong to this session")
	// ErrBadPickle reports a pickle that does not authenticate under the
	// given key or does not decode.
	ErrBadPickle = errors.New("olm: bad pickle")
	// ErrBadPickleKey reports a pickle key shorter than [PickleKeySize].
	ErrBadPickleKey = errors.New("olm: pickle key too short")
	// ErrTooManyOneTimeKeys reports a request to generate more one-time keys
	// at once than [MaxStoredOneTimeKeys].
	ErrTooManyOneTimeKeys = errors.New("olm: too many one-time keys requested")
)

// MessageGapError gives the detail of an [ErrMessageGap]: the message's chain
// index was Got steps ahead of the receiver chain, and at most Max are
// allowed.
type MessageGapError struct {
	Got uint64 // how far ahead the message was
	Max uint64 // MaxMessageGap
}

// Error implements error.
func (e *MessageGapError) Error() string {
	return fmt.Sprintf("olm: message gap too large (%d > %d)", e.Got, e.Max)
}

// Unwrap returns [ErrMessageGap].
func (e *MessageGapError) Unwrap() error { return ErrMessageGap }
