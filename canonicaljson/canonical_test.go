package canonicaljson

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestSpecExamples(t *testing.T) {
	raw, err := os.ReadFile("testdata/spec_examples.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Source   string
		Examples []struct{ Input, Canonical string }
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Examples) != 10 {
		t.Fatalf("want the spec's 10 examples, got %d", len(f.Examples))
	}
	for i, ex := range f.Examples {
		got, err := Canonicalize([]byte(ex.Input))
		if strings.Contains(ex.Input, "1e10") {
			// The spec's number-normalisation example: refused by default,
			// produced exactly with NormalizeNumbers.
			if !errors.Is(err, ErrNonInteger) {
				t.Errorf("example %d: strict mode err = %v, want ErrNonInteger", i, err)
			}
			got, err = Options{NormalizeNumbers: true}.Canonicalize([]byte(ex.Input))
		}
		if err != nil || string(got) != ex.Canonical {
			t.Errorf("example %d: got %s, %v; want %s", i, got, err, ex.Canonical)
		}
	}
}

func TestEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"\u0000\u0001\u001f"`, `"\u0000\u0001\u001f"`},
		{`"\u001F\u000B"`, `"\u001f\u000b"`},
		{`"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
		{`"\u0008\u000c\u000a\u000d\u0009"`, `"\b\f\n\r\t"`},
		{`"\"\\\/"`, `"\"\\/"`},
		{`"\u0022\u005c"`, `"\"\\"`},
		{`"<>&\u003c\u003e\u0026"`, `"<>&<>&"`},
		{`"\u2028\u2029"`, "\"\u2028\u2029\""},
		{"\"\u2028\"", "\"\u2028\""},
		{`"\u007f"`, "\"\x7f\""},
		{`"\u00e9\u65E5\ud83d\ude00"`, `"é日😀"`},
		{`"\uFFFF"`, "\"\uffff\""},
	}
	for _, tt := range tests {
		got, err := Canonicalize([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("Canonicalize(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestSortingByCodePoint(t *testing.T) {
	// UTF-16 order would put U+FF61 after U+1F600's surrogates; code point
	// (UTF-8 byte) order puts it first.
	in := `{"😀":1,"｡":2,"b":3,"B":4,"\u0061":5,"aa":6,"":7}`
	want := `{"":7,"B":4,"a":5,"aa":6,"b":3,"｡":2,"😀":1}`
	got, err := Canonicalize([]byte(in))
	if err != nil || string(got) != want {
		t.Fatalf("got %s, %v; want %s", got, err, want)
	}
}

func TestNumbers(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
		norm     string // result with NormalizeNumbers ("" = same error)
	}{
		{"0", "0", nil, "0"},
		{"-1", "-1", nil, "-1"},
		{"9007199254740991", "9007199254740991", nil, "9007199254740991"},
		{"-9007199254740991", "-9007199254740991", nil, "-9007199254740991"},
		{"9007199254740992", "", ErrNumberRange, ""},
		{"-9007199254740992", "", ErrNumberRange, ""},
		{"100000000000000000000000", "", ErrNumberRange, ""},
		{"-0", "", ErrNonInteger, "0"},
		{"1.0", "", ErrNonInteger, "1"},
		{"1.5", "", ErrNonInteger, ""},
		{"1e10", "", ErrNonInteger, "10000000000"},
		{"1E+2", "", ErrNonInteger, "100"},
		{"120e-1", "", ErrNonInteger, "12"},
		{"-0.0e5", "", ErrNonInteger, "0"},
		{"1e16", "", ErrNonInteger, ""},
		{"9.007199254740991e15", "", ErrNonInteger, "9007199254740991"},
		{"1e999999999999", "", ErrNonInteger, ""},
		{"1e-999999999999", "", ErrNonInteger, ""},
		{"01", "", ErrSyntax, ""},
		{"-", "", ErrSyntax, ""},
		{"1.", "", ErrSyntax, ""},
		{"1e", "", ErrSyntax, ""},
		{"+1", "", ErrSyntax, ""},
		{".5", "", ErrSyntax, ""},
	}
	for _, tt := range tests {
		got, err := Canonicalize([]byte(tt.in))
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Canonicalize(%s) err = %v, want %v", tt.in, err, tt.err)
			}
		} else if err != nil || string(got) != tt.want {
			t.Errorf("Canonicalize(%s) = %s, %v", tt.in, got, err)
		}
		got, err = Options{NormalizeNumbers: true}.Canonicalize([]byte(tt.in))
		want := tt.norm
		if want == "" {
			want = tt.want
		}
		if want == "" {
			if err == nil {
				t.Errorf("normalising Canonicalize(%s) = %s, want error", tt.in, got)
			}
		} else if err != nil || string(got) != want {
			t.Errorf("normalising Canonicalize(%s) = %s, %v; want %s", tt.in, got, err, want)
		}
	}
}

