package e2ee_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"myelin/crypto/crosssign"
	"myelin/crypto/megolm"
	"myelin/e2ee"
	"myelin/keys"
)

var ctx = context.Background()

func sessionOf(t testing.TB, ev e2ee.Event) string {
	var c struct {
		SessionID string `json:"session_id"`
	}
	if err := json.Unmarshal(ev.Content, &c); err != nil {
		t.Fatal(err)
	}
	return c.SessionID
}

// sentTo counts captured to-device messages of evType to "user|device"
// from index from on.
func (s *fakeServer) sentTo(from int, to, evType string) int {
	n := 0
	for _, m := range s.sent[from:] {
		if m.To == to && m.EventType == evType {
			n++
		}
	}
	return n
}

func withheldCode(s *fakeServer, from int, to string) string {
	for _, m := range s.sent[from:] {
		if m.To == to && m.EventType == "m.room_key.withheld" {
			var c struct {
				Code string `json:"code"`
			}
			json.Unmarshal(m.Content, &c)
			return c.Code
		}
	}
	return ""
}

// ---- A4: protocol confusion ----

func TestA4ToDeviceMustBeOlm(t *testing.T) {
	s, a, _, room := setup(t)
	evil := s.newAttacker("@claire:hs", "CLAIRE1", true)
	ms := evil.megolmSession()
	inner, _ := json.Marshal(map[string]any{"type": "m.room_key", "content": roomKeyContent(room, ms)})
	megolmToDevice, _ := json.Marshal(map[string]any{"algorithm": crosssign.AlgorithmMegolm, "sender_key": evil.curve.String(),
		"session_id": ms.ID(), "ciphertext": keys.EncodeBase64(ms.Encrypt(inner))})
	s.deliver(a, e2ee.ToDeviceEvent{Type: "m.room.encrypted", Sender: "@bob:hs", Content: megolmToDevice})
	a.sync()
	if !a.hasRejection(e2ee.RejectToDeviceNotOlm) {
		t.Fatalf("Megolm to-device not rejected: %+v", a.rejected)
	}
	_, err := a.decrypt(room, evil.megolmEvent(ms, room, room, "@bob:hs", "$x", "forged"))
	wantUTD(t, err, e2ee.UTDNoSession)
}

