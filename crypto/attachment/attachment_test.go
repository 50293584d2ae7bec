package attachment

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

type vectorFile struct {
	RustSDK struct {
		Info       json.RawMessage `json:"info"`
		Ciphertext []byte          `json:"-"`
		CTDecimal  []int           `json:"ciphertext_decimal"`
		Plaintext  string          `json:"plaintext"`
	} `json:"rust_sdk"`
	SpecExample json.RawMessage `json:"spec_example"`
}

func loadVectors(t testing.TB) *vectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, d := range v.RustSDK.CTDecimal {
		v.RustSDK.Ciphertext = append(v.RustSDK.Ciphertext, byte(d))
	}
	return &v
}

func mustInfo(t testing.TB, b []byte) *Info {
	t.Helper()
	in, err := ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

type fixedReader byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestRustSDKVector(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	in := mustInfo(t, v.RustSDK.Info)
	pt, err := Decrypt(in, v.RustSDK.Ciphertext)
	if err != nil || string(pt) != v.RustSDK.Plaintext {
		t.Fatalf("Decrypt: %q %v", pt, err)
	}
	var buf bytes.Buffer
	n, err := DecryptTo(&buf, bytes.NewReader(v.RustSDK.Ciphertext), in, 1<<20)
	if err != nil || n != int64(len(pt)) || buf.String() != v.RustSDK.Plaintext {
		t.Fatalf("DecryptTo: %v", err)
	}
	pt, err = DecryptReader(bytes.NewReader(v.RustSDK.Ciphertext), in, 26)
	if err != nil || string(pt) != v.RustSDK.Plaintext {
		t.Fatalf("DecryptReader: %v", err)
	}
	// rust-sdk's decrypt_invalid_hash: other bytes under the same info.
	if _, err := Decrypt(in, []byte("fake message")); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("fake message: %v", err)
	}
	mustInfo(t, v.SpecExample)
}

func TestHashCheckedBeforeDecryption(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	in := mustInfo(t, v.RustSDK.Info)
	ct := v.RustSDK.Ciphertext
	for name, bad := range map[string][]byte{
		"first bit": append([]byte{ct[0] ^ 1}, ct[1:]...),
		"last bit":  append(append([]byte{}, ct[:len(ct)-1]...), ct[len(ct)-1]^0x80),
		"truncated": ct[:len(ct)-1],
		"appended":  append(append([]byte{}, ct...), 0),
		"empty":     {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if pt, err := Decrypt(in, bad); !errors.Is(err, ErrHashMismatch) || pt != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			var buf bytes.Buffer
			if _, err := DecryptTo(&buf, bytes.NewReader(bad), in, 1<<20); !errors.Is(err, ErrHashMismatch) || buf.Len() != 0 {
				t.Fatalf("DecryptTo: %v, wrote %d bytes", err, buf.Len())
			}
			if pt, err := DecryptReader(bytes.NewReader(bad), in, 1<<20); !errors.Is(err, ErrHashMismatch) || pt != nil {
				t.Fatalf("DecryptReader: %v", err)
			}
		})
	}
}

// changingReader serves good bytes on the first pass and altered bytes after
// the first Seek back to the start.
type changingReader struct {
	good, bad []byte
	r         *bytes.Reader
	seeks     int
}

func (c *changingReader) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *changingReader) Seek(off int64, whence int) (int64, error) {
	c.seeks++
	if c.seeks == 2 {
		c.r = bytes.NewReader(c.bad)
	}
	return c.r.Seek(off, whence)
}

func TestDecryptToNoticesChangedSource(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	in := mustInfo(t, v.RustSDK.Info)
	bad := append([]byte{}, v.RustSDK.Ciphertext...)
	bad[3] ^= 1
	src := &changingReader{good: v.RustSDK.Ciphertext, bad: bad, r: bytes.NewReader(v.RustSDK.Ciphertext)}
	if _, err := DecryptTo(io.Discard, src, in, 1<<20); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("source changed between passes: %v", err)
	}
}

