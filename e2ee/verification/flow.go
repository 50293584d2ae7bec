package verification

import (
	"fmt"
	"slices"
	"time"

	"myelin/crypto/sas"
	"myelin/id"
	"myelin/keys"
)

// flow is one verification. Its fields change only through the Machine.
type flow struct {
	m   *Machine
	ref FlowRef

	state        State
	created      time.Time
	deadline     time.Time // created + FlowTimeout
	promptExpiry time.Time // received requests only

	their       sas.Party // Device is zero until known (ready, or a received request)
	weRequested bool
	fanout      []id.DeviceID // to-device request recipients
	consented   bool          // our user agreed to this flow (request sent, ready sent, AcceptSAS)
	methods     []string      // methods both sides support

	// Pinned when the other device became known; never looked up again
	// except to detect a change.
	pinned     *sas.PinnedKeys
	pinnedKeys sas.TheirKeys

	// SAS.
	weStarted   bool
	startMethod string   // the method of our start
	startCanon  []byte   // canonical JSON of the start content, as sent
	theirStart  *content // a received start waiting for AcceptSAS
	macMethod   sas.MACMethod
	acceptMAC   string // the MAC name we echo in accept
	sasMethods  []string
	commitment  string // received in accept (we started)
	eph         *sas.Ephemeral
	est         *sas.Established
	ourKeySent  bool
	confirmed   bool
	verified    []sas.Key // from their MAC
	theirDone   bool

	outcome *Outcome

	// QR.
	qr             *sas.QRCode // the code we show
	qrShownProves  []sas.Key   // what a valid reciprocation proves to us
	qrReciprocated bool        // a start with our secret arrived
	qrScanned      []sas.Key   // what the code we scanned proved (we sent reciprocate)
}

func (f *flow) sasFlow() sas.Flow {
	return sas.Flow{
		ID:        f.ref.ID,
		Our:       sas.Party{User: f.m.cfg.Own.User, Device: f.m.cfg.Own.Device},
		Their:     f.their,
		WeStarted: f.weStarted,
	}
}

func (f *flow) result(r Result) Result {
	r.Flow = f.ref
	r.State = f.state
	return r
}

// outgoing builds a message of the flow, adding transaction_id or
// m.relates_to.
func (f *flow) outgoing(typ string, fields map[string]any) Outgoing {
	o := Outgoing{Transport: f.ref.Transport, Type: typ}
	switch f.ref.Transport {
	case ToDevice:
		fields["transaction_id"] = f.ref.ID
		o.ToUser = f.their.User
		if !f.their.Device.IsZero() {
			o.ToDevices = []id.DeviceID{f.their.Device}
		} else {
			o.ToDevices = slices.Clone(f.fanout)
		}
	case InRoom:
		fields["m.relates_to"] = map[string]any{"rel_type": RelReference, "event_id": f.ref.ID}
		o.Room = f.ref.Room
	}
	o.Content = encode(fields)
	return o
}

// cancel ends the flow by our decision and sends the cancel.
func (f *flow) cancel(code CancelCode, cause error) Result {
	r := f.cancelQuietly(code, cause)
	if f.ref.Transport == ToDevice && f.their.Device.IsZero() && len(f.fanout) == 0 {
		return r
	}
	r.Send = append(r.Send, f.outgoing(TypeCancel, map[string]any{"code": string(code), "reason": code.reason()}))
	return r
}

// cancelQuietly ends the flow without telling the other side.
func (f *flow) cancelQuietly(code CancelCode, cause error) Result {
	f.state = Cancelled
	f.wipe()
	return Result{Cancelled: &Cancellation{Code: code, Reason: code.reason(), ByUs: true, Err: cause}}
}

func (f *flow) wipe() {
	if f.est != nil {
		f.est.Wipe()
		f.est = nil
	}
	f.eph = nil
}

// expirePrompt dismisses an unanswered received request (nothing is sent:
// another of our devices may still answer).
func (f *flow) expirePrompt() Result {
	return f.cancelQuietly(CancelTimeout, ErrTimeout)
}

// checkTime applies the timeouts.
func (f *flow) checkTime(now time.Time) (Result, bool) {
	if f.state == Done || f.state == Cancelled {
		return Result{}, false
	}
	if f.state == Requested && !f.weRequested && now.After(f.promptExpiry) {
		return f.expirePrompt(), true
	}
	if now.After(f.deadline) {
		return f.cancel(CancelTimeout, ErrTimeout), true
	}
	return Result{}, false
}

