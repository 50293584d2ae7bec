package canonicaljson

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors wrapped by [*SyntaxError]; test with errors.Is.
var (
	ErrSyntax        = errors.New("canonicaljson: invalid JSON syntax")
	ErrDuplicateKey  = errors.New("canonicaljson: duplicate object key")
	ErrNonInteger    = errors.New("canonicaljson: number is not a plain integer (fraction, exponent or negative zero)")
	ErrNumberRange   = errors.New("canonicaljson: integer outside [-(2^53)+1, 2^53-1]")
	ErrInvalidUTF8   = errors.New("canonicaljson: invalid UTF-8")
	ErrLoneSurrogate = errors.New("canonicaljson: lone or mis-paired surrogate in \\u escape")
	ErrTooDeep       = errors.New("canonicaljson: nesting too deep")
	ErrTooLarge      = errors.New("canonicaljson: input too large")
	ErrNotObject     = errors.New("canonicaljson: top-level value is not an object")
)

// SyntaxError reports where and why input was rejected. Offset is the byte
// offset in the input at which the problem was detected. The error never
// quotes the input.
type SyntaxError struct {
	Offset int
	Err    error // one of the Err* sentinels
	Detail string
}

// Error implements the error interface.
func (e *SyntaxError) Error() string {
	s := "canonicaljson: " + strings.TrimPrefix(e.Err.Error(), "canonicaljson: ")
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s + " at offset " + strconv.Itoa(e.Offset)
}

// Unwrap returns the sentinel.
func (e *SyntaxError) Unwrap() error { return e.Err }
