package verify

// SAS verification between myelin's e2ee/verification machine and mautrix-go's
// crypto/verificationhelper, to-device.
//
// Transport: mautrix-go's own mockserver (an in-memory homeserver on
// httptest that mautrix's verificationhelper tests use). The mautrix side
// runs unchanged: a real mautrix.Client with a goolm OlmMachine
// (cryptohelper), its VerificationHelper registered on the client's syncer,
// sending through the client's HTTP requests (PUT /sendToDevice). The myelin
// side is driven by hand: it reads what mautrix sent to its device from the
// mock server's inbox and feeds it to Machine.Handle with the envelope
// sender, and its Outgoing messages are dispatched to the mautrix client's
// syncer as to-device events from its user. mautrix sends verification
// to-device events unencrypted, so Incoming.SenderDevice stays zero.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	mcrypto "maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/crypto/goolm"
	"maunium.net/go/mautrix/crypto/verificationhelper"
	"maunium.net/go/mautrix/event"
	mid "maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/mockserver"

	"myelin/crypto/sas"
	"myelin/e2ee/verification"
	"myelin/id"
	"myelin/keys"
)

func init() {
	// mautrix v0.32.0 selects libolm unless built with the goolm tag.
	goolm.Register()
	if os.Getenv("VERIFY_DEBUG") == "" {
		zerolog.SetGlobalLevel(zerolog.Disabled)
	}
}

const (
	myelinUser   = "@alice:example.org"
	myelinDevice = "MYELINDEV"
	mautrixUser  = "@bob:example.org"
	mautrixDev   = "MAUTRIXDEV"
)

// callbacks records what mautrix's helper reports.
type callbacks struct {
	mu        sync.Mutex
	requested []mid.VerificationTransactionID
	ready     []mid.VerificationTransactionID
	emojis    []rune
	descs     []string
	decimals  []int
	done      bool
	cancelled *event.VerificationCancelCode
	reason    string
}

func (c *callbacks) VerificationRequested(_ context.Context, txn mid.VerificationTransactionID, _ mid.UserID, _ mid.DeviceID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requested = append(c.requested, txn)
}

func (c *callbacks) VerificationReady(_ context.Context, txn mid.VerificationTransactionID, _ mid.DeviceID, _, _ bool, _ *verificationhelper.QRCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = append(c.ready, txn)
}

func (c *callbacks) VerificationCancelled(_ context.Context, _ mid.VerificationTransactionID, code event.VerificationCancelCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelled, c.reason = &code, reason
}

func (c *callbacks) VerificationDone(_ context.Context, _ mid.VerificationTransactionID, method event.VerificationMethod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = method == event.VerificationMethodSAS
}

func (c *callbacks) ShowSAS(_ context.Context, _ mid.VerificationTransactionID, emojis []rune, descs []string, decimals []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emojis, c.descs, c.decimals = emojis, descs, decimals
}

// pair is one myelin device and one mautrix device of another user.
type pair struct {
	t   *testing.T
	ctx context.Context
	ms  *mockserver.MockServer

	mx     *mautrix.Client
	mach   *mcrypto.OlmMachine
	helper *verificationhelper.VerificationHelper
	cb     *callbacks
	mxXS   *mcrypto.CrossSigningKeysCache

	m         *verification.Machine
	user      id.UserID
	device    id.DeviceID
	devKey    *keys.Ed25519SecretKey
	master    *keys.Ed25519SecretKey
	mxUser    id.UserID
	mxDevice  id.DeviceID
	theirKeys sas.TheirKeys // what the myelin side believes about mautrix's device
	results   []verification.Result
	roomN     int // in-room event IDs handed out for myelin's events
}

