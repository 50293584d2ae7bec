package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
)

// seq returns n bytes a, a+1, ... (mod 256), the inputs of crypto-digest §9.3.
func seq(a byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = a + byte(i)
	}
	return b
}

func TestDeterministicKeysMatchLibolm(t *testing.T) {
	// Vectors: libolm 3.2.13 olm_create_account with random seq(0x00,64):
	// [0:32] is the Ed25519 seed, [32:64] the Curve25519 private key
	// (../shared/docs/crypto-digest.md §9.3, "Alice").
	r := bytes.NewReader(seq(0, 64))
	ed, err := GenerateEd25519SecretKey(r)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := GenerateCurve25519SecretKey(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cv.PublicKey().String(), "NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ"; got != want {
		t.Errorf("curve25519 = %s, want %s", got, want)
	}
	if got, want := ed.PublicKey().String(), "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"; got != want {
		t.Errorf("ed25519 = %s, want %s", got, want)
	}
}

func TestParseStrict(t *testing.T) {
	good := "NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ"
	if _, err := ParseCurve25519PublicKey(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		good + "=",  // padded
		good[:42],   // short
		good + "AA", // long
		"NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlR", // non-zero trailing bits
		"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", // URL alphabet
		"",
	} {
		if _, err := ParseCurve25519PublicKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseCurve25519PublicKey(%q) err = %v, want ErrInvalidKey", bad, err)
		}
		if _, err := ParseEd25519PublicKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseEd25519PublicKey(%q) err = %v, want ErrInvalidKey", bad, err)
		}
	}
	if _, err := NewCurve25519PublicKey(make([]byte, 31)); !errors.Is(err, ErrInvalidKey) {
		t.Error("31-byte key accepted")
	}
	if _, err := NewEd25519Signature(make([]byte, 63)); !errors.Is(err, ErrInvalidKey) {
		t.Error("63-byte signature accepted")
	}
	if _, err := DecodeBase64("AAA="); err == nil {
		t.Error("DecodeBase64 accepted padding")
	}
	if b, err := DecodeBase64Lenient("AAA="); err != nil || len(b) != 2 {
		t.Errorf("DecodeBase64Lenient(AAA=) = %x, %v", b, err)
	}
}

func TestNonContributory(t *testing.T) {
	sk, err := GenerateCurve25519SecretKey(bytes.NewReader(seq(7, 32)))
	if err != nil {
		t.Fatal(err)
	}
	// Low-order points of Curve25519 (u = 0 and u = 1) make the result zero.
	for _, u := range []string{"00", "01"} {
		b := make([]byte, 32)
		x, _ := hex.DecodeString(u)
		copy(b, x)
		pub, _ := NewCurve25519PublicKey(b)
		if _, err := sk.SharedSecret(pub); !errors.Is(err, ErrNonContributory) {
			t.Errorf("u=%s: err = %v, want ErrNonContributory", u, err)
		}
	}
	other, _ := GenerateCurve25519SecretKey(bytes.NewReader(seq(9, 32)))
	s1, err1 := sk.SharedSecret(other.PublicKey())
	s2, err2 := other.SharedSecret(sk.PublicKey())
	if err1 != nil || err2 != nil || s1 != s2 {
		t.Fatalf("agreement failed: %v %v", err1, err2)
	}
}

func TestSmallOrderKeyRefused(t *testing.T) {
	// With the identity point as public key, R = identity and S = 0 verify
	// for every message under the cofactorless equation crypto/ed25519 uses.
	pub := make([]byte, 32)
	pub[0] = 1
	sig := make([]byte, 64)
	sig[0] = 1
	msg := []byte("anything at all")
	if !ed25519.Verify(pub, msg, sig) {
		t.Skip("crypto/ed25519 refuses this forgery itself; the check below is still required")
	}
	pk, _ := NewEd25519PublicKey(pub)
	s, _ := NewEd25519Signature(sig)
	if err := pk.Verify(msg, s); !errors.Is(err, ErrWeakPublicKey) {
		t.Fatalf("Verify with identity public key: err = %v, want ErrWeakPublicKey", err)
	}
}

