package e2ee_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"myelin/e2ee"
	"myelin/e2ee/store/memory"
)

var allKinds = []e2ee.Kind{e2ee.KindAccount, e2ee.KindOlmSession, e2ee.KindOlmHash, e2ee.KindInboundGroup,
	e2ee.KindOutboundGroup, e2ee.KindMegolmIndex, e2ee.KindUser, e2ee.KindCurveIndex, e2ee.KindRoom,
	e2ee.KindRequest, e2ee.KindWithheld, e2ee.KindKeyRequest, e2ee.KindPendingOlm, e2ee.KindSecret}

func cloneStore(tb testing.TB, src e2ee.Store) *memory.Store {
	dst := memory.New()
	ch := &e2ee.Changes{}
	for _, k := range allKinds {
		recs, err := src.List(context.Background(), k, "")
		if err != nil {
			tb.Fatal(err)
		}
		ch.Puts = append(ch.Puts, recs...)
	}
	if err := dst.Save(context.Background(), ch); err != nil {
		tb.Fatal(err)
	}
	return dst
}

// BenchmarkShareRoomKey measures sharing a new room key with 1,000 devices
// (100 users x 10 cross-signed devices) from scratch, with the one-time-key
// claim response in hand: 1,000 Olm session creations, 1,000 Olm
// encryptions of m.room_key and the /sendToDevice body, all persisted.
func BenchmarkShareRoomKey(b *testing.B) {
	const users, perUser = 100, 10
	b.Run(fmt.Sprintf("devices=%d", users*perUser), func(b *testing.B) {
		s := newServer(b)
		a := s.newClient("@alice:hs", "ALICE1", e2ee.StrictPolicy())
		room := "!big:hs"
		members := []string{a.user}
		for u := range users {
			user := fmt.Sprintf("@u%03d:hs", u)
			members = append(members, user)
			for d := range perUser {
				s.newAttacker(user, fmt.Sprintf("DEV%02d", d), true)
			}
		}
		a.sync(roomState(room, members...))
		a.flush()
		snapshot := cloneStore(b, a.store)
		// Capture one claim response (reused: every iteration starts from
		// the same snapshot, so it sends the same claim).
		_, err := a.m.Encrypt(context.Background(), room, "m.room.message", json.RawMessage(`{"body":"x"}`))
		if !errors.Is(err, e2ee.ErrNotReady) {
			b.Fatalf("first Encrypt: %v", err)
		}
		var claimResp []byte
		reqs, _ := a.m.Outgoing(context.Background())
		for _, r := range reqs {
			if r.Type == e2ee.RequestKeysClaim {
				claimResp = s.handle(a, r)
			}
		}
		if claimResp == nil {
			b.Fatal("no claim request")
		}
		ctx := context.Background()
		b.ReportAllocs()
		var bodyBytes int
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			a.store = cloneStore(b, snapshot)
			a.open()
			c0 := cpuTime()
			b.StartTimer()
			if _, err := a.m.Encrypt(ctx, room, "m.room.message", json.RawMessage(`{"body":"x"}`)); !errors.Is(err, e2ee.ErrNotReady) {
				b.Fatalf("Encrypt: %v", err)
			}
			reqs, err := a.m.Outgoing(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range reqs {
				if r.Type == e2ee.RequestKeysClaim {
					if _, err := a.m.MarkSent(ctx, r.ID, claimResp); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := a.m.Encrypt(ctx, room, "m.room.message", json.RawMessage(`{"body":"x"}`)); err != nil {
				b.Fatalf("Encrypt after claim: %v", err)
			}
			reqs, err = a.m.Outgoing(ctx)
			if err != nil {
				b.Fatal(err)
			}
			bodyBytes = 0
			n := 0
			for _, r := range reqs {
				if r.Type == e2ee.RequestSendToDevice && r.EventType == "m.room.encrypted" {
					var body struct {
						Messages map[string]map[string]json.RawMessage `json:"messages"`
					}
					json.Unmarshal(r.Body, &body)
					for _, d := range body.Messages {
						n += len(d)
					}
					bodyBytes += len(r.Body)
				}
			}
			b.StopTimer()
			cpu += cpuTime() - c0
			b.StartTimer()
			if n != users*perUser {
				b.Fatalf("room key encrypted to %d devices, want %d", n, users*perUser)
			}
		}
		b.ReportMetric(float64(bodyBytes), "body-bytes")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
}

// BenchmarkDecryptBacklog measures decrypting 10,000 Megolm events from 10
// senders (rotating every 100 messages, so 100 sessions) on a device that
// just started: sessions are loaded from the store, every event is checked
// against and recorded in the replay table.
func BenchmarkDecryptBacklog(b *testing.B) {
	const senders, perSender = 10, 1000
	b.Run(fmt.Sprintf("events=%d", senders*perSender), func(b *testing.B) {
		s := newServer(b)
		r := s.newClient("@reader:hs", "READER", e2ee.StrictPolicy())
		room := "!backlog:hs"
		members := []string{r.user}
		var cs []*client
		for i := range senders {
			c := s.newClient(fmt.Sprintf("@s%02d:hs", i), "DEV", e2ee.StrictPolicy())
			cs = append(cs, c)
			members = append(members, c.user)
		}
		st := roomState(room, members...)
		r.sync(st)
		r.flush()
		for _, c := range cs {
			c.sync(st)
			c.flush()
		}
		var events []e2ee.Event
		for i := range perSender {
			for _, c := range cs {
				events = append(events, c.send(room, fmt.Sprintf("message %d from %s", i, c.user)))
			}
		}
		r.sync()
		r.flush()
		if len(r.rejected) != 0 {
			b.Fatalf("rejections: %+v", r.rejected[0])
		}
		snapshot := cloneStore(b, r.store)
		ctx := context.Background()
		b.ReportAllocs()
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			r.store = cloneStore(b, snapshot)
			r.open()
			c0 := cpuTime()
			b.StartTimer()
			// A client decrypts a backlog page by page.
			for p := 0; p < len(events); p += 100 {
				_, errs, err := r.m.DecryptBatch(ctx, room, events[p:min(p+100, len(events))])
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
		b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
