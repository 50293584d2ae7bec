package e2ee_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	mxolm "maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/event"
	mxid "maunium.net/go/mautrix/id"

	"myelin/client"
	"myelin/e2ee"
	"myelin/interop/internal/testenv"
)

// mxDevice is a logged-in mautrix-go device (goolm crypto, memory stores)
// syncing in the background.
type mxDevice struct {
	t      *testing.T
	cli    *mautrix.Client
	helper *cryptohelper.CryptoHelper
	logBuf *syncBuffer
	mu     sync.Mutex
	msgs   []received
	cancel context.CancelFunc
	done   chan struct{}
}

func mxRegisterLogin(ctx context.Context, t *testing.T, hs *homeserver, localpart, password string) *mxDevice {
	t.Helper()
	if mxolm.Driver != "goolm" {
		t.Fatalf("mautrix olm driver is %q, want goolm", mxolm.Driver)
	}
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: localpart, Password: password, InhibitLogin: true}); err != nil {
		t.Fatalf("mautrix: register %s: %v", localpart, err)
	}
	d := &mxDevice{t: t, cli: cli, logBuf: &syncBuffer{}, done: make(chan struct{})}
	cli.Log = zerolog.New(d.logBuf).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:   password, InitialDeviceDisplayName: localpart + "-mautrix", StoreCredentials: true,
	}); err != nil {
		t.Fatalf("mautrix: login %s: %v", localpart, err)
	}
	cli.StateStore = mautrix.NewMemoryStateStore()
	helper, err := cryptohelper.NewCryptoHelper(cli, []byte("myelin interop pickle key"), crypto.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Init(ctx); err != nil {
		t.Fatalf("mautrix: crypto init: %v", err)
	}
	cli.Crypto = helper
	d.helper = helper
	syncer := cli.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnEvent(cli.StateStoreSyncHandler)
	syncer.OnEventType(event.EventMessage, func(ctx context.Context, evt *event.Event) {
		d.mu.Lock()
		d.msgs = append(d.msgs, received{Room: evt.RoomID.String(), Sender: evt.Sender.String(),
			Body: evt.Content.AsMessage().Body, Encrypted: evt.Mautrix.WasEncrypted})
		d.mu.Unlock()
	})
	syncCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		defer close(d.done)
		if err := cli.SyncWithContext(syncCtx); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(d.logBuf, "sync loop ended: %v\n", err)
		}
	}()
	t.Cleanup(func() {
		d.cancel()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("mautrix: sync loop did not stop")
		}
		d.helper.Close()
		if t.Failed() {
			t.Logf("mautrix log of %s:\n%s", cli.UserID, testenv.Tail([]byte(d.logBuf.String()), 16<<10))
		}
	})
	return d
}

func (d *mxDevice) user() string { return d.cli.UserID.String() }

func (d *mxDevice) waitMessage(ctx context.Context, room, sender, body string) {
	d.t.Helper()
	var got received
	testenv.WaitFor(ctx, d.t, "mautrix to decrypt "+fmt.Sprintf("%q", body), 30*time.Second, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, m := range d.msgs {
			if m.Body == body {
				got = m
				return true
			}
		}
		return false
	})
	if got.Room != room || got.Sender != sender || !got.Encrypted {
		d.t.Fatalf("mautrix got %+v, want an encrypted message in %s from %s", got, room, sender)
	}
}

// myelinDevice is a myelin client (package client) with its sync loop.
type myelinDevice struct {
	t      *testing.T
	c      *client.Client
	mu     sync.Mutex
	events []client.Event
}