func TestA4KeyEventsOnlyOverOlm(t *testing.T) {
	s, a, _, room := setup(t)
	evil := s.newAttacker("@claire:hs", "CLAIRE1", true)
	ms := evil.megolmSession()
	for _, typ := range []string{"m.room_key", "m.forwarded_room_key", "m.secret.send", "m.dummy"} {
		c, _ := json.Marshal(roomKeyContent(room, ms))
		s.deliver(a, e2ee.ToDeviceEvent{Type: typ, Sender: "@bob:hs", Content: c})
	}
	a.sync()
	n := 0
	for _, r := range a.rejected {
		if r.Code == e2ee.RejectUnencryptedKeyEvent {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("unencrypted key events rejected %d times, want 4: %+v", n, a.rejected)
	}
	_, err := a.decrypt(room, evil.megolmEvent(ms, room, room, "@bob:hs", "$x", "forged"))
	wantUTD(t, err, e2ee.UTDNoSession)
}

func TestA4OlmInRoomIsUTD(t *testing.T) {
	_, a, _, room := setup(t)
	c := json.RawMessage(`{"algorithm":"m.olm.v1.curve25519-aes-sha2","sender_key":"x","ciphertext":{}}`)
	_, err := a.decrypt(room, e2ee.Event{Type: "m.room.encrypted", Sender: "@bob:hs", EventID: "$o", Content: c})
	wantUTD(t, err, e2ee.UTDOlmInRoom)
}

// ---- A1: membership and injected devices ----

func TestA1bNoShareToNonCrossSignedDevice(t *testing.T) {
	s, a, _, room := setup(t)
	s.newAttacker("@bob:hs", "EVIL", false) // server-injected, self-signed only
	a.sync()
	a.flush()
	mark := len(s.sent)
	a.send(room, "secret")
	if n := s.sentTo(mark, "@bob:hs|EVIL", "m.room.encrypted"); n != 0 {
		t.Fatalf("room key sent to a device that is not cross-signed (%d messages)", n)
	}
	if s.sentTo(mark, "@bob:hs|BOB1", "m.room.encrypted") != 1 {
		t.Fatal("room key not sent to Bob's cross-signed device")
	}
	if code := withheldCode(s, mark, "@bob:hs|EVIL"); code != e2ee.WithheldUnverified {
		t.Fatalf("withheld code to EVIL = %q, want m.unverified", code)
	}
	// Permissive policy shares (shows the rule is what stops it).
	s2, a2, _, room2 := setup(t)
	_ = a2
	lax := s2.newClient("@carol:hs", "CAROL1", e2ee.TrustPolicy{ShareWithNonCrossSigned: true})
	s2.newAttacker("@bob:hs", "EVIL", false)
	lax.sync(roomState(room2, lax.user, "@bob:hs"))
	lax.flush()
	mark = len(s2.sent)
	lax.send(room2, "hi")
	if s2.sentTo(mark, "@bob:hs|EVIL", "m.room.encrypted") != 1 {
		t.Fatal("permissive policy did not share with the unsigned device")
	}
}

func TestA1bHideMessagesFromNonCrossSignedDevice(t *testing.T) {
	s, a, _, room := setup(t)
	show := s.newClient("@carol:hs", "CAROL1", e2ee.TrustPolicy{ShowNonCrossSigned: true})
	show.sync(roomState(room, a.user, "@bob:hs", show.user))
	evil := s.newAttacker("@bob:hs", "EVIL", false)
	for _, c := range []*client{a, show} {
		c.sync()
		c.flush()
	}
	ms := evil.megolmSession()
	for _, c := range []*client{a, show} {
		s.deliver(c, evil.olmTo(c, "@bob:hs", evil.plaintext(c, "m.room_key", roomKeyContent(room, ms))))
		c.sync()
		c.flush()
	}
	ev := evil.megolmEvent(ms, room, room, "@bob:hs", "$evil1", "from evil")
	_, err := a.decrypt(room, ev)
	wantUTD(t, err, e2ee.UTDInsecureDeviceHidden)
	d, err := show.decrypt(room, ev)
	if err != nil || d.Provenance.Trust != e2ee.TrustUnverifiedDevice {
		t.Fatalf("lax policy: %v %+v", err, d)
	}
}

func TestA1bDeviceKeysChangedUnderSameID(t *testing.T) {
	s, a, b, room := setup(t)
	a.send(room, "one")
	// The server now serves other keys under BOB1.
	evil := s.newAttacker("@mallory:hs", "BOB1", true)
	s.tamperQuery = func(_ string, resp map[string]any) {
		dk := resp["device_keys"].(map[string]any)
		if bob, ok := dk["@bob:hs"].(map[string]any); ok {
			var obj map[string]any
			json.Unmarshal(evil.devKeys, &obj)
			obj["user_id"] = "@bob:hs"
			raw, _ := json.Marshal(signWith(evil.acct, "@bob:hs", "BOB1", map[string]any{
				"user_id": "@bob:hs", "device_id": "BOB1", "algorithms": obj["algorithms"], "keys": obj["keys"]}))
			bob["BOB1"] = json.RawMessage(raw)
		}
	}
	s.markChanged(b.user)
	a.sync()
	a.flush()
	if !a.hasAlert(e2ee.AlertDeviceKeysChanged) || !a.hasRejection(e2ee.RejectDeviceKeysInvalid) {
		t.Fatalf("no device_keys_changed alert: %+v %+v", a.alerts, a.rejected)
	}
	mark := len(s.sent)
	ev := a.send(room, "two")
	for _, m := range s.sent[mark:] {
		if m.To == "@bob:hs|BOB1" && m.EventType == "m.room.encrypted" && json.Valid(m.Content) &&
			containsKey(m.Content, evil.curve.String()) {
			t.Fatal("room key encrypted to the substituted device key")
		}
	}
	_ = ev
}

func containsKey(content json.RawMessage, curve string) bool {
	var c struct {
		Ciphertext map[string]any `json:"ciphertext"`
	}
	json.Unmarshal(content, &c)
	_, ok := c.Ciphertext[curve]
	return ok
}

func TestA1RotateOnLeaveAndDeviceRemoval(t *testing.T) {
	s, a, b, room := setup(t)
	c := s.newClient("@carol:hs", "CAROL1", e2ee.StrictPolicy())
	all := roomState(room, a.user, b.user, c.user)
	for _, x := range []*client{a, b, c} {
		x.sync(all)
		x.flush()
	}
	e1 := a.send(room, "before")
	b.sync()
	b.mustDecrypt(room, e1, "before")
	// Bob leaves.
	a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{member(b.user, "leave")}})
	mark := len(s.sent)
	e2 := a.send(room, "after")
	if sessionOf(t, e1) == sessionOf(t, e2) {
		t.Fatal("outbound session not rotated after a member left")
	}
	if s.sentTo(mark, "@bob:hs|BOB1", "m.room.encrypted") != 0 {
		t.Fatal("new room key sent to the member who left")
	}
	b.sync()
	_, err := b.decrypt(room, e2)
	wantUTD(t, err, e2ee.UTDNoSession)
	c.sync()
	c.mustDecrypt(room, e2, "after")
	// Carol's device disappears from her list: rotate again.
	delete(s.devices[c.user], "CAROL1")
	s.markChanged(c.user)
	a.sync()
	a.flush()
	e3 := a.send(room, "after removal")
	if sessionOf(t, e3) == sessionOf(t, e2) {
		t.Fatal("outbound session not rotated after a device was removed")
	}
}

// ---- A3: forwarded keys ----

func forwardContent(room string, ms *megolm.OutboundSession, senderCurve, senderEd string) map[string]any {
	in, _ := megolm.NewInboundSession(ms.SessionKey())
	ek, _ := in.Export(in.FirstKnownIndex())
	return map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": room, "session_id": ms.ID(),
		"session_key": ek.String(), "sender_key": senderCurve, "sender_claimed_ed25519_key": senderEd,
		"forwarding_curve25519_key_chain": []string{}}
}

func TestA3ForwardedKeyRules(t *testing.T) {
	s, a, b, room := setup(t)
	_, bobEd := b.m.IdentityKeys()
	bobCurve, _ := b.m.IdentityKeys()
	claire := s.newAttacker("@claire:hs", "CLAIRE1", true)
	ownSigned := s.newAttacker(a.user, "ALICE_X", true)    // cross-signed own device
	ownUnsigned := s.newAttacker(a.user, "ALICE_U", false) // injected into Alice's account
	a.sync()
	a.flush()
	tests := []struct {
		name   string
		from   *attacker
		env    string
		prep   func(ms *megolm.OutboundSession) // e.g. provoke a request
		reject e2ee.RejectCode
	}{
		{"unrequested from own cross-signed device", ownSigned, a.user, nil, e2ee.RejectUnrequestedForward},
		{"other user", claire, claire.user, nil, e2ee.RejectForwardUntrusted},
		{"requested, answered by other user", claire, claire.user, func(ms *megolm.OutboundSession) {
			a.decrypt(room, claire.megolmEvent(ms, room, room, b.user, "$p1", "x"))
		}, e2ee.RejectForwardUntrusted},
		{"requested, own device not cross-signed", ownUnsigned, a.user, func(ms *megolm.OutboundSession) {
			a.decrypt(room, claire.megolmEvent(ms, room, room, b.user, "$p2", "x"))
		}, e2ee.RejectForwardUntrusted},
		{"envelope says alice, olm key is claire's", claire, a.user, nil, e2ee.RejectOlmBindingMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.rejected = nil
			ms := claire.megolmSession()
			if tc.prep != nil {
				tc.prep(ms)
				a.flush()
			}
			pt := tc.from.plaintext(a, "m.forwarded_room_key", forwardContent(room, ms, bobCurve.String(), bobEd.String()))
			pt["sender"] = tc.env
			s.deliver(a, tc.from.olmTo(a, tc.env, pt))
			a.sync()
			a.flush()
			if !a.hasRejection(tc.reject) {
				t.Fatalf("want %s, got %+v", tc.reject, a.rejected)
			}
			_, err := a.decrypt(room, claire.megolmEvent(ms, room, room, b.user, "$f"+tc.name, "forged"))
			var u *e2ee.UTDError
			if !errors.As(err, &u) || (u.Reason != e2ee.UTDNoSession) {
				t.Fatalf("forged session usable: %v", err)
			}
		})
	}
}