// TestSmallOrderList checks every listed encoding really is a point of order
// dividing 8, with big-integer Edwards arithmetic, so the list cannot silently
// hold a typo.
func TestSmallOrderList(t *testing.T) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	d := new(big.Int).Mul(big.NewInt(-121665), new(big.Int).ModInverse(big.NewInt(121666), p))
	d.Mod(d, p)
	decode := func(e [32]byte) (x, y *big.Int, ok bool) {
		sign := e[31] >> 7
		e[31] &= 0x7f
		le := make([]byte, 32)
		for i := range le {
			le[i] = e[31-i]
		}
		y = new(big.Int).SetBytes(le)
		y.Mod(y, p) // non-canonical encodings reduce mod p
		y2 := new(big.Int).Mul(y, y)
		num := new(big.Int).Sub(y2, big.NewInt(1))
		den := new(big.Int).Add(new(big.Int).Mul(d, y2), big.NewInt(1))
		x2 := new(big.Int).Mul(num, new(big.Int).ModInverse(den, p))
		x2.Mod(x2, p)
		x = new(big.Int).ModSqrt(x2, p)
		if x == nil {
			return nil, nil, false
		}
		if x.Bit(0) != uint(sign) {
			x.Sub(p, x)
		}
		return x, y, true
	}
	add := func(x1, y1, x2, y2 *big.Int) (*big.Int, *big.Int) {
		t := new(big.Int).Mul(d, new(big.Int).Mul(new(big.Int).Mul(x1, x2), new(big.Int).Mul(y1, y2)))
		xn := new(big.Int).Add(new(big.Int).Mul(x1, y2), new(big.Int).Mul(y1, x2))
		yn := new(big.Int).Add(new(big.Int).Mul(y1, y2), new(big.Int).Mul(x1, x2))
		xd := new(big.Int).ModInverse(new(big.Int).Mod(new(big.Int).Add(big.NewInt(1), t), p), p)
		yd := new(big.Int).ModInverse(new(big.Int).Mod(new(big.Int).Sub(big.NewInt(1), t), p), p)
		return new(big.Int).Mod(xn.Mul(xn, xd), p), new(big.Int).Mod(yn.Mul(yn, yd), p)
	}
	for i, e := range smallOrder {
		x, y, ok := decode(e)
		if !ok {
			t.Errorf("entry %d is not on the curve", i)
			continue
		}
		for range 3 { // [8]P by three doublings
			x, y = add(x, y, x, y)
		}
		if x.Sign() != 0 || y.Cmp(big.NewInt(1)) != 0 {
			t.Errorf("entry %d: [8]P is not the identity", i)
		}
	}
}

func TestSignVerify(t *testing.T) {
	sk, _ := GenerateEd25519SecretKey(bytes.NewReader(seq(3, 32)))
	msg := []byte("hello")
	sig := sk.Sign(msg)
	if err := sk.PublicKey().Verify(msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := sk.PublicKey().Verify([]byte("hellO"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered message: err = %v", err)
	}
	b := sig.Bytes()
	b[10] ^= 1
	bad, _ := NewEd25519Signature(b)
	if err := sk.PublicKey().Verify(msg, bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered signature: err = %v", err)
	}
	rt, err := ParseEd25519Signature(sig.String())
	if err != nil || rt != sig {
		t.Fatal("signature base64 round trip failed")
	}
}

func TestEqualConstantTimeSemantics(t *testing.T) {
	a, _ := NewCurve25519SecretKey(seq(1, 32))
	b, _ := NewCurve25519SecretKey(seq(1, 32))
	c, _ := NewCurve25519SecretKey(seq(2, 32))
	if !a.Equal(b) || a.Equal(c) {
		t.Fatal("Curve25519SecretKey.Equal wrong")
	}
	e1, _ := NewEd25519SecretKeyFromSeed(seq(1, 32))
	e2, _ := NewEd25519SecretKeyFromSeed(seq(1, 32))
	e3, _ := NewEd25519SecretKeyFromSeed(seq(2, 32))
	if !e1.Equal(e2) || e1.Equal(e3) {
		t.Fatal("Ed25519SecretKey.Equal wrong")
	}
}

// TestSecretsNeverFormatted formats every secret type through fmt and slog
// and looks for the secret bytes in any common encoding.
func TestSecretsNeverFormatted(t *testing.T) {
	cs, _ := NewCurve25519SecretKey(seq(0x41, 32))
	es, _ := NewEd25519SecretKeyFromSeed(seq(0x61, 32))
	secrets := map[string][]byte{"curve25519": cs.Bytes(), "ed25519": es.Seed()}
	var out bytes.Buffer
	for _, v := range []any{cs, es, *cs, *es, struct{ K *Curve25519SecretKey }{cs}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("keys", "c", cs, "e", es, "cv", *cs)
	}
	text := out.String()
	for name, s := range secrets {
		for _, enc := range []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)), EncodeBase64(s), fmt.Sprint(s), fmt.Sprintf("%d", s)} {
			if strings.Contains(text, enc) {
				t.Errorf("%s secret leaked in formatted output", name)
			}
		}
	}
	if !strings.Contains(text, "REDACTED") {
		t.Error("formatted output does not say REDACTED")
	}
}

func FuzzParseKeys(f *testing.F) {
	f.Add("NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ")
	f.Add("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := ParseCurve25519PublicKey(s); err == nil && k.String() != s {
			t.Fatalf("non-canonical curve25519 key accepted: %q", s)
		}
		if k, err := ParseEd25519PublicKey(s); err == nil && k.String() != s {
			t.Fatalf("non-canonical ed25519 key accepted: %q", s)
		}
		if sig, err := ParseEd25519Signature(s); err == nil && sig.String() != s {
			t.Fatalf("non-canonical signature accepted: %q", s)
		}
	})
}
