package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"myelin/server/httpapi"
)

func TestDiscoveryAndErrors(t *testing.T) {
	ts := startServer(t, nil)
	r := ts.must(200, "GET", "/_matrix/client/versions", "", nil)
	if !strings.Contains(string(r.raw), `"v1.1"`) {
		t.Errorf("versions: %s", r.raw)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("no CORS header on /versions")
	}
	r = ts.must(200, "GET", "/.well-known/matrix/client", "", nil)
	if path(r.body, "m.homeserver", "base_url") == nil {
		t.Errorf("well-known: %s", r.raw)
	}
	tests := []struct {
		name, method, path string
		status             int
		errcode            string
	}{
		{"unknown endpoint", "GET", "/_matrix/client/v3/nope", 404, "M_UNRECOGNIZED"},
		{"unknown prefix", "GET", "/foo", 404, "M_UNRECOGNIZED"},
		{"wrong method", "DELETE", "/_matrix/client/versions", 405, "M_UNRECOGNIZED"},
		{"dehydrated device", "GET", "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", 404, "M_UNRECOGNIZED"},
		{"auth metadata", "GET", "/_matrix/client/v1/auth_metadata", 404, "M_UNRECOGNIZED"},
		{"missing token", "GET", "/_matrix/client/v3/account/whoami", 401, "M_MISSING_TOKEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(tc.method, tc.path, "", nil)
			if r.status != tc.status || r.errcode() != tc.errcode {
				t.Errorf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.errcode)
			}
			if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("headers: %v", r.header)
			}
		})
	}
	r = ts.do("OPTIONS", "/_matrix/client/v3/sync", "", nil)
	if r.status != 200 || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("OPTIONS: %d %v", r.status, r.header)
	}
	r = ts.do("GET", "/_matrix/client/v3/account/whoami", "myt_bogus", nil)
	if r.status != 401 || r.errcode() != "M_UNKNOWN_TOKEN" {
		t.Errorf("bogus token: %d %s", r.status, r.raw)
	}
}

func TestRegisterUIA(t *testing.T) {
	ts := startServer(t, nil)
	// No auth: 401 with flows and a session.
	r := ts.must(401, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "alice", "password": "pw"})
	if r.str("session") == "" || !strings.Contains(string(r.raw), "m.login.dummy") {
		t.Fatalf("challenge: %s", r.raw)
	}
	sess := r.str("session")
	r = ts.must(200, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "Alice", "password": "pw",
		"auth": map[string]any{"type": "m.login.dummy", "session": sess}})
	if r.str("user_id") != "@alice:test.local" || r.str("device_id") == "" || !strings.HasPrefix(r.str("access_token"), "myt_") {
		t.Fatalf("register: %s", r.raw)
	}
	// The session is consumed: reusing it fails.
	r = ts.do("POST", "/_matrix/client/v3/register", "", map[string]any{"username": "alice2", "password": "pw",
		"auth": map[string]any{"type": "m.login.dummy", "session": sess}})
	if r.status == 200 {
		t.Errorf("completed UIA session reused")
	}
	// nio: dummy auth without a session completes in one round trip.
	ts.must(200, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "bob", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}})
	for _, tc := range []struct {
		name    string
		body    map[string]any
		query   string
		status  int
		errcode string
	}{
		{"taken", map[string]any{"username": "alice", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}}, "", 400, "M_USER_IN_USE"},
		{"invalid", map[string]any{"username": "al ice", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}}, "", 400, "M_INVALID_USERNAME"},
		{"guest", map[string]any{}, "?kind=guest", 403, "M_FORBIDDEN"},
		{"bad stage", map[string]any{"username": "carol", "auth": map[string]any{"type": "m.login.password"}}, "", 401, "M_UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do("POST", "/_matrix/client/v3/register"+tc.query, "", tc.body)
			if r.status != tc.status || r.errcode() != tc.errcode {
				t.Errorf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.errcode)
			}
		})
	}
	ts.must(200, "GET", "/_matrix/client/v3/register/available?username=zed", "", nil)
	if r := ts.do("GET", "/_matrix/client/v3/register/available?username=alice", "", nil); r.errcode() != "M_USER_IN_USE" {
		t.Errorf("available(alice): %s", r.raw)
	}
}

