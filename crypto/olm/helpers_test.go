package olm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"myelin/keys"
)

// detRand is a deterministic byte stream (SHA-256 in counter mode) so tests
// are reproducible.
type detRand struct {
	seed [32]byte
	ctr  uint64
	buf  []byte
	n    int // bytes read so far
}

func newDetRand(label string) *detRand { return &detRand{seed: sha256.Sum256([]byte(label))} }

func (r *detRand) Read(p []byte) (int, error) {
	for i := range p {
		if len(r.buf) == 0 {
			var in [40]byte
			copy(in[:], r.seed[:])
			binary.BigEndian.PutUint64(in[32:], r.ctr)
			r.ctr++
			s := sha256.Sum256(in[:])
			r.buf = s[:]
		}
		p[i] = r.buf[0]
		r.buf = r.buf[1:]
	}
	r.n += len(p)
	return len(p), nil
}

var testPickleKey = bytes.Repeat([]byte{0x42}, 32)

type pair struct {
	alice, bob   *Account
	aliceCurve   keys.Curve25519PublicKey
	bobCurve     keys.Curve25519PublicKey
	as, bs       *Session // alice's outbound, bob's inbound
	rand         *detRand
	firstMessage *PreKeyMessage
}

// newPair sets up Alice and Bob with an established session: Alice sent
// one pre-key message that Bob decrypted.
func newPair(t testing.TB, label string) *pair {
	t.Helper()
	r := newDetRand(label)
	p := &pair{rand: r}
	var err error
	if p.alice, err = NewAccount(r); err != nil {
		t.Fatal(err)
	}
	if p.bob, err = NewAccount(r); err != nil {
		t.Fatal(err)
	}
	p.aliceCurve, _ = p.alice.IdentityKeys()
	p.bobCurve, _ = p.bob.IdentityKeys()
	if err := p.bob.GenerateOneTimeKeys(r, 1); err != nil {
		t.Fatal(err)
	}
	otk := p.bob.OneTimeKeys()[0]
	if p.as, err = p.alice.NewOutboundSession(r, p.bobCurve, otk.Key); err != nil {
		t.Fatal(err)
	}
	m, err := p.as.Encrypt(r, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	p.firstMessage = m.(*PreKeyMessage)
	var pt []byte
	if p.bs, pt, err = p.bob.NewInboundSession(p.aliceCurve, p.firstMessage); err != nil {
		t.Fatal(err)
	}
	if string(pt) != "hello" {
		t.Fatalf("first plaintext %q", pt)
	}
	return p
}

func encrypt(t testing.TB, s *Session, r *detRand, pt string) Message {
	t.Helper()
	m, err := s.Encrypt(r, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func decryptOK(t testing.TB, s *Session, m Message, want string) {
	t.Helper()
	pt, err := s.Decrypt(m)
	if err != nil {
		t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("decrypt = %q, want %q", pt, want)
	}
}

func mustPickle(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.Pickle(testPickleKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decryptFails checks that decrypting m fails with want and leaves s
// exactly as it was (compared through its deterministic pickle).
func decryptFails(t testing.TB, s *Session, m Message, want error) {
	t.Helper()
	before := mustPickle(t, s)
	pt, err := s.Decrypt(m)
	if err == nil {
		t.Fatalf("decrypt succeeded (%q), want %v", pt, want)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("decrypt err = %v, want %v", err, want)
	}
	if pt != nil {
		t.Fatal("plaintext returned with an error")
	}
	if after := mustPickle(t, s); !bytes.Equal(before, after) {
		t.Fatalf("session changed by a failed decrypt (%v)", err)
	}
}
