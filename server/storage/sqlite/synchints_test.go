package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"myelin/server/storage"
)

// TestSyncStateKeyCache checks that the cached one-time-key counts and
// fallback key types served by DeviceSyncState follow every write: upload,
// claim (one-time key, then fallback) and device deletion. Without the
// invalidation the cached first state would be served throughout.
func TestSyncStateKeyCache(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "A")
	addDevices(t, s, "@b:hs", "B")
	const alg = "signed_curve25519"
	state := func() storage.DeviceSyncState {
		t.Helper()
		st, err := s.DeviceSyncState(ctx, "@b:hs", "B", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	claim := func() {
		t.Helper()
		if _, err := s.ClaimKeys(ctx, []storage.KeyClaim{{UserID: "@b:hs", DeviceID: "B", Algorithm: alg}}); err != nil {
			t.Fatal(err)
		}
	}
	upload := func(u storage.KeyUpload) {
		t.Helper()
		u.UserID, u.DeviceID = "@b:hs", "B"
		if _, _, err := s.UploadKeys(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	upload(storage.KeyUpload{OneTimeKeys: []storage.OneTimeKey{otk(alg, "1", "x"), otk(alg, "2", "y")},
		FallbackKeys: []storage.OneTimeKey{otk(alg, "F", "f")}})
	steps := []struct {
		name     string
		do       func()
		otk      int
		fallback string
	}{
		{"after upload", func() {}, 2, "[" + alg + "]"},
		{"cached", func() {}, 2, "[" + alg + "]"},
		{"claimed one", claim, 1, "[" + alg + "]"},
		{"claimed two", claim, 0, "[" + alg + "]"},
		{"claimed fallback", claim, 0, "[]"},
		{"uploaded one-time key", func() { upload(storage.KeyUpload{OneTimeKeys: []storage.OneTimeKey{otk(alg, "3", "z")}}) }, 1, "[]"},
		{"uploaded fallback", func() { upload(storage.KeyUpload{FallbackKeys: []storage.OneTimeKey{otk(alg, "G", "g")}}) }, 1, "[" + alg + "]"},
		{"device deleted", func() {
			if err := s.DeleteDevices(ctx, "@b:hs", []string{"B"}); err != nil {
				t.Fatal(err)
			}
		}, 0, "[]"},
	}
	for _, st := range steps {
		st.do()
		for range 2 { // the first read may fill the cache, the second is served from it
			got := state()
			if got.OneTimeKeyCounts[alg] != st.otk || fmt.Sprint(got.UnusedFallbackKeyTypes) != st.fallback {
				t.Fatalf("%s: counts %v fallback %v, want %d %s", st.name, got.OneTimeKeyCounts, got.UnusedFallbackKeyTypes, st.otk, st.fallback)
			}
			// Callers may modify what they get: the cache must not change.
			got.OneTimeKeyCounts[alg] = 99
			got.UnusedFallbackKeyTypes = append(got.UnusedFallbackKeyTypes[:0:0], "junk")
		}
	}
}

// TestSyncStateKeyCacheToDevice checks that a cached key state does not hide
// the to-device queue or the pending acknowledgement.
func TestSyncStateKeyCacheToDevice(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "A")
	addDevices(t, s, "@b:hs", "B")
	if st, err := s.DeviceSyncState(ctx, "@b:hs", "B", 0, 10); err != nil || len(st.ToDevice) != 0 {
		t.Fatalf("empty queue: %+v %v", st, err)
	}
	for i := range 2 {
		if _, err := s.SendToDevice(ctx, storage.ToDeviceSend{Sender: "@a:hs", SenderDevice: "A", TxnID: fmt.Sprint(i), Type: "m.t",
			Messages: []storage.ToDeviceMessage{{UserID: "@b:hs", DeviceID: "B", Content: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.DeviceSyncState(ctx, "@b:hs", "B", 0, 1)
	if err != nil || len(st.ToDevice) != 1 || st.AckPending || string(st.ToDevice[0].Content) != `{"i":0}` {
		t.Fatalf("first page: %+v %v", st, err)
	}
	st2, err := s.DeviceSyncState(ctx, "@b:hs", "B", st.ToDevice[0].ID, 1)
	if err != nil || len(st2.ToDevice) != 1 || !st2.AckPending || string(st2.ToDevice[0].Content) != `{"i":1}` {
		t.Fatalf("second page: %+v %v", st2, err)
	}
}

// TestSyncHintsRanges checks that the account-data and device-list range
// queries skipped on in-memory marks still return every write, for the
// right user, and after a restart (whose writes the marks never saw).
func TestSyncHintsRanges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	s.RegisterE2EEHooks()
	addDevices(t, s, "@a:hs", "A")
	p0 := s.Pos()
	if _, err := s.PutAccountData(ctx, "@a:hs", "", "m.x", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	p1 := s.Pos()
	if _, err := s.RecordDeviceListChange(ctx, "@a:hs"); err != nil {
		t.Fatal(err)
	}
	p2 := s.Pos()
	check := func(name string, s *Store) {
		t.Helper()
		for _, c := range []struct {
			user     string
			from, to int64
			want     int
		}{{"@a:hs", p0, p2, 1}, {"@a:hs", 0, p2, 1}, {"@a:hs", p1, p2, 0}, {"@b:hs", p0, p2, 0}} {
			got, err := s.AccountDataRange(ctx, c.user, c.from, c.to)
			if err != nil || len(got) != c.want {
				t.Errorf("%s: account data %s (%d,%d]: %v %v, want %d", name, c.user, c.from, c.to, got, err, c.want)
			}
		}
		for _, c := range []struct {
			from, to int64
			want     int
		}{{p0, p2, 1}, {p1, p2, 1}, {p2, p2, 0}, {p0, p1, 0}} {
			got, err := s.DeviceListChanges(ctx, c.from, c.to)
			if err != nil || len(got) != c.want {
				t.Errorf("%s: device lists (%d,%d]: %v %v, want %d", name, c.from, c.to, got, err, c.want)
			}
		}
	}
	check("live", s)
	s.Close()
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	check("reopened", s)
}