func TestRegisterToken(t *testing.T) {
	ts := startServer(t, func(c *httpapi.Config) {
		c.Registration = httpapi.RegistrationToken
		c.RegistrationTokens = []string{"letmein"}
	})
	// nio's token flow: auth without type, then the token stage, then dummy.
	r := ts.must(401, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "a", "password": "pw", "auth": map[string]any{}})
	sess := r.str("session")
	r = ts.must(401, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "a", "password": "pw",
		"auth": map[string]any{"type": "m.login.registration_token", "token": "wrong", "session": sess}})
	if r.errcode() != "M_FORBIDDEN" {
		t.Errorf("wrong token: %s", r.raw)
	}
	// Dummy alone is not enough.
	r = ts.must(401, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "a", "password": "pw",
		"auth": map[string]any{"type": "m.login.dummy", "session": sess}})
	ts.must(200, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "a", "password": "pw",
		"auth": map[string]any{"type": "m.login.registration_token", "token": "letmein", "session": sess}})
	r = ts.must(200, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=letmein", "", nil)
	if r.body["valid"] != true {
		t.Errorf("validity: %s", r.raw)
	}
	// Registration disabled.
	ts2 := startServer(t, func(c *httpapi.Config) { c.Registration = httpapi.RegistrationDisabled })
	if r := ts2.do("POST", "/_matrix/client/v3/register", "", map[string]any{"username": "x", "auth": map[string]any{"type": "m.login.dummy"}}); r.status != 403 {
		t.Errorf("disabled registration: %d %s", r.status, r.raw)
	}
}

