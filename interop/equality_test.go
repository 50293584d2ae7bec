package interop

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// Byte-for-byte equality: myelin and libolm fed the same random input must
// produce identical keys, key IDs, signatures, messages and session IDs.

func deterministicImpls(t *testing.T) (m, l *impl) {
	t.Helper()
	return getImpl(t, "myelin"), getImpl(t, "libolm")
}

func TestEqualAccounts(t *testing.T) {
	mi, li := deterministicImpls(t)
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			m, err := mi.newAccount(detRand(seed))
			if err != nil {
				t.Fatal(err)
			}
			l, err := li.newAccount(detRand(seed))
			if err != nil {
				t.Fatal(err)
			}
			mc, me := m.IdentityKeys()
			lc, le := l.IdentityKeys()
			eqStr(t, "curve25519 identity key", mc, lc)
			eqStr(t, "ed25519 identity key", me, le)
			msg := []byte(`{"algorithms":["m.olm.v1.curve25519-aes-sha2"]}`)
			eqStr(t, "signature", m.Sign(msg), l.Sign(msg))

			for round := range 3 {
				n := []int{1, 5, 50}[round]
				if err := m.GenerateOneTimeKeys(n); err != nil {
					t.Fatal(err)
				}
				if err := l.GenerateOneTimeKeys(n); err != nil {
					t.Fatal(err)
				}
				mk, lk := m.OneTimeKeys(), l.OneTimeKeys()
				if len(mk) != n || len(lk) != n {
					t.Fatalf("round %d: %d and %d unpublished one-time keys, want %d", round, len(mk), len(lk), n)
				}
				for id, k := range lk {
					if mk[id] != k {
						t.Errorf("one-time key %s: myelin %q, libolm %q", id, mk[id], k)
					}
				}
				m.MarkKeysAsPublished()
				l.MarkKeysAsPublished()

				if err := m.GenerateFallbackKey(); err != nil {
					t.Fatal(err)
				}
				if err := l.GenerateFallbackKey(); err != nil {
					t.Fatal(err)
				}
				mid, mkey, mok := m.UnpublishedFallbackKey()
				lid, lkey, lok := l.UnpublishedFallbackKey()
				if mid != lid || mkey != lkey || mok != lok {
					t.Errorf("fallback key: myelin %s %s %v, libolm %s %s %v", mid, mkey, mok, lid, lkey, lok)
				}
				m.MarkKeysAsPublished()
				l.MarkKeysAsPublished()
			}
		})
	}
}

// world is one conversation between two accounts of the same implementation.
type world struct {
	a, b   *peer
	sa, sb olmSession
}

func TestEqualOlmConversation(t *testing.T) {
	mi, li := deterministicImpls(t)
	newWorld := func(im *impl) *world {
		return &world{a: newPeer(t, im, 40), b: newPeer(t, im, 41)}
	}
	wm, wl := newWorld(mi), newWorld(li)
	for _, w := range []*world{wm, wl} {
		if err := w.b.acc.GenerateOneTimeKeys(3); err != nil {
			t.Fatal(err)
		}
	}
	otks := wl.b.acc.OneTimeKeys()
	otk := otks["AAAAAg"]
	if otk == "" || wm.b.acc.OneTimeKeys()["AAAAAg"] != otk {
		t.Fatalf("one-time keys differ: %v vs %v", wm.b.acc.OneTimeKeys(), otks)
	}
	var err error
	if wm.sa, err = wm.a.acc.NewOutboundSession(wm.b.ik, otk); err != nil {
		t.Fatal(err)
	}
	if wl.sa, err = wl.a.acc.NewOutboundSession(wl.b.ik, otk); err != nil {
		t.Fatal(err)
	}
	eqStr(t, "outbound session id", wm.sa.ID(), wl.sa.ID())

	// step encrypts the same plaintext in both worlds, compares the wire
	// messages, and delivers each to the receiver of its own world (both
	// worlds) plus the other world's receiver as a cross check.
	step := func(fromA bool, text string) {
		t.Helper()
		var msgs [2]wire
		for i, w := range []*world{wm, wl} {
			s := w.sb
			if fromA {
				s = w.sa
			}
			msgs[i] = send(t, s, text)
		}
		if msgs[0].typ != msgs[1].typ || msgs[0].msg != msgs[1].msg {
			t.Fatalf("message %q differs:\n myelin (type %d) %s\n libolm (type %d) %s", text, msgs[0].typ, msgs[0].msg, msgs[1].typ, msgs[1].msg)
		}
		for i, w := range []*world{wm, wl} {
			if w.sb == nil { // first pre-key message creates b's session
				s, pt, err := w.b.acc.NewInboundSession(w.a.ik, msgs[i].msg)
				if err != nil || !bytes.Equal(pt, msgs[i].pt) {
					t.Fatalf("inbound session: %q %v", pt, err)
				}
				w.sb = s
				continue
			}
			r := w.sa
			if fromA {
				r = w.sb
			}
			recv(t, r, msgs[i])
		}
	}
	step(true, "pre-key one")
	eqStr(t, "inbound session id", wm.sb.ID(), wl.sb.ID())
	step(true, "pre-key two")
	for i := range 30 { // direction changes with bursts: many ratchet steps
		fromA := i%3 != 0
		for j := range 1 + i%4 {
			step(fromA, fmt.Sprintf("turn %d message %d %s", i, j, bytes.Repeat([]byte("z"), i*j)))
		}
	}
	eqStr(t, "session id after conversation", wm.sa.ID(), wl.sa.ID())
}

func TestEqualMegolm(t *testing.T) {
	mi, li := deterministicImpls(t)
	om, err := mi.newOutbound(detRand(50))
	if err != nil {
		t.Fatal(err)
	}
	ol, err := li.newOutbound(detRand(50))
	if err != nil {
		t.Fatal(err)
	}
	eqStr(t, "session id", om.ID(), ol.ID())
	eqStr(t, "session key at 0", om.Key(), ol.Key())
	for i := range 600 {
		pt := []byte(fmt.Sprintf("group message %d %s", i, bytes.Repeat([]byte("q"), i%70)))
		mm, err := om.Encrypt(pt)
		if err != nil {
			t.Fatal(err)
		}
		ml, err := ol.Encrypt(pt)
		if err != nil {
			t.Fatal(err)
		}
		if mm != ml {
			t.Fatalf("message %d differs:\n myelin %s\n libolm %s", i, mm, ml)
		}
		if i == 0 || i == 255 || i == 256 || i == 511 || i == 512 {
			eqStr(t, fmt.Sprint("session key at ", i+1), om.Key(), ol.Key())
		}
	}
	im, err := mi.newInbound(ol.Key())
	if err != nil {
		t.Fatal(err)
	}
	il, err := li.newInbound(ol.Key())
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint32{600, 601, 767, 768, 1 << 20, 1<<31 - 1} {
		em, err := im.Export(idx)
		if err != nil {
			t.Fatal(err)
		}
		el, err := il.Export(idx)
		if err != nil {
			t.Fatal(err)
		}
		eqStr(t, fmt.Sprint("export at ", idx), em, el)
	}
}

func eqStr(t *testing.T, what, myelin, libolm string) {
	t.Helper()
	if myelin != libolm {
		t.Errorf("%s differs:\n myelin %s\n libolm %s", what, myelin, libolm)
	}
}

// fixed is a "random" reader that hands out the given byte strings in order
// and fails when asked for more than it has.
type fixed struct{ b []byte }

func (f *fixed) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

func fixedRand(parts ...[]byte) *fixed { return &fixed{bytes.Join(parts, nil)} }
