package megolm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"myelin/keys"
)

var testPickleKey = seq(0xa0, 32)

func newOutbound(t testing.TB, seed byte) *OutboundSession {
	t.Helper()
	o, err := NewOutboundSession(bytes.NewReader(seq(seed, OutboundRandomSize)))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func newPair(t testing.TB, seed byte) (*OutboundSession, *InboundSession) {
	t.Helper()
	o := newOutbound(t, seed)
	in, err := NewInboundSession(o.SessionKey())
	if err != nil {
		t.Fatal(err)
	}
	return o, in
}

// state returns a copy of the whole inbound state, caches included; the
// struct holds only arrays and scalars, so copies compare with ==.
func state(s *InboundSession) InboundSession { return *s }

// resign replaces the signature of msg (whose last 64 bytes are a
// signature) with a valid one by o, so that tests reach the checks behind
// the signature.
func resign(o *OutboundSession, msg []byte) []byte {
	body := append([]byte(nil), msg[:len(msg)-signatureSize]...)
	sig := o.signing.Sign(body).Array()
	return append(body, sig[:]...)
}

// build makes a validly MACed and signed message for ciphertext at index,
// from r0, a copy of o's ratchet taken at or before index.
func build(o *OutboundSession, r0 ratchet, index uint32, ciphertext []byte) []byte {
	r := r0
	r.advanceTo(index)
	k := deriveMessageKeys(&r)
	b := appendHeader(nil, index, len(ciphertext))
	b = append(b, ciphertext...)
	mac := k.MAC(b)
	b = append(b, mac[:]...)
	sig := o.signing.Sign(b).Array()
	return append(b, sig[:]...)
}

// genuine makes a valid message at index from r0, a copy of o's ratchet
// taken at or before index.
func genuine(o *OutboundSession, r0 ratchet, index uint32, pt []byte) []byte {
	r := r0
	r.advanceTo(index)
	k := deriveMessageKeys(&r)
	return build(o, r0, index, k.Encrypt(nil, pt))
}

func TestRoundTrip(t *testing.T) {
	o, in := newPair(t, 1)
	var msgs [][]byte
	var pts [][]byte
	for i, n := range []int{0, 1, 15, 16, 17, 255, 1024, 4000} {
		if o.MessageIndex() != uint32(i) {
			t.Fatalf("index %d before message %d", o.MessageIndex(), i)
		}
		pt := seq(byte(i), n)
		pts = append(pts, pt)
		msgs = append(msgs, o.Encrypt(pt))
	}
	// Reverse, then forward again: every index stays decryptable.
	for pass := range 2 {
		for j := range msgs {
			i := j
			if pass == 0 {
				i = len(msgs) - 1 - j
			}
			got, idx, err := in.Decrypt(msgs[i])
			if err != nil || idx != uint32(i) || !bytes.Equal(got, pts[i]) {
				t.Fatalf("pass %d message %d: idx %d err %v", pass, i, idx, err)
			}
			m, err := ParseMessage(msgs[i])
			if err != nil || m.Index() != uint32(i) || !bytes.Equal(m.Marshal(), msgs[i]) {
				t.Fatalf("message %d: parse/marshal round trip failed: %v", i, err)
			}
		}
	}
	// A session key taken later starts there.
	later, err := NewInboundSession(o.SessionKey())
	if err != nil {
		t.Fatal(err)
	}
	if later.FirstKnownIndex() != uint32(len(msgs)) {
		t.Fatalf("later session starts at %d", later.FirstKnownIndex())
	}
	msg := o.Encrypt([]byte("next"))
	if got, _, err := later.Decrypt(msg); err != nil || string(got) != "next" {
		t.Fatalf("later session: %q %v", got, err)
	}
}

func TestDecryptRejects(t *testing.T) {
	o := newOutbound(t, 2)
	r0 := o.ratchet
	sk := o.SessionKey()
	msg0 := o.Encrypt([]byte("zero"))
	msg1 := o.Encrypt([]byte("one"))
	other := newOutbound(t, 3)
	foreign := other.Encrypt([]byte("zero"))

	pm, err := ParseMessage(msg1)
	if err != nil {
		t.Fatal(err)
	}
	ct1 := pm.Ciphertext()

	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		if i < 0 {
			i += len(c)
		}
		c[i] ^= 0x01
		return c
	}
	// A MAC byte flipped behind a valid signature.
	badMAC := resign(o, flip(msg1, -signatureSize-1))
	// A ciphertext byte flipped, MAC left alone, signature valid.
	badCT := resign(o, flip(msg1, 6))
	// Index 1's ciphertext and MAC claimed at index 5 (above the cache).
	wrongIndex := appendHeader(nil, 5, len(ct1))
	wrongIndex = append(wrongIndex, ct1...)
	wrongIndex = append(wrongIndex, msg1[len(msg1)-suffixSize:]...)
	wrongIndex = resign(o, wrongIndex)
	// Bad padding behind a valid MAC and signature: a raw block of zeros.
	var rz ratchet = r0
	rz.advanceTo(1)
	kz := deriveMessageKeys(&rz)
	raw := make([]byte, 16) // decrypts to garbage with (almost surely) bad padding
	badPad := build(o, r0, 1, raw)
	// Make sure the chosen block really has bad padding.
	if _, err := kz.Decrypt(raw); err == nil {
		t.Fatal("test block happens to have valid padding")
	}
	// Over-long varint for index 1 (0x81 0x00), re-signed.
	overlong := resign(o, append(append([]byte{MessageVersion, tagIndex, 0x81, 0x00}, msg1[3:len(msg1)-signatureSize]...), make([]byte, signatureSize)...))
	// Trailing garbage inside the signed part: an extra field.
	extraField := resign(o, append(append(append([]byte(nil), msg1[:len(msg1)-suffixSize]...), 0x18, 0x01), msg1[len(msg1)-suffixSize:]...))

	tests := []struct {
		name  string
		msg   []byte
		first uint32 // first known index of the receiving session
		want  error
		warm  bool // decrypt a message at index 5 first, so that the cache is ahead
	}{
		{"bad signature", flip(msg1, -1), 0, ErrBadSignature, false},
		{"signature over other bytes", flip(msg1, 10), 0, ErrBadSignature, false},
		{"message from a different session", foreign, 0, ErrBadSignature, false},
		{"bad MAC", badMAC, 0, ErrBadMAC, false},
		{"tampered ciphertext", badCT, 0, ErrBadMAC, false},
		{"index changed", wrongIndex, 0, ErrBadMAC, false},
		{"bad padding behind a valid MAC", badPad, 0, ErrInvalidMessage, false},
		{"over-long varint", overlong, 0, ErrInvalidMessage, false},
		{"extra field", extraField, 0, ErrInvalidMessage, false},
		{"truncated by one", msg1[:len(msg1)-1], 0, ErrInvalidMessage, false},
		{"truncated to the suffix", msg1[len(msg1)-suffixSize-1:], 0, ErrBadVersion, false},
		{"truncated to the version", msg1[:1], 0, ErrInvalidMessage, false},
		{"empty", nil, 0, ErrInvalidMessage, false},
		{"version 4", append([]byte{4}, msg1[1:]...), 0, ErrBadVersion, false},
		{"version 2", append([]byte{2}, msg1[1:]...), 0, ErrBadVersion, false},
		{"oversized", append([]byte{MessageVersion}, make([]byte, MaxMessageSize)...), 0, ErrMessageTooLarge, false},
		{"before first known index", msg0, 1, ErrUnknownMessageIndex, false},
		{"bad MAC below the cache", resign(o, flip(genuine(o, r0, 3, []byte("3")), -signatureSize-1)), 0, ErrBadMAC, true},
		{"bad MAC above the cache", resign(o, flip(genuine(o, r0, 7, []byte("7")), -signatureSize-1)), 0, ErrBadMAC, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := NewInboundSession(sk)
			if err != nil {
				t.Fatal(err)
			}
			if tc.first > 0 {
				e, err := in.Export(tc.first)
				if err != nil {
					t.Fatal(err)
				}
				in, _ = ImportInboundSession(e)
			}
			if tc.warm {
				if _, _, err := in.Decrypt(genuine(o, r0, 5, []byte("5"))); err != nil {
					t.Fatal(err)
				}
			}
			before := state(in)
			pt, idx, err := in.Decrypt(tc.msg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if pt != nil || idx != 0 {
				t.Fatalf("failed decrypt returned plaintext %q / index %d", pt, idx)
			}
			if state(in) != before {
				t.Fatal("failed decrypt changed the session state")
			}
			if !strings.HasPrefix(err.Error(), "megolm: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			// Still decrypts the genuine message afterwards.
			if _, _, err := in.Decrypt(msg1); err != nil {
				t.Fatalf("genuine message after failure: %v", err)
			}
		})
	}

	t.Run("unknown index detail", func(t *testing.T) {
		e, _ := NewInboundSession(sk)
		ex, _ := e.Export(1)
		in, _ := ImportInboundSession(ex)
		_, _, err := in.Decrypt(msg0)
		var ue *UnknownMessageIndexError
		if !errors.As(err, &ue) || ue.Index != 0 || ue.FirstKnownIndex != 1 {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestDecryptAnyOrder decrypts the same messages in patterns that exercise
// every choice of starting ratchet: forward, again from the start, backwards
// (history pagination), interleaved old and new, and shuffled.
func TestDecryptAnyOrder(t *testing.T) {
	o, in := newPair(t, 0x0c)
	const n = 300
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = o.Encrypt(fmt.Appendf(nil, "%d", i))
	}
	var order []int
	for i := range n {
		order = append(order, i) // forward
	}
	for i := range n {
		order = append(order, i) // again from the start
	}
	for i := n - 1; i >= 0; i-- {
		order = append(order, i) // backwards
	}
	for i := range n / 2 {
		order = append(order, i, n/2+i) // interleaved
	}
	x := uint32(1)
	for range n {
		x = x*1103515245 + 12345 // shuffled (a fixed LCG)
		order = append(order, int(x>>8)%n)
	}
	for _, i := range order {
		pt, idx, err := in.Decrypt(msgs[i])
		if err != nil || idx != uint32(i) || string(pt) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q %d %v", i, pt, idx, err)
		}
		if in.latest.counter < in.recent.counter || in.recent.counter < in.initial.counter {
			t.Fatalf("caches out of order: %d %d %d", in.initial.counter, in.recent.counter, in.latest.counter)
		}
	}
}

func TestSessionKeyRejects(t *testing.T) {
	o := newOutbound(t, 4)
	good := o.SessionKey().Marshal()
	in, _ := NewInboundSession(o.SessionKey())
	exp, _ := in.Export(0)
	goodExp := exp.Marshal()
	flip := func(b []byte, i int) string {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return keys.EncodeBase64(c)
	}
	tests := []struct {
		name string
		s    string
		want error
	}{
		{"tampered signature", flip(good, SessionKeySize-1), ErrBadSignature},
		{"tampered ratchet", flip(good, 20), ErrBadSignature},
		{"tampered index", flip(good, 4), ErrBadSignature},
		{"tampered signing key", flip(good, ExportedSessionKeySize-1), ErrBadSignature},
		{"export format", keys.EncodeBase64(goodExp), ErrInvalidSessionKey},
		{"wrong version", flip(good, 0), ErrBadVersion},
		{"truncated", keys.EncodeBase64(good[:SessionKeySize-1]), ErrInvalidSessionKey},
		{"extended", keys.EncodeBase64(append(good, 0)), ErrInvalidSessionKey},
		{"not base64", "!" + keys.EncodeBase64(good)[1:], ErrInvalidSessionKey},
		{"oversized", strings.Repeat("A", 1<<20), ErrInvalidSessionKey},
		{"empty", "", ErrInvalidSessionKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSessionKey(tc.s); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	expTests := []struct {
		name string
		s    string
		want error
	}{
		{"sharing format", keys.EncodeBase64(good), ErrInvalidSessionKey},
		{"wrong version", flip(goodExp, 0), ErrBadVersion},
		{"truncated", keys.EncodeBase64(goodExp[:ExportedSessionKeySize-1]), ErrInvalidSessionKey},
		{"oversized", strings.Repeat("A", 1<<20), ErrInvalidSessionKey},
	}
	for _, tc := range expTests {
		t.Run("exported/"+tc.name, func(t *testing.T) {
			if _, err := ParseExportedSessionKey(tc.s); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("padded base64 accepted", func(t *testing.T) {
		s := keys.EncodeBase64(good)
		padded := s + strings.Repeat("=", (4-len(s)%4)%4)
		if padded == s {
			t.Fatal("test key needs no padding")
		}
		k, err := ParseSessionKey(padded)
		if err != nil || k.String() != s {
			t.Fatalf("padded: %v", err)
		}
		e := keys.EncodeBase64(goodExp)
		ek, err := ParseExportedSessionKey(e + strings.Repeat("=", (4-len(e)%4)%4))
		if err != nil || ek.String() != e {
			t.Fatalf("padded export: %v", err)
		}
	})
	t.Run("zero values", func(t *testing.T) {
		if _, err := NewInboundSession(SessionKey{}); !errors.Is(err, ErrInvalidSessionKey) {
			t.Fatalf("zero SessionKey: %v", err)
		}
		if _, err := ImportInboundSession(ExportedSessionKey{}); !errors.Is(err, ErrInvalidSessionKey) {
			t.Fatalf("zero ExportedSessionKey: %v", err)
		}
		if (SessionKey{}).Marshal() != nil || (ExportedSessionKey{}).Marshal() != nil {
			t.Fatal("zero keys marshal to bytes")
		}
	})
}

func TestExport(t *testing.T) {
	o, in := newPair(t, 5)
	var msgs [][]byte
	for i := range 10 {
		msgs = append(msgs, o.Encrypt(fmt.Appendf(nil, "m%d", i)))
	}
	e, err := in.Export(4)
	if err != nil || e.Index() != 4 || e.ID() != o.ID() {
		t.Fatalf("export: %v", err)
	}
	imp, _ := ImportInboundSession(e)
	for i, m := range msgs {
		_, _, err := imp.Decrypt(m)
		if (i < 4) != errors.Is(err, ErrUnknownMessageIndex) || (i >= 4 && err != nil) {
			t.Fatalf("imported at 4, message %d: %v", i, err)
		}
	}
	if _, err := imp.Export(3); !errors.Is(err, ErrIndexTooLow) {
		t.Fatalf("export below first known: %v", err)
	}
	// Export is independent of the cache: from a session that decrypted
	// index 9, exporting 5 still works and equals the export from index 0.
	e5a, _ := imp.Export(5)
	e5b, _ := in.Export(5)
	if e5a.String() != e5b.String() {
		t.Fatal("exports at the same index differ")
	}
}

func TestCompareMerge(t *testing.T) {
	o, in0 := newPair(t, 6)
	for range 3 {
		o.Encrypt([]byte("x"))
	}
	in3, _ := NewInboundSession(o.SessionKey())
	e1, _ := in0.Export(1)
	imp1, _ := ImportInboundSession(e1)
	_, otherIn := newPair(t, 7)

	// Same signing key, unrelated ratchet: an attacker's forged export.
	forged := e1
	forged.k.ratchet.data[0] ^= 1
	impForged, _ := ImportInboundSession(forged)
	// Same ratchet bytes under a different signing key.
	rekeyed := e1
	rekeyed.k.signingKey = otherIn.SigningKey()
	impRekeyed, _ := ImportInboundSession(rekeyed)

	tests := []struct {
		name string
		a, b *InboundSession
		want Comparison
	}{
		{"lower index is better", in0, in3, Better},
		{"higher index is worse", in3, in0, Worse},
		{"export vs original", imp1, in0, Worse},
		{"equal", in0, in0, Equal},
		{"different session", in0, otherIn, Unconnected},
		{"forged ratchet", impForged, in3, Unconnected},
		{"forged ratchet, lower side", in0, impForged, Unconnected},
		{"different signing key", impRekeyed, in0, Unconnected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ba, bb := state(tc.a), state(tc.b)
			if got := tc.a.Compare(tc.b); got != tc.want {
				t.Fatalf("Compare = %v, want %v", got, tc.want)
			}
			if state(tc.a) != ba || state(tc.b) != bb {
				t.Fatal("Compare changed a session")
			}
		})
	}

	// Merging an unverified lower-index export with a verified later key
	// gives a verified session at the lower index.
	if imp1.SigningKeyVerified() || !in3.SigningKeyVerified() {
		t.Fatal("verification flags wrong before merge")
	}
	for _, pair := range [][2]*InboundSession{{imp1, in3}, {in3, imp1}} {
		m, err := pair[0].Merge(pair[1])
		if err != nil {
			t.Fatal(err)
		}
		if m.FirstKnownIndex() != 1 || !m.SigningKeyVerified() || m.Compare(imp1) != Equal {
			t.Fatalf("merge: first %d verified %t", m.FirstKnownIndex(), m.SigningKeyVerified())
		}
	}
	// Two unverified copies stay unverified.
	e2, _ := in0.Export(2)
	imp2, _ := ImportInboundSession(e2)
	if m, err := imp1.Merge(imp2); err != nil || m.SigningKeyVerified() {
		t.Fatalf("unverified merge: %v", err)
	}
	// An unconnected session never merges.
	for _, bad := range []*InboundSession{impForged, impRekeyed, otherIn} {
		if m, err := in3.Merge(bad); !errors.Is(err, ErrUnconnected) || m != nil {
			t.Fatalf("unconnected merge: %v", err)
		}
	}
	if s := Better.String() + Worse.String() + Equal.String() + Unconnected.String(); s != "betterworseequalunconnected" {
		t.Fatal(s)
	}
}

// TestIndexLimits pins the behaviour near 2^32 (see doc.go "Indices").
func TestIndexLimits(t *testing.T) {
	o, in0 := newPair(t, 8)
	// Jump the sender close to the end (tests only: senders step one by one).
	o.ratchet.advanceTo(0xfffffffe)
	late, _ := NewInboundSession(o.SessionKey())
	m1 := o.Encrypt([]byte("penultimate"))
	m2 := o.Encrypt([]byte("last"))
	if !o.Exhausted() || o.MessageIndex() != 0xffffffff {
		t.Fatalf("exhausted %t index %#x", o.Exhausted(), o.MessageIndex())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Encrypt on an exhausted session did not panic")
			}
		}()
		o.Encrypt([]byte("one too many"))
	}()
	for _, in := range []*InboundSession{in0, late} {
		for i, m := range [][]byte{m1, m2} {
			pt, idx, err := in.Decrypt(m)
			if err != nil || idx != 0xfffffffe+uint32(i) || len(pt) == 0 {
				t.Fatalf("first %#x: decrypt %d: idx %#x %v", in.FirstKnownIndex(), i, idx, err)
			}
		}
	}
	// libolm's 2^31 window would refuse this jump; we accept it.
	if e, err := in0.Export(0x80000000); err != nil || e.Index() != 0x80000000 {
		t.Fatalf("export at 2^31: %v", err)
	}
	// A message whose index wrapped past 2^32 (libolm would accept it
	// relative to a first known index near the top) is refused.
	wrapped := build(o, late.initial, 5, make([]byte, 16))
	if _, _, err := late.Decrypt(wrapped); !errors.Is(err, ErrUnknownMessageIndex) {
		t.Fatalf("wrapped index: %v", err)
	}
	// Pickling keeps the exhausted flag.
	p, err := o.Pickle(testPickleKey)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := UnpickleOutboundSession(testPickleKey, p)
	if err != nil || !o2.Exhausted() {
		t.Fatalf("unpickled exhausted session: %v", err)
	}
}

func TestPickle(t *testing.T) {
	o, in := newPair(t, 9)
	msgs := [][]byte{o.Encrypt([]byte("a")), o.Encrypt([]byte("b")), o.Encrypt([]byte("c"))}
	if _, _, err := in.Decrypt(msgs[1]); err != nil {
		t.Fatal(err)
	}
	in.verified = false // cover the flag both ways below
	op, err := o.Pickle(testPickleKey)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := in.Pickle(testPickleKey)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := UnpickleOutboundSession(testPickleKey, op)
	if err != nil {
		t.Fatal(err)
	}
	in2, err := UnpickleInboundSession(testPickleKey, ip)
	if err != nil {
		t.Fatal(err)
	}
	if o2.ID() != o.ID() || o2.MessageIndex() != 3 || in2.FirstKnownIndex() != 0 || in2.SigningKeyVerified() {
		t.Fatal("unpickled state differs")
	}
	if in2.latest.counter != 1 {
		t.Fatalf("cache not kept: %d", in2.latest.counter)
	}
	// Both continue identically.
	a, b := o.Encrypt([]byte("d")), o2.Encrypt([]byte("d"))
	if !bytes.Equal(a, b) {
		t.Fatal("unpickled outbound session encrypts differently")
	}
	for _, m := range append(msgs, a) {
		if _, _, err := in2.Decrypt(m); err != nil {
			t.Fatal(err)
		}
	}

	wrongKey := seq(0xb0, 32)
	tests := []struct {
		name string
		key  []byte
		data []byte
		in   bool
		want error
	}{
		{"wrong key", wrongKey, ip, true, ErrInvalidPickle},
		{"short key", testPickleKey[:31], ip, true, ErrBadPickleKey},
		{"inbound as outbound", testPickleKey, ip, false, ErrInvalidPickle},
		{"outbound as inbound", testPickleKey, op, true, ErrInvalidPickle},
		{"unknown version", testPickleKey, append([]byte{2}, ip[1:]...), true, ErrUnknownPickleVersion},
		{"truncated", testPickleKey, ip[:len(ip)-1], true, ErrInvalidPickle},
		{"extended", testPickleKey, append(append([]byte(nil), ip...), 0), true, ErrInvalidPickle},
		{"empty", testPickleKey, nil, true, ErrInvalidPickle},
		{"oversized", testPickleKey, make([]byte, 1<<20), true, ErrInvalidPickle},
	}
	for i := range ip {
		c := append([]byte(nil), ip...)
		c[i] ^= 0x80
		want := ErrInvalidPickle
		if i == 0 {
			want = ErrUnknownPickleVersion
		}
		tests = append(tests, struct {
			name string
			key  []byte
			data []byte
			in   bool
			want error
		}{fmt.Sprintf("bit flip at %d", i), testPickleKey, c, true, want})
	}
	for _, tc := range tests {
		var err error
		if tc.in {
			_, err = UnpickleInboundSession(tc.key, tc.data)
		} else {
			_, err = UnpickleOutboundSession(tc.key, tc.data)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := o.Pickle(nil); !errors.Is(err, ErrBadPickleKey) {
		t.Fatalf("Pickle with no key: %v", err)
	}
	// Pickles are deterministic (equal state, equal bytes) and do not
	// contain the ratchet in the clear.
	ip2, _ := in.Pickle(testPickleKey)
	if !bytes.Equal(ip, ip2) || bytes.Contains(ip, in.initial.data[:16]) {
		t.Fatal("pickle not deterministic or leaks the ratchet")
	}
}