func TestLoginLogout(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	ts.must(200, "GET", "/_matrix/client/v3/login", "", nil)
	r := ts.must(200, "GET", "/_matrix/client/v3/account/whoami", a.token, nil)
	if r.str("user_id") != a.id || r.str("device_id") != a.device {
		t.Fatalf("whoami: %s", r.raw)
	}
	// Wrong password, unknown user, unknown login type.
	for _, body := range []map[string]any{
		{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "nope"},
		{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "nobody"}, "password": "pw"},
	} {
		if r := ts.do("POST", "/_matrix/client/v3/login", "", body); r.status != 403 || r.errcode() != "M_FORBIDDEN" {
			t.Errorf("bad login: %d %s", r.status, r.raw)
		}
	}
	if r := ts.do("POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.foo"}); r.status != 400 {
		t.Errorf("unknown login type: %d", r.status)
	}
	// Re-login with the same device ID keeps the device and revokes its old token.
	r = ts.must(200, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": a.id}, "password": "pw-alice", "device_id": a.device})
	if r.str("device_id") != a.device {
		t.Fatalf("device not reused: %s", r.raw)
	}
	if r := ts.do("GET", "/_matrix/client/v3/account/whoami", a.token, nil); r.errcode() != "M_UNKNOWN_TOKEN" {
		t.Errorf("old token still valid after re-login: %s", r.raw)
	}
	tok := r.str("access_token")
	// Deprecated top-level "user" and the query-string token.
	r = ts.must(200, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw-alice"})
	tok2 := r.str("access_token")
	ts.must(200, "GET", "/_matrix/client/v3/account/whoami?access_token="+tok2, "", nil)
	ts.must(200, "POST", "/_matrix/client/v3/logout", tok, nil)
	if r := ts.do("GET", "/_matrix/client/v3/account/whoami", tok, nil); r.errcode() != "M_UNKNOWN_TOKEN" {
		t.Errorf("token valid after logout: %s", r.raw)
	}
	devs := list(ts.must(200, "GET", "/_matrix/client/v3/devices", tok2, nil).body["devices"])
	if len(devs) != 1 {
		t.Errorf("logout did not delete the device: %v", devs)
	}
	ts.must(200, "POST", "/_matrix/client/v3/logout/all", tok2, nil)
	if r := ts.do("GET", "/_matrix/client/v3/account/whoami", tok2, nil); r.errcode() != "M_UNKNOWN_TOKEN" {
		t.Errorf("token valid after logout/all: %s", r.raw)
	}
}

func TestDevices(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	r2 := ts.must(200, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw-alice",
		"initial_device_display_name": "laptop"})
	dev2 := r2.str("device_id")
	devs := list(ts.must(200, "GET", "/_matrix/client/v3/devices", a.token, nil).body["devices"])
	if len(devs) != 2 {
		t.Fatalf("devices: %v", devs)
	}
	r := ts.must(200, "GET", "/_matrix/client/v3/devices/"+dev2, a.token, nil)
	if r.str("display_name") != "laptop" {
		t.Errorf("device: %s", r.raw)
	}
	ts.must(200, "PUT", "/_matrix/client/v3/devices/"+dev2, a.token, map[string]any{"display_name": "desk"})
	if r := ts.must(200, "GET", "/_matrix/client/v3/devices/"+dev2, a.token, nil); r.str("display_name") != "desk" {
		t.Errorf("rename: %s", r.raw)
	}
	ts.must(404, "GET", "/_matrix/client/v3/devices/NOPE", a.token, nil)
	ts.must(404, "PUT", "/_matrix/client/v3/devices/NOPE", a.token, map[string]any{"display_name": "x"})
	// Delete needs UIA with the password.
	r = ts.must(401, "DELETE", "/_matrix/client/v3/devices/"+dev2, a.token, map[string]any{})
	sess := r.str("session")
	if !strings.Contains(string(r.raw), "m.login.password") {
		t.Fatalf("delete challenge: %s", r.raw)
	}
	r = ts.must(401, "DELETE", "/_matrix/client/v3/devices/"+dev2, a.token, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": sess, "identifier": map[string]any{"type": "m.id.user", "user": a.id}, "password": "wrong"}})
	if r.errcode() != "M_FORBIDDEN" {
		t.Errorf("wrong password: %s", r.raw)
	}
	ts.must(200, "DELETE", "/_matrix/client/v3/devices/"+dev2, a.token, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": sess, "identifier": map[string]any{"type": "m.id.user", "user": a.id}, "password": "pw-alice"}})
	if r := ts.do("GET", "/_matrix/client/v3/account/whoami", r2.str("access_token"), nil); r.status != http.StatusUnauthorized {
		t.Errorf("deleted device's token still works: %d", r.status)
	}
	// delete_devices with UIA.
	r3 := ts.must(200, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw-alice"})
	r = ts.must(401, "POST", "/_matrix/client/v3/delete_devices", a.token, map[string]any{"devices": []string{r3.str("device_id")}})
	ts.must(200, "POST", "/_matrix/client/v3/delete_devices", a.token, map[string]any{"devices": []string{r3.str("device_id")}, "auth": map[string]any{
		"type": "m.login.password", "session": r.str("session"), "user": "alice", "password": "pw-alice"}})
	if devs := list(ts.must(200, "GET", "/_matrix/client/v3/devices", a.token, nil).body["devices"]); len(devs) != 1 {
		t.Errorf("after delete_devices: %v", devs)
	}
}

func TestProfileAccountDataFiltersPushRules(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ts.must(200, "PUT", "/_matrix/client/v3/profile/"+a.id+"/displayname", a.token, map[string]any{"displayname": "Alice"})
	ts.must(200, "PUT", "/_matrix/client/v3/profile/"+a.id+"/avatar_url", a.token, map[string]any{"avatar_url": "mxc://x/y"})
	r := ts.must(200, "GET", "/_matrix/client/v3/profile/"+a.id, b.token, nil)
	if r.str("displayname") != "Alice" || r.str("avatar_url") != "mxc://x/y" {
		t.Errorf("profile: %s", r.raw)
	}
	ts.must(200, "GET", "/_matrix/client/v3/profile/"+a.id+"/displayname", "", nil)
	ts.must(403, "PUT", "/_matrix/client/v3/profile/"+a.id+"/displayname", b.token, map[string]any{"displayname": "Mallory"})
	ts.must(404, "GET", "/_matrix/client/v3/profile/@nobody:test.local", a.token, nil)

	// Account data.
	ad := "/_matrix/client/v3/user/" + a.id + "/account_data/m.direct"
	if r := ts.do("GET", ad, a.token, nil); r.status != 404 || r.errcode() != "M_NOT_FOUND" {
		t.Errorf("unset account data: %d %s", r.status, r.raw)
	}
	ts.must(200, "PUT", ad, a.token, map[string]any{"@bob:test.local": []string{"!r:test.local"}})
	if r := ts.must(200, "GET", ad, a.token, nil); r.body["@bob:test.local"] == nil {
		t.Errorf("account data: %s", r.raw)
	}
	if r := ts.do("PUT", "/_matrix/client/v3/user/"+a.id+"/account_data/m.fully_read", a.token, map[string]any{}); r.status != 405 {
		t.Errorf("server-managed type: %d", r.status)
	}
	rad := "/_matrix/client/v3/user/" + a.id + "/rooms/" + esc("!r:test.local") + "/account_data/m.tag"
	ts.must(404, "GET", rad, a.token, nil)
	ts.must(200, "PUT", rad, a.token, map[string]any{"tags": map[string]any{}})
	ts.must(200, "GET", rad, a.token, nil)
	ts.must(400, "GET", "/_matrix/client/v3/user/"+a.id+"/rooms/notaroom/account_data/m.tag", a.token, nil)
	ts.must(200, "PUT", "/_matrix/client/v3/user/"+a.id+"/rooms/"+esc("!r:test.local")+"/tags/u.work", a.token, map[string]any{"order": 0.5})
	if r := ts.must(200, "GET", "/_matrix/client/v3/user/"+a.id+"/rooms/"+esc("!r:test.local")+"/tags", a.token, nil); path(r.body, "tags", "u.work") == nil {
		t.Errorf("tags: %s", r.raw)
	}

	// Filters.
	r = ts.must(200, "POST", "/_matrix/client/v3/user/"+a.id+"/filter", a.token, map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 5}}})
	fid := r.str("filter_id")
	if fid == "" || strings.HasPrefix(fid, "{") {
		t.Fatalf("filter id: %s", r.raw)
	}
	if r := ts.must(200, "GET", "/_matrix/client/v3/user/"+a.id+"/filter/"+fid, a.token, nil); path(r.body, "room", "timeline", "limit") != 5.0 {
		t.Errorf("filter: %s", r.raw)
	}
	ts.must(404, "GET", "/_matrix/client/v3/user/"+a.id+"/filter/999", a.token, nil)

	// Push rules, with and without the trailing slash.
	for _, p := range []string{"/_matrix/client/v3/pushrules/", "/_matrix/client/v3/pushrules"} {
		r := ts.must(200, "GET", p, a.token, nil)
		for _, k := range []string{"override", "content", "room", "sender", "underride"} {
			if path(r.body, "global", k) == nil {
				t.Errorf("%s: missing %s: %s", p, k, r.raw)
			}
		}
	}
	ts.must(200, "GET", "/_matrix/client/v3/pushrules/global/override/.m.rule.master", a.token, nil)
	ts.must(200, "PUT", "/_matrix/client/v3/pushrules/global/override/.m.rule.master/enabled", a.token, map[string]any{"enabled": true})
	if r := ts.must(200, "GET", "/_matrix/client/v3/pushrules/global/override/.m.rule.master/enabled", a.token, nil); r.body["enabled"] != true {
		t.Errorf("enabled: %s", r.raw)
	}
	ts.must(200, "PUT", "/_matrix/client/v3/pushrules/global/room/"+esc("!r:test.local"), a.token, map[string]any{"actions": []string{}})
	ts.must(200, "GET", "/_matrix/client/v3/pushrules/global/room/"+esc("!r:test.local"), a.token, nil)
	ts.must(200, "DELETE", "/_matrix/client/v3/pushrules/global/room/"+esc("!r:test.local"), a.token, nil)
	ts.must(404, "GET", "/_matrix/client/v3/pushrules/global/room/"+esc("!r:test.local"), a.token, nil)
	r = ts.must(200, "GET", "/_matrix/client/v3/capabilities", a.token, nil)
	if path(r.body, "capabilities", "m.room_versions", "default") != "11" {
		t.Errorf("capabilities: %s", r.raw)
	}
	for _, p := range []string{"/_matrix/client/v3/pushers", "/_matrix/client/v3/voip/turnServer", "/_matrix/client/v3/account/3pid", "/_matrix/client/v3/thirdparty/protocols"} {
		ts.must(200, "GET", p, a.token, nil)
	}
}

