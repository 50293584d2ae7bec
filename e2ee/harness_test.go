package e2ee_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"myelin/crypto/crosssign"
	"myelin/e2ee"
	"myelin/e2ee/store/memory"
	"myelin/id"
)

// fakeServer is a tiny in-test key directory and to-device relay. Hostile
// tests tamper with it through the hook fields.
type fakeServer struct {
	t        testing.TB
	mu       sync.Mutex
	rnd      *rand.ChaCha8
	now      time.Time
	devices  map[string]map[string]json.RawMessage
	otks     map[string]map[string]map[string]json.RawMessage
	fallback map[string]map[string]map[string]json.RawMessage
	fbUsed   map[string]bool
	signers  map[string]*crosssign.SigningKeys
	msk      map[string]json.RawMessage
	ssk      map[string]json.RawMessage
	inbox    map[string][]e2ee.ToDeviceEvent // "user|device"
	changed  map[string]map[string]bool      // client "user|device" -> users changed
	clients  []*client
	// noCrossSign: users whose uploaded devices the harness does not sign.
	noCrossSign map[string]bool
	// Hooks (nil = honest).
	tamperQuery func(requester string, resp map[string]any)
	tamperClaim func(requester string, resp map[string]any)
	// captured to-device sends: eventType -> "user|device" list
	sent []sentToDevice
	seq  int
}

type sentToDevice struct {
	From, To, EventType string
	Content             json.RawMessage
}

func newServer(t testing.TB) *fakeServer {
	return &fakeServer{
		t: t, rnd: rand.NewChaCha8([32]byte{1, 2, 3}), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		devices: map[string]map[string]json.RawMessage{}, otks: map[string]map[string]map[string]json.RawMessage{},
		fallback: map[string]map[string]map[string]json.RawMessage{}, fbUsed: map[string]bool{},
		signers: map[string]*crosssign.SigningKeys{}, msk: map[string]json.RawMessage{}, ssk: map[string]json.RawMessage{},
		inbox: map[string][]e2ee.ToDeviceEvent{}, changed: map[string]map[string]bool{}, noCrossSign: map[string]bool{},
	}
}

func (s *fakeServer) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *fakeServer) advance(d time.Duration) {
	s.mu.Lock()
	s.now = s.now.Add(d)
	s.mu.Unlock()
}

// identity creates (once) the cross-signing keys of user.
func (s *fakeServer) identity(user string) *crosssign.SigningKeys {
	if sk := s.signers[user]; sk != nil {
		return sk
	}
	uid, _ := id.ParseUserID(user)
	sk, err := crosssign.Generate(s.rnd, uid)
	if err != nil {
		s.t.Fatal(err)
	}
	s.signers[user] = sk
	s.msk[user], _ = sk.MasterKeyJSON()
	s.ssk[user], _ = sk.SelfSigningKeyJSON()
	return sk
}

// resetIdentity replaces user's cross-signing keys (an identity reset, or
// the server swapping the MSK) and re-signs the devices with the new SSK.
func (s *fakeServer) resetIdentity(user string) {
	delete(s.signers, user)
	sk := s.identity(user)
	for dev, raw := range s.devices[user] {
		if s.noCrossSign[user+"|"+dev] {
			continue
		}
		signed, err := sk.SignDevice(stripCrossSig(raw))
		if err != nil {
			s.t.Fatal(err)
		}
		s.devices[user][dev] = signed
	}
	s.markChanged(user)
}

func stripCrossSig(raw json.RawMessage) json.RawMessage {
	var m map[string]any
	json.Unmarshal(raw, &m)
	sigs, _ := m["signatures"].(map[string]any)
	for u, v := range sigs {
		byKey, _ := v.(map[string]any)
		for k := range byKey {
			if !strings.HasPrefix(k, "ed25519:") || len(k) > 8+20 {
				delete(byKey, k)
			}
		}
		sigs[u] = byKey
	}
	b, _ := json.Marshal(m)
	return b
}

func (s *fakeServer) markChanged(user string) {
	for _, c := range s.clients {
		key := c.user + "|" + c.device
		if s.changed[key] == nil {
			s.changed[key] = map[string]bool{}
		}
		s.changed[key][user] = true
	}
}

type client struct {
	t      testing.TB
	srv    *fakeServer
	user   string
	device string
	store  e2ee.Store
	m      *e2ee.Machine
	policy e2ee.TrustPolicy
	// collected output
	alerts   []e2ee.Alert
	rejected []e2ee.Rejection
	toDevice []e2ee.DecryptedToDevice
}

var pickleKey = []byte("0123456789abcdef0123456789abcdef")

func (s *fakeServer) newClient(user, device string, policy e2ee.TrustPolicy) *client {
	s.t.Helper()
	s.identity(user)
	c := &client{t: s.t, srv: s, user: user, device: device, store: memory.New(), policy: policy}
	s.clients = append(s.clients, c)
	c.open()
	c.flush()
	return c
}

