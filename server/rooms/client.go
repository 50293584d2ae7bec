package rooms

import (
	"encoding/json"
	"time"
)

// ClientEvent is an event in the client-server format
// (https://spec.matrix.org/v1.16/client-server-api/#room-event-format):
// never auth_events, prev_events, depth, hashes or signatures.
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	// Redacts is set on m.room.redaction in every room version, for old
	// clients (v11 also has content.redacts, and v10 gets it added).
	Redacts  string    `json:"redacts,omitempty"`
	Unsigned *Unsigned `json:"unsigned,omitempty"`
}

// Unsigned is the unsigned data the server adds when serving an event.
type Unsigned struct {
	Age             int64           `json:"age"`
	TransactionID   string          `json:"transaction_id,omitempty"`
	PrevContent     json.RawMessage `json:"prev_content,omitempty"`
	PrevSender      string          `json:"prev_sender,omitempty"`
	ReplacesState   string          `json:"replaces_state,omitempty"`
	RedactedBecause *ClientEvent    `json:"redacted_because,omitempty"`
	Membership      string          `json:"membership,omitempty"`
	InviteRoomState []StrippedEvent `json:"invite_room_state,omitempty"`
	Relations       json.RawMessage `json:"m.relations,omitempty"`
}

// StrippedEvent is a stripped state event (invite_state, knock_state).
type StrippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// ClientOptions says how to serve one event to one client.
type ClientOptions struct {
	// Now is the clock reading for unsigned.age.
	Now time.Time
	// OmitRoomID drops room_id (inside /sync room maps).
	OmitRoomID bool
	// TransactionID is set only when serving to the device that sent the event.
	TransactionID string
	// Replaced is the state event this one replaced (for prev_content,
	// prev_sender and replaces_state), or nil.
	Replaced *Event
	// RedactedBecause is the accepted redaction of this event, or nil. When
	// set the event is served redacted.
	RedactedBecause *Event
	// Membership is the requesting user's membership at the event (optional).
	Membership string
	// InviteRoomState is attached to the invitee's invite member event.
	InviteRoomState []StrippedEvent
}

// Client converts e to the client format. The returned Content may share
// memory with e: treat it as read-only. It never fails: an event that
// cannot be redacted (impossible for events this package parsed) is
// served with empty content.
func (e *Event) Client(o ClientOptions) ClientEvent {
	src := e
	if o.RedactedBecause != nil {
		if r, err := e.Redact(); err == nil {
			src = r
		} else {
			src = &Event{content: json.RawMessage("{}")}
		}
	}
	ce := ClientEvent{
		Content:        src.content,
		EventID:        e.id,
		OriginServerTS: e.ts,
		Sender:         e.sender,
		StateKey:       e.stateKey,
		Type:           e.typ,
	}
	if !o.OmitRoomID {
		ce.RoomID = e.roomID
	}
	if e.typ == TypeRedaction && src.redacts != "" {
		ce.Redacts = src.redacts
		if !e.version.rules().redactsInContent {
			ce.Content = withRedacts(src.content, src.redacts)
		}
	}
	u := &Unsigned{
		Age:             max(0, o.Now.UnixMilli()-e.ts),
		TransactionID:   o.TransactionID,
		Membership:      o.Membership,
		InviteRoomState: o.InviteRoomState,
	}
	if o.Replaced != nil && e.IsState() {
		u.PrevContent = o.Replaced.content
		u.PrevSender = o.Replaced.sender
		u.ReplacesState = o.Replaced.id
	}
	if o.RedactedBecause != nil {
		rb := o.RedactedBecause.Client(ClientOptions{Now: o.Now, OmitRoomID: o.OmitRoomID})
		u.RedactedBecause = &rb
	}
	ce.Unsigned = u
	return ce
}

// withRedacts adds "redacts" to a content object that lacks it (v10
// redactions served to newer clients).
func withRedacts(content json.RawMessage, redacts string) json.RawMessage {
	m, err := object(content)
	if err != nil {
		return content
	}
	if _, ok := m["redacts"]; ok {
		return content
	}
	m["redacts"], _ = json.Marshal(redacts)
	b, err := json.Marshal(m)
	if err != nil {
		return content
	}
	return b
}

// Stripped returns e as a stripped state event.
func (e *Event) Stripped() StrippedEvent {
	return StrippedEvent{Content: e.content, Sender: e.sender, StateKey: e.StateKeyOrEmpty(), Type: e.typ}
}

// strippedTypes are the state events given to invitees and knockers
// (https://spec.matrix.org/v1.16/client-server-api/#stripped-state).
var strippedTypes = []string{
	TypeCreate, TypeJoinRules, "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.canonical_alias", "m.room.encryption",
}

// InviteState returns the stripped state for an invite or knock: the
// create, join rules, name, avatar, topic, canonical alias and encryption
// events, plus the member event of sender (the inviter) when present.
func (s *State) InviteState(sender string) []StrippedEvent {
	var out []StrippedEvent
	for _, t := range strippedTypes {
		if e := s.Get(t, ""); e != nil {
			out = append(out, e.Stripped())
		}
	}
	if e := s.Get(TypeMember, sender); e != nil {
		out = append(out, e.Stripped())
	}
	return out
}
