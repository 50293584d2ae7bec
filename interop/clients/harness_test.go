package clients

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/goolm"
	"maunium.net/go/mautrix/crypto/olm"

	"myelin/interop/internal/testenv"
)

// myelindBin is the myelind binary built once by TestMain.
var myelindBin string

func init() {
	// mautrix v0.32.0 selects libolm unless built with the goolm tag; the
	// scenarios use goolm (pure Go), registered after mautrix's own init.
	goolm.Register()
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "myelind-clients-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clients:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin := os.Getenv("MYELIND_BIN"); bin != "" {
		// A prebuilt myelind, for example to bisect a server change.
		myelindBin = bin
		return m.Run()
	}
	myelindBin = filepath.Join(dir, "myelind")
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "clients:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", myelindBin, "./cmd/myelind")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "clients: building myelind:", err)
		return 1
	}
	return m.Run()
}

// repoRoot finds the myelin module root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module myelin\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("clients: myelin module root not found above the working directory")
		}
		dir = parent
	}
}

// homeserver is a myelind process with a recording proxy in front of it.
type homeserver struct {
	URL        string // the proxy; clients talk to this
	ServerName string
	rec        *recorder
}

// startHomeserver starts myelind on a free port with a fresh data directory
// and stops it at cleanup. On failure it dumps the HTTP exchanges and the
// server log.
func startHomeserver(t *testing.T) *homeserver {
	t.Helper()
	if olm.Driver != "goolm" {
		t.Fatalf("mautrix olm driver is %q, want goolm", olm.Driver)
	}
	dir := t.TempDir()
	cfg := map[string]any{
		"server_name": "localhost",
		"log":         map[string]any{"level": "info", "format": "text"},
		// Several clients share 127.0.0.1; the limits are not under test here.
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
	rec := &recorder{}
	// The free port can be taken by someone else before myelind binds it
	// (tests run in parallel): then myelind exits and we try another.
	var direct string
	for attempt := 1; ; attempt++ {
		var ok bool
		direct, ok = launchMyelind(t, dir, cfgPath, attempt, rec)
		if ok {
			break
		}
		if attempt == 3 {
			t.Fatal("myelind exited before answering /versions three times")
		}
	}
	target, _ := url.Parse(direct)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	srv := httptest.NewServer(rec.wrap(proxy))
	t.Cleanup(srv.Close)
	return &homeserver{URL: srv.URL, ServerName: "localhost", rec: rec}
}

// launchMyelind starts one myelind process and waits until it answers
// /versions. It reports false if the process exited first.
func launchMyelind(t *testing.T, dir, cfgPath string, attempt int, rec *recorder) (string, bool) {
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
			b, _ := os.ReadFile(logPath)
			t.Logf("myelind exited before answering /versions (attempt %d):\n%s", attempt, testenv.Tail(b, 4<<10))
			return "", false
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("myelind did not answer /_matrix/client/versions within 30s: %v", err)
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
		if t.Failed() || os.Getenv("CLIENTS_DUMP") != "" {
			rec.dump(t)
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("myelind log (last 8 KiB):\n%s", testenv.Tail(b, 8<<10))
			}
		}
	})
	return direct, true
}

// exchange is one recorded HTTP request and its response.
type exchange struct {
	When     time.Time
	Method   string
	Path     string
	ReqBody  string
	Status   int
	RespBody string
	Dur      time.Duration
}

// recorder keeps the last exchanges passing through the proxy.
type recorder struct {
	mu  sync.Mutex
	log []exchange
}

const (
	maxRecorded = 400
	maxBodyLog  = 3000
)

type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *captureWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len() < maxBodyLog {
		w.body.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *captureWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		var reqBody []byte
		if req.Body != nil {
			reqBody, _ = io.ReadAll(io.LimitReader(req.Body, 16<<20))
			req.Body.Close()
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		cw := &captureWriter{ResponseWriter: w}
		h.ServeHTTP(cw, req)
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.log) >= maxRecorded {
			r.log = r.log[1:]
		}
		r.log = append(r.log, exchange{
			When: start, Method: req.Method, Path: redactToken(req.URL.RequestURI()),
			ReqBody: clip(passwordField.ReplaceAllString(string(reqBody), `"password":"REDACTED"`)), Status: cw.status, RespBody: clip(cw.body.String()),
			Dur: time.Since(start),
		})
	})
}

// find returns the recorded exchanges whose path contains substr.
func (r *recorder) find(substr string) []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exchange
	for _, e := range r.log {
		if strings.Contains(e.Path, substr) {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) dump(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sb strings.Builder
	for _, e := range r.log {
		fmt.Fprintf(&sb, "%s %s %s (%s) -> %d\n", e.When.Format("15:04:05.000"), e.Method, e.Path, e.Dur.Round(time.Millisecond), e.Status)
		if e.ReqBody != "" {
			fmt.Fprintf(&sb, "  > %s\n", e.ReqBody)
		}
		fmt.Fprintf(&sb, "  < %s\n", e.RespBody)
	}
	t.Logf("HTTP exchanges through the proxy (oldest first, last %d):\n%s", len(r.log), sb.String())
}

var passwordField = regexp.MustCompile(`"password"\s*:\s*"(?:[^"\\]|\\.)*"`)

func clip(s string) string {
	if len(s) > maxBodyLog {
		return s[:maxBodyLog] + "...(clipped)"
	}
	return s
}

func redactToken(uri string) string {
	if i := strings.Index(uri, "access_token="); i >= 0 {
		j := strings.IndexByte(uri[i:], '&')
		if j < 0 {
			return uri[:i] + "access_token=REDACTED"
		}
		return uri[:i] + "access_token=REDACTED" + uri[i+j:]
	}
	return uri
}
