package rooms

import (
	"encoding/json"
	"slices"
	"strings"
)

// Authorize checks e against the authorisation rules of its room version
// (https://spec.matrix.org/v1.16/rooms/v11/#authorisation-rules), with st
// the state of the room before e. On a single server with a linear event
// graph that is the room's current state when e is created. It returns nil
// or an error wrapping [ErrForbidden] (an *[AuthError] naming the rule).
//
// Deliberate departures from the spec, safe on a server that does not
// federate:
//   - m.room.create is refused when st already has one.
//   - auth_events must be exactly the selection of [State.AuthEventsFor].
//   - restricted and knock_restricted join rules act like invite: a join
//     through join_authorised_via_users_server is refused, because this
//     server does not evaluate the "allow" conditions (room membership of
//     other rooms) that the authorising server's signature vouches for.
//   - invites with third_party_invite are refused (3PID invites are not
//     implemented); m.room.third_party_invite events follow the spec.
func Authorize(e *Event, st *State) error {
	if e.typ == TypeCreate {
		return authCreate(e, st)
	}
	create := st.Create()
	if create == nil {
		return forbid("2.4", "no m.room.create in the room state")
	}
	// Rule 2: auth events are the selection from the current state.
	if err := checkAuthEvents(e, st); err != nil {
		return err
	}
	// Rule 2.5 (all auth events are from the room): the state is the room's.
	if e.roomID != create.roomID {
		return forbid("2.5", "event room %s is not the state's room %s", e.roomID, create.roomID)
	}
	// Rule 3: m.federate.
	if fed, ok := contentBool(create, "m.federate"); ok && !fed && domainOf(e.sender) != domainOf(create.sender) {
		return forbid("3", "room does not federate and sender %s is from another server", e.sender)
	}
	pl := st.PowerLevels()
	if e.typ == TypeMember {
		return authMember(e, st, create, pl)
	}
	senderMembership := st.Membership(e.sender)
	// Rule 5.
	if senderMembership != MembershipJoin {
		return forbid("5", "sender %s is not joined (membership %s)", e.sender, senderMembership)
	}
	senderLevel := pl.UserLevel(e.sender)
	// Rule 6.
	if e.typ == TypeThirdPartyInvite {
		if senderLevel >= pl.Invite {
			return nil
		}
		return forbid("6.1", "sender power level %d is below the invite level %d", senderLevel, pl.Invite)
	}
	// Rule 7.
	if need := pl.EventLevel(e.typ, e.IsState()); need > senderLevel {
		return forbid("7", "sending %s needs power level %d, sender has %d", e.typ, need, senderLevel)
	}
	// Rule 8.
	if sk, ok := e.StateKey(); ok && strings.HasPrefix(sk, "@") && sk != e.sender {
		return forbid("8", "state key %s starting with @ is not the sender", sk)
	}
	// Rule 9.
	if e.typ == TypePowerLevels {
		return authPowerLevels(e, st, senderLevel)
	}
	return nil
}

func authCreate(e *Event, st *State) error {
	if st.Create() != nil {
		return forbid("1", "the room already has an m.room.create event")
	}
	if len(e.prev) > 0 {
		return forbid("1.1", "m.room.create has prev_events")
	}
	if sk, ok := e.StateKey(); !ok || sk != "" {
		return forbid("1", "m.room.create must have an empty state key")
	}
	if domainOf(e.roomID) != domainOf(e.sender) {
		return forbid("1.2", "room ID domain differs from the sender's")
	}
	m, err := object(e.content)
	if err != nil {
		return forbid("1", "content is not an object")
	}
	if r, ok := m["room_version"]; ok {
		var v string
		if json.Unmarshal(r, &v) != nil || !RoomVersion(v).Supported() {
			return forbid("1.3", "room_version is not a recognised version")
		}
		if RoomVersion(v) != e.version {
			return forbid("1.3", "room_version %s differs from the event's version %s", v, e.version)
		}
	} else {
		// An absent room_version means version 1, which is not implemented.
		return forbid("1.3", "room_version is missing (version 1 is not supported)")
	}
	if e.version.rules().createNeedsCreator {
		var c string
		if r, ok := m["creator"]; !ok || json.Unmarshal(r, &c) != nil || c == "" {
			return forbid("1.4", "content.creator is missing")
		}
	}
	return nil
}

func checkAuthEvents(e *Event, st *State) error {
	want := st.AuthEventsFor(e.typ, e.stateKey, e.sender, e.content)
	if len(e.auth) != len(want) {
		return forbid("2.2", "auth_events has %d entries, the selection has %d", len(e.auth), len(want))
	}
	seen := make(map[string]bool, len(e.auth))
	for _, id := range e.auth {
		if seen[id] {
			return forbid("2.1", "duplicate entry in auth_events")
		}
		seen[id] = true
		if !slices.ContainsFunc(want, func(w *Event) bool { return w.id == id }) {
			return forbid("2.2", "auth event %s is not in the selection from the current state", id)
		}
	}
	return nil
}