func newPair(t *testing.T) *pair {
	t.Helper()
	ctx := context.Background()
	if os.Getenv("VERIFY_DEBUG") != "" {
		ctx = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).WithContext(ctx)
	}
	p := &pair{t: t, ctx: ctx, ms: mockserver.Create(t), cb: &callbacks{}}
	var err error
	p.user = mustUser(t, myelinUser)
	p.mxUser = mustUser(t, mautrixUser)
	if p.device, err = id.ParseDeviceID(myelinDevice); err != nil {
		t.Fatal(err)
	}
	if p.mxDevice, err = id.ParseDeviceID(mautrixDev); err != nil {
		t.Fatal(err)
	}

	// mautrix: a logged-in client with crypto and cross-signing keys.
	p.mx, _ = p.ms.Login(t, ctx, mautrixUser, mautrixDev)
	p.mach = p.mx.Crypto.(*cryptohelper.CryptoHelper).Machine()
	if _, p.mxXS, err = p.mach.GenerateAndUploadCrossSigningKeys(ctx, nil, ""); err != nil {
		t.Fatal(err)
	}
	p.helper = verificationhelper.NewVerificationHelper(p.mx, p.mach, nil, p.cb, false, false, true)
	if err := p.helper.Init(ctx); err != nil {
		t.Fatal(err)
	}

	// myelin: a device key and a master key it trusts (it holds it).
	if p.devKey, err = keys.GenerateEd25519SecretKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if p.master, err = keys.GenerateEd25519SecretKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	curve := make([]byte, 32)
	rand.Read(curve)
	// mautrix's device store learns the myelin device and master key (what
	// a /keys/query would have told it).
	store := p.mach.CryptoStore
	if err := store.PutDevice(ctx, mautrixID(p.user), &mid.Device{
		UserID: mautrixID(p.user), DeviceID: myelinDevice,
		IdentityKey: mid.Curve25519(keys.EncodeBase64(curve)),
		SigningKey:  mid.Ed25519(p.devKey.PublicKey().String()),
	}); err != nil {
		t.Fatal(err)
	}
	if err := store.PutCrossSigningKey(ctx, mautrixID(p.user), mid.XSUsageMaster, mid.Ed25519(p.master.PublicKey().String())); err != nil {
		t.Fatal(err)
	}

	// What myelin believes about the mautrix device.
	p.theirKeys = sas.TheirKeys{
		Device:    p.mxDevice,
		DeviceKey: mustEd(t, p.mach.OwnIdentity().SigningKey.String()),
		MasterKey: mustEd(t, p.mxXS.MasterKey.PublicKey().String()),
		OtherCrossSigningKeys: []keys.Ed25519PublicKey{
			mustEd(t, p.mxXS.SelfSigningKey.PublicKey().String()),
			mustEd(t, p.mxXS.UserSigningKey.PublicKey().String()),
		},
	}
	p.m, err = verification.NewMachine(verification.Config{
		Own:  verification.Own{User: p.user, Device: p.device, DeviceKey: p.devKey.PublicKey(), MasterKey: p.master.PublicKey()},
		Rand: rand.Reader,
		Lookup: func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
			if u != p.mxUser || d != p.theirKeys.Device {
				return sas.TheirKeys{}, fmt.Errorf("%w: %s %s", verification.ErrUnknownDevice, u, d)
			}
			return p.theirKeys, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mautrixID(u id.UserID) mid.UserID { return mid.UserID(u.String()) }

func mustEd(t *testing.T, s string) keys.Ed25519PublicKey {
	t.Helper()
	var k keys.Ed25519PublicKey
	if err := k.UnmarshalText([]byte(s)); err != nil {
		t.Fatalf("ed25519 key %q: %v", s, err)
	}
	return k
}

// toMautrix delivers the myelin side's messages to the mautrix client, as
// its /sync would: to-device events from the myelin user.
func (p *pair) toMautrix(r verification.Result, err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatalf("myelin: %v", err)
	}
	p.results = append(p.results, r)
	for _, out := range r.Send {
		if out.Transport != verification.ToDevice || out.ToUser != p.mxUser || !slices.Contains(out.ToDevices, p.mxDevice) {
			p.t.Fatalf("myelin sends %s via %v to %s %v", out.Type, out.Transport, out.ToUser, out.ToDevices)
		}
		evt := &event.Event{Sender: mautrixID(p.user), Type: event.Type{Type: out.Type, Class: event.ToDeviceEventType}}
		if err := json.Unmarshal(out.Content, &evt.Content); err != nil {
			p.t.Fatal(err)
		}
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			p.t.Fatalf("mautrix cannot parse myelin's %s: %v", out.Type, err)
		}
		p.mx.Syncer.(*mautrix.DefaultSyncer).Dispatch(p.ctx, evt)
	}
}

