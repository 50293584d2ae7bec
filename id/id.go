package id

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// MaxLength is the maximum length in bytes of a user ID, room ID, room
// alias or event ID, sigil and server name included.
const MaxLength = 255

// MaxServerNameLength is the maximum length in bytes of a server name that
// this package accepts (the grammar allows a 255-character DNS name plus a
// port; the whole identifier must fit in [MaxLength] anyway).
const MaxServerNameLength = 255

// MaxDeviceIDLength is the maximum length in bytes of a device ID that this
// package accepts. The specification sets no limit; 255 bytes matches the
// other identifiers and every implementation we know of.
const MaxDeviceIDLength = 255

// ErrInvalidID is the sentinel wrapped by every parse error of this package.
var ErrInvalidID = errors.New("id: invalid identifier")

// ParseError describes why an identifier was rejected. It never contains the
// identifier itself, which may be attacker-chosen and arbitrarily long.
type ParseError struct {
	Kind   string // "user ID", "server name", ...
	Reason string // lower-case explanation
}

// Error implements the error interface.
func (e *ParseError) Error() string { return "id: invalid " + e.Kind + ": " + e.Reason }

// Unwrap returns [ErrInvalidID].
func (e *ParseError) Unwrap() error { return ErrInvalidID }

func perr(kind, reason string) error { return &ParseError{Kind: kind, Reason: reason} }

// ---------------------------------------------------------------------------
// Server names

// ServerName is a validated Matrix server name: hostname [":" port].
type ServerName struct{ s string }

// ParseServerName parses s strictly per the specification's server name
// grammar. IPv4 literals need four octets in 0-255; IPv6 literals must be
// bracketed, valid per RFC 3513 and carry no zone; ports have 1 to 5 digits
// and are at most 65535.
func ParseServerName(s string) (ServerName, error) {
	if err := validateServerName(s); err != nil {
		return ServerName{}, err
	}
	return ServerName{s}, nil
}

const kServer = "server name"

func validateServerName(s string) error {
	if s == "" {
		return perr(kServer, "empty")
	}
	if len(s) > MaxServerNameLength {
		return perr(kServer, "too long")
	}
	host, port := s, ""
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return perr(kServer, "unterminated IPv6 literal")
		}
		host, port = s[:end+1], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return perr(kServer, "unexpected characters after IPv6 literal")
			}
			port = port[1:]
			if err := validatePort(port); err != nil {
				return err
			}
		}
		return validateIPv6Literal(host[1 : len(host)-1])
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if err := validatePort(port); err != nil {
			return err
		}
	}
	return validateHostname(host)
}

func validatePort(p string) error {
	if len(p) < 1 || len(p) > 5 {
		return perr(kServer, "port must have 1 to 5 digits")
	}
	n := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return perr(kServer, "port is not numeric")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return perr(kServer, "port out of range")
	}
	return nil
}

func validateIPv6Literal(a string) error {
	if len(a) < 2 || len(a) > 45 {
		return perr(kServer, "bad IPv6 literal length")
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(isDigit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f') || c == ':' || c == '.') {
			return perr(kServer, "bad character in IPv6 literal")
		}
	}
	// The character check above excludes zones ("%eth0"), so ParseAddr
	// only has to check the RFC 3513 structure.
	addr, err := netip.ParseAddr(a)
	if err != nil || !addr.Is6() {
		return perr(kServer, "malformed IPv6 literal")
	}
	return nil
}

func validateHostname(h string) error {
	if h == "" {
		return perr(kServer, "empty hostname")
	}
	if len(h) > 255 {
		return perr(kServer, "hostname too long")
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(isDigit(c) || isAlpha(c) || c == '-' || c == '.') {
			return perr(kServer, "bad character in hostname")
		}
	}
	// Something shaped like a dotted quad is an IPv4 literal, whose octets
	// must be 0-255: "1.2.3.400" is not a usable DNS name either.
	if looksLikeIPv4(h) {
		for _, oct := range strings.Split(h, ".") {
			n := 0
			for i := 0; i < len(oct); i++ {
				n = n*10 + int(oct[i]-'0')
			}
			if n > 255 {
				return perr(kServer, "IPv4 octet out of range")
			}
		}
	}
	return nil
}

