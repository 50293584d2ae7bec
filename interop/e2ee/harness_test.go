package e2ee_test

// A minimal copy of interop/clients' harness (its helpers are test-only and
// cannot be imported): build myelind once, start it per test on a free port
// behind a proxy that records request bodies for the no-plaintext check, and
// drive mautrix-go and the nio driver script (../clients/nio/driver.py).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"myelin/interop/internal/testenv"
)

var myelindBin string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if !wantsScenario() {
		return m.Run() // benchmarks only: no myelind needed
	}
	dir, err := os.MkdirTemp("", "myelind-e2ee-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2ee:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin := os.Getenv("MYELIND_BIN"); bin != "" {
		myelindBin = bin
		return m.Run()
	}
	myelindBin = filepath.Join(dir, "myelind")
	build := exec.Command("go", "build", "-o", myelindBin, "./cmd/myelind")
	build.Dir = ".." + string(filepath.Separator) + ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2ee: building myelind:", err)
		return 1
	}
	return m.Run()
}

// wantsScenario reports whether the run includes tests (not -run '^$').
func wantsScenario() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.run=^$" || a == "-test.run=^$$" {
			return false
		}
	}
	return true
}

type homeserver struct {
	URL        string
	ServerName string
	mu         sync.Mutex
	reqBodies  []string // "METHOD path\nbody"
}

func startHomeserver(t *testing.T) *homeserver {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"server_name": "localhost",
		"log":         map[string]any{"level": "info", "format": "text"},
		"rate_limit": map[string]any{
			"per_user": map[string]any{"rate": 0, "burst": 0},
			"per_ip":   map[string]any{"rate": 0, "burst": 0},
		},
	}
	cfgPath := filepath.Join(dir, "config.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var direct string
	for attempt := 1; ; attempt++ {
		var ok bool
		if direct, ok = launchMyelind(t, dir, cfgPath, attempt); ok {
			break
		}
		if attempt == 3 {
			t.Fatal("myelind exited before answering /versions three times")
		}
	}
	hs := &homeserver{ServerName: "localhost"}
	target, _ := url.Parse(direct)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
			hs.mu.Lock()
			hs.reqBodies = append(hs.reqBodies, r.Method+" "+r.URL.Path+"\n"+string(body))
			hs.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	hs.URL = srv.URL
	return hs
}

func launchMyelind(t *testing.T, dir, cfgPath string, attempt int) (string, bool) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	logPath := filepath.Join(dir, fmt.Sprintf("myelind-%d.log", attempt))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(myelindBin, "--config", cfgPath, "--listen", addr, "--data", filepath.Join(dir, "data"), "--server-name", "localhost")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	direct := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(direct + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			logf.Close()
			return "", false
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("myelind did not answer /versions within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("myelind log (last 8 KiB):\n%s", testenv.Tail(b, 8<<10))
			}
		}
	})
	return direct, true
}

// assertNoPlaintext checks that no request carried a message body and that
// no m.room.message was sent unencrypted.
func assertNoPlaintext(t *testing.T, hs *homeserver, bodies ...string) {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, r := range hs.reqBodies {
		for _, b := range bodies {
			if strings.Contains(r, b) {
				t.Errorf("plaintext %q reached the server in %s", b, strings.SplitN(r, "\n", 2)[0])
			}
		}
		if strings.HasPrefix(r, "PUT ") && strings.Contains(strings.SplitN(r, "\n", 2)[0], "/send/m.room.message/") {
			t.Errorf("a client sent an unencrypted m.room.message")
		}
	}
}

// received is a room message seen by a client, after decryption.
type received struct {
	Room, Sender, Body string
	Encrypted          bool
}

// syncBuffer is a goroutine-safe log sink, dumped when a test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 4<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// nioDevice is a matrix-nio device run by ../clients/nio/driver.py (JSON
// commands on stdin, replies and events on stdout).
type nioDevice struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	done   chan struct{}

	mu      sync.Mutex
	nextID  int
	pending map[int]chan map[string]any
	msgs    []received
	changed chan struct{}

	UserID, DeviceID string
}

