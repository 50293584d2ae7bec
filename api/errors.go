package api

import (
	"fmt"
	"net/http"
)

// Standard error codes (https://spec.matrix.org/v1.16/client-server-api/#standard-error-response).
const (
	ErrCodeForbidden             = "M_FORBIDDEN"
	ErrCodeUnknownToken          = "M_UNKNOWN_TOKEN"
	ErrCodeMissingToken          = "M_MISSING_TOKEN"
	ErrCodeBadJSON               = "M_BAD_JSON"
	ErrCodeNotJSON               = "M_NOT_JSON"
	ErrCodeNotFound              = "M_NOT_FOUND"
	ErrCodeLimitExceeded         = "M_LIMIT_EXCEEDED"
	ErrCodeUnrecognized          = "M_UNRECOGNIZED"
	ErrCodeUnknown               = "M_UNKNOWN"
	ErrCodeUserInUse             = "M_USER_IN_USE"
	ErrCodeInvalidUsername       = "M_INVALID_USERNAME"
	ErrCodeRoomInUse             = "M_ROOM_IN_USE"
	ErrCodeInvalidRoomState      = "M_INVALID_ROOM_STATE"
	ErrCodeUnsupportedRoomVer    = "M_UNSUPPORTED_ROOM_VERSION"
	ErrCodeIncompatibleRoomVer   = "M_INCOMPATIBLE_ROOM_VERSION"
	ErrCodeBadState              = "M_BAD_STATE"
	ErrCodeGuestAccessForbidden  = "M_GUEST_ACCESS_FORBIDDEN"
	ErrCodeMissingParam          = "M_MISSING_PARAM"
	ErrCodeInvalidParam          = "M_INVALID_PARAM"
	ErrCodeTooLarge              = "M_TOO_LARGE"
	ErrCodeExclusive             = "M_EXCLUSIVE"
	ErrCodeUserDeactivated       = "M_USER_DEACTIVATED"
	ErrCodeWeakPassword          = "M_WEAK_PASSWORD"
	ErrCodeBadAlias              = "M_BAD_ALIAS"
	ErrCodeInvalidSignature      = "M_INVALID_SIGNATURE"
	ErrCodeWrongRoomKeysVersion  = "M_WRONG_ROOM_KEYS_VERSION"
	ErrCodeDuplicateAnnotation   = "M_DUPLICATE_ANNOTATION"
	ErrCodeUnknownPos            = "M_UNKNOWN_POS"
	ErrCodeResourceLimitExceeded = "M_RESOURCE_LIMIT_EXCEEDED"
)

// Error is the standard Matrix error body {"errcode","error"} together with the
// HTTP status it is sent with. Extra holds additional top-level keys (for
// example retry_after_ms, soft_logout, current_version).
type Error struct {
	Status  int            `json:"-"`
	ErrCode string         `json:"errcode"`
	Message string         `json:"error"`
	Extra   map[string]any `json:"-"`
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("api: %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// Body returns the JSON object to send: errcode, error and the extra keys.
func (e *Error) Body() map[string]any {
	m := make(map[string]any, 2+len(e.Extra))
	for k, v := range e.Extra {
		m[k] = v
	}
	m["errcode"] = e.ErrCode
	m["error"] = e.Message
	return m
}

// NewError returns an *Error with the given status, code and message.
func NewError(status int, code, msg string) *Error {
	return &Error{Status: status, ErrCode: code, Message: msg}
}

// Forbidden returns a 403 M_FORBIDDEN error.
func Forbidden(msg string) *Error { return NewError(http.StatusForbidden, ErrCodeForbidden, msg) }

// NotFound returns a 404 M_NOT_FOUND error.
func NotFound(msg string) *Error { return NewError(http.StatusNotFound, ErrCodeNotFound, msg) }

// BadJSON returns a 400 M_BAD_JSON error.
func BadJSON(msg string) *Error { return NewError(http.StatusBadRequest, ErrCodeBadJSON, msg) }

// NotJSON returns a 400 M_NOT_JSON error.
func NotJSON(msg string) *Error { return NewError(http.StatusBadRequest, ErrCodeNotJSON, msg) }

// MissingParam returns a 400 M_MISSING_PARAM error.
func MissingParam(msg string) *Error {
	return NewError(http.StatusBadRequest, ErrCodeMissingParam, msg)
}

// InvalidParam returns a 400 M_INVALID_PARAM error.
func InvalidParam(msg string) *Error {
	return NewError(http.StatusBadRequest, ErrCodeInvalidParam, msg)
}

// Unknown returns a 400 M_UNKNOWN error.
func Unknown(msg string) *Error { return NewError(http.StatusBadRequest, ErrCodeUnknown, msg) }

// Internal returns a 500 M_UNKNOWN error that reveals nothing about the cause.
func Internal() *Error {
	return NewError(http.StatusInternalServerError, ErrCodeUnknown, "internal server error")
}

// Unrecognized returns 404 (or 405 for a known path) M_UNRECOGNIZED.
func Unrecognized(status int) *Error {
	return NewError(status, ErrCodeUnrecognized, "unrecognized request")
}

// TooLarge returns a 413 M_TOO_LARGE error.
func TooLarge(msg string) *Error {
	return NewError(http.StatusRequestEntityTooLarge, ErrCodeTooLarge, msg)
}