func TestSizeLimits(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	in := mustInfo(t, v.RustSDK.Info)
	if _, err := DecryptReader(bytes.NewReader(v.RustSDK.Ciphertext), in, 25); !errors.Is(err, ErrTooLarge) {
		t.Errorf("DecryptReader over limit: %v", err)
	}
	if _, err := DecryptTo(io.Discard, bytes.NewReader(v.RustSDK.Ciphertext), in, 25); !errors.Is(err, ErrTooLarge) {
		t.Errorf("DecryptTo over limit: %v", err)
	}
	e, err := NewEncryptor(fixedReader(1), bytes.NewReader(make([]byte, 100)), 99)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(e); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Encryptor over limit: %v", err)
	}
	if _, err := e.Info(); err == nil {
		t.Error("Info after a failed read")
	}
}

func TestEncryptRoundTrip(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 1, 15, 16, 17, 4096, 100_000} {
		pt := bytes.Repeat([]byte{0x5a}, size)
		ct, info, err := Encrypt(fixedReader(0xee), pt)
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 && bytes.Equal(ct, pt) {
			t.Fatal("ciphertext equals plaintext")
		}
		raw, _ := json.Marshal(info)
		in := mustInfo(t, raw)
		iv, _ := decodeStd(in.IV)
		if !bytes.Equal(iv[8:], make([]byte, 8)) || !bytes.Equal(iv[:8], bytes.Repeat([]byte{0xee}, 8)) {
			t.Fatalf("IV %x: want 8 random bytes then 8 zero bytes", iv)
		}
		if strings.ContainsAny(in.Key.K, "+/=") || strings.Contains(in.IV+in.Hashes["sha256"], "=") {
			t.Fatal("wrong base64 flavours in output")
		}
		got, err := Decrypt(in, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: %v", size, err)
		}
	}
	// Streaming with a reader that returns short reads.
	e, _ := NewEncryptor(fixedReader(3), io.LimitReader(fixedReader(9), 10_000), 10_000)
	ct, err := io.ReadAll(e)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := e.Info()
	var buf bytes.Buffer
	if _, err := DecryptTo(&buf, bytes.NewReader(ct), info, 10_000); err != nil || buf.Len() != 10_000 {
		t.Fatalf("streamed round trip: %v", err)
	}
	if _, err := NewEncryptor(bytes.NewReader(make([]byte, 39)), nil, 1); err == nil {
		t.Error("short random source accepted")
	}
	if _, err := (&Encryptor{}).Info(); err == nil {
		t.Error("Info before EOF")
	}
}

func decodeStd(s string) ([]byte, error) {
	var b [IVSize]byte
	err := decodeFixed(b[:], s, base64.RawStdEncoding)
	return b[:], err
}