// pin fixes the keys to verify, from the lookup, when the other device
// becomes known (A2 rule 1). A device ID equal to a cross-signing key of
// the user cancels (A2 rule 3).
func (f *flow) pin() (Result, bool) {
	tk, err := f.m.cfg.Lookup(f.their.User, f.their.Device)
	if err != nil {
		return f.cancel(CancelKeyMismatch, fmt.Errorf("verification: lookup: %w", err)), false
	}
	if tk.Device != f.their.Device {
		return f.cancel(CancelKeyMismatch, fmt.Errorf("verification: lookup returned another device: %w", ErrUnknownDevice)), false
	}
	if f.their.User != f.m.cfg.Own.User && tk.MasterKey.IsZero() && !f.m.cfg.AllowDeviceOnly {
		return f.cancel(CancelKeyMismatch, ErrNoMasterKey), false
	}
	p, err := sas.Pin(tk)
	if err != nil {
		return f.cancel(CancelKeyMismatch, fmt.Errorf("verification: pin: %w", err)), false
	}
	f.pinned = p
	f.pinnedKeys = sas.TheirKeys{Device: tk.Device, DeviceKey: tk.DeviceKey, MasterKey: tk.MasterKey}
	return Result{}, true
}

// handle processes a message of a known flow.
func (f *flow) handle(now time.Time, in Incoming, c *content, canon []byte) Result {
	if f.state == Cancelled {
		return Result{} // never answer after a cancel: no error loops
	}
	if r, ok := f.checkSender(in, c); !ok {
		return r
	}
	if in.Type == TypeCancel && f.state != Done {
		var r Result
		if f.ref.Transport == ToDevice && f.weRequested && f.their.Device.IsZero() {
			// One of their devices declined our fanned-out request: tell
			// the others (spec: m.user, or m.accepted when one accepted).
			var others []id.DeviceID
			for _, d := range f.fanout {
				if d != in.SenderDevice {
					others = append(others, d)
				}
			}
			if len(others) > 0 {
				out := f.outgoing(TypeCancel, map[string]any{"code": string(CancelUser), "reason": CancelUser.reason()})
				out.ToDevices = others
				r.Send = append(r.Send, out)
			}
		}
		f.state = Cancelled
		f.wipe()
		r.Cancelled = &Cancellation{Code: CancelCode(c.Code), Reason: c.Reason}
		return r
	}
	if r, expired := f.checkTime(now); expired {
		return r
	}
	if f.state == Done {
		if in.Type == TypeDone {
			f.theirDone = true
		}
		return Result{}
	}
	switch in.Type {
	case TypeReady:
		return f.onReady(in, c)
	case TypeStart:
		return f.onStart(c, canon)
	case TypeAccept:
		return f.onAccept(c)
	case TypeKey:
		return f.onKey(c)
	case TypeMAC:
		return f.onMAC(c)
	case TypeDone:
		if f.state == Started && f.qrScanned != nil {
			// The device whose code we scanned confirmed: we are done.
			f.verified = f.qrScanned
			return f.finish()
		}
		if f.state == MacReceived || (f.state == Started && f.qrReciprocated) {
			// They finished first; we still wait for our user.
			f.theirDone = true
			return Result{}
		}
		// done before their MAC verified proves nothing (B11 rule 2).
		return f.cancel(CancelUnexpectedMessage, ErrUnexpectedMessage)
	}
	// An event type we do not know (a later spec version): ignored.
	return Result{}
}

