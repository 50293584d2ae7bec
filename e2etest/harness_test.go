package e2etest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"myelin/client"
	"myelin/crypto/crosssign"
	"myelin/e2ee"
	"myelin/server/httpapi"
	"myelin/server/storage/sqlite"
	msync "myelin/server/sync"
)

// wait is the deadline of every condition a test waits for.
const wait = 30 * time.Second

// startServer runs myelind's HTTP API on a fresh SQLite database and returns
// its base URL.
func startServer(t *testing.T) string {
	t.Helper()
	n := msync.NewNotifier()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db.sqlite"), sqlite.Options{Notify: n.Wake})
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{ServerName: "e2e.test", Store: st, E2EE: st, Notifier: n,
		Registration: httpapi.RegistrationOpen, Logger: testLogger("myelind")})
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
	return "http://" + ln.Addr().String()
}

// testLogger logs to stderr when MYELIN_E2E_LOG is set.
func testLogger(who string) *slog.Logger {
	if os.Getenv("MYELIN_E2E_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", who)
}

// tclient is a client whose sync loop runs in the background and whose
// events are collected for the test to wait on.
type tclient struct {
	*client.Client
	t        *testing.T
	name     string
	password string
	hs       string

	mu     sync.Mutex
	events []client.Event
	change chan struct{} // closed and replaced when events grow

	cancel context.CancelFunc
	done   chan error
}

func newT(t *testing.T, name string) *tclient {
	return &tclient{t: t, name: name, change: make(chan struct{})}
}

func (tc *tclient) opts(dir string) client.Options {
	return client.Options{
		Logger:      testLogger(tc.name),
		StoreDir:    dir,
		SyncTimeout: 5 * time.Second,
		Backoff:     client.Backoff{Min: 50 * time.Millisecond, Max: time.Second},
		OnEvent:     tc.collect,
	}
}

// register creates user and its first device.
func register(t *testing.T, hs, user string) *tclient {
	t.Helper()
	tc := newT(t, user+"/1")
	tc.password, tc.hs = "pw-"+user, hs
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := client.Register(ctx, hs, user, tc.password, tc.opts(""))
	if err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	tc.Client = c
	tc.start()
	return tc
}

// login adds a device to first's account, cross-signed with the account's
// keys (as after verification). dir, if not empty, makes it persistent.
func (first *tclient) login(n int, dir string) *tclient {
	t := first.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sk, err := first.CrossSigningKeys(ctx)
	if err != nil {
		t.Fatalf("cross-signing keys: %v", err)
	}
	user := strings.TrimPrefix(strings.Split(first.UserID(), ":")[0], "@")
	tc := newT(t, fmt.Sprintf("%s/%d", user, n))
	tc.password, tc.hs = first.password, first.hs
	c, err := client.Login(ctx, first.hs, user, first.password, sk, tc.opts(dir))
	if err != nil {
		t.Fatalf("login %s: %v", tc.name, err)
	}
	tc.Client = c
	tc.start()
	return tc
}

func (tc *tclient) collect(ev client.Event) {
	tc.mu.Lock()
	tc.events = append(tc.events, ev)
	close(tc.change)
	tc.change = make(chan struct{})
	tc.mu.Unlock()
}

// start runs the sync loop until stop or the end of the test.
func (tc *tclient) start() {
	ctx, cancel := context.WithCancel(context.Background())
	tc.cancel, tc.done = cancel, make(chan error, 1)
	go func() { tc.done <- tc.Run(ctx) }()
	tc.t.Cleanup(tc.stop)
}

// stop ends the sync loop (the device goes offline).
func (tc *tclient) stop() {
	if tc.cancel == nil {
		return
	}
	tc.cancel()
	if err := <-tc.done; err != nil && !errors.Is(err, context.Canceled) {
		tc.t.Errorf("%s: sync loop: %v", tc.name, err)
	}
	tc.cancel = nil
}

// waitEvent waits for an event matching pred (among all collected so far).
func (tc *tclient) waitEvent(what string, pred func(client.Event) bool) client.Event {
	tc.t.Helper()
	return tc.waitEventFrom(0, what, pred)
}