// pump delivers what mautrix sent to the myelin device until nothing is
// left in either direction (mautrix answers synchronously while handling).
func (p *pair) pump() {
	p.t.Helper()
	for range 100 {
		inbox := p.ms.DeviceInbox[mautrixID(p.user)][myelinDevice]
		if len(inbox) == 0 {
			return
		}
		evt := inbox[0]
		p.ms.DeviceInbox[mautrixID(p.user)][myelinDevice] = inbox[1:]
		sender := mustUser(p.t, evt.Sender.String())
		r, err := p.m.Handle(time.Now(), verification.Incoming{
			Transport: verification.ToDevice,
			Type:      evt.Type.Type,
			Sender:    sender,
			Content:   evt.Content.VeryRaw,
		})
		if errors.Is(err, verification.ErrIgnored) {
			p.t.Logf("myelin ignored %s: %v", evt.Type.Type, err)
			continue
		}
		p.toMautrix(r, err)
	}
	p.t.Fatal("pump: no quiescence after 100 messages")
}

func (p *pair) myelinSAS() *verification.SAS {
	for _, r := range p.results {
		if r.SAS != nil {
			return r.SAS
		}
	}
	return nil
}

func (p *pair) myelinOutcome() *verification.Outcome {
	for _, r := range p.results {
		if r.Outcome != nil {
			return r.Outcome
		}
	}
	return nil
}

func (p *pair) myelinCancelled() *verification.Cancellation {
	for _, r := range p.results {
		if r.Cancelled != nil {
			return r.Cancelled
		}
	}
	return nil
}

func (p *pair) lastFlow() verification.FlowRef {
	for i := len(p.results) - 1; i >= 0; i-- {
		if p.results[i].Flow.ID != "" {
			return p.results[i].Flow
		}
	}
	p.t.Fatal("no myelin flow")
	return verification.FlowRef{}
}

// request runs request and ready. It returns mautrix's transaction ID.
func (p *pair) request(myelinRequests bool) (mid.VerificationTransactionID, verification.FlowRef) {
	p.t.Helper()
	if myelinRequests {
		p.toMautrix(p.m.RequestToDevice(time.Now(), p.mxUser, []id.DeviceID{p.mxDevice}))
		if len(p.cb.requested) != 1 {
			p.t.Fatalf("mautrix saw %d requests, want 1 (cancelled: %v %s)", len(p.cb.requested), p.cb.cancelled, p.cb.reason)
		}
		txn := p.cb.requested[0]
		if err := p.helper.AcceptVerification(p.ctx, txn); err != nil {
			p.t.Fatalf("mautrix AcceptVerification: %v", err)
		}
		p.pump()
		flow := p.lastFlow()
		if flow.ID != string(txn) {
			p.t.Fatalf("flow IDs differ: myelin %s, mautrix %s", flow.ID, txn)
		}
		if st, _ := p.m.State(flow); st != verification.Ready {
			p.t.Fatalf("myelin state %v after ready", st)
		}
		return txn, flow
	}
	txn, err := p.helper.StartVerification(p.ctx, mautrixID(p.user))
	if err != nil {
		p.t.Fatalf("mautrix StartVerification: %v", err)
	}
	p.pump()
	var req *verification.Request
	for _, r := range p.results {
		if r.Request != nil {
			req = r.Request
		}
	}
	if req == nil {
		p.t.Fatal("myelin did not surface mautrix's request")
	}
	if req.From.User != p.mxUser || req.From.Device != p.mxDevice || !slices.Contains(req.Methods, verification.MethodSAS) {
		p.t.Fatalf("myelin request from %v methods %v", req.From, req.Methods)
	}
	flow := p.lastFlow()
	if flow.ID != string(txn) {
		p.t.Fatalf("flow IDs differ: myelin %s, mautrix %s", flow.ID, txn)
	}
	p.toMautrix(p.m.Accept(time.Now(), flow))
	if len(p.cb.ready) != 1 {
		p.t.Fatalf("mautrix saw %d readies (cancelled: %v %s)", len(p.cb.ready), p.cb.cancelled, p.cb.reason)
	}
	return txn, flow
}