func TestA3HonestForwardIsTaggedForwarded(t *testing.T) {
	s, a1, b, room := setup(t)
	e1 := b.send(room, "early")
	a2 := s.newClient(a1.user, "ALICE2", e2ee.StrictPolicy())
	a1.sync()
	a1.flush()
	b.sync()
	b.flush()
	a2.sync(roomState(room, a1.user, b.user))
	a2.flush()
	_, err := a2.decrypt(room, e1)
	wantUTD(t, err, e2ee.UTDNoSession)
	a2.flush() // sends the key request to ALICE1
	if s.sentTo(0, a1.user+"|ALICE1", "m.room_key_request") != 1 {
		t.Fatal("no key request to our own cross-signed device")
	}
	if s.sentTo(0, b.user+"|BOB1", "m.room_key_request") != 0 {
		t.Fatal("key request sent to another user")
	}
	a1.sync()
	a1.flush()
	a2.sync()
	a2.flush()
	d := a2.mustDecrypt(room, e1, "early")
	if d.Provenance.Trust != e2ee.TrustForwardedOrBackup || d.Provenance.SenderUser != b.user {
		t.Fatalf("provenance %+v", d.Provenance)
	}
}

// ---- B1: identities ----

func TestB1DeviceListedUnderWrongID(t *testing.T) {
	s, a, b, room := setup(t)
	s.tamperQuery = func(_ string, resp map[string]any) {
		dk := resp["device_keys"].(map[string]any)
		if bob, ok := dk["@bob:hs"].(map[string]any); ok {
			bob["OTHER"] = bob["BOB1"]
			delete(bob, "BOB1")
			dk["@carol:hs"] = map[string]any{"BOB1": s.devices["@bob:hs"]["BOB1"]}
		}
	}
	s.markChanged(b.user)
	a.sync()
	a.flush()
	if !a.hasRejection(e2ee.RejectDeviceKeysInvalid) {
		t.Fatalf("misbound device not rejected: %+v", a.rejected)
	}
	st, _ := a.m.Identity(ctx, b.user)
	if _, ok := st.Devices["OTHER"]; ok {
		t.Fatal("device accepted under another device ID")
	}
	mark := len(s.sent)
	a.send(room, "x")
	if s.sentTo(mark, "@bob:hs|OTHER", "m.room.encrypted") != 0 {
		t.Fatal("room key sent to a misbound device")
	}
}

func TestB1InvalidIdentityIgnored(t *testing.T) {
	s := newServer(t)
	other := s.identity("@other:hs")
	_ = other
	s.tamperQuery = func(_ string, resp map[string]any) {
		// Bob's SSK replaced by one not signed by Bob's MSK.
		resp["self_signing_keys"].(map[string]any)["@bob:hs"] = json.RawMessage(s.ssk["@other:hs"])
	}
	a := s.newClient("@alice:hs", "ALICE1", e2ee.StrictPolicy())
	b := s.newClient("@bob:hs", "BOB1", e2ee.StrictPolicy())
	room := "!r:hs"
	a.sync(roomState(room, a.user, b.user))
	a.flush()
	if !a.hasRejection(e2ee.RejectIdentityInvalid) {
		t.Fatalf("invalid identity not reported: %+v", a.rejected)
	}
	mark := len(s.sent)
	a.send(room, "x")
	if s.sentTo(mark, "@bob:hs|BOB1", "m.room.encrypted") != 0 {
		t.Fatal("room key shared under an invalid identity")
	}
}

func TestB1IdentityChangeAlertsAndBlocks(t *testing.T) {
	for _, allow := range []bool{false, true} {
		s := newServer(t)
		pol := e2ee.TrustPolicy{AllowUnverifiedIdentityChange: allow}
		a := s.newClient("@alice:hs", "ALICE1", pol)
		b := s.newClient("@bob:hs", "BOB1", e2ee.StrictPolicy())
		room := "!r:hs"
		a.sync(roomState(room, a.user, b.user))
		a.flush()
		a.send(room, "pinned")
		st, _ := a.m.Identity(ctx, b.user)
		if st.Pinned == "" || st.Verified {
			t.Fatalf("TOFU pin missing: %+v", st)
		}
		s.resetIdentity(b.user)
		a.sync()
		a.flush()
		if !a.hasAlert(e2ee.AlertIdentityChanged) {
			t.Fatalf("no identity_changed alert: %+v", a.alerts)
		}
		_, err := a.m.Encrypt(ctx, room, "m.room.message", json.RawMessage(`{}`))
		if allow {
			if errors.Is(err, e2ee.ErrSendBlocked) {
				t.Fatal("permissive policy blocked an unverified identity change")
			}
			continue
		}
		var blocked *e2ee.SendBlockedError
		if !errors.As(err, &blocked) {
			t.Fatalf("strict: Encrypt after identity change = %v, want SendBlockedError", err)
		}
		if err := a.m.AcknowledgeIdentityChange(ctx, b.user); err != nil {
			t.Fatal(err)
		}
		a.flush()
		a.send(room, "after ack")
	}
}