func looksLikeIPv4(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// String returns the server name as given.
func (s ServerName) String() string { return s.s }

// IsZero reports whether s is the zero (invalid) value.
func (s ServerName) IsZero() bool { return s.s == "" }

// Host returns the hostname part (an IPv6 literal keeps its brackets).
func (s ServerName) Host() string {
	h, _ := s.split()
	return h
}

// Port returns the explicit port, if any.
func (s ServerName) Port() (port int, ok bool) {
	_, p := s.split()
	if p == "" {
		return 0, false
	}
	for i := 0; i < len(p); i++ {
		port = port*10 + int(p[i]-'0')
	}
	return port, true
}

func (s ServerName) split() (host, port string) {
	str := s.s
	if strings.HasPrefix(str, "[") {
		end := strings.IndexByte(str, ']')
		if end+1 < len(str) {
			return str[:end+1], str[end+2:]
		}
		return str, ""
	}
	if i := strings.IndexByte(str, ':'); i >= 0 {
		return str[:i], str[i+1:]
	}
	return str, ""
}

// MarshalText implements encoding.TextMarshaler.
func (s ServerName) MarshalText() ([]byte, error) { return []byte(s.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseServerName].
func (s *ServerName) UnmarshalText(b []byte) error {
	v, err := ParseServerName(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ---------------------------------------------------------------------------
// Shared helpers for sigil-prefixed identifiers

// validOpaque reports whether s is valid UTF-8 (which excludes encoded
// surrogates) and contains no NUL and no ':'.
func validOpaque(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, ':') < 0
}

// splitSigil checks the sigil and the length, and splits at the first ':'.
func splitSigil(kind string, s string, sigil byte) (local string, server ServerName, hasServer bool, err error) {
	if len(s) == 0 {
		return "", ServerName{}, false, perr(kind, "empty")
	}
	if len(s) > MaxLength {
		return "", ServerName{}, false, perr(kind, "longer than 255 bytes")
	}
	if s[0] != sigil {
		return "", ServerName{}, false, perr(kind, fmt.Sprintf("must start with %q", sigil))
	}
	rest := s[1:]
	i := strings.IndexByte(rest, ':')
	if i < 0 {
		return rest, ServerName{}, false, nil
	}
	sn, err := ParseServerName(rest[i+1:])
	if err != nil {
		return "", ServerName{}, false, perr(kind, "bad server name: "+err.(*ParseError).Reason)
	}
	return rest[:i], sn, true, nil
}

// ---------------------------------------------------------------------------
// User IDs

// UserID is a validated Matrix user ID, "@localpart:server_name".
type UserID struct{ s string }

const kUser = "user ID"

// ParseUserID parses s with the current (v1.8+) grammar: a non-empty
// localpart of a-z, 0-9 and "-._=/+", a valid server name, 255 bytes at most.
func ParseUserID(s string) (UserID, error) {
	local, _, ok, err := splitSigil(kUser, s, '@')
	if err != nil {
		return UserID{}, err
	}
	if !ok {
		return UserID{}, perr(kUser, "missing server name")
	}
	if local == "" {
		return UserID{}, perr(kUser, "empty localpart")
	}
	if !compliantLocalpart(local) {
		return UserID{}, perr(kUser, "localpart has characters outside a-z 0-9 -._=/+")
	}
	return UserID{s}, nil
}

// ParseUserIDLenient parses s with the historical user ID grammar, which
// clients MUST still accept for existing users and room history: the
// localpart may be empty and may hold any non-surrogate code point except
// ":" and NUL. Use it only where the specification requires tolerance (event
// senders, room members); use [ParseUserID] for anything newly created.
func ParseUserIDLenient(s string) (UserID, error) {
	local, _, ok, err := splitSigil(kUser, s, '@')
	if err != nil {
		return UserID{}, err
	}
	if !ok {
		return UserID{}, perr(kUser, "missing server name")
	}
	if !validOpaque(local) {
		return UserID{}, perr(kUser, "localpart is not valid UTF-8 or contains NUL")
	}
	return UserID{s}, nil
}

// NewUserID builds a user ID from a localpart and a server name with the
// strict grammar.
func NewUserID(localpart string, server ServerName) (UserID, error) {
	if server.IsZero() {
		return UserID{}, perr(kUser, "missing server name")
	}
	return ParseUserID("@" + localpart + ":" + server.s)
}

func compliantLocalpart(l string) bool {
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !((c >= 'a' && c <= 'z') || isDigit(c) || c == '-' || c == '.' || c == '=' || c == '_' || c == '/' || c == '+') {
			return false
		}
	}
	return true
}

// String returns the user ID as given.
func (u UserID) String() string { return u.s }

// IsZero reports whether u is the zero (invalid) value.
func (u UserID) IsZero() bool { return u.s == "" }

// Localpart returns the part between "@" and the first ":".
func (u UserID) Localpart() string {
	if u.s == "" {
		return ""
	}
	return u.s[1:strings.IndexByte(u.s, ':')]
}

// ServerName returns the server name after the first ":".
func (u UserID) ServerName() ServerName {
	if u.s == "" {
		return ServerName{}
	}
	return ServerName{u.s[strings.IndexByte(u.s, ':')+1:]}
}

// Compliant reports whether u satisfies the current grammar (it was or
// could have been accepted by [ParseUserID]).
func (u UserID) Compliant() bool {
	l := u.Localpart()
	return l != "" && compliantLocalpart(l)
}

// MarshalText implements encoding.TextMarshaler.
func (u UserID) MarshalText() ([]byte, error) { return []byte(u.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the strict
// [ParseUserID].
func (u *UserID) UnmarshalText(b []byte) error {
	v, err := ParseUserID(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// ---------------------------------------------------------------------------
// Device IDs

// DeviceID is a device ID. The specification gives device IDs no grammar:
// they are opaque strings chosen by the server or the client. This package
// requires them to be non-empty, valid UTF-8, at most [MaxDeviceIDLength]
// bytes and free of control characters. Note that a device ID can look
// exactly like an unpadded-base64 public key; keep device IDs and key IDs
// apart by type (see crypto/crosssign).
type DeviceID struct{ s string }

const kDevice = "device ID"

// ParseDeviceID validates s as a device ID.
func ParseDeviceID(s string) (DeviceID, error) {
	if s == "" {
		return DeviceID{}, perr(kDevice, "empty")
	}
	if len(s) > MaxDeviceIDLength {
		return DeviceID{}, perr(kDevice, "longer than 255 bytes")
	}
	if !utf8.ValidString(s) {
		return DeviceID{}, perr(kDevice, "not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return DeviceID{}, perr(kDevice, "contains a control character")
		}
	}
	return DeviceID{s}, nil
}

// String returns the device ID.
func (d DeviceID) String() string { return d.s }

// IsZero reports whether d is the zero (invalid) value.
func (d DeviceID) IsZero() bool { return d.s == "" }

// MarshalText implements encoding.TextMarshaler.
func (d DeviceID) MarshalText() ([]byte, error) { return []byte(d.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseDeviceID].
func (d *DeviceID) UnmarshalText(b []byte) error {
	v, err := ParseDeviceID(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ---------------------------------------------------------------------------
// Room IDs and event IDs

// RoomID is a validated room ID: "!opaque:server_name" (room versions 1-11)
// or "!hash" without a server name (room version 12 and later).
type RoomID struct{ s string }

// EventID is a validated event ID: "$opaque:server_name" (room versions 1
// and 2) or "$hash" (room version 3 and later, standard or URL-safe
// unpadded base64).
type EventID struct{ s string }

const (
	kRoom  = "room ID"
	kEvent = "event ID"
)

func validateHashed(kind, s string, sigil byte) error {
	local, _, hasServer, err := splitSigil(kind, s, sigil)
	if err != nil {
		return err
	}
	if local == "" {
		return perr(kind, "empty opaque part")
	}
	if hasServer {
		if !validOpaque(local) {
			return perr(kind, "opaque part is not valid UTF-8 or contains NUL")
		}
		return nil
	}
	// Domain-less form: the (URL-safe or standard) unpadded base64 of a
	// reference hash.
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(isAlpha(c) || isDigit(c) || c == '-' || c == '_' || c == '+' || c == '/') {
			return perr(kind, "domain-less form must be unpadded base64")
		}
	}
	return nil
}

// ParseRoomID validates s as a room ID in either form.
func ParseRoomID(s string) (RoomID, error) {
	if err := validateHashed(kRoom, s, '!'); err != nil {
		return RoomID{}, err
	}
	return RoomID{s}, nil
}

// String returns the room ID as given.
func (r RoomID) String() string { return r.s }

// IsZero reports whether r is the zero (invalid) value.
func (r RoomID) IsZero() bool { return r.s == "" }

// Localpart returns the opaque part between "!" and the server name (or the
// whole hash for domain-less room IDs).
func (r RoomID) Localpart() string { return localOf(r.s) }

// ServerName returns the server name, if the room ID has one.
func (r RoomID) ServerName() (ServerName, bool) { return serverOf(r.s) }

// MarshalText implements encoding.TextMarshaler.
func (r RoomID) MarshalText() ([]byte, error) { return []byte(r.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseRoomID].
func (r *RoomID) UnmarshalText(b []byte) error {
	v, err := ParseRoomID(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ParseEventID validates s as an event ID in either form.
func ParseEventID(s string) (EventID, error) {
	if err := validateHashed(kEvent, s, '$'); err != nil {
		return EventID{}, err
	}
	return EventID{s}, nil
}

// String returns the event ID as given.
func (e EventID) String() string { return e.s }

// IsZero reports whether e is the zero (invalid) value.
func (e EventID) IsZero() bool { return e.s == "" }

// Localpart returns the opaque part between "$" and the server name (or the
// whole hash for domain-less event IDs).
func (e EventID) Localpart() string { return localOf(e.s) }

// ServerName returns the server name, if the event ID has one.
func (e EventID) ServerName() (ServerName, bool) { return serverOf(e.s) }

// MarshalText implements encoding.TextMarshaler.
func (e EventID) MarshalText() ([]byte, error) { return []byte(e.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseEventID].
func (e *EventID) UnmarshalText(b []byte) error {
	v, err := ParseEventID(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

func localOf(s string) string {
	if s == "" {
		return ""
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[1:i]
	}
	return s[1:]
}

func serverOf(s string) (ServerName, bool) {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return ServerName{s[i+1:]}, true
	}
	return ServerName{}, false
}

// ---------------------------------------------------------------------------
// Room aliases

// RoomAlias is a validated room alias, "#localpart:server_name".
type RoomAlias struct{ s string }

const kAlias = "room alias"

// ParseRoomAlias validates s as a room alias: a non-empty localpart of any
// non-surrogate code points except ":" and NUL, a valid server name, 255
// bytes at most.
func ParseRoomAlias(s string) (RoomAlias, error) {
	local, _, ok, err := splitSigil(kAlias, s, '#')
	if err != nil {
		return RoomAlias{}, err
	}
	if !ok {
		return RoomAlias{}, perr(kAlias, "missing server name")
	}
	if local == "" {
		return RoomAlias{}, perr(kAlias, "empty localpart")
	}
	if !validOpaque(local) {
		return RoomAlias{}, perr(kAlias, "localpart is not valid UTF-8 or contains NUL")
	}
	return RoomAlias{s}, nil
}

// String returns the alias as given.
func (a RoomAlias) String() string { return a.s }

// IsZero reports whether a is the zero (invalid) value.
func (a RoomAlias) IsZero() bool { return a.s == "" }

// Localpart returns the part between "#" and the first ":".
func (a RoomAlias) Localpart() string { return localOf(a.s) }

// ServerName returns the server name.
func (a RoomAlias) ServerName() ServerName {
	sn, _ := serverOf(a.s)
	return sn
}

// MarshalText implements encoding.TextMarshaler.
func (a RoomAlias) MarshalText() ([]byte, error) { return []byte(a.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseRoomAlias].
func (a *RoomAlias) UnmarshalText(b []byte) error {
	v, err := ParseRoomAlias(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