// start runs start, accept and key.
func (p *pair) start(myelinStarts bool, txn mid.VerificationTransactionID, flow verification.FlowRef) {
	p.t.Helper()
	if myelinStarts {
		p.toMautrix(p.m.StartSAS(time.Now(), flow))
	} else if err := p.helper.StartSAS(p.ctx, txn); err != nil {
		p.t.Fatalf("mautrix StartSAS: %v", err)
	}
	p.pump()
}

// checkSAS compares both sides' short authentication strings.
func (p *pair) checkSAS() *verification.SAS {
	p.t.Helper()
	s := p.myelinSAS()
	if s == nil {
		p.t.Fatalf("myelin shows no SAS (cancelled: %+v; mautrix cancelled: %v %s)", p.myelinCancelled(), p.cb.cancelled, p.cb.reason)
	}
	p.cb.mu.Lock()
	defer p.cb.mu.Unlock()
	if len(p.cb.decimals) != 3 {
		p.t.Fatalf("mautrix shows no SAS (cancelled: %v %s)", p.cb.cancelled, p.cb.reason)
	}
	if !slices.Equal(p.cb.decimals, s.Decimal[:]) {
		p.t.Fatalf("decimals differ: myelin %v, mautrix %v", s.Decimal, p.cb.decimals)
	}
	if s.Emoji == nil || len(p.cb.emojis) != 7 {
		p.t.Fatalf("emoji: myelin %v, mautrix %d", s.Emoji != nil, len(p.cb.emojis))
	}
	for i, e := range s.Emoji {
		if []rune(e.Emoji)[0] != p.cb.emojis[i] || e.Description != p.cb.descs[i] {
			p.t.Fatalf("emoji %d differs: myelin %s %q, mautrix %c %q", i, e.Emoji, e.Description, p.cb.emojis[i], p.cb.descs[i])
		}
	}
	return s
}

// errMautrixOwnMasterKey is the error mautrix-go v0.32.0's ConfirmSAS returns
// when the other user's MAC arrived before its own user confirmed: ConfirmSAS
// passes its OWN master key (the one it just MACed) to
// trustKeysAfterMACCheck, which compares it with the OTHER user's master key
// (crypto/verificationhelper/sas.go, ConfirmSAS and trustKeysAfterMACCheck).
// It happens with any peer in a verification between two users whenever the
// mautrix user confirms last; mautrix's own tests only verify two devices of
// one user, where that comparison is skipped.
const errMautrixOwnMasterKey = "failed to trust keys: master keys do not match"

// confirm has both users confirm, in the given order. It returns the error of
// mautrix's ConfirmSAS.
func (p *pair) confirm(myelinFirst bool, txn mid.VerificationTransactionID, flow verification.FlowRef) error {
	p.t.Helper()
	var mxErr error
	mx := func() {
		mxErr = p.helper.ConfirmSAS(p.ctx, txn)
		p.pump()
	}
	my := func() {
		p.toMautrix(p.m.Confirm(time.Now(), flow))
		p.pump()
	}
	if myelinFirst {
		my()
		mx()
	} else {
		mx()
		my()
	}
	return mxErr
}

// TestSASWithMautrix runs the whole to-device SAS flow in every order: who
// requests, who starts, who confirms first. Both sides must show the same
// seven emoji and three numbers, exchange MACs and reach done; myelin's
// outcome must name exactly mautrix's device key and master key, and
// mautrix must mark the myelin device verified and sign its master key.
func TestSASWithMautrix(t *testing.T) {
	for _, myelinRequests := range []bool{true, false} {
		for _, myelinStarts := range []bool{true, false} {
			for _, myelinFirst := range []bool{true, false} {
				name := fmt.Sprintf("myelinRequests=%v/myelinStarts=%v/myelinConfirmsFirst=%v", myelinRequests, myelinStarts, myelinFirst)
				t.Run(name, func(t *testing.T) {
					p := newPair(t)
					txn, flow := p.request(myelinRequests)
					p.start(myelinStarts, txn, flow)
					s := p.checkSAS()
					mxErr := p.confirm(myelinFirst, txn, flow)
					mautrixBug := false
					if mxErr != nil {
						if !myelinFirst || mxErr.Error() != errMautrixOwnMasterKey {
							t.Fatalf("mautrix ConfirmSAS: %v", mxErr)
						}
						// Known mautrix-go v0.32.0 bug, see errMautrixOwnMasterKey.
						// mautrix sent its MAC before failing, so myelin still
						// completes; mautrix stops before done.
						mautrixBug = true
						t.Logf("mautrix-go bug reproduced: ConfirmSAS after the peer's MAC: %v", mxErr)
					}
					if c := p.myelinCancelled(); c != nil {
						t.Fatalf("myelin cancelled: %s %s (by us %v: %v)", c.Code, c.Reason, c.ByUs, c.Err)
					}
					if p.cb.cancelled != nil && !mautrixBug {
						t.Fatalf("mautrix cancelled: %s %s", *p.cb.cancelled, p.cb.reason)
					}
					o := p.myelinOutcome()
					if o == nil {
						t.Fatal("myelin reached no outcome")
					}
					if o.Their.User != p.mxUser || o.Their.Device != p.mxDevice {
						t.Errorf("outcome names %v", o.Their)
					}
					if o.Device == nil || o.Device.PublicKey() != p.theirKeys.DeviceKey || o.Device.ID() != sas.DeviceKey(p.mxDevice, p.theirKeys.DeviceKey).ID() {
						t.Errorf("outcome device key %v, want mautrix's %s", o.Device, p.theirKeys.DeviceKey)
					}
					if o.MasterKey == nil || o.MasterKey.PublicKey() != p.theirKeys.MasterKey {
						t.Errorf("outcome master key %v, want mautrix's %s", o.MasterKey, p.theirKeys.MasterKey)
					}
					if st, _ := p.m.State(flow); st != verification.Done {
						t.Errorf("myelin state %v, want Done", st)
					}
					if mautrixBug {
						if p.cb.done {
							t.Error("mautrix reached done: the ConfirmSAS bug seems fixed, update this test")
						}
					} else if !p.cb.done {
						t.Fatal("mautrix did not reach done")
					}
					dev, err := p.mach.CryptoStore.GetDevice(p.ctx, mautrixID(p.user), myelinDevice)
					if err != nil || dev == nil || dev.Trust != mid.TrustStateVerified {
						t.Errorf("mautrix does not hold the myelin device as verified: %v %v", dev, err)
					}
					t.Logf("SAS %v / %s", s.Decimal, string(p.cb.emojis))
				})
			}
		}
	}
}

func mautrixTxn(s string) mid.VerificationTransactionID { return mid.VerificationTransactionID(s) }