func TestLimits(t *testing.T) {
	ts := startServer(t, func(c *httpapi.Config) {
		c.RateLimit = httpapi.RateLimit{Rate: 1, Burst: 3}
		c.MaxRequestBytes = 200 << 10
	})
	a := ts.register("alice")
	room := ts.createRoom(a, nil)
	// Event over 65536 bytes: 413 M_TOO_LARGE.
	r := ts.do("PUT", "/_matrix/client/v3/rooms/"+esc(room)+"/send/m.room.message/big", a.token,
		map[string]any{"msgtype": "m.text", "body": strings.Repeat("x", 70000)})
	if r.status != 413 || r.errcode() != "M_TOO_LARGE" {
		t.Errorf("big event: %d %s", r.status, r.raw)
	}
	// Body over the request limit.
	r = ts.do("PUT", "/_matrix/client/v3/user/"+a.id+"/account_data/x.big", a.token, map[string]any{"x": strings.Repeat("y", 300<<10)})
	if r.status != 413 || r.errcode() != "M_TOO_LARGE" {
		t.Errorf("big body: %d %s", r.status, r.raw)
	}
	// Rate limit.
	var got429 bool
	for i := 0; i < 10 && !got429; i++ {
		r := ts.do("GET", "/_matrix/client/v3/account/whoami", a.token, nil)
		if r.status == 429 {
			got429 = true
			if r.errcode() != "M_LIMIT_EXCEEDED" || r.body["retry_after_ms"] == nil || r.header.Get("Retry-After") == "" {
				t.Errorf("429 without retry hints: %v %s", r.header, r.raw)
			}
		}
	}
	if !got429 {
		t.Errorf("no 429 after 10 requests with burst 3")
	}
}

