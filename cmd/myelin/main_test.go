package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"myelin/server/httpapi"
	"myelin/server/storage/sqlite"
	msync "myelin/server/sync"
)

func startServer(t *testing.T) string {
	t.Helper()
	n := msync.NewNotifier()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db.sqlite"), sqlite.Options{Notify: n.Wake})
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{ServerName: "cli.test", Store: st, E2EE: st, Notifier: n, Registration: httpapi.RegistrationOpen})
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

// myelin runs one CLI command and returns its output.
func myelin(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	env := func(k string) string {
		if k == "MYELIN_PASSWORD" {
			return "pw-" + filepath.Base(dir)
		}
		return ""
	}
	if err := run(ctx, append([]string{"-dir", dir}, args...), &out, env); err != nil {
		t.Fatalf("myelin %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestCLI(t *testing.T) {
	hs := startServer(t)
	base := t.TempDir()
	alice, bob := filepath.Join(base, "alice"), filepath.Join(base, "bob")

	tests := []struct {
		dir  string
		args []string
		want []string // substrings of the output
	}{
		{alice, []string{"register", "-hs", hs, "-user", "alice"}, []string{"@alice:cli.test "}},
		{bob, []string{"register", "-hs", hs, "-user", "bob"}, []string{"@bob:cli.test "}},
		{alice, []string{"whoami"}, []string{"@alice:cli.test"}},
		{alice, []string{"devices"}, []string{"* ", "verified_identity"}}, // our own identity, whose keys we hold
	}
	for _, tc := range tests {
		out := myelin(t, tc.dir, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Fatalf("myelin %v: output %q lacks %q", tc.args, out, w)
			}
		}
	}
	room := strings.TrimSpace(myelin(t, alice, "create", "-name", "cli room", "@bob:cli.test"))
	if !strings.HasPrefix(room, "!") {
		t.Fatalf("create printed %q", room)
	}
	if out := myelin(t, bob, "rooms"); !strings.Contains(out, room+"\tinvite") {
		t.Fatalf("bob's rooms: %q", out)
	}
	myelin(t, bob, "join", room)
	if out := myelin(t, alice, "rooms"); !strings.Contains(out, room+"\tjoin\tencrypted\t2 members") {
		t.Fatalf("alice's rooms: %q", out)
	}
	myelin(t, alice, "send", room, "hello", "from", "the", "cli")
	out := myelin(t, bob, "tail", "-n", "1", "-timeout", "20s", room)
	if !strings.Contains(out, "@alice:cli.test/") || !strings.Contains(out, "hello from the cli") || !strings.Contains(out, "[cross_signed") {
		t.Fatalf("bob's tail: %q", out)
	}
	myelin(t, bob, "logout")
}
