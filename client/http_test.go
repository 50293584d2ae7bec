package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestHTTP(t *testing.T, h http.HandlerFunc, o HTTPOptions) *HTTP {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if o.Backoff.Min == 0 {
		o.Backoff = Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}
	}
	c, err := NewHTTP(srv.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	c.SetSession("tok", "@a:x", "DEV")
	return c
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		wantCode  string
		wantRetry time.Duration
	}{
		{"forbidden", 403, nil, `{"errcode":"M_FORBIDDEN","error":"no"}`, "M_FORBIDDEN", 0},
		{"limit ms", 429, nil, `{"errcode":"M_LIMIT_EXCEEDED","error":"slow","retry_after_ms":1500}`, "M_LIMIT_EXCEEDED", 1500 * time.Millisecond},
		{"limit header", 429, map[string]string{"Retry-After": "2"}, `{"errcode":"M_LIMIT_EXCEEDED"}`, "M_LIMIT_EXCEEDED", 2 * time.Second},
		{"limit capped", 429, nil, `{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":999999999999}`, "M_LIMIT_EXCEEDED", MaxRetryAfter},
		{"not json", 500, nil, `<html>`, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}, HTTPOptions{MaxRetries: -1})
			_, _, err := c.Whoami(context.Background())
			var me *MatrixError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want *MatrixError", err)
			}
			if me.Status != tc.status || me.ErrCode != tc.wantCode || me.RetryAfter != tc.wantRetry {
				t.Fatalf("got %+v", me)
			}
		})
	}
}

// TestResponseBound: a hostile server cannot make the client read an
// unbounded body.
func TestResponseBound(t *testing.T) {
	big := `{"user_id":"` + strings.Repeat("a", 5000) + `"}`
	c := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) }, HTTPOptions{MaxResponseBytes: 4096})
	if _, _, err := c.Whoami(context.Background()); !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
	c2 := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) }, HTTPOptions{MaxResponseBytes: 8192})
	if u, _, err := c2.Whoami(context.Background()); err != nil || len(u) != 5000 {
		t.Fatalf("under the bound: %v", err)
	}
}

// TestSendRetryIdempotent: a send that fails with 503 and 429 is retried
// under the same transaction ID.
func TestSendRetryIdempotent(t *testing.T) {
	var n atomic.Int32
	paths := make(chan string, 10)
	c := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.EscapedPath()
		switch n.Add(1) {
		case 1:
			w.WriteHeader(503)
		case 2:
			w.WriteHeader(429)
			w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1}`))
		default:
			w.Write([]byte(`{"event_id":"$e"}`))
		}
	}, HTTPOptions{})
	txn := c.NewTxnID()
	ev, err := c.SendEvent(context.Background(), "!r:x", "m.room.message", txn, map[string]any{"body": "hi"})
	if err != nil || ev != "$e" {
		t.Fatalf("send: %q %v", ev, err)
	}
	close(paths)
	var got []string
	for p := range paths {
		got = append(got, p)
	}
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	for _, p := range got {
		if p != got[0] || !strings.HasSuffix(p, "/"+txn) || !strings.Contains(p, "/rooms/%21r:x/send/") {
			t.Fatalf("paths %q", got)
		}
	}
	if c.NewTxnID() == txn {
		t.Fatal("txn IDs repeat")
	}
}

// TestNoRetryNonIdempotent: a failed invite (POST) is not repeated.
func TestNoRetryNonIdempotent(t *testing.T) {
	var n atomic.Int32
	c := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1); w.WriteHeader(503) }, HTTPOptions{})
	if err := c.Invite(context.Background(), "!r:x", "@b:x"); err == nil {
		t.Fatal("no error")
	}
	if n.Load() != 1 {
		t.Fatalf("%d attempts, want 1", n.Load())
	}
}

func TestContextCancelsRetry(t *testing.T) {
	c := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(429)
		w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":60000}`))
	}, HTTPOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := c.Whoami(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("retry ignored the context")
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Jitter: func() float64 { return 0.999999 }}
	prev := time.Duration(0)
	for i := range 10 {
		d := b.Delay(i)
		if d > time.Second || d < prev {
			t.Fatalf("attempt %d: %v after %v", i, d, prev)
		}
		prev = d
	}
	if lo := (Backoff{Min: 100 * time.Millisecond, Jitter: func() float64 { return 0 }}).Delay(0); lo != 50*time.Millisecond {
		t.Fatalf("lowest jitter %v", lo)
	}
}

func TestSyncFillsRoomID(t *testing.T) {
	c := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("since") != "s1" || r.URL.Query().Get("timeout") != "100" {
			w.WriteHeader(400)
			return
		}
		w.Write([]byte(`{"next_batch":"s2","rooms":{"join":{"!r:x":{"timeline":{"events":[{"type":"m.room.message","room_id":"!other:x","sender":"@b:x","event_id":"$1","content":{}}]}}}}}`))
	}, HTTPOptions{})
	res, err := c.Sync(context.Background(), SyncRequest{Since: "s1", TimeoutMS: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Rooms.Join["!r:x"].Timeline.Events[0].RoomID; got != "!r:x" {
		t.Fatalf("room_id %q", got)
	}
}
