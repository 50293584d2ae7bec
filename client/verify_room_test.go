package client

import (
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"myelin/api"
	"myelin/e2ee"
	"myelin/e2ee/verification"
	"myelin/id"
	"myelin/keys"
)

// testVerifier is a Verifier for alice (@a:x/DEV) whose HTTP answers every
// request with an error, so only what needs no network runs.
func mustID[T any](t *testing.T, parse func(string) (T, error), s string) T {
	t.Helper()
	v, err := parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testVerifier(t *testing.T) *Verifier {
	t.Helper()
	c := &Client{http: fuzzHTTP(t, 500, `{}`), log: slog.New(slog.DiscardHandler)}
	sk, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{c: c, updates: make(chan VerificationUpdate, 64), keys: map[string]*queriedKeys{}, peers: map[string]inRoomPeer{}}
	own := verification.Own{User: mustID(t, id.ParseUserID, "@a:x"), Device: mustID(t, id.ParseDeviceID, "DEV"), DeviceKey: sk.PublicKey()}
	v.m, err = verification.NewMachine(verification.Config{Own: own, Rand: rand.Reader, Lookup: v.lookup})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifierRoomEventAuthentication: an in-room request reaches the
// machine only when it decrypted and, if encrypted, its sender is the user
// the Megolm session belongs to; the request's sender becomes the flow's
// other user (for Accept).
func TestVerifierRoomEventAuthentication(t *testing.T) {
	sk, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := verification.NewMachine(verification.Config{
		Own:    verification.Own{User: mustID(t, id.ParseUserID, "@b:x"), Device: mustID(t, id.ParseDeviceID, "BDEV"), DeviceKey: sk.PublicKey()},
		Rand:   rand.Reader,
		Lookup: testVerifier(t).lookup,
	})
	if err != nil {
		t.Fatal(err)
	}
	room := mustID(t, id.ParseRoomID, "!r:x")
	req := bob.RequestInRoomContent(room, mustID(t, id.ParseUserID, "@a:x"))
	for i, tc := range []struct {
		name      string
		encrypted bool
		prov      string
		err       error
		want      bool
	}{
		{"encrypted, session of the sender", true, "@b:x", nil, true},
		{"encrypted, session of another user", true, "@c:x", nil, false},
		{"encrypted, no provenance", true, "", nil, false},
		{"decryption failed", true, "@b:x", &e2ee.UTDError{}, false},
		{"plaintext (unencrypted room)", false, "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testVerifier(t)
			evID := "$req" + string(rune('a'+i))
			raw := api.ClientEvent{EventID: evID, Sender: "@b:x", Type: req.Type, RoomID: room.String(), OriginServerTS: time.Now().UnixMilli(), Content: req.Content}
			if tc.encrypted {
				raw.Type, raw.Content = "m.room.encrypted", json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2"}`)
			}
			ev := Event{RoomID: room.String(), Raw: raw, Encrypted: tc.encrypted, Err: tc.err,
				Event:      api.ClientEvent{EventID: evID, Sender: "@b:x", Type: req.Type, Content: req.Content},
				Provenance: e2ee.Provenance{SenderUser: tc.prov}}
			v.onRoomEvent(t.Context(), ev)
			ref := verification.FlowRef{Transport: verification.InRoom, Room: room, ID: evID}
			_, got := v.State(ref)
			if got != tc.want {
				t.Fatalf("flow known %v, want %v", got, tc.want)
			}
			if got && v.peers[evID].user.String() != "@b:x" {
				t.Fatalf("peer %v", v.peers[evID])
			}
		})
	}
}

// TestWithClearRelation: the relation of an encrypted verification event is
// the cleartext one; one inside the ciphertext is replaced or dropped.
func TestWithClearRelation(t *testing.T) {
	for _, tc := range []struct{ dec, wire, want string }{
		{`{"a":1}`, `{"m.relates_to":{"event_id":"$x","rel_type":"m.reference"}}`, `{"a":1,"m.relates_to":{"event_id":"$x","rel_type":"m.reference"}}`},
		{`{"a":1,"m.relates_to":{"event_id":"$inner"}}`, `{"m.relates_to":{"event_id":"$x"}}`, `{"a":1,"m.relates_to":{"event_id":"$x"}}`},
		{`{"a":1,"m.relates_to":{"event_id":"$inner"}}`, `{}`, `{"a":1}`},
		{`{"a":1}`, `{"m.relates_to":null}`, `{"a":1}`},
	} {
		got, err := withClearRelation(json.RawMessage(tc.dec), json.RawMessage(tc.wire))
		if err != nil || string(got) != tc.want {
			t.Errorf("withClearRelation(%s, %s) = %s, %v; want %s", tc.dec, tc.wire, got, err, tc.want)
		}
	}
	if _, err := withClearRelation(json.RawMessage(`[]`), json.RawMessage(`{}`)); err == nil {
		t.Error("non-object content accepted")
	}
}

// FuzzWithClearRelation: any input either fails or gives an object whose
// relation is exactly the cleartext one.
func FuzzWithClearRelation(f *testing.F) {
	f.Add([]byte(`{"a":1}`), []byte(`{"m.relates_to":{"event_id":"$x"}}`))
	f.Add([]byte(`{"m.relates_to":1}`), []byte(`{}`))
	f.Add([]byte(`null`), []byte(`null`))
	f.Fuzz(func(t *testing.T, dec, wire []byte) {
		got, err := withClearRelation(dec, wire)
		if err != nil {
			return
		}
		var g map[string]json.RawMessage
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("output not an object: %v", err)
		}
		var w struct {
			RelatesTo json.RawMessage `json:"m.relates_to"`
		}
		_ = json.Unmarshal(wire, &w)
		if (len(w.RelatesTo) == 0 || string(w.RelatesTo) == "null") != (g["m.relates_to"] == nil) {
			t.Fatalf("relation %s from wire %s", g["m.relates_to"], wire)
		}
	})
}