func TestPasswordChangeAndProfilePropagation(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	other := ts.must(200, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw-alice"}).str("access_token")
	room := ts.createRoom(a, nil)
	r := ts.must(401, "POST", "/_matrix/client/v3/account/password", a.token, map[string]any{"new_password": "new"})
	ts.must(401, "POST", "/_matrix/client/v3/account/password", a.token, map[string]any{"new_password": "new", "auth": map[string]any{
		"type": "m.login.password", "session": r.str("session"), "user": "alice", "password": "wrong"}})
	ts.must(200, "POST", "/_matrix/client/v3/account/password", a.token, map[string]any{"new_password": "new", "auth": map[string]any{
		"type": "m.login.password", "session": r.str("session"), "user": "alice", "password": "pw-alice"}})
	// Other devices are logged out, this one stays; the old password no longer works.
	if r := ts.do("GET", "/_matrix/client/v3/account/whoami", other, nil); r.status != 401 {
		t.Errorf("other device survived password change: %d", r.status)
	}
	ts.must(200, "GET", "/_matrix/client/v3/account/whoami", a.token, nil)
	ts.must(403, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw-alice"})
	ts.must(200, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "new"})
	// A display name change reaches the member event of every joined room.
	ts.must(200, "PUT", "/_matrix/client/v3/profile/"+a.id+"/displayname", a.token, map[string]any{"displayname": "Alice A."})
	r = ts.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/state/m.room.member/"+esc(a.id), a.token, nil)
	if r.str("displayname") != "Alice A." || r.str("membership") != "join" {
		t.Errorf("member event after profile change: %s", r.raw)
	}
}

func TestDeactivate(t *testing.T) {
	ts := startServer(t, nil)
	a, b := ts.register("alice"), ts.register("bob")
	room := ts.createRoom(b, map[string]any{"preset": "public_chat"})
	ts.join(a, room)
	r := ts.must(401, "POST", "/_matrix/client/v3/account/deactivate", a.token, map[string]any{})
	ts.must(200, "POST", "/_matrix/client/v3/account/deactivate", a.token, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": r.str("session"), "user": "alice", "password": "pw-alice"}})
	if r := ts.do("GET", "/_matrix/client/v3/account/whoami", a.token, nil); r.errcode() != "M_UNKNOWN_TOKEN" {
		t.Errorf("token valid after deactivation: %s", r.raw)
	}
	if r := ts.do("POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw-alice"}); r.status != 403 {
		t.Errorf("login after deactivation: %d %s", r.status, r.raw)
	}
	r = ts.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/state/m.room.member/"+esc(a.id), b.token, nil)
	if r.str("membership") != "leave" {
		t.Errorf("deactivated user still in room: %s", r.raw)
	}
	if r := ts.do("POST", "/_matrix/client/v3/register", "", map[string]any{"username": "alice", "auth": map[string]any{"type": "m.login.dummy"}}); r.errcode() != "M_USER_IN_USE" {
		t.Errorf("deactivated user ID reusable: %s", r.raw)
	}
}
