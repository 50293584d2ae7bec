package client

import (
	"encoding/json"

	"myelin/api"
)

// LoginResponse is the answer to register and login.
type LoginResponse struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
}

// CreateRoomRequest is the body of POST /createRoom.
type CreateRoomRequest struct {
	Name         string         `json:"name,omitempty"`
	Topic        string         `json:"topic,omitempty"`
	Preset       string         `json:"preset,omitempty"`
	Visibility   string         `json:"visibility,omitempty"`
	Invite       []string       `json:"invite,omitempty"`
	IsDirect     bool           `json:"is_direct,omitempty"`
	InitialState []InitialState `json:"initial_state,omitempty"`
}

// InitialState is one state event of CreateRoomRequest.InitialState.
type InitialState struct {
	Type     string `json:"type"`
	StateKey string `json:"state_key"`
	Content  any    `json:"content"`
}

// SyncRequest holds the parameters of GET /sync.
type SyncRequest struct {
	Since       string
	TimeoutMS   int // long-poll timeout in milliseconds
	Filter      string
	FullState   bool
	SetPresence string
}

// SyncResponse is the part of a /sync response the SDK uses
// (https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3sync).
type SyncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join   map[string]JoinedRoom  `json:"join"`
		Invite map[string]InvitedRoom `json:"invite"`
		Leave  map[string]LeftRoom    `json:"leave"`
	} `json:"rooms"`
	ToDevice struct {
		Events []ToDeviceEvent `json:"events"`
	} `json:"to_device"`
	DeviceLists struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	} `json:"device_lists"`
	DeviceOneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	// DeviceUnusedFallbackKeyTypes is nil when the server did not send it.
	DeviceUnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

// Timeline is a room's timeline section in /sync.
type Timeline struct {
	Events    []api.ClientEvent `json:"events"`
	Limited   bool              `json:"limited"`
	PrevBatch string            `json:"prev_batch"`
}

// StateEvents is a list of state events in /sync.
type StateEvents struct {
	Events []api.ClientEvent `json:"events"`
}

// JoinedRoom is one room under rooms.join.
type JoinedRoom struct {
	State    StateEvents `json:"state"`
	Timeline Timeline    `json:"timeline"`
}

// InvitedRoom is one room under rooms.invite.
type InvitedRoom struct {
	InviteState struct {
		Events []api.StrippedState `json:"events"`
	} `json:"invite_state"`
}

// LeftRoom is one room under rooms.leave.
type LeftRoom struct {
	State    StateEvents `json:"state"`
	Timeline Timeline    `json:"timeline"`
}

// ToDeviceEvent is one event of to_device.events.
type ToDeviceEvent struct {
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	Content json.RawMessage `json:"content"`
}

// MessagesResponse is the answer to GET /rooms/{roomId}/messages.
type MessagesResponse struct {
	Start string            `json:"start"`
	End   string            `json:"end"`
	Chunk []api.ClientEvent `json:"chunk"`
	State []api.ClientEvent `json:"state"`
}

// Device is one entry of GET /devices.
type Device struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenIP  string `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64  `json:"last_seen_ts,omitempty"`
}
