package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"myelin/crypto/sas"
	"myelin/e2ee"
	"myelin/e2ee/recovery"
	"myelin/e2ee/verification"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// VerificationUpdate is one step of an interactive verification, for the
// application to show: a request to accept, the SAS to compare, the
// outcome (already signed and uploaded) or a cancellation.
type VerificationUpdate struct {
	Flow  verification.FlowRef
	State verification.State
	// Request is set for a new incoming request (call Verifier.Accept).
	Request *verification.Request
	// SAS is set when the strings are ready to compare (call
	// Verifier.Confirm or Verifier.Mismatch).
	SAS *verification.SAS
	// Outcome is set when the verification succeeded; SignErr reports a
	// failure to sign or upload what it proved.
	Outcome *verification.Outcome
	SignErr error
	// Cancelled is set when the flow ended without verifying anything.
	Cancelled *verification.Cancellation
}

// Verifier runs this device's SAS verifications, to-device
// (m.key.verification.* sent unencrypted, as Element does) and in-room
// (room events related to the request, encrypted in encrypted rooms; see
// Verifier.RequestInRoom). It is fed by the sync loop; the keys it verifies are those of the e2ee machine's pinned
// identity and of the device list from /keys/query, fixed when a flow starts.
// On success it signs what the flow proved: our other device with our
// self-signing key, another user's master key with our user-signing key, and
// on a device that does not hold the keys, it trusts the proven master key.
type Verifier struct {
	c       *Client
	updates chan VerificationUpdate

	// order serialises each machine step with the sending of its messages,
	// so that messages go out in the order the machine produced them (a
	// done sent by the sync loop must not overtake the MAC a Confirm
	// produced just before).
	order sync.Mutex
	mu    sync.Mutex
	m     *verification.Machine
	keys  map[string]*queriedKeys // user -> keys/query answer
	// peers: in-room flow (request event ID) -> the other user, for
	// fetching their keys before Accept (an in-room FlowRef names no user).
	peers map[string]inRoomPeer
}

type queriedKeys struct {
	master, selfSigning, userSigning json.RawMessage
	devices                          map[string]json.RawMessage
	// masterChanged: /keys/query names another master key than the one
	// the e2ee machine holds for the user.
	masterChanged bool
}

// Verifier returns this device's verifier, creating it on first use.
// Updates arrive on the returned Verifier's Updates channel.
func (c *Client) Verifier(ctx context.Context) (*Verifier, error) {
	c.mu.Lock()
	v := c.verifier
	c.mu.Unlock()
	if v != nil {
		return v, nil
	}
	uid, err := id.ParseUserID(c.UserID())
	if err != nil {
		return nil, err
	}
	dev, err := id.ParseDeviceID(c.DeviceID())
	if err != nil {
		return nil, err
	}
	_, ed := c.m.IdentityKeys()
	own := verification.Own{User: uid, Device: dev, DeviceKey: ed}
	if sk, err := c.CrossSigningKeys(ctx); err == nil {
		own.MasterKey = sk.Master.PublicKey()
		sk.Wipe()
	}
	v = &Verifier{c: c, updates: make(chan VerificationUpdate, 64), keys: map[string]*queriedKeys{}, peers: map[string]inRoomPeer{}}
	m, err := verification.NewMachine(verification.Config{Own: own, Rand: c.rand(), Lookup: v.lookup})
	if err != nil {
		return nil, err
	}
	v.m = m
	c.mu.Lock()
	if c.verifier != nil {
		v = c.verifier
	} else {
		c.verifier = v
		c.toDeviceHook = c.dispatchToDevice
		c.roomHook = v.onRoomEvent
	}
	c.mu.Unlock()
	return v, nil
}

// Updates returns the channel of verification steps. Read it: the sync loop
// waits when its buffer (64 updates) is full.
func (v *Verifier) Updates() <-chan VerificationUpdate { return v.updates }

func (v *Verifier) now() time.Time {
	if v.c.opts.Clock != nil {
		return v.c.opts.Clock()
	}
	return time.Now()
}

