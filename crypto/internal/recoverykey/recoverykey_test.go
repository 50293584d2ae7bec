package recoverykey

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

func vectors(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestVectorsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range vectors(t) {
		k, err := Decode(v)
		if err != nil {
			t.Fatalf("Decode(%q): %v", v, err)
		}
		if got := Encode(&k); got != v {
			t.Errorf("Encode(Decode(%q)) = %q", v, got)
		}
		// Whitespace of any kind, anywhere, is ignored.
		messy := " \t" + strings.ReplaceAll(v, " ", "\n") + "\r\n"
		k2, err := Decode(messy)
		if err != nil || k2 != k {
			t.Errorf("Decode with odd whitespace: %v", err)
		}
	}
}

func TestEncodeShape(t *testing.T) {
	t.Parallel()
	var k [KeySize]byte
	for i := range k {
		k[i] = byte(i * 7)
	}
	s := Encode(&k)
	groups := strings.Split(s, " ")
	for i, g := range groups {
		if len(g) != 4 && i != len(groups)-1 {
			t.Fatalf("group %d %q is not 4 characters", i, g)
		}
	}
	if !strings.HasPrefix(s, "Es") {
		t.Errorf("recovery keys start with Es, got %q", s[:2])
	}
	back, err := Decode(s)
	if err != nil || back != k {
		t.Fatalf("round trip: %v", err)
	}
}

func encodeRaw(raw []byte) string { return string(base58Encode(raw)) }

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	good, err := Decode(vectors(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	raw := func(mut func(b []byte) []byte) string {
		b := append([]byte{0x8B, 0x01}, good[:]...)
		var p byte
		for _, x := range b {
			p ^= x
		}
		b = append(b, p)
		return encodeRaw(mut(b))
	}
	fixParity := func(b []byte) []byte {
		var p byte
		for _, x := range b[:len(b)-1] {
			p ^= x
		}
		b[len(b)-1] = p
		return b
	}
	cases := []struct {
		name, in, reason string
	}{
		{"empty", "", "wrong length"},
		{"bad parity", raw(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "wrong parity"},
		{"flipped key bit", raw(func(b []byte) []byte { b[5] ^= 0x10; return b }), "wrong parity"},
		{"wrong prefix byte 0", raw(func(b []byte) []byte { b[0] = 0x8C; return fixParity(b) }), "wrong prefix"},
		{"wrong prefix byte 1", raw(func(b []byte) []byte { b[1] = 0x02; return fixParity(b) }), "wrong prefix"},
		{"one byte short", raw(func(b []byte) []byte { b = append(b[:33], 0); return fixParity(b) }), "wrong length"},
		{"one byte long", raw(func(b []byte) []byte { b = append(b, 0); return fixParity(b) }), "wrong length"},
		{"character 0", "0" + vectors(t)[0][1:], "not base58"},
		{"character l", "l" + vectors(t)[0][1:], "not base58"},
		{"non-ASCII", vectors(t)[0] + "é", "not base58"},
		{"too long", strings.Repeat(" ", MaxTextLength) + vectors(t)[0], "too long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(c.in)
			var e *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &e) || e.Reason != c.reason {
				t.Fatalf("Decode: err %v, want reason %q", err, c.reason)
			}
		})
	}
}

func TestBase58LeadingZeros(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{{}, {0}, {0, 0, 1}, {0, 0xff, 0}, {57}, {58}} {
		enc := base58Encode(in)
		dec, ok := base58Decode(enc)
		if !ok || string(dec) != string(in) {
			t.Errorf("base58 round trip of %x: %q -> %x", in, enc, dec)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range vectors(f) {
		f.Add(v)
		f.Add(strings.ReplaceAll(v, " ", ""))
		f.Add(v[:len(v)-1])
	}
	f.Add("1111")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := Decode(s)
		if err != nil {
			return
		}
		again, err := Decode(Encode(&k))
		if err != nil || again != k {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
	})
}
