package e2ee_test

import (
	"context"
	"testing"

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
