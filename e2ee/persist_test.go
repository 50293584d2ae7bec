package e2ee_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"myelin/e2ee"
	"myelin/e2ee/store/memory"
	"myelin/e2ee/store/sqlite"
	"myelin/id"
)

var testNow = time.Unix(1e9, 0)

func openMachine(t *testing.T, st e2ee.Store, key []byte, seed byte) (*e2ee.Machine, error) {
	uid, _ := id.ParseUserID("@alice:hs")
	did, _ := id.ParseDeviceID("DEV")
	return e2ee.Open(context.Background(), e2ee.Config{UserID: uid, DeviceID: did, Store: st, PickleKey: key,
		Rand: rand.NewChaCha8([32]byte{seed}), Clock: func() time.Time { return testNow }})
}

// Keys are persisted before they are offered for upload, the upload is
// repeated identically until acknowledged, and keys count as published only
// after the server accepted them.
func TestUploadPersistedIdempotentPublishedAfterSuccess(t *testing.T) {
	st := memory.New()
	m, err := openMachine(t, st, pickleKey, 1)
	if err != nil {
		t.Fatal(err)
	}
	all, err := m.Outgoing(ctx)
	reqs := uploadsOf(all)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("first Outgoing: %v, %d uploads", err, len(reqs))
	}
	var body struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	json.Unmarshal(reqs[0].Body, &body)
	if len(body.OneTimeKeys) != e2ee.OneTimeKeyTarget || len(body.FallbackKeys) != 1 || body.DeviceKeys == nil {
		t.Fatalf("upload body: %d OTKs, %d fallback", len(body.OneTimeKeys), len(body.FallbackKeys))
	}
	// "Crash" before the response: a new machine on the same store offers
	// the very same request (same keys, same ID).
	m2, err := openMachine(t, st, pickleKey, 2)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m2.Outgoing(ctx)
	again = uploadsOf(again)
	if len(again) != 1 || again[0].ID != reqs[0].ID || !bytes.Equal(again[0].Body, reqs[0].Body) {
		t.Fatal("upload not persisted or not idempotent")
	}
	if _, err := m2.MarkSent(ctx, again[0].ID, []byte(`{"one_time_key_counts":{"signed_curve25519":50}}`)); err != nil {
		t.Fatal(err)
	}
	if r, _ := m2.Outgoing(ctx); len(uploadsOf(r)) != 0 {
		t.Fatal("published keys offered again")
	}
	if _, err := m2.MarkSent(ctx, again[0].ID, []byte(`{}`)); !errors.Is(err, e2ee.ErrUnknownRequest) {
		t.Fatalf("second MarkSent = %v", err)
	}
	// A failed (unparseable) response leaves the request pending.
	testNow = testNow.Add(e2ee.OTKUploadInterval)
	res, _ := m2.Receive(ctx, e2ee.SyncInput{OneTimeKeyCounts: map[string]int{"signed_curve25519": 10}})
	_ = res
	r, _ := m2.Outgoing(ctx)
	r = uploadsOf(r)
	if len(r) != 1 {
		t.Fatalf("%d replenishment uploads, want 1", len(r))
	}
	json.Unmarshal(r[0].Body, &body)
	body.OneTimeKeys = nil
	json.Unmarshal(r[0].Body, &body)
	if len(body.OneTimeKeys) != e2ee.OneTimeKeyTarget-10 {
		t.Fatalf("replenished %d keys, want %d", len(body.OneTimeKeys), e2ee.OneTimeKeyTarget-10)
	}
	if _, err := m2.MarkSent(ctx, r[0].ID, []byte(`not json`)); err == nil {
		t.Fatal("bad response accepted")
	}
	if r2, _ := m2.Outgoing(ctx); len(uploadsOf(r2)) != 1 || uploadsOf(r2)[0].ID != r[0].ID {
		t.Fatal("request dropped after a failed MarkSent")
	}
}

func TestFallbackKeyRotation(t *testing.T) {
	s, a, _, _ := setup(t)
	uploadFallbacks := func() int {
		reqs, _ := a.m.Outgoing(ctx)
		n := 0
		for _, r := range reqs {
			var body struct {
				FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
			}
			json.Unmarshal(r.Body, &body)
			n += len(body.FallbackKeys)
			a.m.MarkSent(ctx, r.ID, s.handle(a, r))
		}
		return n
	}
	a.m.Receive(ctx, e2ee.SyncInput{UnusedFallbackKeyTypes: []string{"signed_curve25519"}})
	if uploadFallbacks() != 0 {
		t.Fatal("fallback rotated while unused")
	}
	a.m.Receive(ctx, e2ee.SyncInput{UnusedFallbackKeyTypes: []string{}})
	if uploadFallbacks() != 1 {
		t.Fatal("used fallback key not replaced")
	}
	a.m.Receive(ctx, e2ee.SyncInput{}) // not reported: nothing
	if uploadFallbacks() != 0 {
		t.Fatal("fallback rotated without a report")
	}
}

func TestSQLiteMachineRoundTripAndSealedSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e2ee.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := openMachine(t, st, pickleKey, 1)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("the-cross-signing-seed-0123456789")
	if err := m.SaveSecret(ctx, "m.cross_signing.master", secret); err != nil {
		t.Fatal(err)
	}
	curve, ed := m.IdentityKeys()
	reqs, _ := m.Outgoing(ctx)
	st.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(path + "-wal")
	raw = append(raw, wal...)
	if bytes.Contains(raw, secret) {
		t.Fatal("secret stored in the clear")
	}
	st, _ = sqlite.Open(ctx, path)
	defer st.Close()
	m2, err := openMachine(t, st, pickleKey, 2)
	if err != nil {
		t.Fatal(err)
	}
	c2, e2 := m2.IdentityKeys()
	if c2 != curve || e2 != ed {
		t.Fatal("account not restored")
	}
	if got, err := m2.LoadSecret(ctx, "m.cross_signing.master"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("LoadSecret: %v", err)
	}
	if r, _ := m2.Outgoing(ctx); len(r) != len(reqs) || r[0].ID != reqs[0].ID {
		t.Fatal("pending upload not restored")
	}
	// The wrong pickle key opens nothing.
	wrong := bytes.Repeat([]byte{7}, 32)
	if _, err := openMachine(t, st, wrong, 3); err == nil {
		t.Fatal("store opened with the wrong pickle key")
	}
	// A sealed record moved to another name does not open.
	v, _ := st.Get(ctx, e2ee.KindSecret, "m.cross_signing.master")
	ch := &e2ee.Changes{}
	ch.Put(e2ee.KindSecret, "other", v)
	st.Save(ctx, ch)
	if _, err := m2.LoadSecret(ctx, "other"); err == nil {
		t.Fatal("sealed record not bound to its name")
	}
}

func uploadsOf(reqs []e2ee.Request) []e2ee.Request {
	var out []e2ee.Request
	for _, r := range reqs {
		if r.Type == e2ee.RequestKeysUpload {
			out = append(out, r)
		}
	}
	return out
}
