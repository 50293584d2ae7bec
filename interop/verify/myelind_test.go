package verify

// SAS verification over a real homeserver: myelind's HTTP API (in-process,
// on 127.0.0.1 with a fresh SQLite database), a myelin client (myelin/client
// with its sync loop and Verifier) and a mautrix-go client (goolm crypto,
// cryptohelper, VerificationHelper on its syncer), each syncing on its own.
// The to-device verification messages travel through myelind's
// /sendToDevice and /sync as each client sends them.

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mcrypto "maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/crypto/verificationhelper"
	mid "maunium.net/go/mautrix/id"

	"myelin/client"
	"myelin/e2ee/verification"
	"myelin/server/httpapi"
	"myelin/server/storage/sqlite"
	msync "myelin/server/sync"
)

// netWait bounds every condition the network tests wait for.
const netWait = 20 * time.Second

func startMyelind(t *testing.T) string {
	t.Helper()
	n := msync.NewNotifier()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db.sqlite"), sqlite.Options{Notify: n.Wake})
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{ServerName: "verify.test", Store: st, E2EE: st, Notifier: n, Registration: httpapi.RegistrationOpen})
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

// waitCond polls cond until it holds or netWait passes.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(netWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, netWait)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// waitUpdate waits for a myelin verification update matching pred.
func waitUpdate(t *testing.T, v *client.Verifier, what string, pred func(client.VerificationUpdate) bool) client.VerificationUpdate {
	t.Helper()
	timer := time.NewTimer(netWait)
	defer timer.Stop()
	for {
		select {
		case u := <-v.Updates():
			if u.Cancelled != nil {
				t.Fatalf("myelin: cancelled while waiting for %s: %+v", what, *u.Cancelled)
			}
			if pred(u) {
				return u
			}
		case <-timer.C:
			t.Fatalf("myelin: no %s within %v", what, netWait)
		}
	}
}

type netPair struct {
	alice  *client.Client
	v      *client.Verifier
	bob    *mautrix.Client
	mach   *mcrypto.OlmMachine
	helper *verificationhelper.VerificationHelper
	cb     *callbacks
	bobXS  *mcrypto.CrossSigningKeysCache
}

func newNetPair(t *testing.T) *netPair {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hs := startMyelind(t)
	p := &netPair{cb: &callbacks{}}

	// myelin: registers (and creates its cross-signing keys), then syncs.
	var err error
	if p.alice, err = client.Register(ctx, hs, "alice", "pw-alice", client.Options{SyncTimeout: time.Second}); err != nil {
		t.Fatalf("myelin register: %v", err)
	}
	done := make(chan struct{})
	go func() { p.alice.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if p.v, err = p.alice.Verifier(ctx); err != nil {
		t.Fatal(err)
	}

	// mautrix: registers, logs in with goolm crypto, creates and uploads
	// its cross-signing keys, syncs.
	reg, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "bob", Password: "pw-bob", InhibitLogin: true}); err != nil {
		t.Fatalf("mautrix register: %v", err)
	}
	if p.bob, err = mautrix.NewClient(hs, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p.bob.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"},
		Password:         "pw-bob",
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("mautrix login: %v", err)
	}
	p.bob.StateStore = mautrix.NewMemoryStateStore()
	ch, err := cryptohelper.NewCryptoHelper(p.bob, []byte("myelin interop pickle key"), mcrypto.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Init(ctx); err != nil {
		t.Fatalf("mautrix crypto init: %v", err)
	}
	p.bob.Crypto = ch
	p.mach = ch.Machine()
	if _, p.bobXS, err = p.mach.GenerateAndUploadCrossSigningKeysWithPassword(ctx, "pw-bob", ""); err != nil {
		t.Fatalf("mautrix cross-signing: %v", err)
	}
	p.helper = verificationhelper.NewVerificationHelper(p.bob, p.mach, nil, p.cb, false, false, true)
	if err := p.helper.Init(ctx); err != nil {
		t.Fatal(err)
	}
	p.bob.Syncer.(*mautrix.DefaultSyncer).OnEvent(p.bob.StateStoreSyncHandler)
	mxDone := make(chan struct{})
	go func() { p.bob.SyncWithContext(ctx); close(mxDone) }()
	t.Cleanup(func() { cancel(); <-mxDone })

	// A shared encrypted room, so that myelin tracks bob's devices.
	room, err := p.alice.CreateEncryptedRoom(ctx, "verify", []string{p.bob.UserID.String()})
	if err != nil {
		t.Fatalf("myelin create room: %v", err)
	}
	if _, err := p.bob.JoinRoomByID(ctx, mid.RoomID(room)); err != nil {
		t.Fatalf("mautrix join: %v", err)
	}
	waitCond(t, "myelin learning the mautrix device", func() bool {
		st, err := p.alice.Machine().Identity(ctx, p.bob.UserID.String())
		if err != nil || st == nil {
			return false
		}
		_, ok := st.Devices[p.bob.DeviceID.String()]
		return ok && st.MasterKey != ""
	})
	return p
}

func (p *netPair) cbState(f func(c *callbacks) bool) func() bool {
	return func() bool {
		p.cb.mu.Lock()
		defer p.cb.mu.Unlock()
		return f(p.cb)
	}
}

