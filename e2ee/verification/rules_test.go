package verification

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"myelin/canonicaljson"
	"myelin/crypto/sas"
	"myelin/id"
	"myelin/keys"
)

// Negative tests: one per rule. Each would fail if its rule were removed.

func editJSON(t testing.TB, raw []byte, edit func(map[string]any)) []byte {
	t.Helper()
	obj, err := canonicaljson.ParseObject(raw)
	if err != nil {
		t.Fatal(err)
	}
	edit(obj)
	b, err := canonicaljson.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pair sets up alice and bob (different users) with the given options.
func pair(t testing.TB, opts Options) (*world, *party, *party) {
	w := newWorld(t)
	a := w.newParty(w.newUser("alice", 1), "ALICEDEV", 10, opts)
	b := w.newParty(w.newUser("bob", 2), "BOBDEV", 11, opts)
	return w, a, b
}

func otherKey(t testing.TB, seed byte) keys.Ed25519PublicKey {
	sk, err := keys.GenerateEd25519SecretKey(newRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return sk.PublicKey()
}

// Rule: the starter checks the accepter's commitment against its key and
// the start content (m.mismatched_commitment).
func TestCommitmentMismatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, in *Incoming)
	}{
		{"commitment replaced", func(t *testing.T, in *Incoming) {
			if in.Type == TypeAccept {
				in.Content = editJSON(t, in.Content, func(m map[string]any) {
					m["commitment"] = sas.Commitment(keys.Curve25519PublicKey{}, []byte("{}"))
				})
			}
		}},
		{"start altered on the way", func(t *testing.T, in *Incoming) {
			if in.Type == TypeStart {
				in.Content = editJSON(t, in.Content, func(m map[string]any) {
					m["short_authentication_string"] = []any{"decimal"}
				})
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, a, b := pair(t, Options{})
			s := request(w, a, b, InRoom)
			w.tamper = func(from, to *party, in *Incoming) bool { tc.tamper(t, in); return true }
			s.sasToEnd(a) // alice starts, bob commits
			wantCancel(t, a, CancelMismatchedCommitment, true, sas.ErrMismatchedCommitment)
			wantCancel(t, b, CancelMismatchedCommitment, false, nil)
			if a.sas() != nil {
				t.Fatal("SAS shown despite a bad commitment")
			}
		})
	}
}

// Rule: MACs are checked (m.key_mismatch), both the per-key MACs and the
// KEY_IDS MAC.
func TestMACMismatch(t *testing.T) {
	for _, field := range []string{"mac", "keys"} {
		t.Run(field, func(t *testing.T) {
			w, a, b := pair(t, Options{})
			s := request(w, a, b, ToDevice)
			w.tamper = func(from, to *party, in *Incoming) bool {
				if in.Type == TypeMAC && from == a {
					in.Content = editJSON(t, in.Content, func(m map[string]any) {
						if field == "keys" {
							m["keys"] = "AAAA" + m["keys"].(string)[4:]
							return
						}
						macs := m["mac"].(map[string]any)
						k := "ed25519:" + a.device.String()
						v := []byte(macs[k].(string))
						v[0] ^= 1
						macs[k] = string(v)
					})
				}
				return true
			}
			s.sasToEnd(b)
			wantCancel(t, b, CancelKeyMismatch, true, sas.ErrKeyMismatch)
		})
	}
}