func (c *client) open() {
	c.t.Helper()
	uid, _ := id.ParseUserID(c.user)
	did, _ := id.ParseDeviceID(c.device)
	seed := [32]byte{}
	copy(seed[:], c.user+c.device)
	m, err := e2ee.Open(context.Background(), e2ee.Config{
		UserID: uid, DeviceID: did, Store: c.store, PickleKey: pickleKey,
		Rand: rand.NewChaCha8(seed), Clock: c.srv.clock, Policy: c.policy,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.m = m
}

func (c *client) collect(r *e2ee.Result) {
	if r == nil {
		return
	}
	c.alerts = append(c.alerts, r.Alerts...)
	c.rejected = append(c.rejected, r.Rejected...)
	c.toDevice = append(c.toDevice, r.ToDevice...)
}

// flush sends every outgoing request to the fake server and acknowledges it.
func (c *client) flush() {
	c.t.Helper()
	ctx := context.Background()
	for range 20 {
		reqs, err := c.m.Outgoing(ctx)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(reqs) == 0 {
			return
		}
		for _, r := range reqs {
			resp := c.srv.handle(c, r)
			res, err := c.m.MarkSent(ctx, r.ID, resp)
			if err != nil {
				c.t.Fatalf("MarkSent %s: %v", r.Type, err)
			}
			c.collect(res)
		}
	}
	c.t.Fatal("flush: requests keep coming")
}

// sync delivers to-device messages and device-list changes to c.
func (c *client) sync(rooms ...e2ee.RoomUpdate) {
	c.t.Helper()
	s := c.srv
	s.mu.Lock()
	key := c.user + "|" + c.device
	in := e2ee.SyncInput{ToDevice: s.inbox[key], Rooms: rooms, UnusedFallbackKeyTypes: []string{"signed_curve25519"}}
	if s.fbUsed[key] {
		in.UnusedFallbackKeyTypes = []string{}
		s.fbUsed[key] = false
	}
	in.OneTimeKeyCounts = map[string]int{"signed_curve25519": len(s.otks[c.user][c.device])}
	delete(s.inbox, key)
	for u := range s.changed[key] {
		in.DeviceListsChanged = append(in.DeviceListsChanged, u)
	}
	slices.Sort(in.DeviceListsChanged)
	delete(s.changed, key)
	s.mu.Unlock()
	res, err := c.m.Receive(context.Background(), in)
	if err != nil {
		c.t.Fatal(err)
	}
	c.collect(res)
}

func (s *fakeServer) handle(c *client, r e2ee.Request) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &body); err != nil {
		s.t.Fatal(err)
	}
	var resp any
	switch r.Type {
	case e2ee.RequestKeysUpload:
		if dk, ok := body["device_keys"]; ok {
			signed := dk
			if !s.noCrossSign[c.user+"|"+c.device] {
				var err error
				if signed, err = s.identity(c.user).SignDevice(dk); err != nil {
					s.t.Fatal(err)
				}
			}
			if s.devices[c.user] == nil {
				s.devices[c.user] = map[string]json.RawMessage{}
			}
			s.devices[c.user][c.device] = signed
			s.markChangedLocked(c.user)
		}
		put := func(dst map[string]map[string]map[string]json.RawMessage, field string, reset bool) {
			var keys map[string]json.RawMessage
			if raw, ok := body[field]; ok {
				json.Unmarshal(raw, &keys)
			}
			if len(keys) == 0 {
				return
			}
			if dst[c.user] == nil {
				dst[c.user] = map[string]map[string]json.RawMessage{}
			}
			if dst[c.user][c.device] == nil || reset {
				dst[c.user][c.device] = map[string]json.RawMessage{}
			}
			for k, v := range keys {
				dst[c.user][c.device][k] = v
			}
		}
		put(s.otks, "one_time_keys", false)
		put(s.fallback, "fallback_keys", true)
		resp = map[string]any{"one_time_key_counts": map[string]int{"signed_curve25519": len(s.otks[c.user][c.device])}}
	case e2ee.RequestKeysQuery:
		var q map[string][]string
		json.Unmarshal(body["device_keys"], &q)
		dk, mk, sk := map[string]any{}, map[string]any{}, map[string]any{}
		for u := range q {
			devs := map[string]any{}
			for d, raw := range s.devices[u] {
				devs[d] = raw
			}
			dk[u] = devs
			if s.msk[u] != nil {
				mk[u] = s.msk[u]
				sk[u] = s.ssk[u]
			}
		}
		m := map[string]any{"device_keys": dk, "master_keys": mk, "self_signing_keys": sk, "failures": map[string]any{}}
		if s.tamperQuery != nil {
			s.tamperQuery(c.user, m)
		}
		resp = m
	case e2ee.RequestKeysClaim:
		var q map[string]map[string]string
		json.Unmarshal(body["one_time_keys"], &q)
		out := map[string]any{}
		for u, devs := range q {
			ud := map[string]any{}
			for d := range devs {
				pool := s.otks[u][d]
				ids := make([]string, 0, len(pool))
				for k := range pool {
					ids = append(ids, k)
				}
				slices.Sort(ids)
				if len(ids) > 0 {
					ud[d] = map[string]any{ids[0]: pool[ids[0]]}
					delete(pool, ids[0])
				} else if fb := s.fallback[u][d]; len(fb) > 0 {
					for k, v := range fb {
						ud[d] = map[string]any{k: v}
					}
					s.fbUsed[u+"|"+d] = true
				}
			}
			out[u] = ud
		}
		m := map[string]any{"one_time_keys": out, "failures": map[string]any{}}
		if s.tamperClaim != nil {
			s.tamperClaim(c.user, m)
		}
		resp = m
	case e2ee.RequestSendToDevice:
		var msgs map[string]map[string]json.RawMessage
		json.Unmarshal(body["messages"], &msgs)
		for u, devs := range msgs {
			for d, content := range devs {
				key := u + "|" + d
				s.inbox[key] = append(s.inbox[key], e2ee.ToDeviceEvent{Type: r.EventType, Sender: c.user, Content: content})
				s.sent = append(s.sent, sentToDevice{From: c.user + "|" + c.device, To: key, EventType: r.EventType, Content: content})
			}
		}
		resp = map[string]any{}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

func (s *fakeServer) markChangedLocked(user string) { s.markChanged(user) }

// roomState returns the RoomUpdate creating an encrypted room with members.
func roomState(room string, members ...string) e2ee.RoomUpdate {
	ru := e2ee.RoomUpdate{RoomID: room}
	empty := ""
	ru.Events = append(ru.Events, e2ee.Event{Type: "m.room.encryption", StateKey: &empty,
		Content: json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2"}`)})
	for _, m := range members {
		ru.Events = append(ru.Events, member(m, "join"))
	}
	return ru
}

func member(user, membership string) e2ee.Event {
	sk := user
	return e2ee.Event{Type: "m.room.member", StateKey: &sk, Sender: user,
		Content: json.RawMessage(`{"membership":"` + membership + `"}`)}
}

// send encrypts content in room (driving key sharing through the fake
// server) and returns the room event as the server would serve it.
func (c *client) send(room, body string) e2ee.Event {
	c.t.Helper()
	content := json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body))
	for range 5 {
		enc, err := c.m.Encrypt(context.Background(), room, "m.room.message", content)
		if errors.Is(err, e2ee.ErrNotReady) {
			c.flush()
			continue
		}
		if err != nil {
			c.t.Fatalf("Encrypt: %v", err)
		}
		c.flush()
		c.srv.seq++
		return e2ee.Event{Type: "m.room.encrypted", Content: enc, Sender: c.user, RoomID: room,
			EventID: fmt.Sprintf("$ev%d", c.srv.seq), OriginServerTS: c.srv.clock().UnixMilli()}
	}
	c.t.Fatal("Encrypt never became ready")
	return e2ee.Event{}
}

func (c *client) decrypt(room string, ev e2ee.Event) (*e2ee.Decrypted, error) {
	return c.m.Decrypt(context.Background(), room, ev)
}

func (c *client) mustDecrypt(room string, ev e2ee.Event, want string) *e2ee.Decrypted {
	c.t.Helper()
	d, err := c.decrypt(room, ev)
	if err != nil {
		c.t.Fatalf("%s: Decrypt: %v", c.user, err)
	}
	var body struct {
		Body string `json:"body"`
	}
	json.Unmarshal(d.Event.Content, &body)
	if body.Body != want {
		c.t.Fatalf("decrypted %q, want %q", body.Body, want)
	}
	return d
}

func (c *client) hasRejection(code e2ee.RejectCode) bool {
	for _, r := range c.rejected {
		if r.Code == code {
			return true
		}
	}
	return false
}

func (c *client) hasAlert(code e2ee.AlertCode) bool {
	for _, a := range c.alerts {
		if a.Code == code {
			return true
		}
	}
	return false
}

func wantUTD(t testing.TB, err error, reason e2ee.UTDReason) {
	t.Helper()
	var u *e2ee.UTDError
	if !errors.As(err, &u) || u.Reason != reason {
		t.Fatalf("err = %v, want UTD %s", err, reason)
	}
}

// setup: Alice and Bob with one device each in an encrypted room.
func setup(t testing.TB) (*fakeServer, *client, *client, string) {
	s := newServer(t)
	a := s.newClient("@alice:hs", "ALICE1", e2ee.StrictPolicy())
	b := s.newClient("@bob:hs", "BOB1", e2ee.StrictPolicy())
	room := "!room:hs"
	a.sync(roomState(room, a.user, b.user))
	b.sync(roomState(room, a.user, b.user))
	a.flush()
	b.flush()
	return s, a, b, room
}
