package httpapi_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSyncInitialAndIncremental(t *testing.T) {
	ts := startServer(t, nil)
	a, b := ts.register("alice"), ts.register("bob")
	room := ts.createRoom(a, map[string]any{"preset": "private_chat", "invite": []string{b.id}, "name": "R"})
	// Bob's initial sync shows the invite with stripped state and his own invite event.
	r := ts.sync(b, "")
	inv := path(r.body, "rooms", "invite", room, "invite_state", "events")
	if inv == nil || !strings.Contains(string(r.raw), `"m.room.name"`) || !strings.Contains(string(r.raw), `"membership":"invite"`) {
		t.Fatalf("invite: %s", r.raw)
	}
	if path(r.body, "device_one_time_keys_count", "signed_curve25519") == nil || r.body["device_unused_fallback_key_types"] == nil {
		t.Errorf("E2EE fields missing: %s", r.raw)
	}
	since := r.str("next_batch")
	ts.join(b, room)
	// The first sync after joining has the own join in the timeline and full state.
	r = ts.sync(b, "since="+since)
	jr := path(r.body, "rooms", "join", room)
	if jr == nil {
		t.Fatalf("joined room missing: %s", r.raw)
	}
	tl := list(path(jr, "timeline", "events"))
	if !slices.ContainsFunc(tl, func(e any) bool {
		return path(e, "type") == "m.room.member" && path(e, "state_key") == b.id && path(e, "content", "membership") == "join"
	}) {
		t.Errorf("own join not in timeline: %v", tl)
	}
	if !strings.Contains(string(r.raw), `"m.room.create"`) {
		t.Errorf("state missing on new join")
	}
	if path(jr, "summary", "m.joined_member_count") != 2.0 {
		t.Errorf("summary: %v", path(jr, "summary"))
	}
	since = r.str("next_batch")
	// Alice's incremental sync lists bob as a device-list change (new shared room).
	// Messages: incremental shows exactly the new ones, with transaction_id only for the sender.
	ts.send(a, room, "one")
	ts.send(a, room, "two")
	r = ts.sync(b, "since="+since)
	tl = list(path(r.body, "rooms", "join", room, "timeline", "events"))
	if got := bodies(tl); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("incremental timeline: %v (%s)", got, r.raw)
	}
	if path(tl[0], "unsigned", "transaction_id") != nil {
		t.Errorf("transaction_id leaked to another user")
	}
	if n := path(r.body, "rooms", "join", room, "unread_notifications", "notification_count"); n != 2.0 {
		t.Errorf("unread: %v", n)
	}
	since = r.str("next_batch")
	two := list(path(r.body, "rooms", "join", room, "timeline", "events"))[1].(map[string]any)["event_id"].(string)
	ts.must(200, "POST", "/_matrix/client/v3/rooms/"+esc(room)+"/receipt/m.read/"+esc(two), b.token, map[string]any{})
	r = ts.sync(b, "since="+since)
	if n := path(r.body, "rooms", "join", room, "unread_notifications", "notification_count"); n != 0.0 {
		t.Errorf("unread after receipt: %v", n)
	}
	since = r.str("next_batch")
	ra := ts.sync(a, "filter="+esc(`{"room":{"timeline":{"limit":1}}}`))
	tla := list(path(ra.body, "rooms", "join", room, "timeline", "events"))
	if len(tla) != 1 || path(tla[0], "unsigned", "transaction_id") == nil || path(ra.body, "rooms", "join", room, "timeline", "limited") != true {
		t.Errorf("sender's view: %s", ra.raw)
	}
	// Limited incremental sync with a prev_batch usable for /messages.
	for i := 0; i < 5; i++ {
		ts.send(a, room, "x")
	}
	r = ts.sync(b, "since="+since+"&filter="+esc(`{"room":{"timeline":{"limit":2}}}`))
	tlm := path(r.body, "rooms", "join", room, "timeline")
	if path(tlm, "limited") != true || len(list(path(tlm, "events"))) != 2 {
		t.Fatalf("limited: %v", tlm)
	}
	pb := path(tlm, "prev_batch").(string)
	m := ts.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/messages?dir=b&limit=3&from="+pb, b.token, nil)
	if len(list(m.body["chunk"])) != 3 {
		t.Errorf("prev_batch pagination: %s", m.raw)
	}
	// /members?at=<sync token>.
	ts.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/members?not_membership=leave&at="+r.str("next_batch"), b.token, nil)
	since = r.str("next_batch")
	// Nothing new: a timeout=0 sync returns at once and is empty.
	r = ts.sync(b, "since="+since+"&timeout=0")
	if path(r.body, "rooms", "join", room) != nil {
		t.Errorf("empty sync had the room: %s", r.raw)
	}
	// Long poll wakes on a new message.
	done := make(chan resp, 1)
	go func() { done <- ts.sync(b, "since="+since+"&timeout=20000") }()
	ts.send(a, room, "wake")
	select {
	case r = <-done:
		if got := bodies(list(path(r.body, "rooms", "join", room, "timeline", "events"))); !slices.Equal(got, []string{"wake"}) {
			t.Errorf("long-poll result: %v", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not wake")
	}
	since = r.str("next_batch")
	// Typing and receipts arrive as ephemeral events.
	ts.must(200, "PUT", "/_matrix/client/v3/rooms/"+esc(room)+"/typing/"+esc(a.id), a.token, map[string]any{"typing": true, "timeout": 30000})
	r = ts.sync(b, "since="+since+"&timeout=5000")
	if !strings.Contains(string(r.raw), `"m.typing"`) || !strings.Contains(string(r.raw), a.id) {
		t.Errorf("typing: %s", r.raw)
	}
	since = r.str("next_batch")
	last := ts.send(a, room, "read me")
	r = ts.sync(b, "since="+since)
	since = r.str("next_batch")
	ts.must(200, "POST", "/_matrix/client/v3/rooms/"+esc(room)+"/receipt/m.read/"+esc(last), a.token, map[string]any{})
	r = ts.sync(b, "since="+since+"&timeout=5000")
	if path(r.body, "rooms", "join", room, "ephemeral") == nil || !strings.Contains(string(r.raw), `"m.receipt"`) {
		t.Errorf("receipt: %s", r.raw)
	}
	since = r.str("next_batch")
	// Account data arrives in sync.
	ts.must(200, "PUT", "/_matrix/client/v3/user/"+b.id+"/account_data/m.direct", b.token, map[string]any{})
	r = ts.sync(b, "since="+since+"&timeout=5000")
	if !strings.Contains(string(r.raw), `"m.direct"`) {
		t.Errorf("account data: %s", r.raw)
	}
	since = r.str("next_batch")
	// Leaving puts the room under leave, once.
	ts.must(200, "POST", "/_matrix/client/v3/rooms/"+esc(room)+"/leave", b.token, map[string]any{})
	r = ts.sync(b, "since="+since+"&timeout=5000")
	if path(r.body, "rooms", "leave", room, "timeline") == nil {
		t.Errorf("leave: %s", r.raw)
	}
	r = ts.sync(b, "since="+r.str("next_batch"))
	if path(r.body, "rooms", "leave", room) != nil {
		t.Errorf("left room repeated")
	}
	// include_leave on an initial sync.
	r = ts.sync(b, "filter="+esc(`{"room":{"include_leave":true}}`))
	if path(r.body, "rooms", "leave", room) == nil {
		t.Errorf("include_leave: %s", r.raw)
	}
	ts.must(400, "GET", "/_matrix/client/v3/sync?since=garbage", b.token, nil)
}

func TestSyncFiltersAndLazyLoading(t *testing.T) {
	ts := startServer(t, nil)
	a, b, c := ts.register("alice"), ts.register("bob"), ts.register("carol")
	room := ts.createRoom(a, map[string]any{"preset": "public_chat"})
	ts.join(b, room)
	ts.join(c, room)
	ts.send(b, room, "from bob")
	ts.must(200, "PUT", "/_matrix/client/v3/rooms/"+esc(room)+"/send/x.custom/t1", a.token, map[string]any{"k": 1})
	// Stored filter ID with lazy loading: only the senders' member events (and own).
	fid := ts.must(200, "POST", "/_matrix/client/v3/user/"+a.id+"/filter", a.token, map[string]any{
		"room": map[string]any{"timeline": map[string]any{"limit": 1, "not_types": []string{"x.custom"}}, "state": map[string]any{"lazy_load_members": true}},
	}).str("filter_id")
	r := ts.sync(a, "filter="+fid)
	jr := path(r.body, "rooms", "join", room)
	tl := list(path(jr, "timeline", "events"))
	if got := bodies(tl); !slices.Equal(got, []string{"from bob"}) && len(tl) != 0 {
		t.Errorf("timeline with not_types: %v", got)
	}
	for _, e := range tl {
		if path(e, "type") == "x.custom" {
			t.Errorf("not_types let x.custom through")
		}
	}
	for _, e := range list(path(jr, "state", "events")) {
		if path(e, "type") == "m.room.member" && path(e, "state_key") == c.id {
			t.Errorf("lazy loading sent carol's member event")
		}
	}
	// types filter.
	r = ts.sync(a, "filter="+esc(`{"room":{"timeline":{"types":["x.custom"]}}}`))
	for _, e := range list(path(r.body, "rooms", "join", room, "timeline", "events")) {
		if path(e, "type") != "x.custom" {
			t.Errorf("types filter let %v through", path(e, "type"))
		}
	}
	ts.must(400, "GET", "/_matrix/client/v3/sync?filter=12345", a.token, nil)
}

// TestSyncTokenRevoked checks that an access token that has been used for
// /sync (and could sit in any lookup cache) stops working at once after
// logout and after its device is deleted.
func TestSyncTokenRevoked(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	login := func() user {
		r := ts.must(200, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw-alice"})
		return user{id: a.id, token: r.str("access_token"), device: r.str("device_id")}
	}
	for _, c := range []struct {
		name   string
		revoke func(u user)
	}{
		{"logout", func(u user) { ts.must(200, "POST", "/_matrix/client/v3/logout", u.token, nil) }},
		{"device deleted", func(u user) {
			r := ts.must(401, "DELETE", "/_matrix/client/v3/devices/"+u.device, a.token, map[string]any{})
			ts.must(200, "DELETE", "/_matrix/client/v3/devices/"+u.device, a.token, map[string]any{"auth": map[string]any{
				"type": "m.login.password", "session": r.str("session"), "identifier": map[string]any{"type": "m.id.user", "user": a.id}, "password": "pw-alice"}})
		}},
	} {
		u := login()
		since := ts.sync(u, "").str("next_batch")
		ts.sync(u, "since="+since)
		c.revoke(u)
		if r := ts.do("GET", "/_matrix/client/v3/sync?since="+since, u.token, nil); r.status != 401 || r.errcode() != "M_UNKNOWN_TOKEN" {
			t.Errorf("%s: revoked token still syncs: %d %s", c.name, r.status, r.raw)
		}
	}
}

// TestSyncStreamsMoveIndependently checks that an incremental sync reports
// account data and device-list changes made after its token, whichever
// stream woke it, and does not repeat them on the next sync.
func TestSyncStreamsMoveIndependently(t *testing.T) {
	ts := startServer(t, nil)
	a, b := ts.register("alice"), ts.register("bob")
	room := ts.createRoom(a, map[string]any{"preset": "private_chat", "invite": []string{b.id}})
	ts.join(b, room)
	since := ts.sync(a, "").str("next_batch")
	ts.must(200, "PUT", "/_matrix/client/v3/user/"+esc(a.id)+"/account_data/m.test", a.token, map[string]any{"x": 1})
	ts.must(200, "PUT", "/_matrix/client/v3/devices/"+b.device, b.token, map[string]any{"display_name": "renamed"})
	r := ts.sync(a, "since="+since)
	if !strings.Contains(string(r.raw), `"m.test"`) {
		t.Errorf("account data missing: %s", r.raw)
	}
	if ch := list(path(r.body, "device_lists", "changed")); !slices.Contains(ch, any(b.id)) {
		t.Errorf("device-list change missing: %s", r.raw)
	}
	r = ts.sync(a, "since="+r.str("next_batch"))
	if strings.Contains(string(r.raw), `"m.test"`) || len(list(path(r.body, "device_lists", "changed"))) != 0 {
		t.Errorf("changes repeated: %s", r.raw)
	}
}
