// Package testenv holds the helpers that the interop scenario packages
// (interop/clients, interop/e2ee) share: free loopback ports, deadline-bound
// waits, and finding a Python that can import matrix-nio. Test code only.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Callers retry on another port if it is taken before they bind it.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Tail returns the last n bytes of b (all of b if it is shorter).
func Tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Str returns v if it is a string, else "".
func Str(v any) string {
	s, _ := v.(string)
	return s
}

// WaitFor polls cond every 25 ms until it holds, failing the test after
// timeout (or when ctx ends).
func WaitFor(ctx context.Context, t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

var (
	nioOnce   sync.Once
	nioPython string
	nioWhy    string
)

// NioPython returns a Python interpreter that can import matrix-nio and
// python-olm (pyenv's python3 does not see Debian's packages, so
// /usr/bin/python3 is tried too). Without one the test is skipped, or fails
// when CI is set: CI installs them (scripts/install-client-deps.sh).
func NioPython(t testing.TB) string {
	t.Helper()
	nioOnce.Do(func() {
		for _, py := range []string{"python3", "/usr/bin/python3"} {
			path, err := exec.LookPath(py)
			if err != nil {
				continue
			}
			out, err := exec.Command(path, "-c", "import nio, olm").CombinedOutput()
			if err == nil {
				nioPython = path
				return
			}
			nioWhy += fmt.Sprintf("%s: %v: %s; ", path, err, Tail(out, 300))
		}
	})
	if nioPython == "" {
		msg := "matrix-nio with python-olm not importable (run scripts/install-client-deps.sh): " + nioWhy
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return nioPython
}
