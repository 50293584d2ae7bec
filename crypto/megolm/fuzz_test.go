package megolm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"myelin/keys"
)

// fuzzFixture is a fixed session with genuine messages, rebuilt identically
// for every fuzz input.
type fuzzFixture struct {
	key  SessionKey
	msgs [][]byte
	pts  [][]byte
}

func newFuzzFixture(t testing.TB) fuzzFixture {
	o := newOutbound(t, 0x70)
	fx := fuzzFixture{key: o.SessionKey()}
	for i, n := range []int{0, 5, 16, 40} {
		pt := seq(byte(i), n)
		fx.pts = append(fx.pts, pt)
		fx.msgs = append(fx.msgs, o.Encrypt(pt))
	}
	return fx
}

// addMutations seeds f with b and its boundary mutations: bit flips at the
// version, header, ciphertext edges, MAC and signature, and truncations.
func addMutations(f *testing.F, b []byte) {
	f.Add(b)
	for _, i := range []int{0, 1, 2, 3, 4, 5, len(b) - suffixSize - 1, len(b) - suffixSize, len(b) - signatureSize - 1, len(b) - signatureSize, len(b) - 1} {
		if i < 0 || i >= len(b) {
			continue
		}
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		f.Add(c)
	}
	for _, n := range []int{0, 1, 3, len(b) - suffixSize, len(b) - 1} {
		if n >= 0 && n <= len(b) {
			f.Add(append([]byte(nil), b[:n]...))
		}
	}
	f.Add(append(append([]byte(nil), b...), 0))
}

// vodozemacCorpus returns the files of one of vodozemac's AFL seed corpora
// (testdata/vodozemac-afl/SOURCE).
func vodozemacCorpus(f *testing.F, target string) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "vodozemac-afl", target, "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no vodozemac corpus for %s: %v", target, err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzParseMessage(f *testing.F) {
	for _, b := range vodozemacCorpus(f, "megolm-decoding") {
		f.Add(b)
	}
	fx := newFuzzFixture(f)
	for _, m := range fx.msgs {
		addMutations(f, m)
	}
	v := loadVectors(f)
	for _, m := range v.Messages {
		f.Add(mustB64(f, m.Message))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		if got := m.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("non-canonical message accepted: %x re-encodes as %x", b, got)
		}
	})
}

// FuzzDecrypt checks that only the genuine messages decrypt (to their
// plaintexts), and that any other input leaves the session unchanged.
func FuzzDecrypt(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, m := range fx.msgs {
		addMutations(f, m)
	}
	for _, b := range vodozemacCorpus(f, "megolm-decoding") {
		f.Add(b)
	}
	base, err := NewInboundSession(fx.key)
	if err != nil {
		f.Fatal(err)
	}
	before := state(base)
	f.Fuzz(func(t *testing.T, b []byte) {
		in := *base
		pt, idx, err := in.Decrypt(b)
		if err != nil {
			if pt != nil || idx != 0 {
				t.Fatal("failed decrypt returned output")
			}
			if state(&in) != before {
				t.Fatal("failed decrypt changed the session")
			}
			return
		}
		for i, m := range fx.msgs {
			if bytes.Equal(b, m) {
				if idx != uint32(i) || !bytes.Equal(pt, fx.pts[i]) {
					t.Fatalf("genuine message %d decrypted wrongly", i)
				}
				return
			}
		}
		t.Fatalf("a non-genuine message decrypted: %x", b)
	})
}

func FuzzParseSessionKey(f *testing.F) {
	v := loadVectors(f)
	f.Add(v.SessionKy)
	f.Add(v.SessionKy + "=")
	f.Add(v.Export)
	for _, b := range vodozemacCorpus(f, "megolm-session-creation") {
		f.Add(keys.EncodeBase64(b))
	}
	good := mustB64(f, v.SessionKy)
	for _, i := range []int{0, 4, 5, 200, ExportedSessionKeySize, SessionKeySize - 1} {
		c := append([]byte(nil), good...)
		c[i] ^= 1
		f.Add(keys.EncodeBase64(c))
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseSessionKey(s)
		if err != nil {
			return
		}
		if got := k.String(); got != strings.TrimRight(s, "=") {
			t.Fatalf("session key %q re-encodes as %q", s, got)
		}
		in, err := NewInboundSession(k)
		if err != nil || !in.SigningKeyVerified() || in.FirstKnownIndex() != k.Index() {
			t.Fatalf("accepted key makes no session: %v", err)
		}
	})
}

func FuzzParseExportedSessionKey(f *testing.F) {
	v := loadVectors(f)
	f.Add(v.Export)
	f.Add(v.Export + "=")
	f.Add(v.SessionKy)
	for _, b := range vodozemacCorpus(f, "megolm-session-import") {
		f.Add(keys.EncodeBase64(b))
	}
	good := mustB64(f, v.Export)
	for _, i := range []int{0, 4, 5, ExportedSessionKeySize - 1} {
		c := append([]byte(nil), good...)
		c[i] ^= 1
		f.Add(keys.EncodeBase64(c))
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseExportedSessionKey(s)
		if err != nil {
			return
		}
		if got := k.String(); got != strings.TrimRight(s, "=") {
			t.Fatalf("exported key %q re-encodes as %q", s, got)
		}
		in, err := ImportInboundSession(k)
		if err != nil || in.SigningKeyVerified() {
			t.Fatalf("import: %v", err)
		}
		e, err := in.Export(k.Index())
		if err != nil || e.String() != k.String() {
			t.Fatalf("export at the first index differs: %v", err)
		}
	})
}

func FuzzUnpickle(f *testing.F) {
	o, in := newPair(f, 0x7a)
	in.Decrypt(o.Encrypt([]byte("x")))
	op, _ := o.Pickle(testPickleKey)
	ip, _ := in.Pickle(testPickleKey)
	for _, p := range [][]byte{op, ip} {
		f.Add(p)
		for _, i := range []int{0, 1, 2, 40, len(p) - 1} {
			c := append([]byte(nil), p...)
			c[i] ^= 1
			f.Add(c)
		}
		f.Add(p[:len(p)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if o, err := UnpickleOutboundSession(testPickleKey, b); err == nil {
			if p, _ := o.Pickle(testPickleKey); !bytes.Equal(p, b) {
				t.Fatal("outbound pickle does not round-trip")
			}
		}
		if s, err := UnpickleInboundSession(testPickleKey, b); err == nil {
			if p, _ := s.Pickle(testPickleKey); !bytes.Equal(p, b) {
				t.Fatal("inbound pickle does not round-trip")
			}
		}
	})
}
