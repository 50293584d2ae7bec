package cipher

import (
	"bytes"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
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

// TestAgainstStandardLibrary checks the allocation-free HMAC, HKDF and CBC
// against crypto/hmac, crypto/hkdf and crypto/cipher.
func TestAgainstStandardLibrary(t *testing.T) {
	for _, kl := range []int{0, 1, 32, 63, 64, 65, 100} {
		key := bytes.Repeat([]byte{0x5a}, kl)
		for _, ml := range []int{0, 1, 55, 64, 200} {
			msg := bytes.Repeat([]byte{byte(ml)}, ml)
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			want := m.Sum(nil)
			got := HMAC(key, msg[:ml/2], msg[ml/2:])
			if !bytes.Equal(got[:], want) {
				t.Fatalf("HMAC key %d msg %d differs from crypto/hmac", kl, ml)
			}
		}
	}
	for _, n := range []int{1, 32, 64, 80, 100} {
		for _, salt := range [][]byte{nil, {0}, make([]byte, 32), []byte("salt")} {
			want, err := hkdf.Key(sha256.New, []byte("ikm"), salt, "info", n)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, n)
			HKDF(got, salt, []byte("ikm"), "info")
			if !bytes.Equal(got, want) {
				t.Fatalf("HKDF n=%d salt=%x differs from crypto/hkdf", n, salt)
			}
		}
	}
	k := DeriveKeys([]byte("secret"), "MEGOLM_KEYS")
	for _, n := range []int{0, 5, 16, 40} {
		pt := bytes.Repeat([]byte{7}, n)
		padded := append([]byte(nil), pt...)
		for p := EncryptedLen(n) - n; len(padded) < EncryptedLen(n); {
			padded = append(padded, byte(p))
		}
		want := make([]byte, len(padded))
		block, _ := aes.NewCipher(k.aesKey[:])
		gocipher.NewCBCEncrypter(block, k.iv[:]).CryptBlocks(want, padded)
		if got := k.Encrypt(nil, pt); !bytes.Equal(got, want) {
			t.Fatalf("CBC n=%d differs from crypto/cipher", n)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	k := DeriveKeys([]byte("secret"), "OLM_KEYS")
	pt := make([]byte, 100)
	dst := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(50, func() {
		kk := DeriveKeys(pt[:32], "OLM_KEYS")
		dst = kk.Encrypt(dst[:0], pt)
		_ = kk.MAC(dst)
	}); n > 1 { // one: the AES key schedule behind aes.NewCipher
		t.Errorf("derive+encrypt+MAC allocates %v times", n)
	}
	_ = k
}
