package interop

import (
	"bytes"
	"fmt"
	"testing"
)

// pairs returns the ordered (sender, receiver) pairs to cross-test: every
// pair that involves myelin, plus libolm with itself (which checks the test
// against the oracle) and goolm with libolm.
func pairs(t *testing.T) [][2]*impl {
	t.Helper()
	names := [][2]string{
		{"myelin", "libolm"}, {"libolm", "myelin"},
		{"myelin", "goolm"}, {"goolm", "myelin"},
		{"myelin", "myelin"},
		{"libolm", "libolm"}, {"goolm", "libolm"}, {"libolm", "goolm"},
	}
	var out [][2]*impl
	for _, n := range names {
		a, b := impls[n[0]], impls[n[1]]
		if a == nil || b == nil {
			continue
		}
		out = append(out, [2]*impl{a, b})
	}
	return out
}

func forPairs(t *testing.T, f func(t *testing.T, a, b *impl)) {
	for _, p := range pairs(t) {
		t.Run(p[0].name+"->"+p[1].name, func(t *testing.T) { f(t, p[0], p[1]) })
	}
}

// peer is one device in a cross test.
type peer struct {
	acc olmAccount
	ik  string // curve25519 identity key
}

func newPeer(t *testing.T, im *impl, seed uint64) *peer {
	t.Helper()
	a, err := im.newAccount(detRand(seed))
	if err != nil {
		t.Fatalf("%s: new account: %v", im.name, err)
	}
	ik, _ := a.IdentityKeys()
	return &peer{acc: a, ik: ik}
}

// claimOTK generates one one-time key, marks it published and returns it.
func (p *peer) claimOTK(t *testing.T) string {
	t.Helper()
	if err := p.acc.GenerateOneTimeKeys(1); err != nil {
		t.Fatal(err)
	}
	otks := p.acc.OneTimeKeys()
	if len(otks) != 1 {
		t.Fatalf("want 1 unpublished one-time key, have %d", len(otks))
	}
	p.acc.MarkKeysAsPublished()
	for _, k := range otks {
		return k
	}
	panic("unreachable")
}

type wire struct {
	typ int
	msg string
	pt  []byte
}

// establish makes an outbound session from a to b and an inbound session at
// b from the first pre-key message, checking the session IDs and plaintext.
func establish(t *testing.T, a, b *peer) (sa, sb olmSession) {
	t.Helper()
	sa, err := a.acc.NewOutboundSession(b.ik, b.claimOTK(t))
	if err != nil {
		t.Fatalf("outbound session: %v", err)
	}
	pt := []byte("first pre-key message")
	typ, msg, err := sa.Encrypt(pt)
	if err != nil || typ != 0 {
		t.Fatalf("first encrypt: type %d, %v", typ, err)
	}
	sb, got, err := b.acc.NewInboundSession(a.ik, msg)
	if err != nil {
		t.Fatalf("inbound session: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatalf("pre-key plaintext %q", got)
	}
	if sa.ID() != sb.ID() {
		t.Fatalf("session IDs differ: %s vs %s", sa.ID(), sb.ID())
	}
	if n := len(b.acc.OneTimeKeys()); n != 0 {
		t.Fatalf("%d unpublished one-time keys after inbound session", n)
	}
	return sa, sb
}

func send(t *testing.T, s olmSession, text string) wire {
	t.Helper()
	pt := []byte(text)
	typ, msg, err := s.Encrypt(pt)
	if err != nil {
		t.Fatalf("encrypt %q: %v", text, err)
	}
	return wire{typ, msg, pt}
}

func recv(t *testing.T, s olmSession, w wire) {
	t.Helper()
	got, err := s.Decrypt(w.typ, w.msg)
	if err != nil {
		t.Fatalf("decrypt %q (type %d): %v", w.pt, w.typ, err)
	}
	if !bytes.Equal(got, w.pt) {
		t.Fatalf("decrypt: got %q, want %q", got, w.pt)
	}
}

func TestOlmSessionSetup(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		a, b := newPeer(t, ia, 1), newPeer(t, ib, 2)
		sa, sb := establish(t, a, b)
		if sa.HasReceivedMessage() || !sb.HasReceivedMessage() {
			t.Errorf("has received: a %v b %v", sa.HasReceivedMessage(), sb.HasReceivedMessage())
		}
		w := send(t, sa, "second pre-key message")
		if w.typ != 0 {
			t.Errorf("a's second message has type %d before any reply", w.typ)
		}
		recv(t, sb, w)
		w = send(t, sb, "reply")
		if w.typ != 1 {
			t.Errorf("b's reply has type %d", w.typ)
		}
		recv(t, sa, w)
		w = send(t, sa, "after reply")
		if w.typ != 1 {
			t.Errorf("a's message after the reply has type %d", w.typ)
		}
		recv(t, sb, w)
	})
}

