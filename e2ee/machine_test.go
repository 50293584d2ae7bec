package e2ee_test

import (
	"myelin/e2ee"
	"testing"
)

func TestHappyPath(t *testing.T) {
	_, a, b, room := setup(t)
	ev := a.send(room, "hello bob")
	b.sync()
	d := b.mustDecrypt(room, ev, "hello bob")
	if d.Provenance.SenderUser != a.user || d.Provenance.SenderDevice != "ALICE1" {
		t.Fatalf("provenance %+v", d.Provenance)
	}
	if d.Provenance.Trust.String() != "cross_signed_pinned" {
		t.Fatalf("trust = %s", d.Provenance.Trust)
	}
	a.mustDecrypt(room, ev, "hello bob") // own message
	ev2 := b.send(room, "hi alice")
	a.sync()
	a.mustDecrypt(room, ev2, "hi alice")
	if len(a.rejected)+len(b.rejected) != 0 {
		t.Fatalf("rejections: %+v %+v", a.rejected, b.rejected)
	}
}

func TestSendEncryptedToDevice(t *testing.T) {
	_, a, b, _ := setup(t)
	if err := a.m.SendEncryptedToDevice(ctx, b.user, "BOB1", "m.key.verification.request", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	a.flush()
	b.sync()
	if len(b.toDevice) != 1 || b.toDevice[0].Type != "m.key.verification.request" || b.toDevice[0].SenderDevice != "ALICE1" || !b.toDevice[0].Encrypted {
		t.Fatalf("got %+v", b.toDevice)
	}
	if err := a.m.SendEncryptedToDevice(ctx, b.user, "NOPE", "x", []byte(`{}`)); err == nil {
		t.Fatal("sent to an unknown device")
	}
}

// Our own other devices get the room key, and do not force a rotation when
// the client has not passed our own membership event.
func TestOwnOtherDeviceSharedWithoutRotation(t *testing.T) {
	s := newServer(t)
	a1 := s.newClient("@alice:hs", "ALICE1", e2ee.StrictPolicy())
	a2 := s.newClient("@alice:hs", "ALICE2", e2ee.StrictPolicy())
	b := s.newClient("@bob:hs", "BOB1", e2ee.StrictPolicy())
	room := "!r:hs"
	a1.sync(roomState(room, b.user)) // no member event for ourselves
	a1.flush()
	a2.sync(roomState(room, a1.user, b.user))
	a2.flush()
	e1 := a1.send(room, "one")
	e2 := a1.send(room, "two")
	if sessionOf(t, e1) != sessionOf(t, e2) {
		t.Fatal("rotated without a reason")
	}
	a2.sync()
	a2.mustDecrypt(room, e2, "two")
}

// Without cross-signing, strict machines share nothing; permissive ones do.
func TestPermissivePolicyWithoutCrossSigning(t *testing.T) {
	for _, strict := range []bool{true, false} {
		s := newServer(t)
		s.noCrossSign["@alice:hs|ALICE1"] = true
		s.noCrossSign["@bob:hs|BOB1"] = true
		pol := e2ee.PermissivePolicy()
		if strict {
			pol = e2ee.StrictPolicy()
		}
		a := s.newClient("@alice:hs", "ALICE1", pol)
		b := s.newClient("@bob:hs", "BOB1", pol)
		room := "!r:hs"
		a.sync(roomState(room, a.user, b.user))
		b.sync(roomState(room, a.user, b.user))
		a.flush()
		b.flush()
		ev := a.send(room, "hi")
		b.sync()
		d, err := b.decrypt(room, ev)
		if strict {
			wantUTD(t, err, e2ee.UTDWithheld)
			continue
		}
		if err != nil || d.Provenance.Trust != e2ee.TrustUnverifiedDevice {
			t.Fatalf("permissive: %v %+v", err, d)
		}
	}
}
