package cipher

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTripAndTamper(t *testing.T) {
	k := DeriveKeys([]byte("a secret of some length"), "OLM_KEYS")
	for _, n := range []int{0, 1, 15, 16, 17, 100, 1024} {
		pt := bytes.Repeat([]byte{0xab}, n)
		ct := k.Encrypt(nil, pt)
		if len(ct) != EncryptedLen(n) || len(ct)%16 != 0 {
			t.Fatalf("n=%d: ciphertext length %d", n, len(ct))
		}
		got, err := k.Decrypt(ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: round trip failed: %v", n, err)
		}
		mac := k.MAC(ct)
		if err := k.VerifyMAC(ct, mac[:]); err != nil {
			t.Fatal(err)
		}
		ct[0] ^= 1
		if err := k.VerifyMAC(ct, mac[:]); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("n=%d: tampered ciphertext passed the MAC", n)
		}
	}
	if _, err := k.Decrypt(make([]byte, 15)); !errors.Is(err, ErrInvalidCiphertext) {
		t.Fatal("partial block accepted")
	}
	if _, err := k.Decrypt(nil); !errors.Is(err, ErrInvalidCiphertext) {
		t.Fatal("empty ciphertext accepted")
	}
	// A block whose padding byte is 0 or > 16 is refused.
	other := DeriveKeys([]byte("other"), "OLM_KEYS")
	bad := 0
	for i := range 64 {
		ct := other.Encrypt(nil, []byte{byte(i)})
		if _, err := k.Decrypt(ct); errors.Is(err, ErrInvalidPadding) {
			bad++
		}
	}
	if bad == 0 {
		t.Fatal("wrong-key decryptions never failed padding")
	}
}

func TestEncryptAppends(t *testing.T) {
	k := DeriveKeys([]byte("s"), "MEGOLM_KEYS")
	prefix := []byte{1, 2, 3}
	out := k.Encrypt(prefix, []byte("x"))
	if !bytes.Equal(out[:3], []byte{1, 2, 3}) || len(out) != 3+16 {
		t.Fatalf("Encrypt did not append: %x", out)
	}
}

func TestWipedKeysPanic(t *testing.T) {
	k := DeriveKeys([]byte("s"), "x")
	k.Wipe()
	defer func() {
		if recover() == nil {
			t.Fatal("use after Wipe did not panic")
		}
	}()
	k.MAC(nil)
}