// TestOlmLongConversation alternates directions with bursts of 1 to 5
// messages, so that both sides ratchet many times.
func TestOlmLongConversation(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		a, b := newPeer(t, ia, 3), newPeer(t, ib, 4)
		sa, sb := establish(t, a, b)
		sess := [2]olmSession{sa, sb}
		n := 0
		for turn := range 60 {
			from := (turn + 1) % 2 // b speaks first
			burst := 1 + (turn*7)%5
			for range burst {
				n++
				w := send(t, sess[from], fmt.Sprintf("message %d turn %d %s", n, turn, bytes.Repeat([]byte{'x'}, n%40)))
				recv(t, sess[1-from], w)
			}
		}
	})
}

// TestOlmOutOfOrder covers reordering within one chain (40 skipped keys),
// messages from an older chain after a ratchet step, and the largest gap
// (2000) that both libolm and myelin accept.
func TestOlmOutOfOrder(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		t.Run("reversed chain of 41", func(t *testing.T) {
			a, b := newPeer(t, ia, 5), newPeer(t, ib, 6)
			sa, sb := establish(t, a, b)
			recv(t, sa, send(t, sb, "reply")) // a now sends type 1 messages
			ws := make([]wire, 41)
			for i := range ws {
				ws[i] = send(t, sa, fmt.Sprintf("chain message %d", i))
			}
			for i := len(ws) - 1; i >= 0; i-- { // the first decrypt skips 40 keys
				recv(t, sb, ws[i])
			}
			if _, err := sb.Decrypt(ws[3].typ, ws[3].msg); err == nil {
				t.Error("a replayed message decrypted twice")
			}
		})
		t.Run("older chain after ratchet", func(t *testing.T) {
			a, b := newPeer(t, ia, 7), newPeer(t, ib, 8)
			sa, sb := establish(t, a, b)
			recv(t, sa, send(t, sb, "reply"))
			old := []wire{send(t, sa, "old 0"), send(t, sa, "old 1"), send(t, sa, "old 2")}
			recv(t, sb, old[2])
			recv(t, sa, send(t, sb, "b ratchets"))
			recv(t, sb, send(t, sa, "new chain"))
			recv(t, sb, old[0])
			recv(t, sb, old[1])
		})
		t.Run("gap 2000", func(t *testing.T) {
			a, b := newPeer(t, ia, 9), newPeer(t, ib, 10)
			sa, sb := establish(t, a, b)
			recv(t, sa, send(t, sb, "reply"))
			recv(t, sb, send(t, sa, "index 0 on the new chain"))
			var last wire
			for i := range 2001 {
				last = send(t, sa, fmt.Sprintf("gap %d", i))
			}
			recv(t, sb, last)
			recv(t, sb, send(t, sa, "after the gap"))
		})
		t.Run("gap 2001 rejected", func(t *testing.T) {
			a, b := newPeer(t, ia, 11), newPeer(t, ib, 12)
			sa, sb := establish(t, a, b)
			recv(t, sa, send(t, sb, "reply"))
			first := send(t, sa, "index 0 on the new chain")
			recv(t, sb, first)
			ws := make([]wire, 2002)
			for i := range ws {
				ws[i] = send(t, sa, fmt.Sprintf("gap %d", i))
			}
			if _, err := sb.Decrypt(ws[2001].typ, ws[2001].msg); err == nil {
				t.Fatalf("%s accepted a gap of 2001", ib.name)
			}
			recv(t, sb, ws[0]) // state unchanged by the failure
			recv(t, sb, ws[1])
		})
	})
}