func TestInfoValidation(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	base := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal(v.RustSDK.Info, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	key := func(m map[string]any) map[string]any { return m["key"].(map[string]any) }
	cases := []struct {
		name  string
		mut   func(m map[string]any)
		field string
	}{
		{"v1", func(m map[string]any) { m["v"] = "v1" }, "v"},
		{"v missing", func(m map[string]any) { delete(m, "v") }, "v"},
		{"kty", func(m map[string]any) { key(m)["kty"] = "RSA" }, "key.kty"},
		{"alg", func(m map[string]any) { key(m)["alg"] = "A128CTR" }, "key.alg"},
		{"ext false", func(m map[string]any) { key(m)["ext"] = false }, "key.ext"},
		{"key_ops without decrypt", func(m map[string]any) { key(m)["key_ops"] = []string{"encrypt"} }, "key.key_ops"},
		{"key_ops without encrypt", func(m map[string]any) { key(m)["key_ops"] = []string{"decrypt"} }, "key.key_ops"},
		{"k short", func(m map[string]any) { key(m)["k"] = "Voq2nkPme_x8no5-Tjq_laDAdxE6iDbxnlQXxwFPgE" }, "key.k"},
		{"k long", func(m map[string]any) { key(m)["k"] = "Voq2nkPme_x8no5-Tjq_laDAdxE6iDbxnlQXxwFPgE4A" }, "key.k"},
		{"k standard alphabet", func(m map[string]any) { key(m)["k"] = "Voq2nkPme/x8no5+Tjq/laDAdxE6iDbxnlQXxwFPgE4" }, "key.k"},
		{"iv short", func(m map[string]any) { m["iv"] = "i0DovxYdJEcAAAAAAAAA" }, "iv"},
		{"iv url-safe", func(m map[string]any) { m["iv"] = "i0Dov-YdJEcAAAAAAAAAAA" }, "iv"},
		{"hash missing", func(m map[string]any) { m["hashes"] = map[string]string{"sha512": "x"} }, "hashes.sha256"},
		{"hash short", func(m map[string]any) { m["hashes"] = map[string]string{"sha256": "ANdt819a8bZl4jKy3Z"} }, "hashes.sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := base()
			tc.mut(m)
			raw, _ := json.Marshal(m)
			_, err := ParseInfo(raw)
			var ie *InfoError
			if !errors.Is(err, ErrInvalidInfo) || !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("ParseInfo: %v, want field %s", err, tc.field)
			}
			// Decrypt refuses the same info.
			var in Info
			_ = json.Unmarshal(raw, &in)
			if _, err := Decrypt(&in, v.RustSDK.Ciphertext); !errors.Is(err, ErrInvalidInfo) {
				t.Fatalf("Decrypt: %v", err)
			}
		})
	}
	// Accepted variations: extra key_ops, padded base64.
	m := base()
	key(m)["key_ops"] = []string{"decrypt", "wrapKey", "encrypt"}
	key(m)["k"] = "Voq2nkPme_x8no5-Tjq_laDAdxE6iDbxnlQXxwFPgE4="
	m["iv"] = "i0DovxYdJEcAAAAAAAAAAA=="
	raw, _ := json.Marshal(m)
	if _, err := ParseInfo(raw); err != nil {
		t.Errorf("variations refused: %v", err)
	}
	if _, err := ParseInfo(bytes.Repeat([]byte(" "), MaxInfoSize+1)); !errors.Is(err, ErrInvalidInfo) {
		t.Error("oversized info accepted")
	}
}

func TestInfoRedaction(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	in := mustInfo(t, v.RustSDK.Info)
	for _, s := range []string{fmt.Sprint(in), fmt.Sprintf("%+v %#v", *in, *in)} {
		if strings.Contains(s, in.Key.K) {
			t.Errorf("key printed: %s", s)
		}
	}
}

func FuzzParseInfo(f *testing.F) {
	v := loadVectors(f)
	f.Add([]byte(v.RustSDK.Info))
	f.Add([]byte(v.SpecExample))
	f.Add([]byte(`{"v":"v2","key":{"kty":"oct","alg":"A256CTR","ext":true,"k":"","key_ops":[]},"iv":"","hashes":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInfo(b)
		if err != nil {
			return
		}
		raw, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseInfo(raw); err != nil {
			t.Fatalf("accepted info does not re-parse: %v", err)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	v := loadVectors(f)
	in := mustInfo(f, v.RustSDK.Info)
	f.Add(v.RustSDK.Ciphertext)
	f.Add(v.RustSDK.Ciphertext[:25])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := Decrypt(in, ct)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext with an error")
			}
			return
		}
		if !bytes.Equal(ct, v.RustSDK.Ciphertext) {
			t.Fatal("another ciphertext passed the hash")
		}
	})
}

func BenchmarkDecrypt(b *testing.B) {
	ct, info, _ := Encrypt(fixedReader(1), make([]byte, 1<<20))
	b.ReportAllocs()
	b.SetBytes(int64(len(ct)))
	for b.Loop() {
		if _, err := Decrypt(info, ct); err != nil {
			b.Fatal(err)
		}
	}
}
