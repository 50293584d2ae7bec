package megolm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"myelin/crypto/internal/cipher"
)

func refHMAC(key []byte, b byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte{b})
	return h.Sum(nil)
}

// refRatchet computes R_i from R_0 straight from the spec's definition of
// the ratchet ("The Megolm ratchet algorithm"), with crypto/hmac: R0 is
// hashed i>>24 times (each time reseeding R1..R3 from it), then R1 (i>>16)&255
// times, R2 (i>>8)&255 times and R3 i&255 times.
func refRatchet(r0 []byte, i uint32) []byte {
	var p [4][]byte
	for j := range p {
		p[j] = append([]byte(nil), r0[32*j:32*j+32]...)
	}
	counts := [4]uint32{i >> 24, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff}
	for j := range 4 {
		for range counts[j] {
			src := p[j]
			for k := 3; k >= j; k-- {
				p[k] = refHMAC(src, byte(k))
			}
		}
	}
	return bytes.Join(p[:], nil)
}

// TestRatchetAgainstSpec checks single steps and jumps against the spec's
// definition at the boundaries where slower parts reseed (libolm was checked
// at these indices in the digest).
func TestRatchetAgainstSpec(t *testing.T) {
	r0 := seq(0x21, RatchetSize)
	targets := []uint32{0, 1, 2, 255, 256, 257, 511, 65535, 65536, 65537, 1<<24 - 1, 1 << 24, 1<<24 + 1, 1<<25 + 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff}
	for _, tgt := range targets {
		t.Run(fmt.Sprint(tgt), func(t *testing.T) {
			t.Parallel()
			var r ratchet
			copy(r.data[:], r0)
			r.advanceTo(tgt)
			want := refRatchet(r0, tgt)
			if r.counter != tgt || !bytes.Equal(r.data[:], want) {
				t.Fatalf("advanceTo(%d) differs from the spec definition", tgt)
			}
			// One more single step matches the definition at tgt+1.
			if tgt != 0xffffffff {
				r.advance()
				if !bytes.Equal(r.data[:], refRatchet(r0, tgt+1)) || r.counter != tgt+1 {
					t.Fatalf("advance from %d differs from the spec definition", tgt)
				}
			}
		})
	}
}

func TestRatchetStepsEqualJumps(t *testing.T) {
	var start ratchet
	copy(start.data[:], seq(0x90, RatchetSize))
	for _, from := range []uint32{0, 200, 65000, 1<<24 - 300} {
		step := start
		step.advanceTo(from)
		jump := step
		for range 700 {
			step.advance()
			j := jump
			j.advanceTo(step.counter)
			if !j.equal(&step) {
				t.Fatalf("from %d: jump to %d differs from stepping", from, step.counter)
			}
		}
		// Jumps compose: from -> mid -> end equals from -> end.
		a, b := jump, jump
		a.advanceTo(from + 300)
		a.advanceTo(from + 650)
		b.advanceTo(from + 650)
		if !a.equal(&b) {
			t.Fatalf("from %d: composed jumps differ", from)
		}
	}
}

// TestRatchetWrap pins what happens at 2^32: the ratchet is a cycle in the
// counter, and advanceTo below the counter continues through the wrap,
// exactly like stepping (libolm and vodozemac share this code). Sessions
// never rely on it: see TestIndexLimits.
func TestRatchetWrap(t *testing.T) {
	var r ratchet
	copy(r.data[:], seq(0x33, RatchetSize))
	r.advanceTo(0xffffff00)
	step, jump := r, r
	for range 0x110 {
		step.advance()
	}
	jump.advanceTo(0x10)
	if step.counter != 0x10 || !jump.equal(&step) {
		t.Fatalf("wrap: jump (%#x) and steps (%#x) differ", jump.counter, step.counter)
	}
}

// TestAEADMatchesCipher checks the allocation-free AEAD against
// crypto/internal/cipher byte for byte.
func TestAEADMatchesCipher(t *testing.T) {
	var r ratchet
	copy(r.data[:], seq(0x5a, RatchetSize))
	for _, n := range []int{0, 1, 15, 16, 17, 100, 1024} {
		pt := seq(byte(n), n)
		ref := cipher.DeriveKeys(r.data[:], "MEGOLM_KEYS")
		k := deriveMessageKeys(&r)
		ct := k.Encrypt([]byte{9}, pt)
		want := ref.Encrypt([]byte{9}, pt)
		if !bytes.Equal(ct, want) {
			t.Fatalf("n=%d: ciphertext differs from cipher.Keys", n)
		}
		if m, wm := k.MAC(ct), ref.MAC(ct); m != wm {
			t.Fatalf("n=%d: MAC differs", n)
		}
		got, err := k.Decrypt(ct[1:])
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: decrypt: %v", n, err)
		}
		r.advance()
	}
}

func TestAEADBadPadding(t *testing.T) {
	var r ratchet
	k := deriveMessageKeys(&r)
	other := deriveMessageKeys(&ratchet{counter: 1, data: [RatchetSize]byte{1}})
	bad := 0
	for i := range 64 {
		ct := other.Encrypt(nil, []byte{byte(i)})
		if _, err := k.Decrypt(ct); errors.Is(err, cipher.ErrInvalidPadding) {
			bad++
		}
	}
	if bad == 0 {
		t.Fatal("wrong-key decryptions never failed the padding check")
	}
}
