package e2ee_test

import (
	"encoding/json"
	"errors"
	"testing"

	"myelin/e2ee"
)

// FuzzReceiveToDevice feeds arbitrary to-device events: the machine must
// neither panic nor fail (hostile content is a rejection, not an error).
func FuzzReceiveToDevice(f *testing.F) {
	s, a, b, room := setup(f)
	evil := s.newAttacker(b.user, "BOBX", true)
	a.sync()
	a.flush()
	ms := evil.megolmSession()
	good := evil.olmTo(a, b.user, evil.plaintext(a, "m.room_key", roomKeyContent(room, ms)))
	f.Add("m.room.encrypted", []byte(good.Content))
	f.Add("m.room.encrypted", []byte(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AAAA","session_id":"x"}`))
	f.Add("m.room_key_request", []byte(`{"action":"request","requesting_device_id":"BOB1","request_id":"1","body":{"room_id":"!r:hs","session_id":"x"}}`))
	f.Add("m.room_key.withheld", []byte(`{"session_id":"x","code":"m.unverified"}`))
	f.Add("m.room_key", []byte(`{}`))
	f.Add("m.key.verification.start", []byte(`null`))
	f.Fuzz(func(t *testing.T, typ string, content []byte) {
		if !json.Valid(content) {
			return // the sync decoder hands over valid JSON only
		}
		_, err := a.m.Receive(ctx, e2ee.SyncInput{ToDevice: []e2ee.ToDeviceEvent{{Type: typ, Sender: b.user, Content: content}}})
		if err != nil {
			t.Fatalf("Receive failed on hostile input: %v", err)
		}
	})
}

// FuzzDecrypt feeds arbitrary room events: the result is a decryption or a
// *UTDError, never a panic or another error.
func FuzzDecrypt(f *testing.F) {
	_, a, b, room := setup(f)
	ev := b.send(room, "seed")
	a.sync()
	f.Add("m.room.encrypted", []byte(ev.Content), b.user)
	f.Add("m.room.encrypted", []byte(`{"algorithm":"m.olm.v1.curve25519-aes-sha2"}`), b.user)
	f.Add("m.room.message", []byte(`{"body":"x"}`), b.user)
	f.Fuzz(func(t *testing.T, typ string, content []byte, sender string) {
		if !json.Valid(content) {
			return
		}
		_, err := a.m.Decrypt(ctx, room, e2ee.Event{Type: typ, Content: content, Sender: sender, EventID: "$f"})
		var u *e2ee.UTDError
		if err != nil && !errors.As(err, &u) {
			t.Fatalf("Decrypt: %v", err)
		}
	})
}

// FuzzKeysQueryResponse feeds arbitrary /keys/query responses.
func FuzzKeysQueryResponse(f *testing.F) {
	s, a, b, _ := setup(f)
	var seed []byte
	s.tamperQuery = func(_ string, resp map[string]any) { seed, _ = json.Marshal(resp) }
	s.markChanged(b.user)
	a.sync()
	a.flush()
	s.tamperQuery = nil
	f.Add(seed)
	f.Add([]byte(`{"device_keys":{"@bob:hs":{"BOB1":{}}}}`))
	f.Add([]byte(`{"master_keys":{"@bob:hs":"x"}}`))
	f.Fuzz(func(t *testing.T, resp []byte) {
		a.m.Receive(ctx, e2ee.SyncInput{DeviceListsChanged: []string{b.user}})
		reqs, err := a.m.Outgoing(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			if r.Type == e2ee.RequestKeysQuery {
				if _, err := a.m.MarkSent(ctx, r.ID, resp); err != nil {
					// A bad response keeps the request pending; answer it
					// honestly so the next iteration starts clean.
					a.m.MarkSent(ctx, r.ID, seed)
				}
			} else {
				a.m.MarkSent(ctx, r.ID, s.handle(a, r))
			}
		}
	})
}
