package e2ee_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"myelin/crypto/crosssign"
	"myelin/e2ee"
)

// ---- held Olm sends survive a restart ----

// TestHeldOlmSendSurvivesRestart: a send waiting for a new Olm session is
// persisted with the claim request, so reopening the machine between
// Outgoing and MarkSent does not lose it.
func TestHeldOlmSendSurvivesRestart(t *testing.T) {
	s, a, b, _ := setup(t)
	b2 := s.newClient(b.user, "BOB2", e2ee.StrictPolicy())
	a.sync()
	a.flush()
	ctx := context.Background()
	if err := a.m.SendEncryptedToDevice(ctx, b.user, "BOB2", "m.test.held", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	reqs, err := a.m.Outgoing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	claims := 0
	for _, r := range reqs {
		if r.Type == e2ee.RequestKeysClaim {
			claims++
		}
	}
	if claims != 1 {
		t.Fatalf("%d claim requests, want 1", claims)
	}
	a.open() // restart before the claim is acknowledged
	mark := len(s.sent)
	a.flush()
	if n := s.sentTo(mark, b.user+"|BOB2", "m.room.encrypted"); n != 1 {
		t.Fatalf("after restart %d encrypted sends to BOB2, want 1 (the held event was lost)", n)
	}
	b2.sync()
	b2.flush()
	got := false
	for _, td := range b2.toDevice {
		if td.Type == "m.test.held" && td.Encrypted {
			got = true
		}
	}
	if !got {
		t.Fatal("BOB2 did not receive the held event")
	}
}

// ---- B3: Olm sessions per sender key are bounded ----

// TestB3OlmSessionsBoundedAndEvictedStayDead: a peer starting many
// sessions cannot grow the store beyond MaxOlmSessionsPerDevice per sender
// key, and a pre-key message of an evicted session is a replay, never a
// new session.
func TestB3OlmSessionsBoundedAndEvictedStayDead(t *testing.T) {
	s, a, b, _ := setup(t)
	evil := s.newAttacker(b.user, "BOBX", true)
	a.sync()
	a.flush()
	ctx := context.Background()
	// The first session, made with Alice's fallback key (not deleted after
	// use), used once; a second message on it is kept back.
	clear(s.otks[a.user][a.device])
	s.deliver(a, evil.olmTo(a, b.user, evil.plaintext(a, "m.test.first", map[string]any{})))
	laterOnFirst := evil.olmTo(a, b.user, evil.plaintext(a, "m.test.late", map[string]any{}))
	a.sync()
	for i := range e2ee.MaxOlmSessionsPerDevice + 3 {
		s.advance(time.Minute)
		clear(evil.sessions) // a fresh session each time
		s.deliver(a, evil.olmTo(a, b.user, evil.plaintext(a, "m.test.n", map[string]any{"i": i})))
		a.sync()
		a.flush()
	}
	recs, err := a.store.List(ctx, e2ee.KindOlmSession, evil.curve.String()+"|")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != e2ee.MaxOlmSessionsPerDevice {
		t.Fatalf("%d olm sessions stored for one sender key, want %d", len(recs), e2ee.MaxOlmSessionsPerDevice)
	}
	a.open() // also after a restart
	a.rejected = nil
	s.deliver(a, laterOnFirst)
	a.sync()
	if !a.hasRejection(e2ee.RejectOlmReplay) {
		t.Fatalf("pre-key message of an evicted session: rejections %+v, want olm replay", a.rejected)
	}
	for _, td := range a.toDevice {
		if td.Type == "m.test.late" {
			t.Fatal("a message of an evicted session was accepted")
		}
	}
	recs, _ = a.store.List(ctx, e2ee.KindOlmSession, evil.curve.String()+"|")
	if len(recs) != e2ee.MaxOlmSessionsPerDevice {
		t.Fatalf("%d olm sessions after the replay, want %d", len(recs), e2ee.MaxOlmSessionsPerDevice)
	}
}

// ---- B3 rule 5: to-device requests processed once ----

// TestB3RequestIDsDeduplicated: a replayed m.room_key_request (same
// requesting device and request_id) gets no second forward, also after a
// restart; a replayed m.secret.request is not passed on twice; other
// request IDs still work; the table is bounded per device.
func TestB3RequestIDsDeduplicated(t *testing.T) {
	s, a, _, room := setup(t)
	e := a.send(room, "x")
	sid := sessionOf(t, e)
	own := s.newAttacker(a.user, "ALICE_S", true)
	a.sync()
	a.flush()
	keyReq := func(reqID string) e2ee.ToDeviceEvent {
		c, _ := json.Marshal(map[string]any{"action": "request", "requesting_device_id": own.device, "request_id": reqID,
			"body": map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": room, "session_id": sid}})
		return e2ee.ToDeviceEvent{Type: "m.room_key_request", Sender: a.user, Content: c}
	}
	to := a.user + "|" + own.device
	mark := len(s.sent)
	s.deliver(a, keyReq("r1"), keyReq("r1"))
	a.sync()
	a.flush()
	if n := s.sentTo(mark, to, "m.room.encrypted"); n != 1 {
		t.Fatalf("%d forwards for one request_id sent twice, want 1", n)
	}
	if !a.hasRejection(e2ee.RejectDuplicateRequest) {
		t.Fatalf("duplicate key request not reported: %+v", a.rejected)
	}
	a.open()
	mark = len(s.sent)
	s.deliver(a, keyReq("r1"), keyReq("r2"))
	a.sync()
	a.flush()
	if n := s.sentTo(mark, to, "m.room.encrypted"); n != 1 {
		t.Fatalf("after restart: %d forwards, want 1 (for r2 only)", n)
	}

	secretReq := func(reqID string) e2ee.ToDeviceEvent {
		c, _ := json.Marshal(map[string]any{"action": "request", "requesting_device_id": own.device, "request_id": reqID, "name": "m.megolm_backup.v1"})
		return e2ee.ToDeviceEvent{Type: "m.secret.request", Sender: a.user, Content: c}
	}
	count := func() int {
		n := 0
		for _, td := range a.toDevice {
			if td.Type == "m.secret.request" {
				n++
			}
		}
		return n
	}
	s.deliver(a, secretReq("s1"), secretReq("s1"), secretReq("s2"))
	a.sync()
	if n := count(); n != 2 {
		t.Fatalf("%d secret requests passed on, want 2 (s1 once, s2)", n)
	}
	// A device that is not cross-signed is not remembered: once it is, it
	// may repeat its request_id.
	unsigned := s.newAttacker(a.user, "ALICE_U", false)
	a.sync()
	a.flush()
	before := count()
	uc, _ := json.Marshal(map[string]any{"action": "request", "requesting_device_id": unsigned.device, "request_id": "u1", "name": "m.megolm_backup.v1"})
	s.deliver(a, e2ee.ToDeviceEvent{Type: "m.secret.request", Sender: a.user, Content: uc}, e2ee.ToDeviceEvent{Type: "m.secret.request", Sender: a.user, Content: uc})
	a.sync()
	if n := count() - before; n != 2 {
		t.Fatalf("%d requests of a device that is not cross-signed passed on, want 2 (not remembered)", n)
	}
	// Bounded: the table per device keeps at most MaxSeenRequestsPerDevice.
	for i := range e2ee.MaxSeenRequestsPerDevice + 10 {
		s.advance(time.Second)
		s.deliver(a, secretReq(fmt.Sprintf("b%d", i)))
	}
	a.sync()
	recs, err := a.store.List(context.Background(), e2ee.KindToDeviceSeen, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) > e2ee.MaxSeenRequestsPerDevice {
		t.Fatalf("%d request IDs remembered, want at most %d", len(recs), e2ee.MaxSeenRequestsPerDevice)
	}
}

// ---- B4 rule 2: timestamp plausibility ----

// TestB4TimestampPlausibility: honest events of a session are plausible;
// the server re-stamping a genuine event far outside the session's window,
// against its index order, or in the future gets a typed flag (the event
// still decrypts: the timestamp is informational), also after a restart.
func TestB4TimestampPlausibility(t *testing.T) {
	s, a, b, room := setup(t)
	e0 := b.send(room, "zero")
	s.advance(time.Minute)
	e1 := b.send(room, "one")
	s.advance(time.Minute)
	e2 := b.send(room, "two")
	s.advance(time.Minute)
	e3 := b.send(room, "three")
	a.sync()
	for _, c := range []struct {
		ev   e2ee.Event
		body string
	}{{e1, "one"}, {e2, "two"}} {
		if d := a.mustDecrypt(room, c.ev, c.body); d.Provenance.Timestamp != e2ee.TimestampPlausible {
			t.Fatalf("honest event flagged %v", d.Provenance.Timestamp)
		}
	}
	a.open()
	s.advance(time.Hour)
	day := 24 * time.Hour.Milliseconds()
	cases := []struct {
		name string
		ev   e2ee.Event
		body string
		ts   int64
		want e2ee.TimestampFlag
	}{
		{"far in the past", e0, "zero", e0.OriginServerTS - 30*day, e2ee.TimestampOutsideSessionWindow},
		{"lower index, later time", e0, "zero", e2.OriginServerTS + 10*time.Minute.Milliseconds(), e2ee.TimestampOutOfOrder},
		{"higher index, earlier time", e3, "three", e1.OriginServerTS - 10*time.Minute.Milliseconds(), e2ee.TimestampOutOfOrder},
		{"future", e3, "three", s.clock().UnixMilli() + day, e2ee.TimestampInFuture},
		{"honest", e3, "three", e3.OriginServerTS, e2ee.TimestampPlausible},
	}
	for _, c := range cases {
		ev := c.ev
		ev.OriginServerTS = c.ts
		if d := a.mustDecrypt(room, ev, c.body); d.Provenance.Timestamp != c.want {
			t.Errorf("%s: flag %v, want %v", c.name, d.Provenance.Timestamp, c.want)
		}
	}
}

// ---- A1b: a withheld device that becomes cross-signed gets the key ----

// TestA1bWithheldDeviceGetsKeyOnceCrossSigned: a new device withheld as
// m.unverified before its cross-signing signature lands receives the
// current outbound session (from the current index, without rotation) once
// it is cross-signed; what was sent while it was withheld stays unreadable.
func TestA1bWithheldDeviceGetsKeyOnceCrossSigned(t *testing.T) {
	s, a, b, room := setup(t)
	s.noCrossSign[b.user+"|BOB2"] = true
	b2 := s.newClient(b.user, "BOB2", e2ee.StrictPolicy())
	b2.sync(roomState(room, a.user, b.user))
	b2.flush()
	a.sync()
	a.flush()
	mark := len(s.sent)
	early := a.send(room, "while withheld")
	if got := withheldCode(s, mark, b.user+"|BOB2"); got != e2ee.WithheldUnverified {
		t.Fatalf("withheld code %q, want %q", got, e2ee.WithheldUnverified)
	}
	if n := s.sentTo(mark, b.user+"|BOB2", "m.room.encrypted"); n != 0 {
		t.Fatalf("%d room keys to a device that is not cross-signed", n)
	}
	// The signature lands.
	delete(s.noCrossSign, b.user+"|BOB2")
	signed, err := s.identity(b.user).SignDevice(stripCrossSig(s.devices[b.user]["BOB2"]))
	if err != nil {
		t.Fatal(err)
	}
	s.devices[b.user]["BOB2"] = signed
	s.markChanged(b.user)
	a.sync()
	a.flush()
	b2.sync()
	b2.flush()
	mark = len(s.sent)
	later := a.send(room, "after cross-signing")
	if sessionOf(t, later) != sessionOf(t, early) {
		t.Fatal("the session was rotated; a device becoming trusted needs no rotation")
	}
	if n := s.sentTo(mark, b.user+"|BOB2", "m.room.encrypted"); n != 1 {
		t.Fatalf("%d room keys to the now cross-signed device, want 1", n)
	}
	b2.sync()
	b2.flush()
	b2.mustDecrypt(room, later, "after cross-signing")
	_, err = b2.decrypt(room, early)
	wantUTD(t, err, e2ee.UTDUnknownIndex)
}

// ---- B6 rules 4-5: room-key bundles (MSC4268), receiver side ----

// bundleFor builds what an inviter sends: the encrypted bundle of its
// sessions for room (plus extra keys) and the m.room_key_bundle content.
func bundleFor(t *testing.T, from *client, room string, extra ...e2ee.ExportedRoomKey) ([]byte, map[string]any) {
	t.Helper()
	all, err := from.m.ExportRoomKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := append([]e2ee.ExportedRoomKey{}, extra...)
	for _, k := range all {
		if k.RoomID == room {
			keys = append(keys, k)
		}
	}
	plain, _ := json.Marshal(map[string]any{"room_keys": keys, "withheld": []any{}})
	ct, f, err := e2ee.EncryptAttachment(from.srv.rnd, plain)
	if err != nil {
		t.Fatal(err)
	}
	f.URL = "mxc://hs/bundle"
	return ct, map[string]any{"room_id": room, "file": f}
}

func TestB6RoomKeyBundleReceiver(t *testing.T) {
	s, a, b, room := setup(t)
	e := b.send(room, "history")
	a.sync()
	c := s.newClient("@carol:hs", "CAROL1", e2ee.StrictPolicy())
	b.sync(roomState(room, a.user, b.user, c.user))
	b.flush()
	ctx := context.Background()

	// Bob (the inviter) shares his bundle over Olm; a wrong-room key rides along.
	ks, _ := b.m.ExportRoomKeys(ctx)
	wrong := ks[0]
	wrong.RoomID = "!other:hs"
	ct, content := bundleFor(t, b, room, wrong)
	raw, _ := json.Marshal(content)
	if err := b.m.SendEncryptedToDevice(ctx, c.user, c.device, "m.room_key_bundle", raw); err != nil {
		t.Fatal(err)
	}
	b.flush()
	// A device of Bob's that is not cross-signed sends one too.
	evil := s.newAttacker(b.user, "BOBX", false)
	evilCT, evilContent := bundleFor(t, b, "!evil:hs")
	_ = evilCT
	pt := evil.plaintext(c, "m.room_key_bundle", evilContent)
	pt["sender_device_keys"] = json.RawMessage(evil.devKeys)
	s.deliver(c, evil.olmTo(c, b.user, pt))
	c.sync()
	c.flush()
	c.sync(roomState(room, a.user, b.user, c.user))
	if !c.hasRejection(e2ee.RejectBundleUntrusted) {
		t.Fatalf("bundle from a device that is not cross-signed not rejected: %+v", c.rejected)
	}
	if _, err := c.m.RoomKeyBundle(ctx, "!evil:hs", b.user); !errors.Is(err, e2ee.ErrNotFound) {
		t.Fatalf("bundle of an untrusted device stored: %v", err)
	}
	// Only the inviter's bundle, only for that room (rule 4a, 4b).
	if _, err := c.m.RoomKeyBundle(ctx, room, a.user); !errors.Is(err, e2ee.ErrNotFound) {
		t.Fatalf("bundle offered for a user who sent none: %v", err)
	}
	f, err := c.m.RoomKeyBundle(ctx, room, b.user)
	if err != nil || f.URL != "mxc://hs/bundle" {
		t.Fatalf("inviter's bundle: %v %+v", err, f)
	}
	// The server swaps the bytes (rule 4c).
	bad := append([]byte(nil), ct...)
	bad[0] ^= 1
	n, res, err := c.m.ImportRoomKeyBundle(ctx, room, b.user, bad)
	if !errors.Is(err, e2ee.ErrAttachmentHash) || n != 0 || len(res.Rejected) == 0 || res.Rejected[0].Code != e2ee.RejectBundleHashMismatch {
		t.Fatalf("swapped bundle: n=%d err=%v res=%+v", n, err, res)
	}
	_, err = c.decrypt(room, e)
	wantUTD(t, err, e2ee.UTDNoSession)
	c.open() // the bundle survives a restart until imported
	n, res, err = c.m.ImportRoomKeyBundle(ctx, room, b.user, ct)
	if err != nil || n == 0 {
		t.Fatalf("honest bundle: n=%d err=%v", n, err)
	}
	wrongRoom := false
	for _, r := range res.Rejected {
		if r.Code == e2ee.RejectRoomKeyInvalid {
			wrongRoom = true
		}
	}
	if !wrongRoom {
		t.Fatalf("key of another room in the bundle not rejected: %+v", res.Rejected)
	}
	d := c.mustDecrypt(room, e, "history")
	if d.Provenance.Trust != e2ee.TrustForwardedOrBackup || d.Provenance.SharedBy != b.user {
		t.Fatalf("bundle session provenance %+v, want forwarded, shared by %s", d.Provenance, b.user)
	}
	if _, err := c.m.RoomKeyBundle(ctx, room, b.user); !errors.Is(err, e2ee.ErrNotFound) {
		t.Fatal("imported bundle still pending")
	}
}

// ---- B6 rule 3: room-key bundles, sender side ----

func historyVisibility(room, v string) e2ee.RoomUpdate {
	empty := ""
	c, _ := json.Marshal(map[string]string{"history_visibility": v})
	return e2ee.RoomUpdate{RoomID: room, Events: []e2ee.Event{{Type: "m.room.history_visibility", StateKey: &empty, Content: c, RoomID: room}}}
}

// TestB6RoomKeyBundleSender: the bundle holds only sessions their creator
// marked shared_history (the server telling us the history is shared does
// not widen what Bob's sessions reveal); our session rotates when the
// visibility crosses the shared line; the bundle goes only to the
// invitee's cross-signed devices, whatever the policy; the invitee reads
// the shared history, not the rest.
func TestB6RoomKeyBundleSender(t *testing.T) {
	s, a, b, room := setup(t)
	// The server tells Alice the history is shared, and Bob it is not.
	a.sync(historyVisibility(room, "shared"))
	b.sync(historyVisibility(room, "joined"))
	shared := a.send(room, "shared history")
	bobs := b.send(room, "bob: not shared")
	a.sync()
	a.mustDecrypt(room, bobs, "bob: not shared")
	a.sync(historyVisibility(room, "joined"))
	private := a.send(room, "private")
	if sessionOf(t, private) == sessionOf(t, shared) {
		t.Fatal("history visibility left the shared line but the session was not rotated")
	}
	ctx := context.Background()
	ct, f, n, err := a.m.BuildRoomKeyBundle(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("bundle of %d sessions, want 1 (Alice's shared session only)", n)
	}
	f.URL = "mxc://hs/alice-bundle"

	s.noCrossSign["@carol:hs|CAROL2"] = true
	c := s.newClient("@carol:hs", "CAROL1", e2ee.StrictPolicy())
	c2 := s.newClient("@carol:hs", "CAROL2", e2ee.StrictPolicy())
	_ = c2
	a.sync(roomState(room, a.user, b.user, c.user))
	a.flush()
	mark := len(s.sent)
	for range 3 {
		_, err = a.m.ShareRoomKeyBundle(ctx, room, c.user, f)
		if !errors.Is(err, e2ee.ErrNotReady) {
			break
		}
		a.flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	a.flush()
	if n := s.sentTo(mark, c.user+"|CAROL1", "m.room.encrypted"); n != 1 {
		t.Fatalf("%d bundle messages to Carol's cross-signed device, want 1", n)
	}
	if n := s.sentTo(mark, c.user+"|CAROL2", "m.room.encrypted"); n != 0 {
		t.Fatalf("%d bundle messages to a device that is not cross-signed", n)
	}
	c.sync()
	c.flush()
	c.sync(roomState(room, a.user, b.user, c.user))
	if _, err := c.m.RoomKeyBundle(ctx, room, a.user); err != nil {
		t.Fatalf("Carol has no bundle from Alice: %v (rejections %+v)", err, c.rejected)
	}
	if _, _, err := c.m.ImportRoomKeyBundle(ctx, room, a.user, ct); err != nil {
		t.Fatal(err)
	}
	if d := c.mustDecrypt(room, shared, "shared history"); d.Provenance.SharedBy != a.user {
		t.Fatalf("provenance %+v", d.Provenance)
	}
	for _, ev := range []e2ee.Event{bobs, private} {
		_, err := c.decrypt(room, ev)
		wantUTD(t, err, e2ee.UTDNoSession)
	}
	// Once Bob's own client marks a session shared_history, Alice's bundle
	// includes it.
	b.sync(historyVisibility(room, "shared"))
	bobShared := b.send(room, "bob: shared")
	a.sync()
	a.mustDecrypt(room, bobShared, "bob: shared")
	if _, _, n, err := a.m.BuildRoomKeyBundle(ctx, room); err != nil || n != 2 {
		t.Fatalf("bundle of %d sessions (%v), want 2 (with Bob's shared_history session)", n, err)
	}
}