func contentBool(e *Event, k string) (bool, bool) {
	m, err := object(e.content)
	if err != nil {
		return false, false
	}
	var b bool
	if r, ok := m[k]; ok && json.Unmarshal(r, &b) == nil {
		return b, true
	}
	return false, false
}

func authMember(e *Event, st *State, create *Event, pl *PowerLevels) error {
	// Rule 4.1.
	target, ok := e.StateKey()
	if !ok {
		return forbid("4.1", "m.room.member without a state key")
	}
	m, err := object(e.content)
	if err != nil {
		return forbid("4.1", "content is not an object")
	}
	var membership string
	if r, ok := m["membership"]; !ok || json.Unmarshal(r, &membership) != nil {
		return forbid("4.1", "content.membership is missing or not a string")
	}
	if !validUserID(target) {
		return forbid("4.1", "state key is not a user ID")
	}
	// Rule 4.2: the join must be signed by the authorising user's server.
	// This server signs every event it creates with its own key, so the
	// authorising user must be on the sender's server.
	var via string
	if r, ok := m["join_authorised_via_users_server"]; ok {
		if json.Unmarshal(r, &via) != nil || domainOf(via) != domainOf(e.sender) {
			return forbid("4.2", "join_authorised_via_users_server is not a user of the signing server")
		}
	}
	senderMembership := st.Membership(e.sender)
	targetMembership := st.Membership(target)
	senderLevel := pl.UserLevel(e.sender)
	targetLevel := pl.UserLevel(target)
	switch membership {
	case MembershipJoin:
		// Rule 4.3.1: the creator's join right after m.room.create.
		if len(e.prev) == 1 && e.prev[0] == create.id && target == creatorOf(create) {
			return nil
		}
		if e.sender != target {
			return forbid("4.3.2", "%s cannot join on behalf of %s", e.sender, target)
		}
		if senderMembership == MembershipBan {
			return forbid("4.3.3", "%s is banned", e.sender)
		}
		switch rule := st.JoinRule(); rule {
		case "invite", "knock":
			if targetMembership == MembershipInvite || targetMembership == MembershipJoin {
				return nil
			}
			return forbid("4.3.4", "join rule is %s and %s is not invited", rule, target)
		case "restricted", "knock_restricted":
			if targetMembership == MembershipInvite || targetMembership == MembershipJoin {
				return nil
			}
			if via != "" {
				return forbid("4.3.5", "joins authorised via another user are not supported")
			}
			return forbid("4.3.5", "join rule is %s and %s is not invited", rule, target)
		case "public":
			return nil
		default:
			return forbid("4.3.7", "join rule %.40q does not allow joining", rule)
		}
	case MembershipInvite:
		if _, ok := m["third_party_invite"]; ok {
			return forbid("4.4.1", "third-party invites are not supported")
		}
		if senderMembership != MembershipJoin {
			return forbid("4.4.2", "inviter %s is not joined", e.sender)
		}
		if targetMembership == MembershipJoin || targetMembership == MembershipBan {
			return forbid("4.4.3", "%s cannot be invited (membership %s)", target, targetMembership)
		}
		if senderLevel >= pl.Invite {
			return nil
		}
		return forbid("4.4.5", "inviter power level %d is below the invite level %d", senderLevel, pl.Invite)
	case MembershipLeave:
		if e.sender == target {
			switch senderMembership {
			case MembershipInvite, MembershipJoin, MembershipKnock:
				return nil
			}
			return forbid("4.5.1", "%s cannot leave from membership %s", target, senderMembership)
		}
		if senderMembership != MembershipJoin {
			return forbid("4.5.2", "sender %s is not joined", e.sender)
		}
		if targetMembership == MembershipBan && senderLevel < pl.Ban {
			return forbid("4.5.3", "unbanning needs power level %d, sender has %d", pl.Ban, senderLevel)
		}
		if senderLevel >= pl.Kick && targetLevel < senderLevel {
			return nil
		}
		return forbid("4.5.5", "kicking needs power level %d and to outrank the target (sender %d, target %d)", pl.Kick, senderLevel, targetLevel)
	case MembershipBan:
		if senderMembership != MembershipJoin {
			return forbid("4.6.1", "sender %s is not joined", e.sender)
		}
		if senderLevel >= pl.Ban && targetLevel < senderLevel {
			return nil
		}
		return forbid("4.6.3", "banning needs power level %d and to outrank the target (sender %d, target %d)", pl.Ban, senderLevel, targetLevel)
	case MembershipKnock:
		if rule := st.JoinRule(); rule != "knock" && rule != "knock_restricted" {
			return forbid("4.7.1", "join rule %.40q does not allow knocking", rule)
		}
		if e.sender != target {
			return forbid("4.7.2", "%s cannot knock on behalf of %s", e.sender, target)
		}
		switch senderMembership {
		case MembershipBan, MembershipInvite, MembershipJoin:
			return forbid("4.7.4", "cannot knock from membership %s", senderMembership)
		}
		return nil
	}
	return forbid("4.8", "unknown membership %.40q", membership)
}

