package e2ee_test

import (
	"context"
	"testing"
	"time"

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
