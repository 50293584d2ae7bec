package e2ee_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"

	"myelin/e2ee"
)

// B15: hashes are checked before decryption; only v2 A256CTR; sizes capped.
func TestB15AttachmentTampering(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{5})
	pt := bytes.Repeat([]byte("image bytes "), 1000)
	ct, f, err := e2ee.EncryptAttachment(rnd, pt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2ee.DecryptAttachment(ct, f, 1<<20)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("round trip: %v", err)
	}
	flipped := bytes.Clone(ct)
	flipped[10] ^= 1
	cases := []struct {
		name string
		ct   []byte
		f    func(*e2ee.EncryptedFile)
		max  int
		want error
	}{
		{"modified bytes", flipped, nil, 1 << 20, e2ee.ErrAttachmentHash},
		{"truncated", ct[:len(ct)-1], nil, 1 << 20, e2ee.ErrAttachmentHash},
		{"too large", ct, nil, len(ct) - 1, e2ee.ErrAttachmentTooLarge},
		{"v1", ct, func(f *e2ee.EncryptedFile) { f.V = "v1" }, 1 << 20, e2ee.ErrAttachmentInvalid},
		{"other alg", ct, func(f *e2ee.EncryptedFile) { f.Key.Alg = "A128CTR" }, 1 << 20, e2ee.ErrAttachmentInvalid},
		{"no hash", ct, func(f *e2ee.EncryptedFile) { f.Hashes = nil }, 1 << 20, e2ee.ErrAttachmentInvalid},
		{"short key", ct, func(f *e2ee.EncryptedFile) { f.Key.K = "AAAA" }, 1 << 20, e2ee.ErrAttachmentInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ff := *f
			ff.Key.KeyOps = append([]string(nil), f.Key.KeyOps...)
			ff.Hashes = map[string]string{"sha256": f.Hashes["sha256"]}
			if tc.f != nil {
				tc.f(&ff)
			}
			if _, err := e2ee.DecryptAttachment(tc.ct, &ff, tc.max); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// The IV's counter half is zero (spec) and keys differ per file.
	_, f2, _ := e2ee.EncryptAttachment(rnd, pt)
	if f2.Key.K == f.Key.K || f2.IV == f.IV {
		t.Fatal("key or IV reused")
	}
}

func FuzzDecryptAttachment(f *testing.F) {
	ct, info, _ := e2ee.EncryptAttachment(rand.NewChaCha8([32]byte{}), []byte("seed"))
	b, _ := json.Marshal(info)
	f.Add(ct, b)
	f.Add([]byte{}, []byte(`{"v":"v2"}`))
	f.Fuzz(func(t *testing.T, ct, infoJSON []byte) {
		var fi e2ee.EncryptedFile
		if json.Unmarshal(infoJSON, &fi) != nil {
			return
		}
		pt, err := e2ee.DecryptAttachment(ct, &fi, 1<<16)
		if err == nil && len(pt) != len(ct) {
			t.Fatal("length changed")
		}
	})
}
