package e2etest

import (
	"context"
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
