package e2ee_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/goolm"
	mxolm "maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/event"
	mxid "maunium.net/go/mautrix/id"

	"myelin/e2ee"
)

func init() {
	// mautrix v0.32.0 selects libolm unless built with the goolm tag; the
	// comparison is with goolm (pure Go), registered over it here.
	goolm.Register()
}

const shareUsers, sharePerUser = 100, 10

// shareFixture is 1,000 cross-signed devices (100 users x 10) with one
// signed one-time key each, and the claim response for all of them.
type shareFixture struct {
	srv       *keyServer
	room      string
	members   []string
	claimResp []byte
}

func newShareFixture(b *testing.B) *shareFixture {
	f := &shareFixture{srv: newKeyServer(b), room: "!big:hs"}
	for u := range shareUsers {
		user := fmt.Sprintf("@u%03d:hs", u)
		f.members = append(f.members, user)
		for d := range sharePerUser {
			f.srv.addPassiveDevice(user, fmt.Sprintf("DEV%02d", d))
		}
	}
	q := map[string]map[string]string{}
	for _, u := range f.members {
		q[u] = map[string]string{}
		for d := range f.srv.devices[u] {
			q[u][d] = "signed_curve25519"
		}
	}
	body, _ := json.Marshal(map[string]any{"one_time_keys": q})
	f.claimResp = f.srv.handle("@alice:hs", "ALICE1", e2ee.Request{Type: e2ee.RequestKeysClaim, Body: body})
	return f
}

// BenchmarkShareRoomKey shares a new room key with 1,000 devices from
// scratch, the one-time-key claim response in hand: 1,000 Olm session
// creations, 1,000 Olm encryptions of m.room_key and the /sendToDevice
// body. myelin persists every step in its (memory) store; mautrix-go keeps
// its MemoryStore and posts the body to an in-memory httptest server.
func BenchmarkShareRoomKey(b *testing.B) {
	f := newShareFixture(b)
	name := fmt.Sprintf("devices=%d", shareUsers*sharePerUser)
	b.Run("impl=myelin/"+name, func(b *testing.B) { benchShareMyelin(b, f) })
	b.Run("impl=mautrix/"+name, func(b *testing.B) { benchShareMautrix(b, f) })
}

