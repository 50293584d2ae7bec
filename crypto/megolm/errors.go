package megolm

import (
	"errors"
	"fmt"
)

// Sentinel errors, for use with [errors.Is]. Every error this package returns
// wraps one of them, except a failure to read the random source in
// [NewOutboundSession]; none carries key material or plaintext.
var (
	// ErrBadSignature reports an Ed25519 signature (on a message or a
	// session key) that does not verify under the session's signing key.
	ErrBadSignature = errors.New("megolm: bad signature")
	// ErrBadMAC reports a message whose MAC does not match: it was not
	// produced with this session's ratchet at the claimed index.
	ErrBadMAC = errors.New("megolm: bad MAC")
	// ErrBadVersion reports a message, session key or exported key with an
	// unsupported version byte.
	ErrBadVersion = errors.New("megolm: unsupported version")
	// ErrUnknownMessageIndex reports a message older than the session's
	// first known index; [UnknownMessageIndexError] carries both indices.
	ErrUnknownMessageIndex = errors.New("megolm: unknown message index")
	// ErrInvalidMessage reports a message that is malformed: truncated,
	// over-long varints, unexpected fields, trailing bytes, a ciphertext that
	// is not a whole number of blocks, or bad padding behind a valid MAC.
	ErrInvalidMessage = errors.New("megolm: invalid message")
	// ErrMessageTooLarge reports input larger than [MaxMessageSize].
	ErrMessageTooLarge = errors.New("megolm: message too large")
	// ErrInvalidSessionKey reports a session key or exported session key of
	// the wrong length or encoding, or an unparsed (zero) key value.
	ErrInvalidSessionKey = errors.New("megolm: invalid session key")
	// ErrIndexTooLow reports an export below the session's first known
	// index: the ratchet cannot run backwards.
	ErrIndexTooLow = errors.New("megolm: index below first known index")
	// ErrUnconnected reports an attempt to merge sessions that are not the
	// same Megolm session (different signing keys or unrelated ratchets).
	ErrUnconnected = errors.New("megolm: sessions are not connected")
	// ErrInvalidPickle reports a pickle that is malformed, of the wrong kind,
	// or fails authentication (wrong pickle key or tampered data).
	ErrInvalidPickle = errors.New("megolm: invalid pickle")
	// ErrUnknownPickleVersion reports a pickle written by an unknown (newer)
	// version of this package.
	ErrUnknownPickleVersion = errors.New("megolm: unknown pickle version")
	// ErrBadPickleKey reports a pickle key shorter than [PickleKeySize].
	ErrBadPickleKey = errors.New("megolm: pickle key too short")
)

// UnknownMessageIndexError gives the detail of [ErrUnknownMessageIndex]: the
// message's index and the earliest index the session can decrypt.
type UnknownMessageIndexError struct {
	FirstKnownIndex uint32 // the session's first known index
	Index           uint32 // the index of the message
}

// Error implements error.
func (e *UnknownMessageIndexError) Error() string {
	return fmt.Sprintf("megolm: unknown message index %d (first known index %d)", e.Index, e.FirstKnownIndex)
}

// Unwrap returns [ErrUnknownMessageIndex].
func (e *UnknownMessageIndexError) Unwrap() error { return ErrUnknownMessageIndex }