// checkSender enforces that the message comes from the user and device the
// flow is with. It reports ok=false with the result to return.
func (f *flow) checkSender(in Incoming, c *content) (Result, bool) {
	own := f.m.cfg.Own
	if in.Transport == InRoom && in.Sender == own.User {
		// Our own echo, or another of our devices answering.
		from, _ := id.ParseDeviceID(c.FromDevice)
		if (in.Type == TypeReady || in.Type == TypeStart) && !from.IsZero() && from != own.Device && f.state == Requested && !f.weRequested {
			return f.cancelQuietly(CancelAccepted, nil), false
		}
		return Result{}, false
	}
	if in.Sender != f.their.User {
		if in.Transport == InRoom {
			// Any member of the room can post an event that relates to
			// our request. It is not part of this flow: ignore it rather
			// than cancel, or every member could abort others'
			// verifications.
			return Result{}, false
		}
		return f.cancel(CancelUserMismatch, ErrSenderMismatch), false
	}
	from, err := id.ParseDeviceID(c.FromDevice)
	hasFrom := err == nil
	if (in.Type == TypeReady || in.Type == TypeStart) && !hasFrom {
		return f.cancel(CancelInvalidMessage, fmt.Errorf("verification: from_device: %w", ErrInvalidMessage)), false
	}
	if !in.SenderDevice.IsZero() && hasFrom && in.SenderDevice != from {
		return f.cancel(CancelUserMismatch, ErrSenderMismatch), false
	}
	dev := in.SenderDevice
	if dev.IsZero() && hasFrom {
		dev = from
	}
	if f.their.Device.IsZero() || dev.IsZero() || dev == f.their.Device {
		return Result{}, true
	}
	// Another device of the user answered a request that a device already
	// took (to-device fan-out): tell it, keep the flow.
	if in.Type == TypeReady && f.ref.Transport == ToDevice && f.weRequested {
		out := f.outgoing(TypeCancel, map[string]any{"code": string(CancelAccepted), "reason": CancelAccepted.reason()})
		out.ToDevices = []id.DeviceID{dev}
		return Result{Send: []Outgoing{out}}, false
	}
	if in.Type == TypeReady && f.ref.Transport == InRoom && f.weRequested {
		return Result{}, false // in-room: the other devices see the first ready
	}
	return f.cancel(CancelUserMismatch, ErrSenderMismatch), false
}

func (f *flow) onReady(in Incoming, c *content) Result {
	if f.state != Requested || !f.weRequested {
		return f.cancel(CancelUnexpectedMessage, ErrUnexpectedMessage)
	}
	from, _ := id.ParseDeviceID(c.FromDevice)
	if f.ref.Transport == ToDevice && !slices.Contains(f.fanout, from) {
		return f.cancel(CancelUserMismatch, fmt.Errorf("verification: ready from a device we did not ask: %w", ErrSenderMismatch))
	}
	f.their.Device = from
	f.methods = f.m.corresponding(c.Methods)
	var r Result
	if f.ref.Transport == ToDevice {
		// The others are told the request was accepted elsewhere.
		var others []id.DeviceID
		for _, d := range f.fanout {
			if d != from {
				others = append(others, d)
			}
		}
		if len(others) > 0 {
			out := f.outgoing(TypeCancel, map[string]any{"code": string(CancelAccepted), "reason": CancelAccepted.reason()})
			out.ToDevices = others
			r.Send = append(r.Send, out)
		}
	}
	if len(f.methods) == 0 {
		cr := f.cancel(CancelUnknownMethod, ErrNoCommonMethod)
		cr.Send = append(r.Send, cr.Send...)
		return cr
	}
	if pr, ok := f.pin(); !ok {
		pr.Send = append(r.Send, pr.Send...)
		return pr
	}
	f.state = Ready
	f.consented = true
	return r
}

func (f *flow) onStart(c *content, canon []byte) Result {
	switch {
	case f.state == Ready:
	case f.state == Started && f.weStarted:
		// Both sent start (spec: start collision). Only two SAS starts can
		// be resolved.
		if c.Method != MethodSAS || f.startMethod != MethodSAS {
			return f.cancel(CancelUnexpectedMessage, fmt.Errorf("verification: start collision with another method: %w", ErrUnexpectedMessage))
		}
		own := f.m.cfg.Own
		weAreLarger := own.User.String() > f.their.User.String() ||
			(own.User == f.their.User && own.Device.String() > f.their.Device.String())
		if !weAreLarger {
			return Result{} // their start is ignored; ours stands
		}
		// Ours is ignored: we accept theirs.
		f.weStarted = false
		f.startCanon = nil
	default:
		return f.cancel(CancelUnexpectedMessage, fmt.Errorf("verification: start in state %s: %w", f.state, ErrUnexpectedMessage))
	}
	if c.Method == MethodReciprocate {
		return f.onReciprocate(c)
	}
	if c.Method != MethodSAS || !slices.Contains(f.methods, MethodSAS) {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: method %q: %w", c.Method, ErrNoCommonMethod))
	}
	if !slices.Contains(c.KeyAgreementProtocols, sas.KeyAgreementProtocol) || !slices.Contains(c.Hashes, sas.HashAlgorithm) {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: key agreement or hash: %w", ErrNoCommonMethod))
	}
	mac, name, ok := f.chooseMAC(c.MessageAuthenticationCodes)
	if !ok {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: MAC method: %w", ErrNoCommonMethod))
	}
	var strs []string
	for _, s := range []string{sas.SASDecimal, sas.SASEmoji} {
		if slices.Contains(c.ShortAuthenticationStrings, s) {
			strs = append(strs, s)
		}
	}
	if !slices.Contains(strs, sas.SASDecimal) {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: SAS methods: %w", ErrNoCommonMethod))
	}
	f.macMethod, f.sasMethods = mac, strs
	f.startCanon = canon
	f.theirStart = c
	f.acceptMAC = name
	f.state = Started
	if !f.consented {
		return Result{} // a start without request: AcceptSAS
	}
	return f.accept()
}

