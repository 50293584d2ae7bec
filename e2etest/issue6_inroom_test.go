package e2etest

import (
	"encoding/json"
	"testing"
	"time"

	"myelin/client"
	"myelin/e2ee"
	"myelin/e2ee/verification"
)

// twoUsersInRoom registers alice and bob (and the given others) in an
// encrypted room, each knowing the others' devices.
func twoUsersInRoom(t *testing.T, name string, others ...string) (string, []*tclient) {
	t.Helper()
	hs := startServer(t)
	alice := register(t, hs, "alice")
	users := []*tclient{alice}
	var ids []string
	for _, o := range append([]string{"bob"}, others...) {
		u := register(t, hs, o)
		users = append(users, u)
		ids = append(ids, u.UserID())
	}
	room, err := alice.CreateEncryptedRoom(ctxT(t), name, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users[1:] {
		u.joinOnInvite(room)
		alice.waitMember(room, u.UserID(), "join")
	}
	for _, a := range users {
		for _, b := range users {
			if a != b {
				a.knowsDevice(b.UserID(), b.DeviceID())
			}
		}
	}
	return room, users
}

// TestSASInRoomTwoUsers: alice asks bob to verify in their encrypted room
// (request, ready, start, accept, key, mac and done travel as encrypted room
// events related to the request); both see the same SAS, confirm, and end
// with each other's master key proven and signed, so their messages are
// then shown as from a verified identity.
func TestSASInRoomTwoUsers(t *testing.T) {
	room, us := twoUsersInRoom(t, "sas-in-room")
	alice, bob := us[0], us[1]
	ctx := ctxT(t)
	va, err := alice.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := bob.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refA, err := va.RequestInRoom(ctx, room, bob.UserID())
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if refA.Transport != verification.InRoom || refA.Room.String() != room || refA.ID == "" {
		t.Fatalf("flow %+v", refA)
	}
	// The request went out encrypted, as every step after it.
	reqEv := bob.waitEvent("request event", func(ev client.Event) bool { return ev.Raw.EventID == refA.ID })
	if !reqEv.Encrypted || reqEv.Err != nil {
		t.Fatalf("request event encrypted=%v err=%v", reqEv.Encrypted, reqEv.Err)
	}
	req := waitUpdate(t, bob.name, vb, "request", func(u client.VerificationUpdate) bool { return u.Request != nil })
	if req.Flow != refA {
		t.Fatalf("bob's flow %+v, alice's %+v", req.Flow, refA)
	}
	if req.Request.From.User.String() != alice.UserID() || req.Request.From.Device.String() != alice.DeviceID() {
		t.Fatalf("request from %+v", req.Request.From)
	}
	refB := req.Flow
	if err := vb.Accept(ctx, refB); err != nil {
		t.Fatalf("accept: %v", err)
	}
	waitUpdate(t, alice.name, va, "ready", func(u client.VerificationUpdate) bool { return u.Flow == refA && u.State == verification.Ready })
	if err := va.StartSAS(ctx, refA); err != nil {
		t.Fatalf("start: %v", err)
	}
	sa := waitUpdate(t, alice.name, va, "SAS", func(u client.VerificationUpdate) bool { return u.SAS != nil })
	sb := waitUpdate(t, bob.name, vb, "SAS", func(u client.VerificationUpdate) bool { return u.SAS != nil })
	if sa.SAS.Decimal != sb.SAS.Decimal {
		t.Fatalf("SAS differ: %v vs %v", sa.SAS.Decimal, sb.SAS.Decimal)
	}
	if sa.SAS.Emoji == nil || sb.SAS.Emoji == nil || *sa.SAS.Emoji != *sb.SAS.Emoji {
		t.Fatal("emoji missing or different")
	}
	if err := va.Confirm(ctx, refA); err != nil {
		t.Fatalf("confirm alice: %v", err)
	}
	if err := vb.Confirm(ctx, refB); err != nil {
		t.Fatalf("confirm bob: %v", err)
	}
	oa := waitUpdate(t, alice.name, va, "outcome", func(u client.VerificationUpdate) bool { return u.Outcome != nil })
	ob := waitUpdate(t, bob.name, vb, "outcome", func(u client.VerificationUpdate) bool { return u.Outcome != nil })
	if oa.SignErr != nil || ob.SignErr != nil {
		t.Fatalf("signing the outcome: %v / %v", oa.SignErr, ob.SignErr)
	}
	if oa.Outcome.MasterKey == nil || ob.Outcome.MasterKey == nil || oa.Outcome.SelfVerification() {
		t.Fatalf("outcomes: %+v / %+v", oa.Outcome, ob.Outcome)
	}
	if oa.Outcome.Their.User.String() != bob.UserID() || ob.Outcome.Their.User.String() != alice.UserID() {
		t.Fatalf("outcome parties %v / %v", oa.Outcome.Their, ob.Outcome.Their)
	}
	for _, s := range []struct {
		v   *client.Verifier
		ref verification.FlowRef
	}{{va, refA}, {vb, refB}} {
		waitState(t, s.v, s.ref, verification.Done)
	}
	verified := func(tc *tclient, user string) {
		t.Helper()
		for {
			st, err := tc.Machine().Identity(ctx, user)
			if err == nil && st != nil && st.Verified {
				return
			}
			if err := tc.WaitSync(ctx); err != nil {
				t.Fatalf("%s: %s never verified: %v", tc.name, user, err)
			}
		}
	}
	verified(alice, bob.UserID())
	verified(bob, alice.UserID())
	bob.send(room, "verified in room")
	if ev := alice.text(room, "verified in room"); ev.Provenance.Trust != e2ee.TrustVerifiedIdentity {
		t.Fatalf("message from verified bob shown as %v", ev.Provenance.Trust)
	}
	alice.send(room, "verified back in room")
	if ev := bob.text(room, "verified back in room"); ev.Provenance.Trust != e2ee.TrustVerifiedIdentity {
		t.Fatalf("message from verified alice shown as %v", ev.Provenance.Trust)
	}
}

// waitState waits until the verifier's flow is in state want.
func waitState(t *testing.T, v *client.Verifier, ref verification.FlowRef, want verification.State) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st, ok := v.State(ref)
		if ok && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow %s in state %v (known %v), want %v", ref.ID, st, ok, want)
		}
		select {
		case <-v.Updates():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestSASInRoomThirdUserIgnored: carol, a member of the room, answers
// alice's in-room request to bob with her own ready (related to the request,
// encrypted, from her genuine device). The flow is with bob only: carol's
// ready must neither make the flow ready with her device, nor lead to any
// outcome, nor cancel it. (Were the sender not checked against the flow's user, alice's
// flow would be Ready with carol.)
func TestSASInRoomThirdUserIgnored(t *testing.T) {
	room, us := twoUsersInRoom(t, "sas-in-room-3", "carol")
	alice, bob, carol := us[0], us[1], us[2]
	ctx := ctxT(t)
	va, err := alice.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Verifier(ctx); err != nil {
		t.Fatal(err)
	}
	refA, err := va.RequestInRoom(ctx, room, bob.UserID())
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	ready, _ := json.Marshal(map[string]any{
		"from_device":  carol.DeviceID(),
		"methods":      []string{verification.MethodSAS},
		"m.relates_to": map[string]string{"rel_type": verification.RelReference, "event_id": refA.ID},
	})
	carolReady, err := carol.SendMessage(ctx, room, verification.TypeReady, ready)
	if err != nil {
		t.Fatalf("carol's ready: %v", err)
	}
	// carol's ready reached alice's verifier (decrypted) before the marker.
	alice.waitEvent("carol's ready", func(ev client.Event) bool {
		return ev.Raw.EventID == carolReady && ev.Err == nil && ev.Event.Type == verification.TypeReady
	})
	carol.send(room, "after carol's ready")
	alice.text(room, "after carol's ready")
	for {
		select {
		case u := <-va.Updates():
			if u.Outcome != nil {
				t.Fatalf("outcome from carol's ready: %+v", u.Outcome)
			}
			if u.State == verification.Ready {
				t.Fatalf("flow ready with carol: %+v", u)
			}
			continue
		default:
		}
		break
	}
	st, ok := va.State(refA)
	// Ignored, not cancelled: a member must not be able to abort other
	// people's verifications either.
	if !ok || st != verification.Requested {
		t.Fatalf("alice's flow after carol's ready: %v (known %v)", st, ok)
	}
	t.Logf("alice's flow after carol's ready: %v", st)
}
