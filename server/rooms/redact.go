package rooms

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"myelin/canonicaljson"
)

// Top-level keys kept by the redaction algorithms
// (https://spec.matrix.org/v1.16/rooms/v11/#redactions and
// https://spec.matrix.org/v1.16/rooms/v10/#redactions, the v9 algorithm).
var (
	keepTopV11 = []string{"event_id", "type", "room_id", "sender", "state_key", "content",
		"hashes", "signatures", "depth", "prev_events", "auth_events", "origin_server_ts"}
	keepTopV9Extra = []string{"prev_state", "origin", "membership"}
)

// keptContent returns the content keys kept for an event type, or nil and
// all=true when the whole content is kept.
func keptContent(r rules, typ string) (keys []string, all bool) {
	switch typ {
	case TypeMember:
		return []string{"membership", "join_authorised_via_users_server"}, false
	case TypeCreate:
		if r.redactCreateKeepsAll {
			return nil, true
		}
		return []string{"creator"}, false
	case TypeJoinRules:
		return []string{"join_rule", "allow"}, false
	case TypePowerLevels:
		k := []string{"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
		if r.redactPLKeepsInvite {
			k = append(k, "invite")
		}
		return k, false
	case TypeHistoryVisibility:
		return []string{"history_visibility"}, false
	case TypeRedaction:
		if r.redactRedactionKeepsRedacts {
			return []string{"redacts"}, false
		}
	}
	return nil, false
}

// redactObject applies the redaction algorithm of room version v to the
// members of a PDU and returns a new member map (the input is not changed).
func redactObject(v RoomVersion, top map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	r := v.rules()
	out := make(map[string]json.RawMessage, len(keepTopV11)+len(keepTopV9Extra))
	for _, k := range keepTopV11 {
		if val, ok := top[k]; ok {
			out[k] = val
		}
	}
	if r.redactKeepsLegacyTop {
		for _, k := range keepTopV9Extra {
			if val, ok := top[k]; ok {
				out[k] = val
			}
		}
	}
	c, ok := top["content"]
	if !ok {
		return out, nil
	}
	var typ string
	if t, ok := top["type"]; ok {
		if err := json.Unmarshal(t, &typ); err != nil {
			return nil, invalid("redact: type is not a string")
		}
	}
	keep, all := keptContent(r, typ)
	if all {
		return out, nil
	}
	content, err := object(c)
	if err != nil {
		return nil, invalid("redact: content is not an object")
	}
	nc := make(map[string]json.RawMessage, len(keep)+1)
	for _, k := range keep {
		if val, ok := content[k]; ok {
			nc[k] = val
		}
	}
	if typ == TypeMember && r.redactMemberKeepsTPISigned {
		if tpi, ok := content["third_party_invite"]; ok {
			if m, err := object(tpi); err == nil {
				if signed, ok := m["signed"]; ok {
					b, err := json.Marshal(map[string]json.RawMessage{"signed": signed})
					if err != nil {
						return nil, fmt.Errorf("rooms: redact: %w", err)
					}
					nc["third_party_invite"] = b
				}
			}
		}
	}
	b, err := json.Marshal(nc)
	if err != nil {
		return nil, fmt.Errorf("rooms: redact: %w", err)
	}
	out["content"] = b
	return out, nil
}

// canonical encodes a member map as canonical JSON.
func canonical(m map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rooms: encode: %w", err)
	}
	c, err := canonicaljson.Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("rooms: encode: %w: %w", ErrInvalidEvent, err)
	}
	return c, nil
}

// RedactJSON applies the redaction algorithm of room version v to a PDU or
// client event given as JSON and returns canonical JSON. It keeps
// signatures and hashes and drops unsigned.
func RedactJSON(v RoomVersion, raw []byte) ([]byte, error) {
	if !v.Supported() {
		return nil, fmt.Errorf("rooms: redact: %w", ErrUnsupportedRoomVersion)
	}
	if len(raw) > maxInputSize {
		return nil, &TooLargeError{What: "event", Size: len(raw), Limit: MaxEventSize}
	}
	top, err := object(raw)
	if err != nil {
		return nil, err
	}
	red, err := redactObject(v, top)
	if err != nil {
		return nil, err
	}
	return canonical(red)
}

// Redact returns the redacted form of e: what is stored and served once a
// redaction of e has been accepted. The event ID, hashes and signatures are
// unchanged, and unsigned is dropped. Redacting twice changes nothing.
func (e *Event) Redact() (*Event, error) {
	b, err := RedactJSON(e.version, e.raw)
	if err != nil {
		return nil, err
	}
	r, err := parse(e.version, b, true)
	if err != nil {
		return nil, fmt.Errorf("rooms: redact: %w", err)
	}
	r.id = e.id
	return r, nil
}

// signedBytes returns the bytes a server signs and the reference hash
// covers: the redacted PDU without signatures and unsigned, as canonical
// JSON (https://spec.matrix.org/v1.16/server-server-api/#calculating-the-reference-hash-for-an-event).
func signedBytes(v RoomVersion, top map[string]json.RawMessage) ([]byte, error) {
	red, err := redactObject(v, top)
	if err != nil {
		return nil, err
	}
	delete(red, "signatures")
	delete(red, "unsigned")
	return canonical(red)
}

// computeEventID returns "$" + URL-safe unpadded base64 of the reference hash.
func computeEventID(v RoomVersion, raw []byte) (string, error) {
	top, err := object(raw)
	if err != nil {
		return "", err
	}
	b, err := signedBytes(v, top)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "$" + base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// contentHash returns the SHA-256 of the PDU without unsigned, signatures
// and hashes, as canonical JSON
// (https://spec.matrix.org/v1.16/server-server-api/#calculating-the-content-hash-for-an-event).
func contentHash(top map[string]json.RawMessage) ([32]byte, error) {
	m := make(map[string]json.RawMessage, len(top))
	for k, v := range top {
		switch k {
		case "unsigned", "signatures", "hashes":
		default:
			m[k] = v
		}
	}
	b, err := canonical(m)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}