func TestRejects(t *testing.T) {
	deep := strings.Repeat("[", DefaultMaxDepth+1) + strings.Repeat("]", DefaultMaxDepth+1)
	okDeep := strings.Repeat("[", DefaultMaxDepth) + strings.Repeat("]", DefaultMaxDepth)
	if _, err := Canonicalize([]byte(okDeep)); err != nil {
		t.Fatalf("depth %d rejected: %v", DefaultMaxDepth, err)
	}
	tests := []struct {
		name, in string
		err      error
		offset   int
	}{
		{"duplicate key", `{"a":1,"a":2}`, ErrDuplicateKey, 7},
		{"duplicate key via escape", `{"a":1,"\u0061":2}`, ErrDuplicateKey, 7},
		{"duplicate key unsorted", `{"b":1,"a":2,"b":3}`, ErrDuplicateKey, 13},
		{"duplicate nested", `{"x":[{"k":1,"k":1}]}`, ErrDuplicateKey, 13},
		{"duplicate deep", `{"a":{"b":{"c":{"d":1,"d":1}}}}`, ErrDuplicateKey, 22},
		{"float", `{"a":1.5}`, ErrNonInteger, 5},
		{"too big", `{"a":[9007199254740992]}`, ErrNumberRange, 6},
		{"invalid utf8", "\"a\xffb\"", ErrInvalidUTF8, 2},
		{"overlong utf8", "\"\xc0\xaf\"", ErrInvalidUTF8, 1},
		{"encoded surrogate", "\"\xed\xa0\x80\"", ErrInvalidUTF8, 1},
		{"invalid utf8 in key", "{\"\xff\":1}", ErrInvalidUTF8, 2},
		{"lone high surrogate", `"\ud83d"`, ErrLoneSurrogate, 7},
		{"lone low surrogate", `"\ude00"`, ErrLoneSurrogate, 1},
		{"high then non-low", `"\ud83d\u0041"`, ErrLoneSurrogate, 7},
		{"high then high", `"\ud83d\ud83d"`, ErrLoneSurrogate, 7},
		{"too deep", deep, ErrTooDeep, DefaultMaxDepth},
		{"raw control char", "\"a\nb\"", ErrSyntax, 2},
		{"bad escape", `"\x"`, ErrSyntax, 1},
		{"short unicode escape", `"\u12"`, ErrSyntax, 3},
		{"trailing comma", `{"a":1,}`, ErrSyntax, 7},
		{"trailing data", `{} {}`, ErrSyntax, 3},
		{"single quotes", `{'a':1}`, ErrSyntax, 1},
		{"empty", ``, ErrSyntax, 0},
		{"bad literal", `tru`, ErrSyntax, 0},
		{"NaN", `NaN`, ErrSyntax, 0},
		{"unterminated", `{"a":"b`, ErrSyntax, 7},
		{"comment", `{/**/}`, ErrSyntax, 1},
	}
	for _, tt := range tests {
		for _, parse := range []struct {
			name string
			f    func([]byte) error
		}{
			{"Canonicalize", func(b []byte) error { _, err := Canonicalize(b); return err }},
			{"Parse", func(b []byte) error { _, err := Parse(b); return err }},
		} {
			err := parse.f([]byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Errorf("%s %s: err = %v, want %v", parse.name, tt.name, err, tt.err)
				continue
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("%s %s: error type %T", parse.name, tt.name, err)
			} else if se.Offset != tt.offset && tt.err != ErrDuplicateKey {
				t.Errorf("%s %s: offset %d, want %d", parse.name, tt.name, se.Offset, tt.offset)
			} else if tt.err == ErrDuplicateKey && parse.name == "Canonicalize" && se.Offset != tt.offset {
				t.Errorf("%s %s: offset %d, want %d", parse.name, tt.name, se.Offset, tt.offset)
			}
			if !strings.HasPrefix(err.Error(), "canonicaljson: ") {
				t.Errorf("%s %s: message %q", parse.name, tt.name, err)
			}
		}
	}
}

