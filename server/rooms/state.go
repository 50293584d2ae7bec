package rooms

import (
	"cmp"
	"encoding/json"
	"slices"
)

// StateKey is the key of a state entry: an event type and a state_key.
type StateKey struct {
	Type     string
	StateKey string
}

// State is the state of a room at one point: the latest accepted state
// event for each (type, state_key). On a single server the room's event
// graph is linear, so the current state is a fold of [State.Apply] over the
// room's events in order (https://spec.matrix.org/v1.16/rooms/v11/#state-resolution
// is never needed). A State is not safe for concurrent mutation; share it
// read-only or [State.Clone] it.
type State struct {
	m map[StateKey]*Event
}

// NewState returns an empty state (the state before m.room.create).
func NewState() *State { return &State{m: make(map[StateKey]*Event)} }

// Clone returns a copy that can be changed independently (events are immutable and shared).
func (s *State) Clone() *State {
	c := &State{m: make(map[StateKey]*Event, len(s.m))}
	for k, v := range s.m {
		c.m[k] = v
	}
	return c
}

// Len returns the number of state entries.
func (s *State) Len() int { return len(s.m) }

// Get returns the state event for (typ, stateKey), or nil.
func (s *State) Get(typ, stateKey string) *Event {
	if s == nil {
		return nil
	}
	return s.m[StateKey{typ, stateKey}]
}

// Events returns the state events sorted by type then state key.
func (s *State) Events() []*Event {
	out := make([]*Event, 0, len(s.m))
	for _, e := range s.m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Event) int {
		return cmp.Or(cmp.Compare(a.typ, b.typ), cmp.Compare(*a.stateKey, *b.stateKey))
	})
	return out
}

// Set records e as the state event for its (type, state_key) without any
// check. Use it to rebuild state from events this server already accepted;
// use [State.Apply] for new events. Non-state events are ignored.
func (s *State) Set(e *Event) {
	if e.stateKey == nil {
		return
	}
	s.m[StateKey{e.typ, *e.stateKey}] = e
}

// Apply checks e against the authorisation rules with s as the state
// before e ([Authorize]) and, if allowed and e is a state event, makes it
// part of s. On error s is unchanged.
func (s *State) Apply(e *Event) error {
	if err := Authorize(e, s); err != nil {
		return err
	}
	s.Set(e)
	return nil
}

// Create returns the m.room.create event, or nil.
func (s *State) Create() *Event { return s.Get(TypeCreate, "") }

// Creator returns the room creator: content.creator in v10, the sender of
// m.room.create in v11. It returns "" before the create event.
func (s *State) Creator() string {
	c := s.Create()
	if c == nil {
		return ""
	}
	return creatorOf(c)
}

func creatorOf(create *Event) string {
	if create.version.rules().createNeedsCreator {
		return create.contentString("creator")
	}
	return create.sender
}

// Membership returns the user's current membership ("join", "invite",
// "leave", "ban", "knock"), or "leave" when the user has no member event.
func (s *State) Membership(userID string) string {
	if e := s.Get(TypeMember, userID); e != nil {
		if m := e.Membership(); m != "" {
			return m
		}
	}
	return MembershipLeave
}

// Members returns the users whose current membership is m, sorted.
func (s *State) Members(m string) []string {
	var out []string
	for k, e := range s.m {
		if k.Type == TypeMember && e.Membership() == m {
			out = append(out, k.StateKey)
		}
	}
	slices.Sort(out)
	return out
}

// JoinRule returns content.join_rule of m.room.join_rules, or "invite"
// when unset (the spec's default).
func (s *State) JoinRule() string {
	if e := s.Get(TypeJoinRules, ""); e != nil {
		if r := e.contentString("join_rule"); r != "" {
			return r
		}
	}
	return "invite"
}

// HistoryVisibility returns the room's current history visibility
// ([Shared] when unset or unknown).
func (s *State) HistoryVisibility() Visibility {
	if e := s.Get(TypeHistoryVisibility, ""); e != nil {
		return ParseVisibility(e.contentString("history_visibility"))
	}
	return Shared
}

// PowerLevels returns the room's power levels with the spec's defaults
// filled in: with no m.room.power_levels event the creator has 100,
// everyone else 0, and the other levels are those of an empty event. A malformed power levels event (impossible once the
// auth rules accepted it) yields the defaults of an empty one.
func (s *State) PowerLevels() *PowerLevels {
	e := s.Get(TypePowerLevels, "")
	if e == nil {
		pl := defaultPowerLevels()
		if c := s.Creator(); c != "" {
			pl.Users[c] = 100
		}
		return pl
	}
	pl, err := ParsePowerLevels(e.content)
	if err != nil {
		return defaultPowerLevels()
	}
	return pl
}

// AuthEventsFor selects, from s, the auth events of an event with the given
// type, state key (nil for non-state), sender and content
// (https://spec.matrix.org/v1.16/server-server-api/#auth-events-selection):
// m.room.create, the current power levels, the sender's member event and,
// for member events, the target's member event and (for join, invite and
// knock) the join rules. m.room.create itself has none.
func (s *State) AuthEventsFor(typ string, stateKey *string, sender string, content json.RawMessage) []*Event {
	if typ == TypeCreate {
		return nil
	}
	var out []*Event
	add := func(e *Event) {
		if e != nil && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	add(s.Create())
	add(s.Get(TypePowerLevels, ""))
	add(s.Get(TypeMember, sender))
	if typ == TypeMember && stateKey != nil {
		add(s.Get(TypeMember, *stateKey))
		var c struct {
			Membership string `json:"membership"`
			JoinVia    string `json:"join_authorised_via_users_server"`
		}
		if m, err := object(content); err == nil {
			_ = json.Unmarshal(m["membership"], &c.Membership)
			_ = json.Unmarshal(m["join_authorised_via_users_server"], &c.JoinVia)
		}
		switch c.Membership {
		case MembershipJoin, MembershipInvite, MembershipKnock:
			add(s.Get(TypeJoinRules, ""))
		}
		if c.Membership == MembershipJoin && c.JoinVia != "" {
			add(s.Get(TypeMember, c.JoinVia))
		}
	}
	return out
}