// Rule: every message comes from the user and device of the flow
// (m.user_mismatch); to-device messages from another user do not even
// reach the flow.
func TestWrongSender(t *testing.T) {
	t.Run("in-room key from another user", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		mallory := mustUser(t, "@mallory:example.org")
		s := request(w, a, b, InRoom)
		w.tamper = func(from, to *party, in *Incoming) bool {
			if in.Type == TypeKey && from == b && to == a {
				in.Sender = mallory
			}
			return true
		}
		// In a room, mallory's event is not part of the flow: it is
		// ignored (cancelling would let any member abort others'
		// verifications). Alice never got bob's key, so his MAC is
		// unexpected: the flow fails closed, with no outcome.
		s.sasToEnd(a)
		wantCancel(t, a, CancelUnexpectedMessage, true, ErrUnexpectedMessage)
	})
	t.Run("to-device authenticated device differs", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		s := request(w, a, b, ToDevice)
		w.tamper = func(from, to *party, in *Incoming) bool {
			if in.Type == TypeKey && from == b {
				in.SenderDevice = mustDevice(t, "EVILDEV")
			}
			return true
		}
		s.sasToEnd(a)
		wantCancel(t, a, CancelUserMismatch, true, ErrSenderMismatch)
	})
	t.Run("to-device ready authenticated as another device than from_device", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		r, err := a.m.RequestToDevice(w.now, b.u.id, []id.DeviceID{b.device, mustDevice(t, "BOBDEV2")})
		if err != nil {
			t.Fatal(err)
		}
		a.do(r, nil)
		ready := encode(map[string]any{"transaction_id": r.Flow.ID, "from_device": b.device.String(), "methods": []any{MethodSAS}})
		a.do(a.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeReady, Sender: b.u.id, SenderDevice: mustDevice(t, "BOBDEV2"), Content: ready}))
		wantCancel(t, a, CancelUserMismatch, true, ErrSenderMismatch)
	})
	t.Run("to-device start from another device", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		s := request(w, a, b, ToDevice)
		w.tamper = func(from, to *party, in *Incoming) bool {
			if in.Type == TypeStart {
				in.Content = editJSON(t, in.Content, func(m map[string]any) { m["from_device"] = "EVILDEV" })
			}
			return true
		}
		s.sasToEnd(b)
		wantCancel(t, a, CancelUserMismatch, true, ErrSenderMismatch)
	})
	t.Run("to-device message from another user", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		mallory := mustUser(t, "@mallory:example.org")
		s := request(w, a, b, ToDevice)
		// Mallory sends a key into alice's transaction: it is not the flow
		// with bob (to-device flows are per sender) and bob's flow is untouched.
		content := encode(map[string]any{"transaction_id": s.reqRef.ID, "key": otherKey(t, 9).String()})
		r, err := a.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeKey, Sender: mallory, SenderDevice: mustDevice(t, "MALLORY"), Content: content})
		if !errors.Is(err, ErrUnknownFlow) || r.Cancelled != nil {
			t.Fatalf("mallory reached a flow: %v %+v", err, r)
		}
		for _, o := range r.Send {
			if o.ToUser != mallory {
				t.Fatalf("answer to mallory went to %s", o.ToUser)
			}
		}
		if st, _ := a.m.State(s.reqRef); st != Ready {
			t.Fatalf("alice's flow state %s", st)
		}
	})
}

// Rule: a to-device message for an unknown transaction is answered with
// m.unknown_transaction (but never a start or a cancel; in-room flows of
// other people are ignored).
func TestUnknownTransaction(t *testing.T) {
	w, a, b := pair(t, Options{})
	_ = b
	bob := b.u.id
	key := encode(map[string]any{"transaction_id": "nope", "key": otherKey(t, 9).String()})
	r, err := a.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeKey, Sender: bob, SenderDevice: b.device, Content: key})
	if !errors.Is(err, ErrUnknownFlow) || len(r.Send) != 1 || r.Send[0].Type != TypeCancel || r.Send[0].ToUser != bob {
		t.Fatalf("unknown key: %v %+v", err, r)
	}
	c, _, _ := parseContent(r.Send[0].Content)
	if c.Code != string(CancelUnknownTransaction) || c.TransactionID != "nope" {
		t.Fatalf("cancel content %s", r.Send[0].Content)
	}
	cancel := encode(map[string]any{"transaction_id": "nope", "code": "m.user", "reason": "x"})
	if r, _ := a.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeCancel, Sender: bob, SenderDevice: b.device, Content: cancel}); len(r.Send) != 0 {
		t.Fatal("answered a cancel for an unknown transaction")
	}
	// In-room: another pair's verification in the room.
	rel := encode(map[string]any{"m.relates_to": map[string]any{"rel_type": RelReference, "event_id": "$other:example.org"}, "key": otherKey(t, 9).String()})
	ev, _ := id.ParseEventID("$x:example.org")
	if r, err := a.m.Handle(w.now, Incoming{Transport: InRoom, Type: TypeKey, Sender: bob, Room: w.room, EventID: ev, Content: rel}); len(r.Send) != 0 || !errors.Is(err, ErrUnknownFlow) {
		t.Fatalf("in-room unknown flow answered: %v %+v", err, r)
	}
}

