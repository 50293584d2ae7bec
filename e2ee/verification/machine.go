package verification

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"myelin/crypto/sas"
	"myelin/id"
	"myelin/keys"
)

// MaxFlows bounds the flows a Machine tracks; requests beyond it are
// ignored (finished flows are forgotten first to make room).
const MaxFlows = 256

// ErrTooManyFlows: MaxFlows unfinished flows exist.
var ErrTooManyFlows = errors.New("verification: too many flows")

// ErrInvalidArgument: a user action was called with unusable arguments.
var ErrInvalidArgument = errors.New("verification: invalid argument")

// ErrInvalidConfig: NewMachine lacks our identity, randomness or the key
// lookup.
var ErrInvalidConfig = errors.New("verification: incomplete config")

// full reports whether no flow can be added, after forgetting finished
// flows (late messages for them then count as unknown).
func (m *Machine) full() bool {
	if len(m.flows) < MaxFlows {
		return false
	}
	for ref, f := range m.flows {
		if f.state == Done || f.state == Cancelled {
			delete(m.flows, ref)
		}
	}
	return len(m.flows) >= MaxFlows
}

// Machine tracks this device's verification flows. It is not safe for
// concurrent use; the caller serialises calls.
type Machine struct {
	cfg   Config
	flows map[FlowRef]*flow
}

// NewMachine returns a Machine for our device.
func NewMachine(c Config) (*Machine, error) {
	if c.Own.User.IsZero() || c.Own.Device.IsZero() || c.Own.DeviceKey.IsZero() || c.Rand == nil || c.Lookup == nil {
		return nil, ErrInvalidConfig
	}
	return &Machine{cfg: c, flows: make(map[FlowRef]*flow)}, nil
}

// ourMethods are the methods we advertise.
func (m *Machine) ourMethods() []string {
	if m.cfg.QR {
		return []string{MethodSAS, MethodQRShow, MethodQRScan, MethodReciprocate}
	}
	return []string{MethodSAS}
}

// State returns a flow's state.
func (m *Machine) State(ref FlowRef) (State, bool) {
	f, ok := m.flows[ref]
	if !ok {
		return 0, false
	}
	return f.state, true
}

func (m *Machine) newTxnID() (string, error) {
	var b [18]byte
	if _, err := io.ReadFull(m.cfg.Rand, b[:]); err != nil {
		return "", fmt.Errorf("verification: transaction ID: %w", err)
	}
	return strings.NewReplacer("+", "-", "/", "_").Replace(keys.EncodeBase64(b[:])), nil
}

// RequestToDevice starts a to-device request to some of a user's devices
// (for our own user: our other devices). The first device to answer ready
// gets the flow; the others are sent m.accepted.
func (m *Machine) RequestToDevice(now time.Time, to id.UserID, devices []id.DeviceID) (Result, error) {
	if to.IsZero() || len(devices) == 0 {
		return Result{}, fmt.Errorf("verification: request: no recipient: %w", ErrInvalidArgument)
	}
	if m.full() {
		return Result{}, ErrTooManyFlows
	}
	txn, err := m.newTxnID()
	if err != nil {
		return Result{}, err
	}
	devices = slices.DeleteFunc(slices.Clone(devices), func(d id.DeviceID) bool { return to == m.cfg.Own.User && d == m.cfg.Own.Device })
	if len(devices) == 0 {
		return Result{}, fmt.Errorf("verification: request: no device other than ours: %w", ErrInvalidArgument)
	}
	ref := FlowRef{Transport: ToDevice, User: to, ID: txn}
	f := m.newFlow(ref, now)
	f.their = sas.Party{User: to}
	f.weRequested = true
	f.fanout = devices
	m.flows[ref] = f
	out := f.outgoing(TypeRequest, map[string]any{
		"from_device": m.cfg.Own.Device.String(),
		"methods":     m.ourMethods(),
		"timestamp":   now.UnixMilli(),
	})
	out.ToDevices = slices.Clone(devices)
	return f.result(Result{Send: []Outgoing{out}}), nil
}

// RequestInRoomContent is the content of an in-room request to user to (an
// m.room.message). Send it, then register the flow with RequestSentInRoom
// and the event ID the server returned.
func (m *Machine) RequestInRoomContent(room id.RoomID, to id.UserID) Outgoing {
	return Outgoing{
		Transport: InRoom,
		Type:      TypeRoomMessage,
		Room:      room,
		Content: encode(map[string]any{
			"msgtype":     TypeRequest,
			"body":        m.cfg.Own.User.String() + " is requesting to verify your key, but your client does not support in-chat key verification.",
			"from_device": m.cfg.Own.Device.String(),
			"methods":     m.ourMethods(),
			"to":          to.String(),
		}),
	}
}