func TestSizeBound(t *testing.T) {
	big := []byte(`"` + strings.Repeat("a", 100) + `"`)
	if _, err := (Options{MaxSize: 50}).Canonicalize(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if _, err := (Options{MaxSize: 50}).Parse(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if _, err := (Options{MaxSize: 102}).Canonicalize(big); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte(" "), DefaultMaxSize+1)
	if _, err := Canonicalize(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("default bound: err = %v", err)
	}
}

func TestCanonicalizeWithout(t *testing.T) {
	in := `{"unsigned":{"age":1},"b":{"signatures":1},"signatures":{"x":{}},"a":1}`
	got, err := CanonicalizeWithout([]byte(in), "signatures", "unsigned")
	if err != nil || string(got) != `{"a":1,"b":{"signatures":1}}` {
		t.Fatalf("got %s, %v", got, err)
	}
	// Omitted members are still validated.
	if _, err := CanonicalizeWithout([]byte(`{"a":1,"unsigned":{"x":1,"x":2}}`), "unsigned"); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("err = %v", err)
	}
	if _, err := CanonicalizeWithout([]byte(`[1]`), "unsigned"); !errors.Is(err, ErrNotObject) {
		t.Fatalf("err = %v", err)
	}
	// Already sorted input with an omitted key in the middle.
	got, err = CanonicalizeWithout([]byte(`{"a":1,"signatures":{},"z":2}`), "signatures")
	if err != nil || string(got) != `{"a":1,"z":2}` {
		t.Fatalf("got %s, %v", got, err)
	}
}

func TestParseAndMarshal(t *testing.T) {
	in := `{"b":[1,-2,"x\u2028<",true,false,null,{}],"a":{"z":"\u0000","y":[]}}`
	v, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Canonicalize([]byte(in))
	got, err := Marshal(v)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Marshal(Parse(x)) = %s, %v; want %s", got, err, want)
	}
	m := v.(map[string]any)
	if m["b"].([]any)[1] != int64(-2) {
		t.Fatalf("numbers decode as int64: %T", m["b"].([]any)[1])
	}
	type S struct {
		Name  string            `json:"name"`
		HTML  string            `json:"html"`
		Count int               `json:"count"`
		Map   map[string]string `json:"map"`
	}
	got, err = Marshal(S{"x", "<a&b>\u2028", 3, map[string]string{"b": "1", "a": "2"}})
	if err != nil || string(got) != "{\"count\":3,\"html\":\"<a&b>\u2028\",\"map\":{\"a\":\"2\",\"b\":\"1\"},\"name\":\"x\"}" {
		t.Fatalf("Marshal(struct) = %s, %v", got, err)
	}
	for _, bad := range []any{1.5, map[string]any{"a": int64(1) << 53}, struct{ F float64 }{0.5}, "\xff"} {
		if _, err := Marshal(bad); err == nil {
			t.Errorf("Marshal(%#v) succeeded", bad)
		}
	}
	if _, err := ParseObject([]byte(` [1]`)); !errors.Is(err, ErrNotObject) {
		t.Fatalf("ParseObject(array) err = %v", err)
	}
}