// Rule (A2, the exact 2022 sequence): the server gives alice's device the
// ID base64(fake master key) and serves bob that fake key as alice's master
// key. Bob must refuse the flow (m.key_mismatch, collision), verify nothing
// and sign nothing.
func TestA2DeviceIDIsFakeMasterKey(t *testing.T) {
	for _, tc := range []struct {
		name     string
		aliceReq bool
		tr       Transport
	}{
		{"alice requests in-room", true, InRoom},
		{"bob requests in-room", false, InRoom},
		{"bob requests to-device", false, ToDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			alice := w.newUser("alice", 1)
			evil := w.newUser("alice", 66) // the server's parallel identity for alice
			fakeMSK := evil.cs.Master.PublicKey()
			a := w.newParty(alice, fakeMSK.String(), 10, Options{})
			b := w.newParty(w.newUser("bob", 2), "BOBDEV", 11, Options{})
			b.override = func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
				tk, err := w.honest(u, d)
				if err == nil && u == alice.id {
					tk.MasterKey = fakeMSK
					tk.OtherCrossSigningKeys = []keys.Ed25519PublicKey{evil.cs.SelfSigning.PublicKey()}
				}
				return tk, err
			}
			req, resp := b, a
			if tc.aliceReq {
				req, resp = a, b
			}
			s := request(w, req, resp, tc.tr)
			if st, _ := b.m.State(map[bool]FlowRef{true: s.respRef, false: s.reqRef}[tc.aliceReq]); st != Cancelled {
				// Try to go on: nothing may come of it.
				s.sasToEnd(a)
			}
			wantCancel(t, b, CancelKeyMismatch, true, sas.ErrDeviceIDCollision)
			if a.outcome() != nil {
				t.Fatal("alice completed")
			}
		})
	}
	t.Run("collision with another device of the user", func(t *testing.T) {
		w := newWorld(t)
		alice := w.newUser("alice", 1)
		a := w.newParty(alice, "ALICEDEV", 10, Options{})
		b := w.newParty(w.newUser("bob", 2), "BOBDEV", 11, Options{})
		b.override = func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
			tk, err := w.honest(u, d)
			tk.OtherDevices = append(tk.OtherDevices, mustDevice(t, alice.cs.SelfSigning.PublicKey().String()))
			return tk, err
		}
		request(w, a, b, InRoom)
		wantCancel(t, b, CancelKeyMismatch, true, sas.ErrDeviceIDCollision)
	})
	// Second variant: no collision, the server only swaps the master key it
	// serves bob. Alice's MAC names her real key, which bob did not pin.
	t.Run("master key swapped", func(t *testing.T) {
		w := newWorld(t)
		alice := w.newUser("alice", 1)
		evil := w.newUser("alice", 66)
		a := w.newParty(alice, "ALICEDEV", 10, Options{})
		b := w.newParty(w.newUser("bob", 2), "BOBDEV", 11, Options{})
		b.override = func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
			tk, err := w.honest(u, d)
			if u == alice.id {
				tk.MasterKey = evil.cs.Master.PublicKey()
			}
			return tk, err
		}
		s := request(w, a, b, InRoom)
		s.sasToEnd(b)
		wantCancel(t, b, CancelKeyMismatch, true, sas.ErrUnexpectedKeyID)
	})
}

// Rule (B11 d): a MAC for a key ID outside the pinned set cancels the whole
// message, even with valid MACs.
func TestMACForUnpinnedKeyID(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, ToDevice)
	w.tamper = func(from, to *party, in *Incoming) bool {
		if in.Type != TypeMAC || from != a {
			return true
		}
		f := a.m.flows[s.reqRef]
		extra := sas.DeviceKey(mustDevice(t, "OTHER"), otherKey(t, 5))
		mc, err := f.est.MACs(f.macMethod, f.sasFlow(), []sas.Key{
			sas.DeviceKey(a.device, a.devSK.PublicKey()), sas.MasterKey(a.u.cs.Master.PublicKey()), extra,
		})
		if err != nil {
			t.Fatal(err)
		}
		macs := map[string]any{}
		for k, v := range mc.MAC {
			macs[k] = v
		}
		in.Content = editJSON(t, in.Content, func(m map[string]any) { m["mac"], m["keys"] = macs, mc.Keys })
		return true
	}
	s.sasToEnd(b)
	wantCancel(t, b, CancelKeyMismatch, true, sas.ErrUnexpectedKeyID)
}

