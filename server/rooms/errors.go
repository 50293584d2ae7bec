package rooms

import (
	"errors"
	"fmt"
)

var (
	// ErrUnsupportedRoomVersion: the room version is not one this server
	// implements (HTTP: 400 M_UNSUPPORTED_ROOM_VERSION).
	ErrUnsupportedRoomVersion = errors.New("unsupported room version")
	// ErrInvalidEvent: the event is malformed: not canonical JSON, a missing
	// or mistyped field, an over-long identifier (HTTP: 400 M_BAD_JSON).
	ErrInvalidEvent = errors.New("invalid event")
	// ErrEventTooLarge: the event is over [MaxEventSize] or a field is over
	// its limit (HTTP: 413 M_TOO_LARGE). Use errors.As with *[TooLargeError]
	// for the figures.
	ErrEventTooLarge = errors.New("event too large")
	// ErrForbidden: the authorisation rules reject the event (HTTP: 403
	// M_FORBIDDEN). Use errors.As with *[AuthError] for the rule.
	ErrForbidden = errors.New("forbidden by the room's authorisation rules")
)

// TooLargeError says which limit an event broke. It wraps [ErrEventTooLarge].
type TooLargeError struct {
	What  string // "event", "type", "state_key", "sender", "room_id", "event_id"
	Size  int    // bytes
	Limit int    // bytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("rooms: %s is %d bytes, over the limit of %d: %v", e.What, e.Size, e.Limit, ErrEventTooLarge)
}

// Unwrap returns [ErrEventTooLarge].
func (e *TooLargeError) Unwrap() error { return ErrEventTooLarge }

// AuthError says which authorisation rule rejected an event. It wraps
// [ErrForbidden]. Reason is safe to show to the client (it holds only IDs,
// types and power levels, never content).
type AuthError struct {
	Rule   string // the spec rule number, e.g. "4.3.3" (room versions 10 and 11 number them alike)
	Reason string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("rooms: auth rule %s: %s: %v", e.Rule, e.Reason, ErrForbidden)
}

// Unwrap returns [ErrForbidden].
func (e *AuthError) Unwrap() error { return ErrForbidden }

func forbid(rule, format string, args ...any) error {
	return &AuthError{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("rooms: %s: %w", fmt.Sprintf(format, args...), ErrInvalidEvent)
}
