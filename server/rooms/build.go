package rooms

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"myelin/canonicaljson"
	"myelin/keys"
)

// Signer signs events with the server's Ed25519 signing key.
type Signer interface {
	// ServerName is the homeserver's name, the key of its signatures.
	ServerName() string
	// KeyID is the signing key identifier, "ed25519:<version>".
	KeyID() string
	// Sign signs msg.
	Sign(msg []byte) keys.Ed25519Signature
}

// NewSigner returns a [Signer] for a server name, a key version (the part
// after "ed25519:") and the server's signing key.
func NewSigner(serverName, keyVersion string, key *keys.Ed25519SecretKey) Signer {
	return &keySigner{name: serverName, keyID: "ed25519:" + keyVersion, key: key}
}

type keySigner struct {
	name, keyID string
	key         *keys.Ed25519SecretKey
}

func (s *keySigner) ServerName() string                    { return s.name }
func (s *keySigner) KeyID() string                         { return s.keyID }
func (s *keySigner) Sign(msg []byte) keys.Ed25519Signature { return s.key.Sign(msg) }

// Proto is an event as a client asks for it; [Build] adds the rest.
type Proto struct {
	Type     string
	StateKey *string // nil for a non-state event
	Sender   string
	Content  json.RawMessage // a JSON object; nil means {}
	// Redacts is the event an m.room.redaction redacts. Build puts it at the
	// top level (v10) or in content (v11) as the room version requires.
	// When empty, a string content.redacts is used (in v10 it is also
	// copied to the top level).
	Redacts string
}

// Position is where a new event goes in the room, and when.
type Position struct {
	Version RoomVersion
	RoomID  string
	// State is the room's state before the event (the current state); nil
	// or empty for m.room.create.
	State *State
	// PrevEvents are the room's forward extremities (one on a single server:
	// the latest event); empty for m.room.create.
	PrevEvents []string
	// PrevDepth is the largest depth among PrevEvents; the new event gets
	// PrevDepth+1 (capped at MaxDepth), or 1 when PrevEvents is empty.
	PrevDepth int64
	// Now is the clock reading for origin_server_ts.
	Now time.Time
}

// Build creates, hashes, signs and authorises a new event: it selects the
// auth events from pos.State, computes the content hash, signs the
// redacted form with s, derives the event ID from the reference hash,
// enforces the size limits, and checks the authorisation rules against
// pos.State. The returned event is ready to store; pos.State is not
// changed (call [State.Set] once the event is persisted).
//
// For m.room.create, Build fills in content.room_version and, in v10,
// content.creator when they are absent.
func Build(p Proto, pos Position, s Signer) (*Event, error) {
	v := pos.Version
	if !v.Supported() {
		return nil, fmt.Errorf("rooms: build: room version %.20q: %w", string(v), ErrUnsupportedRoomVersion)
	}
	st := pos.State
	if st == nil {
		st = NewState()
	}
	var err error
	content := p.Content
	if len(bytes.TrimSpace(content)) == 0 {
		content = json.RawMessage("{}")
	}
	if len(content) > maxInputSize {
		// Bound the work before canonicalising; the final PDU is checked
		// against MaxEventSize below.
		return nil, &TooLargeError{What: "event", Size: len(content), Limit: MaxEventSize}
	}
	// Strict decoding first: encoding/json would silently keep the last of
	// duplicate keys and accept floats.
	if content, err = canonicaljson.Canonicalize(content); err != nil {
		return nil, fmt.Errorf("rooms: build: content: %w: %w", ErrInvalidEvent, err)
	}
	cm, err := object(content)
	if err != nil {
		return nil, invalid("build: content is not a JSON object")
	}
	if p.Type == TypeCreate {
		if _, ok := cm["room_version"]; !ok {
			cm["room_version"], _ = json.Marshal(string(v))
		}
		if _, ok := cm["creator"]; !ok && v.rules().createNeedsCreator {
			cm["creator"], _ = json.Marshal(p.Sender)
		}
	}
	top := make(map[string]json.RawMessage, 14)
	redacts := p.Redacts
	if p.Type == TypeRedaction && redacts == "" {
		// Clients that know v11 put redacts in content in every room
		// version; honour it in v10 too so that the redaction takes effect.
		_ = json.Unmarshal(cm["redacts"], &redacts)
	}
	if p.Type == TypeRedaction && redacts != "" {
		if !validEventID(redacts) {
			return nil, invalid("build: bad redacts")
		}
		r, _ := json.Marshal(redacts)
		if v.rules().redactsInContent {
			cm["redacts"] = r
		} else {
			top["redacts"] = r
		}
	}
	if content, err = json.Marshal(cm); err != nil {
		return nil, fmt.Errorf("rooms: build: %w", err)
	}

	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	top["room_id"] = str(pos.RoomID)
	top["sender"] = str(p.Sender)
	top["type"] = str(p.Type)
	if p.StateKey != nil {
		top["state_key"] = str(*p.StateKey)
	}
	top["content"] = content
	top["origin_server_ts"], _ = json.Marshal(pos.Now.UnixMilli())
	prev := pos.PrevEvents
	if prev == nil {
		prev = []string{}
	}
	top["prev_events"], _ = json.Marshal(prev)
	depth := int64(1)
	if len(pos.PrevEvents) > 0 {
		depth = min(pos.PrevDepth+1, MaxDepth)
	}
	top["depth"], _ = json.Marshal(depth)
	var stateKey *string
	if p.StateKey != nil {
		stateKey = p.StateKey
	}
	authIDs := []string{}
	for _, a := range st.AuthEventsFor(p.Type, stateKey, p.Sender, content) {
		authIDs = append(authIDs, a.id)
	}
	top["auth_events"], _ = json.Marshal(authIDs)

	raw, id, err := hashAndSign(v, top, s)
	if err != nil {
		return nil, err
	}
	e, err := parse(v, raw, true) // enforces sizes and formats on the final PDU
	if err != nil {
		return nil, fmt.Errorf("rooms: build: %w", err)
	}
	e.id = id
	if err := Authorize(e, st); err != nil {
		return nil, err
	}
	return e, nil
}