// fetch refreshes what /keys/query says about user (before a flow pins).
func (v *Verifier) fetch(ctx context.Context, user string) error {
	body, _ := json.Marshal(map[string]any{"device_keys": map[string][]string{user: {}}})
	resp, err := v.c.http.KeysQuery(ctx, body)
	if err != nil {
		return err
	}
	var q struct {
		Devices map[string]map[string]json.RawMessage `json:"device_keys"`
		Master  map[string]json.RawMessage            `json:"master_keys"`
		Self    map[string]json.RawMessage            `json:"self_signing_keys"`
		User    map[string]json.RawMessage            `json:"user_signing_keys"`
	}
	if err := json.Unmarshal(resp, &q); err != nil {
		return fmt.Errorf("%w: keys/query", ErrBadResponse)
	}
	qk := &queriedKeys{master: q.Master[user], selfSigning: q.Self[user], userSigning: q.User[user], devices: q.Devices[user]}
	// The master key must be the one the e2ee machine pinned (or verified):
	// the server's answer alone does not decide which identity we verify.
	if st, err := v.c.m.Identity(ctx, user); err == nil && st != nil && st.MasterKey != "" {
		if mk, ok := crossSigningKey(qk.master); !ok || mk.String() != st.MasterKey {
			qk.masterChanged = true
		}
	}
	v.mu.Lock()
	v.keys[user] = qk
	v.mu.Unlock()
	return nil
}

// crossSigningKey returns the single key of a cross-signing key object.
func crossSigningKey(obj json.RawMessage) (keys.Ed25519PublicKey, bool) {
	var o struct {
		Keys map[string]string `json:"keys"`
	}
	if len(obj) == 0 || json.Unmarshal(obj, &o) != nil || len(o.Keys) != 1 {
		return keys.Ed25519PublicKey{}, false
	}
	for _, k := range o.Keys {
		pk, err := keys.ParseEd25519PublicKey(k)
		return pk, err == nil
	}
	return keys.Ed25519PublicKey{}, false
}

// lookup is the machine's KeyLookup (called with v.mu held by the caller of
// the machine; no network I/O).
func (v *Verifier) lookup(user id.UserID, device id.DeviceID) (sas.TheirKeys, error) {
	q := v.keys[user.String()]
	if q == nil {
		return sas.TheirKeys{}, fmt.Errorf("client: verify: %w", verification.ErrUnknownDevice)
	}
	if q.masterChanged {
		return sas.TheirKeys{}, fmt.Errorf("client: verify: master key differs from the pinned one: %w", verification.ErrKeyChanged)
	}
	raw, ok := q.devices[device.String()]
	if !ok {
		return sas.TheirKeys{}, fmt.Errorf("client: verify: %w", verification.ErrUnknownDevice)
	}
	var d struct {
		UserID   string            `json:"user_id"`
		DeviceID string            `json:"device_id"`
		Keys     map[string]string `json:"keys"`
	}
	if json.Unmarshal(raw, &d) != nil || d.UserID != user.String() || d.DeviceID != device.String() {
		return sas.TheirKeys{}, fmt.Errorf("client: verify: %w", verification.ErrUnknownDevice)
	}
	dk, err := keys.ParseEd25519PublicKey(d.Keys["ed25519:"+device.String()])
	if err != nil {
		return sas.TheirKeys{}, fmt.Errorf("client: verify: %w", verification.ErrUnknownDevice)
	}
	if signing.Verify(raw, user.String(), "ed25519:"+device.String(), dk) != nil {
		return sas.TheirKeys{}, fmt.Errorf("client: verify: device keys not self-signed: %w", verification.ErrUnknownDevice)
	}
	tk := sas.TheirKeys{Device: device, DeviceKey: dk}
	if mk, ok := crossSigningKey(q.master); ok {
		tk.MasterKey = mk
	}
	for _, o := range []json.RawMessage{q.selfSigning, q.userSigning} {
		if k, ok := crossSigningKey(o); ok {
			tk.OtherCrossSigningKeys = append(tk.OtherCrossSigningKeys, k)
		}
	}
	for other := range q.devices {
		if other == device.String() {
			continue
		}
		if od, err := id.ParseDeviceID(other); err == nil {
			tk.OtherDevices = append(tk.OtherDevices, od)
		}
	}
	return tk, nil
}

