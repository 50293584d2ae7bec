package e2ee

import (
	"encoding/json"
	"time"
)

// TrustPolicy decides whom room keys go to and whose messages are shown.
// The zero value is the strict policy (threat model "strict"): share only
// with cross-signed devices of pinned or verified identities, hide messages
// from devices that are not cross-signed, and block sending when a member's
// identity changes until the user acknowledges.
type TrustPolicy struct {
	// ShareWithNonCrossSigned also shares room keys with devices their
	// owner has not cross-signed (legacy behaviour; A1b).
	ShareWithNonCrossSigned bool
	// ShowNonCrossSigned shows messages from devices that are not
	// cross-signed (with TrustUnverifiedDevice) instead of hiding them.
	ShowNonCrossSigned bool
	// AllowUnverifiedIdentityChange keeps sending (after an alert) when an
	// identity that was pinned but never verified changes. A change of a
	// verified identity always blocks.
	AllowUnverifiedIdentityChange bool
}

// StrictPolicy returns the default policy (the zero value).
func StrictPolicy() TrustPolicy { return TrustPolicy{} }

// PermissivePolicy shares with and shows devices that are not cross-signed
// (still never devices whose keys changed or are reused), and only alerts
// on a change of an unverified identity: the behaviour of clients before
// MSC4153, for accounts that have not set up cross-signing. A verified
// identity that changes still blocks sending.
func PermissivePolicy() TrustPolicy {
	return TrustPolicy{ShareWithNonCrossSigned: true, ShowNonCrossSigned: true, AllowUnverifiedIdentityChange: true}
}

// Rotation limits: a room's m.room.encryption settings are clamped to these
// (threat model B13 rule 3; spec defaults are one week and 100 messages).
const (
	MaxRotationPeriod   = 7 * 24 * time.Hour
	MinRotationPeriod   = time.Hour
	MaxRotationMessages = 100
)

// ToDeviceEvent is one event of /sync to_device.events.
type ToDeviceEvent struct {
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	Content json.RawMessage `json:"content"`
}

// Event is a room event in the client-server format
// (https://spec.matrix.org/v1.16/client-server-api/#room-event-format). It
// mirrors Event field for field; e2ee does not import api because
// api pulls in net/http.
type Event struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       map[string]any  `json:"unsigned,omitempty"`
}

// RoomUpdate carries the state changes of one room in a sync: m.room.member
// and m.room.encryption events (from state and timeline), in order.
type RoomUpdate struct {
	RoomID string
	Events []Event
}

// SyncInput is what the machine needs from one /sync response.
type SyncInput struct {
	ToDevice           []ToDeviceEvent
	DeviceListsChanged []string
	DeviceListsLeft    []string
	// OneTimeKeyCounts is device_one_time_keys_count (nil if absent).
	OneTimeKeyCounts map[string]int
	// UnusedFallbackKeyTypes is device_unused_fallback_key_types; nil
	// means the server did not report it.
	UnusedFallbackKeyTypes []string
	Rooms                  []RoomUpdate
}

// RequestType says which endpoint a Request goes to.
type RequestType string

// Request types.
const (
	RequestKeysUpload   RequestType = "keys_upload"    // POST /_matrix/client/v3/keys/upload
	RequestKeysQuery    RequestType = "keys_query"     // POST /_matrix/client/v3/keys/query
	RequestKeysClaim    RequestType = "keys_claim"     // POST /_matrix/client/v3/keys/claim
	RequestSendToDevice RequestType = "send_to_device" // PUT /_matrix/client/v3/sendToDevice/{EventType}/{ID}
)

