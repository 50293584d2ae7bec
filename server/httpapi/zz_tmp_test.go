package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"myelin/server/storage"
)

func BenchmarkTmpClaimStore(b *testing.B) {
	bs := startBench(b)
	var claims []storage.KeyClaim
	for i := range 1000 {
		u, d := fmt.Sprintf("@u%02d:test.local", i%50), fmt.Sprintf("D%04d", i)
		tok := bs.device(b, u, d)
		bs.post(b, "POST", v3+"/keys/upload", tok, map[string]any{"one_time_keys": otks("K", 20)})
		claims = append(claims, storage.KeyClaim{UserID: u, DeviceID: d, Algorithm: "signed_curve25519"})
	}
	for b.Loop() {
		t0 := time.Now()
		got, err := bs.store.ClaimKeys(context.Background(), claims)
		if err != nil || len(got) != 1000 {
			b.Fatal(err)
		}
		b.Log(time.Since(t0))
	}
}
