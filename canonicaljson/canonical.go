package canonicaljson

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// DefaultMaxSize is the input size bound used when [Options.MaxSize] is 0.
// Matrix events are at most 65536 bytes; device-key and cross-signing
// objects are far smaller.
const DefaultMaxSize = 1 << 20

// DefaultMaxDepth is the nesting bound used when [Options.MaxDepth] is 0.
const DefaultMaxDepth = 64

// maxSafeInteger is 2^53-1, the largest integer canonical JSON allows.
const maxSafeInteger = 1<<53 - 1

// Options tunes the decoder. The zero value is the strict default.
type Options struct {
	// MaxSize bounds the input length in bytes; 0 means DefaultMaxSize.
	MaxSize int
	// MaxDepth bounds the nesting of arrays and objects; 0 means
	// DefaultMaxDepth.
	MaxDepth int
	// NormalizeNumbers accepts numbers written with a fraction, an exponent
	// or as negative zero when their value is an integer in range, and
	// encodes them as plain integers (the spec's {"a":-0,"b":1e10} example).
	NormalizeNumbers bool
}

func (o Options) maxSize() int {
	if o.MaxSize <= 0 {
		return DefaultMaxSize
	}
	return o.MaxSize
}

func (o Options) maxDepth() int {
	if o.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return o.MaxDepth
}

// Canonicalize validates raw strictly (see the package documentation) and
// returns its canonical encoding, using the default [Options].
func Canonicalize(raw []byte) ([]byte, error) { return Options{}.Canonicalize(raw) }

// CanonicalizeWithout validates raw, which must be a JSON object, and returns
// the canonical encoding of that object without the named top-level keys.
// The omitted members are validated like the rest. This gives the bytes a
// Matrix signature covers: CanonicalizeWithout(obj, "signatures", "unsigned").
func CanonicalizeWithout(raw []byte, omit ...string) ([]byte, error) {
	return Options{}.CanonicalizeWithout(raw, omit...)
}

// Canonicalize is like the package-level [Canonicalize] with options o.
func (o Options) Canonicalize(raw []byte) ([]byte, error) {
	return o.AppendCanonical(make([]byte, 0, len(raw)), raw)
}

// AppendCanonical appends the canonical encoding of raw to dst.
func (o Options) AppendCanonical(dst, raw []byte) ([]byte, error) {
	return o.run(dst, raw, nil, false)
}

// CanonicalizeWithout is like the package-level [CanonicalizeWithout] with
// options o.
func (o Options) CanonicalizeWithout(raw []byte, omit ...string) ([]byte, error) {
	return o.run(make([]byte, 0, len(raw)), raw, omit, true)
}

// Valid reports whether raw passes strict validation with options o.
func (o Options) Valid(raw []byte) error {
	_, err := o.run(nil, raw, nil, false)
	return err
}

func (o Options) run(dst, raw []byte, omit []string, needObject bool) ([]byte, error) {
	if len(raw) > o.maxSize() {
		return nil, &SyntaxError{Offset: o.maxSize(), Err: ErrTooLarge}
	}
	p := canonicalizer{
		lexer: lexer{in: raw, maxDepth: o.maxDepth(), normalize: o.NormalizeNumbers},
		out:   dst,
		omit:  omit,
	}
	// Small fixed arrays cover typical Matrix objects without growing.
	var membersBuf [16]member
	var keysBuf [256]byte
	p.members, p.keys = membersBuf[:0], keysBuf[:0]
	p.skipWS()
	if needObject && (p.pos >= len(p.in) || p.in[p.pos] != '{') {
		return nil, p.fail(ErrNotObject, "")
	}
	if err := p.value(); err != nil {
		return nil, err
	}
	p.skipWS()
	if p.pos != len(p.in) {
		return nil, p.fail(ErrSyntax, "trailing data after value")
	}
	return p.out, nil
}

// lexer holds the shared tokenizer state.
type lexer struct {
	in        []byte
	pos       int
	depth     int
	maxDepth  int
	normalize bool
}

func (l *lexer) fail(err error, detail string) error {
	return &SyntaxError{Offset: l.pos, Err: err, Detail: detail}
}

func (l *lexer) skipWS() {
	for l.pos < len(l.in) {
		switch l.in[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
		default:
			return
		}
	}
}