// plRaw is a power levels content as written: only the fields present.
type plRaw struct {
	ints                  map[string]int64
	events, notifs, users map[string]int64
}

func parsePLRaw(content json.RawMessage) (*plRaw, error) {
	pl, err := ParsePowerLevels(content) // validates rules 9.1 to 9.3
	if err != nil {
		return nil, err
	}
	m, _ := object(content)
	r := &plRaw{ints: map[string]int64{}, events: pl.Events, notifs: pl.Notifications, users: pl.Users}
	for _, f := range plIntFields {
		if _, ok := m[f]; ok {
			r.ints[f] = *pl.field(f)
		}
	}
	return r, nil
}

func authPowerLevels(e *Event, st *State, senderLevel int64) error {
	next, err := parsePLRaw(e.content)
	if err != nil {
		return forbid("9.1", "malformed power levels: %v", err)
	}
	prevEv := st.Get(TypePowerLevels, "")
	if prevEv == nil {
		return nil // Rule 9.4.
	}
	cur, err := parsePLRaw(prevEv.content)
	if err != nil {
		// The current event was accepted by these rules, so it parses.
		return forbid("9.4", "current power levels are malformed")
	}
	// Rule 9.5.
	for _, f := range plIntFields {
		o, oldOK := cur.ints[f]
		n, newOK := next.ints[f]
		if oldOK == newOK && o == n {
			continue
		}
		if oldOK && o > senderLevel {
			return forbid("9.5.1", "cannot change %s from %d, above own level %d", f, o, senderLevel)
		}
		if newOK && n > senderLevel {
			return forbid("9.5.2", "cannot set %s to %d, above own level %d", f, n, senderLevel)
		}
	}
	// Rules 9.6 and 9.7.
	for _, mp := range []struct {
		name     string
		old, new map[string]int64
	}{{"events", cur.events, next.events}, {"notifications", cur.notifs, next.notifs}} {
		for k, o := range mp.old {
			if n, ok := mp.new[k]; (!ok || n != o) && o > senderLevel {
				return forbid("9.6.1", "cannot change %s entry %s from %d, above own level %d", mp.name, k, o, senderLevel)
			}
		}
		for k, n := range mp.new {
			if o, ok := mp.old[k]; (!ok || n != o) && n > senderLevel {
				return forbid("9.7.1", "cannot set %s entry %s to %d, above own level %d", mp.name, k, n, senderLevel)
			}
		}
	}
	// Rules 9.8 and 9.9.
	for u, o := range cur.users {
		if n, ok := next.users[u]; (!ok || n != o) && u != e.sender && o >= senderLevel {
			return forbid("9.8.1", "cannot change the level of %s (%d), not below own level %d", u, o, senderLevel)
		}
	}
	for u, n := range next.users {
		if o, ok := cur.users[u]; (!ok || n != o) && n > senderLevel {
			return forbid("9.9.1", "cannot set the level of %s to %d, above own level %d", u, n, senderLevel)
		}
	}
	return nil
}

// MayRedact reports whether redactor may redact target under the
// client-server rules layered on the auth rules: anyone whose redaction
// event passes the auth rules may redact their own events; redacting
// another user's event also needs the "redact" power level
// (https://spec.matrix.org/v1.16/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid
// and https://spec.matrix.org/v1.16/rooms/v11/#handling-redactions). st is
// the current state. It returns nil or an *[AuthError].
func MayRedact(st *State, redactor string, target *Event) error {
	if st.Membership(redactor) != MembershipJoin {
		return forbid("redact", "%s is not joined", redactor)
	}
	pl := st.PowerLevels()
	lvl := pl.UserLevel(redactor)
	if need := pl.EventLevel(TypeRedaction, false); lvl < need {
		return forbid("redact", "sending m.room.redaction needs power level %d, sender has %d", need, lvl)
	}
	if target.sender != redactor && lvl < pl.Redact {
		return forbid("redact", "redacting others' events needs power level %d, sender has %d", pl.Redact, lvl)
	}
	if target.typ == TypeCreate {
		// Redacting m.room.create would change nothing in v11 and is useless
		// in v10; refuse it rather than store a pointless redaction.
		return forbid("redact", "m.room.create cannot be redacted")
	}
	return nil
}