// chooseMAC picks the MAC method of a received start: v2 whenever offered,
// the legacy method only if allowed and nothing better is offered. It
// returns the name to echo in accept.
func (f *flow) chooseMAC(offered []string) (sas.MACMethod, string, bool) {
	for _, s := range offered {
		if m, err := sas.ParseMACMethod(s); err == nil && m == sas.MACv2 {
			return m, s, true
		}
	}
	if f.m.cfg.AllowLegacyMAC && slices.Contains(offered, sas.MACInsecureLegacyHKDF.String()) {
		return sas.MACInsecureLegacyHKDF, sas.MACInsecureLegacyHKDF.String(), true
	}
	return 0, "", false
}

// accept sends accept with our commitment.
func (f *flow) accept() Result {
	eph, err := sas.NewEphemeral(f.m.cfg.Rand)
	if err != nil {
		return f.cancel(CancelUser, err)
	}
	f.eph = eph
	out := f.outgoing(TypeAccept, map[string]any{
		"method":                      MethodSAS,
		"key_agreement_protocol":      sas.KeyAgreementProtocol,
		"hash":                        sas.HashAlgorithm,
		"message_authentication_code": f.acceptMAC,
		"short_authentication_string": f.sasMethods,
		"commitment":                  sas.Commitment(eph.PublicKey(), f.startCanon),
	})
	f.theirStart = nil
	f.state = Accepted
	return Result{Send: []Outgoing{out}}
}

func (f *flow) onAccept(c *content) Result {
	if f.state != Started || !f.weStarted {
		return f.cancel(CancelUnexpectedMessage, fmt.Errorf("verification: accept in state %s: %w", f.state, ErrUnexpectedMessage))
	}
	if (c.Method != "" && c.Method != MethodSAS) || c.KeyAgreementProtocol != sas.KeyAgreementProtocol || c.Hash != sas.HashAlgorithm {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: accept algorithms: %w", ErrNoCommonMethod))
	}
	mac, err := sas.ParseMACMethod(c.MessageAuthenticationCode)
	// Only what our start offered: v2, and the legacy method if allowed.
	if err != nil || !(mac == sas.MACv2 || (mac == sas.MACInsecureLegacyHKDF && f.m.cfg.AllowLegacyMAC)) {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: accept MAC method: %w", ErrNoCommonMethod))
	}
	var strs []string
	for _, s := range c.ShortAuthenticationStrings {
		if s != sas.SASDecimal && s != sas.SASEmoji {
			return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: accept SAS method: %w", ErrNoCommonMethod))
		}
		if !slices.Contains(strs, s) {
			strs = append(strs, s)
		}
	}
	if len(strs) == 0 {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: accept SAS methods: %w", ErrNoCommonMethod))
	}
	if c.Commitment == "" || len(c.Commitment) > 64 {
		return f.cancel(CancelInvalidMessage, fmt.Errorf("verification: commitment: %w", ErrInvalidMessage))
	}
	eph, err := sas.NewEphemeral(f.m.cfg.Rand)
	if err != nil {
		return f.cancel(CancelUser, err)
	}
	f.eph = eph
	f.macMethod, f.sasMethods, f.commitment = mac, strs, c.Commitment
	f.state = Accepted
	f.ourKeySent = true
	return Result{Send: []Outgoing{f.outgoing(TypeKey, map[string]any{"key": eph.PublicKey().String()})}}
}