// TestStable checks canonical(decode(x)) is a fixed point and agrees with
// the tree path, on a corpus of hand-written inputs.
func TestStable(t *testing.T) {
	for _, in := range stabilityCorpus {
		checkStable(t, []byte(in))
	}
}

var stabilityCorpus = []string{
	`{}`, `[]`, `""`, `0`, `true`, ` null `,
	`{"z":{"y":{"x":[3,2,1]}},"a":"\ud83d\ude00","m":"\t\u0001"}`,
	`[{"b":1,"a":2},{"d":{"f":1,"e":2}}]`,
	typicalDeviceKeys,
}

func checkStable(t *testing.T, in []byte) {
	t.Helper()
	c1, err := Canonicalize(in)
	if err != nil {
		if _, perr := Parse(in); perr == nil {
			t.Fatalf("Canonicalize rejects %q (%v) but Parse accepts", in, err)
		}
		return
	}
	c2, err := Canonicalize(c1)
	if err != nil || !bytes.Equal(c1, c2) {
		t.Fatalf("not stable: %q -> %q -> %q, %v", in, c1, c2, err)
	}
	v, err := Parse(in)
	if err != nil {
		t.Fatalf("Parse rejects %q (%v) but Canonicalize accepts", in, err)
	}
	c3, err := Marshal(v)
	if err != nil || !bytes.Equal(c1, c3) {
		t.Fatalf("tree path differs on %q: %q vs %q, %v", in, c1, c3, err)
	}
	// Canonical output is valid JSON with the same meaning.
	var a, b any
	if json.Unmarshal(in, &a) != nil || json.Unmarshal(c1, &b) != nil {
		t.Fatalf("encoding/json disagrees on validity of %q / %q", in, c1)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("meaning changed: %s vs %s", ja, jb)
	}
	// No insignificant whitespace, and no escapes beyond the required ones.
	if bytes.ContainsAny(c1, "\n\r") {
		t.Fatalf("raw newline in canonical output %q", c1)
	}
	for _, e := range []string{`\/`, `\u00`, `\u2028`} {
		for i := 0; ; {
			j := bytes.Index(c1[i:], []byte(e))
			if j < 0 {
				break
			}
			switch {
			case precededByBackslash(c1, i+j):
				// An escaped backslash followed by the same letters: text.
			case e == `\u00`:
				// Allowed only for control characters without a short escape.
				if i+j+6 > len(c1) {
					t.Fatalf("truncated escape in %q", c1)
				}
				h := c1[i+j+4 : i+j+6]
				if h[0] > '1' || bytes.Equal(h, []byte("08")) || bytes.Equal(h, []byte("09")) ||
					bytes.Equal(h, []byte("0a")) || bytes.Equal(h, []byte("0c")) || bytes.Equal(h, []byte("0d")) {
					t.Fatalf("needless escape %q in %q", h, c1)
				}
			default:
				t.Fatalf("needless escape %s in %q", e, c1)
			}
			i += j + 1
		}
	}
}

// precededByBackslash reports whether the backslash at i is itself escaped.
func precededByBackslash(b []byte, i int) bool {
	n := 0
	for i > 0 && b[i-1] == '\\' {
		n++
		i--
	}
	return n%2 == 1
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range stabilityCorpus {
		f.Add([]byte(s))
	}
	for _, s := range []string{`{"a":1,"a":2}`, `"\ud83d"`, `1e10`, `-0`, "\"\xff\"", `{"a":[{"b":{}}]}`, `"\u0000\\\""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkStable(t, in)
		// The normalising mode accepts a superset and is also stable.
		o := Options{NormalizeNumbers: true}
		n1, err := o.Canonicalize(in)
		if err != nil {
			if _, err2 := Canonicalize(in); err2 == nil {
				t.Fatalf("normalising mode rejects what strict mode accepts: %q", in)
			}
			return
		}
		n2, err := Canonicalize(n1)
		if err != nil || !bytes.Equal(n1, n2) {
			t.Fatalf("normalised output not canonical: %q -> %q (%v)", in, n1, err)
		}
	})
}
