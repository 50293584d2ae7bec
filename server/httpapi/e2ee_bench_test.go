package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"myelin/server/auth"
	"myelin/server/httpapi"
	"myelin/server/storage"
	"myelin/server/storage/sqlite"
	msync "myelin/server/sync"
)

// benchServer is a myelind on 127.0.0.1 with users and devices created
// directly in storage (password hashing is not what these benchmarks measure).
type benchServer struct {
	base  string
	store *sqlite.Store
}

func startBench(b *testing.B) *benchServer {
	b.Helper()
	n := msync.NewNotifier()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "db.sqlite"), sqlite.Options{Notify: n.Wake})
	if err != nil {
		b.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{ServerName: "test.local", Store: st, E2EE: st, Notifier: n})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	b.Cleanup(func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		st.Close()
	})
	return &benchServer{base: "http://" + ln.Addr().String(), store: st}
}

// device creates user u's device d with access token "tok-u-d".
func (bs *benchServer) device(b *testing.B, u, d string) string {
	ctx := context.Background()
	if _, err := bs.store.User(ctx, u); err != nil {
		if err := bs.store.CreateUser(ctx, storage.User{UserID: u, CreatedTS: 1}, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	tok := "tok-" + u + "-" + d
	if err := bs.store.Login(ctx, storage.Device{UserID: u, DeviceID: d, CreatedTS: 1}, auth.HashToken(tok)); err != nil {
		b.Fatal(err)
	}
	return tok
}

func (bs *benchServer) post(b *testing.B, method, path, tok string, body any) []byte {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, bs.base+path, bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		b.Fatalf("%s %s: %d %s", method, path, res.StatusCode, out)
	}
	return out
}

// BenchmarkE2EEClaim1000Devices measures one /keys/claim covering 1,000
// devices (50 users x 20 devices, 20 one-time keys each), as myelin-bench's
// keys_claim scenario does.
func BenchmarkE2EEClaim1000Devices(b *testing.B) {
	bs := startBench(b)
	claim := map[string]map[string]string{}
	var tok string
	for i := range 1000 {
		u, d := fmt.Sprintf("@u%02d:test.local", i%50), fmt.Sprintf("D%04d", i)
		tok = bs.device(b, u, d)
		bs.post(b, "POST", v3+"/keys/upload", tok, map[string]any{"one_time_keys": otks("K", 20)})
		if claim[u] == nil {
			claim[u] = map[string]string{}
		}
		claim[u][d] = "signed_curve25519"
	}
	body := map[string]any{"one_time_keys": claim}
	b.ReportAllocs()
	for b.Loop() {
		bs.post(b, "POST", v3+"/keys/claim", tok, body)
	}
}

// BenchmarkE2EESendToDevice1000 measures one sendToDevice request to 1,000
// devices (the request only; delivery is the sync's business).
func BenchmarkE2EESendToDevice1000(b *testing.B) {
	bs := startBench(b)
	msgs := map[string]map[string]any{}
	var tok string
	for i := range 1000 {
		u, d := fmt.Sprintf("@u%02d:test.local", i%50), fmt.Sprintf("D%04d", i)
		tok = bs.device(b, u, d)
		if msgs[u] == nil {
			msgs[u] = map[string]any{}
		}
		msgs[u][d] = map[string]any{"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": "k",
			"ciphertext": map[string]any{"x": map[string]any{"type": 0, "body": string(bytes.Repeat([]byte("A"), 160))}}}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		bs.post(b, "PUT", fmt.Sprintf("%s/sendToDevice/m.room.encrypted/b%d", v3, i), tok, map[string]any{"messages": msgs})
	}
}

func (bs *benchServer) get(b *testing.B, path, tok string) map[string]any {
	req, _ := http.NewRequest("GET", bs.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Error(err)
		return nil
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		b.Errorf("GET %s: %d %v", path, res.StatusCode, err)
	}
	return out
}

// BenchmarkE2EEToDeviceFanOutDelivery measures one sendToDevice to 1,000
// long-polling devices until every one has it in /sync (myelin-bench's
// to_device scenario).
func BenchmarkE2EEToDeviceFanOutDelivery(b *testing.B) {
	bs := startBench(b)
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 2000
	type dev struct{ u, d, tok, since string }
	var devs []*dev
	msgs := map[string]map[string]any{}
	for i := range 1000 {
		u, d := fmt.Sprintf("@u%02d:test.local", i%50), fmt.Sprintf("D%04d", i)
		devs = append(devs, &dev{u: u, d: d, tok: bs.device(b, u, d)})
		if msgs[u] == nil {
			msgs[u] = map[string]any{}
		}
		msgs[u][d] = map[string]any{"algorithm": "m.olm.v1.curve25519-aes-sha2", "body": string(bytes.Repeat([]byte("A"), 160))}
	}
	sender := devs[0].tok
	filter := "&filter=" + `%7B%22room%22:%7B%22rooms%22:%5B%5D%7D%7D`
	for _, d := range devs {
		d.since, _ = bs.get(b, v3+"/sync?timeout=0"+filter, d.tok)["next_batch"].(string)
	}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		var wg sync.WaitGroup
		for _, d := range devs {
			wg.Go(func() {
				for {
					r := bs.get(b, v3+"/sync?timeout=30000&since="+d.since+filter, d.tok)
					if r == nil {
						return
					}
					d.since, _ = r["next_batch"].(string)
					if evs, _ := path(r, "to_device", "events").([]any); len(evs) > 0 {
						return
					}
				}
			})
		}
		// Wait until every sync is parked (they return only on a wake-up).
		time.Sleep(300 * time.Millisecond)
		bs.post(b, "PUT", fmt.Sprintf("%s/sendToDevice/m.room.encrypted/f%d", v3, n), sender, map[string]any{"messages": msgs})
		wg.Wait()
	}
}
