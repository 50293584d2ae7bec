package rooms

// Visibility is a value of m.room.history_visibility
// (https://spec.matrix.org/v1.16/client-server-api/#room-history-visibility).
type Visibility string

const (
	// WorldReadable: anyone may see events sent while it applies.
	WorldReadable Visibility = "world_readable"
	// Shared: members may see all events, including those sent before they joined.
	Shared Visibility = "shared"
	// Invited: members may see events from the point they were invited.
	Invited Visibility = "invited"
	// Joined: members may see events from the point they joined.
	Joined Visibility = "joined"
)

// ParseVisibility returns the visibility named s, or [Shared] (the spec's
// default) when s is empty or unknown.
func ParseVisibility(s string) Visibility {
	switch v := Visibility(s); v {
	case WorldReadable, Shared, Invited, Joined:
		return v
	}
	return Shared
}

// VisibilityInput is what [CanSee] needs to know about one event and one
// user. "Before" and "After" are the state just before and just after the
// event; they differ only for m.room.history_visibility events (the
// visibility) and for the user's own m.room.member events (the membership).
// For every other event set After equal to Before, or leave it empty.
type VisibilityInput struct {
	VisibilityBefore Visibility
	VisibilityAfter  Visibility // "" means the same as VisibilityBefore
	MembershipBefore string     // the user's membership; "" means leave
	MembershipAfter  string     // "" means the same as MembershipBefore
	// JoinedLater reports that the user joined the room at some point after
	// the event (in particular: the user is joined now). It lets a [Shared]
	// event be seen by members who joined after it was sent; a user who
	// left and never came back does not see shared events sent after the leave.
	JoinedLater bool
}

// CanSee reports whether a user may see an event under the
// history-visibility rules: allowed if, with the state before or after the
// event, the visibility was world_readable, or the user was joined, or the
// visibility was shared and the user joined later, or the visibility was
// invited and the user was invited. Everything else is hidden. Call it on
// every read path (/sync, /messages, /context, /event, /members, ...).
func CanSee(in VisibilityInput) bool {
	visAfter := in.VisibilityAfter
	if visAfter == "" {
		visAfter = in.VisibilityBefore
	}
	memBefore := in.MembershipBefore
	if memBefore == "" {
		memBefore = MembershipLeave
	}
	memAfter := in.MembershipAfter
	if memAfter == "" {
		memAfter = memBefore
	}
	for _, vis := range []Visibility{ParseVisibility(string(in.VisibilityBefore)), ParseVisibility(string(visAfter))} {
		for _, mem := range []string{memBefore, memAfter} {
			if canSee(vis, mem, in.JoinedLater) {
				return true
			}
		}
	}
	return false
}

func canSee(vis Visibility, membership string, joinedLater bool) bool {
	switch {
	case vis == WorldReadable:
		return true
	case membership == MembershipJoin:
		return true
	case vis == Shared && joinedLater:
		return true
	case vis == Invited && membership == MembershipInvite:
		return true
	}
	return false
}

// VisibilityAt computes the [VisibilityInput] for user and event e from
// the room state just before e (stateBefore). joinedLater is as in
// VisibilityInput. Use it when the state at each event is at hand; a
// store that records the visibility and memberships per event can fill
// VisibilityInput directly.
func VisibilityAt(e *Event, stateBefore *State, user string, joinedLater bool) VisibilityInput {
	in := VisibilityInput{
		VisibilityBefore: stateBefore.HistoryVisibility(),
		MembershipBefore: stateBefore.Membership(user),
		JoinedLater:      joinedLater,
	}
	if sk, ok := e.StateKey(); ok {
		switch {
		case e.typ == TypeHistoryVisibility && sk == "":
			in.VisibilityAfter = ParseVisibility(e.contentString("history_visibility"))
		case e.typ == TypeMember && sk == user:
			if m := e.Membership(); m != "" {
				in.MembershipAfter = m
			}
		}
	}
	return in
}
