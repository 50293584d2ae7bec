package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	mid "maunium.net/go/mautrix/id"

	"myelin/e2ee/verification"
	"myelin/id"
)

const verifyRoom = "!verify:example.org"

// roomLog captures the room events mautrix sends (the mock server has no
// room endpoints; this one assigns event IDs and keeps the events in order).
type roomLog struct {
	mu     sync.Mutex
	n      int
	events []*event.Event
}

func (p *pair) addRoom(t *testing.T) *roomLog {
	rl := &roomLog{}
	p.ms.Router.HandleFunc("PUT /_matrix/client/v3/rooms/{roomID}/send/{type}/{txn}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rl.mu.Lock()
		rl.n++
		evt := &event.Event{
			ID:        mid.EventID(fmt.Sprintf("$mautrix%d", rl.n)),
			RoomID:    mid.RoomID(r.PathValue("roomID")),
			Sender:    mid.UserID(mautrixUser),
			Type:      event.Type{Type: r.PathValue("type"), Class: event.MessageEventType},
			Timestamp: time.Now().UnixMilli(),
		}
		if err := json.Unmarshal(b, &evt.Content); err != nil {
			t.Errorf("room event: %v", err)
		}
		rl.events = append(rl.events, evt)
		rl.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"event_id":%q}`, evt.ID)
	})
	return rl
}

// pumpRoom feeds mautrix's room events to myelin and myelin's to mautrix.
func (p *pair) pumpRoom(rl *roomLog, room id.RoomID) {
	p.t.Helper()
	for range 100 {
		rl.mu.Lock()
		if len(rl.events) == 0 {
			rl.mu.Unlock()
			return
		}
		evt := rl.events[0]
		rl.events = rl.events[1:]
		rl.mu.Unlock()
		eid, err := id.ParseEventID(evt.ID.String())
		if err != nil {
			p.t.Fatal(err)
		}
		r, err := p.m.Handle(time.Now(), verification.Incoming{
			Transport: verification.InRoom, Type: evt.Type.Type, Sender: p.mxUser,
			Room: room, EventID: eid, OriginServerTS: time.UnixMilli(evt.Timestamp),
			Content: evt.Content.VeryRaw,
		})
		if err != nil {
			p.t.Logf("myelin did not take mautrix's %s: %v", evt.Type.Type, err)
			continue
		}
		p.roomToMautrix(r, room)
	}
	p.t.Fatal("pumpRoom: no quiescence")
}

// roomToMautrix delivers myelin's room events to mautrix's syncer, as /sync
// would, with fresh event IDs.
func (p *pair) roomToMautrix(r verification.Result, room id.RoomID) {
	p.t.Helper()
	p.results = append(p.results, r)
	for _, out := range r.Send {
		if out.Transport != verification.InRoom || out.Room != room {
			p.t.Fatalf("myelin sends %s via %v to room %s", out.Type, out.Transport, out.Room)
		}
		p.roomN++
		evt := &event.Event{
			ID: mid.EventID(fmt.Sprintf("$myelin%d", p.roomN)), RoomID: mid.RoomID(room.String()),
			Sender: mautrixID(p.user), Type: event.Type{Type: out.Type, Class: event.MessageEventType},
			Timestamp: time.Now().UnixMilli(),
		}
		if err := json.Unmarshal(out.Content, &evt.Content); err != nil {
			p.t.Fatal(err)
		}
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			p.t.Fatalf("mautrix cannot parse myelin's %s: %v", out.Type, err)
		}
		p.mx.Syncer.(*mautrix.DefaultSyncer).Dispatch(p.ctx, evt)
	}
}

// TestSASInRoomWithMautrix: myelin requests in a room, mautrix accepts
// (ready, related to the request), then one side starts SAS.
//
// mautrix-go v0.32.0 cannot continue an in-room flow: its event wrapper
// (crypto/verificationhelper/verificationhelper.go, Init's wrapHandler) takes
// the transaction ID of every in-room verification event from the event's
// OWN event ID instead of m.relates_to.event_id, so every in-room message it
// receives after the request belongs to no known transaction. It then logs
// "unknown transaction ID" and drops the event (the branch meant to answer
// m.unknown_transaction is unreachable: the first condition already matches).
// This test pins that: request, ready and (when mautrix starts) start
// interoperate, and myelin answers mautrix's in-room start with a correct
// accept; mautrix drops myelin's start or accept, so no SAS is shown.
// (mautrix-requested in-room flows are not run: StartInRoomVerification
// always Megolm-encrypts the request, which needs an encrypted room with
// Olm sessions the mock server cannot host.)
func TestSASInRoomWithMautrix(t *testing.T) {
	for _, myelinStarts := range []bool{true, false} {
		t.Run(fmt.Sprintf("myelinStarts=%v", myelinStarts), func(t *testing.T) {
			p := newPair(t)
			rl := p.addRoom(t)
			room, err := id.ParseRoomID(verifyRoom)
			if err != nil {
				t.Fatal(err)
			}
			req := p.m.RequestInRoomContent(room, p.mxUser)
			reqID := "$myelinrequest"
			evt := &event.Event{
				ID: mid.EventID(reqID), RoomID: verifyRoom, Sender: mautrixID(p.user),
				Type: event.EventMessage, Timestamp: time.Now().UnixMilli(),
			}
			if err := json.Unmarshal(req.Content, &evt.Content); err != nil {
				t.Fatal(err)
			}
			if err := evt.Content.ParseRaw(evt.Type); err != nil {
				t.Fatal(err)
			}
			p.mx.Syncer.(*mautrix.DefaultSyncer).Dispatch(p.ctx, evt)
			eid, _ := id.ParseEventID(reqID)
			flow, err := p.m.RequestSentInRoom(time.Now(), room, p.mxUser, eid)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.cb.requested) != 1 || p.cb.requested[0] != mid.VerificationTransactionID(reqID) {
				t.Fatalf("mautrix requests %v, want %s", p.cb.requested, reqID)
			}
			txn := p.cb.requested[0]
			if err := p.helper.AcceptVerification(p.ctx, txn); err != nil {
				t.Fatalf("mautrix AcceptVerification: %v", err)
			}
			p.pumpRoom(rl, room)
			if st, _ := p.m.State(flow); st != verification.Ready {
				t.Fatalf("myelin state %v after mautrix's in-room ready, want ready", st)
			}

			if myelinStarts {
				r, err := p.m.StartSAS(time.Now(), flow)
				if err != nil {
					t.Fatal(err)
				}
				p.roomToMautrix(r, room)
			} else {
				if err := p.helper.StartSAS(p.ctx, txn); err != nil {
					t.Fatalf("mautrix StartSAS: %v", err)
				}
				p.pumpRoom(rl, room) // myelin takes the start and sends accept
				if st, _ := p.m.State(flow); st != verification.Accepted {
					t.Fatalf("myelin state %v after mautrix's in-room start, want accepted", st)
				}
			}
			rl.mu.Lock()
			sent := len(rl.events)
			rl.mu.Unlock()
			p.cb.mu.Lock()
			defer p.cb.mu.Unlock()
			if sent != 0 || len(p.cb.decimals) != 0 || p.cb.cancelled != nil {
				t.Fatalf("mautrix answered (%d events, SAS %v, cancel %v): its in-room transaction-ID bug seems fixed, extend this test to the full flow", sent, p.cb.decimals, p.cb.cancelled)
			}
			t.Logf("mautrix-go bug reproduced: it dropped myelin's in-room %s (looked up under the event's own ID, not the request %s)", map[bool]string{true: "start", false: "accept"}[myelinStarts], reqID)
		})
	}
}