func (l *lexer) literal(word string) error {
	if !bytes.HasPrefix(l.in[l.pos:], []byte(word)) {
		return l.fail(ErrSyntax, "invalid literal")
	}
	l.pos += len(word)
	return nil
}

func (l *lexer) enter() error {
	l.depth++
	if l.depth > l.maxDepth {
		return l.fail(ErrTooDeep, "")
	}
	return nil
}

// escapeTable[c] is non-zero for ASCII bytes that cannot be copied verbatim
// from the input into a canonical string: control characters, '"' and '\\'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

// str scans the string starting at l.in[l.pos] == '"'. If out is non-nil
// the canonical encoding (with quotes) is appended to *out; if dec is
// non-nil the decoded bytes are appended to *dec.
func (l *lexer) str(out, dec *[]byte) error {
	l.pos++ // opening quote
	if out != nil {
		*out = append(*out, '"')
	}
	in := l.in
	for {
		start := l.pos
		for l.pos < len(in) && plainASCII[in[l.pos]] {
			l.pos++
		}
		if l.pos > start {
			if out != nil {
				*out = append(*out, in[start:l.pos]...)
			}
			if dec != nil {
				*dec = append(*dec, in[start:l.pos]...)
			}
		}
		if l.pos >= len(in) {
			return l.fail(ErrSyntax, "unterminated string")
		}
		c := in[l.pos]
		switch {
		case c == '"':
			l.pos++
			if out != nil {
				*out = append(*out, '"')
			}
			return nil
		case c < 0x20:
			return l.fail(ErrSyntax, "control character in string")
		case c >= 0x80:
			// utf8.DecodeRune rejects overlong forms, encoded surrogates
			// and code points above U+10FFFF.
			r, size := utf8.DecodeRune(in[l.pos:])
			if r == utf8.RuneError && size <= 1 {
				return l.fail(ErrInvalidUTF8, "")
			}
			if out != nil {
				*out = append(*out, in[l.pos:l.pos+size]...)
			}
			if dec != nil {
				*dec = append(*dec, in[l.pos:l.pos+size]...)
			}
			l.pos += size
		default: // backslash
			r, err := l.escape()
			if err != nil {
				return err
			}
			if out != nil {
				*out = appendRune(*out, r)
			}
			if dec != nil {
				*dec = utf8.AppendRune(*dec, r)
			}
		}
	}
}

// escape decodes the escape sequence at l.in[l.pos] == '\\'.
func (l *lexer) escape() (rune, error) {
	in := l.in
	if l.pos+1 >= len(in) {
		return 0, l.fail(ErrSyntax, "unterminated escape")
	}
	c := in[l.pos+1]
	l.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		l.pos -= 2
		return 0, l.fail(ErrSyntax, "invalid escape")
	}
	r, ok := hex4(in[l.pos:])
	if !ok {
		return 0, l.fail(ErrSyntax, "invalid \\u escape")
	}
	l.pos += 4
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		l.pos -= 6
		return 0, l.fail(ErrLoneSurrogate, "")
	case r >= 0xd800 && r <= 0xdbff:
		if l.pos+6 > len(in) || in[l.pos] != '\\' || in[l.pos+1] != 'u' {
			return 0, l.fail(ErrLoneSurrogate, "")
		}
		lo, ok := hex4(in[l.pos+2:])
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return 0, l.fail(ErrLoneSurrogate, "")
		}
		l.pos += 6
		return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), nil
	}
	return r, nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendRune appends r in canonical form (inside a string).
