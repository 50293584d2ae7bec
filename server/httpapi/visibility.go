package httpapi

import (
	"context"
	"encoding/json"
	"sort"

	"myelin/server/rooms"
	"myelin/server/storage"
)

// visibility decides, for one user and one room, which events the user may
// see (https://spec.matrix.org/v1.16/client-server-api/#room-history-visibility).
// With a linear event graph the state at an event is a function of its stream
// position, so it needs only the user's member events and the room's
// history-visibility events.
type visibility struct {
	// joinedThroughout means the user was joined for every event this
	// visibility is asked about (see joinedSince), so all are visible.
	joinedThroughout bool
	user             string
	members          []*storage.Event // the user's member events, ascending
	hv               []hvAt           // visibility changes, ascending
}

type hvAt struct {
	pos int64
	vis rooms.Visibility
}

func (s *Server) newVisibility(ctx context.Context, roomID, userID string) (*visibility, error) {
	m, err := s.store.MembershipEvents(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	hvs, err := s.store.VisibilityEvents(ctx, roomID)
	if err != nil {
		return nil, err
	}
	v := &visibility{user: userID, members: m}
	for _, e := range hvs {
		v.hv = append(v.hv, hvAt{pos: e.Pos, vis: rooms.ParseVisibility(contentString(e.PDU, "history_visibility"))})
	}
	return v, nil
}

// contentString returns content[key] of a PDU as a string ("" if absent).
func contentString(pdu json.RawMessage, key string) string {
	var ev struct {
		Content map[string]any `json:"content"`
	}
	_ = json.Unmarshal(pdu, &ev)
	s, _ := ev.Content[key].(string)
	return s
}

func (v *visibility) visBefore(pos int64) rooms.Visibility {
	i := sort.Search(len(v.hv), func(i int) bool { return v.hv[i].pos >= pos })
	if i == 0 {
		return rooms.Shared
	}
	return v.hv[i-1].vis
}

func (v *visibility) memBefore(pos int64) string {
	i := sort.Search(len(v.members), func(i int) bool { return v.members[i].Pos >= pos })
	if i == 0 {
		return rooms.MembershipLeave
	}
	return v.members[i-1].Membership
}

func (v *visibility) joinedAfter(pos int64) bool {
	for _, m := range v.members {
		if m.Pos > pos && m.Membership == rooms.MembershipJoin {
			return true
		}
	}
	return false
}

// joinedSince is the visibility for events after position pos of a user
// whose current membership is a join at or before pos: their membership at
// each of those events is join, which makes every one of them visible.
func joinedSince() *visibility { return &visibility{joinedThroughout: true} }

// canSee reports whether the user may see e.
func (v *visibility) canSee(e *storage.Event) bool {
	if v.joinedThroughout {
		return true
	}
	in := rooms.VisibilityInput{VisibilityBefore: v.visBefore(e.Pos), MembershipBefore: v.memBefore(e.Pos), JoinedLater: v.joinedAfter(e.Pos)}
	if e.Type == rooms.TypeHistoryVisibility && e.StateKey != nil && *e.StateKey == "" {
		in.VisibilityAfter = rooms.ParseVisibility(contentString(e.PDU, "history_visibility"))
	}
	if e.Type == rooms.TypeMember && e.StateKey != nil && *e.StateKey == v.user {
		in.MembershipAfter = e.Membership
	}
	return rooms.CanSee(in)
}

// filter keeps the visible events.
func (v *visibility) filter(evs []*storage.Event) []*storage.Event {
	out := evs[:0:0]
	for _, e := range evs {
		if v.canSee(e) {
			out = append(out, e)
		}
	}
	return out
}

// current returns the user's current membership and its position.
func (v *visibility) current() (string, int64) {
	if len(v.members) == 0 {
		return "", 0
	}
	m := v.members[len(v.members)-1]
	return m.Membership, m.Pos
}

// everMember reports whether the user was ever joined to or invited into the room.
func (v *visibility) everMember() bool {
	for _, m := range v.members {
		if m.Membership == rooms.MembershipJoin || m.Membership == rooms.MembershipInvite {
			return true
		}
	}
	return false
}

// readLimit returns the last position whose state the user may read: the
// current position while joined, else the position of the user's leave (or
// ban); ok=false if the user was never joined.
func (v *visibility) readLimit(cur int64) (int64, bool) {
	joined := false
	for _, m := range v.members {
		if m.Membership == rooms.MembershipJoin {
			joined = true
		}
	}
	if !joined {
		return 0, false
	}
	mem, pos := v.current()
	if mem == rooms.MembershipJoin {
		return cur, true
	}
	return pos, true
}