func (f *flow) onKey(c *content) Result {
	if f.state != Accepted || f.est != nil || (f.weStarted && !f.ourKeySent) {
		return f.cancel(CancelUnexpectedMessage, fmt.Errorf("verification: key in state %s: %w", f.state, ErrUnexpectedMessage))
	}
	their, err := keys.ParseCurve25519PublicKey(c.Key)
	if err != nil {
		return f.cancel(CancelInvalidMessage, fmt.Errorf("verification: key: %w", ErrInvalidMessage))
	}
	if f.weStarted {
		// The accepter committed to this key before seeing ours.
		if err := sas.VerifyCommitment(f.commitment, their, f.startCanon); err != nil {
			return f.cancel(CancelMismatchedCommitment, err)
		}
	}
	est, err := f.eph.Establish(their)
	if err != nil {
		return f.cancel(CancelKeyMismatch, err)
	}
	f.est = est
	var r Result
	if !f.weStarted {
		r.Send = append(r.Send, f.outgoing(TypeKey, map[string]any{"key": est.OurPublicKey().String()}))
		f.ourKeySent = true
	}
	s, err := est.ShortAuthString(f.sasFlow())
	if err != nil {
		return f.cancel(CancelInvalidMessage, err)
	}
	show := &SAS{Decimal: s.Decimal()}
	if slices.Contains(f.sasMethods, sas.SASEmoji) {
		e := s.Emoji()
		show.Emoji = &e
	}
	r.SAS = show
	f.state = KeysExchanged
	return r
}

func (f *flow) onMAC(c *content) Result {
	if f.state != KeysExchanged && f.state != Confirmed {
		return f.cancel(CancelUnexpectedMessage, fmt.Errorf("verification: mac in state %s: %w", f.state, ErrUnexpectedMessage))
	}
	verified, err := f.est.VerifyMACs(f.macMethod, f.sasFlow(), f.pinned, &sas.MACContent{MAC: c.MAC, Keys: c.Keys})
	if err != nil {
		return f.cancel(CancelKeyMismatch, err)
	}
	// The device itself must be among the proven keys.
	dev := f.pinned.Device()
	if !slices.ContainsFunc(verified, func(k sas.Key) bool { return k.ID() == dev.ID() }) {
		return f.cancel(CancelKeyMismatch, fmt.Errorf("verification: the device key was not MACed: %w", sas.ErrKeyMismatch))
	}
	f.verified = verified
	if f.confirmed {
		return f.finish()
	}
	f.state = MacReceived
	return Result{}
}

// confirm sends our MAC.
func (f *flow) confirm() Result {
	own := f.m.cfg.Own
	ours := []sas.Key{sas.DeviceKey(own.Device, own.DeviceKey)}
	if !own.MasterKey.IsZero() {
		ours = append(ours, sas.MasterKey(own.MasterKey))
	}
	mc, err := f.est.MACs(f.macMethod, f.sasFlow(), ours)
	if err != nil {
		return f.cancel(CancelKeyMismatch, err)
	}
	macs := make(map[string]any, len(mc.MAC))
	for k, v := range mc.MAC {
		macs[k] = v
	}
	f.confirmed = true
	r := Result{Send: []Outgoing{f.outgoing(TypeMAC, map[string]any{"mac": macs, "keys": mc.Keys})}}
	if f.state == MacReceived {
		fr := f.finish()
		fr.Send = append(r.Send, fr.Send...)
		return fr
	}
	f.state = Confirmed
	return r
}

// finish checks that the pinned keys still stand, then produces the
// outcome and sends done. This is the only place an Outcome is made.
func (f *flow) finish() Result {
	now, err := f.m.cfg.Lookup(f.their.User, f.their.Device)
	if err != nil || now.DeviceKey != f.pinnedKeys.DeviceKey || now.MasterKey != f.pinnedKeys.MasterKey {
		return f.cancel(CancelKeyMismatch, ErrKeyChanged)
	}
	o := &Outcome{Flow: f.ref, Own: f.m.cfg.Own.User, Their: f.their}
	for _, k := range f.verified {
		if k.ID().IsCrossSigning() {
			mk := k
			o.MasterKey = &mk
		} else {
			dk := k
			o.Device = &dk
		}
	}
	if o.MasterKey == nil && f.their.User != f.m.cfg.Own.User && !f.m.cfg.AllowDeviceOnly {
		return f.cancel(CancelKeyMismatch, ErrNoMasterKey)
	}
	f.outcome = o
	f.state = Done
	f.wipe()
	return Result{Outcome: o, Send: []Outgoing{f.outgoing(TypeDone, map[string]any{})}}
}
