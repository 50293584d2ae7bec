package e2etest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"myelin/client"
	"myelin/e2ee"
)

// wantFrom checks a decrypted event's provenance: the sending user and
// device, bound over Olm to a cross-signed device of a pinned identity.
func wantFrom(t *testing.T, ev client.Event, from *tclient) {
	t.Helper()
	p := ev.Provenance
	if !ev.Encrypted || p.SenderUser != from.UserID() || p.SenderDevice != from.DeviceID() {
		t.Fatalf("provenance %+v (encrypted %v), want %s/%s", p, ev.Encrypted, from.UserID(), from.DeviceID())
	}
	if p.Trust != e2ee.TrustCrossSignedPinned && p.Trust != e2ee.TrustVerifiedIdentity {
		t.Fatalf("trust %s, want a cross-signed device (%s)", p.Trust, p.Warning)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func TestTwoUsers(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "two", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")

	alice.send(room, "hello bob")
	wantFrom(t, bob.text(room, "hello bob"), alice)
	bob.send(room, "hi alice")
	wantFrom(t, alice.text(room, "hi alice"), bob)
	// Our own messages come back decrypted too.
	wantFrom(t, alice.text(room, "hello bob"), alice)
}

// TestThreeUsersSeveralDevicesLeaveRotates: alice (2 devices), bob (2
// devices) and carol; every device decrypts every other device's messages
// with the right provenance. Then carol leaves: the room key rotates, carol's
// device receives no key for what follows and cannot decrypt it.
func TestThreeUsersSeveralDevicesLeaveRotates(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	carol := register(t, hs, "carol")
	alice2 := alice.login(2, "")
	bob2 := bob.login(2, "")

	room, err := alice.CreateEncryptedRoom(ctxT(t), "three", []string{bob.UserID(), carol.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	carol.joinOnInvite(room)
	for _, u := range []*tclient{bob, carol} {
		alice.waitMember(room, u.UserID(), "join")
	}
	all := []*tclient{alice, alice2, bob, bob2, carol}
	for _, tc := range all {
		for _, u := range all {
			tc.knowsDevice(u.UserID(), u.DeviceID())
		}
	}

	var before client.Event
	for _, from := range all {
		msg := "from " + from.name
		from.send(room, msg)
		for _, to := range all {
			ev := to.text(room, msg)
			wantFrom(t, ev, from)
			if from == alice && to == bob {
				before = ev
			}
		}
	}

	// Carol leaves; every remaining device sees it.
	if err := carol.Leave(ctxT(t), room); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []*tclient{alice, alice2, bob, bob2} {
		tc.waitMember(room, carol.UserID(), "leave")
	}
	const secret = "after carol left"
	alice.send(room, secret)
	var after client.Event
	for _, to := range []*tclient{alice2, bob, bob2} {
		ev := to.text(room, secret)
		wantFrom(t, ev, alice)
		if to == bob {
			after = ev
		}
	}
	if after.Provenance.SessionID == before.Provenance.SessionID {
		t.Fatalf("room key not rotated after a leave: session %s", after.Provenance.SessionID)
	}
	// Carol's device catches up on every to-device message sent to it, then
	// tries the ciphertext (as a server would hand it over): no key.
	carol.stop()
	if err := carol.SyncOnce(ctxT(t), 0); err != nil {
		t.Fatal(err)
	}
	_, err = carol.Machine().Decrypt(ctxT(t), room, e2ee.Event(after.Raw))
	var u *e2ee.UTDError
	if !errors.As(err, &u) || (u.Reason != e2ee.UTDNoSession && u.Reason != e2ee.UTDWithheld) {
		t.Fatalf("carol decrypting after leaving: err %v, want no session", err)
	}
	if carol.hasText(secret) {
		t.Fatal("carol saw the message sent after she left")
	}
	// The message before the leave is still readable for her.
	if _, err := carol.Machine().Decrypt(ctxT(t), room, e2ee.Event(before.Raw)); err != nil {
		t.Fatalf("carol lost the history she was there for: %v", err)
	}
}

// TestNewDeviceAndOfflineCatchUp: a device added later receives keys for
// what is sent after it appears; a persistent device that was offline
// (process stopped, reopened from its store directory) catches up on
// everything sent meanwhile.
func TestNewDeviceAndOfflineCatchUp(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "catch-up", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	alice.send(room, "one")
	bob.text(room, "one")

	dir := t.TempDir()
	bob2 := bob.login(2, dir)
	alice.knowsDevice(bob.UserID(), bob2.DeviceID())
	alice.send(room, "two")
	wantFrom(t, bob2.text(room, "two"), alice)
	wantFrom(t, bob.text(room, "two"), alice)

	// bob2 goes offline.
	bob2.stop()
	if err := bob2.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := []string{"three", "four", "five"}
	for _, m := range msgs {
		alice.send(room, m)
	}
	bob.send(room, "six")
	bob2b := bob2.resume(dir)
	if bob2b.DeviceID() != bob2.DeviceID() {
		t.Fatalf("resumed as %s, want %s", bob2b.DeviceID(), bob2.DeviceID())
	}
	for _, m := range msgs {
		wantFrom(t, bob2b.text(room, m), alice)
	}
	wantFrom(t, bob2b.text(room, "six"), bob)
	// And it can still send.
	bob2b.send(room, "back online")
	wantFrom(t, alice.text(room, "back online"), bob2)
}

// TestNoPlaintextIntoEncryptedRoom: once a room was seen encrypted, a
// plaintext message-like event in it is flagged (never a normal message),
// and when its m.room.encryption state is replaced by something else the
// client refuses to send rather than fall back to plaintext.
func TestNoPlaintextIntoEncryptedRoom(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "strict", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")

	// Bob's raw HTTP client (a buggy or hostile client) posts plaintext.
	const leak = "plaintext in an encrypted room"
	h := bob.HTTP()
	if _, err := h.SendEvent(ctxT(t), room, "m.room.message", h.NewTxnID(), map[string]string{"msgtype": "m.text", "body": leak}); err != nil {
		t.Fatal(err)
	}
	ev := alice.waitEvent("flagged plaintext", func(ev client.Event) bool { return ev.RoomID == room && ev.Raw.Type == "m.room.message" })
	var u *e2ee.UTDError
	if !errors.As(ev.Err, &u) || u.Reason != e2ee.UTDUnencryptedInEncryptedRoom {
		enc, _ := alice.Machine().IsEncrypted(ctxT(t), room)
		t.Fatalf("plaintext event delivered with err %v (provenance %+v, machine says encrypted=%v), want UTD %s", ev.Err, ev.Provenance, enc, e2ee.UTDUnencryptedInEncryptedRoom)
	}
	if alice.hasText(leak) {
		t.Fatal("plaintext shown as a normal message")
	}

	// The room's encryption state is replaced (a room admin, or a server
	// forging state): sending must refuse, not downgrade.
	if _, err := alice.HTTP().SendState(ctxT(t), room, "m.room.encryption", "", map[string]string{"algorithm": "m.none"}); err != nil {
		t.Fatal(err)
	}
	bob.waitEvent("encryption state alert", func(ev client.Event) bool {
		return ev.Alert != nil && ev.Alert.Code == e2ee.AlertEncryptionStateChanged
	})
	for _, tc := range []*tclient{alice, bob} {
		_, err := tc.SendText(ctxT(t), room, "must not go out")
		if !errors.Is(err, e2ee.ErrEncryptionStateLost) && !errors.Is(err, e2ee.ErrPlaintextRefused) {
			t.Fatalf("%s: send after the state change: err %v, want a refusal", tc.name, err)
		}
	}
	msgs, err := alice.HTTP().Messages(ctxT(t), room, "", "b", 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range msgs.Chunk {
		if ev.Type == "m.room.message" && ev.Sender != bob.UserID() {
			t.Fatalf("plaintext reached the server: %s", ev.Content)
		}
	}
}

// TestDeviceRemovedRotatesAndRejoin: when a member's device is deleted the
// room key rotates; a member who left and is invited back reads what is
// sent after the rejoin, and only with a new key.
func TestDeviceRemovedRotatesAndRejoin(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	bob2 := bob.login(2, "")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "rotate", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	alice.knowsDevice(bob.UserID(), bob2.DeviceID())
	alice.send(room, "to both devices")
	first := bob2.text(room, "to both devices")
	wantFrom(t, first, alice)

	// bob deletes bob2.
	bob2.stop()
	if err := bob.HTTP().DeleteDevice(ctxT(t), bob2.DeviceID(), bob.password); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for {
		st, err := alice.Machine().Identity(ctx, bob.UserID())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st.Devices[bob2.DeviceID()]; !ok {
			break
		}
		if err := alice.WaitSync(ctx); err != nil {
			t.Fatalf("alice never saw bob2 go: %v", err)
		}
	}
	alice.send(room, "after the device left")
	ev := bob.text(room, "after the device left")
	wantFrom(t, ev, alice)
	if ev.Provenance.SessionID == first.Provenance.SessionID {
		t.Fatal("room key not rotated after a device was deleted")
	}

	// bob leaves, alice sends, bob is invited back and rejoins.
	if err := bob.Leave(ctxT(t), room); err != nil {
		t.Fatal(err)
	}
	alice.waitMember(room, bob.UserID(), "leave")
	mark := bob.mark()
	alice.send(room, "while bob is away")
	if err := alice.Invite(ctxT(t), room, bob.UserID()); err != nil {
		t.Fatal(err)
	}
	bob.waitEventFrom(mark, "second invite", func(e client.Event) bool {
		return e.Invite && e.RoomID == room
	})
	if err := bob.Join(ctxT(t), room); err != nil {
		t.Fatal(err)
	}
	alice.waitMember(room, bob.UserID(), "join")
	alice.send(room, "welcome back")
	back := bob.text(room, "welcome back")
	wantFrom(t, back, alice)
	if back.Provenance.SessionID == ev.Provenance.SessionID {
		t.Fatal("no new room key after bob's leave")
	}
	if bob.hasText("while bob is away") {
		t.Fatal("bob read a message sent while he was not in the room")
	}
}

// TestIdentityResetBlocksUntilAcknowledged: when bob resets his
// cross-signing identity, alice is alerted and (strict policy) cannot send
// into the shared room until she acknowledges the new identity; then bob's
// device, cross-signed by the new identity, reads her messages again.
func TestIdentityResetBlocksUntilAcknowledged(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "reset", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	alice.send(room, "before the reset")
	wantFrom(t, bob.text(room, "before the reset"), alice)
	old, err := alice.Machine().Identity(ctxT(t), bob.UserID())
	if err != nil {
		t.Fatal(err)
	}

	if err := bob.ResetCrossSigning(ctxT(t), bob.password); err != nil {
		t.Fatal(err)
	}
	alert := alice.waitEvent("identity change alert", func(ev client.Event) bool {
		return ev.Alert != nil && ev.Alert.UserID == bob.UserID() &&
			(ev.Alert.Code == e2ee.AlertIdentityChanged || ev.Alert.Code == e2ee.AlertVerificationViolation)
	})
	_, err = alice.SendText(ctxT(t), room, "must wait for acknowledgement")
	var blocked *e2ee.SendBlockedError
	if !errors.As(err, &blocked) || !slices.Contains(blocked.Users, bob.UserID()) {
		t.Fatalf("send after %s's identity changed (%s): err %v, want SendBlockedError naming him", bob.UserID(), alert.Alert.Code, err)
	}
	// Bob's messages meanwhile are flagged: his identity is not the pinned one.
	bob.send(room, "from the new identity")
	during := alice.waitEvent("bob's message after his reset", func(ev client.Event) bool {
		return ev.RoomID == room && ev.Raw.Sender == bob.UserID() && ev.Encrypted
	})
	t.Logf("bob after his reset, as alice sees it: err=%v trust=%s", during.Err, during.Provenance.Trust)
	if during.Err == nil && during.Provenance.Trust != e2ee.TrustIdentityChanged {
		t.Fatalf("message from the unacknowledged identity shown with trust %s", during.Provenance.Trust)
	}
	if err := alice.Machine().AcknowledgeIdentityChange(ctxT(t), bob.UserID()); err != nil {
		t.Fatal(err)
	}
	now, err := alice.Machine().Identity(ctxT(t), bob.UserID())
	if err != nil {
		t.Fatal(err)
	}
	if now.MasterKey == old.MasterKey {
		t.Fatal("pinned master key did not change")
	}
	alice.send(room, "after acknowledging")
	wantFrom(t, bob.text(room, "after acknowledging"), alice)
	bob.send(room, "acknowledged")
	wantFrom(t, alice.text(room, "acknowledged"), bob)
	if bob.hasText("must wait for acknowledgement") {
		t.Fatal("a blocked message went out")
	}
}

// TestConcurrentSends: several goroutines of one client send at once while
// its sync loop runs; every message arrives once, decrypted, in one session.
func TestConcurrentSends(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "burst", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := alice.SendText(ctxT(t), room, fmt.Sprintf("burst %d", i))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	sessions := map[string]bool{}
	for i := range n {
		ev := bob.text(room, fmt.Sprintf("burst %d", i))
		wantFrom(t, ev, alice)
		sessions[ev.Provenance.SessionID] = true
	}
	bob.mu.Lock()
	seen := map[string]int{}
	for _, ev := range bob.events {
		if ev.Err == nil && ev.RoomID == room {
			seen[bodyOf(ev)]++
		}
	}
	bob.mu.Unlock()
	for i := range n {
		if c := seen[fmt.Sprintf("burst %d", i)]; c != 1 {
			t.Fatalf("burst %d delivered %d times", i, c)
		}
	}
	if len(sessions) != 1 {
		t.Logf("%d sessions for one burst (no member change)", len(sessions))
	}
}
