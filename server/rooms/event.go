package rooms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"myelin/canonicaljson"
)

const (
	// MaxEventSize is the largest PDU, as canonical JSON with its
	// signatures, in bytes
	// (https://spec.matrix.org/v1.16/client-server-api/#size-limits).
	MaxEventSize = 65536
	// MaxIDSize bounds type, state_key, sender, room_id and event IDs, in bytes.
	MaxIDSize = 255
	// MaxDepth is the largest depth (2^53 - 1); the depth of later events
	// stays at the limit.
	MaxDepth = 1<<53 - 1
	// maxInputSize bounds the input to the parser before canonicalisation
	// (whitespace may make a valid event larger than MaxEventSize).
	maxInputSize = 4 * MaxEventSize
	// maxEdges bounds prev_events and auth_events.
	maxEdges = 20
)

// Event types and membership values this package interprets.
const (
	TypeCreate            = "m.room.create"
	TypeMember            = "m.room.member"
	TypePowerLevels       = "m.room.power_levels"
	TypeJoinRules         = "m.room.join_rules"
	TypeHistoryVisibility = "m.room.history_visibility"
	TypeRedaction         = "m.room.redaction"
	TypeThirdPartyInvite  = "m.room.third_party_invite"

	MembershipJoin   = "join"
	MembershipInvite = "invite"
	MembershipLeave  = "leave"
	MembershipBan    = "ban"
	MembershipKnock  = "knock"
)

// Event is an immutable, parsed PDU of a v10 or v11 room together with its
// event ID (the reference hash). Build new events with [Build]; parse
// received or stored ones with [ParseEvent] or [LoadEvent].
//
// Accessors that return slices return copies, so callers may keep them.
type Event struct {
	version  RoomVersion
	id       string
	raw      []byte // canonical JSON of the whole PDU
	roomID   string
	sender   string
	typ      string
	stateKey *string
	content  json.RawMessage // a sub-slice of raw
	redacts  string
	ts       int64
	depth    int64
	prev     []string
	auth     []string
	hash     string // hashes.sha256, unpadded standard base64
	member   string // content.membership of m.room.member events
	unsigned json.RawMessage
}

// ParseEvent parses a PDU of room version v, checks its format and size
// limits, and computes its event ID. The input must be valid JSON without
// duplicate keys or non-integer numbers; it is kept in canonical form.
// ParseEvent does not check hashes or signatures (see [Event.CheckContentHash]
// and [Event.VerifySignature]) nor the authorisation rules.
func ParseEvent(v RoomVersion, raw []byte) (*Event, error) {
	e, err := parse(v, raw, false)
	if err != nil {
		return nil, err
	}
	id, err := computeEventID(v, e.raw)
	if err != nil {
		return nil, err
	}
	e.id = id
	return e, nil
}

// LoadEvent parses a PDU read back from the server's own store, trusting
// the stored event ID instead of recomputing the reference hash (which
// costs a redaction and a SHA-256) and the bytes to be canonical already.
// Use it only for the bytes of [Event.JSON] of an event that [Build] or
// [ParseEvent] accepted; anything else may be misparsed (it is still
// bounds-checked, so it cannot crash the server).
func LoadEvent(v RoomVersion, eventID string, raw []byte) (*Event, error) {
	if !validEventID(eventID) {
		return nil, invalid("load: bad event ID")
	}
	e, err := parse(v, raw, true)
	if err != nil {
		return nil, err
	}
	e.id = eventID
	return e, nil
}

func validEventID(s string) bool {
	return len(s) > 1 && len(s) <= MaxIDSize && s[0] == '$'
}