// verify makes a trust b's identity: a's USK signs b's MSK and a trusts its
// own identity.
func verify(t *testing.T, s *fakeServer, a *client, bUser string, trustOwn bool) {
	sk := s.identity(a.user)
	if trustOwn {
		if err := a.m.TrustOwnIdentity(ctx, sk.Master.PublicKey(), sk.UserSigning.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	bk := s.identity(bUser)
	signed, err := sk.SignMasterKey(s.msk[bUser], bk.Master.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	s.msk[bUser] = signed
	s.markChanged(bUser)
	a.sync()
	a.flush()
}

func TestB1VerifiedIdentityChangeBlocksUntilAck(t *testing.T) {
	s := newServer(t)
	a := s.newClient("@alice:hs", "ALICE1", e2ee.TrustPolicy{AllowUnverifiedIdentityChange: true})
	b := s.newClient("@bob:hs", "BOB1", e2ee.StrictPolicy())
	room := "!r:hs"
	a.sync(roomState(room, a.user, b.user))
	b.sync(roomState(room, a.user, b.user))
	a.flush()
	b.flush()
	verify(t, s, a, b.user, true)
	st, _ := a.m.Identity(ctx, b.user)
	if !st.Verified {
		t.Fatalf("not verified: %+v", st)
	}
	e := b.send(room, "verified hello")
	a.sync()
	if d := a.mustDecrypt(room, e, "verified hello"); d.Provenance.Trust != e2ee.TrustVerifiedIdentity {
		t.Fatalf("trust %s", d.Provenance.Trust)
	}
	s.resetIdentity(b.user)
	a.sync()
	a.flush()
	if !a.hasAlert(e2ee.AlertVerificationViolation) {
		t.Fatalf("no verification_violation alert: %+v", a.alerts)
	}
	if _, err := a.m.Encrypt(ctx, room, "m.room.message", json.RawMessage(`{}`)); !errors.Is(err, e2ee.ErrSendBlocked) {
		t.Fatalf("Encrypt after verified identity change = %v, want blocked (even with the permissive flag)", err)
	}
	// Messages from the old session now carry the changed-identity tag.
	if d, err := a.decrypt(room, e); err != nil || d.Provenance.Trust != e2ee.TrustIdentityChanged {
		t.Fatalf("after change: %v %+v", err, d)
	}
	if err := a.m.AcknowledgeIdentityChange(ctx, b.user); err != nil {
		t.Fatal(err)
	}
	a.flush()
	a.send(room, "acknowledged")
}

func TestB1VerifiedRequiresOwnTrustedIdentity(t *testing.T) {
	s, a, b, _ := setup(t)
	verify(t, s, a, b.user, false) // USK signature present, own identity not trusted
	st, _ := a.m.Identity(ctx, b.user)
	if st.Verified {
		t.Fatal("identity verified without our own trusted identity (CVE-2024-40648 shape)")
	}
}

func TestB1StaleQueryIsRepeated(t *testing.T) {
	s, a, b, _ := setup(t)
	s.markChanged(b.user)
	a.sync()
	reqs, _ := a.m.Outgoing(ctx)
	var q *e2ee.Request
	for i := range reqs {
		if reqs[i].Type == e2ee.RequestKeysQuery {
			q = &reqs[i]
		}
	}
	if q == nil {
		t.Fatal("no query")
	}
	resp := s.handle(a, *q)
	// A change arrives while the query is in flight.
	s.markChanged(b.user)
	a.sync()
	if _, err := a.m.MarkSent(ctx, q.ID, resp); err != nil {
		t.Fatal(err)
	}
	reqs, _ = a.m.Outgoing(ctx)
	for _, r := range reqs {
		if r.Type == e2ee.RequestKeysQuery {
			return
		}
	}
	t.Fatal("stale response cleared the outdated flag: no new query")
}

// ---- B2: sender binding ----

func TestB2OlmBindingChecks(t *testing.T) {
	s, a, b, room := setup(t)
	evil := s.newAttacker(b.user, "BOBX", true) // a genuine, cross-signed device of Bob
	a.sync()
	a.flush()
	_, aliceEd := a.m.IdentityKeys()
	other := s.newAttacker("@carol:hs", "CAROL9", true)
	tests := []struct {
		name   string
		env    string
		mutate func(pt map[string]any)
	}{
		{"plaintext sender differs from envelope", b.user, func(pt map[string]any) { pt["sender"] = "@carol:hs" }},
		{"envelope sender differs", "@carol:hs", func(pt map[string]any) { pt["sender"] = "@carol:hs" }},
		{"recipient not us", b.user, func(pt map[string]any) { pt["recipient"] = "@eve:hs" }},
		{"recipient_keys not ours", b.user, func(pt map[string]any) {
			pt["recipient_keys"] = map[string]any{"ed25519": other.ed.String()}
		}},
		{"keys.ed25519 not the sender device's", b.user, func(pt map[string]any) {
			pt["keys"] = map[string]any{"ed25519": aliceEd.String()}
		}},
		{"sender_device_keys of another user", b.user, func(pt map[string]any) {
			pt["sender_device_keys"] = json.RawMessage(other.devKeys)
		}},
		{"sender_device_keys names another user, same keys (CVE-2026-45056)", b.user, func(pt map[string]any) {
			dk := signWith(evil.acct, "@carol:hs", "BOBX", map[string]any{
				"user_id": "@carol:hs", "device_id": "BOBX",
				"algorithms": []any{crosssign.AlgorithmOlm, crosssign.AlgorithmMegolm},
				"keys":       map[string]any{"curve25519:BOBX": evil.curve.String(), "ed25519:BOBX": evil.ed.String()}})
			raw, _ := json.Marshal(dk)
			pt["sender_device_keys"] = json.RawMessage(raw)
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.rejected = nil
			ms := evil.megolmSession()
			pt := evil.plaintext(a, "m.room_key", roomKeyContent(room, ms))
			tc.mutate(pt)
			s.deliver(a, evil.olmTo(a, tc.env, pt))
			a.sync()
			a.flush()
			if !a.hasRejection(e2ee.RejectOlmBindingMismatch) {
				t.Fatalf("not rejected: %+v", a.rejected)
			}
			_, err := a.decrypt(room, evil.megolmEvent(ms, room, room, b.user, "$b"+string(rune('a'+i)), "x"))
			wantUTD(t, err, e2ee.UTDNoSession)
		})
	}
	// Control: the honest plaintext is accepted.
	ms := evil.megolmSession()
	s.deliver(a, evil.olmTo(a, b.user, evil.plaintext(a, "m.room_key", roomKeyContent(room, ms))))
	a.sync()
	if _, err := a.decrypt(room, evil.megolmEvent(ms, room, room, b.user, "$ok", "x")); err != nil {
		t.Fatalf("honest control: %v", err)
	}
}

func TestB2MegolmSenderAndRoomBinding(t *testing.T) {
	s, a, b, room := setup(t)
	e := b.send(room, "genuine")
	a.sync()
	spoof := e
	spoof.Sender = "@carol:hs"
	spoof.EventID = "$spoof"
	_, err := a.decrypt(room, spoof)
	wantUTD(t, err, e2ee.UTDSenderMismatch)
	moved := e
	moved.EventID = "$moved"
	_, err = a.decrypt("!other:hs", moved)
	wantUTD(t, err, e2ee.UTDRoomMismatch)
	// A member's genuine session used for a plaintext naming another room.
	claire := s.newAttacker("@claire:hs", "CLAIRE1", true)
	a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{member(claire.user, "join")}})
	a.flush()
	ms := claire.megolmSession()
	s.deliver(a, claire.olmTo(a, claire.user, claire.plaintext(a, "m.room_key", roomKeyContent(room, ms))))
	a.sync()
	_, err = a.decrypt(room, claire.megolmEvent(ms, room, "!other:hs", claire.user, "$pr", "x"))
	wantUTD(t, err, e2ee.UTDRoomMismatch)
	// ... and the same session (bound to room) serving an event in another
	// room whose plaintext names that other room.
	_, err = a.decrypt("!other:hs", claire.megolmEvent(ms, "!other:hs", "!other:hs", claire.user, "$pr2", "x"))
	wantUTD(t, err, e2ee.UTDRoomMismatch)
	a.mustDecrypt(room, e, "genuine")
}

// ---- B3: Olm replay and unwedging ----

func TestB3OlmReplayRefused(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		s, a, b, room := setup(t)
		evil := s.newAttacker(b.user, "BOBX", true)
		a.sync()
		a.flush()
		if fallback {
			s.otks[a.user][a.device] = nil
		}
		ms := evil.megolmSession()
		ev := evil.olmTo(a, b.user, evil.plaintext(a, "m.room_key", roomKeyContent(room, ms)))
		s.deliver(a, ev)
		a.sync()
		if len(a.rejected) != 0 {
			t.Fatalf("first delivery rejected: %+v", a.rejected)
		}
		s.deliver(a, ev)
		a.sync()
		if !a.hasRejection(e2ee.RejectOlmReplay) {
			t.Fatalf("replay not refused (fallback=%v): %+v", fallback, a.rejected)
		}
		// After a restart (caches dropped) too.
		a.open()
		a.rejected = nil
		s.deliver(a, ev)
		a.sync()
		if !a.hasRejection(e2ee.RejectOlmReplay) {
			t.Fatalf("replay after restart not refused: %+v", a.rejected)
		}
	}
}

