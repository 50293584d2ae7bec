package httpapi_test

import (
	"slices"
	"strings"
	"testing"
)

// TestAuthorization tries, as Bob, everything that belongs to Alice. Every case
// would succeed if its check were removed.
func TestAuthorization(t *testing.T) {
	ts := startServer(t, nil)
	a, b := ts.register("alice"), ts.register("bob")
	room := ts.createRoom(a, map[string]any{"preset": "private_chat", "name": "secret"})
	secret := ts.send(a, room, "secret message")
	ts.must(200, "PUT", "/_matrix/client/v3/user/"+a.id+"/account_data/m.secret_storage.default_key", a.token, map[string]any{"key": "k"})
	ts.must(200, "PUT", "/_matrix/client/v3/user/"+a.id+"/rooms/"+esc(room)+"/account_data/x.room", a.token, map[string]any{"v": 1})
	fid := ts.must(200, "POST", "/_matrix/client/v3/user/"+a.id+"/filter", a.token, map[string]any{}).str("filter_id")
	rb := "/_matrix/client/v3/rooms/" + esc(room)
	cases := []struct {
		name, method, path string
		body               any
	}{
		{"messages", "GET", rb + "/messages?dir=b", nil},
		{"state", "GET", rb + "/state", nil},
		{"state event", "GET", rb + "/state/m.room.name/", nil},
		{"members", "GET", rb + "/members", nil},
		{"joined members", "GET", rb + "/joined_members", nil},
		{"context", "GET", rb + "/context/" + esc(secret), nil},
		{"event", "GET", rb + "/event/" + esc(secret), nil},
		{"send", "PUT", rb + "/send/m.room.message/x1", map[string]any{"body": "intrude"}},
		{"put state", "PUT", rb + "/state/m.room.topic/", map[string]any{"topic": "x"}},
		{"typing", "PUT", rb + "/typing/" + esc(b.id), map[string]any{"typing": true}},
		{"receipt", "POST", rb + "/receipt/m.read/" + esc(secret), map[string]any{}},
		{"join invite-only", "POST", rb + "/join", map[string]any{}},
		{"invite self", "POST", rb + "/invite", map[string]any{"user_id": b.id}},
		{"redact", "PUT", rb + "/redact/" + esc(secret) + "/r", map[string]any{}},
		{"aliases", "GET", rb + "/aliases", nil},
		{"others' account data", "GET", "/_matrix/client/v3/user/" + a.id + "/account_data/m.secret_storage.default_key", nil},
		{"write others' account data", "PUT", "/_matrix/client/v3/user/" + a.id + "/account_data/m.direct", map[string]any{}},
		{"others' room account data", "GET", "/_matrix/client/v3/user/" + a.id + "/rooms/" + esc(room) + "/account_data/x.room", nil},
		{"others' filter", "GET", "/_matrix/client/v3/user/" + a.id + "/filter/" + fid, nil},
		{"create filter for other", "POST", "/_matrix/client/v3/user/" + a.id + "/filter", map[string]any{}},
		{"others' tags", "GET", "/_matrix/client/v3/user/" + a.id + "/rooms/" + esc(room) + "/tags", nil},
		{"others' profile", "PUT", "/_matrix/client/v3/profile/" + a.id + "/displayname", map[string]any{"displayname": "x"}},
		{"others' device", "GET", "/_matrix/client/v3/devices/" + a.device, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(tc.method, tc.path, b.token, tc.body)
			if r.status < 400 || strings.Contains(string(r.raw), "secret") {
				t.Errorf("bob got %d: %s", r.status, r.raw)
			}
		})
	}
	// Bob's device deletion cannot touch Alice's device.
	r := ts.must(401, "POST", "/_matrix/client/v3/delete_devices", b.token, map[string]any{"devices": []string{a.device}})
	ts.must(200, "POST", "/_matrix/client/v3/delete_devices", b.token, map[string]any{"devices": []string{a.device}, "auth": map[string]any{
		"type": "m.login.password", "session": r.str("session"), "user": "bob", "password": "pw-bob"}})
	ts.must(200, "GET", "/_matrix/client/v3/account/whoami", a.token, nil)
	// A UIA session opened by Bob cannot authorise Alice's device deletion,
	// and Bob's password does not authorise Alice's.
	r = ts.must(401, "DELETE", "/_matrix/client/v3/devices/"+a.device, a.token, map[string]any{})
	ts.must(401, "DELETE", "/_matrix/client/v3/devices/"+a.device, a.token, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": r.str("session"), "user": "bob", "password": "pw-bob"}})
	ts.must(200, "GET", "/_matrix/client/v3/account/whoami", a.token, nil)
	// Bob's sync never mentions the room.
	if r := ts.sync(b, ""); strings.Contains(string(r.raw), room) || strings.Contains(string(r.raw), "secret") {
		t.Errorf("bob's sync leaks the room: %s", r.raw)
	}
	// To-device messages reach only the addressed device.
	c := ts.register("carol")
	ts.must(200, "PUT", "/_matrix/client/v3/sendToDevice/m.test/td1", a.token, map[string]any{
		"messages": map[string]any{b.id: map[string]any{b.device: map[string]any{"hello": "bob"}}}})
	if r := ts.sync(c, ""); strings.Contains(string(r.raw), "m.test") {
		t.Errorf("carol got bob's to-device message: %s", r.raw)
	}
	if r := ts.sync(b, ""); !strings.Contains(string(r.raw), `"hello":"bob"`) {
		t.Errorf("bob did not get his to-device message: %s", r.raw)
	}
	// Key backups belong to their owner.
	ts.must(200, "POST", "/_matrix/client/v3/room_keys/version", a.token, map[string]any{
		"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": map[string]any{"public_key": "abc"}})
	if r := ts.do("GET", "/_matrix/client/v3/room_keys/version", b.token, nil); r.status != 404 {
		t.Errorf("bob sees alice's backup: %d %s", r.status, r.raw)
	}
}