// onToDevice feeds one to-device event from the sync loop.
func (v *Verifier) onToDevice(ctx context.Context, td e2ee.DecryptedToDevice) {
	if !strings.HasPrefix(td.Type, "m.key.verification.") {
		return
	}
	sender, err := id.ParseUserID(td.Sender)
	if err != nil {
		return
	}
	in := verification.Incoming{Transport: verification.ToDevice, Type: td.Type, Sender: sender, Content: td.Content}
	if td.Encrypted {
		if d, err := id.ParseDeviceID(td.SenderDevice); err == nil {
			in.SenderDevice = d
		}
	}
	if td.Type == verification.TypeRequest || td.Type == verification.TypeReady || td.Type == verification.TypeStart {
		// The flow pins the other side's keys now: refresh them first.
		if err := v.fetch(ctx, td.Sender); err != nil {
			v.c.log.Warn("client: verify: keys/query", "err", err)
		}
	}
	v.order.Lock()
	v.mu.Lock()
	res, err := v.m.Handle(v.now(), in)
	v.mu.Unlock()
	if err != nil {
		v.order.Unlock()
		v.c.log.Debug("client: verify: ignored", "type", td.Type, "err", err)
		return
	}
	sendErr := v.sendAll(ctx, res)
	v.order.Unlock()
	if sendErr != nil {
		v.c.log.Warn("client: verify: send", "err", sendErr)
	}
	v.report(ctx, res)
}

func (v *Verifier) sendAll(ctx context.Context, res verification.Result) error {
	var sendErr error
	for _, o := range res.Send {
		if err := v.send(ctx, o); err != nil && sendErr == nil {
			sendErr = err
		}
	}
	return sendErr
}

// report signs an outcome and hands the step to the application.
func (v *Verifier) report(ctx context.Context, res verification.Result) {
	if res.Flow.ID == "" {
		return
	}
	if res.Request != nil && res.Flow.Transport == verification.InRoom {
		v.mu.Lock()
		v.rememberPeer(res.Flow, res.Request.From.User)
		v.mu.Unlock()
	}
	u := VerificationUpdate{Flow: res.Flow, State: res.State, Request: res.Request, SAS: res.SAS, Outcome: res.Outcome, Cancelled: res.Cancelled}
	if res.Outcome != nil {
		u.SignErr = v.signOutcome(ctx, res.Outcome)
	}
	select {
	case v.updates <- u:
	case <-ctx.Done():
	}
}

func (v *Verifier) send(ctx context.Context, o verification.Outgoing) error {
	switch o.Transport {
	case verification.InRoom:
		_, err := v.c.SendMessage(ctx, o.Room.String(), o.Type, o.Content)
		return err
	case verification.ToDevice:
	default:
		return errors.New("client: verify: unknown transport")
	}
	per := map[string]json.RawMessage{}
	for _, d := range o.ToDevices {
		per[d.String()] = o.Content
	}
	body, _ := json.Marshal(map[string]any{"messages": map[string]any{o.ToUser.String(): per}})
	_, err := v.c.http.SendToDevice(ctx, o.Type, v.c.http.NewTxnID(), body)
	return err
}

