package verification

import (
	"errors"
	"fmt"
	"io"
	"time"

	"myelin/crypto/sas"
	"myelin/id"
	"myelin/keys"
)

// Transport says how a flow's messages travel.
type Transport int

const (
	// ToDevice flows use to-device messages tied by transaction_id.
	ToDevice Transport = iota + 1
	// InRoom flows use room events tied by m.relates_to to the request
	// event, whose event ID is the flow ID.
	InRoom
)

// String names the transport.
func (t Transport) String() string {
	switch t {
	case ToDevice:
		return "to-device"
	case InRoom:
		return "in-room"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// State is the state of a flow.
type State int

// The states of a flow. A flow moves forward only; Done and Cancelled are
// final.
const (
	// Requested: a request was sent or received and not yet answered.
	Requested State = iota + 1
	// Ready: the request was accepted (ready sent or received); the keys to
	// verify are pinned.
	Ready
	// Started: m.key.verification.start was sent or received, no accept yet.
	Started
	// Accepted: the accept was sent or received; ephemeral keys are being
	// exchanged.
	Accepted
	// KeysExchanged: both ephemeral keys are known; the SAS can be shown.
	KeysExchanged
	// Confirmed: our user confirmed the SAS and our MAC was sent; waiting
	// for theirs.
	Confirmed
	// MacReceived: their MAC verified against the pinned keys; waiting for
	// our user to confirm.
	MacReceived
	// Done: both sides confirmed and verified; the Outcome was produced.
	Done
	// Cancelled: the flow ended without verifying anything.
	Cancelled
)

// String names the state.
func (s State) String() string {
	switch s {
	case Requested:
		return "requested"
	case Ready:
		return "ready"
	case Started:
		return "started"
	case Accepted:
		return "accepted"
	case KeysExchanged:
		return "keys_exchanged"
	case Confirmed:
		return "confirmed"
	case MacReceived:
		return "mac_received"
	case Done:
		return "done"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Timeouts from the spec.
const (
	// FlowTimeout: a verification that does not complete within 10 minutes
	// is cancelled with m.timeout.
	FlowTimeout = 10 * time.Minute
	// RequestMaxAge: a request whose timestamp (or origin_server_ts) is more
	// than 10 minutes old is ignored.
	RequestMaxAge = 10 * time.Minute
	// RequestMaxSkew: a to-device request more than 5 minutes in the future
	// is ignored.
	RequestMaxSkew = 5 * time.Minute
	// RequestPromptTimeout: a received request the user does not answer is
	// dismissed 2 minutes after receipt.
	RequestPromptTimeout = 2 * time.Minute
)

// Errors returned for input that is ignored or actions that are refused.
var (
	// ErrUnknownFlow: no flow with that ID (the input is ignored, or answered
	// with m.unknown_transaction).
	ErrUnknownFlow = errors.New("verification: unknown flow")
	// ErrWrongState: the action does not fit the flow's state.
	ErrWrongState = errors.New("verification: action not allowed in this state")
	// ErrIgnored: the input was well-formed but is not for us (an expired
	// request, our own echo, a duplicate, a message for a finished flow).
	ErrIgnored = errors.New("verification: message ignored")
	// ErrUnknownDevice: the key lookup does not know the other device.
	ErrUnknownDevice = errors.New("verification: unknown device")
	// ErrKeyChanged: the other side's keys changed after they were pinned.
	ErrKeyChanged = errors.New("verification: keys changed during the verification")
	// ErrNoMasterKey: another user was verified without their master key.
	ErrNoMasterKey = errors.New("verification: the other user's master key was not verified")
	// ErrSenderMismatch: a message came from a user or device the flow is
	// not with.
	ErrSenderMismatch = errors.New("verification: sender does not match the flow")
	// ErrUnexpectedMessage: a message out of order.
	ErrUnexpectedMessage = errors.New("verification: unexpected message")
	// ErrNoCommonMethod: no common method or algorithm.
	ErrNoCommonMethod = errors.New("verification: no common method")
	// ErrTimeout: the flow or request expired.
	ErrTimeout = errors.New("verification: timed out")
)

// Own is this device's identity in verification.
type Own struct {
	User      id.UserID
	Device    id.DeviceID
	DeviceKey keys.Ed25519PublicKey
	// MasterKey is our master key when this device trusts it (it holds the
	// private key, or verified it); the zero value otherwise. It is offered
	// in our MAC so the other side can verify our identity.
	MasterKey keys.Ed25519PublicKey
}

// KeyLookup returns what the caller's device store believes now about a
// device of a user: its Ed25519 key, the user's master key and, for the
// collision check, the user's other cross-signing keys and device IDs. It
// must not do network I/O; return ErrUnknownDevice (wrapped) when the
// device is not known.
type KeyLookup func(user id.UserID, device id.DeviceID) (sas.TheirKeys, error)

// Options tune policy; the zero value is the strict default.
type Options struct {
	// AllowLegacyMAC lets a flow use the deprecated hkdf-hmac-sha256 MAC
	// (libolm's broken base64) with peers that offer nothing better. Even
	// then it is never chosen when the peer offers hkdf-hmac-sha256.v2.
	AllowLegacyMAC bool
	// AllowDeviceOnly accepts verifying another user's device without their
	// master key (deprecated by the spec; threat model A2 rule 4).
	AllowDeviceOnly bool
	// QR advertises QR code verification (m.qr_code.show.v1,
	// m.qr_code.scan.v1, m.reciprocate.v1) besides SAS.
	QR bool
}

// Config configures a Machine.
type Config struct {
	Own    Own
	Rand   io.Reader
	Lookup KeyLookup
	Options
}

// FlowRef names a flow. For to-device flows it is the other user and the
// transaction ID; for in-room flows the room and the request's event ID.
type FlowRef struct {
	Transport Transport
	Room      id.RoomID // in-room only
	User      id.UserID // to-device only: the other user
	ID        string
}

// Incoming is one received verification event, with its sender as the
// transport authenticated it.
type Incoming struct {
	Transport Transport
	// Type is the event type (m.key.verification.*, or m.room.message for
	// an in-room request).
	Type string
	// Sender is the to-device envelope sender, or the room event's sender.
	Sender id.UserID
	// SenderDevice is the sending device when the caller authenticated it
	// (an Olm-encrypted to-device message); zero otherwise.
	SenderDevice id.DeviceID
	// Room, EventID and OriginServerTS describe an in-room event.
	Room           id.RoomID
	EventID        id.EventID
	OriginServerTS time.Time
	// Content is the event content. For an encrypted in-room event it is
	// the decrypted content with the cleartext m.relates_to put back.
	Content []byte
}

// Outgoing is a message to send.
type Outgoing struct {
	Transport Transport
	// Type is the event type to send.
	Type string
	// ToUser and ToDevices address a to-device message.
	ToUser    id.UserID
	ToDevices []id.DeviceID
	// Room addresses an in-room event.
	Room id.RoomID
	// Content is the canonical JSON content.
	Content []byte
}

// Request describes a received request to show to the user.
type Request struct {
	From       sas.Party
	Methods    []string
	ReceivedAt time.Time
	// ExpiresAt is when the prompt is dismissed if unanswered.
	ExpiresAt time.Time
}

// SAS is the short authentication string to show.
type SAS struct {
	// Emoji is set when both sides support the emoji method.
	Emoji *[7]sas.Emoji
	// Decimal is always available.
	Decimal [3]int
}

// Cancellation says why a flow ended without verifying anything.
type Cancellation struct {
	Code   CancelCode
	Reason string
	// ByUs is true when this device cancelled (and sent the cancel, if
	// anything was to be sent).
	ByUs bool
	// Err is the local cause when ByUs (wraps sas.ErrDeviceIDCollision,
	// ErrKeyChanged, ...), for alerts.
	Err error
}

// Result is what a step produced.
type Result struct {
	Flow  FlowRef
	State State
	// Send are the messages to send, in order.
	Send []Outgoing
	// Request is a new incoming request to prompt the user with.
	Request *Request
	// SAS is set once, when the keys have been exchanged.
	SAS *SAS
	// QRScanned is set when the other device scanned our QR code and
	// returned its secret: ask our user whether the other device shows
	// success, then call ConfirmQRScanned (or Cancel).
	QRScanned bool
	// Outcome is set once, when the verification succeeded.
	Outcome *Outcome
	// Cancelled is set when the flow was cancelled by this step.
	Cancelled *Cancellation
}
