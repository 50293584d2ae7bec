package rooms

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func seedEvents(f *testing.F) {
	r := newRoom(f, V11)
	joinBob(r)
	r.mustSend(bob, "m.room.message", nil, `{"body":"hi","msgtype":"m.text"}`)
	r.mustSend(alice, TypeRedaction, nil, `{"redacts":"`+r.last.ID()+`"}`)
	for _, e := range r.events {
		f.Add(e.JSON())
	}
	for _, s := range []string{
		`{}`, `[]`, `null`, `{"type":"x"}`,
		`{"room_id":"!a:b","sender":"@a:b","type":"t","content":{},"origin_server_ts":1,"depth":1,"prev_events":[],"auth_events":[],"hashes":{},"signatures":{}}`,
		`{"room_id":"!a:b","sender":"@a:b","type":"t","content":{},"origin_server_ts":1.5,"depth":1,"prev_events":[],"auth_events":[],"hashes":{},"signatures":{}}`,
		`{"room_id":"!a:b","sender":"@a:b","type":"m.room.redaction","redacts":7,"content":{"redacts":[]},"origin_server_ts":1,"depth":-1,"prev_events":[],"auth_events":[],"hashes":{},"signatures":{}}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseEvent checks that the PDU parser never panics and that an
// accepted event round-trips with a stable ID, redacts, and converts.
func FuzzParseEvent(f *testing.F) {
	seedEvents(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, v := range SupportedVersions() {
			e, err := ParseEvent(v, raw)
			if err != nil {
				continue
			}
			if len(e.JSON()) > MaxEventSize {
				t.Fatalf("accepted %d bytes", len(e.JSON()))
			}
			again, err := ParseEvent(v, e.JSON())
			if err != nil || again.ID() != e.ID() {
				t.Fatalf("round trip: %v", err)
			}
			// The trusted loader agrees with the strict parser on canonical bytes.
			loaded, err := LoadEvent(v, e.ID(), e.JSON())
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !reflect.DeepEqual(loaded, e) {
				t.Fatalf("LoadEvent differs from ParseEvent:\n%+v\n%+v", loaded, e)
			}
			red, err := e.Redact()
			if err != nil {
				t.Fatalf("redact: %v", err)
			}
			if id, err := computeEventID(v, red.JSON()); err != nil || id != e.ID() {
				t.Fatalf("redacted copy has ID %s, want %s (%v)", id, e.ID(), err)
			}
			if _, err := json.Marshal(e.Client(ClientOptions{Now: time.UnixMilli(0), RedactedBecause: e})); err != nil {
				t.Fatal(err)
			}
			_ = Authorize(e, NewState())
			_ = e.CheckContentHash()
		}
	})
}

// FuzzPowerLevels runs arbitrary power levels content through the auth
// rules against a room with a moderator.
func FuzzPowerLevels(f *testing.F) {
	f.Add([]byte(plBobMod))
	f.Add([]byte(`{"users":{"@bob:hs.test":50},"ban":"1"}`))
	f.Add([]byte(`{"users":{"bob":1},"events":{"a":9007199254740991}}`))
	r := newRoom(f, V11)
	joinBob(r)
	setPL(r, plBobMod)
	f.Fuzz(func(t *testing.T, content []byte) {
		e, err := r.build(bob, TypePowerLevels, ptr(""), string(content))
		if err != nil {
			return
		}
		// Anything bob may send keeps alice's 100 and gives nobody more than 50 new.
		pl, err := ParsePowerLevels(e.Content())
		if err != nil {
			t.Fatalf("accepted malformed power levels: %v", err)
		}
		if pl.UserLevel(alice) != 100 {
			t.Fatalf("bob changed alice's level: %s", content)
		}
		for u, n := range pl.Users {
			if n > 50 && u != alice {
				t.Fatalf("bob granted %d to %s", n, u)
			}
		}
	})
}
