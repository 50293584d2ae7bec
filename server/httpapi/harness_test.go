package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"myelin/server/httpapi"
	"myelin/server/storage/sqlite"
	msync "myelin/server/sync"
)

// testServer is a real myelind HTTP server on 127.0.0.1 with a fresh database.
type testServer struct {
	t    *testing.T
	base string
	srv  *httpapi.Server
	txn  atomic.Int64
}

func startServer(t *testing.T, mod func(*httpapi.Config)) *testServer {
	t.Helper()
	n := msync.NewNotifier()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db.sqlite"), sqlite.Options{Notify: n.Wake})
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{ServerName: "test.local", Store: st, E2EE: st, Notifier: n, Registration: httpapi.RegistrationOpen,
		MediaDir: filepath.Join(t.TempDir(), "media")}
	if mod != nil {
		mod(&cfg)
	}
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		st.Close()
	})
	return &testServer{t: t, base: "http://" + ln.Addr().String(), srv: s}
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r resp) errcode() string { s, _ := r.body["errcode"].(string); return s }

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

// do sends a request; body may be nil, a string (raw) or a value to marshal.
func (ts *testServer) do(method, path, token string, body any) resp {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// must sends a request and fails unless the status is want.
func (ts *testServer) must(want int, method, path, token string, body any) resp {
	ts.t.Helper()
	r := ts.do(method, path, token, body)
	if r.status != want {
		ts.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.raw)
	}
	return r
}

type user struct {
	id, token, device string
}

func (ts *testServer) register(name string) user {
	ts.t.Helper()
	r := ts.must(200, "POST", "/_matrix/client/v3/register", "", map[string]any{
		"username": name, "password": "pw-" + name, "auth": map[string]any{"type": "m.login.dummy"}})
	return user{id: r.str("user_id"), token: r.str("access_token"), device: r.str("device_id")}
}

func (ts *testServer) createRoom(u user, body map[string]any) string {
	ts.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return ts.must(200, "POST", "/_matrix/client/v3/createRoom", u.token, body).str("room_id")
}

func esc(s string) string { return url.PathEscape(s) }

func (ts *testServer) send(u user, room, body string) string {
	ts.t.Helper()
	id := ts.txn.Add(1)
	return ts.must(200, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t%d", esc(room), id), u.token,
		map[string]any{"msgtype": "m.text", "body": body}).str("event_id")
}

func (ts *testServer) join(u user, room string) {
	ts.t.Helper()
	ts.must(200, "POST", "/_matrix/client/v3/rooms/"+esc(room)+"/join", u.token, map[string]any{})
}

func (ts *testServer) invite(u user, room, who string) {
	ts.t.Helper()
	ts.must(200, "POST", "/_matrix/client/v3/rooms/"+esc(room)+"/invite", u.token, map[string]any{"user_id": who})
}

func (ts *testServer) sync(u user, query string) resp {
	ts.t.Helper()
	return ts.must(200, "GET", "/_matrix/client/v3/sync?"+query, u.token, nil)
}

// path walks a decoded JSON value by keys.
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func list(v any) []any { l, _ := v.([]any); return l }

// bodies returns the "body" of each event in evs.
func bodies(evs []any) []string {
	var out []string
	for _, e := range evs {
		if b, ok := path(e, "content", "body").(string); ok {
			out = append(out, b)
		}
	}
	return out
}