// Rule: flows time out after 10 minutes (m.timeout sent); requests expire.
func TestTimeout(t *testing.T) {
	t.Run("tick", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		s := request(w, a, b, ToDevice)
		w.now = w.now.Add(FlowTimeout - time.Second)
		if rs := a.m.Tick(w.now); len(rs) != 0 {
			t.Fatalf("early timeout %+v", rs)
		}
		w.now = w.now.Add(2 * time.Second)
		for _, r := range a.m.Tick(w.now) {
			w.post(a, r, nil)
		}
		w.run()
		wantCancel(t, a, CancelTimeout, true, ErrTimeout)
		wantCancel(t, b, CancelTimeout, false, nil)
		_ = s
	})
	t.Run("message after the deadline", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		s := request(w, a, b, InRoom)
		w.now = w.now.Add(FlowTimeout + time.Second)
		b.do(b.m.StartSAS(w.now, s.respRef))
		wantCancel(t, b, CancelTimeout, true, ErrTimeout)
		wantCancel(t, a, CancelTimeout, false, nil) // bob's cancel reached alice
	})
	t.Run("prompt dismissed after 2 minutes", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		r, err := a.m.RequestToDevice(w.now, b.u.id, []id.DeviceID{b.device})
		if err != nil {
			t.Fatal(err)
		}
		a.do(r, nil)
		ref, _ := b.lastRequest()
		w.now = w.now.Add(RequestPromptTimeout + time.Second)
		res, err := b.m.Accept(w.now, ref)
		if !errors.Is(err, ErrTimeout) || len(res.Send) != 0 {
			t.Fatalf("late accept: %v %+v", err, res)
		}
		if st, _ := b.m.State(ref); st != Cancelled {
			t.Fatalf("state %s", st)
		}
	})
	for _, tc := range []struct {
		name string
		age  time.Duration
	}{{"request 11 minutes old", 11 * time.Minute}, {"request 6 minutes in the future", -6 * time.Minute}} {
		t.Run(tc.name, func(t *testing.T) {
			w, _, b := pair(t, Options{})
			content := encode(map[string]any{"transaction_id": "t1", "from_device": "ALICEDEV", "methods": []any{MethodSAS}, "timestamp": w.now.Add(-tc.age).UnixMilli()})
			r, err := b.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeRequest, Sender: mustUser(t, "@alice:example.org"), Content: content})
			if !errors.Is(err, ErrIgnored) || r.Request != nil {
				t.Fatalf("stale request accepted: %v", err)
			}
		})
	}
	t.Run("in-room request 11 minutes old", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		out := a.m.RequestInRoomContent(w.room, b.u.id)
		ev, _ := id.ParseEventID("$old:example.org")
		_, err := b.m.Handle(w.now, Incoming{Transport: InRoom, Type: TypeRoomMessage, Sender: a.u.id, Room: w.room, EventID: ev, OriginServerTS: w.now.Add(-11 * time.Minute), Content: out.Content})
		if !errors.Is(err, ErrIgnored) {
			t.Fatalf("stale in-room request: %v", err)
		}
	})
}

