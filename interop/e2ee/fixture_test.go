package e2ee_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"myelin/canonicaljson"
	"myelin/crypto/crosssign"
	"myelin/crypto/olm"
	"myelin/e2ee"
	"myelin/e2ee/store/memory"
	"myelin/id"
)

// keyServer is an in-memory key directory and to-device relay for myelin
// machines (the benchmarks need no HTTP): keys/upload (device keys
// cross-signed by the user's self-signing key), keys/query, keys/claim
// (one-time keys are not consumed, so one claim response can be replayed)
// and sendToDevice.
type keyServer struct {
	tb      testing.TB
	mu      sync.Mutex
	rnd     *rand.ChaCha8
	signers map[string]*crosssign.SigningKeys
	devices map[string]map[string]json.RawMessage
	otks    map[string]map[string]map[string]json.RawMessage // user -> device -> key ID -> signed key
	inbox   map[string][]e2ee.ToDeviceEvent                  // "user|device"
	// passive: devices that never run; their one-time key is not consumed.
	passive map[string]bool
	// pub: Curve25519 and Ed25519 keys of every device, for mautrix.
	pub map[string]map[string][2]string
}

func newKeyServer(tb testing.TB) *keyServer {
	return &keyServer{tb: tb, rnd: rand.NewChaCha8([32]byte{7}), signers: map[string]*crosssign.SigningKeys{},
		devices: map[string]map[string]json.RawMessage{}, otks: map[string]map[string]map[string]json.RawMessage{},
		inbox: map[string][]e2ee.ToDeviceEvent{}, passive: map[string]bool{}, pub: map[string]map[string][2]string{}}
}

func (s *keyServer) identity(user string) *crosssign.SigningKeys {
	if sk := s.signers[user]; sk != nil {
		return sk
	}
	uid, err := id.ParseUserID(user)
	if err != nil {
		s.tb.Fatal(err)
	}
	sk, err := crosssign.Generate(s.rnd, uid)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.signers[user] = sk
	return sk
}

func (s *keyServer) putDevice(user, device string, signed json.RawMessage) {
	if s.devices[user] == nil {
		s.devices[user] = map[string]json.RawMessage{}
		s.pub[user] = map[string][2]string{}
	}
	s.devices[user][device] = signed
	var dk struct {
		Keys map[string]string `json:"keys"`
	}
	json.Unmarshal(signed, &dk)
	s.pub[user][device] = [2]string{dk.Keys["curve25519:"+device], dk.Keys["ed25519:"+device]}
}

func signWith(acct *olm.Account, user, device string, obj map[string]any) map[string]any {
	b, _ := canonicaljson.Marshal(obj)
	sig := acct.Sign(b)
	obj["signatures"] = map[string]any{user: map[string]any{"ed25519:" + device: sig.String()}}
	return obj
}

// addPassiveDevice publishes a cross-signed device with one signed one-time
// key; the device itself never runs (a share target).
func (s *keyServer) addPassiveDevice(user, device string) {
	rnd := rand.NewChaCha8(sha256.Sum256([]byte(user + "|" + device)))
	acct, err := olm.NewAccount(rnd)
	if err != nil {
		s.tb.Fatal(err)
	}
	curve, ed := acct.IdentityKeys()
	dk := signWith(acct, user, device, map[string]any{
		"user_id": user, "device_id": device,
		"algorithms": []any{crosssign.AlgorithmOlm, crosssign.AlgorithmMegolm},
		"keys":       map[string]any{"curve25519:" + device: curve.String(), "ed25519:" + device: ed.String()},
	})
	raw, _ := canonicaljson.Marshal(dk)
	signed, err := s.identity(user).SignDevice(raw)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.putDevice(user, device, signed)
	s.passive[user+"|"+device] = true
	if err := acct.GenerateOneTimeKeys(rnd, 1); err != nil {
		s.tb.Fatal(err)
	}
	if s.otks[user] == nil {
		s.otks[user] = map[string]map[string]json.RawMessage{}
	}
	s.otks[user][device] = map[string]json.RawMessage{}
	for _, k := range acct.OneTimeKeys() {
		o := signWith(acct, user, device, map[string]any{"key": k.Key.String()})
		s.otks[user][device]["signed_curve25519:"+k.ID], _ = json.Marshal(o)
	}
}

// handle answers one request of a machine of user/device.
func (s *keyServer) handle(user, device string, r e2ee.Request) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &body); err != nil {
		s.tb.Fatal(err)
	}
	var resp any
	switch r.Type {
	case e2ee.RequestKeysUpload:
		if dk, ok := body["device_keys"]; ok {
			signed, err := s.identity(user).SignDevice(dk)
			if err != nil {
				s.tb.Fatal(err)
			}
			s.putDevice(user, device, signed)
		}
		var otks map[string]json.RawMessage
		if raw, ok := body["one_time_keys"]; ok {
			json.Unmarshal(raw, &otks)
		}
		if s.otks[user] == nil {
			s.otks[user] = map[string]map[string]json.RawMessage{}
		}
		if s.otks[user][device] == nil {
			s.otks[user][device] = map[string]json.RawMessage{}
		}
		for k, v := range otks {
			s.otks[user][device][k] = v
		}
		resp = map[string]any{"one_time_key_counts": map[string]int{"signed_curve25519": len(s.otks[user][device])}}
	case e2ee.RequestKeysQuery:
		var q map[string][]string
		json.Unmarshal(body["device_keys"], &q)
		dk, mk, sk := map[string]any{}, map[string]any{}, map[string]any{}
		for u := range q {
			dk[u] = s.devices[u]
			if signer := s.signers[u]; signer != nil {
				mk[u], _ = signer.MasterKeyJSON()
				sk[u], _ = signer.SelfSigningKeyJSON()
				mk[u] = json.RawMessage(mk[u].([]byte))
				sk[u] = json.RawMessage(sk[u].([]byte))
			}
		}
		resp = map[string]any{"device_keys": dk, "master_keys": mk, "self_signing_keys": sk, "failures": map[string]any{}}
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
					if !s.passive[u+"|"+d] {
						delete(pool, ids[0])
					}
				}
			}
			out[u] = ud
		}
		resp = map[string]any{"one_time_keys": out, "failures": map[string]any{}}
	case e2ee.RequestSendToDevice:
		var msgs map[string]map[string]json.RawMessage
		json.Unmarshal(body["messages"], &msgs)
		for u, devs := range msgs {
			for d, content := range devs {
				k := u + "|" + d
				s.inbox[k] = append(s.inbox[k], e2ee.ToDeviceEvent{Type: r.EventType, Sender: user, Content: content})
			}
		}
		resp = map[string]any{}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		s.tb.Fatal(err)
	}
	return b
}

