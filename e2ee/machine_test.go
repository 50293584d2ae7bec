package e2ee_test

import (
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
	if len(b.toDevice) != 1 || b.toDevice[0].Type != "m.key.verification.request" || b.toDevice[0].SenderDevice != "ALICE1" {
		t.Fatalf("got %+v", b.toDevice)
	}
	if err := a.m.SendEncryptedToDevice(ctx, b.user, "NOPE", "x", []byte(`{}`)); err == nil {
		t.Fatal("sent to an unknown device")
	}
}