func myelinRegister(ctx context.Context, t *testing.T, hs *homeserver, localpart, password string, policy e2ee.TrustPolicy) *myelinDevice {
	t.Helper()
	d := &myelinDevice{t: t}
	c, err := client.Register(ctx, hs.URL, localpart, password, client.Options{
		Policy:      policy,
		SyncTimeout: 2 * time.Second,
		OnEvent: func(ev client.Event) {
			d.mu.Lock()
			d.events = append(d.events, ev)
			d.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("myelin: register %s: %v", localpart, err)
	}
	d.c = c
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	return d
}

// waitMessage waits for a decrypted m.room.message with body and checks its
// provenance.
func (d *myelinDevice) waitMessage(ctx context.Context, room, sender, body string, trust e2ee.Trust) {
	d.t.Helper()
	var got *client.Event
	testenv.WaitFor(ctx, d.t, "myelin to decrypt "+fmt.Sprintf("%q", body), 30*time.Second, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, ev := range d.events {
			if ev.Err != nil || ev.Event.Type != "m.room.message" {
				continue
			}
			var c struct {
				Body string `json:"body"`
			}
			json.Unmarshal(ev.Event.Content, &c)
			if c.Body == body {
				got = &d.events[i]
				return true
			}
		}
		return false
	})
	if got.RoomID != room || got.Event.Sender != sender || !got.Encrypted {
		d.t.Fatalf("myelin got %s in %s from %s (encrypted %v), want an encrypted message in %s from %s",
			body, got.RoomID, got.Event.Sender, got.Encrypted, room, sender)
	}
	if got.Provenance.Trust != trust || got.Provenance.SenderUser != sender {
		d.t.Fatalf("myelin: provenance of %q is %v from %s, want %v from %s", body, got.Provenance.Trust, got.Provenance.SenderUser, trust, sender)
	}
}

// waitHidden waits until an encrypted event of sender is delivered as
// hidden by the trust policy (UTDInsecureDeviceHidden) and checks that no
// event of sender was shown.
func (d *myelinDevice) waitHidden(ctx context.Context, room, sender string) {
	d.t.Helper()
	testenv.WaitFor(ctx, d.t, "myelin to hide the message of "+sender, 30*time.Second, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, ev := range d.events {
			var u *e2ee.UTDError
			if ev.RoomID == room && ev.Raw.Sender == sender && errors.As(ev.Err, &u) && u.Reason == e2ee.UTDInsecureDeviceHidden {
				return true
			}
		}
		return false
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ev := range d.events {
		if ev.Raw.Sender == sender && ev.Err == nil && ev.Event.Type == "m.room.message" {
			d.t.Errorf("strict myelin client showed a message of %s, whose device is not cross-signed", sender)
		}
	}
}

func (d *myelinDevice) undecryptable() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, ev := range d.events {
		if ev.Err != nil && !ev.Retried {
			out = append(out, fmt.Sprintf("%s from %s: %v", ev.Raw.EventID, ev.Raw.Sender, ev.Err))
		}
	}
	return out
}

// waitJoined waits until the myelin client's room shows users joined.
func (d *myelinDevice) waitJoined(ctx context.Context, room string, users ...string) {
	d.t.Helper()
	testenv.WaitFor(ctx, d.t, fmt.Sprintf("myelin to see %v joined", users), 30*time.Second, func() bool {
		r, ok := d.c.Room(room)
		if !ok {
			return false
		}
		for _, u := range users {
			if r.Members[u] != "join" {
				return false
			}
		}
		return true
	})
}

// TestThreeClientsOneRoom: a myelin client, a mautrix-go client (goolm) and
// a matrix-nio client in one encrypted room created by myelin on a myelind
// started by the test; each sends one message and each decrypts the two
// others'. No message body reaches the server in plaintext.
//
// mautrix-go and nio do not cross-sign their devices here, so the myelin
// client that talks with them uses e2ee.PermissivePolicy: the strict default
// would withhold room keys from them (m.unverified) and hide their messages.
// A second myelin user with the strict default is in the room to show
// exactly that: it reads the myelin message (cross-signed, pinned) and gets
// the others' as UTDInsecureDeviceHidden.
func TestThreeClientsOneRoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	testenv.NioPython(t) // skips (or fails under CI) before starting anything
	hs := startHomeserver(t)

	alice := myelinRegister(ctx, t, hs, "alice", "alice-password", e2ee.PermissivePolicy())
	dave := myelinRegister(ctx, t, hs, "dave", "dave-password", e2ee.StrictPolicy())
	bob := mxRegisterLogin(ctx, t, hs, "bob", "bob-password")
	carol := startNio(t, hs, "carol-nio")
	carol.registerAndLogin(ctx, hs, "carol", "carol-password")

	room, err := alice.c.CreateEncryptedRoom(ctx, "interop", []string{bob.user(), carol.UserID, dave.c.UserID()})
	if err != nil {
		t.Fatalf("myelin: create room: %v", err)
	}
	testenv.WaitFor(ctx, t, "mautrix to see the invite", 30*time.Second, func() bool {
		return bob.cli.StateStore.IsInvited(ctx, mxid.RoomID(room), bob.cli.UserID)
	})
	if _, err := bob.cli.JoinRoomByID(ctx, mxid.RoomID(room)); err != nil {
		t.Fatalf("mautrix: join: %v", err)
	}
	carol.call(ctx, "wait_invited", map[string]any{"room": room})
	carol.call(ctx, "join", map[string]any{"room": room})
	testenv.WaitFor(ctx, t, "the strict myelin client to see the invite", 30*time.Second, func() bool {
		r, ok := dave.c.Room(room)
		return ok && r.Membership == "invite"
	})
	if err := dave.c.Join(ctx, room); err != nil {
		t.Fatalf("myelin (strict): join: %v", err)
	}
	alice.waitJoined(ctx, room, bob.user(), carol.UserID, dave.c.UserID())
	testenv.WaitFor(ctx, t, "mautrix to see everyone joined and the room encrypted", 30*time.Second, func() bool {
		enc, _ := bob.cli.StateStore.IsEncrypted(ctx, mxid.RoomID(room))
		return enc && bob.cli.StateStore.IsInRoom(ctx, mxid.RoomID(room), mxid.UserID(carol.UserID)) &&
			bob.cli.StateStore.IsInRoom(ctx, mxid.RoomID(room), mxid.UserID(alice.c.UserID()))
	})
	carol.call(ctx, "wait_joined", map[string]any{"room": room, "user": bob.user()})
	carol.call(ctx, "wait_joined", map[string]any{"room": room, "user": alice.c.UserID()})

	const fromMyelin, fromMautrix, fromNio = "myelin says hello to mautrix and nio", "mautrix says hello to myelin and nio", "nio says hello to myelin and mautrix"
	if _, err := alice.c.SendText(ctx, room, fromMyelin); err != nil {
		t.Fatalf("myelin: send: %v", err)
	}
	bob.waitMessage(ctx, room, alice.c.UserID(), fromMyelin)
	carol.waitMessage(ctx, room, alice.c.UserID(), fromMyelin)
	dave.waitMessage(ctx, room, alice.c.UserID(), fromMyelin, e2ee.TrustCrossSignedPinned)

	if _, err := bob.cli.SendText(ctx, mxid.RoomID(room), fromMautrix); err != nil {
		t.Fatalf("mautrix: send: %v", err)
	}
	alice.waitMessage(ctx, room, bob.user(), fromMautrix, e2ee.TrustUnverifiedDevice)
	carol.waitMessage(ctx, room, bob.user(), fromMautrix)

	carol.call(ctx, "send", map[string]any{"room": room, "body": fromNio})
	alice.waitMessage(ctx, room, carol.UserID, fromNio, e2ee.TrustUnverifiedDevice)
	bob.waitMessage(ctx, room, carol.UserID, fromNio)

	dave.waitHidden(ctx, room, bob.user())
	dave.waitHidden(ctx, room, carol.UserID)

	if utd := alice.undecryptable(); len(utd) > 0 {
		t.Errorf("myelin could not decrypt: %v", utd)
	}
	assertNoPlaintext(t, hs, fromMyelin, fromMautrix, fromNio)
}