func benchShareMyelin(b *testing.B, f *shareFixture) {
	ctx := context.Background()
	a := f.srv.newPeer("@alice:hs", "ALICE1")
	a.sync(roomState(f.room, append([]string{a.user}, f.members...)...))
	a.flush()
	snapshot := cloneStore(b, a.store)
	b.ReportAllocs()
	var cpu time.Duration
	var bodyBytes, n int
	for b.Loop() {
		b.StopTimer()
		a.store = cloneStore(b, snapshot)
		a.open()
		c0 := cpuTime()
		b.StartTimer()
		if _, err := a.m.Encrypt(ctx, f.room, "m.room.message", json.RawMessage(`{"body":"x"}`)); !errors.Is(err, e2ee.ErrNotReady) {
			b.Fatalf("first Encrypt: %v", err)
		}
		reqs, err := a.m.Outgoing(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range reqs {
			if r.Type == e2ee.RequestKeysClaim {
				if _, err := a.m.MarkSent(ctx, r.ID, f.claimResp); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := a.m.Encrypt(ctx, f.room, "m.room.message", json.RawMessage(`{"body":"x"}`)); err != nil {
			b.Fatalf("Encrypt after claim: %v", err)
		}
		if reqs, err = a.m.Outgoing(ctx); err != nil {
			b.Fatal(err)
		}
		bodyBytes, n = 0, 0
		for _, r := range reqs {
			if r.Type == e2ee.RequestSendToDevice && r.EventType == "m.room.encrypted" {
				bodyBytes += len(r.Body)
				n += strings.Count(string(r.Body), `"m.olm.v1.curve25519-aes-sha2"`)
			}
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
	}
	if n != shareUsers*sharePerUser {
		b.Fatalf("room key encrypted to %d devices, want %d", n, shareUsers*sharePerUser)
	}
	b.ReportMetric(float64(bodyBytes), "body-bytes")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// fakeHomeserver answers /keys/claim with the prepared response and
// /sendToDevice with {} (counting the body), for mautrix's machine.
func fakeHomeserver(b *testing.B, claimResp []byte, sentBytes, sentDevices *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/keys/claim"):
			w.Write(claimResp)
		case strings.Contains(r.URL.Path, "/sendToDevice/m.room.encrypted/"):
			sentBytes.Add(int64(len(body)))
			sentDevices.Add(int64(strings.Count(string(body), `"m.olm.v1.curve25519-aes-sha2"`)))
			w.Write([]byte(`{}`))
		case strings.Contains(r.URL.Path, "/sendToDevice/"):
			w.Write([]byte(`{}`))
		default:
			b.Errorf("mautrix asked the fake homeserver for %s %s", r.Method, r.URL.Path)
			http.Error(w, `{"errcode":"M_NOT_FOUND"}`, http.StatusNotFound)
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

func newMautrixMachine(b *testing.B, hsURL, user, device string) (*crypto.OlmMachine, *crypto.MemoryStore) {
	cli, err := mautrix.NewClient(hsURL, mxid.UserID(user), "token")
	if err != nil {
		b.Fatal(err)
	}
	cli.DeviceID = mxid.DeviceID(device)
	cli.Log = zerolog.Nop()
	store := crypto.NewMemoryStore(nil)
	nop := zerolog.Nop()
	if os.Getenv("MX_DEBUG") != "" {
		nop = zerolog.New(os.Stderr).Level(zerolog.DebugLevel)
	}
	mach := crypto.NewOlmMachine(cli, &nop, store, mautrix.NewMemoryStateStore().(crypto.StateStore))
	if err := mach.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	// Our own cross-signing keys, as myelin's peers have (mautrix puts the
	// signed device keys into every Olm payload and would ask the server
	// for its own identity otherwise).
	cs, err := mach.GenerateCrossSigningKeys()
	if err != nil {
		b.Fatal(err)
	}
	mach.CrossSigningKeys = cs
	return mach, store
}

// mxDevices converts the key server's devices of user for mautrix's store.
func (s *keyServer) mxDevices(user string) map[mxid.DeviceID]*mxid.Device {
	out := map[mxid.DeviceID]*mxid.Device{}
	for d, k := range s.pub[user] {
		out[mxid.DeviceID(d)] = &mxid.Device{UserID: mxid.UserID(user), DeviceID: mxid.DeviceID(d),
			IdentityKey: mxid.Curve25519(k[0]), SigningKey: mxid.Ed25519(k[1])}
	}
	return out
}

func benchShareMautrix(b *testing.B, f *shareFixture) {
	ctx := context.Background()
	var sentBytes, sentDevices atomic.Int64
	hs := fakeHomeserver(b, f.claimResp, &sentBytes, &sentDevices)
	users := make([]mxid.UserID, len(f.members))
	for i, u := range f.members {
		users[i] = mxid.UserID(u)
	}
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		mach, store := newMautrixMachine(b, hs.URL, "@alice:hs", "ALICE1")
		for _, u := range f.members {
			if err := store.PutDevices(ctx, mxid.UserID(u), f.srv.mxDevices(u)); err != nil {
				b.Fatal(err)
			}
		}
		sentBytes.Store(0)
		sentDevices.Store(0)
		c0 := cpuTime()
		b.StartTimer()
		if err := mach.ShareGroupSession(ctx, mxid.RoomID(f.room), users); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
	}
	if n := sentDevices.Load(); n != shareUsers*sharePerUser {
		b.Fatalf("mautrix encrypted the room key to %d devices, want %d", n, shareUsers*sharePerUser)
	}
	b.ReportMetric(float64(sentBytes.Load()), "body-bytes")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

const backlogSenders, backlogPerSender = 10, 1000

// backlogFixture is 10,000 Megolm events from 10 myelin senders (rotating
// every 100 messages: 100 sessions), the reader that received their room
// keys over Olm, and the same sessions exported for mautrix.
type backlogFixture struct {
	srv     *keyServer
	room    string
	reader  *peer
	senders []*peer
	events  []e2ee.Event
	keys    []e2ee.ExportedRoomKey
}

func newBacklogFixture(b *testing.B) *backlogFixture {
	f := &backlogFixture{srv: newKeyServer(b), room: "!backlog:hs"}
	f.reader = f.srv.newPeer("@reader:hs", "READER")
	members := []string{f.reader.user}
	for i := range backlogSenders {
		p := f.srv.newPeer(fmt.Sprintf("@s%02d:hs", i), "DEV")
		f.senders = append(f.senders, p)
		members = append(members, p.user)
	}
	st := roomState(f.room, members...)
	f.reader.sync(st)
	f.reader.flush()
	for _, p := range f.senders {
		p.sync(st)
		p.flush()
	}
	for i := range backlogPerSender {
		for _, p := range f.senders {
			f.events = append(f.events, p.send(f.room, fmt.Sprintf("message %d from %s", i, p.user)))
		}
	}
	f.reader.sync()
	f.reader.flush()
	if len(f.reader.rejected) != 0 {
		b.Fatalf("reader rejected: %+v", f.reader.rejected[0])
	}
	var err error
	if f.keys, err = f.reader.m.ExportRoomKeys(context.Background()); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkDecryptBacklog decrypts 10,000 Megolm events from 10 senders on
// a device that holds their sessions, checking the replay table for each.
// myelin starts from its store (sessions unpickled) and decrypts page by
// page with DecryptBatch; mautrix-go's DecryptMegolmEvent runs event by
// event (its API has no batch) on its MemoryStore, with the content JSON
// parsed in the loop as its syncer would.
func BenchmarkDecryptBacklog(b *testing.B) {
	f := newBacklogFixture(b)
	name := fmt.Sprintf("events=%d", len(f.events))
	b.Run("impl=myelin/"+name, func(b *testing.B) { benchBacklogMyelin(b, f) })
	b.Run("impl=mautrix/"+name, func(b *testing.B) { benchBacklogMautrix(b, f) })
}

func benchBacklogMyelin(b *testing.B, f *backlogFixture) {
	ctx := context.Background()
	r := f.reader
	snapshot := cloneStore(b, r.store)
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		r.store = cloneStore(b, snapshot)
		r.open()
		c0 := cpuTime()
		b.StartTimer()
		for p := 0; p < len(f.events); p += 100 {
			_, errs, err := r.m.DecryptBatch(ctx, f.room, f.events[p:min(p+100, len(f.events))])
			if err != nil {
				b.Fatal(err)
			}
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(len(f.events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func benchBacklogMautrix(b *testing.B, f *backlogFixture) {
	ctx := context.Background()
	raws := make([][]byte, len(f.events))
	for i, ev := range f.events {
		raws[i] = ev.Content
	}
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		mach, store := newMautrixMachine(b, "http://127.0.0.1:1", "@reader:hs", "READER")
		mach.DisableDecryptKeyFetching = true
		for _, p := range f.senders {
			if err := store.PutDevices(ctx, mxid.UserID(p.user), f.srv.mxDevices(p.user)); err != nil {
				b.Fatal(err)
			}
		}
		for _, k := range f.keys {
			igs, err := mxolm.InboundGroupSessionImport([]byte(k.SessionKey))
			if err != nil {
				b.Fatal(err)
			}
			// A session received directly over Olm (as the myelin reader's).
			s := &crypto.InboundGroupSession{Internal: igs, SigningKey: mxid.Ed25519(k.SenderClaimedKeys["ed25519"]),
				SenderKey: mxid.SenderKey(k.SenderKey), RoomID: mxid.RoomID(k.RoomID), ForwardingChains: []string{},
				KeySource: mxid.KeySourceDirect, ReceivedAt: time.Now()}
			if err := store.PutGroupSession(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		c0 := cpuTime()
		b.StartTimer()
		for i, ev := range f.events {
			evt := &event.Event{Type: event.EventEncrypted, Sender: mxid.UserID(ev.Sender), RoomID: mxid.RoomID(ev.RoomID),
				ID: mxid.EventID(ev.EventID), Timestamp: ev.OriginServerTS, Content: event.Content{VeryRaw: raws[i]}}
			if err := evt.Content.ParseRaw(evt.Type); err != nil {
				b.Fatal(err)
			}
			if _, err := mach.DecryptMegolmEvent(ctx, evt); err != nil {
				b.Fatalf("mautrix: event %d: %v", i, err)
			}
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(len(f.events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