// RequestSentInRoom registers our in-room request once sent; its event ID
// is the flow ID.
func (m *Machine) RequestSentInRoom(now time.Time, room id.RoomID, to id.UserID, eventID id.EventID) (FlowRef, error) {
	if to == m.cfg.Own.User {
		return FlowRef{}, fmt.Errorf("verification: in-room verification is between different users: %w", ErrInvalidArgument)
	}
	ref := FlowRef{Transport: InRoom, Room: room, ID: eventID.String()}
	if _, dup := m.flows[ref]; dup {
		return FlowRef{}, fmt.Errorf("verification: request %s registered twice: %w", ref.ID, ErrWrongState)
	}
	if m.full() {
		return FlowRef{}, ErrTooManyFlows
	}
	f := m.newFlow(ref, now)
	f.their = sas.Party{User: to}
	f.weRequested = true
	m.flows[ref] = f
	return ref, nil
}

func (m *Machine) newFlow(ref FlowRef, now time.Time) *flow {
	return &flow{m: m, ref: ref, state: Requested, created: now, deadline: now.Add(FlowTimeout)}
}

// Accept answers a received request with ready: the user agreed to verify.
// The keys to verify are pinned now.
func (m *Machine) Accept(now time.Time, ref FlowRef) (Result, error) {
	f, r, err := m.active(now, ref)
	if err != nil {
		return r, err
	}
	if f.state != Requested || f.weRequested {
		return Result{}, ErrWrongState
	}
	if len(f.methods) == 0 {
		return Result{}, ErrNoCommonMethod
	}
	if r, ok := f.pin(); !ok {
		return r, nil
	}
	f.state = Ready
	f.consented = true
	out := f.outgoing(TypeReady, map[string]any{
		"from_device": m.cfg.Own.Device.String(),
		"methods":     f.methods,
	})
	return f.result(Result{Send: []Outgoing{out}}), nil
}

// StartSAS sends m.key.verification.start with method m.sas.v1 in a ready
// flow.
func (m *Machine) StartSAS(now time.Time, ref FlowRef) (Result, error) {
	f, r, err := m.active(now, ref)
	if err != nil {
		return r, err
	}
	if f.state != Ready || !slices.Contains(f.methods, MethodSAS) {
		return Result{}, ErrWrongState
	}
	macs := []string{sas.MACv2.String()}
	if m.cfg.AllowLegacyMAC {
		macs = append(macs, sas.MACInsecureLegacyHKDF.String())
	}
	out := f.outgoing(TypeStart, map[string]any{
		"from_device":                  m.cfg.Own.Device.String(),
		"method":                       MethodSAS,
		"key_agreement_protocols":      []string{sas.KeyAgreementProtocol},
		"hashes":                       []string{sas.HashAlgorithm},
		"message_authentication_codes": macs,
		"short_authentication_string":  []string{sas.SASDecimal, sas.SASEmoji},
	})
	f.startCanon = out.Content
	f.weStarted = true
	f.startMethod = MethodSAS
	f.state = Started
	return f.result(Result{Send: []Outgoing{out}}), nil
}

// AcceptSAS accepts a start that arrived without a request the user agreed
// to (a to-device start without request, deprecated but still sent by some
// clients). Starts within an accepted request are accepted automatically.
func (m *Machine) AcceptSAS(now time.Time, ref FlowRef) (Result, error) {
	f, r, err := m.active(now, ref)
	if err != nil {
		return r, err
	}
	if f.state != Started || f.weStarted || f.theirStart == nil {
		return Result{}, ErrWrongState
	}
	f.consented = true
	return f.result(f.accept()), nil
}

// Confirm records that the user saw matching short authentication strings:
// our MAC is sent, and if theirs already verified the flow completes.
func (m *Machine) Confirm(now time.Time, ref FlowRef) (Result, error) {
	f, r, err := m.active(now, ref)
	if err != nil {
		return r, err
	}
	if f.state != KeysExchanged && f.state != MacReceived {
		return Result{}, ErrWrongState
	}
	return f.result(f.confirm()), nil
}

// Mismatch records that the user saw different strings: the flow is
// cancelled with m.mismatched_sas.
func (m *Machine) Mismatch(now time.Time, ref FlowRef) (Result, error) {
	f, r, err := m.active(now, ref)
	if err != nil {
		return r, err
	}
	if f.state != KeysExchanged && f.state != MacReceived {
		return Result{}, ErrWrongState
	}
	return f.result(f.cancel(CancelMismatchedSAS, nil)), nil
}

// Cancel cancels a flow on the user's behalf (m.user).
func (m *Machine) Cancel(now time.Time, ref FlowRef) (Result, error) {
	f, ok := m.flows[ref]
	if !ok {
		return Result{}, ErrUnknownFlow
	}
	if f.state == Done || f.state == Cancelled {
		return Result{}, ErrWrongState
	}
	return f.result(f.cancel(CancelUser, nil)), nil
}