func TestB3UnwedgeRateLimited(t *testing.T) {
	s, a, b, _ := setup(t)
	evil := s.newAttacker(b.user, "BOBX", true)
	a.sync()
	a.flush()
	// Establish a session, then send a corrupted normal message.
	good := evil.olmTo(a, b.user, evil.plaintext(a, "m.dummy", map[string]any{}))
	s.deliver(a, good)
	a.sync()
	bad := func(n byte) e2ee.ToDeviceEvent {
		var env struct {
			Ciphertext map[string]struct {
				Body string `json:"body"`
			} `json:"ciphertext"`
		}
		json.Unmarshal(good.Content, &env)
		curve, _ := a.m.IdentityKeys()
		raw, _ := keys.DecodeBase64(env.Ciphertext[curve.String()].Body)
		pk, _ := olmParsePreKey(raw)
		inner := pk.Message().Marshal()
		inner[len(inner)-1] ^= n
		c, _ := json.Marshal(map[string]any{"algorithm": crosssign.AlgorithmOlm, "sender_key": evil.curve.String(),
			"ciphertext": map[string]any{curve.String(): map[string]any{"type": 1, "body": keys.EncodeBase64(inner)}}})
		return e2ee.ToDeviceEvent{Type: "m.room.encrypted", Sender: b.user, Content: c}
	}
	mark := len(s.sent)
	s.deliver(a, bad(1))
	a.sync()
	a.flush()
	if n := s.sentTo(mark, b.user+"|BOBX", "m.room.encrypted"); n != 1 {
		t.Fatalf("unwedging sent %d messages, want 1 (m.dummy on a new session)", n)
	}
	mark = len(s.sent)
	s.deliver(a, bad(2), bad(3))
	a.sync()
	a.flush()
	if n := s.sentTo(mark, b.user+"|BOBX", "m.room.encrypted"); n != 0 {
		t.Fatalf("unwedging not rate-limited: %d more messages", n)
	}
	s.advance(e2ee.UnwedgeInterval + time.Second)
	s.deliver(a, bad(4))
	a.sync()
	a.flush()
	if n := s.sentTo(mark, b.user+"|BOBX", "m.room.encrypted"); n != 1 {
		t.Fatalf("after an hour: %d messages, want 1", n)
	}
}