// Rule: hkdf-hmac-sha256 (legacy) is never used when both support v2, and
// not at all unless allowed.
func TestLegacyMACDowngradeRefused(t *testing.T) {
	startContent := func(macs ...any) []byte {
		return encode(map[string]any{
			"transaction_id": "t1", "from_device": "ALICEDEV", "method": MethodSAS,
			"key_agreement_protocols": []any{sas.KeyAgreementProtocol}, "hashes": []any{"sha256"},
			"message_authentication_codes": macs, "short_authentication_string": []any{"decimal", "emoji"},
		})
	}
	alice := func(t *testing.T) id.UserID { return mustUser(t, "@alice:example.org") }
	for _, tc := range []struct {
		name    string
		allow   bool
		offered []any
		want    string // accepted MAC, or "" for a cancel
	}{
		{"v2 chosen over legacy listed first", true, []any{"hkdf-hmac-sha256", "hkdf-hmac-sha256.v2"}, "hkdf-hmac-sha256.v2"},
		{"legacy only, not allowed", false, []any{"hkdf-hmac-sha256"}, ""},
		{"legacy only, allowed", true, []any{"hkdf-hmac-sha256"}, "hkdf-hmac-sha256"},
		{"long-KDF never", true, []any{"hmac-sha256"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, a, b := pair(t, Options{AllowLegacyMAC: tc.allow})
			_ = a
			r, err := b.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeStart, Sender: alice(t), Content: startContent(tc.offered...)})
			if err != nil {
				t.Fatal(err)
			}
			if r.Cancelled == nil {
				r, err = b.m.AcceptSAS(w.now, r.Flow)
				if err != nil {
					t.Fatal(err)
				}
			}
			if tc.want == "" {
				if r.Cancelled == nil || r.Cancelled.Code != CancelUnknownMethod {
					t.Fatalf("want m.unknown_method, got %+v", r)
				}
				return
			}
			if len(r.Send) != 1 || r.Send[0].Type != TypeAccept {
				t.Fatalf("no accept: %+v", r)
			}
			c, _, _ := parseContent(r.Send[0].Content)
			if c.MessageAuthenticationCode != tc.want {
				t.Fatalf("accepted %q, want %q", c.MessageAuthenticationCode, tc.want)
			}
		})
	}
	t.Run("accept downgraded to legacy refused by the starter", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		s := request(w, a, b, ToDevice)
		w.tamper = func(from, to *party, in *Incoming) bool {
			if in.Type == TypeAccept {
				in.Content = editJSON(t, in.Content, func(m map[string]any) { m["message_authentication_code"] = "hkdf-hmac-sha256" })
			}
			return true
		}
		s.sasToEnd(a)
		wantCancel(t, a, CancelUnknownMethod, true, ErrNoCommonMethod)
	})
	t.Run("our start offers only v2 by default", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		s := request(w, a, b, ToDevice)
		r, err := a.m.StartSAS(w.now, s.reqRef)
		if err != nil {
			t.Fatal(err)
		}
		c, _, _ := parseContent(r.Send[0].Content)
		if len(c.MessageAuthenticationCodes) != 1 || c.MessageAuthenticationCodes[0] != "hkdf-hmac-sha256.v2" {
			t.Fatalf("offered %v", c.MessageAuthenticationCodes)
		}
	})
}

// Rule: a second start after accept is unexpected (B11 c).
func TestSecondStartAfterAccept(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, InRoom)
	var start Incoming
	w.tamper = func(from, to *party, in *Incoming) bool {
		if in.Type == TypeStart && to == b {
			start = *in
		}
		// Stop before keys so bob sits in Accepted.
		return in.Type != TypeKey
	}
	a.do(a.m.StartSAS(w.now, s.reqRef))
	if st, _ := b.m.State(s.respRef); st != Accepted {
		t.Fatalf("bob state %s", st)
	}
	r, err := b.m.Handle(w.now, start)
	w.post(b, r, err)
	wantCancel(t, b, CancelUnexpectedMessage, true, ErrUnexpectedMessage)
}

// Rule: done before a verified MAC has no effect but a cancel (B11 c).
func TestDoneBeforeMAC(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, ToDevice)
	a.do(a.m.StartSAS(w.now, s.reqRef))
	if st, _ := b.m.State(s.respRef); st != KeysExchanged {
		t.Fatalf("bob state %s", st)
	}
	done := encode(map[string]any{"transaction_id": s.reqRef.ID})
	b.do(b.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeDone, Sender: a.u.id, Content: done}))
	wantCancel(t, b, CancelUnexpectedMessage, true, ErrUnexpectedMessage)
	// Confirming afterwards is refused.
	if _, err := b.m.Confirm(w.now, s.respRef); !errors.Is(err, ErrWrongState) {
		t.Fatalf("confirm after cancel: %v", err)
	}
}

// Rule: no outcome without our user's confirmation, even with a valid MAC.
func TestNoOutcomeWithoutConfirm(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, ToDevice)
	a.do(a.m.StartSAS(w.now, s.reqRef))
	a.do(a.m.Confirm(w.now, s.reqRef))
	if st, _ := b.m.State(s.respRef); st != MacReceived || b.outcome() != nil {
		t.Fatalf("bob state %s, outcome %v", st, b.outcome())
	}
	b.do(b.m.Mismatch(w.now, s.respRef))
	wantCancel(t, b, CancelMismatchedSAS, true, nil)
	wantCancel(t, a, CancelMismatchedSAS, false, nil)
}

