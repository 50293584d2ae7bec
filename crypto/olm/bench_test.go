package olm

import (
	"bytes"
	"fmt"
	"testing"

	"myelin/keys"
)

// BenchmarkX25519 is the primitive floor: one X25519 scalar multiplication
// through package keys. Outbound session set-up needs five (two public keys,
// three DH), inbound three.
func BenchmarkX25519(b *testing.B) {
	sk, _ := keys.NewCurve25519SecretKey(seq(1, 32))
	other, _ := keys.NewCurve25519SecretKey(seq(2, 32))
	pub := other.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sk.SharedSecret(pub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOutbound(b *testing.B) {
	r := newDetRand("bench-outbound")
	alice, _ := NewAccount(r)
	bob, _ := NewAccount(r)
	_ = bob.GenerateOneTimeKeys(r, 1)
	bc, _ := bob.IdentityKeys()
	otk := bob.OneTimeKeys()[0].Key
	b.ReportAllocs()
	for b.Loop() {
		if _, err := alice.NewOutboundSession(r, bc, otk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInbound(b *testing.B) {
	r := newDetRand("bench-inbound")
	alice, _ := NewAccount(r)
	bob, _ := NewAccount(r)
	ac, _ := alice.IdentityKeys()
	bc, _ := bob.IdentityKeys()
	// A fallback key is not consumed, so one pre-key message can be
	// accepted again and again.
	_ = bob.GenerateFallbackKey(r)
	fb, _ := bob.FallbackKey()
	s, _ := alice.NewOutboundSession(r, bc, fb.Key)
	m, _ := s.Encrypt(r, []byte("hello"))
	pk := m.(*PreKeyMessage)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := bob.NewInboundSession(ac, pk); err != nil {
			b.Fatal(err)
		}
	}
}

var benchSizes = []int{100, 1024}

func BenchmarkEncrypt(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			p := newPair(b, "bench-encrypt")
			decryptOK(b, p.as, encrypt(b, p.bs, p.rand, "x"), "x")
			encrypt(b, p.as, p.rand, "ratchet") // Alice now has a sender chain
			pt := bytes.Repeat([]byte{'a'}, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.as.Encrypt(nil, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	const batch = 1000
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			p := newPair(b, "bench-decrypt")
			decryptOK(b, p.as, encrypt(b, p.bs, p.rand, "x"), "x")
			decryptOK(b, p.bs, encrypt(b, p.as, p.rand, "y"), "y")
			start := mustPickle(b, p.bs)
			pt := string(bytes.Repeat([]byte{'a'}, size))
			msgs := make([]Message, batch)
			for i := range msgs {
				msgs[i] = encrypt(b, p.as, p.rand, pt)
			}
			bob := p.bs
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == batch { // messages are used up: restore Bob (amortised)
					bob, _ = UnpickleSession(testPickleKey, start)
					i = 0
				}
				if _, err := bob.Decrypt(msgs[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkPingPong alternates directions, so every message ratchets.
func BenchmarkPingPong(b *testing.B) {
	p := newPair(b, "bench-pingpong")
	pt := bytes.Repeat([]byte{'a'}, 1024)
	from, to := p.bs, p.as
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		m, err := from.Encrypt(p.rand, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.Decrypt(m); err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
}

func BenchmarkGenerateOneTimeKeys(b *testing.B) {
	r := newDetRand("bench-otk")
	a, _ := NewAccount(r)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.GenerateOneTimeKeys(r, 50); err != nil {
			b.Fatal(err)
		}
		a.MarkKeysAsPublished()
	}
}
