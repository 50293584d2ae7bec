package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors.
var (
	// ErrResponseTooLarge: the server sent a response body over the limit.
	ErrResponseTooLarge = errors.New("client: response body too large")
	// ErrBadResponse: a response did not parse.
	ErrBadResponse = errors.New("client: malformed server response")
	// ErrNotLoggedIn: the call needs an access token.
	ErrNotLoggedIn = errors.New("client: not logged in")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
)

// MatrixError is a Matrix error response
// (https://spec.matrix.org/v1.16/client-server-api/#standard-error-response).
type MatrixError struct {
	// Status is the HTTP status code.
	Status int
	// ErrCode is the errcode field (M_FORBIDDEN, ...); empty when the body
	// was not a Matrix error.
	ErrCode string
	// Message is the error field.
	Message string
	// RetryAfter is the server's hint on 429 (retry_after_ms or the
	// Retry-After header), zero if none.
	RetryAfter time.Duration
	// Body is the raw response body (bounded), for user-interactive auth
	// (flows, session) and other extra keys.
	Body json.RawMessage
}

// Error describes the error in words.
func (e *MatrixError) Error() string {
	if e.ErrCode == "" {
		return fmt.Sprintf("client: http status %d", e.Status)
	}
	return fmt.Sprintf("client: %s (%d): %s", e.ErrCode, e.Status, e.Message)
}

// IsErrCode reports whether err is (or wraps) a *MatrixError with errcode code.
func IsErrCode(err error, code string) bool {
	var me *MatrixError
	return errors.As(err, &me) && me.ErrCode == code
}