// signOutcome signs and uploads what a verification proved.
func (v *Verifier) signOutcome(ctx context.Context, o *verification.Outcome) error {
	if err := v.fetch(ctx, o.Their.User.String()); err != nil {
		return err
	}
	v.mu.Lock()
	q := v.keys[o.Their.User.String()]
	v.mu.Unlock()
	sk, skErr := v.c.CrossSigningKeys(ctx)
	if skErr == nil {
		defer sk.Wipe()
	}
	var up verification.SignatureUpload
	var err error
	switch {
	case o.SelfVerification() && skErr == nil && o.Device != nil:
		up, err = o.SignOwnDevice(sk, q.devices[o.Their.Device.String()])
	case o.SelfVerification() && o.MasterKey != nil:
		// We do not hold the keys: trust the identity the other device
		// proved (the user-signing key only if the proven master signed it).
		uid, perr := id.ParseUserID(v.c.UserID())
		if perr != nil {
			return perr
		}
		pub, perr := recovery.PublishedFromKeysQuery(uid, q.master, q.selfSigning, q.userSigning, nil)
		if perr != nil {
			return perr
		}
		if pub.MasterKey != o.MasterKey.PublicKey() {
			return fmt.Errorf("client: verify: %w", verification.ErrKeyChanged)
		}
		return v.c.m.TrustOwnIdentity(ctx, pub.MasterKey, pub.UserSigningKey)
	case !o.SelfVerification() && skErr == nil && o.MasterKey != nil:
		up, err = o.SignOtherUser(sk, q.master)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	body, err := json.Marshal(up)
	if err != nil {
		return err
	}
	resp, err := v.c.http.UploadSignatures(ctx, body)
	if err != nil {
		return err
	}
	var r struct {
		Failures map[string]json.RawMessage `json:"failures"`
	}
	if json.Unmarshal(resp, &r) == nil && len(r.Failures) > 0 {
		return fmt.Errorf("client: verify: signature upload refused: %s", truncate(resp, 300))
	}
	// Our machine learns the new signature from a fresh /keys/query of that
	// user (the server need not announce a signature on another user's key
	// to us): mark the user's keys outdated.
	res, err := v.c.m.Receive(ctx, e2ee.SyncInput{DeviceListsChanged: []string{o.Their.User.String()}})
	if err != nil {
		return fmt.Errorf("client: verify: %w", err)
	}
	v.c.deliverResult(ctx, res)
	return nil
}

// RequestToDevice asks user's devices (our own other devices when user is
// us) to verify.
func (v *Verifier) RequestToDevice(ctx context.Context, user string, devices []string) (verification.FlowRef, error) {
	uid, err := id.ParseUserID(user)
	if err != nil {
		return verification.FlowRef{}, err
	}
	var devs []id.DeviceID
	for _, d := range devices {
		dd, err := id.ParseDeviceID(d)
		if err != nil {
			return verification.FlowRef{}, err
		}
		devs = append(devs, dd)
	}
	if err := v.fetch(ctx, user); err != nil {
		return verification.FlowRef{}, err
	}
	v.order.Lock()
	v.mu.Lock()
	res, err := v.m.RequestToDevice(v.now(), uid, devs)
	v.mu.Unlock()
	if err != nil {
		v.order.Unlock()
		return verification.FlowRef{}, err
	}
	sendErr := v.sendAll(ctx, res)
	v.order.Unlock()
	v.report(ctx, res)
	return res.Flow, sendErr
}

// Accept answers a received request with ready.
func (v *Verifier) Accept(ctx context.Context, f verification.FlowRef) error {
	user := f.User
	if f.Transport == verification.InRoom {
		v.mu.Lock()
		user = v.peers[f.ID].user
		v.mu.Unlock()
	}
	if err := v.fetch(ctx, user.String()); err != nil {
		return err
	}
	return v.act(ctx, f, v.m.Accept)
}

// StartSAS starts SAS in a ready flow.
func (v *Verifier) StartSAS(ctx context.Context, f verification.FlowRef) error {
	return v.act(ctx, f, v.m.StartSAS)
}

// Confirm records that the user saw matching strings.
func (v *Verifier) Confirm(ctx context.Context, f verification.FlowRef) error {
	return v.act(ctx, f, v.m.Confirm)
}

// Mismatch records that the user saw different strings.
func (v *Verifier) Mismatch(ctx context.Context, f verification.FlowRef) error {
	return v.act(ctx, f, v.m.Mismatch)
}

// Cancel cancels a flow.
func (v *Verifier) Cancel(ctx context.Context, f verification.FlowRef) error {
	return v.act(ctx, f, v.m.Cancel)
}

// State returns a flow's state.
func (v *Verifier) State(f verification.FlowRef) (verification.State, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m.State(f)
}

func (v *Verifier) act(ctx context.Context, f verification.FlowRef, fn func(time.Time, verification.FlowRef) (verification.Result, error)) error {
	v.order.Lock()
	v.mu.Lock()
	res, err := fn(v.now(), f)
	v.mu.Unlock()
	if err != nil {
		v.order.Unlock()
		return err
	}
	sendErr := v.sendAll(ctx, res)
	v.order.Unlock()
	v.report(ctx, res)
	return sendErr
}

// Tick expires flows (m.timeout is sent for a flow older than
// verification.FlowTimeout; unanswered prompts are dismissed). Call it now
// and then, for example once a minute.
func (v *Verifier) Tick(ctx context.Context) {
	v.order.Lock()
	v.mu.Lock()
	results := v.m.Tick(v.now())
	v.mu.Unlock()
	for _, res := range results {
		if err := v.sendAll(ctx, res); err != nil {
			v.c.log.Warn("client: verify: send", "err", err)
		}
	}
	v.order.Unlock()
	for _, res := range results {
		v.report(ctx, res)
	}
}
