package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%g = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
}

func TestCanonicalAndSign(t *testing.T) {
	obj := map[string]any{"z": "1", "a": map[string]any{"b": []string{"x<&>"}}, "m": "é"}
	got, err := canonical(obj)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":{"b":["x<&>"]},"m":"é","z":"1"}`; string(got) != want {
		t.Fatalf("canonical = %s, want %s", got, want)
	}
	s := &session{UserID: "@u:localhost", DeviceID: "DEV"}
	body, err := keysUpload(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	dk := body["device_keys"].(map[string]any)
	pub, _ := base64.RawStdEncoding.DecodeString(dk["keys"].(map[string]any)["ed25519:DEV"].(string))
	sig, _ := base64.RawStdEncoding.DecodeString(dk["signatures"].(map[string]any)["@u:localhost"].(map[string]any)["ed25519:DEV"].(string))
	unsigned := map[string]any{}
	for k, v := range dk {
		if k != "signatures" {
			unsigned[k] = v
		}
	}
	cj, _ := canonical(unsigned)
	if !ed25519.Verify(pub, cj, sig) {
		t.Fatal("device_keys self-signature does not verify")
	}
	cj[len(cj)-2] ^= 1
	if ed25519.Verify(pub, cj, sig) {
		t.Fatal("signature verifies over altered JSON")
	}
	if n := len(body["one_time_keys"].(map[string]any)); n != 3 {
		t.Fatalf("%d one-time keys", n)
	}
}

func TestProcSelf(t *testing.T) {
	pid := os.Getpid()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := procCPU(pid); err != nil {
		t.Fatal(err)
	}
	rss, hwm, err := procMem(pid)
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("rss %d hwm %d err %v", rss, hwm, err)
	}
	s := startSampler(pid)
	r := s.finish()
	if r.RSSMaxMiB <= 0 || r.HWMMiB <= 0 {
		t.Fatalf("sampler: %+v", r)
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"42 (my prog) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000 200", 3.25, true},
		{"42 (a) b)) R 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 100 1000 200", 0.03, true},
		{"42 (x) S 1 2", 0, false},
		{"no paren", 0, false},
		{"42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 -5 75 0", 0, false},
	} {
		got, err := parseStat([]byte(tc.in))
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("parseStat(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (my prog) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000 200"))
	f.Add([]byte("1 ()) ) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := parseStat(b); err == nil && v < 0 {
			t.Fatalf("negative CPU time %v", v)
		}
	})
}

func TestRefusesRemote(t *testing.T) {
	for _, hs := range []string{"http://192.0.2.1:8008", "http://example.org", "ftp://127.0.0.1"} {
		var out, errw bytes.Buffer
		if err := run(context.Background(), []string{"--hs", hs}, &out, &errw); err == nil {
			t.Errorf("%s accepted", hs)
		}
	}
}

func TestCompare(t *testing.T) {
	a := &Report{Label: "ours", PID: 1, RSSMaxMiB: 50, Scenarios: []*Result{{Name: "send_plain", Metrics: []Metric{{Name: "events_per_s", Value: 300, Unit: "1/s", Better: "higher"}}}}}
	b := &Report{Label: "theirs", PID: 1, RSSMaxMiB: 400, Scenarios: []*Result{{Name: "send_plain", Metrics: []Metric{{Name: "events_per_s", Value: 29, Unit: "1/s", Better: "higher"}}}}}
	var w bytes.Buffer
	printCompare(&w, a, b)
	out := w.String()
	for _, want := range []string{"events_per_s", "10.3x", "target >=10x: met", "target <=1/4: met"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
	b.Scenarios[0].Metrics[0].Value = 31
	w.Reset()
	printCompare(&w, a, b)
	if !strings.Contains(w.String(), "MISSED") {
		t.Errorf("9.7x not reported as missed:\n%s", w.String())
	}
}

// startMyelind builds and starts cmd/myelind on a free loopback port with rate
// limits off, and returns its base URL and PID.
func startMyelind(t *testing.T) (string, int) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain to build myelind")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "myelind")
	build := exec.Command(gobin, "build", "-o", bin, "myelin/cmd/myelind")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build myelind: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "cfg.json")
	if err := os.WriteFile(cfg, []byte(`{"rate_limit":{"per_user":{"rate":0,"burst":0},"per_ip":{"rate":0,"burst":0}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addrRe := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := addrRe.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
	}()
	select {
	case addr := <-found:
		return "http://" + addr, cmd.Process.Pid
	case <-time.After(60 * time.Second):
		t.Fatal("myelind did not report its listening address")
	}
	return "", 0
}

// TestScenariosTiny runs every scenario at tiny scale against a real myelind,
// proving the tool works end to end. Scenarios the server does not support
// yet are reported as skipped.
func TestScenariosTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	hs, pid := startMyelind(t)
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--hs", hs, "--pid", strconv.Itoa(pid), "--label", "myelind", "--out", out,
		"--reg-users", "3", "--reg-conc", "2", "--senders", "2", "--per-sender", "3",
		"--receivers", "2", "--e2e-messages", "3", "--e2e-rate", "50",
		"--devices", "6", "--device-users", "2", "--otks", "2", "--upload-conc", "3", "--login-conc", "2",
		"--rooms", "2", "--room-members", "3", "--room-conc", "2", "--scenario-timeout", "2m"}
	err := run(context.Background(), args, &stdout, &stderr)
	t.Logf("table:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rep.Scenarios {
		names[r.Name] = true
		if r.Skipped != "" {
			t.Logf("scenario %s skipped: %s", r.Name, r.Skipped)
			continue
		}
		if r.Error != "" {
			t.Errorf("scenario %s: %s", r.Name, r.Error)
		}
		if len(r.Metrics) == 0 {
			t.Errorf("scenario %s: no metrics", r.Name)
		}
		if r.Server == nil || r.Server.RSSMaxMiB <= 0 {
			t.Errorf("scenario %s: no server measurements", r.Name)
		}
	}
	for _, n := range []string{"registration", "rooms", "send_plain", "send_encrypted", "sync_latency", "keys_upload", "keys_query", "keys_claim", "to_device"} {
		if !names[n] {
			t.Errorf("scenario %s missing from the report", n)
		}
	}
}
