package api

import "encoding/json"

// ClientEvent is an event in the client format
// (https://spec.matrix.org/v1.16/client-server-api/#room-event-format). RoomID is
// omitted inside /sync room maps.
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       map[string]any  `json:"unsigned,omitempty"`
}

// StrippedState is a stripped state event as sent in invite_state.
type StrippedState struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// BasicEvent is an event with only type and content (account data, ephemeral).
type BasicEvent struct {
	Type    string `json:"type"`
	Content any    `json:"content"`
}