// parse parses a PDU; trusted skips canonicalisation (the bytes are this
// server's own canonical output).
func parse(v RoomVersion, raw []byte, trusted bool) (*Event, error) {
	if !v.Supported() {
		return nil, fmt.Errorf("rooms: parse: room version %.20q: %w", string(v), ErrUnsupportedRoomVersion)
	}
	if len(raw) > maxInputSize {
		return nil, &TooLargeError{What: "event", Size: len(raw), Limit: MaxEventSize}
	}
	canon := raw
	if !trusted {
		var err error
		if canon, err = canonicaljson.Canonicalize(raw); err != nil {
			return nil, fmt.Errorf("rooms: parse: %w: %w", ErrInvalidEvent, err)
		}
	} else {
		canon = bytes.Clone(raw) // the caller may reuse its buffer
	}
	if len(canon) > MaxEventSize {
		return nil, &TooLargeError{What: "event", Size: len(canon), Limit: MaxEventSize}
	}
	e := &Event{version: v, raw: canon}
	var err error
	if trusted {
		err = e.extractTrusted()
	} else {
		err = e.extractStrict()
	}
	if err != nil {
		return nil, err
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// pduKeys are the top-level keys wirePDU decodes.
var pduKeys = []string{"room_id", "sender", "type", "state_key", "content", "redacts",
	"origin_server_ts", "depth", "prev_events", "auth_events", "hashes", "unsigned"}

// wirePDU is the one-pass decoding of a trusted (own, canonical) PDU.
type wirePDU struct {
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	Type           string          `json:"type"`
	StateKey       *string         `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	Redacts        *string         `json:"redacts"`
	OriginServerTS json.RawMessage `json:"origin_server_ts"`
	Depth          json.RawMessage `json:"depth"`
	PrevEvents     []string        `json:"prev_events"`
	AuthEvents     []string        `json:"auth_events"`
	Hashes         struct {
		SHA256 string `json:"sha256"`
	} `json:"hashes"`
	Unsigned json.RawMessage `json:"unsigned"`
}

// extractTrusted decodes the server's own canonical bytes in one pass.
// encoding/json matches struct keys case-insensitively; that is harmless
// here because canonical output of Build has exactly the spec's keys.
func (e *Event) extractTrusted() error {
	var w wirePDU
	if err := json.Unmarshal(e.raw, &w); err != nil {
		return invalid("load: not a PDU")
	}
	var ok bool
	if e.ts, ok = jsonInt(w.OriginServerTS); !ok {
		return invalid("load: origin_server_ts is not an integer")
	}
	if e.depth, ok = jsonInt(w.Depth); !ok {
		return invalid("load: depth is not an integer")
	}
	if w.PrevEvents == nil || w.AuthEvents == nil {
		return invalid("load: missing prev_events or auth_events")
	}
	e.roomID, e.sender, e.typ, e.stateKey = w.RoomID, w.Sender, w.Type, w.StateKey
	e.content, e.prev, e.auth, e.hash = w.Content, w.PrevEvents, w.AuthEvents, w.Hashes.SHA256
	if len(w.Unsigned) > 0 && string(w.Unsigned) != "null" {
		e.unsigned = w.Unsigned
	}
	if e.typ == TypeRedaction && w.Redacts != nil && !e.version.rules().redactsInContent {
		e.redacts = *w.Redacts
	}
	return nil
}

// extractStrict decodes untrusted canonical bytes with exact key matching.
func (e *Event) extractStrict() error {
	top, err := object(e.raw)
	if err != nil {
		return invalid("parse: event is not a JSON object")
	}
	// Refuse keys that differ from a PDU key only in case, so that the
	// one-pass decoder of LoadEvent (case-insensitive, like all of
	// encoding/json) reads any accepted event exactly as this parser does.
	for k := range top {
		for _, known := range pduKeys {
			if k != known && strings.EqualFold(k, known) {
				return invalid("parse: key %.40q differs from %s only in case", k, known)
			}
		}
	}
	if e.roomID, err = reqString(top, "room_id"); err != nil {
		return err
	}
	if e.sender, err = reqString(top, "sender"); err != nil {
		return err
	}
	if e.typ, err = reqString(top, "type"); err != nil {
		return err
	}
	if r, ok := top["state_key"]; ok {
		var sk string
		if err := json.Unmarshal(r, &sk); err != nil {
			return invalid("parse: state_key is not a string")
		}
		e.stateKey = &sk
	}
	e.content = top["content"]
	if e.ts, err = reqInt(top, "origin_server_ts"); err != nil {
		return err
	}
	if e.depth, err = reqInt(top, "depth"); err != nil {
		return err
	}
	if e.prev, err = idList(top, "prev_events"); err != nil {
		return err
	}
	if e.auth, err = idList(top, "auth_events"); err != nil {
		return err
	}
	h, ok := top["hashes"]
	if !ok {
		return invalid("parse: missing hashes")
	}
	hashes, err := object(h)
	if err != nil {
		return invalid("parse: hashes is not an object")
	}
	if r, ok := hashes["sha256"]; ok {
		if err := json.Unmarshal(r, &e.hash); err != nil {
			return invalid("parse: hashes.sha256 is not a string")
		}
	}
	sg, ok := top["signatures"]
	if !ok {
		return invalid("parse: missing signatures")
	}
	var sigs map[string]map[string]string // checked for shape only; see VerifySignature
	if err := json.Unmarshal(sg, &sigs); err != nil {
		return invalid("parse: signatures is not a map of maps of strings")
	}
	if u, ok := top["unsigned"]; ok {
		if len(u) == 0 || u[0] != '{' {
			return invalid("parse: unsigned is not an object")
		}
		e.unsigned = u
	}
	if e.typ == TypeRedaction && !e.version.rules().redactsInContent {
		if r, ok := top["redacts"]; ok {
			if err := json.Unmarshal(r, &e.redacts); err != nil {
				return invalid("parse: redacts is not a string")
			}
		}
	}
	return nil
}

// validate checks the decoded fields (both paths).
func (e *Event) validate() error {
	for _, f := range []struct {
		what string
		s    string
	}{{"room_id", e.roomID}, {"sender", e.sender}, {"type", e.typ}, {"state_key", e.StateKeyOrEmpty()}} {
		if len(f.s) > MaxIDSize {
			return &TooLargeError{What: f.what, Size: len(f.s), Limit: MaxIDSize}
		}
	}
	if !strings.HasPrefix(e.roomID, "!") || !strings.Contains(e.roomID, ":") {
		return invalid("parse: bad room_id")
	}
	if !validUserID(e.sender) {
		return invalid("parse: bad sender")
	}
	if e.typ == "" {
		return invalid("parse: empty type")
	}
	if len(e.content) == 0 || e.content[0] != '{' {
		return invalid("parse: content is missing or not an object")
	}
	if e.depth < 0 {
		return invalid("parse: negative depth")
	}
	if len(e.prev) > maxEdges || len(e.auth) > maxEdges {
		return invalid("parse: too many prev_events or auth_events")
	}
	for _, l := range [][]string{e.prev, e.auth} {
		for _, id := range l {
			if !validEventID(id) {
				return invalid("parse: bad event ID in prev_events or auth_events")
			}
		}
	}
	if e.typ == TypeRedaction && e.version.rules().redactsInContent {
		cm, err := object(e.content)
		if err != nil {
			return invalid("parse: content is not an object")
		}
		if r, ok := cm["redacts"]; ok {
			if err := json.Unmarshal(r, &e.redacts); err != nil {
				return invalid("parse: content.redacts is not a string")
			}
		}
	}
	if e.redacts != "" && !validEventID(e.redacts) {
		return invalid("parse: redacts is not an event ID")
	}
	if e.typ == TypeMember {
		e.member = e.contentString("membership")
	}
	return nil
}

// object decodes a JSON object into its members with exact key matching
// (encoding/json struct decoding matches keys case-insensitively, which
// would let {"type":..,"Type":..} mean two things).
func object(raw []byte) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, invalid("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid("not a JSON object")
	}
	return m, nil
}

func reqString(m map[string]json.RawMessage, k string) (string, error) {
	r, ok := m[k]
	if !ok {
		return "", invalid("parse: missing %s", k)
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", invalid("parse: %s is not a string", k)
	}
	return s, nil
}

func reqInt(m map[string]json.RawMessage, k string) (int64, error) {
	r, ok := m[k]
	if !ok {
		return 0, invalid("parse: missing %s", k)
	}
	n, ok := jsonInt(r)
	if !ok {
		return 0, invalid("parse: %s is not an integer", k)
	}
	return n, nil
}

// jsonInt parses a JSON integer token in the canonical range; strings,
// fractions and exponents are not integers.
func jsonInt(r json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(r))
	if s == "" || strings.ContainsAny(s, ".eE\"") {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxDepth || n < -MaxDepth {
		return 0, false
	}
	return n, true
}

func idList(m map[string]json.RawMessage, k string) ([]string, error) {
	r, ok := m[k]
	if !ok {
		return nil, invalid("parse: missing %s", k)
	}
	var l []string
	if err := json.Unmarshal(r, &l); err != nil {
		return nil, invalid("parse: %s is not a list of strings", k)
	}
	if len(l) > maxEdges {
		return nil, invalid("parse: %s has %d entries, over %d", k, len(l), maxEdges)
	}
	for _, id := range l {
		if !validEventID(id) {
			return nil, invalid("parse: bad event ID in %s", k)
		}
	}
	if l == nil {
		l = []string{}
	}
	return l, nil
}

// validUserID is the lenient (historical) user ID grammar that events must
// accept: "@", a non-empty localpart without ":", ":", a non-empty server
// name, at most 255 bytes.
func validUserID(s string) bool {
	if len(s) < 4 || len(s) > MaxIDSize || s[0] != '@' {
		return false
	}
	i := strings.IndexByte(s, ':')
	return i > 1 && i < len(s)-1 && !strings.ContainsRune(s, 0)
}

// domainOf returns the server name of a user or room ID (after the first ':').
func domainOf(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return ""
}

// ID returns the event ID, "$" + the URL-safe unpadded base64 reference hash.
func (e *Event) ID() string { return e.id }

// Version returns the room version the event was parsed or built for.
func (e *Event) Version() RoomVersion { return e.version }

// JSON returns a copy of the PDU as canonical JSON (the federation format,
// and the form to store).
func (e *Event) JSON() []byte { return bytes.Clone(e.raw) }

// RoomID returns the room ID.
func (e *Event) RoomID() string { return e.roomID }

// Sender returns the sender's user ID.
func (e *Event) Sender() string { return e.sender }

// Type returns the event type.
func (e *Event) Type() string { return e.typ }

// StateKey returns the state key and whether the event is a state event.
func (e *Event) StateKey() (string, bool) {
	if e.stateKey == nil {
		return "", false
	}
	return *e.stateKey, true
}

// StateKeyOrEmpty returns the state key, or "" for a non-state event.
func (e *Event) StateKeyOrEmpty() string {
	if e.stateKey == nil {
		return ""
	}
	return *e.stateKey
}

// IsState reports whether the event has a state_key.
func (e *Event) IsState() bool { return e.stateKey != nil }

// Content returns a copy of the content object.
func (e *Event) Content() json.RawMessage { return bytes.Clone(e.content) }

// Redacts returns the ID of the event an m.room.redaction redacts (from the
// top level in v10, from content in v11), or "".
func (e *Event) Redacts() string { return e.redacts }

// OriginServerTS returns origin_server_ts in milliseconds since the epoch.
func (e *Event) OriginServerTS() int64 { return e.ts }

// Depth returns the depth.
func (e *Event) Depth() int64 { return e.depth }

// PrevEvents returns a copy of prev_events.
func (e *Event) PrevEvents() []string { return slices.Clone(e.prev) }

// AuthEvents returns a copy of auth_events.
func (e *Event) AuthEvents() []string { return slices.Clone(e.auth) }

// ContentHash returns hashes.sha256 (unpadded standard base64), or "".
func (e *Event) ContentHash() string { return e.hash }

// Unsigned returns a copy of the PDU's unsigned object, or nil.
func (e *Event) Unsigned() json.RawMessage { return bytes.Clone(e.unsigned) }

// Membership returns content.membership of an m.room.member event, or "".
func (e *Event) Membership() string {
	return e.member
}

// contentString returns a top-level string field of content, or "" when
// absent or not a string.
func (e *Event) contentString(k string) string {
	m, err := object(e.content)
	if err != nil {
		return ""
	}
	var s string
	if r, ok := m[k]; ok && json.Unmarshal(r, &s) == nil {
		return s
	}
	return ""
}
