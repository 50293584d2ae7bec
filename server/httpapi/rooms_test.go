package httpapi_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestCreateRoomAndMembership(t *testing.T) {
	ts := startServer(t, nil)
	a, b, c := ts.register("alice"), ts.register("bob"), ts.register("carol")
	room := ts.createRoom(a, map[string]any{
		"preset": "trusted_private_chat", "is_direct": true, "invite": []string{b.id}, "name": "Room", "topic": "Topic",
		"room_alias_name": "room1",
		"initial_state":   []any{map[string]any{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}},
	})
	base := "/_matrix/client/v3/rooms/" + esc(room)
	r := ts.must(200, "GET", base+"/state/m.room.encryption/", a.token, nil)
	if r.str("algorithm") != "m.megolm.v1.aes-sha2" {
		t.Errorf("encryption state: %s", r.raw)
	}
	ts.must(200, "GET", base+"/state/m.room.encryption", a.token, nil)
	if r := ts.must(200, "GET", base+"/state/m.room.power_levels", a.token, nil); path(r.body, "users", b.id) != 100.0 {
		t.Errorf("trusted_private_chat power levels: %s", r.raw)
	}
	if r := ts.do("GET", base+"/state/m.room.avatar/", a.token, nil); r.status != 404 || r.errcode() != "M_NOT_FOUND" {
		t.Errorf("unset state: %d %s", r.status, r.raw)
	}
	if r := ts.must(200, "GET", base+"/state/m.room.name?format=event", a.token, nil); r.str("event_id") == "" {
		t.Errorf("format=event: %s", r.raw)
	}
	// Alias.
	if r := ts.must(200, "GET", "/_matrix/client/v3/directory/room/"+esc("#room1:test.local"), "", nil); r.str("room_id") != room {
		t.Errorf("alias: %s", r.raw)
	}
	if r := ts.do("POST", "/_matrix/client/v3/createRoom", a.token, map[string]any{"room_alias_name": "room1"}); r.errcode() != "M_ROOM_IN_USE" {
		t.Errorf("duplicate alias: %s", r.raw)
	}
	if r := ts.do("POST", "/_matrix/client/v3/createRoom", a.token, map[string]any{"room_version": "9"}); r.errcode() != "M_UNSUPPORTED_ROOM_VERSION" {
		t.Errorf("room version 9: %s", r.raw)
	}
	ts.createRoom(a, map[string]any{"room_version": "10"})
	// Invite-only: carol cannot join; bob (invited) can, via the alias.
	if r := ts.do("POST", base+"/join", c.token, map[string]any{}); r.status != 403 {
		t.Errorf("uninvited join: %d %s", r.status, r.raw)
	}
	if r := ts.must(200, "POST", "/_matrix/client/v3/join/"+esc("#room1:test.local"), b.token, map[string]any{}); r.str("room_id") != room {
		t.Errorf("join by alias: %s", r.raw)
	}
	r = ts.must(200, "GET", "/_matrix/client/v3/joined_rooms", b.token, nil)
	if !slices.Contains(list(r.body["joined_rooms"]), any(room)) {
		t.Errorf("joined_rooms: %s", r.raw)
	}
	r = ts.must(200, "GET", base+"/joined_members", b.token, nil)
	if len(r.body["joined"].(map[string]any)) != 2 {
		t.Errorf("joined_members: %s", r.raw)
	}
	// The localpart is the initial display name (matrix-nio requires
	// display_name in joined_members).
	for uid, m := range r.body["joined"].(map[string]any) {
		if dn, _ := m.(map[string]any)["display_name"].(string); dn == "" || !strings.HasPrefix(uid, "@"+dn+":") {
			t.Errorf("joined_members: %s has display_name %q", uid, dn)
		}
	}
	// Bob (PL 100 in trusted_private_chat) invites carol, kicks her, bans, unbans.
	ts.invite(b, room, c.id)
	ts.invite(b, room, c.id) // already invited: 200
	ts.join(c, room)
	ts.must(200, "POST", base+"/kick", a.token, map[string]any{"user_id": c.id, "reason": "bye"})
	ts.must(403, "POST", base+"/join", c.token, map[string]any{})
	ts.must(200, "POST", base+"/ban", a.token, map[string]any{"user_id": c.id})
	ts.must(403, "POST", base+"/invite", a.token, map[string]any{"user_id": c.id})
	if r := ts.do("POST", base+"/unban", a.token, map[string]any{"user_id": b.id}); r.errcode() != "M_BAD_STATE" {
		t.Errorf("unban of non-banned: %s", r.raw)
	}
	ts.must(200, "POST", base+"/unban", a.token, map[string]any{"user_id": c.id})
	ts.invite(a, room, c.id)
	ts.join(c, room)
	// Members with filters.
	r = ts.must(200, "GET", base+"/members?not_membership=leave", c.token, nil)
	if n := len(list(r.body["chunk"])); n != 3 {
		t.Errorf("members not_membership=leave: %d: %s", n, r.raw)
	}
	r = ts.must(200, "GET", base+"/members?membership=join", c.token, nil)
	if n := len(list(r.body["chunk"])); n != 3 {
		t.Errorf("members membership=join: %d", n)
	}
	// Leave and forget.
	ts.must(400, "POST", base+"/forget", c.token, map[string]any{})
	ts.must(200, "POST", base+"/leave", c.token, map[string]any{})
	ts.must(200, "POST", base+"/leave", c.token, map[string]any{}) // already left
	ts.must(200, "POST", base+"/forget", c.token, map[string]any{})
	// Invite into a room of an unknown user.
	ts.must(404, "POST", base+"/invite", a.token, map[string]any{"user_id": "@ghost:test.local"})
	// Public room: anyone joins.
	pub := ts.createRoom(a, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Pub"})
	ts.join(c, pub)
	r = ts.must(200, "GET", "/_matrix/client/v3/publicRooms", c.token, nil)
	if !strings.Contains(string(r.raw), pub) {
		t.Errorf("publicRooms: %s", r.raw)
	}
	ts.must(200, "GET", "/_matrix/client/v3/directory/list/room/"+esc(pub), "", nil)
	ts.must(200, "PUT", "/_matrix/client/v3/directory/room/"+esc("#pub:test.local"), a.token, map[string]any{"room_id": pub})
	ts.must(409, "PUT", "/_matrix/client/v3/directory/room/"+esc("#pub:test.local"), a.token, map[string]any{"room_id": pub})
	ts.must(403, "DELETE", "/_matrix/client/v3/directory/room/"+esc("#pub:test.local"), c.token, nil)
	r = ts.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(pub)+"/aliases", a.token, nil)
	if len(list(r.body["aliases"])) != 1 {
		t.Errorf("aliases: %s", r.raw)
	}
	ts.must(200, "DELETE", "/_matrix/client/v3/directory/room/"+esc("#pub:test.local"), a.token, nil)
	ts.must(404, "GET", "/_matrix/client/v3/directory/room/"+esc("#pub:test.local"), "", nil)
}