func appendRune(b []byte, r rune) []byte {
	switch r {
	case '"':
		return append(b, '\\', '"')
	case '\\':
		return append(b, '\\', '\\')
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	if r < 0x20 {
		return append(b, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	}
	return utf8.AppendRune(b, r)
}

// appendString appends s (valid UTF-8) as a canonical JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		b = appendRune(b, rune(c))
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// number scans a number and returns its value.
func (l *lexer) number() (int64, error) {
	in := l.in
	start := l.pos
	neg := false
	if in[l.pos] == '-' {
		neg = true
		l.pos++
	}
	intStart := l.pos
	for l.pos < len(in) && in[l.pos] >= '0' && in[l.pos] <= '9' {
		l.pos++
	}
	intDigits := in[intStart:l.pos]
	if len(intDigits) == 0 {
		return 0, l.fail(ErrSyntax, "invalid number")
	}
	if len(intDigits) > 1 && intDigits[0] == '0' {
		l.pos = intStart
		return 0, l.fail(ErrSyntax, "leading zero in number")
	}
	var frac []byte
	exp := 0
	hasFracOrExp := false
	if l.pos < len(in) && in[l.pos] == '.' {
		hasFracOrExp = true
		l.pos++
		fs := l.pos
		for l.pos < len(in) && in[l.pos] >= '0' && in[l.pos] <= '9' {
			l.pos++
		}
		frac = in[fs:l.pos]
		if len(frac) == 0 {
			return 0, l.fail(ErrSyntax, "invalid number")
		}
	}
	if l.pos < len(in) && (in[l.pos] == 'e' || in[l.pos] == 'E') {
		hasFracOrExp = true
		l.pos++
		eneg := false
		if l.pos < len(in) && (in[l.pos] == '+' || in[l.pos] == '-') {
			eneg = in[l.pos] == '-'
			l.pos++
		}
		es := l.pos
		for l.pos < len(in) && in[l.pos] >= '0' && in[l.pos] <= '9' {
			if exp < 1_000_000 { // saturate; anything this large is out of range anyway
				exp = exp*10 + int(in[l.pos]-'0')
			}
			l.pos++
		}
		if l.pos == es {
			return 0, l.fail(ErrSyntax, "invalid number")
		}
		if eneg {
			exp = -exp
		}
	}
	isNegZero := neg && len(intDigits) == 1 && intDigits[0] == '0' && !hasFracOrExp
	if !l.normalize && (hasFracOrExp || isNegZero) {
		return 0, &SyntaxError{Offset: start, Err: ErrNonInteger}
	}
	if !hasFracOrExp {
		if len(intDigits) > 16 {
			return 0, &SyntaxError{Offset: start, Err: ErrNumberRange}
		}
		var v int64
		for _, c := range intDigits {
			v = v*10 + int64(c-'0')
		}
		if v > maxSafeInteger {
			return 0, &SyntaxError{Offset: start, Err: ErrNumberRange}
		}
		if neg {
			v = -v
		}
		return v, nil
	}
	// Normalising path: value = digits * 10^(exp - len(frac)).
	digits := make([]byte, 0, len(intDigits)+len(frac))
	digits = append(append(digits, intDigits...), frac...)
	exp -= len(frac)
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return 0, nil // any spelling of zero, including -0 and 0e5
	}
	for digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	if exp < 0 {
		return 0, &SyntaxError{Offset: start, Err: ErrNonInteger}
	}
	if len(digits)+exp > 16 {
		return 0, &SyntaxError{Offset: start, Err: ErrNumberRange}
	}
	var v int64
	for _, c := range digits {
		v = v*10 + int64(c-'0')
	}
	for range exp {
		v *= 10
	}
	if v > maxSafeInteger {
		return 0, &SyntaxError{Offset: start, Err: ErrNumberRange}
	}
	if neg {
		v = -v
	}
	return v, nil
}

// canonicalizer streams canonical output while parsing.
type canonicalizer struct {
	lexer
	out     []byte
	keys    []byte   // decoded keys of the objects being parsed
	members []member // members of the objects being parsed (a stack)
	scratch []byte
	omit    []string // top-level keys to leave out
}

type member struct {
	keyOff, keyEnd int // decoded key in keys
	start, end     int // canonical "key":value in out
	inOff          int // input offset of the key, for errors
}

func (p *canonicalizer) key(m member) []byte { return p.keys[m.keyOff:m.keyEnd] }

func (p *canonicalizer) value() error {
	if p.pos >= len(p.in) {
		return p.fail(ErrSyntax, "unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str(&p.out, nil)
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		v, err := p.number()
		if err != nil {
			return err
		}
		if !p.normalize || (p.pos-start <= 17 && isPlainInt(p.in[start:p.pos])) {
			p.out = append(p.out, p.in[start:p.pos]...)
		} else {
			p.out = appendInt(p.out, v)
		}
		return nil
	case c == 't':
		p.out = append(p.out, "true"...)
		return p.literal("true")
	case c == 'f':
		p.out = append(p.out, "false"...)
		return p.literal("false")
	case c == 'n':
		p.out = append(p.out, "null"...)
		return p.literal("null")
	default:
		return p.fail(ErrSyntax, "unexpected character")
	}
}

func isPlainInt(b []byte) bool {
	if b[0] == '-' {
		b = b[1:]
		if len(b) == 1 && b[0] == '0' {
			return false
		}
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}

func (p *canonicalizer) array() error {
	if err := p.enter(); err != nil {
		return err
	}
	p.pos++
	p.out = append(p.out, '[')
	p.skipWS()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.out = append(p.out, ']')
		p.depth--
		return nil
	}
	for {
		p.skipWS()
		if err := p.value(); err != nil {
			return err
		}
		p.skipWS()
		if p.pos >= len(p.in) {
			return p.fail(ErrSyntax, "unterminated array")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			p.out = append(p.out, ',')
		case ']':
			p.pos++
			p.out = append(p.out, ']')
			p.depth--
			return nil
		default:
			return p.fail(ErrSyntax, "expected ',' or ']'")
		}
	}
}

func (p *canonicalizer) object() error {
	if err := p.enter(); err != nil {
		return err
	}
	p.pos++
	p.out = append(p.out, '{')
	objStart := len(p.out)
	base := len(p.members)
	keyBase := len(p.keys)
	p.skipWS()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.out = append(p.out, '}')
		p.depth--
		return nil
	}
	for {
		p.skipWS()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return p.fail(ErrSyntax, "expected object key")
		}
		m := member{keyOff: len(p.keys), start: len(p.out), inOff: p.pos}
		if err := p.str(&p.out, &p.keys); err != nil {
			return err
		}
		m.keyEnd = len(p.keys)
		p.skipWS()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return p.fail(ErrSyntax, "expected ':'")
		}
		p.pos++
		p.out = append(p.out, ':')
		p.skipWS()
		if err := p.value(); err != nil {
			return err
		}
		m.end = len(p.out)
		p.members = append(p.members, m)
		p.skipWS()
		if p.pos >= len(p.in) {
			return p.fail(ErrSyntax, "unterminated object")
		}
		if p.in[p.pos] == ',' {
			p.pos++
			p.out = append(p.out, ',')
			continue
		}
		if p.in[p.pos] != '}' {
			return p.fail(ErrSyntax, "expected ',' or '}'")
		}
		p.pos++
		break
	}
	if err := p.finishObject(objStart, base); err != nil {
		return err
	}
	p.out = append(p.out, '}')
	p.members = p.members[:base]
	p.keys = p.keys[:keyBase]
	p.depth--
	return nil
}

