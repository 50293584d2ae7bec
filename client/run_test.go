package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"myelin/api"
)

// fakeHS is just enough of a homeserver for a client to log in and sync:
// /sync answers with the scripted statuses in order.
type fakeHS struct {
	mu      sync.Mutex
	script  []int // statuses of successive /sync calls; 200 = ok
	syncs   []time.Time
	tokens  []string
	done    chan struct{}
	doneSet bool
}

func (f *fakeHS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/login"):
		w.Write([]byte(`{"user_id":"@a:hs","device_id":"DEVA","access_token":"tok"}`))
	case strings.HasSuffix(p, "/keys/upload"):
		w.Write([]byte(`{"one_time_key_counts":{"signed_curve25519":50}}`))
	case strings.HasSuffix(p, "/keys/query"):
		w.Write([]byte(`{"device_keys":{},"failures":{}}`))
	case strings.HasSuffix(p, "/sync"):
		f.mu.Lock()
		f.syncs = append(f.syncs, time.Now())
		f.tokens = append(f.tokens, r.URL.Query().Get("since"))
		st := http.StatusOK
		if len(f.script) > 0 {
			st, f.script = f.script[0], f.script[1:]
		} else if !f.doneSet {
			f.doneSet = true
			close(f.done)
		}
		f.mu.Unlock()
		switch st {
		case http.StatusOK:
			w.Write([]byte(`{"next_batch":"s` + time.Now().Format("150405.000000") + `"}`))
		case http.StatusUnauthorized:
			w.WriteHeader(st)
			w.Write([]byte(`{"errcode":"M_UNKNOWN_TOKEN","error":"gone"}`))
		default:
			w.WriteHeader(st)
			w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"boom"}`))
		}
	default:
		w.WriteHeader(404)
		w.Write([]byte(`{"errcode":"M_UNRECOGNIZED"}`))
	}
}

func TestRunBackoffAndFatalToken(t *testing.T) {
	f := &fakeHS{script: []int{200, 500, 500, 500, 200, 401}, done: make(chan struct{})}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// MaxRetries inside HTTP would hide the 500s from the loop: the loop's
	// own backoff is what is tested here.
	c, err := Login(ctx, srv.URL, "a", "pw", nil, Options{Backoff: Backoff{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Run(ctx)
	if !IsErrCode(err, api.ErrCodeUnknownToken) {
		t.Fatalf("Run returned %v, want M_UNKNOWN_TOKEN", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.syncs) < 6 {
		t.Fatalf("%d syncs", len(f.syncs))
	}
	// The since token advances only after a successful sync.
	if f.tokens[0] != "" || f.tokens[1] == "" || f.tokens[4] != f.tokens[1] {
		t.Fatalf("since tokens %q", f.tokens)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	f := &fakeHS{script: []int{500, 500, 500, 500, 500, 500, 500, 500, 500, 500}, done: make(chan struct{})}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Login(ctx, srv.URL, "a", "pw", nil, Options{Backoff: Backoff{Min: time.Hour, Max: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	// Wait until the loop is backing off after a failure, then cancel.
	deadline := time.After(20 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.syncs)
		f.mu.Unlock()
		if n >= 1 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("no sync")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run ignored cancellation during backoff")
	}
}