func TestSendMessagesContextRedact(t *testing.T) {
	ts := startServer(t, nil)
	a, b := ts.register("alice"), ts.register("bob")
	room := ts.createRoom(a, map[string]any{"preset": "public_chat"})
	ts.join(b, room)
	base := "/_matrix/client/v3/rooms/" + esc(room)
	// Transaction idempotency: same txn, same event ID; other device, new event.
	p := base + "/send/m.room.message/txn1"
	e1 := ts.must(200, "PUT", p, a.token, map[string]any{"msgtype": "m.text", "body": "m0"}).str("event_id")
	if e2 := ts.must(200, "PUT", p, a.token, map[string]any{"msgtype": "m.text", "body": "m0"}).str("event_id"); e1 != e2 {
		t.Errorf("txn not idempotent: %s vs %s", e1, e2)
	}
	if e3 := ts.must(200, "PUT", "/_matrix/client/r0/rooms/"+esc(room)+"/send/m.room.message/txn1", a.token, map[string]any{"msgtype": "m.text", "body": "m0"}).str("event_id"); e3 != e1 {
		t.Errorf("r0 alias of the same txn gave a new event")
	}
	if e4 := ts.must(200, "PUT", p, b.token, map[string]any{"msgtype": "m.text", "body": "b0"}).str("event_id"); e4 == e1 {
		t.Errorf("txn shared across users")
	}
	var ids []string
	for i := 1; i <= 12; i++ {
		ids = append(ids, ts.send(a, room, fmt.Sprintf("m%d", i)))
	}
	// Floats are not canonical JSON.
	if r := ts.do("PUT", base+"/send/m.room.message/f", a.token, `{"body":1.5}`); r.status != 400 || r.errcode() != "M_BAD_JSON" {
		t.Errorf("float content: %d %s", r.status, r.raw)
	}
	if r := ts.do("PUT", base+"/send/m.room.message/nj", a.token, `{"body":`); r.errcode() != "M_NOT_JSON" {
		t.Errorf("bad JSON: %s", r.raw)
	}
	// Backward pagination, then forward.
	r := ts.must(200, "GET", base+"/messages?dir=b&limit=5", b.token, nil)
	got := bodies(list(r.body["chunk"]))
	if !slices.Equal(got, []string{"m12", "m11", "m10", "m9", "m8"}) {
		t.Fatalf("messages b: %v", got)
	}
	r = ts.must(200, "GET", base+"/messages?dir=b&limit=5&from="+r.str("end"), b.token, nil)
	if got := bodies(list(r.body["chunk"])); !slices.Equal(got, []string{"m7", "m6", "m5", "m4", "m3"}) {
		t.Fatalf("messages b page 2: %v", got)
	}
	r2 := ts.must(200, "GET", base+"/messages?dir=f&limit=3&from="+r.str("end"), b.token, nil)
	if got := bodies(list(r2.body["chunk"])); !slices.Equal(got, []string{"m3", "m4", "m5"}) {
		t.Fatalf("messages f: %v", got)
	}
	// Paginate backwards to the start: end disappears.
	from, pages := "", 0
	for ; pages < 20; pages++ {
		q := base + "/messages?dir=b&limit=10"
		if from != "" {
			q += "&from=" + from
		}
		r := ts.must(200, "GET", q, b.token, nil)
		if r.body["end"] == nil {
			break
		}
		from = r.str("end")
	}
	if pages == 20 {
		t.Errorf("backward pagination never ended")
	}
	// Filter by type.
	r = ts.must(200, "GET", base+"/messages?dir=b&limit=50&filter="+esc(`{"types":["m.room.member"]}`), b.token, nil)
	for _, e := range list(r.body["chunk"]) {
		if path(e, "type") != "m.room.member" {
			t.Errorf("type filter let through %v", path(e, "type"))
		}
	}
	r = ts.must(200, "GET", base+"/messages?dir=b&limit=3&filter="+esc(`{"lazy_load_members":true}`), b.token, nil)
	if len(list(r.body["state"])) != 1 {
		t.Errorf("lazy-loaded members: %s", r.raw)
	}
	// Context.
	r = ts.must(200, "GET", base+"/context/"+esc(ids[5])+"?limit=4", b.token, nil)
	if path(r.body, "event", "content", "body") != "m6" || !slices.Equal(bodies(list(r.body["events_before"])), []string{"m5", "m4"}) ||
		!slices.Equal(bodies(list(r.body["events_after"])), []string{"m7", "m8"}) || r.str("start") == "" || r.str("end") == "" {
		t.Errorf("context: %s", r.raw)
	}
	ts.must(404, "GET", base+"/context/"+esc("$nope"), b.token, nil)
	ts.must(200, "GET", base+"/event/"+esc(ids[0]), b.token, nil)
	ts.must(404, "GET", base+"/event/"+esc("$nope"), b.token, nil)
	// Redaction: bob (PL 0) may not redact alice's event; alice may redact her own.
	ts.must(403, "PUT", base+"/redact/"+esc(ids[0])+"/r1", b.token, map[string]any{})
	red := ts.must(200, "PUT", base+"/redact/"+esc(ids[0])+"/r1", a.token, map[string]any{"reason": "oops"}).str("event_id")
	if again := ts.must(200, "PUT", base+"/redact/"+esc(ids[0])+"/r1", a.token, map[string]any{}).str("event_id"); again != red {
		t.Errorf("redact txn not idempotent")
	}
	r = ts.must(200, "GET", base+"/event/"+esc(ids[0]), b.token, nil)
	if path(r.body, "content", "body") != nil || path(r.body, "unsigned", "redacted_because", "event_id") != red {
		t.Errorf("redacted event: %s", r.raw)
	}
	// State put: power levels gate it.
	ts.must(403, "PUT", base+"/state/m.room.name/", b.token, map[string]any{"name": "x"})
	ts.must(200, "PUT", base+"/state/m.room.name/", a.token, map[string]any{"name": "New"})
	if r := ts.must(200, "GET", base+"/state", b.token, nil); !strings.Contains(string(r.raw), `"New"`) {
		t.Errorf("state: %s", r.raw)
	}
	ts.must(403, "PUT", base+"/state/x.custom/"+esc(a.id), b.token, map[string]any{}) // @-key of another user
	// Typing and receipts.
	ts.must(200, "PUT", base+"/typing/"+esc(b.id), b.token, map[string]any{"typing": true, "timeout": 10000})
	ts.must(403, "PUT", base+"/typing/"+esc(a.id), b.token, map[string]any{"typing": true})
	ts.must(200, "POST", base+"/receipt/m.read/"+esc(ids[11]), b.token, map[string]any{})
	ts.must(400, "POST", base+"/receipt/m.read/"+esc(ids[11]), b.token, map[string]any{"thread_id": "bad"})
	ts.must(200, "POST", base+"/read_markers", b.token, map[string]any{"m.fully_read": ids[11], "m.read.private": ids[11]})
	r = ts.must(200, "GET", "/_matrix/client/v3/user/"+b.id+"/rooms/"+esc(room)+"/account_data/m.fully_read", b.token, nil)
	if r.str("event_id") != ids[11] {
		t.Errorf("fully_read: %s", r.raw)
	}
}