// hashAndSign adds hashes and signatures to the PDU members top (changing
// it) and returns the canonical PDU and its event ID
// (https://spec.matrix.org/v1.16/server-server-api/#adding-hashes-and-signatures-to-outgoing-events).
func hashAndSign(v RoomVersion, top map[string]json.RawMessage, s Signer) ([]byte, string, error) {
	delete(top, "signatures")
	delete(top, "hashes")
	// Content hash over everything but unsigned, signatures and hashes.
	sum, err := contentHash(top)
	if err != nil {
		return nil, "", err
	}
	top["hashes"], _ = json.Marshal(map[string]string{"sha256": base64.RawStdEncoding.EncodeToString(sum[:])})
	// Sign the redacted form; the same bytes give the reference hash.
	signed, err := signedBytes(v, top)
	if err != nil {
		return nil, "", err
	}
	sig := s.Sign(signed)
	top["signatures"], _ = json.Marshal(map[string]map[string]string{s.ServerName(): {s.KeyID(): sig.String()}})
	ref := sha256.Sum256(signed)
	raw, err := canonical(top)
	if err != nil {
		return nil, "", err
	}
	return raw, "$" + base64.RawURLEncoding.EncodeToString(ref[:]), nil
}

// CheckContentHash reports whether hashes.sha256 matches the event's
// content hash. A redacted copy of an event fails this check while its
// signature still verifies.
func (e *Event) CheckContentHash() error {
	top, err := object(e.raw)
	if err != nil {
		return err
	}
	sum, err := contentHash(top)
	if err != nil {
		return err
	}
	got, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(e.hash, "="))
	// Content hashes are public data: a plain comparison is fine.
	if err != nil || !bytes.Equal(got, sum[:]) {
		return invalid("content hash mismatch")
	}
	return nil
}

// VerifySignature checks the signature of serverName with key keyID
// ("ed25519:...") over the redacted event. It returns an error wrapping
// [keys.ErrBadSignature] on a bad or missing signature.
func (e *Event) VerifySignature(serverName, keyID string, pub keys.Ed25519PublicKey) error {
	top, err := object(e.raw)
	if err != nil {
		return err
	}
	var sigs map[string]map[string]string
	if err := json.Unmarshal(top["signatures"], &sigs); err != nil {
		return invalid("signatures is not a map of maps of strings")
	}
	s, ok := sigs[serverName][keyID]
	if !ok {
		return fmt.Errorf("rooms: no signature by %s %s: %w", serverName, keyID, keys.ErrBadSignature)
	}
	sig, err := keys.ParseEd25519Signature(s)
	if err != nil {
		return fmt.Errorf("rooms: signature by %s %s: %w", serverName, keyID, keys.ErrBadSignature)
	}
	msg, err := signedBytes(e.version, top)
	if err != nil {
		return err
	}
	if err := pub.Verify(msg, sig); err != nil {
		return fmt.Errorf("rooms: signature by %s %s: %w", serverName, keyID, err)
	}
	return nil
}
