package megolm

import (
	"bytes"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"syscall"
	"testing"
)

// cpuTimer reports the process CPU time (user + system) per operation as
// "cpu-ns/op" next to the wall-clock ns/op: on a shared, loaded machine the
// wall clock counts time spent waiting for a core, the CPU time does not.
type cpuTimer struct{ start int64 }

func cpuNow() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func startCPU() cpuTimer { return cpuTimer{cpuNow()} }

func (c cpuTimer) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuNow()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

var benchSizes = []int{100, 1024}

func benchOutbound(b *testing.B) *OutboundSession {
	o, err := NewOutboundSession(bytes.NewReader(seq(0x42, OutboundRandomSize)))
	if err != nil {
		b.Fatal(err)
	}
	return o
}

func BenchmarkEncrypt(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			o := benchOutbound(b)
			pt := bytes.Repeat([]byte{'x'}, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			c := startCPU()
			for b.Loop() {
				o.Encrypt(pt)
			}
			c.report(b)
		})
	}
}

// BenchmarkDecrypt decrypts the same message repeatedly: the cached ratchet
// is already at its index, so this measures the per-message work (verify,
// HKDF, MAC, AES) without the one ratchet step an in-order message costs
// (measured separately by BenchmarkRatchetAdvance).
func BenchmarkDecrypt(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			o := benchOutbound(b)
			in, err := NewInboundSession(o.SessionKey())
			if err != nil {
				b.Fatal(err)
			}
			msg := o.Encrypt(bytes.Repeat([]byte{'x'}, n))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			c := startCPU()
			for b.Loop() {
				if _, _, err := in.Decrypt(msg); err != nil {
					b.Fatal(err)
				}
			}
			c.report(b)
		})
	}
}

// BenchmarkDecryptInOrder decrypts consecutive messages, as a client
// catching up on a room does: each one costs one ratchet step on top of
// BenchmarkDecrypt.
func BenchmarkDecryptInOrder(b *testing.B) {
	const pool = 2048
	o := benchOutbound(b)
	key := o.SessionKey()
	pt := bytes.Repeat([]byte{'x'}, 1024)
	msgs := make([][]byte, pool)
	for i := range msgs {
		msgs[i] = o.Encrypt(pt)
	}
	fresh, err := NewInboundSession(key)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("size=1024", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		in := *fresh
		i := 0
		c := startCPU()
		for b.Loop() {
			if i == pool {
				in, i = *fresh, 0
			}
			if _, _, err := in.Decrypt(msgs[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		c.report(b)
	})
}

func BenchmarkRatchetAdvance(b *testing.B) {
	var r ratchet
	copy(r.data[:], seq(1, RatchetSize))
	b.ReportAllocs()
	for b.Loop() {
		r.advance()
	}
}

func BenchmarkRatchetAdvanceTo(b *testing.B) {
	var r0 ratchet
	copy(r0.data[:], seq(1, RatchetSize))
	b.ReportAllocs()
	for b.Loop() {
		r := r0
		r.advanceTo(0xfefefefe) // close to the worst case
	}
}

// ratchetStep is the floor's share of one ratchet step: one HMAC-SHA-256 of
// a byte (most steps rehash only R3), as interop's BenchmarkFloor counts it.
func ratchetStep(secret []byte) {
	h := hmac.New(sha256.New, secret[96:])
	h.Write([]byte{3})
	h.Sum(nil)
}

// BenchmarkFloor measures the primitives alone, straight from the standard
// library, for the same message sizes: the speed limit for Encrypt (one
// Ed25519 signature, HKDF, AES-256-CBC, HMAC-SHA-256, one ratchet HMAC) and
// for DecryptInOrder (one verification and the same symmetric work), with the
// same composition as interop's BenchmarkFloor/megolm{en,de}crypt.
func BenchmarkFloor(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(seq(7, 32))
	pub := priv.Public().(ed25519.PublicKey)
	secret := seq(9, RatchetSize)
	for _, n := range benchSizes {
		ctLen := (n/16 + 1) * 16
		msg := make([]byte, 8+ctLen+8) // header, ciphertext, MAC
		b.Run(fmt.Sprintf("op=encrypt/size=%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			c := startCPU()
			for b.Loop() {
				k, _ := hkdf.Key(sha256.New, secret, nil, "MEGOLM_KEYS", 80)
				blk, _ := aes.NewCipher(k[:32])
				gocipher.NewCBCEncrypter(blk, k[64:80]).CryptBlocks(msg[8:8+ctLen], msg[8:8+ctLen])
				h := hmac.New(sha256.New, k[32:64])
				h.Write(msg[:8+ctLen])
				h.Sum(nil)
				ratchetStep(secret)
				ed25519.Sign(priv, msg)
			}
			c.report(b)
		})
		sig := ed25519.Sign(priv, msg)
		b.Run(fmt.Sprintf("op=decrypt/size=%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			out := make([]byte, ctLen)
			c := startCPU()
			for b.Loop() {
				if !ed25519.Verify(pub, msg, sig) {
					b.Fatal("verify")
				}
				k, _ := hkdf.Key(sha256.New, secret, nil, "MEGOLM_KEYS", 80)
				h := hmac.New(sha256.New, k[32:64])
				h.Write(msg[:8+ctLen])
				h.Sum(nil)
				ratchetStep(secret)
				blk, _ := aes.NewCipher(k[:32])
				gocipher.NewCBCDecrypter(blk, k[64:80]).CryptBlocks(out, msg[8:8+ctLen])
			}
			c.report(b)
		})
	}
}
