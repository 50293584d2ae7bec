package megolm

import (
	"crypto/subtle"

	"myelin/crypto/internal/cipher"
)

// RatchetSize is the length of the Megolm ratchet state: four 32-byte parts
// R0..R3.
const RatchetSize = 128

const (
	ratchetParts    = 4
	ratchetPartSize = 32
)

// ratchet is the Megolm ratchet R_i at counter i (crypto-digest §3.1, the
// spec's "Megolm ratchet algorithm"). It is a plain value: copying it copies
// the secret, which is how decryption works on a copy and commits on success.
type ratchet struct {
	data    [RatchetSize]byte
	counter uint32
}

// part returns R_j.
func (r *ratchet) part(j int) *[ratchetPartSize]byte {
	return (*[ratchetPartSize]byte)(r.data[j*ratchetPartSize : (j+1)*ratchetPartSize])
}

// rehash sets R_to = HMAC-SHA-256(R_from, byte(to)). Callers update the
// lower-numbered targets first when to == from would overwrite the source
// (pitfall 8 of the digest: R_from is rehashed last).
func (r *ratchet) rehash(from, to int) {
	seed := [1]byte{byte(to)}
	*r.part(to) = cipher.HMAC(r.part(from)[:], seed[:])
}

// advance moves the ratchet from i to i+1 (wrapping at 2^32, which only
// [ratchet.advanceTo] relies on; sessions never wrap, see doc.go).
func (r *ratchet) advance() {
	r.counter++
	// h is the slowest part to change: R0 every 2^24 steps, R1 every 2^16,
	// R2 every 2^8, R3 every step.
	h := 3
	mask := uint32(0x00ffffff)
	for i := range ratchetParts {
		if r.counter&mask == 0 {
			h = i
			break
		}
		mask >>= 8
	}
	for k := ratchetParts - 1; k >= h; k-- {
		r.rehash(h, k)
	}
}

// advanceTo moves the ratchet forward to counter t with at most 4*255+4
// HMACs. If t < counter it continues through 2^32 (the ratchet is a cycle in
// the counter modulo 2^32); sessions only call it with t >= counter.
func (r *ratchet) advanceTo(t uint32) {
	for j := range ratchetParts {
		shift := uint((ratchetParts - 1 - j) * 8)
		mask := ^uint32(0) << shift
		steps := ((t >> shift) - (r.counter >> shift)) & 0xff
		if steps == 0 {
			// Only for R0: t has wrapped past 2^32 relative to the counter.
			if t < r.counter {
				steps = 0x100
			} else {
				continue
			}
		}
		// All but the last step only rehash R_j itself.
		for ; steps > 1; steps-- {
			r.rehash(j, j)
		}
		// The last step reseeds R_3 .. R_{j+1} from R_j, then R_j.
		for k := ratchetParts - 1; k >= j; k-- {
			r.rehash(j, k)
		}
		r.counter = t & mask
	}
}

// equal compares two ratchets; the counters are public, the bytes are
// compared in constant time.
func (r *ratchet) equal(o *ratchet) bool {
	return r.counter == o.counter && subtle.ConstantTimeCompare(r.data[:], o.data[:]) == 1
}

func (r *ratchet) wipe() {
	clear(r.data[:])
	r.counter = 0
}