// peer is a myelin machine connected to a keyServer.
type peer struct {
	tb           testing.TB
	srv          *keyServer
	user, device string
	store        e2ee.Store
	m            *e2ee.Machine
	rejected     []e2ee.Rejection
}

var pickleKey = []byte("interop/e2ee bench pickle key 32")

func (s *keyServer) newPeer(user, device string) *peer {
	s.identity(user)
	p := &peer{tb: s.tb, srv: s, user: user, device: device, store: memory.New()}
	p.open()
	p.flush()
	return p
}

func (p *peer) open() {
	uid, _ := id.ParseUserID(p.user)
	did, _ := id.ParseDeviceID(p.device)
	m, err := e2ee.Open(context.Background(), e2ee.Config{
		UserID: uid, DeviceID: did, Store: p.store, PickleKey: pickleKey,
		Rand: rand.NewChaCha8(sha256.Sum256([]byte(p.user + p.device))), Clock: time.Now,
		Policy: e2ee.StrictPolicy(),
	})
	if err != nil {
		p.tb.Fatal(err)
	}
	p.m = m
}

func (p *peer) collect(r *e2ee.Result) {
	if r != nil {
		p.rejected = append(p.rejected, r.Rejected...)
	}
}

func (p *peer) flush() {
	ctx := context.Background()
	for range 20 {
		reqs, err := p.m.Outgoing(ctx)
		if err != nil {
			p.tb.Fatal(err)
		}
		if len(reqs) == 0 {
			return
		}
		for _, r := range reqs {
			res, err := p.m.MarkSent(ctx, r.ID, p.srv.handle(p.user, p.device, r))
			if err != nil {
				p.tb.Fatalf("MarkSent %s: %v", r.Type, err)
			}
			p.collect(res)
		}
	}
	p.tb.Fatal("flush: requests keep coming")
}

// sync delivers the peer's to-device inbox and room state.
func (p *peer) sync(rooms ...e2ee.RoomUpdate) {
	p.srv.mu.Lock()
	k := p.user + "|" + p.device
	in := e2ee.SyncInput{ToDevice: p.srv.inbox[k], Rooms: rooms, UnusedFallbackKeyTypes: []string{"signed_curve25519"},
		OneTimeKeyCounts: map[string]int{"signed_curve25519": e2ee.OneTimeKeyTarget}}
	delete(p.srv.inbox, k)
	p.srv.mu.Unlock()
	res, err := p.m.Receive(context.Background(), in)
	if err != nil {
		p.tb.Fatal(err)
	}
	p.collect(res)
}

var evSeq int

// send encrypts body into room and returns the event as a server serves it.
func (p *peer) send(room, body string) e2ee.Event {
	content := json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body))
	for range 5 {
		enc, err := p.m.Encrypt(context.Background(), room, "m.room.message", content)
		if err != nil {
			p.flush()
			continue
		}
		p.flush()
		evSeq++
		return e2ee.Event{Type: "m.room.encrypted", Content: enc, Sender: p.user, RoomID: room,
			EventID: fmt.Sprintf("$ev%d", evSeq), OriginServerTS: time.Now().UnixMilli()}
	}
	p.tb.Fatal("Encrypt never became ready")
	return e2ee.Event{}
}

// roomState is the state of an encrypted room with members joined.
func roomState(room string, members ...string) e2ee.RoomUpdate {
	ru := e2ee.RoomUpdate{RoomID: room}
	empty := ""
	ru.Events = append(ru.Events, e2ee.Event{Type: "m.room.encryption", StateKey: &empty,
		Content: json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2"}`)})
	for _, m := range members {
		sk := m
		ru.Events = append(ru.Events, e2ee.Event{Type: "m.room.member", StateKey: &sk, Sender: m,
			Content: json.RawMessage(`{"membership":"join"}`)})
	}
	return ru
}

func cloneStore(tb testing.TB, src e2ee.Store) *memory.Store {
	kinds := []e2ee.Kind{e2ee.KindAccount, e2ee.KindOlmSession, e2ee.KindOlmHash, e2ee.KindInboundGroup,
		e2ee.KindOutboundGroup, e2ee.KindMegolmIndex, e2ee.KindUser, e2ee.KindCurveIndex, e2ee.KindRoom,
		e2ee.KindRequest, e2ee.KindWithheld, e2ee.KindKeyRequest, e2ee.KindPendingOlm, e2ee.KindSecret}
	dst := memory.New()
	ch := &e2ee.Changes{}
	for _, k := range kinds {
		recs, err := src.List(context.Background(), k, "")
		if err != nil {
			tb.Fatal(err)
		}
		ch.Puts = append(ch.Puts, recs...)
	}
	if err := dst.Save(context.Background(), ch); err != nil {
		tb.Fatal(err)
	}
	return dst
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
