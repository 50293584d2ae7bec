package canonicaljson

import (
	"errors"
	"strconv"
)

// Sentinel errors wrapped by [*SyntaxError]; test with errors.Is.
var (
	ErrSyntax          = errors.New("invalid JSON syntax")
	ErrDuplicateKey    = errors.New("duplicate object key")
	ErrNonInteger      = errors.New("number is not a plain integer (fraction, exponent or negative zero)")
	ErrNumberRange     = errors.New("integer outside [-(2^53)+1, 2^53-1]")
	ErrInvalidUTF8     = errors.New("invalid UTF-8")
	ErrLoneSurrogate   = errors.New("lone or mis-paired surrogate in \\u escape")
	ErrTooDeep         = errors.New("nesting too deep")
	ErrTooLarge        = errors.New("input too large")
	ErrNotObject       = errors.New("top-level value is not an object")
	ErrUnsupportedType = errors.New("unsupported value type")
)

// SyntaxError reports where and why input was rejected. Offset is the byte
// offset in the input at which the problem was detected. The error never
// quotes the input.
type SyntaxError struct {
	Offset int
	Err    error // one of the Err* sentinels
	Detail string
}

func (e *SyntaxError) Error() string {
	s := "canonicaljson: " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s + " at offset " + strconv.Itoa(e.Offset)
}

// Unwrap returns the sentinel.
func (e *SyntaxError) Unwrap() error { return e.Err }
