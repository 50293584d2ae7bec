package verification

import (
	"testing"
)

var fuzzTypes = []string{TypeRequest, TypeReady, TypeStart, TypeAccept, TypeKey, TypeMAC, TypeDone, TypeCancel, TypeRoomMessage}

// fuzzFlow brings alice's side of a flow with bob to a stage: 0 ready,
// 1 keys exchanged, 2 confirmed (waiting for bob's MAC).
func fuzzFlow(t testing.TB, tr Transport, stage uint8) (*world, *party, *party, *setup) {
	w, a, b := pair(t, Options{QR: true})
	s := request(w, a, b, tr)
	if stage >= 1 {
		b.do(b.m.StartSAS(w.now, s.respRef))
	}
	if stage >= 2 {
		a.do(a.m.Confirm(w.now, s.reqRef))
	}
	return w, a, b, s
}

// FuzzHandle feeds one hostile message from the peer into a flow at
// different stages. Properties: no panic, and no single injected message
// ever produces an Outcome (it cannot carry a valid MAC or QR secret).
func FuzzHandle(f *testing.F) {
	// Seeds: every message of an honest run, at each stage, both transports.
	for _, tr := range []Transport{ToDevice, InRoom} {
		w, a, b := pair(f, Options{QR: true})
		s := request(w, a, b, tr)
		s.sasToEnd(b)
		for _, r := range b.results {
			for _, o := range r.Send {
				for ti, typ := range fuzzTypes {
					if typ == o.Type {
						for stage := uint8(0); stage < 3; stage++ {
							f.Add(uint8(tr), stage, uint8(ti), o.Content)
						}
					}
				}
			}
		}
	}
	f.Add(uint8(ToDevice), uint8(2), uint8(5), []byte(`{"transaction_id":"x","mac":{},"keys":""}`))
	f.Add(uint8(InRoom), uint8(1), uint8(2), []byte(`{"m.relates_to":{"rel_type":"m.reference","event_id":"$ev1:example.org"},"method":"m.reciprocate.v1","from_device":"BOBDEV","secret":"AAAAAAAAAAA"}`))
	f.Add(uint8(ToDevice), uint8(0), uint8(0), []byte(`not json`))
	f.Fuzz(func(t *testing.T, tr, stage, typ uint8, content []byte) {
		transport := Transport(tr%2 + 1)
		w, a, b, _ := fuzzFlow(t, transport, stage%3)
		in := Incoming{Transport: transport, Type: fuzzTypes[int(typ)%len(fuzzTypes)], Sender: b.u.id, Content: content}
		if transport == InRoom {
			in.Room, in.EventID, in.OriginServerTS = w.room, mustEvent(t, "$fuzz:example.org"), w.now
		}
		r, _ := a.m.Handle(w.now, in)
		if r.Outcome != nil {
			t.Fatalf("an injected message completed the flow: %q", content)
		}
	})
}