// TestSASWithMautrixOverMyelind: both directions of the to-device SAS flow
// through myelind. The mautrix user confirms first (see
// errMautrixOwnMasterKey for the other order).
func TestSASWithMautrixOverMyelind(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	for _, myelinRequests := range []bool{true, false} {
		name := map[bool]string{true: "myelin requests", false: "mautrix requests"}[myelinRequests]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p := newNetPair(t)
			var flow verification.FlowRef
			var txn mid.VerificationTransactionID
			if myelinRequests {
				var err error
				flow, err = p.v.RequestToDevice(ctx, p.bob.UserID.String(), []string{p.bob.DeviceID.String()})
				if err != nil {
					t.Fatalf("myelin request: %v", err)
				}
				waitCond(t, "mautrix request", p.cbState(func(c *callbacks) bool { return len(c.requested) == 1 }))
				txn = p.cb.requested[0]
				if err := p.helper.AcceptVerification(ctx, txn); err != nil {
					t.Fatalf("mautrix accept: %v", err)
				}
				waitUpdate(t, p.v, "ready", func(u client.VerificationUpdate) bool { return u.Flow == flow && u.State == verification.Ready })
				if err := p.v.StartSAS(ctx, flow); err != nil {
					t.Fatalf("myelin start: %v", err)
				}
			} else {
				var err error
				txn, err = p.helper.StartVerification(ctx, mid.UserID(p.alice.UserID()))
				if err != nil {
					t.Fatalf("mautrix request: %v", err)
				}
				req := waitUpdate(t, p.v, "request", func(u client.VerificationUpdate) bool { return u.Request != nil })
				if req.Request.From.User.String() != p.bob.UserID.String() || req.Request.From.Device.String() != p.bob.DeviceID.String() {
					t.Fatalf("request from %+v", req.Request.From)
				}
				flow = req.Flow
				if err := p.v.Accept(ctx, flow); err != nil {
					t.Fatalf("myelin accept: %v", err)
				}
				waitCond(t, "mautrix ready", p.cbState(func(c *callbacks) bool { return len(c.ready) == 1 }))
				if err := p.helper.StartSAS(ctx, txn); err != nil {
					t.Fatalf("mautrix start: %v", err)
				}
			}
			if flow.ID != string(txn) {
				t.Fatalf("flow IDs differ: myelin %s, mautrix %s", flow.ID, txn)
			}
			su := waitUpdate(t, p.v, "SAS", func(u client.VerificationUpdate) bool { return u.SAS != nil })
			waitCond(t, "mautrix SAS", p.cbState(func(c *callbacks) bool { return len(c.decimals) == 3 }))
			p.cb.mu.Lock()
			if !slices.Equal(p.cb.decimals, su.SAS.Decimal[:]) || su.SAS.Emoji == nil {
				t.Fatalf("SAS differ: myelin %v, mautrix %v", su.SAS.Decimal, p.cb.decimals)
			}
			for i, e := range su.SAS.Emoji {
				if e.Description != p.cb.descs[i] {
					t.Fatalf("emoji %d: myelin %q, mautrix %q", i, e.Description, p.cb.descs[i])
				}
			}
			p.cb.mu.Unlock()

			if err := p.helper.ConfirmSAS(ctx, txn); err != nil {
				t.Fatalf("mautrix confirm: %v", err)
			}
			if err := p.v.Confirm(ctx, flow); err != nil {
				t.Fatalf("myelin confirm: %v", err)
			}
			ou := waitUpdate(t, p.v, "outcome", func(u client.VerificationUpdate) bool { return u.Outcome != nil })
			if ou.SignErr != nil {
				t.Errorf("myelin signing mautrix's master key: %v", ou.SignErr)
			}
			o := ou.Outcome
			if o.Device == nil || o.Device.PublicKey().String() != p.mach.OwnIdentity().SigningKey.String() || o.Their.Device.String() != p.bob.DeviceID.String() {
				t.Errorf("outcome device %v %v, want mautrix's %s", o.Their, o.Device, p.mach.OwnIdentity().SigningKey)
			}
			if o.MasterKey == nil || o.MasterKey.PublicKey().String() != p.bobXS.MasterKey.PublicKey().String() {
				t.Errorf("outcome master key %v, want mautrix's %s", o.MasterKey, p.bobXS.MasterKey.PublicKey())
			}
			waitCond(t, "mautrix done", p.cbState(func(c *callbacks) bool { return c.done || c.cancelled != nil }))
			if p.cb.cancelled != nil {
				t.Fatalf("mautrix cancelled: %s %s", *p.cb.cancelled, p.cb.reason)
			}
			// The signature upload makes myelin re-query bob's keys; the
			// identity shows as verified once that query has come back.
			waitCond(t, "bob's identity verified in myelin", func() bool {
				st, err := p.alice.Machine().Identity(ctx, p.bob.UserID.String())
				return err == nil && st.Verified
			})
			t.Logf("SAS %v over myelind; myelin verified %s", su.SAS.Decimal, o.MasterKey.PublicKey())
		})
	}
}
