package interop

// Side-by-side benchmarks: myelin, goolm and libolm doing the same work,
// named .../impl=NAME/... so that benchstat -col /impl puts them in columns
// (scripts/bench.sh). Each implementation gets its natural input form,
// prepared outside the timed loop: raw bytes for myelin, base64 for goolm
// and libolm. libolm's C allocations are not counted by -benchmem.

import (
	"fmt"
	"io"
	"testing"

	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/goolm/session"
	mautrixolm "maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/id"

	"myelin/crypto/megolm"
	"myelin/crypto/olm"
	"myelin/interop/libolm"
	"myelin/keys"
)

var benchImpls = []string{"myelin", "goolm", "libolm"}

func benchPlaintext(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// chk turns a (value, error) result into a value, failing the benchmark or
// test on error: chk(f())(b).
func chk[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

func mustRead(b *testing.B, r io.Reader, n int) []byte {
	b.Helper()
	return chk(read(r, n))(b)
}

func BenchmarkMegolmEncrypt(b *testing.B) {
	for _, im := range benchImpls {
		for _, size := range []int{100, 1024} {
			b.Run(fmt.Sprintf("impl=%s/size=%d", im, size), func(b *testing.B) {
				pt := benchPlaintext(size)
				var enc func()
				switch im {
				case "myelin":
					o := chk(megolm.NewOutboundSession(detRand(1)))(b)
					enc = func() { o.Encrypt(pt) }
				case "goolm":
					o := chk(session.NewMegolmOutboundSession())(b)
					enc = func() { chk(o.Encrypt(pt))(b) }
				case "libolm":
					o := chk(libolm.NewOutboundGroupSession(mustRead(b, detRand(1), libolm.OutboundGroupSessionRandomLength)))(b)
					defer o.Free()
					enc = func() { chk(o.Encrypt(pt))(b) }
				}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					enc()
				}
			})
		}
	}
}

func BenchmarkMegolmDecrypt(b *testing.B) {
	for _, im := range benchImpls {
		for _, size := range []int{100, 1024} {
			b.Run(fmt.Sprintf("impl=%s/size=%d", im, size), func(b *testing.B) {
				// The same 512 messages (from libolm) for every
				// implementation, decrypted in order and then again from
				// the start, so each decryption advances the ratchet once.
				src := chk(libolm.NewOutboundGroupSession(mustRead(b, detRand(2), libolm.OutboundGroupSessionRandomLength)))(b)
				defer src.Free()
				key := chk(src.Key())(b)
				pt := benchPlaintext(size)
				msgs := make([]string, 512)
				for i := range msgs {
					msgs[i] = chk(src.Encrypt(pt))(b)
				}
				var dec func(i int)
				switch im {
				case "myelin":
					s := chk(megolm.NewInboundSession(chk(megolm.ParseSessionKey(key))(b)))(b)
					raw := make([][]byte, len(msgs))
					for i, m := range msgs {
						raw[i] = b64(m)
					}
					dec = func(i int) {
						if _, _, err := s.Decrypt(raw[i]); err != nil {
							b.Fatal(err)
						}
					}
				case "goolm":
					s := chk(session.NewMegolmInboundSession([]byte(key)))(b)
					in := make([][]byte, len(msgs))
					for i, m := range msgs {
						in[i] = []byte(m)
					}
					dec = func(i int) {
						if _, _, err := s.Decrypt(in[i]); err != nil {
							b.Fatal(err)
						}
					}
				case "libolm":
					s := chk(libolm.NewInboundGroupSession(key))(b)
					defer s.Free()
					dec = func(i int) {
						if _, _, err := s.Decrypt(msgs[i]); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				i := 0
				for b.Loop() {
					dec(i % len(msgs))
					i++
				}
			})
		}
	}
}

// benchBob is the responder's identity and one one-time key, from libolm.
func benchBob(b *testing.B) (ik, otk string) {
	b.Helper()
	bob := chk(libolm.NewAccount(seq(0x80, 64)))(b)
	defer bob.Free()
	if err := bob.GenerateOneTimeKeys(1, seq(0xC0, 32)); err != nil {
		b.Fatal(err)
	}
	ik, _ = mustB2(b)(bob.IdentityKeys())
	for _, k := range chk(bob.OneTimeKeys())(b) {
		otk = k
	}
	return ik, otk
}

func mustB2(b *testing.B) func(x, y string, err error) (string, string) {
	return func(x, y string, err error) (string, string) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
		return x, y
	}
}

func BenchmarkOlmOutboundSession(b *testing.B) {
	for _, im := range benchImpls {
		b.Run("impl="+im, func(b *testing.B) {
			ik, otk := benchBob(b)
			var op func()
			switch im {
			case "myelin":
				rnd := detRand(3)
				a := chk(olm.NewAccount(rnd))(b)
				pik := chk(keys.ParseCurve25519PublicKey(ik))(b)
				potk := chk(keys.ParseCurve25519PublicKey(otk))(b)
				op = func() { chk(a.NewOutboundSession(rnd, pik, potk))(b) }
			case "goolm":
				a := chk(account.NewAccount())(b)
				op = func() { chk(a.NewOutboundSession(id.Curve25519(ik), id.Curve25519(otk)))(b) }
			case "libolm":
				rnd := detRand(3)
				a := chk(libolm.NewAccount(mustRead(b, rnd, libolm.AccountRandomLength)))(b)
				defer a.Free()
				r := make([]byte, libolm.OutboundSessionRandomLength)
				op = func() {
					mustRead2(b, rnd, r)
					chk(a.NewOutboundSession(ik, otk, r))(b).Free()
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				op()
			}
		})
	}
}

func mustRead2(b *testing.B, r io.Reader, p []byte) {
	if _, err := io.ReadFull(r, p); err != nil {
		b.Fatal(err)
	}
}

// inboundPool makes pre-key messages (from a libolm sender) to n fresh
// one-time keys of the responder under test.
type inboundPool struct {
	alice   *libolm.Account
	aliceIK string
	rnd     io.Reader
}

func newInboundPool(b *testing.B) *inboundPool {
	rnd := detRand(4)
	a := chk(libolm.NewAccount(mustRead(b, rnd, libolm.AccountRandomLength)))(b)
	ik, _ := mustB2(b)(a.IdentityKeys())
	return &inboundPool{alice: a, aliceIK: ik, rnd: rnd}
}

func (p *inboundPool) preKeys(b *testing.B, bobIK string, otks []string) []string {
	out := make([]string, len(otks))
	for i, otk := range otks {
		s := chk(p.alice.NewOutboundSession(bobIK, otk, mustRead(b, p.rnd, libolm.OutboundSessionRandomLength)))(b)
		_, m, err := s.Encrypt([]byte("hello"), nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Free()
		out[i] = m
	}
	return out
}

func BenchmarkOlmInboundSession(b *testing.B) {
	const batch = 50
	for _, im := range benchImpls {
		b.Run("impl="+im, func(b *testing.B) {
			pool := newInboundPool(b)
			defer pool.alice.Free()
			// refill generates batch one-time keys at the responder and
			// pre-key messages to them; op consumes one (create the
			// session, decrypt the message, remove the one-time key).
			var refill func() int
			var op func(i int)
			switch im {
			case "myelin":
				rnd := detRand(5)
				bob := chk(olm.NewAccount(rnd))(b)
				aik := chk(keys.ParseCurve25519PublicKey(pool.aliceIK))(b)
				var msgs []*olm.PreKeyMessage
				refill = func() int {
					if err := bob.GenerateOneTimeKeys(rnd, batch); err != nil {
						b.Fatal(err)
					}
					var otks []string
					for _, k := range bob.OneTimeKeys() {
						otks = append(otks, k.Key.String())
					}
					bob.MarkKeysAsPublished()
					bik, _ := bob.IdentityKeys()
					msgs = msgs[:0]
					for _, m := range pool.preKeys(b, bik.String(), otks) {
						msgs = append(msgs, chk(olm.ParsePreKeyMessage(b64(m)))(b))
					}
					return len(msgs)
				}
				op = func(i int) { chk(fst(bob.NewInboundSession(aik, msgs[i])))(b) }
			case "goolm":
				bob := chk(account.NewAccount())(b)
				aik := id.Curve25519(pool.aliceIK)
				var msgs []string
				refill = func() int {
					if err := bob.GenOneTimeKeys(batch); err != nil {
						b.Fatal(err)
					}
					var otks []string
					for _, k := range chk(bob.OneTimeKeys())(b) {
						otks = append(otks, string(k))
					}
					bob.MarkKeysAsPublished()
					_, bik, _ := bob.IdentityKeys()
					msgs = pool.preKeys(b, string(bik), otks)
					return len(msgs)
				}
				op = func(i int) {
					s := chk(bob.NewInboundSessionFrom(&aik, msgs[i]))(b)
					chk(s.Decrypt(msgs[i], id.OlmMsgTypePreKey))(b)
					if err := bob.RemoveOneTimeKeys(s); err != nil {
						b.Fatal(err)
					}
				}
			case "libolm":
				rnd := detRand(5)
				bob := chk(libolm.NewAccount(mustRead(b, rnd, libolm.AccountRandomLength)))(b)
				defer bob.Free()
				var msgs []string
				refill = func() int {
					if err := bob.GenerateOneTimeKeys(batch, mustRead(b, rnd, batch*libolm.OneTimeKeyRandomLength)); err != nil {
						b.Fatal(err)
					}
					var otks []string
					for _, k := range chk(bob.OneTimeKeys())(b) {
						otks = append(otks, k)
					}
					bob.MarkKeysAsPublished()
					bik, _ := mustB2(b)(bob.IdentityKeys())
					msgs = pool.preKeys(b, bik, otks)
					return len(msgs)
				}
				op = func(i int) {
					s := chk(bob.NewInboundSessionFrom(pool.aliceIK, msgs[i]))(b)
					chk(s.Decrypt(libolm.MessageTypePreKey, msgs[i]))(b)
					if err := bob.RemoveOneTimeKeys(s); err != nil {
						b.Fatal(err)
					}
					s.Free()
				}
			}
			n, i := refill(), 0
			b.ReportAllocs()
			for b.Loop() {
				if i == n {
					b.StopTimer()
					n, i = refill(), 0
					b.StartTimer()
				}
				op(i)
				i++
			}
		})
	}
}

func fst[A, B any](a A, _ B, err error) (A, error) { return a, err }

// BenchmarkOlmPingPong: one op is one 1 KiB message, encrypted by one side
// and decrypted by the other; the direction changes every op, so every op
// also takes a ratchet step.
func BenchmarkOlmPingPong(b *testing.B) {
	const size = 1024
	for _, im := range benchImpls {
		b.Run(fmt.Sprintf("impl=%s/size=%d", im, size), func(b *testing.B) {
			pt := benchPlaintext(size)
			var op func(aToB bool)
			switch im {
			case "myelin":
				rnd := detRand(6)
				alice, bob := chk(olm.NewAccount(rnd))(b), chk(olm.NewAccount(rnd))(b)
				if err := bob.GenerateOneTimeKeys(rnd, 1); err != nil {
					b.Fatal(err)
				}
				aik, _ := alice.IdentityKeys()
				bik, _ := bob.IdentityKeys()
				sa := chk(alice.NewOutboundSession(rnd, bik, bob.OneTimeKeys()[0].Key))(b)
				first := chk(sa.Encrypt(rnd, pt))(b).(*olm.PreKeyMessage)
				sb := chk(fst(bob.NewInboundSession(aik, first)))(b)
				s := [2]*olm.Session{sa, sb}
				op = func(aToB bool) {
					from, to := s[0], s[1]
					if !aToB {
						from, to = to, from
					}
					m := chk(from.Encrypt(rnd, pt))(b)
					pm := chk(olm.ParseMessage(m.Type(), m.Marshal()))(b)
					chk(to.Decrypt(pm))(b)
				}
			case "goolm":
				alice, bob := chk(account.NewAccount())(b), chk(account.NewAccount())(b)
				if err := bob.GenOneTimeKeys(1); err != nil {
					b.Fatal(err)
				}
				_, aik, _ := alice.IdentityKeys()
				_, bik, _ := bob.IdentityKeys()
				var otk id.Curve25519
				for _, k := range chk(bob.OneTimeKeys())(b) {
					otk = k
				}
				sa := chk(alice.NewOutboundSession(bik, otk))(b)
				_, first, err := sa.Encrypt(pt)
				if err != nil {
					b.Fatal(err)
				}
				sb := chk(bob.NewInboundSessionFrom(&aik, string(first)))(b)
				chk(sb.Decrypt(string(first), id.OlmMsgTypePreKey))(b)
				s := [2]mautrixolm.Session{sa, sb}
				op = func(aToB bool) {
					from, to := s[0], s[1]
					if !aToB {
						from, to = to, from
					}
					t, m, err := from.Encrypt(pt)
					if err != nil {
						b.Fatal(err)
					}
					chk(to.Decrypt(string(m), t))(b)
				}
			case "libolm":
				rnd := detRand(6)
				alice := chk(libolm.NewAccount(mustRead(b, rnd, 64)))(b)
				defer alice.Free()
				bob := chk(libolm.NewAccount(mustRead(b, rnd, 64)))(b)
				defer bob.Free()
				if err := bob.GenerateOneTimeKeys(1, mustRead(b, rnd, 32)); err != nil {
					b.Fatal(err)
				}
				aik, _ := mustB2(b)(alice.IdentityKeys())
				bik, _ := mustB2(b)(bob.IdentityKeys())
				var otk string
				for _, k := range chk(bob.OneTimeKeys())(b) {
					otk = k
				}
				sa := chk(alice.NewOutboundSession(bik, otk, mustRead(b, rnd, 64)))(b)
				defer sa.Free()
				_, first, err := sa.Encrypt(pt, nil)
				if err != nil {
					b.Fatal(err)
				}
				sb := chk(bob.NewInboundSessionFrom(aik, first))(b)
				defer sb.Free()
				chk(sb.Decrypt(libolm.MessageTypePreKey, first))(b)
				s := [2]*libolm.Session{sa, sb}
				r := make([]byte, libolm.EncryptRandomLength)
				op = func(aToB bool) {
					from, to := s[0], s[1]
					if !aToB {
						from, to = to, from
					}
					rr := r[:from.EncryptRandomLength()]
					mustRead2(b, rnd, rr)
					t, m, err := from.Encrypt(pt, rr)
					if err != nil {
						b.Fatal(err)
					}
					chk(to.Decrypt(t, m))(b)
				}
			}
			b.ReportAllocs()
			b.SetBytes(size)
			aToB := false // bob replies first
			for b.Loop() {
				op(aToB)
				aToB = !aToB
			}
		})
	}
}

// BenchmarkOlmOneTimeKeys: generate 50 one-time keys, list them and mark
// them as published (one upload's worth).
func BenchmarkOlmOneTimeKeys(b *testing.B) {
	const n = 50
	for _, im := range benchImpls {
		b.Run(fmt.Sprintf("impl=%s/n=%d", im, n), func(b *testing.B) {
			var op func()
			switch im {
			case "myelin":
				rnd := detRand(7)
				a := chk(olm.NewAccount(rnd))(b)
				op = func() {
					if err := a.GenerateOneTimeKeys(rnd, n); err != nil {
						b.Fatal(err)
					}
					if len(a.OneTimeKeys()) != n {
						b.Fatal("wrong number of keys")
					}
					a.MarkKeysAsPublished()
				}
			case "goolm":
				a := chk(account.NewAccount())(b)
				op = func() {
					if err := a.GenOneTimeKeys(n); err != nil {
						b.Fatal(err)
					}
					if len(chk(a.OneTimeKeys())(b)) != n {
						b.Fatal("wrong number of keys")
					}
					a.MarkKeysAsPublished()
				}
			case "libolm":
				rnd := detRand(7)
				a := chk(libolm.NewAccount(mustRead(b, rnd, 64)))(b)
				defer a.Free()
				r := make([]byte, n*libolm.OneTimeKeyRandomLength)
				op = func() {
					mustRead2(b, rnd, r)
					if err := a.GenerateOneTimeKeys(n, r); err != nil {
						b.Fatal(err)
					}
					if len(chk(a.OneTimeKeys())(b)) != n {
						b.Fatal("wrong number of keys")
					}
					a.MarkKeysAsPublished()
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				op()
			}
		})
	}
}
