package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary compiles myelind once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "myelind-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "myelind")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// start runs myelind and returns its base URL once it listens. Log lines
// are copied to logs if it is not nil.
func start(t *testing.T, bin, dataDir string, logs chan<- string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--data", dataDir}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if logs != nil {
				select {
				case logs <- sc.Text():
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("myelind did not start")
	}
	return nil, ""
}

func call(t *testing.T, method, u, token string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, u, res.StatusCode, raw)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

// TestDurabilityKill9: an event and a to-device message whose send was
// answered 200 survive kill -9 of the server.
func TestDurabilityKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	cmd, base := start(t, bin, data, nil)
	c := base + "/_matrix/client/v3"
	reg := func(name string) (string, string) {
		r := call(t, "POST", c+"/register", "", map[string]any{"username": name, "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}})
		return r["access_token"].(string), r["device_id"].(string)
	}
	at, _ := reg("alice")
	bt, bdev := reg("bob")
	room := call(t, "POST", c+"/createRoom", at, map[string]any{"preset": "public_chat"})["room_id"].(string)
	call(t, "POST", c+"/rooms/"+url.PathEscape(room)+"/join", bt, map[string]any{})
	var ids []string
	for i := range 20 {
		r := call(t, "PUT", fmt.Sprintf("%s/rooms/%s/send/m.room.message/t%d", c, url.PathEscape(room), i), at, map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("durable %d", i)})
		ids = append(ids, r["event_id"].(string))
	}
	call(t, "PUT", c+"/sendToDevice/m.test/td1", at, map[string]any{"messages": map[string]any{"@bob:localhost": map[string]any{bdev: map[string]any{"n": "durable"}}}})
	// kill -9 right after the last 200.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	_, base = start(t, bin, data, nil)
	c = base + "/_matrix/client/v3"
	r := call(t, "GET", c+"/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=50", bt, nil)
	raw, _ := json.Marshal(r)
	for i, id := range ids {
		if !strings.Contains(string(raw), id) || !strings.Contains(string(raw), fmt.Sprintf("durable %d", i)) {
			t.Errorf("event %d (%s) lost after kill -9", i, id)
		}
	}
	// The same transaction ID after restart returns the same event (idempotency persisted).
	again := call(t, "PUT", fmt.Sprintf("%s/rooms/%s/send/m.room.message/t%d", c, url.PathEscape(room), 19), at, map[string]any{"msgtype": "m.text", "body": "durable 19"})
	if again["event_id"] != ids[19] {
		t.Errorf("txn idempotency lost across restart: %v vs %s", again["event_id"], ids[19])
	}
	s := call(t, "GET", c+"/sync", bt, nil)
	raw, _ = json.Marshal(s)
	if !strings.Contains(string(raw), `"n":"durable"`) {
		t.Errorf("to-device message lost after kill -9: %s", raw)
	}
}

// TestGracefulShutdown: SIGTERM lets an in-flight long-poll finish with a
// response and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"log":{"level":"debug"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1000)
	cmd, base := start(t, bin, filepath.Join(dir, "data"), logs, "--config", cfg)
	c := base + "/_matrix/client/v3"
	r := call(t, "POST", c+"/register", "", map[string]any{"username": "a", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}})
	tok := r["access_token"].(string)
	next := call(t, "GET", c+"/sync", tok, nil)["next_batch"].(string)
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", c+"/sync?timeout=60000&since="+next, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			if res.StatusCode != 200 {
				err = fmt.Errorf("status %d", res.StatusCode)
			}
			res.Body.Close()
		}
		done <- err
	}()
	// Once the handler has started, Shutdown must let it finish. The first
	// sync start logged is the initial sync above; the second is the long-poll.
	deadline := time.After(20 * time.Second)
	for syncs := 0; syncs < 2; {
		select {
		case l := <-logs:
			if strings.Contains(l, `msg="request start"`) && strings.Contains(l, "path=/_matrix/client/v3/sync") {
				syncs++
			}
		case <-deadline:
			t.Fatal("the long-poll never reached the server")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("in-flight sync: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long-poll not released by shutdown")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	if _, err := loadConfig([]string{"--listen", "0.0.0.0:8008"}); err == nil {
		t.Errorf("non-loopback listen without a registration mode was accepted")
	}
	f := filepath.Join(dir, "c.json")
	os.WriteFile(f, []byte(`{"listen":"0.0.0.0:9000","registration":{"mode":"disabled"},"server_name":"example.org"}`), 0o600)
	c, err := loadConfig([]string{"--config", f, "--data", dir})
	if err != nil || c.Listen != "0.0.0.0:9000" || c.ServerName != "example.org" || c.DataDir != dir || c.Registration.Mode != "disabled" {
		t.Errorf("config: %+v %v", c, err)
	}
	os.WriteFile(f, []byte(`{"bogus":1}`), 0o600)
	if _, err := loadConfig([]string{"--config", f}); err == nil {
		t.Errorf("unknown config key accepted")
	}
	// The example config parses and holds the defaults.
	c, err = loadConfig([]string{"--config", filepath.Join("..", "..", "docs", "myelind.example.json")})
	d := defaults()
	d.Registration.Mode = "open"
	if err != nil || c.Listen != d.Listen || c.RateLimit != d.RateLimit || c.MaxRequestBytes != d.MaxRequestBytes || c.MaxUploadBytes != d.MaxUploadBytes {
		t.Errorf("example config: %+v %v", c, err)
	}
	// Signing key: generated once, then stable.
	k1, v1, err := loadSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, v2, err := loadSigningKey(dir)
	if err != nil || v1 != v2 || !k1.Equal(k2) {
		t.Errorf("signing key not stable")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "signing.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %v", fi.Mode())
	}
}