// TestHistoryVisibility checks that every read path hides events the user may
// not see under the room's history visibility.
func TestHistoryVisibility(t *testing.T) {
	ts := startServer(t, nil)
	a, b := ts.register("alice"), ts.register("bob")
	room := ts.createRoom(a, map[string]any{"preset": "public_chat"})
	rb := "/_matrix/client/v3/rooms/" + esc(room)
	ts.must(200, "PUT", rb+"/state/m.room.history_visibility/", a.token, map[string]any{"history_visibility": "joined"})
	before := ts.send(a, room, "before join")
	ts.join(b, room)
	during := ts.send(a, room, "while joined")
	ts.must(200, "POST", rb+"/leave", b.token, map[string]any{})
	after := ts.send(a, room, "after leave")

	r := ts.must(200, "GET", rb+"/messages?dir=b&limit=50", b.token, nil)
	got := bodies(list(r.body["chunk"]))
	if !slices.Equal(got, []string{"while joined"}) {
		t.Errorf("messages visible to bob: %v", got)
	}
	r = ts.must(200, "GET", rb+"/messages?dir=f&limit=50", b.token, nil)
	if got := bodies(list(r.body["chunk"])); !slices.Equal(got, []string{"while joined"}) {
		t.Errorf("forward messages visible to bob: %v", got)
	}
	ts.must(404, "GET", rb+"/event/"+esc(before), b.token, nil)
	ts.must(404, "GET", rb+"/event/"+esc(after), b.token, nil)
	ts.must(200, "GET", rb+"/event/"+esc(during), b.token, nil)
	ts.must(404, "GET", rb+"/context/"+esc(before), b.token, nil)
	ts.must(404, "GET", rb+"/context/"+esc(after), b.token, nil)
	r = ts.must(200, "GET", rb+"/context/"+esc(during)+"?limit=10", b.token, nil)
	if strings.Contains(string(r.raw), "before join") || strings.Contains(string(r.raw), "after leave") {
		t.Errorf("context leaks: %s", r.raw)
	}
	// Former member: state and members as of the leave.
	ts.must(200, "PUT", rb+"/state/m.room.topic/", a.token, map[string]any{"topic": "later topic"})
	if r := ts.must(200, "GET", rb+"/state", b.token, nil); strings.Contains(string(r.raw), "later topic") {
		t.Errorf("state after leave leaks: %s", r.raw)
	}
	ts.must(404, "GET", rb+"/state/m.room.topic/", b.token, nil)
	// Sync (include_leave) shows only what bob could see.
	r = ts.sync(b, "filter="+esc(`{"room":{"include_leave":true,"timeline":{"limit":50}}}`))
	tl := bodies(list(path(r.body, "rooms", "leave", room, "timeline", "events")))
	if slices.Contains(tl, "before join") || slices.Contains(tl, "after leave") {
		t.Errorf("sync leaks: %v", tl)
	}
	// Shared visibility: a new member sees earlier history.
	c := ts.register("carol")
	ts.must(200, "PUT", rb+"/state/m.room.history_visibility/", a.token, map[string]any{"history_visibility": "shared"})
	shared := ts.send(a, room, "shared before carol")
	ts.join(c, room)
	ts.must(200, "GET", rb+"/event/"+esc(shared), c.token, nil)
	ts.must(404, "GET", rb+"/event/"+esc(before), c.token, nil) // sent under "joined"
}
