package olm

import (
	"bytes"
	"testing"
)

// addMessageSeeds adds valid messages and boundary mutations of them: bit
// flips at the version, key, index, ciphertext and MAC edges, truncations
// and the other type's prefix.
func addMessageSeeds(f *testing.F, msgs ...[]byte) {
	for _, b := range messageSeeds(msgs...) {
		f.Add(b)
	}
}

func messageSeeds(msgs ...[]byte) [][]byte {
	var out [][]byte
	add := func(b []byte) { out = append(out, b) }
	for _, m := range msgs {
		add(m)
		for _, i := range []int{0, 1, 2, 3, 34, 35, 36, 37, 38, len(m) - 9, len(m) - 8, len(m) - 1} {
			if i < 0 || i >= len(m) {
				continue
			}
			b := bytes.Clone(m)
			b[i] ^= 0x01
			add(b)
			b = bytes.Clone(m)
			b[i] ^= 0x80
			add(b)
		}
		for _, n := range []int{0, 1, 3, 35, len(m) / 2, len(m) - 8, len(m) - 1} {
			if n >= 0 && n <= len(m) {
				add(bytes.Clone(m[:n]))
			}
		}
		add(append(bytes.Clone(m), 0))
	}
	return out
}

func FuzzParseNormalMessage(f *testing.F) {
	pk, nm := vectorMessages(f)
	addMessageSeeds(f, nm, pk[105:], pk)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseNormalMessage(b)
		if err != nil {
			return
		}
		if got := m.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("non-canonical encoding accepted: %x", b)
		}
		// Rebuilding from the fields gives the same bytes.
		re := appendNormalHeader(nil, m.RatchetKey(), m.ChainIndex(), len(m.Ciphertext()))
		re = append(re, m.Ciphertext()...)
		re = append(re, m.mac()...)
		if !bytes.Equal(re, b) {
			t.Fatalf("fields do not re-encode to the input: %x", b)
		}
	})
}

func FuzzParsePreKeyMessage(f *testing.F) {
	pk, nm := vectorMessages(f)
	addMessageSeeds(f, pk, nm)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParsePreKeyMessage(b)
		if err != nil {
			return
		}
		if got := m.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("non-canonical encoding accepted: %x", b)
		}
		// Any field order is accepted, so compare through the canonical
		// (libolm) order: the same fields, and the same length.
		re := newPreKeyMessage(m.OneTimeKey(), m.BaseKey(), m.IdentityKey(), m.Message())
		again, err := ParsePreKeyMessage(re.Marshal())
		if err != nil || len(re.Marshal()) != len(b) || again.SessionID() != m.SessionID() ||
			!bytes.Equal(again.Message().Marshal(), m.Message().Marshal()) {
			t.Fatalf("fields do not re-encode: %x (%v)", b, err)
		}
	})
}

// FuzzSessionDecrypt checks that only the messages Alice really sent
// decrypt, and that anything else leaves Bob's session unchanged.
func FuzzSessionDecrypt(f *testing.F) {
	p := newPair(f, "fuzz-decrypt")
	// Bob replies, Alice answers on a new chain, and sends a few more, so
	// that the fuzzer can reach known chains, skipped keys and new chains.
	decryptOK(f, p.as, encrypt(f, p.bs, p.rand, "reply"), "reply")
	var legit [][]byte
	for i := range 4 {
		legit = append(legit, encrypt(f, p.as, p.rand, string(rune('a'+i))).Marshal())
	}
	decryptOK(f, p.bs, mustParse(f, legit[1]), "b") // leaves a skipped key at 0
	pre := p.firstMessage.Marshal()
	bobPickle := mustPickle(f, p.bs)

	for _, m := range legit {
		f.Add(byte(MessageTypeNormal), m)
	}
	f.Add(byte(MessageTypePreKey), pre)
	for _, b := range messageSeeds(legit[0], legit[2]) {
		f.Add(byte(MessageTypeNormal), b)
	}
	for _, b := range messageSeeds(pre) {
		f.Add(byte(MessageTypePreKey), b)
	}

	f.Fuzz(func(t *testing.T, typ byte, b []byte) {
		m, err := ParseMessage(MessageType(typ%2), b)
		if err != nil {
			return
		}
		bob, err := UnpickleSession(testPickleKey, bobPickle)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := bob.Decrypt(m)
		if err == nil {
			if MessageType(typ%2) == MessageTypeNormal && (bytes.Equal(b, legit[0]) || bytes.Equal(b, legit[2]) || bytes.Equal(b, legit[3])) {
				return
			}
			t.Fatalf("forged message decrypted to %q: %x", pt, b)
		}
		if !bytes.Equal(mustPickle(t, bob), bobPickle) {
			t.Fatalf("failed decrypt changed the session: %v", err)
		}
	})
}

func mustParse(t testing.TB, b []byte) *NormalMessage {
	t.Helper()
	m, err := ParseNormalMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzUnpickleAccount feeds arbitrary pickles, and arbitrary plaintexts
// sealed under the right key, to the account decoder: no panic, and an
// accepted plaintext re-encodes to itself.
func FuzzUnpickleAccount(f *testing.F) {
	r := newDetRand("fuzz-account")
	a, _ := NewAccount(r)
	_ = a.GenerateOneTimeKeys(r, 2)
	_ = a.GenerateFallbackKey(r)
	_ = a.GenerateFallbackKey(r)
	pt := a.marshal()
	sealed, _ := a.Pickle(testPickleKey)
	f.Add(pt)
	f.Add(sealed)
	f.Add(pt[:len(pt)-1])
	b := bytes.Clone(pt)
	b[len(b)-38] = 0 // fallback flags
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := UnpickleAccount(testPickleKey, data); err == nil && !bytes.Equal(data, sealed) {
			t.Fatal("unauthenticated pickle accepted")
		}
		s, err := seal(testPickleKey, pickleKindAccount, data)
		if err != nil {
			t.Fatal(err)
		}
		acct, err := UnpickleAccount(testPickleKey, s)
		if err != nil {
			return
		}
		if got := acct.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("account encoding not canonical: %x", data)
		}
	})
}

// FuzzUnpickleSession is FuzzUnpickleAccount for sessions.
func FuzzUnpickleSession(f *testing.F) {
	p := newPair(f, "fuzz-session")
	decryptOK(f, p.as, encrypt(f, p.bs, p.rand, "x"), "x")
	_ = encrypt(f, p.bs, p.rand, "skipped")
	decryptOK(f, p.as, encrypt(f, p.bs, p.rand, "y"), "y")
	for _, s := range []*Session{p.as, p.bs} {
		f.Add(s.marshal())
		f.Add(mustPickle(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = UnpickleSession(testPickleKey, data)
		s, err := seal(testPickleKey, pickleKindSession, data)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := UnpickleSession(testPickleKey, s)
		if err != nil {
			return
		}
		if got := sess.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("session encoding not canonical: %x", data)
		}
		// A restored session must be usable without panicking.
		_, _ = sess.Encrypt(newDetRand("e"), []byte("x"))
	})
}