// ---- B4: Megolm replay ----

func TestB4MegolmReplay(t *testing.T) {
	_, a, b, room := setup(t)
	e := b.send(room, "once")
	a.sync()
	a.mustDecrypt(room, e, "once")
	a.mustDecrypt(room, e, "once") // same event again is fine
	r := e
	r.EventID = "$replayed"
	_, err := a.decrypt(room, r)
	wantUTD(t, err, e2ee.UTDReplay)
	a.open()
	_, err = a.decrypt(room, r)
	wantUTD(t, err, e2ee.UTDReplay)
	a.mustDecrypt(room, e, "once")
}

// ---- B5: session overwrite ----

func TestB5SessionMerging(t *testing.T) {
	s, a, _, room := setup(t)
	claire := s.newAttacker("@claire:hs", "CLAIRE1", true)
	own := s.newAttacker(a.user, "ALICE_X", true)
	dave := s.newAttacker("@dave:hs", "DAVE1", true)
	a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{member(claire.user, "join"), member(dave.user, "join")}})
	a.flush()
	ms := claire.megolmSession()
	in0, _ := megolm.NewInboundSession(ms.SessionKey())
	early := make([]e2ee.Event, 5)
	for i := range early {
		early[i] = claire.megolmEvent(ms, room, room, claire.user, "$early"+string(rune('0'+i)), "early")
	}
	// Alice gets the key at index 5.
	s.deliver(a, claire.olmTo(a, claire.user, claire.plaintext(a, "m.room_key", roomKeyContent(room, ms))))
	a.sync()
	late := claire.megolmEvent(ms, room, room, claire.user, "$late", "late")
	a.mustDecrypt(room, late, "late")
	_, err := a.decrypt(room, early[0])
	wantUTD(t, err, e2ee.UTDUnknownIndex) // also sends a key request to ALICE_X
	a.flush()
	// (d) m.room_key for the same session from another device: conflict.
	s.deliver(a, dave.olmTo(a, dave.user, dave.plaintext(a, "m.room_key", roomKeyContent(room, ms))))
	a.sync()
	if !a.hasRejection(e2ee.RejectSessionOwnerConflict) {
		t.Fatalf("owner conflict not rejected: %+v", a.rejected)
	}
	// (b) unconnected ratchet with the same session ID at index 0.
	raw := make([]byte, megolm.ExportedSessionKeySize)
	raw[0] = megolm.ExportedSessionKeyVersion
	for i := 5; i < 5+megolm.RatchetSize; i++ {
		raw[i] = byte(i)
	}
	copy(raw[5+megolm.RatchetSize:], ms.SigningKey().Bytes())
	bogus, err := megolm.NewExportedSessionKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	fwd := func(ek megolm.ExportedSessionKey) e2ee.ToDeviceEvent {
		return own.olmTo(a, a.user, own.plaintext(a, "m.forwarded_room_key", map[string]any{
			"algorithm": crosssign.AlgorithmMegolm, "room_id": room, "session_id": ms.ID(), "session_key": ek.String(),
			"sender_key": claire.curve.String(), "sender_claimed_ed25519_key": claire.ed.String(),
			"forwarding_curve25519_key_chain": []string{}}))
	}
	s.deliver(a, fwd(bogus))
	a.sync()
	if !a.hasRejection(e2ee.RejectMegolmUnconnected) {
		t.Fatalf("unconnected session not rejected: %+v", a.rejected)
	}
	a.mustDecrypt(room, late, "late")
	_, err = a.decrypt(room, early[1])
	wantUTD(t, err, e2ee.UTDUnknownIndex)
	// (a) connected export at index 0: merged; binding kept.
	ek0, _ := in0.Export(0)
	s.deliver(a, fwd(ek0))
	a.sync()
	d := a.mustDecrypt(room, early[2], "early")
	if d.Provenance.SenderUser != claire.user || d.Provenance.Trust != e2ee.TrustCrossSignedPinned {
		t.Fatalf("merged session lost its binding: %+v", d.Provenance)
	}
}

// ---- B6: key request responder ----

