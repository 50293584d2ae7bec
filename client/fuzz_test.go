package client

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// bodyTransport answers every request with one status and body, no network.
type bodyTransport struct {
	status int
	body   string
}

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: b.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(b.body)), Request: r}, nil
}

func fuzzHTTP(t *testing.T, status int, body string) *HTTP {
	h, err := NewHTTP("http://hs.invalid", HTTPOptions{HTTPClient: &http.Client{Transport: bodyTransport{status, body}}, MaxResponseBytes: 1 << 16, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	h.SetSession("tok", "@a:x", "DEV")
	return h
}

// FuzzSyncResponse: any /sync body either parses into a response with a
// next_batch whose room events carry the room's ID, or is an error.
func FuzzSyncResponse(f *testing.F) {
	f.Add(`{"next_batch":"s1"}`)
	f.Add(`{"next_batch":"s1","rooms":{"join":{"!r:x":{"state":{"events":[{"type":"m.room.member","state_key":"@a:x","content":{"membership":"join"}}]},"timeline":{"events":[{"type":"m.room.encrypted","content":{},"room_id":"!evil:x"}],"limited":true}}},"leave":{"!l:x":{}},"invite":{"!i:x":{"invite_state":{"events":[{"type":"m.room.name","state_key":"","content":{"name":"n"},"sender":"@b:x"}]}}}},"to_device":{"events":[{"type":"m.room.encrypted","sender":"@b:x","content":{}}]},"device_lists":{"changed":["@b:x"],"left":[]},"device_one_time_keys_count":{"signed_curve25519":3},"device_unused_fallback_key_types":[]}`)
	f.Add(`{"next_batch":""}`)
	f.Add(`[]`)
	f.Add(`{"next_batch":"s","rooms":{"join":{"!r:x":{"timeline":{"events":[null,{}]}}}}}`)
	f.Fuzz(func(t *testing.T, body string) {
		res, err := fuzzHTTP(t, 200, body).Sync(context.Background(), SyncRequest{})
		if err != nil {
			return
		}
		if res.NextBatch == "" {
			t.Fatal("accepted a sync without next_batch")
		}
		for rid, jr := range res.Rooms.Join {
			for _, ev := range append(jr.State.Events, jr.Timeline.Events...) {
				if ev.RoomID != rid {
					t.Fatalf("event in %s carries room %s", rid, ev.RoomID)
				}
			}
		}
	})
}

// FuzzErrorResponse: any error body becomes a *MatrixError with a bounded
// message and retry hint.
func FuzzErrorResponse(f *testing.F) {
	f.Add(429, `{"errcode":"M_LIMIT_EXCEEDED","error":"x","retry_after_ms":5}`)
	f.Add(401, `{"session":"s","flows":[{"stages":["m.login.dummy"]}]}`)
	f.Add(500, `not json`)
	f.Add(403, `{"errcode":1}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 300 || status > 599 {
			return
		}
		_, _, err := fuzzHTTP(t, status, body).Whoami(context.Background())
		me, ok := err.(*MatrixError)
		if !ok {
			if err == nil {
				t.Fatal("error status accepted")
			}
			return // too large
		}
		if me.Status != status || len(me.Message) > 1024 || me.RetryAfter < 0 || me.RetryAfter > MaxRetryAfter {
			t.Fatalf("bad error %+v", me)
		}
	})
}
