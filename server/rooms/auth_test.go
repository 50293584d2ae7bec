package rooms

import (
	"encoding/json"
	"testing"
)

// resign rebuilds e with fields changed by mutate, re-hashed and re-signed
// so that only the auth rules can reject it.
func resign(t *testing.T, r *testRoom, e *Event, mutate func(m map[string]any)) *Event {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.JSON(), &m); err != nil {
		t.Fatal(err)
	}
	mutate(m)
	top := map[string]json.RawMessage{}
	for k, v := range m {
		top[k], _ = json.Marshal(v)
	}
	raw, _, err := hashAndSign(r.v, top, r.signer)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseEvent(r.v, raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setPL replaces the power levels event (as alice, PL 100).
func setPL(r *testRoom, content string) {
	r.t.Helper()
	r.mustSend(alice, TypePowerLevels, ptr(""), content)
}

const plBobMod = `{"users":{"@alice:hs.test":100,"@bob:hs.test":50,"@carol:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":50}}`

// joinBob invites and joins bob.
func joinBob(r *testRoom) {
	r.mustMember(alice, bob, MembershipInvite)
	r.mustMember(bob, bob, MembershipJoin)
}

func TestAuthRules(t *testing.T) {
	type tc struct {
		name  string
		setup func(r *testRoom)
		do    func(t *testing.T, r *testRoom) error
		rule  string // "" = allowed
	}
	send := func(sender, typ string, sk *string, content string) func(*testing.T, *testRoom) error {
		return func(_ *testing.T, r *testRoom) error { _, err := r.send(sender, typ, sk, content); return err }
	}
	member := func(sender, target, membership string) func(*testing.T, *testRoom) error {
		return func(_ *testing.T, r *testRoom) error { _, err := r.member(sender, target, membership); return err }
	}
	setJoinRule := func(rule string) func(r *testRoom) {
		return func(r *testRoom) { r.mustSend(alice, TypeJoinRules, ptr(""), `{"join_rule":"`+rule+`"}`) }
	}
	cases := []tc{
		// Rule 1: m.room.create.
		{"second create", nil, send(alice, TypeCreate, ptr(""), `{}`), "1"},
		{"create with prev_events", nil, func(t *testing.T, r *testRoom) error {
			e := resign(t, r, r.st.Create(), func(m map[string]any) { m["prev_events"] = []string{r.last.ID()} })
			return Authorize(e, NewState())
		}, "1.1"},
		{"create from another domain", nil, func(t *testing.T, r *testRoom) error {
			e := resign(t, r, r.st.Create(), func(m map[string]any) { m["sender"] = "@alice:other.test" })
			return Authorize(e, NewState())
		}, "1.2"},
		{"create with unknown room_version", nil, func(t *testing.T, r *testRoom) error {
			e := resign(t, r, r.st.Create(), func(m map[string]any) { m["content"].(map[string]any)["room_version"] = "9" })
			return Authorize(e, NewState())
		}, "1.3"},
		{"create without room_version", nil, func(t *testing.T, r *testRoom) error {
			e := resign(t, r, r.st.Create(), func(m map[string]any) { delete(m["content"].(map[string]any), "room_version") })
			return Authorize(e, NewState())
		}, "1.3"},
		{"create with non-empty state key", nil, func(t *testing.T, r *testRoom) error {
			e := resign(t, r, r.st.Create(), func(m map[string]any) { m["state_key"] = "x" })
			return Authorize(e, NewState())
		}, "1"},
		{"create is valid alone", nil, func(t *testing.T, r *testRoom) error { return Authorize(r.st.Create(), NewState()) }, ""},
		// Rule 2: auth events.
		{"missing auth event", nil, func(t *testing.T, r *testRoom) error {
			e, _ := r.build(alice, "m.room.message", nil, `{}`)
			e = resign(t, r, e, func(m map[string]any) { m["auth_events"] = m["auth_events"].([]any)[:1] })
			return Authorize(e, r.st)
		}, "2.2"},
		{"foreign auth event", nil, func(t *testing.T, r *testRoom) error {
			e, _ := r.build(alice, "m.room.message", nil, `{}`)
			e = resign(t, r, e, func(m map[string]any) { m["auth_events"].([]any)[1] = r.st.Get(TypeJoinRules, "").ID() })
			return Authorize(e, r.st)
		}, "2.2"},
		{"duplicate auth event", nil, func(t *testing.T, r *testRoom) error {
			e, _ := r.build(alice, "m.room.message", nil, `{}`)
			e = resign(t, r, e, func(m map[string]any) { a := m["auth_events"].([]any); a[1] = a[0] })
			return Authorize(e, r.st)
		}, "2.1"},
		{"event for another room", nil, func(t *testing.T, r *testRoom) error {
			e, _ := r.build(alice, "m.room.message", nil, `{}`)
			e = resign(t, r, e, func(m map[string]any) { m["room_id"] = "!other:hs.test" })
			return Authorize(e, r.st)
		}, "2.5"},
		{"no create in state", nil, func(t *testing.T, r *testRoom) error {
			e, _ := r.build(alice, "m.room.message", nil, `{}`)
			return Authorize(e, NewState())
		}, "2.4"},
		// Rule 3: m.federate.
		{"m.federate false refuses other domains", nil, func(t *testing.T, r *testRoom) error {
			st := NewState()
			create := resign(t, r, r.st.Create(), func(m map[string]any) { m["content"].(map[string]any)["m.federate"] = false })
			st.Set(create)
			e, _ := r.build(alice, "m.room.message", nil, `{}`)
			e = resign(t, r, e, func(m map[string]any) {
				m["sender"] = "@eve:other.test"
				m["auth_events"] = []string{create.ID()}
			})
			return Authorize(e, st)
		}, "3"},
		// Rule 4: membership.
		{"member without membership", nil, send(alice, TypeMember, ptr(bob), `{"displayname":"x"}`), "4.1"},
		{"member with non-user state key", nil, send(alice, TypeMember, ptr("bob"), `{"membership":"invite"}`), "4.1"},
		{"join via a user of another server", setJoinRule("restricted"), func(_ *testing.T, r *testRoom) error {
			_, err := r.send(bob, TypeMember, ptr(bob), `{"membership":"join","join_authorised_via_users_server":"@x:other.test"}`)
			return err
		}, "4.2"},
		{"non-creator join right after create", nil, func(t *testing.T, r *testRoom) error {
			r2 := &testRoom{t: t, v: r.v, id: r.id, st: NewState(), signer: r.signer, clock: r.clock}
			r2.mustSend(alice, TypeCreate, ptr(""), `{}`)
			_, err := r2.member(bob, bob, MembershipJoin)
			return err
		}, "4.3.4"},
		{"join on behalf of another", setJoinRule("public"), member(bob, carol, MembershipJoin), "4.3.2"},
		{"banned user cannot join public room", func(r *testRoom) {
			setJoinRule("public")(r)
			r.mustMember(alice, bob, MembershipBan)
		}, member(bob, bob, MembershipJoin), "4.3.3"},
		{"uninvited join of invite room", nil, member(bob, bob, MembershipJoin), "4.3.4"},
		{"uninvited join of knock room", setJoinRule("knock"), member(bob, bob, MembershipJoin), "4.3.4"},
		{"invited join of invite room", func(r *testRoom) { r.mustMember(alice, bob, MembershipInvite) }, member(bob, bob, MembershipJoin), ""},
		{"uninvited join of restricted room", setJoinRule("restricted"), member(bob, bob, MembershipJoin), "4.3.5"},
		{"restricted join via a joined admin is refused", setJoinRule("knock_restricted"), func(_ *testing.T, r *testRoom) error {
			_, err := r.send(bob, TypeMember, ptr(bob), `{"membership":"join","join_authorised_via_users_server":"@alice:hs.test"}`)
			return err
		}, "4.3.5"},
		{"invited join of restricted room", func(r *testRoom) {
			setJoinRule("restricted")(r)
			r.mustMember(alice, bob, MembershipInvite)
		}, member(bob, bob, MembershipJoin), ""},
		{"public room join", setJoinRule("public"), member(bob, bob, MembershipJoin), ""},
		{"unknown join rule", setJoinRule("private"), member(bob, bob, MembershipJoin), "4.3.7"},
		{"third-party invite", nil, send(alice, TypeMember, ptr(bob), `{"membership":"invite","third_party_invite":{"signed":{"mxid":"@bob:hs.test","token":"t"}}}`), "4.4.1"},
		{"invite by non-member", nil, member(bob, carol, MembershipInvite), "4.4.2"},
		{"invite by invited user", func(r *testRoom) { r.mustMember(alice, bob, MembershipInvite) }, member(bob, carol, MembershipInvite), "4.4.2"},
		{"invite of joined user", joinBob, member(alice, bob, MembershipInvite), "4.4.3"},
		{"invite of banned user", func(r *testRoom) { r.mustMember(alice, bob, MembershipBan) }, member(alice, bob, MembershipInvite), "4.4.3"},
		{"invite below invite level", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100},"invite":50}`)
		}, member(bob, carol, MembershipInvite), "4.4.5"},
		{"invite at invite level", joinBob, member(bob, carol, MembershipInvite), ""},
		{"leave without membership", nil, member(bob, bob, MembershipLeave), "4.5.1"},
		{"leave while banned", func(r *testRoom) { r.mustMember(alice, bob, MembershipBan) }, member(bob, bob, MembershipLeave), "4.5.1"},
		{"reject invite", func(r *testRoom) { r.mustMember(alice, bob, MembershipInvite) }, member(bob, bob, MembershipLeave), ""},
		{"kick by non-member", func(r *testRoom) { r.mustMember(alice, bob, MembershipInvite) }, member(carol, bob, MembershipLeave), "4.5.2"},
		{"kick below kick level", func(r *testRoom) {
			joinBob(r)
			r.mustMember(alice, carol, MembershipInvite)
		}, member(bob, carol, MembershipLeave), "4.5.5"},
		{"kick of equal level", func(r *testRoom) {
			joinBob(r)
			r.mustMember(alice, carol, MembershipInvite)
			r.mustMember(carol, carol, MembershipJoin)
			setPL(r, plBobMod)
		}, member(bob, carol, MembershipLeave), "4.5.5"},
		{"kick of higher level", func(r *testRoom) {
			joinBob(r)
			setPL(r, plBobMod)
		}, member(bob, alice, MembershipLeave), "4.5.5"},
		{"kick of lower level", func(r *testRoom) {
			joinBob(r)
			setPL(r, plBobMod)
			r.mustMember(bob, dave, MembershipInvite)
		}, member(bob, dave, MembershipLeave), ""},
		{"unban below ban level", func(r *testRoom) {
			joinBob(r)
			r.mustMember(alice, dave, MembershipBan)
			setPL(r, `{"users":{"@alice:hs.test":100,"@bob:hs.test":50},"kick":50,"ban":60}`)
		}, member(bob, dave, MembershipLeave), "4.5.3"},
		{"unban at ban and kick level", func(r *testRoom) {
			joinBob(r)
			r.mustMember(alice, dave, MembershipBan)
			setPL(r, plBobMod)
		}, member(bob, dave, MembershipLeave), ""},
		{"ban by non-member", nil, member(bob, carol, MembershipBan), "4.6.1"},
		{"ban below ban level", joinBob, member(bob, carol, MembershipBan), "4.6.3"},
		{"ban of higher level", func(r *testRoom) {
			joinBob(r)
			setPL(r, plBobMod)
		}, member(bob, alice, MembershipBan), "4.6.3"},
		{"ban of non-member at ban level", func(r *testRoom) {
			joinBob(r)
			setPL(r, plBobMod)
		}, member(bob, dave, MembershipBan), ""},
		{"knock on invite room", nil, member(bob, bob, MembershipKnock), "4.7.1"},
		{"knock on behalf of another", setJoinRule("knock"), member(bob, carol, MembershipKnock), "4.7.2"},
		{"knock while invited", func(r *testRoom) {
			setJoinRule("knock")(r)
			r.mustMember(alice, bob, MembershipInvite)
		}, member(bob, bob, MembershipKnock), "4.7.4"},
		{"knock while banned", func(r *testRoom) {
			setJoinRule("knock_restricted")(r)
			r.mustMember(alice, bob, MembershipBan)
		}, member(bob, bob, MembershipKnock), "4.7.4"},
		{"knock on knock room", setJoinRule("knock"), member(bob, bob, MembershipKnock), ""},
		{"unknown membership", nil, member(alice, bob, "summon"), "4.8"},
		// Rule 5: the sender must be joined.
		{"message from non-member", nil, send(bob, "m.room.message", nil, `{"body":"x"}`), "5"},
		{"message from invited user", func(r *testRoom) { r.mustMember(alice, bob, MembershipInvite) }, send(bob, "m.room.message", nil, `{}`), "5"},
		{"message after leaving", func(r *testRoom) {
			joinBob(r)
			r.mustMember(bob, bob, MembershipLeave)
		}, send(bob, "m.room.message", nil, `{}`), "5"},
		{"message from member", joinBob, send(bob, "m.room.message", nil, `{}`), ""},
		// Rule 6: m.room.third_party_invite.
		{"third_party_invite below invite level", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100},"invite":50}`)
		}, send(bob, TypeThirdPartyInvite, ptr("tok"), `{}`), "6.1"},
		// Rule 7: required power level.
		{"state event below state_default", joinBob, send(bob, "m.room.topic", ptr(""), `{"topic":"x"}`), "7"},
		{"state event below events entry", joinBob, send(bob, "m.room.name", ptr(""), `{"name":"x"}`), "7"},
		{"message below events_default", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100},"events_default":10}`)
		}, send(bob, "m.room.message", nil, `{}`), "7"},
		{"redaction below its events level", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100},"events":{"m.room.redaction":10}}`)
		}, send(bob, TypeRedaction, nil, `{}`), "7"},
		// Rule 8: @-state keys belong to their user.
		{"state key of another user", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100},"state_default":0}`)
		}, send(bob, "m.custom", ptr(alice), `{}`), "8"},
		{"own state key", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100},"state_default":0}`)
		}, send(bob, "m.custom", ptr(bob), `{}`), ""},
		// Rule 9: power levels.
		{"PL string value", nil, send(alice, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100},"ban":"50"}`), "9.1"},
		{"PL events non-integer", nil, send(alice, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100},"events":{"m.x":"1"}}`), "9.1"},
		{"PL notifications not an object", nil, send(alice, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100},"notifications":[]}`), "9.1"},
		{"PL users key not a user", nil, send(alice, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"bob":1}}`), "9.1"},
		{"PL raise own level", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":60,"@carol:hs.test":50},"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":50}}`), "9.9.1"},
		{"PL field above own level", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50,"@carol:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":51,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":50}}`), "9.5.2"},
		{"PL field from above own level", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100,"@bob:hs.test":50},"events":{"m.room.power_levels":50},"kick":70}`)
		}, send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50},"events":{"m.room.power_levels":50},"kick":0}`), "9.5.1"},
		{"PL removing field above own level", func(r *testRoom) {
			joinBob(r)
			setPL(r, `{"users":{"@alice:hs.test":100,"@bob:hs.test":50},"events":{"m.room.power_levels":50},"kick":70}`)
		}, send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50},"events":{"m.room.power_levels":50}}`), "9.5.1"},
		{"PL change events entry above own level", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50,"@carol:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":0},"notifications":{"room":50}}`), "9.6.1"},
		{"PL add events entry above own level", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50,"@carol:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100,"m.x":51},"notifications":{"room":50}}`), "9.7.1"},
		{"PL add notifications entry above own level", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50,"@carol:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":99}}`), "9.7.1"},
		{"PL demote higher user", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":0,"@bob:hs.test":50,"@carol:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":50}}`), "9.8.1"},
		{"PL demote equal user", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50,"@carol:hs.test":0},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":50}}`), "9.8.1"},
		{"PL remove equal user", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":50}}`), "9.8.1"},
		{"PL demote self and promote lower user to own level", func(r *testRoom) { joinBob(r); setPL(r, plBobMod) },
			send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100,"@bob:hs.test":10,"@carol:hs.test":50,"@dave:hs.test":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":50,"m.room.tombstone":100},"notifications":{"room":50}}`), ""},
		{"PL below power_levels level", joinBob, send(bob, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100}}`), "7"},
	}
	for _, v := range SupportedVersions() {
		for _, c := range cases {
			t.Run(string(v)+"/"+c.name, func(t *testing.T) {
				r := newRoom(t, v)
				if c.setup != nil {
					c.setup(r)
				}
				err := c.do(t, r)
				if c.rule == "" {
					if err != nil {
						t.Fatalf("want allowed, got %v", err)
					}
					return
				}
				wantForbidden(t, err, c.rule)
			})
		}
	}
}

// TestAuthCreatorJoinNeedsCreate checks rule 4.3.1's condition: the
// creator's join is allowed only as the event right after m.room.create.
func TestAuthCreatorJoinNeedsCreate(t *testing.T) {
	for _, v := range SupportedVersions() {
		r := &testRoom{t: t, v: v, id: "!r:hs.test", st: NewState(), signer: testSigner(t)}
		create := r.mustSend(alice, TypeCreate, ptr(""), `{}`)
		e, err := r.build(alice, TypeMember, ptr(alice), `{"membership":"join"}`)
		if err != nil {
			t.Fatal(err)
		}
		// The same join with a different prev event is no longer the creator's first join.
		other := resign(t, r, e, func(m map[string]any) { m["prev_events"] = []string{"$notthecreate"} })
		wantForbidden(t, Authorize(other, r.st), "4.3.4")
		if err := Authorize(e, r.st); err != nil || e.PrevEvents()[0] != create.ID() {
			t.Fatal(err)
		}
	}
}

func TestStateApply(t *testing.T) {
	r := newRoom(t, V11)
	e, err := r.build(bob, "m.room.message", nil, `{}`)
	if err == nil {
		t.Fatal("non-member message built")
	}
	e, _ = r.build(alice, "m.room.topic", ptr(""), `{"topic":"t"}`)
	st := r.st.Clone()
	if err := st.Apply(e); err != nil {
		t.Fatal(err)
	}
	if st.Get("m.room.topic", "") != e || r.st.Get("m.room.topic", "") != nil {
		t.Fatal("Apply/Clone")
	}
	bad := resign(t, r, e, func(m map[string]any) { m["sender"] = bob })
	before := st.Len()
	if err := st.Apply(bad); err == nil || st.Len() != before || st.Get("m.room.topic", "") != e {
		t.Fatal("rejected Apply changed the state")
	}
}

func TestPowerLevelsDefaults(t *testing.T) {
	r := &testRoom{t: t, v: V11, id: "!r:hs.test", st: NewState(), signer: testSigner(t)}
	r.mustSend(alice, TypeCreate, ptr(""), `{}`)
	pl := r.st.PowerLevels()
	if pl.UserLevel(alice) != 100 || pl.UserLevel(bob) != 0 || pl.StateDefault != 50 || pl.Ban != 50 || pl.Kick != 50 || pl.Redact != 50 || pl.Invite != 0 || pl.EventsDefault != 0 {
		t.Fatalf("defaults without a power levels event: %+v", pl)
	}
	if pl.NotificationLevel("room") != 50 {
		t.Fatal("notification default")
	}
	if r.st.JoinRule() != "invite" || r.st.HistoryVisibility() != Shared {
		t.Fatal("join rule / visibility defaults")
	}
}