// mark returns the number of events collected so far (for waitEventFrom).
func (tc *tclient) mark() int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return len(tc.events)
}

// waitEventFrom waits for an event matching pred among those collected after
// the first from.
func (tc *tclient) waitEventFrom(from int, what string, pred func(client.Event) bool) client.Event {
	tc.t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		tc.mu.Lock()
		for _, ev := range tc.events[from:] {
			if pred(ev) {
				tc.mu.Unlock()
				return ev
			}
		}
		ch := tc.change
		tc.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			tc.t.Fatalf("%s: no %s within %v; events: %s", tc.name, what, wait, tc.dump())
		}
	}
}

func (tc *tclient) dump() string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var b strings.Builder
	for _, ev := range tc.events {
		fmt.Fprintf(&b, "\n  room=%s type=%s sender=%s id=%s err=%v invite=%v alert=%v body=%s", ev.RoomID, ev.Event.Type, ev.Event.Sender, ev.Event.EventID, ev.Err, ev.Invite, ev.Alert, bodyOf(ev))
	}
	return b.String()
}

// text waits for the decrypted m.text message body in room and returns it.
func (tc *tclient) text(room, body string) client.Event {
	tc.t.Helper()
	return tc.waitEvent(fmt.Sprintf("message %q", body), func(ev client.Event) bool {
		return ev.Err == nil && ev.RoomID == room && ev.Event.Type == "m.room.message" && bodyOf(ev) == body
	})
}

// hasText reports whether tc has seen body in room in any form.
func (tc *tclient) hasText(body string) bool {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, ev := range tc.events {
		if ev.Err == nil && bodyOf(ev) == body {
			return true
		}
	}
	return false
}

// waitMember waits until tc's sync shows user with membership in room.
func (tc *tclient) waitMember(room, user, membership string) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		if r, ok := tc.Room(room); ok && r.Members[user] == membership {
			return
		}
		if err := tc.WaitSync(ctx); err != nil {
			tc.t.Fatalf("%s: %s never became %s in %s: %v", tc.name, user, membership, room, err)
		}
	}
}

// joinOnInvite waits for the invite to room and joins.
func (tc *tclient) joinOnInvite(room string) {
	tc.t.Helper()
	tc.waitEvent("invite", func(ev client.Event) bool { return ev.Invite && ev.RoomID == room })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tc.Join(ctx, room); err != nil {
		tc.t.Fatalf("%s: join: %v", tc.name, err)
	}
}

func (tc *tclient) send(room, body string) string {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	id, err := tc.SendText(ctx, room, body)
	if err != nil {
		tc.t.Fatalf("%s: send %q: %v", tc.name, body, err)
	}
	return id
}

func bodyOf(ev client.Event) string {
	var c struct {
		Body string `json:"body"`
	}
	if ev.Err != nil {
		return ""
	}
	_ = jsonUnmarshal(ev.Event.Content, &c)
	return c.Body
}

var _ = crosssign.AlgorithmMegolm

// resume reopens a persistent device from its store directory.
func (tc *tclient) resume(dir string) *tclient {
	t := tc.t
	t.Helper()
	n := newT(t, tc.name+"'")
	n.password, n.hs = tc.password, tc.hs
	c, err := client.Resume(ctxT(t), n.opts(dir))
	if err != nil {
		t.Fatalf("resume %s: %v", tc.name, err)
	}
	n.Client = c
	n.start()
	return n
}

// knowsDevice waits until tc's e2ee machine lists dev of user as a
// cross-signed device (a device's keys are uploaded a moment before its
// cross-signing signature: until then the strict policy withholds room keys
// from it).
func (tc *tclient) knowsDevice(user, dev string) {
	tc.t.Helper()
	ctx := ctxT(tc.t)
	for {
		st, err := tc.Machine().Identity(ctx, user)
		if err == nil && st != nil {
			if tr, ok := st.Devices[dev]; ok && (tr == e2ee.TrustCrossSignedPinned || tr == e2ee.TrustVerifiedIdentity) {
				return
			}
		}
		if err := tc.WaitSync(ctx); err != nil {
			tc.t.Fatalf("%s: never learned %s/%s: %v", tc.name, user, dev, err)
		}
	}
}
