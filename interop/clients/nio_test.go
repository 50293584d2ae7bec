package clients

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"myelin/interop/internal/testenv"
)

// driverDevice is one client device run by a driver script in its own
// process (nio/driver.py, jssdk/driver.mjs), spoken to with JSON lines.
type driverDevice struct {
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
	other   []string // undecryptable and sync_failed events, for failure reports
	changed chan struct{}

	UserID, DeviceID string
}

// startNio starts a nio driver process for one device. It stops at cleanup.
func startNio(t *testing.T, hs *homeserver, name string) *driverDevice {
	t.Helper()
	py := testenv.NioPython(t)
	store := filepath.Join(t.TempDir(), "nio-store")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	return startDriver(t, name, py, filepath.Join("nio", "driver.py"), hs.URL, store)
}

// startDriver runs argv as a driver process. It stops at cleanup.
func startDriver(t *testing.T, name string, argv ...string) *driverDevice {
	t.Helper()
	d := &driverDevice{t: t, name: name, stderr: &syncBuffer{}, done: make(chan struct{}),
		pending: map[int]chan map[string]any{}, changed: make(chan struct{})}
	d.cmd = exec.Command(argv[0], argv[1:]...)
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
			d.mu.Lock()
			other := d.other
			d.mu.Unlock()
			t.Logf("%s (%s %s): events %v; stderr:\n%s", name, d.UserID, d.DeviceID, other, testenv.Tail([]byte(d.stderr.String()), 16<<10))
		}
	})
	return d
}

func (d *driverDevice) read(r io.Reader) {
	defer close(d.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			fmt.Fprintf(d.stderr, "unparsable driver output: %q\n", sc.Text())
			continue
		}
		d.mu.Lock()
		if idf, ok := m["id"].(float64); ok {
			if ch := d.pending[int(idf)]; ch != nil {
				ch <- m
				delete(d.pending, int(idf))
			}
		} else {
			switch m["event"] {
			case "message":
				d.msgs = append(d.msgs, received{
					Room: testenv.Str(m["room"]), Sender: testenv.Str(m["sender"]), Body: testenv.Str(m["body"]),
					Encrypted: m["decrypted"] == true,
				})
			default:
				d.other = append(d.other, sc.Text())
			}
			close(d.changed)
			d.changed = make(chan struct{})
		}
		d.mu.Unlock()
	}
}

// redactArgs hides passwords and keys from failure messages.
func redactArgs(args map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range args {
		switch k {
		case "password", "recovery_key":
			v = "REDACTED"
		}
		out[k] = v
	}
	return out
}

// call sends one command and waits for its reply.
func (d *driverDevice) call(ctx context.Context, cmd string, args map[string]any) map[string]any {
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
			d.t.Fatalf("%s: %s %v: %v", d.name, cmd, redactArgs(args), m["error"])
		}
		return m
	case <-d.done:
		d.t.Fatalf("%s: driver exited during %s", d.name, cmd)
	case <-ctx.Done():
		d.t.Fatalf("%s: no reply to %s within 45s", d.name, cmd)
	}
	return nil
}

func (d *driverDevice) register(ctx context.Context, localpart, password string) {
	d.t.Helper()
	d.call(ctx, "register", map[string]any{"user": localpart, "password": password})
}

func (d *driverDevice) login(ctx context.Context, hs *homeserver, localpart, password string) {
	d.t.Helper()
	m := d.call(ctx, "login", map[string]any{"user": "@" + localpart + ":" + hs.ServerName, "password": password, "device_name": d.name})
	d.UserID, d.DeviceID = testenv.Str(m["user_id"]), testenv.Str(m["device_id"])
	if d.UserID == "" || d.DeviceID == "" {
		d.t.Fatalf("%s: login reply without user_id or device_id: %v", d.name, m)
	}
}

func (d *driverDevice) user() string   { return d.UserID }
func (d *driverDevice) device() string { return d.DeviceID }

func (d *driverDevice) createEncryptedRoom(ctx context.Context, invite ...string) string {
	d.t.Helper()
	return testenv.Str(d.call(ctx, "create_room", map[string]any{"invite": invite})["room"])
}

func (d *driverDevice) waitInvited(ctx context.Context, room string) {
	d.t.Helper()
	d.call(ctx, "wait_invited", map[string]any{"room": room})
}

func (d *driverDevice) join(ctx context.Context, room string) {
	d.t.Helper()
	d.call(ctx, "join", map[string]any{"room": room})
}

func (d *driverDevice) waitMember(ctx context.Context, room, user string) {
	d.t.Helper()
	d.call(ctx, "wait_joined", map[string]any{"room": room, "user": user})
}

func (d *driverDevice) waitDevice(ctx context.Context, user, device string) {
	d.t.Helper()
	d.call(ctx, "wait_device", map[string]any{"user": user, "device": device})
}