func TestB6KeyRequestsAnsweredOnlyForOwnCrossSignedDevices(t *testing.T) {
	s, a, b, room := setup(t)
	e := a.send(room, "x")
	sid := sessionOf(t, e)
	unsigned := s.newAttacker(a.user, "ALICE_U", false)
	signedOwn := s.newAttacker(a.user, "ALICE_S", true)
	_ = signedOwn
	a.sync()
	a.flush()
	req := func(sender, dev string) e2ee.ToDeviceEvent {
		c, _ := json.Marshal(map[string]any{"action": "request", "requesting_device_id": dev, "request_id": "r" + dev,
			"body": map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": room, "session_id": sid}})
		return e2ee.ToDeviceEvent{Type: "m.room_key_request", Sender: sender, Content: c}
	}
	mark := len(s.sent)
	s.deliver(a, req(b.user, "BOB1"), req(a.user, unsigned.device), req(a.user, "NOPE"))
	a.sync()
	a.flush()
	for _, m := range s.sent[mark:] {
		if m.EventType == "m.room.encrypted" {
			t.Fatalf("forward sent to %s", m.To)
		}
	}
	n := 0
	for _, r := range a.rejected {
		if r.Code == e2ee.RejectKeyRequestUntrusted {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d untrusted requests reported, want 3", n)
	}
	// Control: our cross-signed device gets a forward.
	s.deliver(a, req(a.user, signedOwn.device))
	a.sync()
	a.flush()
	if s.sentTo(mark, a.user+"|ALICE_S", "m.room.encrypted") != 1 {
		t.Fatal("own cross-signed device got no forward")
	}
}

// ---- B9: one-time keys ----

func TestB9OTKSignatureChecked(t *testing.T) {
	s, a, b, room := setup(t)
	fake := s.newAttacker("@eve:hs", "EVE1", true)
	s.tamperClaim = func(_ string, resp map[string]any) {
		otks := resp["one_time_keys"].(map[string]any)
		if bob, ok := otks[b.user].(map[string]any); ok {
			for dev := range bob {
				k := fake.megolmSession() // any key material
				_ = k
				obj := signWith(fake.acct, b.user, dev, map[string]any{"key": fake.curve.String()})
				bob[dev] = map[string]any{"signed_curve25519:AAAAAQ": obj}
			}
		}
	}
	mark := len(s.sent)
	a.send(room, "x")
	if !a.hasRejection(e2ee.RejectOTKBadSignature) {
		t.Fatalf("bad OTK signature not rejected: %+v", a.rejected)
	}
	if s.sentTo(mark, b.user+"|BOB1", "m.room.encrypted") != 0 {
		t.Fatal("Olm message sent with an unverified one-time key")
	}
	if code := withheldCode(s, mark, b.user+"|BOB1"); code != e2ee.WithheldNoOlm {
		t.Fatalf("withheld = %q, want m.no_olm", code)
	}
}

func TestB9UploadsBounded(t *testing.T) {
	s, a, _, _ := setup(t)
	uploads := func() int {
		reqs, _ := a.m.Outgoing(ctx)
		n := 0
		for _, r := range reqs {
			if r.Type == e2ee.RequestKeysUpload {
				n++
				a.m.MarkSent(ctx, r.ID, []byte(`{"one_time_key_counts":{"signed_curve25519":0}}`))
			}
		}
		return n
	}
	s.advance(time.Hour)
	total := 0
	for range 10 {
		a.m.Receive(ctx, e2ee.SyncInput{OneTimeKeyCounts: map[string]int{"signed_curve25519": 0}})
		total += uploads()
	}
	if total != 1 {
		t.Fatalf("%d uploads for a count stuck at 0 within a minute, want 1", total)
	}
	s.advance(e2ee.OTKUploadInterval)
	a.m.Receive(ctx, e2ee.SyncInput{OneTimeKeyCounts: map[string]int{"signed_curve25519": 0}})
	if uploads() != 1 {
		t.Fatal("no upload after the interval")
	}
}

// ---- B10: key reuse ----

func TestB10KeyReusedAcrossDevices(t *testing.T) {
	s, a, b, room := setup(t)
	eve := s.newAttacker("@eve:hs", "EVE1", true)
	bobCurve, _ := b.m.IdentityKeys()
	dk := signWith(eve.acct, eve.user, "EVE1", map[string]any{
		"user_id": eve.user, "device_id": "EVE1",
		"algorithms": []any{crosssign.AlgorithmOlm, crosssign.AlgorithmMegolm},
		"keys":       map[string]any{"curve25519:EVE1": bobCurve.String(), "ed25519:EVE1": eve.ed.String()}})
	raw, _ := json.Marshal(dk)
	signed, _ := s.identity(eve.user).SignDevice(raw)
	s.devices[eve.user]["EVE1"] = signed
	a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{member(eve.user, "join")}})
	a.flush()
	if !a.hasAlert(e2ee.AlertKeyReused) || !a.hasRejection(e2ee.RejectKeyReused) {
		t.Fatalf("key reuse not detected: %+v %+v", a.alerts, a.rejected)
	}
	mark := len(s.sent)
	a.send(room, "x")
	if s.sentTo(mark, eve.user+"|EVE1", "m.room.encrypted") != 0 {
		t.Fatal("room key sent to a device reusing another's key")
	}
}

// ---- B12: withheld is a hint ----

func TestB12WithheldIsOnlyAHint(t *testing.T) {
	s, a, b, room := setup(t)
	e := b.send(room, "real")
	key := a.user + "|" + a.device
	stash := s.inbox[key]
	s.inbox[key] = nil
	c, _ := json.Marshal(map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": room, "session_id": sessionOf(t, e),
		"code": "m.blacklisted", "reason": "you are blocked"})
	s.deliver(a, e2ee.ToDeviceEvent{Type: "m.room_key.withheld", Sender: b.user, Content: c})
	a.sync()
	_, err := a.decrypt(room, e)
	var u *e2ee.UTDError
	if !errors.As(err, &u) || u.Reason != e2ee.UTDWithheld || u.Code != "m.blacklisted" {
		t.Fatalf("err = %v", err)
	}
	s.inbox[key] = stash
	a.sync()
	a.mustDecrypt(room, e, "real")
}

// ---- B13: downgrade ----

func TestB13EncryptionNeverDowngraded(t *testing.T) {
	for _, content := range []string{`{}`, `{"algorithm":"m.plaintext"}`, `{"algorithm":"m.megolm.v2"}`} {
		_, a, _, room := setup(t)
		empty := ""
		a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{{Type: "m.room.encryption", StateKey: &empty, Content: json.RawMessage(content)}}})
		_, err := a.m.Encrypt(ctx, room, "m.room.message", json.RawMessage(`{}`))
		if !errors.Is(err, e2ee.ErrEncryptionStateLost) {
			t.Fatalf("%s: Encrypt = %v", content, err)
		}
		a.open()
		if ok, _ := a.m.PlaintextAllowed(ctx, room); ok {
			t.Fatalf("%s: plaintext allowed in a room seen encrypted", content)
		}
		if !a.hasAlert(e2ee.AlertEncryptionStateChanged) {
			t.Fatal("no alert")
		}
	}
	_, a, _, _ := setup(t)
	if ok, _ := a.m.PlaintextAllowed(ctx, "!never:hs"); !ok {
		t.Fatal("plaintext refused in a room never seen encrypted")
	}
	if _, err := a.m.Encrypt(ctx, "!never:hs", "m.room.message", json.RawMessage(`{}`)); !errors.Is(err, e2ee.ErrRoomNotEncrypted) {
		t.Fatalf("Encrypt in unencrypted room = %v", err)
	}
}

