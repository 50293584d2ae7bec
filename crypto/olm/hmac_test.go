package olm

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

func TestHMAC(t *testing.T) {
	for _, klen := range []int{0, 1, 32, 64} {
		for _, mlen := range []int{0, 1, 44, 55, 56, 96} {
			key, msg := seq(byte(klen), klen), seq(byte(mlen+7), mlen)
			h := hmac.New(sha256.New, key)
			h.Write(msg)
			want := h.Sum(nil)
			got := hmacSHA256(key, msg[:mlen/2], msg[mlen/2:])
			if string(got[:]) != string(want) {
				t.Fatalf("HMAC key %d msg %d differs", klen, mlen)
			}
		}
	}
	for _, salt := range [][]byte{nil, seq(3, 32)} {
		ikm := seq(9, 96)
		want, _ := hkdf.Key(sha256.New, ikm, salt, "OLM_ROOT", 64)
		a, b := hkdf64(salt, ikm, "OLM_ROOT")
		if string(a[:])+string(b[:]) != string(want) {
			t.Fatal("HKDF differs from crypto/hkdf")
		}
	}
}
