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