func TestB13RotationClamped(t *testing.T) {
	s, a, b, room := setup(t)
	empty := ""
	a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{{Type: "m.room.encryption", StateKey: &empty,
		Content: json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2","rotation_period_msgs":1000000,"rotation_period_ms":999999999999}`)}}})
	first := sessionOf(t, a.send(room, "0"))
	for i := 1; i < e2ee.MaxRotationMessages; i++ {
		if sid := sessionOf(t, a.send(room, "n")); sid != first {
			t.Fatalf("rotated after %d messages", i)
		}
	}
	second := sessionOf(t, a.send(room, "101"))
	if second == first {
		t.Fatal("not rotated after 100 messages")
	}
	s.advance(e2ee.MaxRotationPeriod + time.Millisecond)
	if sessionOf(t, a.send(room, "late")) == second {
		t.Fatal("not rotated after a week")
	}
	// Too small a period is raised to an hour.
	a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{{Type: "m.room.encryption", StateKey: &empty,
		Content: json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2","rotation_period_ms":1}`)}}})
	x := sessionOf(t, a.send(room, "a"))
	s.advance(time.Minute)
	if sessionOf(t, a.send(room, "b")) != x {
		t.Fatal("rotation period below the minimum was not clamped")
	}
	_ = b
}

func TestB13PlaintextInEncryptedRoomFlagged(t *testing.T) {
	_, a, b, room := setup(t)
	ev := e2ee.Event{Type: "m.room.message", Sender: b.user, EventID: "$p", Content: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)}
	_, err := a.decrypt(room, ev)
	wantUTD(t, err, e2ee.UTDUnencryptedInEncryptedRoom)
	sk := ""
	state := e2ee.Event{Type: "m.room.name", StateKey: &sk, Sender: b.user, Content: json.RawMessage(`{"name":"n"}`)}
	if d, err := a.decrypt(room, state); err != nil || d.Provenance.Trust != e2ee.TrustPlaintext {
		t.Fatalf("state event: %v", err)
	}
	if d, err := a.decrypt("!plain:hs", ev); err != nil || d.Provenance.Trust != e2ee.TrustPlaintext {
		t.Fatalf("unencrypted room: %v", err)
	}
}

// B9 rule 2: a one-time key that is a low-order point (all-zero shared
// secret) is refused even when properly signed by its device.
func TestB9LowOrderOneTimeKeyRefused(t *testing.T) {
	s, a, _, room := setup(t)
	evil := s.newAttacker("@eve:hs", "EVE1", true)
	zero := keys.EncodeBase64(make([]byte, 32)) // the identity point, order 1
	obj := signWith(evil.acct, evil.user, evil.device, map[string]any{"key": zero})
	raw, _ := json.Marshal(obj)
	s.otks[evil.user][evil.device] = map[string]json.RawMessage{"signed_curve25519:AAAAAQ": raw}
	a.sync(e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{member(evil.user, "join")}})
	a.flush()
	mark := len(s.sent)
	a.send(room, "x")
	if !a.hasRejection(e2ee.RejectNonContributory) {
		t.Fatalf("low-order one-time key not refused: %+v", a.rejected)
	}
	if s.sentTo(mark, evil.user+"|EVE1", "m.room.encrypted") != 0 {
		t.Fatal("Olm session built on a low-order key")
	}
	if code := withheldCode(s, mark, evil.user+"|EVE1"); code != e2ee.WithheldNoOlm {
		t.Fatalf("withheld = %q", code)
	}
}

// B1 rule 4: our own master key replaced behind our back.
func TestB1OwnIdentityResetAlerts(t *testing.T) {
	s, a, _, _ := setup(t)
	s.resetIdentity(a.user)
	a.sync()
	a.flush()
	if !a.hasAlert(e2ee.AlertOwnIdentityReset) {
		t.Fatalf("no own_identity_reset alert: %+v", a.alerts)
	}
}

// B1 rule 4, the other side: a reset this device made itself (it trusted the
// new master key first) moves the pin without an alert and does not block
// our own sending.
func TestB1OwnIdentityResetByThisDevice(t *testing.T) {
	s, a, _, room := setup(t)
	s.resetIdentity(a.user)
	sk := s.identity(a.user)
	if err := a.m.TrustOwnIdentity(ctx, sk.Master.PublicKey(), sk.UserSigning.PublicKey()); err != nil {
		t.Fatal(err)
	}
	a.sync()
	a.flush()
	if a.hasAlert(e2ee.AlertOwnIdentityReset) {
		t.Fatalf("own reset made by this device raised an alert: %+v", a.alerts)
	}
	a.send(room, "after my own reset")
}

// A3 rule 1 / CVE-2022-39252: the answer must come from a device we asked,
// even if another own device is cross-signed.
func TestA3ForwardFromDeviceNotAsked(t *testing.T) {
	s, a, b, room := setup(t)
	bobCurve, bobEd := b.m.IdentityKeys()
	claire := s.newAttacker("@claire:hs", "CLAIRE1", true)
	asked := s.newAttacker(a.user, "ALICE_ASKED", true)
	_ = asked
	a.sync()
	a.flush()
	ms := claire.megolmSession()
	a.decrypt(room, claire.megolmEvent(ms, room, room, b.user, "$q", "x")) // request to ALICE_ASKED
	a.flush()
	late := s.newAttacker(a.user, "ALICE_LATE", true) // cross-signed, but not asked
	a.sync()
	a.flush()
	s.deliver(a, late.olmTo(a, a.user, late.plaintext(a, "m.forwarded_room_key", forwardContent(room, ms, bobCurve.String(), bobEd.String()))))
	a.sync()
	if !a.hasRejection(e2ee.RejectForwardUntrusted) {
		t.Fatalf("forward from a device we did not ask accepted: %+v", a.rejected)
	}
}
