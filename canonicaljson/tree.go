package canonicaljson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Parse validates raw strictly with the default [Options] and returns it as
// a tree of map[string]any, []any, string, int64, bool and nil. Keys are
// exact (encoding/json's case-insensitive field matching never applies).
func Parse(raw []byte) (any, error) { return Options{}.Parse(raw) }

// ParseObject is [Parse] for input that must be a JSON object.
func ParseObject(raw []byte) (map[string]any, error) { return Options{}.ParseObject(raw) }

// Parse is like the package-level [Parse] with options o.
func (o Options) Parse(raw []byte) (any, error) {
	if len(raw) > o.maxSize() {
		return nil, &SyntaxError{Offset: o.maxSize(), Err: ErrTooLarge}
	}
	t := treeParser{lexer: lexer{in: raw, maxDepth: o.maxDepth(), normalize: o.NormalizeNumbers}}
	t.skipWS()
	v, err := t.value()
	if err != nil {
		return nil, err
	}
	t.skipWS()
	if t.pos != len(t.in) {
		return nil, t.fail(ErrSyntax, "trailing data after value")
	}
	return v, nil
}

// ParseObject is like the package-level [ParseObject] with options o.
func (o Options) ParseObject(raw []byte) (map[string]any, error) {
	i := 0
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	if i >= len(raw) || raw[i] != '{' {
		return nil, &SyntaxError{Offset: i, Err: ErrNotObject}
	}
	v, err := o.Parse(raw)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

type treeParser struct {
	lexer
	buf []byte
}

func (t *treeParser) value() (any, error) {
	if t.pos >= len(t.in) {
		return nil, t.fail(ErrSyntax, "unexpected end of input")
	}
	switch c := t.in[t.pos]; {
	case c == '{':
		return t.object()
	case c == '[':
		return t.array()
	case c == '"':
		t.buf = t.buf[:0]
		if err := t.str(nil, &t.buf); err != nil {
			return nil, err
		}
		return string(t.buf), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return t.number()
	case c == 't':
		return true, t.literal("true")
	case c == 'f':
		return false, t.literal("false")
	case c == 'n':
		return nil, t.literal("null")
	default:
		return nil, t.fail(ErrSyntax, "unexpected character")
	}
}

func (t *treeParser) array() (any, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	t.pos++
	arr := []any{}
	t.skipWS()
	if t.pos < len(t.in) && t.in[t.pos] == ']' {
		t.pos++
		t.depth--
		return arr, nil
	}
	for {
		t.skipWS()
		v, err := t.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		t.skipWS()
		if t.pos >= len(t.in) {
			return nil, t.fail(ErrSyntax, "unterminated array")
		}
		switch t.in[t.pos] {
		case ',':
			t.pos++
		case ']':
			t.pos++
			t.depth--
			return arr, nil
		default:
			return nil, t.fail(ErrSyntax, "expected ',' or ']'")
		}
	}
}

func (t *treeParser) object() (any, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	t.pos++
	obj := map[string]any{}
	t.skipWS()
	if t.pos < len(t.in) && t.in[t.pos] == '}' {
		t.pos++
		t.depth--
		return obj, nil
	}
	for {
		t.skipWS()
		if t.pos >= len(t.in) || t.in[t.pos] != '"' {
			return nil, t.fail(ErrSyntax, "expected object key")
		}
		keyOff := t.pos
		t.buf = t.buf[:0]
		if err := t.str(nil, &t.buf); err != nil {
			return nil, err
		}
		k := string(t.buf)
		if _, dup := obj[k]; dup {
			return nil, &SyntaxError{Offset: keyOff, Err: ErrDuplicateKey}
		}
		t.skipWS()
		if t.pos >= len(t.in) || t.in[t.pos] != ':' {
			return nil, t.fail(ErrSyntax, "expected ':'")
		}
		t.pos++
		t.skipWS()
		v, err := t.value()
		if err != nil {
			return nil, err
		}
		obj[k] = v
		t.skipWS()
		if t.pos >= len(t.in) {
			return nil, t.fail(ErrSyntax, "unterminated object")
		}
		switch t.in[t.pos] {
		case ',':
			t.pos++
		case '}':
			t.pos++
			t.depth--
			return obj, nil
		default:
			return nil, t.fail(ErrSyntax, "expected ',' or '}'")
		}
	}
}

// Marshal returns the canonical encoding of v. Trees as returned by [Parse]
// (map[string]any, []any, string, integer types, bool, nil) are encoded
// directly; any other value goes through encoding/json (with HTML escaping
// off) and then [Canonicalize], so floats, non-integral numbers and
// integers out of range are errors. Strings must be valid UTF-8.
func Marshal(v any) ([]byte, error) {
	if b, ok, err := appendTree(nil, v, 0); ok {
		return b, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("canonicaljson: marshal: %w", err)
	}
	// Our own value: no size bound, the default depth bound.
	return Options{MaxSize: buf.Len()}.Canonicalize(buf.Bytes())
}

// appendTree encodes a tree value. ok is false when v (or something inside
// it) is not a tree type and the encoding/json path must be used instead.
func appendTree(b []byte, v any, depth int) (out []byte, ok bool, err error) {
	if depth > DefaultMaxDepth {
		return nil, true, &SyntaxError{Err: ErrTooDeep}
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true, nil
	case bool:
		if x {
			return append(b, "true"...), true, nil
		}
		return append(b, "false"...), true, nil
	case string:
		if !utf8Valid(x) {
			return nil, true, &SyntaxError{Err: ErrInvalidUTF8, Detail: "in string value"}
		}
		return appendString(b, x), true, nil
	case int64:
		return appendCheckedInt(b, x)
	case int:
		return appendCheckedInt(b, int64(x))
	case int32:
		return appendInt(b, int64(x)), true, nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok, err = appendTree(b, e, depth+1); !ok || err != nil {
				return nil, ok, err
			}
		}
		return append(b, ']'), true, nil
	case []string:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok, err = appendTree(b, e, depth+1); !ok || err != nil {
				return nil, ok, err
			}
		}
		return append(b, ']'), true, nil
	case map[string]any:
		return appendMap(b, x, depth)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return appendMap(b, m, depth)
	default:
		return nil, false, nil
	}
}

func appendMap(b []byte, x map[string]any, depth int) (out []byte, ok bool, err error) {
	ks := make([]string, 0, len(x))
	for k := range x {
		if !utf8Valid(k) {
			return nil, true, &SyntaxError{Err: ErrInvalidUTF8, Detail: "in object key"}
		}
		ks = append(ks, k)
	}
	slices.Sort(ks) // byte order of UTF-8 is code point order
	b = append(b, '{')
	for i, k := range ks {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		if b, ok, err = appendTree(b, x[k], depth+1); !ok || err != nil {
			return nil, ok, err
		}
	}
	return append(b, '}'), true, nil
}

func appendCheckedInt(b []byte, v int64) ([]byte, bool, error) {
	if v > maxSafeInteger || v < -maxSafeInteger {
		return nil, true, &SyntaxError{Err: ErrNumberRange}
	}
	return appendInt(b, v), true, nil
}