// Tick expires flows: a flow that has not completed within FlowTimeout is
// cancelled (m.timeout is sent), an unanswered received request is
// dismissed, and finished flows are forgotten once their time is up.
func (m *Machine) Tick(now time.Time) []Result {
	var out []Result
	refs := make([]FlowRef, 0, len(m.flows))
	for ref := range m.flows {
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, func(a, b FlowRef) int { return strings.Compare(a.ID, b.ID) })
	for _, ref := range refs {
		f := m.flows[ref]
		if r, expired := f.checkTime(now); expired {
			out = append(out, f.result(r))
			continue
		}
		if (f.state == Done || f.state == Cancelled) && now.After(f.deadline) {
			delete(m.flows, ref)
		}
	}
	return out
}

// active finds a flow for a user action and applies timeouts first.
// An expired flow is cancelled and the cancel returned with ErrTimeout.
func (m *Machine) active(now time.Time, ref FlowRef) (*flow, Result, error) {
	f, ok := m.flows[ref]
	if !ok {
		return nil, Result{}, ErrUnknownFlow
	}
	if f.state == Done || f.state == Cancelled {
		return nil, Result{}, ErrWrongState
	}
	if r, expired := f.checkTime(now); expired {
		return nil, f.result(r), ErrTimeout
	}
	return f, Result{}, nil
}

// Handle processes one received verification event. It returns an error,
// and changes nothing, for input it ignores (unparseable, not for us,
// expired requests, unknown in-room flows); every problem within a flow
// cancels the flow and is reported in the Result.
func (m *Machine) Handle(now time.Time, in Incoming) (Result, error) {
	c, canon, err := parseContent(in.Content)
	if err != nil {
		return Result{}, err
	}
	if in.Sender.IsZero() {
		return Result{}, fmt.Errorf("verification: no sender: %w", ErrInvalidMessage)
	}
	var ref FlowRef
	isRequest := false
	switch in.Transport {
	case ToDevice:
		if !strings.HasPrefix(in.Type, "m.key.verification.") {
			return Result{}, fmt.Errorf("verification: event type %q: %w", in.Type, ErrIgnored)
		}
		if c.TransactionID == "" || len(c.TransactionID) > 255 {
			return Result{}, fmt.Errorf("verification: transaction_id: %w", ErrInvalidMessage)
		}
		ref = FlowRef{Transport: ToDevice, User: in.Sender, ID: c.TransactionID}
		isRequest = in.Type == TypeRequest
	case InRoom:
		if in.Room.IsZero() {
			return Result{}, fmt.Errorf("verification: no room: %w", ErrInvalidMessage)
		}
		switch {
		case in.Type == TypeRoomMessage && c.MsgType == TypeRequest:
			if in.EventID.IsZero() {
				return Result{}, fmt.Errorf("verification: request without event ID: %w", ErrInvalidMessage)
			}
			ref = FlowRef{Transport: InRoom, Room: in.Room, ID: in.EventID.String()}
			isRequest = true
		case strings.HasPrefix(in.Type, "m.key.verification.") && in.Type != TypeRequest:
			if c.RelatesTo == nil || c.RelatesTo.RelType != RelReference || c.RelatesTo.EventID == "" {
				return Result{}, fmt.Errorf("verification: m.relates_to: %w", ErrInvalidMessage)
			}
			ref = FlowRef{Transport: InRoom, Room: in.Room, ID: c.RelatesTo.EventID}
		default:
			return Result{}, fmt.Errorf("verification: event type %q: %w", in.Type, ErrIgnored)
		}
	default:
		return Result{}, fmt.Errorf("verification: transport: %w", ErrInvalidMessage)
	}

	f, known := m.flows[ref]
	switch {
	case isRequest && known:
		return Result{}, fmt.Errorf("verification: duplicate request: %w", ErrIgnored)
	case isRequest:
		return m.handleRequest(now, ref, in, c)
	case known:
		return f.result(f.handle(now, in, c, canon)), nil
	case in.Transport == ToDevice && in.Type == TypeStart:
		return m.handleStartWithoutRequest(now, ref, in, c, canon)
	case in.Transport == ToDevice && in.Type != TypeCancel:
		// Unknown transaction: tell the sender (never for start or cancel,
		// so two devices cannot loop).
		dev := in.SenderDevice
		if dev.IsZero() {
			dev, _ = id.ParseDeviceID(c.FromDevice)
		}
		if dev.IsZero() {
			return Result{}, ErrUnknownFlow
		}
		cancel := encode(map[string]any{
			"transaction_id": ref.ID,
			"code":           string(CancelUnknownTransaction),
			"reason":         CancelUnknownTransaction.reason(),
		})
		return Result{Flow: ref, Send: []Outgoing{{
			Transport: ToDevice, Type: TypeCancel, ToUser: in.Sender, ToDevices: []id.DeviceID{dev}, Content: cancel,
		}}}, ErrUnknownFlow
	}
	// In-room events for requests we never saw are not ours (the room may
	// hold other users' verifications): ignore them.
	return Result{}, ErrUnknownFlow
}

