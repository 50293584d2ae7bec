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