func startNio(t *testing.T, hs *homeserver, name string) *nioDevice {
	t.Helper()
	py := testenv.NioPython(t)
	store := filepath.Join(t.TempDir(), "nio-store")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	d := &nioDevice{t: t, name: name, stderr: &syncBuffer{}, done: make(chan struct{}),
		pending: map[int]chan map[string]any{}, changed: make(chan struct{})}
	d.cmd = exec.Command(py, filepath.Join("..", "clients", "nio", "driver.py"), hs.URL, store)
	d.cmd.Stderr = d.stderr
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go d.read(stdout)
	t.Cleanup(func() {
		d.stdin.Close() // the driver quits at end of input
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		d.cmd.Wait()
		if t.Failed() {
			t.Logf("%s (%s %s) stderr:\n%s", name, d.UserID, d.DeviceID, testenv.Tail([]byte(d.stderr.String()), 16<<10))
		}
	})
	return d
}

func (d *nioDevice) read(r io.Reader) {
	defer close(d.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		d.mu.Lock()
		if idf, ok := m["id"].(float64); ok {
			if ch := d.pending[int(idf)]; ch != nil {
				ch <- m
				delete(d.pending, int(idf))
			}
		} else if m["event"] == "message" {
			d.msgs = append(d.msgs, received{Room: testenv.Str(m["room"]), Sender: testenv.Str(m["sender"]), Body: testenv.Str(m["body"]),
				Encrypted: m["decrypted"] == true})
			close(d.changed)
			d.changed = make(chan struct{})
		}
		d.mu.Unlock()
	}
}

func (d *nioDevice) call(ctx context.Context, cmd string, args map[string]any) map[string]any {
	d.t.Helper()
	d.mu.Lock()
	d.nextID++
	id := d.nextID
	ch := make(chan map[string]any, 1)
	d.pending[id] = ch
	d.mu.Unlock()
	req := map[string]any{"id": id, "cmd": cmd}
	for k, v := range args {
		req[k] = v
	}
	b, _ := json.Marshal(req)
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		d.t.Fatalf("%s: writing %s: %v", d.name, cmd, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	select {
	case m := <-ch:
		if m["ok"] != true {
			d.t.Fatalf("%s: %s: %v", d.name, cmd, m["error"])
		}
		return m
	case <-d.done:
		d.t.Fatalf("%s: driver exited during %s", d.name, cmd)
	case <-ctx.Done():
		d.t.Fatalf("%s: no reply to %s within 45s", d.name, cmd)
	}
	return nil
}

func (d *nioDevice) registerAndLogin(ctx context.Context, hs *homeserver, localpart, password string) {
	d.t.Helper()
	d.call(ctx, "register", map[string]any{"user": localpart, "password": password})
	m := d.call(ctx, "login", map[string]any{"user": "@" + localpart + ":" + hs.ServerName, "password": password, "device_name": d.name})
	d.UserID, d.DeviceID = testenv.Str(m["user_id"]), testenv.Str(m["device_id"])
	if d.UserID == "" || d.DeviceID == "" {
		d.t.Fatalf("%s: login reply without user_id or device_id: %v", d.name, m)
	}
}

func (d *nioDevice) waitMessage(ctx context.Context, room, sender, body string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		d.mu.Lock()
		changed := d.changed
		for _, m := range d.msgs {
			if m.Body == body {
				d.mu.Unlock()
				if m.Room != room || m.Sender != sender || !m.Encrypted {
					d.t.Fatalf("%s got %+v, want an encrypted message in %s from %s", d.name, m, room, sender)
				}
				return
			}
		}
		d.mu.Unlock()
		select {
		case <-changed:
		case <-d.done:
			d.t.Fatalf("%s: driver exited while waiting for %q", d.name, body)
		case <-ctx.Done():
			d.t.Fatalf("%s: timed out after 30s waiting to decrypt %q", d.name, body)
		}
	}
}
