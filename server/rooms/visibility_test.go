package rooms

import "testing"

func TestCanSee(t *testing.T) {
	cases := []struct {
		name string
		in   VisibilityInput
		want bool
	}{
		{"world_readable, never member", VisibilityInput{VisibilityBefore: WorldReadable}, true},
		{"joined at event", VisibilityInput{VisibilityBefore: Joined, MembershipBefore: MembershipJoin}, true},
		{"joined vis, joined later", VisibilityInput{VisibilityBefore: Joined, JoinedLater: true}, false},
		{"joined vis, invited at event", VisibilityInput{VisibilityBefore: Joined, MembershipBefore: MembershipInvite}, false},
		{"shared, joined later", VisibilityInput{VisibilityBefore: Shared, JoinedLater: true}, true},
		{"shared, never joined", VisibilityInput{VisibilityBefore: Shared}, false},
		{"shared, invited only", VisibilityInput{VisibilityBefore: Shared, MembershipBefore: MembershipInvite}, false},
		{"shared, left before, not back", VisibilityInput{VisibilityBefore: Shared, MembershipBefore: MembershipLeave}, false},
		{"invited, invited at event", VisibilityInput{VisibilityBefore: Invited, MembershipBefore: MembershipInvite}, true},
		{"invited, not invited at event", VisibilityInput{VisibilityBefore: Invited, JoinedLater: true}, false},
		{"banned at event", VisibilityInput{VisibilityBefore: Invited, MembershipBefore: MembershipBan}, false},
		{"knocking at event", VisibilityInput{VisibilityBefore: Invited, MembershipBefore: MembershipKnock}, false},
		{"unknown visibility is shared", VisibilityInput{VisibilityBefore: "bogus", JoinedLater: true}, true},
		{"empty visibility is shared", VisibilityInput{JoinedLater: true}, true},
		// History visibility events: before or after.
		{"vis event joined -> world_readable", VisibilityInput{VisibilityBefore: Joined, VisibilityAfter: WorldReadable}, true},
		{"vis event world_readable -> joined", VisibilityInput{VisibilityBefore: WorldReadable, VisibilityAfter: Joined}, true},
		{"vis event joined -> invited", VisibilityInput{VisibilityBefore: Joined, VisibilityAfter: Invited}, false},
		// Own membership events: before or after.
		{"own join under joined", VisibilityInput{VisibilityBefore: Joined, MembershipBefore: MembershipInvite, MembershipAfter: MembershipJoin}, true},
		{"own leave under joined", VisibilityInput{VisibilityBefore: Joined, MembershipBefore: MembershipJoin, MembershipAfter: MembershipLeave}, true},
		{"own invite under invited", VisibilityInput{VisibilityBefore: Invited, MembershipAfter: MembershipInvite}, true},
		{"own invite under joined", VisibilityInput{VisibilityBefore: Joined, MembershipAfter: MembershipInvite}, false},
		{"own ban under joined after leaving", VisibilityInput{VisibilityBefore: Joined, MembershipBefore: MembershipLeave, MembershipAfter: MembershipBan}, false},
	}
	for _, c := range cases {
		if got := CanSee(c.in); got != c.want {
			t.Errorf("%s: CanSee = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestVisibilityAt walks a room and checks what a late joiner sees.
func TestVisibilityAt(t *testing.T) {
	r := newRoom(t, V11) // shared
	type seen struct {
		e      *Event
		before *State
	}
	var log []seen
	step := func(e *Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	add := func(sender, typ string, sk *string, content string) {
		before := r.st.Clone()
		e, err := r.send(sender, typ, sk, content)
		step(e, err)
		log = append(log, seen{e, before})
	}
	add(alice, "m.room.message", nil, `{"body":"shared 1"}`)
	add(alice, TypeHistoryVisibility, ptr(""), `{"history_visibility":"joined"}`)
	add(alice, "m.room.message", nil, `{"body":"joined-only"}`)
	add(alice, TypeHistoryVisibility, ptr(""), `{"history_visibility":"invited"}`)
	add(alice, TypeMember, ptr(bob), `{"membership":"invite"}`)
	add(alice, "m.room.message", nil, `{"body":"bob invited"}`)
	add(bob, TypeMember, ptr(bob), `{"membership":"join"}`)
	add(alice, "m.room.message", nil, `{"body":"bob joined"}`)
	add(bob, TypeMember, ptr(bob), `{"membership":"leave"}`)
	add(alice, "m.room.message", nil, `{"body":"after bob left"}`)

	want := map[string]bool{
		"shared 1": true, "joined-only": false, "bob invited": true, "bob joined": true, "after bob left": false,
	}
	// Bob is not joined now (he left): JoinedLater is true only for events before his join.
	joinIdx := 6
	for i, s := range log {
		in := VisibilityAt(s.e, s.before, bob, i < joinIdx)
		got := CanSee(in)
		if body := s.e.contentString("body"); body != "" {
			if got != want[body] {
				t.Errorf("%q: visible=%v, want %v", body, got, want[body])
			}
			continue
		}
		switch {
		case s.e.Type() == TypeMember && s.e.StateKeyOrEmpty() == bob && !got:
			t.Errorf("bob cannot see his own membership event %d (%s)", i, s.e.Membership())
		case s.e.Type() == TypeHistoryVisibility && i == 1 && !got:
			t.Errorf("shared -> joined change not visible to a later joiner")
		}
	}
}
