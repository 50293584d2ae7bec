package e2ee

import (
	"errors"
	"fmt"
	"strings"
)

// UTDReason says why a room event could not be decrypted (or was withheld
// from display by the trust policy).
type UTDReason int

// The reasons a room event is shown as "unable to decrypt".
const (
	// UTDNoSession: we hold no Megolm session with the event's session_id
	// (the key has not arrived yet).
	UTDNoSession UTDReason = iota + 1
	// UTDWithheld: no session, and a (server-relayed, unauthenticated)
	// m.room_key.withheld notice named a reason; Code carries it.
	UTDWithheld
	// UTDUnknownIndex: the session starts after this message's index.
	UTDUnknownIndex
	// UTDReplay: a different event already used this session and index.
	UTDReplay
	// UTDSenderMismatch: the session belongs to another user than the
	// event's sender.
	UTDSenderMismatch
	// UTDRoomMismatch: the session or the plaintext belongs to another room.
	UTDRoomMismatch
	// UTDInsecureDeviceHidden: the session came from a device the trust
	// policy does not show (not cross-signed).
	UTDInsecureDeviceHidden
	// UTDOlmInRoom: a room event encrypted with Olm (or an unknown
	// algorithm); rooms use Megolm.
	UTDOlmInRoom
	// UTDMalformed: the event or its plaintext does not parse.
	UTDMalformed
	// UTDBadCiphertext: signature or MAC did not verify.
	UTDBadCiphertext
	// UTDUnencryptedInEncryptedRoom: a plaintext message-like event in a
	// room that is encrypted; it must not be shown as a normal message.
	UTDUnencryptedInEncryptedRoom
)

var utdNames = map[UTDReason]string{
	UTDNoSession:                  "no_session",
	UTDWithheld:                   "withheld",
	UTDUnknownIndex:               "unknown_index",
	UTDReplay:                     "megolm_replay",
	UTDSenderMismatch:             "sender_mismatch",
	UTDRoomMismatch:               "room_mismatch",
	UTDInsecureDeviceHidden:       "insecure_device_hidden",
	UTDOlmInRoom:                  "olm_in_room",
	UTDMalformed:                  "malformed",
	UTDBadCiphertext:              "bad_ciphertext",
	UTDUnencryptedInEncryptedRoom: "unencrypted_in_encrypted_room",
}

var utdWords = map[UTDReason]string{
	UTDNoSession:                  "the room key for this message has not arrived (yet)",
	UTDWithheld:                   "the room key was withheld (reported by the server or sender, unauthenticated)",
	UTDUnknownIndex:               "the room key we hold starts after this message",
	UTDReplay:                     "this ciphertext was already shown as a different event: the server replayed it",
	UTDSenderMismatch:             "the room key belongs to a different user than the event's sender: the sender was spoofed",
	UTDRoomMismatch:               "the message was encrypted for a different room",
	UTDInsecureDeviceHidden:       "the message comes from a device its owner has not cross-signed, hidden by the trust policy",
	UTDOlmInRoom:                  "room messages must use Megolm; this one uses another algorithm",
	UTDMalformed:                  "the encrypted event is malformed",
	UTDBadCiphertext:              "the ciphertext did not authenticate",
	UTDUnencryptedInEncryptedRoom: "an unencrypted message in an encrypted room: anyone, including the server, could have written it",
}

// String returns the reason's code (for logs and tests).
func (r UTDReason) String() string {
	if s, ok := utdNames[r]; ok {
		return s
	}
	return fmt.Sprintf("utd(%d)", int(r))
}

// ErrUTD is wrapped by every *UTDError.
var ErrUTD = errors.New("e2ee: unable to decrypt")

// UTDError is the typed failure of Machine.Decrypt.
type UTDError struct {
	Reason    UTDReason
	SessionID string
	// Code is the withheld code (m.unverified, m.blacklisted, ...) for
	// UTDWithheld; it is a hint relayed by the server, not authenticated.
	Code string
	// Detail adds context in words; Err is the underlying error, if any.
	Detail string
	Err    error
}