func (m *Machine) handleRequest(now time.Time, ref FlowRef, in Incoming, c *content) (Result, error) {
	from, err := id.ParseDeviceID(c.FromDevice)
	if err != nil || len(c.Methods) == 0 {
		return Result{}, fmt.Errorf("verification: request: from_device or methods: %w", ErrInvalidMessage)
	}
	if in.Sender == m.cfg.Own.User && from == m.cfg.Own.Device {
		return Result{}, fmt.Errorf("verification: our own request: %w", ErrIgnored)
	}
	if !in.SenderDevice.IsZero() && in.SenderDevice != from {
		return Result{}, fmt.Errorf("verification: request from_device: %w", ErrSenderMismatch)
	}
	var sent time.Time
	switch in.Transport {
	case ToDevice:
		if c.Timestamp <= 0 {
			return Result{}, fmt.Errorf("verification: request timestamp: %w", ErrInvalidMessage)
		}
		sent = time.UnixMilli(c.Timestamp)
		if sent.After(now.Add(RequestMaxSkew)) {
			return Result{}, fmt.Errorf("verification: request from the future: %w", ErrIgnored)
		}
	case InRoom:
		to, err := id.ParseUserIDLenient(c.To)
		if err != nil || to != m.cfg.Own.User || in.Sender == m.cfg.Own.User {
			// Not addressed to us, or one of our own requests.
			return Result{}, fmt.Errorf("verification: request not for us: %w", ErrIgnored)
		}
		sent = in.OriginServerTS
		if sent.IsZero() {
			return Result{}, fmt.Errorf("verification: request origin_server_ts: %w", ErrInvalidMessage)
		}
	}
	if now.Sub(sent) > RequestMaxAge {
		return Result{}, fmt.Errorf("verification: request expired: %w", ErrIgnored)
	}
	if m.full() {
		return Result{}, fmt.Errorf("%w: %w", ErrTooManyFlows, ErrIgnored)
	}
	f := m.newFlow(ref, now)
	f.their = sas.Party{User: in.Sender, Device: from}
	f.methods = m.corresponding(c.Methods)
	f.promptExpiry = minTime(sent.Add(RequestMaxAge), now.Add(RequestPromptTimeout))
	m.flows[ref] = f
	return f.result(Result{Request: &Request{
		From: f.their, Methods: slices.Clone(f.methods), ReceivedAt: now, ExpiresAt: f.promptExpiry,
	}}), nil
}

// handleStartWithoutRequest handles a to-device start with a new
// transaction ID (the deprecated flow without request). The user must
// AcceptSAS it.
func (m *Machine) handleStartWithoutRequest(now time.Time, ref FlowRef, in Incoming, c *content, canon []byte) (Result, error) {
	from, err := id.ParseDeviceID(c.FromDevice)
	if err != nil {
		return Result{}, fmt.Errorf("verification: start from_device: %w", ErrInvalidMessage)
	}
	if m.full() {
		return Result{}, fmt.Errorf("%w: %w", ErrTooManyFlows, ErrIgnored)
	}
	if !in.SenderDevice.IsZero() && in.SenderDevice != from {
		return Result{}, fmt.Errorf("verification: start from_device: %w", ErrSenderMismatch)
	}
	f := m.newFlow(ref, now)
	f.their = sas.Party{User: in.Sender, Device: from}
	f.methods = []string{MethodSAS}
	f.state = Ready
	m.flows[ref] = f
	if r, ok := f.pin(); !ok {
		return f.result(r), nil
	}
	return f.result(f.handle(now, in, c, canon)), nil
}

// corresponding are our methods that fit theirs: SAS if both do SAS,
// showing a QR code if they scan, scanning if they show, and reciprocate
// with either.
func (m *Machine) corresponding(theirs []string) []string {
	ours := m.ourMethods()
	has := func(l []string, x string) bool { return slices.Contains(l, x) }
	var out []string
	if has(ours, MethodSAS) && has(theirs, MethodSAS) {
		out = append(out, MethodSAS)
	}
	qr := false
	if has(ours, MethodQRShow) && has(theirs, MethodQRScan) && has(theirs, MethodReciprocate) {
		out, qr = append(out, MethodQRShow), true
	}
	if has(ours, MethodQRScan) && has(theirs, MethodQRShow) && has(theirs, MethodReciprocate) {
		out, qr = append(out, MethodQRScan), true
	}
	if qr {
		out = append(out, MethodReciprocate)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