// TestOlmPreKeyMatching: several pre-key messages before any reply all
// match the inbound session; another sender's do not; a fallback key makes
// sessions without being consumed.
func TestOlmPreKeyMatching(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		a, b, c := newPeer(t, ia, 13), newPeer(t, ib, 14), newPeer(t, ia, 15)
		sa, sb := establish(t, a, b)
		p2, p3 := send(t, sa, "pre-key 2"), send(t, sa, "pre-key 3")
		if p2.typ != 0 || p3.typ != 0 {
			t.Fatalf("types %d %d", p2.typ, p3.typ)
		}
		for _, w := range []wire{p3, p2} {
			ok, err := sb.MatchesInbound(a.ik, w.msg)
			if err != nil || !ok {
				t.Fatalf("pre-key message does not match its session: %v %v", ok, err)
			}
			recv(t, sb, w)
		}
		if ok, err := sb.MatchesInbound(c.ik, p2.msg); err != nil || ok {
			t.Errorf("pre-key message matched with the wrong identity key: %v %v", ok, err)
		}
		sc, err := c.acc.NewOutboundSession(b.ik, b.claimOTK(t))
		if err != nil {
			t.Fatal(err)
		}
		pc := send(t, sc, "from c")
		if ok, err := sb.MatchesInbound(c.ik, pc.msg); err != nil || ok {
			t.Errorf("c's pre-key message matched a's session: %v %v", ok, err)
		}
		if _, _, err := b.acc.NewInboundSession(a.ik, pc.msg); err == nil {
			t.Error("inbound session accepted with the wrong sender identity key")
		}
		sbc, got, err := b.acc.NewInboundSession(c.ik, pc.msg)
		if err != nil || !bytes.Equal(got, pc.pt) {
			t.Fatalf("c's session: %q %v", got, err)
		}
		if ok, err := sbc.MatchesInbound(c.ik, pc.msg); err != nil || !ok {
			t.Errorf("c's session does not match its pre-key message: %v %v", ok, err)
		}
	})
}

func TestOlmFallbackKey(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		a, c, b := newPeer(t, ia, 16), newPeer(t, ia, 17), newPeer(t, ib, 18)
		if err := b.acc.GenerateFallbackKey(); err != nil {
			t.Fatal(err)
		}
		_, fk, ok := b.acc.UnpublishedFallbackKey()
		if !ok {
			t.Fatal("no unpublished fallback key")
		}
		b.acc.MarkKeysAsPublished()
		if _, _, ok := b.acc.UnpublishedFallbackKey(); ok {
			t.Error("fallback key still unpublished")
		}
		for i, x := range []*peer{a, c, a} { // the fallback key is reusable
			s, err := x.acc.NewOutboundSession(b.ik, fk)
			if err != nil {
				t.Fatal(err)
			}
			w := send(t, s, fmt.Sprintf("via fallback %d", i))
			sb, got, err := b.acc.NewInboundSession(x.ik, w.msg)
			if err != nil || !bytes.Equal(got, w.pt) {
				t.Fatalf("inbound via fallback key %d: %q %v", i, got, err)
			}
			recv(t, s, send(t, sb, "reply"))
		}
	})
}

// TestOlmTamperedMessage: a modified message fails and leaves the session
// able to decrypt the genuine one.
func TestOlmTamperedMessage(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		a, b := newPeer(t, ia, 19), newPeer(t, ib, 20)
		sa, sb := establish(t, a, b)
		recv(t, sa, send(t, sb, "reply"))
		w := send(t, sa, "genuine")
		raw := b64(w.msg)
		for _, pos := range []int{len(raw) - 1, len(raw) - 12, 40} {
			bad := bytes.Clone(raw)
			bad[pos] ^= 0x01
			if _, err := sb.Decrypt(w.typ, b64enc(bad)); err == nil {
				t.Errorf("message with byte %d flipped decrypted", pos)
			}
		}
		recv(t, sb, w)
	})
}

// TestOlmPlaintextSizes: block-boundary sizes and the 64 KiB maximum (goolm
// refuses to encrypt an empty plaintext, so that size is skipped with it).
func TestOlmPlaintextSizes(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		a, b := newPeer(t, ia, 21), newPeer(t, ib, 22)
		sa, sb := establish(t, a, b)
		for _, size := range []int{0, 1, 15, 16, 17, 1000, 65536} {
			if size == 0 && (ia.name == "goolm" || ib.name == "goolm") {
				continue
			}
			w := send(t, sa, string(bytes.Repeat([]byte{'p'}, size)))
			recv(t, sb, w)
			w = send(t, sb, string(bytes.Repeat([]byte{'q'}, size)))
			recv(t, sa, w)
		}
	})
}