// Error explains the failure in words.
func (e *UTDError) Error() string {
	var b strings.Builder
	b.WriteString("e2ee: unable to decrypt (")
	b.WriteString(e.Reason.String())
	b.WriteString("): ")
	b.WriteString(utdWords[e.Reason])
	if e.Code != "" {
		b.WriteString(" [code " + e.Code + "]")
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrUTD and the cause.
func (e *UTDError) Unwrap() []error { return []error{ErrUTD, e.Err} }

func utd(r UTDReason, sessionID, detail string, err error) *UTDError {
	return &UTDError{Reason: r, SessionID: sessionID, Detail: detail, Err: err}
}

// RejectCode names why the machine dropped an input (threat model verdict
// REJECT). Rejections change no state and are reported in Result.Rejected.
type RejectCode string

// Rejection codes.
const (
	RejectToDeviceNotOlm        RejectCode = "to_device_not_olm"
	RejectUnencryptedKeyEvent   RejectCode = "unencrypted_key_event"
	RejectOlmBindingMismatch    RejectCode = "olm_binding_mismatch"
	RejectOlmReplay             RejectCode = "olm_replay"
	RejectOlmDecrypt            RejectCode = "olm_decrypt_failed"
	RejectMalformed             RejectCode = "malformed"
	RejectUnrequestedForward    RejectCode = "unrequested_forward"
	RejectForwardUntrusted      RejectCode = "forward_from_untrusted_device"
	RejectMegolmUnconnected     RejectCode = "megolm_unconnected"
	RejectSessionOwnerConflict  RejectCode = "session_owner_conflict"
	RejectDeviceKeysInvalid     RejectCode = "device_keys_invalid"
	RejectOTKBadSignature       RejectCode = "otk_bad_signature"
	RejectKeyReused             RejectCode = "key_reused_across_devices"
	RejectNonContributory       RejectCode = "non_contributory_dh"
	RejectKeyRequestUntrusted   RejectCode = "key_request_from_untrusted_device"
	RejectRoomKeyInvalid        RejectCode = "room_key_invalid"
	RejectUnknownSenderDevice   RejectCode = "unknown_sender_device"
	RejectIdentityInvalid       RejectCode = "cross_signing_identity_invalid"
	RejectUnexpectedKeyResponse RejectCode = "unexpected_response"
	// RejectDuplicateRequest: an m.room_key_request or m.secret.request
	// whose (sender, requesting device, request_id) was already processed
	// (B3 rule 5).
	RejectDuplicateRequest RejectCode = "duplicate_request"
	// RejectBundleUntrusted: an m.room_key_bundle from a device that is
	// not cross-signed, or without sender_device_keys (B6 rule 4a).
	RejectBundleUntrusted RejectCode = "bundle_from_untrusted_device"
	// RejectBundleHashMismatch: the downloaded bundle does not match the
	// sha256 in its m.room_key_bundle (B6 rule 4c).
	RejectBundleHashMismatch RejectCode = "hash_mismatch"
)

// Rejection is one security-log entry: an input the machine refused.
type Rejection struct {
	Code     RejectCode
	Sender   string // envelope sender or user concerned
	DeviceID string
	Err      error // explanation in words
}

// AlertCode names a user-visible notice (threat model verdict ALERT).
type AlertCode string

// Alert codes.
const (
	// AlertIdentityChanged: a pinned (not verified) identity changed.
	AlertIdentityChanged AlertCode = "identity_changed"
	// AlertVerificationViolation: a verified identity changed; sending in
	// shared rooms is blocked until AcknowledgeIdentityChange.
	AlertVerificationViolation AlertCode = "verification_violation"
	// AlertOwnIdentityReset: our own master key changed and we did not do it.
	AlertOwnIdentityReset AlertCode = "own_identity_reset"
	// AlertDeviceKeysChanged: a known device ID came back with other keys.
	AlertDeviceKeysChanged AlertCode = "device_keys_changed"
	// AlertKeyReused: a device key appeared under two devices.
	AlertKeyReused AlertCode = "key_reused_across_devices"
	// AlertEncryptionStateChanged: m.room.encryption of an encrypted room
	// changed to something we will not use.
	AlertEncryptionStateChanged AlertCode = "encryption_state_changed"
)

// Alert is an event the application shows the user.
type Alert struct {
	Code     AlertCode
	UserID   string
	DeviceID string
	RoomID   string
	Message  string
}

// Sentinel errors of Encrypt and friends.
var (
	// ErrNotReady: keys must be fetched first; send the requests from
	// Machine.Outgoing, acknowledge them, and call Encrypt again.
	ErrNotReady = errors.New("e2ee: room key sharing is waiting for the server (send the outgoing requests and retry)")
	// ErrRoomNotEncrypted: Encrypt was called for a room not known to be
	// encrypted.
	ErrRoomNotEncrypted = errors.New("e2ee: room is not encrypted")
	// ErrEncryptionStateLost: the room was seen encrypted and its
	// m.room.encryption state now says something we refuse to follow.
	ErrEncryptionStateLost = errors.New("e2ee: the room's encryption state changed; refusing to send")
	// ErrSendBlocked: a member's identity changed and sending waits for
	// the user to acknowledge it (AcknowledgeIdentityChange).
	ErrSendBlocked = errors.New("e2ee: sending blocked until an identity change is acknowledged")
	// ErrPlaintextRefused: plaintext was about to be sent into a room
	// that was once encrypted.
	ErrPlaintextRefused = errors.New("e2ee: refusing to send plaintext into an encrypted room")
	// ErrUnknownRequest: MarkSent got an ID that is not pending.
	ErrUnknownRequest = errors.New("e2ee: unknown request ID")
	// ErrBadResponse: a server response does not parse.
	ErrBadResponse = errors.New("e2ee: malformed server response")
)

// SendBlockedError lists the users whose identity change blocks sending.
type SendBlockedError struct {
	RoomID string
	Users  []string
}

// Error explains the block in words.
func (e *SendBlockedError) Error() string {
	return fmt.Sprintf("e2ee: sending in %s blocked: the cryptographic identity of %s changed since it was pinned or verified; acknowledge the change to continue",
		e.RoomID, strings.Join(e.Users, ", "))
}

// Unwrap returns ErrSendBlocked.
func (e *SendBlockedError) Unwrap() error { return ErrSendBlocked }

// NotReadyError says what Encrypt is waiting for.
type NotReadyError struct {
	RoomID  string
	Waiting string // "keys/query" or "keys/claim"
}

// Error explains in words.
func (e *NotReadyError) Error() string {
	return fmt.Sprintf("e2ee: cannot encrypt in %s yet: waiting for %s (send the outgoing requests and retry)", e.RoomID, e.Waiting)
}

// Unwrap returns ErrNotReady.
func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// EncryptionStateError says why the room's encryption state is refused.
type EncryptionStateError struct {
	RoomID string
	Detail string
}

// Error explains in words.
func (e *EncryptionStateError) Error() string {
	return fmt.Sprintf("e2ee: refusing to send in %s: %s; the room was encrypted before and stays encrypted", e.RoomID, e.Detail)
}

// Unwrap returns ErrEncryptionStateLost.
func (e *EncryptionStateError) Unwrap() error { return ErrEncryptionStateLost }