// Request is an outgoing request. The caller sends Body to the endpoint of
// Type and calls Machine.MarkSent(ID, responseBody). For send-to-device the
// transaction ID is ID, so retries are idempotent.
type Request struct {
	ID        string          `json:"id"`
	Type      RequestType     `json:"type"`
	EventType string          `json:"event_type,omitempty"`
	Body      json.RawMessage `json:"body"`
	// Meta is machine-private bookkeeping.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// DecryptedToDevice is a to-device event that the machine did not consume
// itself (verification messages, for example). Encrypted events passed the
// Olm sender-binding checks and name the sending device; for cleartext ones
// (Encrypted false) only the server-asserted Sender is known.
type DecryptedToDevice struct {
	Encrypted     bool
	Type          string
	Sender        string
	SenderDevice  string
	SenderCurve   string
	SenderEd25519 string
	Content       json.RawMessage
}

// Result is what a step produced for the application.
type Result struct {
	Alerts   []Alert
	ToDevice []DecryptedToDevice
	Rejected []Rejection
}

func (r *Result) reject(code RejectCode, sender, device string, err error) {
	r.Rejected = append(r.Rejected, Rejection{Code: code, Sender: sender, DeviceID: device, Err: err})
}

// Trust is the authenticity of a decrypted room event, decided at decryption
// time (threat model A4 rule 4).
type Trust int

// Trust levels, strongest first.
const (
	// TrustVerifiedIdentity: the session came over Olm from a device
	// cross-signed by an identity we verified.
	TrustVerifiedIdentity Trust = iota + 1
	// TrustCrossSignedPinned: cross-signed device of a pinned (TOFU),
	// unverified identity.
	TrustCrossSignedPinned
	// TrustUnverifiedDevice: the device is known but not cross-signed.
	TrustUnverifiedDevice
	// TrustUnknownDevice: the device is no longer (or not) in its owner's
	// device list.
	TrustUnknownDevice
	// TrustIdentityChanged: the owner's identity changed since it was
	// pinned and the change is not acknowledged.
	TrustIdentityChanged
	// TrustForwardedOrBackup: the session came from a forward or backup;
	// nothing proves who created it.
	TrustForwardedOrBackup
	// TrustPlaintext: the event was not encrypted (state, or an
	// unencrypted room).
	TrustPlaintext
)

var trustNames = map[Trust]string{
	TrustVerifiedIdentity:  "verified_identity",
	TrustCrossSignedPinned: "cross_signed_pinned",
	TrustUnverifiedDevice:  "unverified_device",
	TrustUnknownDevice:     "unknown_device",
	TrustIdentityChanged:   "identity_changed",
	TrustForwardedOrBackup: "forwarded_or_backup",
	TrustPlaintext:         "plaintext",
}

// String returns the trust level's name.
func (t Trust) String() string { return trustNames[t] }

// Provenance says who sent a decrypted event and how sure we are.
type Provenance struct {
	Trust         Trust
	SenderUser    string
	SenderDevice  string
	SenderCurve   string
	SenderEd25519 string
	SessionID     string
	Index         uint32
	// Warning explains a trust level below TrustCrossSignedPinned in words.
	Warning string
	// SharedBy is the user whose room-key bundle (MSC4268) gave us the
	// session; show "shared by" with the message (threat model B6 rule 4).
	SharedBy string
	// Timestamp flags an origin_server_ts that is implausible for the
	// session (threat model B4 rule 2). The server sets the timestamp, so
	// this is informational: show the time as doubtful, never trust it.
	Timestamp TimestampFlag
}

// TimestampFlag says whether a decrypted event's origin_server_ts fits the
// other events of its Megolm session.
type TimestampFlag int

// Timestamp flags.
const (
	// TimestampPlausible: nothing contradicts the timestamp.
	TimestampPlausible TimestampFlag = iota
	// TimestampInFuture: later than our clock (beyond TimestampSkew).
	TimestampInFuture
	// TimestampOutsideSessionWindow: further than MaxSessionSpan from
	// another event of the same session.
	TimestampOutsideSessionWindow
	// TimestampOutOfOrder: a lower message index of the session carries a
	// later timestamp, or a higher index an earlier one (beyond
	// TimestampSkew); Megolm indices only grow with time.
	TimestampOutOfOrder
)

var timestampNames = map[TimestampFlag]string{
	TimestampPlausible:            "plausible",
	TimestampInFuture:             "in_future",
	TimestampOutsideSessionWindow: "outside_session_window",
	TimestampOutOfOrder:           "out_of_order",
}

// String returns the flag's name.
func (f TimestampFlag) String() string { return timestampNames[f] }

// Decrypted is a room event after decryption: Event has the plaintext type
// and content.
type Decrypted struct {
	Event      Event
	Provenance Provenance
}
