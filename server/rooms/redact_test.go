package rooms

import (
	"encoding/json"
	"testing"

	"myelin/canonicaljson"
)

// The tables follow https://spec.matrix.org/v1.16/rooms/v11/#redactions
// (v11) and the v9 algorithm used by room version 10.
func TestRedactionAlgorithm(t *testing.T) {
	// Every top-level key a PDU may have, around a given type and content.
	envelope := func(typ, content string) string {
		return `{"type":"` + typ + `","content":` + content + `,"event_id":"$e","room_id":"!r:hs","sender":"@a:hs","state_key":"","hashes":{"sha256":"h"},"signatures":{"hs":{"ed25519:1":"s"}},"depth":3,"prev_events":["$p"],"auth_events":["$a"],"origin_server_ts":5,"origin":"hs","membership":"join","prev_state":[],"unsigned":{"age":1},"redacts":"$x","other":1}`
	}
	const top11 = `"event_id":"$e","room_id":"!r:hs","sender":"@a:hs","state_key":"","hashes":{"sha256":"h"},"signatures":{"hs":{"ed25519:1":"s"}},"depth":3,"prev_events":["$p"],"auth_events":["$a"],"origin_server_ts":5`
	const top10 = top11 + `,"origin":"hs","membership":"join","prev_state":[]`
	want := func(top, typ, content string) string {
		return `{"type":"` + typ + `","content":` + content + `,` + top + `}`
	}
	cases := []struct {
		typ, content string
		v10, v11     string // expected content
	}{
		{"m.room.message", `{"body":"secret","msgtype":"m.text"}`, `{}`, `{}`},
		{TypeMember, `{"membership":"join","displayname":"A","avatar_url":"mxc://x/y","join_authorised_via_users_server":"@b:hs","reason":"r","third_party_invite":{"display_name":"d","signed":{"mxid":"@a:hs","token":"t","signatures":{}}}}`,
			`{"membership":"join","join_authorised_via_users_server":"@b:hs"}`,
			`{"membership":"join","join_authorised_via_users_server":"@b:hs","third_party_invite":{"signed":{"mxid":"@a:hs","token":"t","signatures":{}}}}`},
		{TypeMember, `{"membership":"invite","third_party_invite":{"display_name":"d"}}`, `{"membership":"invite"}`, `{"membership":"invite"}`},
		{TypeCreate, `{"creator":"@a:hs","room_version":"11","m.federate":false,"predecessor":{"room_id":"!o:hs"},"type":"m.space"}`,
			`{"creator":"@a:hs"}`,
			`{"creator":"@a:hs","room_version":"11","m.federate":false,"predecessor":{"room_id":"!o:hs"},"type":"m.space"}`},
		{TypeJoinRules, `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!s:hs"}],"x":1}`,
			`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!s:hs"}]}`,
			`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!s:hs"}]}`},
		{TypePowerLevels, `{"ban":1,"events":{"m.x":2},"events_default":3,"invite":4,"kick":5,"redact":6,"state_default":7,"users":{"@a:hs":8},"users_default":9,"notifications":{"room":10},"x":11}`,
			`{"ban":1,"events":{"m.x":2},"events_default":3,"kick":5,"redact":6,"state_default":7,"users":{"@a:hs":8},"users_default":9}`,
			`{"ban":1,"events":{"m.x":2},"events_default":3,"invite":4,"kick":5,"redact":6,"state_default":7,"users":{"@a:hs":8},"users_default":9}`},
		{TypeHistoryVisibility, `{"history_visibility":"joined","x":1}`, `{"history_visibility":"joined"}`, `{"history_visibility":"joined"}`},
		{TypeRedaction, `{"redacts":"$x","reason":"spam"}`, `{}`, `{"redacts":"$x"}`},
		{"m.room.encryption", `{"algorithm":"m.megolm.v1.aes-sha2"}`, `{}`, `{}`},
		{"m.room.name", `{"name":"n"}`, `{}`, `{}`},
		{"m.room.topic", `{"topic":"t"}`, `{}`, `{}`},
	}
	for _, c := range cases {
		for _, vc := range []struct {
			v       RoomVersion
			top     string
			content string
		}{{V10, top10, c.v10}, {V11, top11, c.v11}} {
			got, err := RedactJSON(vc.v, []byte(envelope(c.typ, c.content)))
			if err != nil {
				t.Fatalf("%s %s: %v", vc.v, c.typ, err)
			}
			w, err := canonicaljson.Canonicalize([]byte(want(vc.top, c.typ, vc.content)))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(w) {
				t.Errorf("%s %s:\n got %s\nwant %s", vc.v, c.typ, got, w)
			}
			// Idempotent.
			again, _ := RedactJSON(vc.v, got)
			if string(again) != string(got) {
				t.Errorf("%s %s: redacting twice changed the result", vc.v, c.typ)
			}
		}
	}
}

// A redacted state event still counts as state with its remaining keys.
func TestRedactedStateStillCounts(t *testing.T) {
	for _, v := range SupportedVersions() {
		r := newRoom(t, v)
		joinBob(r)
		red, err := r.st.Get(TypeMember, bob).Redact()
		if err != nil {
			t.Fatal(err)
		}
		r.st.Set(red)
		if r.st.Membership(bob) != MembershipJoin {
			t.Errorf("%s: redacted join is not a join", v)
		}
		plRed, _ := r.st.Get(TypePowerLevels, "").Redact()
		r.st.Set(plRed)
		pl := r.st.PowerLevels()
		if pl.UserLevel(alice) != 100 || pl.EventLevel(TypePowerLevels, true) != 100 {
			t.Errorf("%s: redacted power levels lost users/events: %+v", v, pl)
		}
		var c map[string]any
		_ = json.Unmarshal(r.st.Create().Content(), &c)
		cr, _ := r.st.Create().Redact()
		var cc map[string]any
		_ = json.Unmarshal(cr.Content(), &cc)
		if v == V11 && len(cc) != len(c) || v == V10 && (len(cc) != 1 || cc["creator"] != alice) {
			t.Errorf("%s: redacted create content %v", v, cc)
		}
	}
}

func TestMayRedact(t *testing.T) {
	r := newRoom(t, V11)
	joinBob(r)
	r.mustMember(alice, carol, MembershipInvite)
	r.mustMember(carol, carol, MembershipJoin)
	mine := r.mustSend(bob, "m.room.message", nil, `{}`)
	theirs := r.mustSend(carol, "m.room.message", nil, `{}`)
	if err := MayRedact(r.st, bob, mine); err != nil {
		t.Fatalf("own event: %v", err)
	}
	wantForbidden(t, MayRedact(r.st, bob, theirs), "redact")
	if err := MayRedact(r.st, alice, theirs); err != nil {
		t.Fatalf("moderator: %v", err)
	}
	wantForbidden(t, MayRedact(r.st, dave, mine), "redact")
	wantForbidden(t, MayRedact(r.st, alice, r.st.Create()), "redact")
	setPL(r, `{"users":{"@alice:hs.test":100},"events":{"m.room.redaction":10}}`)
	wantForbidden(t, MayRedact(r.st, bob, mine), "redact")
}