// Rule (B11 b): the other side's keys changing after they were pinned
// cancels with m.key_mismatch before any outcome.
func TestKeyChangedMidFlow(t *testing.T) {
	for _, what := range []string{"device key", "master key"} {
		t.Run(what, func(t *testing.T) {
			w, a, b := pair(t, Options{})
			s := request(w, a, b, ToDevice)
			a.override = func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
				tk, err := w.honest(u, d)
				if what == "device key" {
					tk.DeviceKey = otherKey(t, 7)
				} else {
					tk.MasterKey = otherKey(t, 7)
				}
				return tk, err
			}
			s.sasToEnd(b)
			wantCancel(t, a, CancelKeyMismatch, true, ErrKeyChanged)
		})
	}
}

// Rule: verifying another user requires their master key (A2 rule 4) unless
// device-only verification is allowed.
func TestDeviceOnly(t *testing.T) {
	noMSK := func(w *world) func(id.UserID, id.DeviceID) (sas.TheirKeys, error) {
		return func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
			tk, err := w.honest(u, d)
			tk.MasterKey = keys.Ed25519PublicKey{}
			return tk, err
		}
	}
	t.Run("refused by default", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		b.override = noMSK(w)
		request(w, a, b, InRoom)
		wantCancel(t, b, CancelKeyMismatch, true, ErrNoMasterKey)
	})
	t.Run("allowed: outcome without master key, nothing to sign", func(t *testing.T) {
		w, a, b := pair(t, Options{AllowDeviceOnly: true})
		b.override = noMSK(w)
		a.m.cfg.Own.MasterKey = keys.Ed25519PublicKey{} // alice has no cross-signing
		s := request(w, a, b, InRoom)
		s.sasToEnd(a)
		o := b.outcome()
		if o == nil || o.MasterKey != nil {
			t.Fatalf("outcome %+v (errs %v)", o, b.errs)
		}
		mk, _ := a.u.cs.MasterKeyJSON()
		if _, err := o.SignOtherUser(b.u.cs, mk); !errors.Is(err, ErrNoMasterKey) {
			t.Fatalf("signed without a verified master key: %v", err)
		}
	})
}

// Rule: a start collision resolves to the start of the smaller user ID.
func TestStartCollision(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, InRoom)
	ra, err := a.m.StartSAS(w.now, s.reqRef)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.m.StartSAS(w.now, s.respRef)
	if err != nil {
		t.Fatal(err)
	}
	w.post(a, ra, nil)
	w.post(b, rb, nil)
	w.run()
	if !a.m.flows[s.reqRef].weStarted || b.m.flows[s.respRef].weStarted {
		t.Fatal("alice (the smaller user ID) should be the starter")
	}
	a.do(a.m.Confirm(w.now, s.reqRef))
	b.do(b.m.Confirm(w.now, s.respRef))
	if a.outcome() == nil || b.outcome() == nil {
		t.Fatalf("no outcome: %v %v", a.errs, b.errs)
	}
}

