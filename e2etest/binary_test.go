package e2etest

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// startBinary builds cmd/myelind and runs it on a free port, returning its
// base URL: the wiring of the real binary, not only the in-process API.
func startBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds myelind")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "myelind")
	build := exec.Command("go", "build", "-o", bin, "myelin/cmd/myelind")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build myelind: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--server-name", "bin.test")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`addr=(127\.0\.0\.1:[0-9]+)`)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addr <- m[1]
				sent = true
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(wait):
		t.Fatal("myelind did not say where it listens")
	}
	return ""
}

// TestAgainstBinary runs the two-user exchange against the myelind binary.
func TestAgainstBinary(t *testing.T) {
	hs := startBinary(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	room, err := alice.CreateEncryptedRoom(ctx, "binary", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	alice.send(room, "over the real binary")
	wantFrom(t, bob.text(room, "over the real binary"), alice)
	bob.send(room, "and back")
	wantFrom(t, alice.text(room, "and back"), bob)
}