// finishObject sorts the members of the object whose canonical body starts
// at out[objStart:], rejects duplicate keys and drops omitted top-level keys.
func (p *canonicalizer) finishObject(objStart, base int) error {
	ms := p.members[base:]
	sorted := true
	for i := 1; i < len(ms); i++ {
		if bytes.Compare(p.key(ms[i-1]), p.key(ms[i])) >= 0 {
			sorted = false
			break
		}
	}
	omitting := p.depth == 1 && len(p.omit) > 0
	if sorted && !omitting {
		return nil
	}
	if !sorted {
		slices.SortFunc(ms, func(a, b member) int {
			if c := bytes.Compare(p.key(a), p.key(b)); c != 0 {
				return c
			}
			return a.inOff - b.inOff
		})
		for i := 1; i < len(ms); i++ {
			if bytes.Equal(p.key(ms[i-1]), p.key(ms[i])) {
				return &SyntaxError{Offset: ms[i].inOff, Err: ErrDuplicateKey}
			}
		}
	}
	p.scratch = append(p.scratch[:0], p.out[objStart:]...)
	p.out = p.out[:objStart]
	first := true
	for _, m := range ms {
		if omitting && slices.Contains(p.omit, string(p.key(m))) {
			continue
		}
		if !first {
			p.out = append(p.out, ',')
		}
		first = false
		p.out = append(p.out, p.scratch[m.start-objStart:m.end-objStart]...)
	}
	return nil
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }
