package verification

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"myelin/crypto/crosssign"
	"myelin/crypto/sas"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// detRand is a deterministic randomness source for tests.
type detRand struct{ r *rand.ChaCha8 }

func newRand(seed byte) *detRand {
	var s [32]byte
	s[0] = seed
	return &detRand{rand.NewChaCha8(s)}
}

func (d *detRand) Read(p []byte) (int, error) { return d.r.Read(p) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// user is a test user with a cross-signing identity.
type user struct {
	id id.UserID
	cs *crosssign.SigningKeys
}

// party is one device of a user, with its own view of the key directory
// (the server may serve different users different views).
type party struct {
	u      *user
	device id.DeviceID
	devSK  *keys.Ed25519SecretKey
	curve  keys.Curve25519PublicKey
	m      *Machine
	w      *world
	// override, when set, replaces the honest directory for this party's
	// lookups (the attacker's view).
	override func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error)
	results  []Result
	errs     []error
}

// world delivers messages between parties, like a homeserver that passes
// everything through unless tamper says otherwise.
type world struct {
	t       testing.TB
	now     time.Time
	parties []*party
	room    id.RoomID
	evn     int
	queue   []queued
	// tamper may rewrite or drop (return false) a delivery.
	tamper func(from, to *party, in *Incoming) bool
}

type queued struct {
	from    *party
	out     Outgoing
	eventID id.EventID
}

func mustUser(t testing.TB, s string) id.UserID {
	u, err := id.ParseUserID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustEvent(t testing.TB, s string) id.EventID {
	e, err := id.ParseEventID(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustDevice(t testing.TB, s string) id.DeviceID {
	d, err := id.ParseDeviceID(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newWorld(t testing.TB) *world {
	room, err := id.ParseRoomID("!dm:example.org")
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, now: t0, room: room}
}

func (w *world) newUser(name string, seed byte) *user {
	uid := mustUser(w.t, "@"+name+":example.org")
	cs, err := crosssign.Generate(newRand(seed), uid)
	if err != nil {
		w.t.Fatal(err)
	}
	return &user{id: uid, cs: cs}
}

func (w *world) newParty(u *user, device string, seed byte, opts Options) *party {
	rng := newRand(seed)
	sk, err := keys.GenerateEd25519SecretKey(rng)
	if err != nil {
		w.t.Fatal(err)
	}
	ck, err := keys.GenerateCurve25519SecretKey(rng)
	if err != nil {
		w.t.Fatal(err)
	}
	p := &party{u: u, device: mustDevice(w.t, device), devSK: sk, curve: ck.PublicKey(), w: w}
	m, err := NewMachine(Config{
		Own:     Own{User: u.id, Device: p.device, DeviceKey: sk.PublicKey(), MasterKey: u.cs.Master.PublicKey()},
		Rand:    rng,
		Lookup:  p.lookup,
		Options: opts,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	p.m = m
	w.parties = append(w.parties, p)
	return p
}

// honest is what an honest server serves about a device.
func (w *world) honest(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
	for _, p := range w.parties {
		if p.u.id != u || p.device != d {
			continue
		}
		tk := sas.TheirKeys{
			Device:                d,
			DeviceKey:             p.devSK.PublicKey(),
			MasterKey:             p.u.cs.Master.PublicKey(),
			OtherCrossSigningKeys: []keys.Ed25519PublicKey{p.u.cs.SelfSigning.PublicKey(), p.u.cs.UserSigning.PublicKey()},
		}
		for _, o := range w.parties {
			if o.u == p.u && o != p {
				tk.OtherDevices = append(tk.OtherDevices, o.device)
			}
		}
		return tk, nil
	}
	return sas.TheirKeys{}, fmt.Errorf("test directory: %w", ErrUnknownDevice)
}

func (p *party) lookup(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
	if p.override != nil {
		return p.override(u, d)
	}
	return p.w.honest(u, d)
}

// deviceKeysJSON is the party's signed device-keys object.
func (p *party) deviceKeysJSON(t *testing.T) []byte {
	b, err := signing.SignFields(map[string]any{
		"user_id":    p.u.id.String(),
		"device_id":  p.device.String(),
		"algorithms": []any{crosssign.AlgorithmOlm, crosssign.AlgorithmMegolm},
		"keys": map[string]any{
			"ed25519:" + p.device.String():    p.devSK.PublicKey().String(),
			"curve25519:" + p.device.String(): p.curve.String(),
		},
	}, p.u.id.String(), "ed25519:"+p.device.String(), p.devSK)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post records a result of p and queues what it sends.
func (w *world) post(p *party, r Result, err error) Result {
	p.results = append(p.results, r)
	if err != nil {
		p.errs = append(p.errs, err)
	}
	for _, o := range r.Send {
		q := queued{from: p, out: o}
		if o.Transport == InRoom {
			w.evn++
			ev, perr := id.ParseEventID(fmt.Sprintf("$ev%d:example.org", w.evn))
			if perr != nil {
				w.t.Fatal(perr)
			}
			q.eventID = ev
		}
		w.queue = append(w.queue, q)
	}
	return r
}

// run delivers until nothing is left to send.
func (w *world) run() {
	for n := 0; len(w.queue) > 0; n++ {
		if n > 1000 {
			w.t.Fatal("message loop")
		}
		q := w.queue[0]
		w.queue = w.queue[1:]
		for _, to := range w.parties {
			in := Incoming{Transport: q.out.Transport, Type: q.out.Type, Sender: q.from.u.id, Content: q.out.Content}
			switch q.out.Transport {
			case ToDevice:
				if to.u.id != q.out.ToUser || !containsDev(q.out.ToDevices, to.device) {
					continue
				}
			case InRoom:
				in.Room, in.EventID, in.OriginServerTS = q.out.Room, q.eventID, w.now
			}
			if w.tamper != nil && !w.tamper(q.from, to, &in) {
				continue
			}
			r, err := to.m.Handle(w.now, in)
			w.post(to, r, err)
		}
	}
}

func containsDev(l []id.DeviceID, d id.DeviceID) bool {
	for _, x := range l {
		if x == d {
			return true
		}
	}
	return false
}

// sendInRoomRequest sends an in-room request from p to u and returns the
// flow (the same ref on both sides).
func (w *world) sendInRoomRequest(p *party, to *user) FlowRef {
	out := p.m.RequestInRoomContent(w.room, to.id)
	w.evn++
	ev, err := id.ParseEventID(fmt.Sprintf("$ev%d:example.org", w.evn))
	if err != nil {
		w.t.Fatal(err)
	}
	ref, err := p.m.RequestSentInRoom(w.now, w.room, to.id, ev)
	if err != nil {
		w.t.Fatal(err)
	}
	w.queue = append(w.queue, queued{from: p, out: out, eventID: ev})
	w.run()
	return ref
}

// lastRequest is the flow of the newest request p was asked about.
func (p *party) lastRequest() (FlowRef, bool) {
	for i := len(p.results) - 1; i >= 0; i-- {
		if p.results[i].Request != nil {
			return p.results[i].Flow, true
		}
	}
	return FlowRef{}, false
}

func (p *party) sas() *SAS {
	for _, r := range p.results {
		if r.SAS != nil {
			return r.SAS
		}
	}
	return nil
}

func (p *party) outcome() *Outcome {
	for _, r := range p.results {
		if r.Outcome != nil {
			return r.Outcome
		}
	}
	return nil
}

func (p *party) cancellation() *Cancellation {
	for _, r := range p.results {
		if r.Cancelled != nil {
			return r.Cancelled
		}
	}
	return nil
}

// flowRef is p's ref of the flow it is in (the newest one).
func (p *party) flowRef() FlowRef {
	for i := len(p.results) - 1; i >= 0; i-- {
		if p.results[i].Flow.ID != "" {
			return p.results[i].Flow
		}
	}
	p.w.t.Fatal("party has no flow")
	return FlowRef{}
}

// do runs a user action of p and delivers what it sends.
func (p *party) do(r Result, err error) Result {
	p.w.t.Helper()
	p.w.post(p, r, err)
	p.w.run()
	return r
}

// setup is the start of a flow between a requester and a responder.
type setup struct {
	w          *world
	req, resp  *party
	reqRef     FlowRef
	respRef    FlowRef
	transport  Transport
	requestErr error
}

// request makes req request verification with resp and resp accept it.
func request(w *world, req, resp *party, tr Transport) *setup {
	w.t.Helper()
	s := &setup{w: w, req: req, resp: resp, transport: tr}
	switch tr {
	case ToDevice:
		r, err := req.m.RequestToDevice(w.now, resp.u.id, []id.DeviceID{resp.device})
		if err != nil {
			w.t.Fatal(err)
		}
		s.reqRef = r.Flow
		req.do(r, nil)
	case InRoom:
		s.reqRef = w.sendInRoomRequest(req, resp.u)
	}
	ref, ok := resp.lastRequest()
	if !ok {
		w.t.Fatalf("%s got no request: %v", resp.device, resp.errs)
	}
	s.respRef = ref
	r, err := resp.m.Accept(w.now, ref)
	s.requestErr = err
	resp.do(r, err)
	return s
}

// sasToEnd has starter start SAS, both compare and confirm.
func (s *setup) sasToEnd(starter *party) {
	s.w.t.Helper()
	ref := s.reqRef
	if starter == s.resp {
		ref = s.respRef
	}
	starter.do(starter.m.StartSAS(s.w.now, ref))
	for _, p := range []*party{s.req, s.resp} {
		pref := s.reqRef
		if p == s.resp {
			pref = s.respRef
		}
		if st, _ := p.m.State(pref); st != KeysExchanged && st != MacReceived {
			continue
		}
		p.do(p.m.Confirm(s.w.now, pref))
	}
}

func wantCancel(t testing.TB, p *party, code CancelCode, byUs bool, cause error) {
	t.Helper()
	c := p.cancellation()
	if c == nil {
		t.Fatalf("%s: not cancelled; errors %v", p.device, p.errs)
	}
	if c.Code != code || c.ByUs != byUs {
		t.Fatalf("%s: cancelled with %s (by us %v, err %v), want %s (by us %v)", p.device, c.Code, c.ByUs, c.Err, code, byUs)
	}
	if cause != nil && !errors.Is(c.Err, cause) {
		t.Fatalf("%s: cancel cause %v, want %v", p.device, c.Err, cause)
	}
	if o := p.outcome(); o != nil {
		t.Fatalf("%s: cancelled flow produced an outcome", p.device)
	}
}