// send verifies all devices of the room's members, then sends; nio refuses
// to share a room key with unverified devices.
func (d *driverDevice) send(ctx context.Context, room, body string) {
	d.t.Helper()
	m := d.call(ctx, "send", map[string]any{"room": room, "body": body})
	if w, _ := m["workarounds"].([]any); len(w) > 0 {
		d.t.Logf("%s: compatibility workaround used while sending: %v", d.name, w)
	}
}

// waitMessage waits until the device has decrypted a message with body.
func (d *driverDevice) waitMessage(ctx context.Context, room, sender, body string) {
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

// TestNioEncryptedRoom: two matrix-nio users in an encrypted room exchange
// messages both ways, then a second nio device of one user logs in and
// decrypts new messages, and sends one the others decrypt.
func TestNioEncryptedRoom(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	testenv.NioPython(t)
	hs := startHomeserver(t)

	alice := startNio(t, hs, "alice-nio")
	bob := startNio(t, hs, "bob-nio-1")
	alice.register(ctx, "alice", "alice-password")
	bob.register(ctx, "bob", "bob-password")
	alice.login(ctx, hs, "alice", "alice-password")
	bob.login(ctx, hs, "bob", "bob-password")

	room := alice.createEncryptedRoom(ctx, bob.user())
	bob.waitInvited(ctx, room)
	bob.join(ctx, room)
	alice.waitMember(ctx, room, bob.user())

	alice.send(ctx, room, "hello bob, from alice (nio)")
	bob.waitMessage(ctx, room, alice.user(), "hello bob, from alice (nio)")
	bob.send(ctx, room, "hello alice, from bob (nio)")
	alice.waitMessage(ctx, room, bob.user(), "hello alice, from bob (nio)")

	bob2 := startNio(t, hs, "bob-nio-2")
	bob2.login(ctx, hs, "bob", "bob-password")
	if bob2.device() == bob.device() {
		t.Fatalf("second login reused device %s", bob.device())
	}
	bob2.waitMember(ctx, room, bob.user())
	alice.waitDevice(ctx, bob.user(), bob2.device())
	bob.waitDevice(ctx, bob.user(), bob2.device())

	alice.send(ctx, room, "nio: second message from alice")
	bob2.waitMessage(ctx, room, alice.user(), "nio: second message from alice")
	bob.waitMessage(ctx, room, alice.user(), "nio: second message from alice")
	bob2.waitDevice(ctx, bob.user(), bob.device())
	bob2.send(ctx, room, "nio: bob's second device speaking")
	alice.waitMessage(ctx, room, bob.user(), "nio: bob's second device speaking")
	bob.waitMessage(ctx, room, bob.user(), "nio: bob's second device speaking")

	assertNoPlaintext(t, hs, "hello bob, from alice (nio)", "hello alice, from bob (nio)",
		"nio: second message from alice", "nio: bob's second device speaking")
}

// TestMautrixAndNio: a mautrix-go user and a matrix-nio user in one encrypted
// room, created by nio; each decrypts the other's messages, also after
// mautrix adds a second device.
func TestMautrixAndNio(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	testenv.NioPython(t)
	hs := startHomeserver(t)

	carol := startNio(t, hs, "carol-nio")
	carol.register(ctx, "carol", "carol-password")
	carol.login(ctx, hs, "carol", "carol-password")
	mxRegister(ctx, t, hs, "dave", "dave-password")
	dave := mxLogin(ctx, t, hs, "dave", "dave-password", "dave-mautrix-1")

	room := carol.createEncryptedRoom(ctx, dave.user())
	dave.waitInvited(ctx, room)
	dave.join(ctx, room)
	carol.waitMember(ctx, room, dave.user())

	carol.send(ctx, room, "from nio to mautrix")
	dave.waitMessage(ctx, room, carol.user(), "from nio to mautrix")
	dave.send(ctx, room, "from mautrix to nio")
	carol.waitMessage(ctx, room, dave.user(), "from mautrix to nio")

	dave2 := mxLogin(ctx, t, hs, "dave", "dave-password", "dave-mautrix-2")
	dave2.waitMember(ctx, room, dave.user())
	carol.waitDevice(ctx, dave.user(), dave2.device())
	dave.waitDevice(ctx, dave.user(), dave2.device())
	carol.send(ctx, room, "from nio to both mautrix devices")
	dave2.waitMessage(ctx, room, carol.user(), "from nio to both mautrix devices")
	dave.waitMessage(ctx, room, carol.user(), "from nio to both mautrix devices")
	dave2.send(ctx, room, "from the second mautrix device to nio")
	carol.waitMessage(ctx, room, dave.user(), "from the second mautrix device to nio")

	assertNoPlaintext(t, hs, "from nio to mautrix", "from mautrix to nio",
		"from nio to both mautrix devices", "from the second mautrix device to nio")
}
