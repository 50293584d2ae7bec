package api

import (
	"path"
	"slices"
)

// EventFilter is the common part of filters
// (https://spec.matrix.org/v1.16/client-server-api/#filtering).
type EventFilter struct {
	Limit      *int     `json:"limit,omitempty"`
	Types      []string `json:"types,omitempty"`
	NotTypes   []string `json:"not_types,omitempty"`
	Senders    []string `json:"senders,omitempty"`
	NotSenders []string `json:"not_senders,omitempty"`
}

// RoomEventFilter is an event filter for room events.
type RoomEventFilter struct {
	EventFilter
	LazyLoadMembers         bool     `json:"lazy_load_members,omitempty"`
	IncludeRedundantMembers bool     `json:"include_redundant_members,omitempty"`
	Rooms                   []string `json:"rooms,omitempty"`
	NotRooms                []string `json:"not_rooms,omitempty"`
	ContainsURL             *bool    `json:"contains_url,omitempty"`
}

// RoomFilter selects what /sync returns about rooms.
type RoomFilter struct {
	Rooms        []string        `json:"rooms,omitempty"`
	NotRooms     []string        `json:"not_rooms,omitempty"`
	IncludeLeave bool            `json:"include_leave,omitempty"`
	State        RoomEventFilter `json:"state"`
	Timeline     RoomEventFilter `json:"timeline"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	AccountData  RoomEventFilter `json:"account_data"`
}

// Filter is a filter definition as uploaded with POST /user/{userId}/filter.
type Filter struct {
	EventFields []string    `json:"event_fields,omitempty"`
	EventFormat string      `json:"event_format,omitempty"`
	Presence    EventFilter `json:"presence"`
	AccountData EventFilter `json:"account_data"`
	Room        RoomFilter  `json:"room"`
}

func globMatch(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == s {
			return true
		}
		// path.Match treats '*' as "any run without '/'"; event types contain no '/'.
		if ok, err := path.Match(p, s); err == nil && ok {
			return true
		}
	}
	return false
}

// Allows reports whether an event of type typ from sender passes the filter.
func (f *EventFilter) Allows(typ, sender string) bool {
	if f == nil {
		return true
	}
	if f.Types != nil && !globMatch(f.Types, typ) {
		return false
	}
	if globMatch(f.NotTypes, typ) {
		return false
	}
	if f.Senders != nil && !slices.Contains(f.Senders, sender) {
		return false
	}
	return !slices.Contains(f.NotSenders, sender)
}

// AllowsRoom reports whether roomID passes the rooms/not_rooms lists.
func (f *RoomEventFilter) AllowsRoom(roomID string) bool {
	if f.Rooms != nil && !slices.Contains(f.Rooms, roomID) {
		return false
	}
	return !slices.Contains(f.NotRooms, roomID)
}

// AllowsRoom reports whether roomID passes the room filter's rooms/not_rooms lists.
func (f *RoomFilter) AllowsRoom(roomID string) bool {
	if f.Rooms != nil && !slices.Contains(f.Rooms, roomID) {
		return false
	}
	return !slices.Contains(f.NotRooms, roomID)
}

// LimitOr returns the filter's limit clamped to [1, max], or def when unset.
func (f *EventFilter) LimitOr(def, max int) int {
	if f == nil || f.Limit == nil {
		return def
	}
	n := *f.Limit
	if n < 1 {
		n = 1
	}
	if n > max {
		n = max
	}
	return n
}
