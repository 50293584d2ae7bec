package rooms

import (
	"encoding/json"
	"maps"
)

// PowerLevels is the content of m.room.power_levels with defaults applied
// (https://spec.matrix.org/v1.16/client-server-api/#mroompower_levels).
type PowerLevels struct {
	Ban           int64
	Kick          int64
	Redact        int64
	Invite        int64
	EventsDefault int64
	StateDefault  int64
	UsersDefault  int64
	Events        map[string]int64
	Users         map[string]int64
	Notifications map[string]int64
}

func defaultPowerLevels() *PowerLevels {
	return &PowerLevels{
		Ban: 50, Kick: 50, Redact: 50, Invite: 0,
		EventsDefault: 0, StateDefault: 50, UsersDefault: 0,
		Events: map[string]int64{}, Users: map[string]int64{}, Notifications: map[string]int64{},
	}
}

// plIntFields are the integer fields of m.room.power_levels, in the order
// the auth rules list them.
var plIntFields = []string{"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"}

func (p *PowerLevels) field(name string) *int64 {
	switch name {
	case "users_default":
		return &p.UsersDefault
	case "events_default":
		return &p.EventsDefault
	case "state_default":
		return &p.StateDefault
	case "ban":
		return &p.Ban
	case "redact":
		return &p.Redact
	case "kick":
		return &p.Kick
	case "invite":
		return &p.Invite
	}
	panic("rooms: internal error: unknown power level field " + name)
}

// ParsePowerLevels parses the content of an m.room.power_levels event
// under the v10/v11 rules: every level is a JSON integer (not a string),
// events and notifications map to integers, and users maps valid user IDs
// to integers (auth rules 9.1 to 9.3). Absent fields take their defaults.
func ParsePowerLevels(content json.RawMessage) (*PowerLevels, error) {
	m, err := object(content)
	if err != nil {
		return nil, err
	}
	pl := defaultPowerLevels()
	for _, f := range plIntFields {
		r, ok := m[f]
		if !ok {
			continue
		}
		n, ok := jsonInt(r)
		if !ok {
			return nil, invalid("power levels: %s is not an integer", f)
		}
		*pl.field(f) = n
	}
	for _, f := range []struct {
		name  string
		dst   map[string]int64
		users bool
	}{{"events", pl.Events, false}, {"notifications", pl.Notifications, false}, {"users", pl.Users, true}} {
		r, ok := m[f.name]
		if !ok {
			continue
		}
		mm, err := object(r)
		if err != nil {
			return nil, invalid("power levels: %s is not an object", f.name)
		}
		for k, v := range mm {
			n, ok := jsonInt(v)
			if !ok {
				return nil, invalid("power levels: %s has a non-integer value", f.name)
			}
			if f.users && !validUserID(k) {
				return nil, invalid("power levels: users has a key that is not a user ID")
			}
			f.dst[k] = n
		}
	}
	return pl, nil
}

// UserLevel returns the user's power level.
func (p *PowerLevels) UserLevel(userID string) int64 {
	if n, ok := p.Users[userID]; ok {
		return n
	}
	return p.UsersDefault
}

// EventLevel returns the level needed to send an event of type typ: the
// events entry, else state_default for state events or events_default.
func (p *PowerLevels) EventLevel(typ string, isState bool) int64 {
	if n, ok := p.Events[typ]; ok {
		return n
	}
	if isState {
		return p.StateDefault
	}
	return p.EventsDefault
}

// NotificationLevel returns the level needed for a notification key such
// as "room" (default 50).
func (p *PowerLevels) NotificationLevel(key string) int64 {
	if n, ok := p.Notifications[key]; ok {
		return n
	}
	if key == "room" {
		return 50
	}
	return 0
}

// Clone returns a deep copy.
func (p *PowerLevels) Clone() *PowerLevels {
	c := *p
	c.Events = maps.Clone(p.Events)
	c.Users = maps.Clone(p.Users)
	c.Notifications = maps.Clone(p.Notifications)
	return &c
}