// Rule: to-device requests to several devices: the first ready wins, the
// others are told m.accepted; in-room, our other devices stand down.
func TestAcceptedElsewhere(t *testing.T) {
	t.Run("to-device fan-out", func(t *testing.T) {
		w := newWorld(t)
		a := w.newParty(w.newUser("alice", 1), "ALICEDEV", 10, Options{})
		bob := w.newUser("bob", 2)
		b1 := w.newParty(bob, "BOBDEV1", 11, Options{})
		b2 := w.newParty(bob, "BOBDEV2", 12, Options{})
		r, err := a.m.RequestToDevice(w.now, bob.id, []id.DeviceID{b1.device, b2.device})
		if err != nil {
			t.Fatal(err)
		}
		a.do(r, nil)
		ref1, _ := b1.lastRequest()
		ref2, _ := b2.lastRequest()
		r1, err1 := b1.m.Accept(w.now, ref1)
		r2, err2 := b2.m.Accept(w.now, ref2)
		w.post(b1, r1, err1)
		w.post(b2, r2, err2)
		w.run()
		wantCancel(t, b2, CancelAccepted, false, nil)
		if st, _ := a.m.State(r.Flow); st != Ready || a.m.flows[r.Flow].their.Device != b1.device {
			t.Fatalf("alice state %s with %v", st, a.m.flows[r.Flow].their)
		}
		b1.do(b1.m.StartSAS(w.now, ref1))
		a.do(a.m.Confirm(w.now, r.Flow))
		b1.do(b1.m.Confirm(w.now, ref1))
		if o := a.outcome(); o == nil || o.Their.Device != b1.device {
			t.Fatalf("alice outcome %+v", o)
		}
	})
	t.Run("to-device fan-out declined on one device", func(t *testing.T) {
		w := newWorld(t)
		a := w.newParty(w.newUser("alice", 1), "ALICEDEV", 10, Options{})
		bob := w.newUser("bob", 2)
		b1 := w.newParty(bob, "BOBDEV1", 11, Options{})
		b2 := w.newParty(bob, "BOBDEV2", 12, Options{})
		r, err := a.m.RequestToDevice(w.now, bob.id, []id.DeviceID{b1.device, b2.device})
		if err != nil {
			t.Fatal(err)
		}
		a.do(r, nil)
		ref1, _ := b1.lastRequest()
		b1.do(b1.m.Cancel(w.now, ref1))
		wantCancel(t, a, CancelUser, false, nil)
		wantCancel(t, b2, CancelUser, false, nil) // alice told bob's other device
	})
	t.Run("in-room other own device", func(t *testing.T) {
		w := newWorld(t)
		a := w.newParty(w.newUser("alice", 1), "ALICEDEV", 10, Options{})
		bob := w.newUser("bob", 2)
		b1 := w.newParty(bob, "BOBDEV1", 11, Options{})
		b2 := w.newParty(bob, "BOBDEV2", 12, Options{})
		ref := w.sendInRoomRequest(a, bob)
		b1.do(b1.m.Accept(w.now, ref))
		wantCancel(t, b2, CancelAccepted, true, nil)
		for _, r := range b2.results {
			if r.Cancelled != nil && len(r.Send) != 0 {
				t.Fatal("b2 sent something when standing down")
			}
		}
		if st, _ := a.m.State(ref); st != Ready {
			t.Fatalf("alice state %s", st)
		}
	})
}

// Rule: malformed fields cancel with m.invalid_message; unparseable input
// changes nothing.
func TestInvalidMessage(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, ToDevice)
	w.tamper = func(from, to *party, in *Incoming) bool {
		if in.Type == TypeKey {
			in.Content = editJSON(t, in.Content, func(m map[string]any) { m["key"] = "not base64!" })
		}
		return true
	}
	s.sasToEnd(a)
	wantCancel(t, b, CancelInvalidMessage, true, ErrInvalidMessage)

	w2, a2, b2 := pair(t, Options{})
	s2 := request(w2, a2, b2, ToDevice)
	for _, bad := range [][]byte{[]byte(`{"transaction_id":"x","transaction_id":"y"}`), []byte(`not json`), make([]byte, MaxContentSize+1)} {
		if _, err := a2.m.Handle(w2.now, Incoming{Transport: ToDevice, Type: TypeKey, Sender: b2.u.id, Content: bad}); !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("bad content: %v", err)
		}
	}
	if st, _ := a2.m.State(s2.reqRef); st != Ready {
		t.Fatalf("state changed to %s", st)
	}
}

// Rule: the user can cancel (m.user); the peer sees the code.
func TestUserCancel(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, InRoom)
	a.do(a.m.Cancel(w.now, s.reqRef))
	wantCancel(t, a, CancelUser, true, nil)
	wantCancel(t, b, CancelUser, false, nil)
	// Nothing answers a cancel.
	if _, err := b.m.StartSAS(w.now, s.respRef); !errors.Is(err, ErrWrongState) {
		t.Fatalf("start after cancel: %v", err)
	}
}

// Rule: the number of flows is bounded; finished flows make room.
func TestMaxFlows(t *testing.T) {
	w, a, b := pair(t, Options{})
	req := func(txn string) (Result, error) {
		c := encode(map[string]any{"transaction_id": txn, "from_device": "ALICEDEV", "methods": []any{MethodSAS}, "timestamp": w.now.UnixMilli()})
		return b.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeRequest, Sender: a.u.id, Content: c})
	}
	var first FlowRef
	for i := range MaxFlows {
		r, err := req(fmt.Sprintf("flood%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.Flow
		}
	}
	if _, err := req("one-more"); !errors.Is(err, ErrTooManyFlows) {
		t.Fatalf("flow %d: %v", MaxFlows+1, err)
	}
	if _, err := b.m.Cancel(w.now, first); err != nil {
		t.Fatal(err)
	}
	if r, err := req("one-more"); err != nil || r.Request == nil {
		t.Fatalf("after a flow finished: %v", err)
	}
}
