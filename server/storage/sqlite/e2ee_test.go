package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"myelin/server/storage"
)

func openE2EE(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "test.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterE2EEHooks()
	t.Cleanup(func() { s.Close() })
	return s
}

func addDevices(t testing.TB, s *Store, userID string, deviceIDs ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.User(ctx, userID); errors.Is(err, storage.ErrNotFound) {
		if err := s.CreateUser(ctx, storage.User{UserID: userID, CreatedTS: 1}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range deviceIDs {
		if err := s.Login(ctx, storage.Device{UserID: userID, DeviceID: d, CreatedTS: 1}, []byte(userID+"/"+d)); err != nil {
			t.Fatal(err)
		}
	}
}

func otk(alg, id, key string) storage.OneTimeKey {
	return storage.OneTimeKey{Algorithm: alg, KeyID: id, JSON: json.RawMessage(`{"key":"` + key + `","signatures":{}}`)}
}

func TestE2EEUploadKeys(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "DEV")
	dk := json.RawMessage(`{"user_id":"@a:hs","device_id":"DEV","keys":{}}`)
	up := storage.KeyUpload{UserID: "@a:hs", DeviceID: "DEV", DeviceKeys: dk,
		OneTimeKeys:  []storage.OneTimeKey{otk("signed_curve25519", "A", "ka"), otk("signed_curve25519", "B", "kb")},
		FallbackKeys: []storage.OneTimeKey{otk("signed_curve25519", "F", "kf")}}
	counts, changes, err := s.UploadKeys(ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	if counts["signed_curve25519"] != 2 || len(changes) != 1 {
		t.Fatalf("counts %v changes %v", counts, changes)
	}
	// Identical re-upload: no new keys, no device-list change.
	counts, changes, err = s.UploadKeys(ctx, up)
	if err != nil || counts["signed_curve25519"] != 2 || len(changes) != 0 {
		t.Fatalf("re-upload: %v %v %v", counts, changes, err)
	}
	// Same key ID, different key: refused, and nothing of the upload is kept.
	bad := storage.KeyUpload{UserID: "@a:hs", DeviceID: "DEV",
		OneTimeKeys: []storage.OneTimeKey{otk("signed_curve25519", "C", "kc"), otk("signed_curve25519", "A", "other")}}
	if _, _, err := s.UploadKeys(ctx, bad); !errors.Is(err, storage.ErrKeyConflict) {
		t.Fatalf("conflicting one-time key: %v", err)
	}
	if c, _ := s.OneTimeKeyCounts(ctx, "@a:hs", "DEV"); c["signed_curve25519"] != 2 {
		t.Fatalf("counts after refused upload: %v", c)
	}
	got, err := s.DeviceKeys(ctx, map[string][]string{"@a:hs": nil})
	if err != nil || len(got) != 1 || string(got[0].JSON) != string(dk) {
		t.Fatalf("device keys: %v %v", got, err)
	}
	got, err = s.DeviceKeys(ctx, map[string][]string{"@a:hs": {"DEV", "NOPE"}})
	if err != nil || len(got) != 1 {
		t.Fatalf("device keys by ID: %v %v", got, err)
	}
	fb, _ := s.UnusedFallbackKeyTypes(ctx, "@a:hs", "DEV")
	if len(fb) != 1 || fb[0] != "signed_curve25519" {
		t.Fatalf("fallback types %v", fb)
	}
}

func TestE2EEClaimOneTimeThenFallback(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "DEV")
	if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:hs", DeviceID: "DEV",
		OneTimeKeys:  []storage.OneTimeKey{otk("signed_curve25519", "A", "ka")},
		FallbackKeys: []storage.OneTimeKey{otk("signed_curve25519", "F", "kf")}}); err != nil {
		t.Fatal(err)
	}
	claim := []storage.KeyClaim{{UserID: "@a:hs", DeviceID: "DEV", Algorithm: "signed_curve25519"}}
	want := []struct {
		id       string
		fallback bool
	}{{"A", false}, {"F", true}, {"F", true}}
	for i, w := range want {
		got, err := s.ClaimKeys(ctx, claim)
		if err != nil || len(got) != 1 || got[0].KeyID != w.id || got[0].Fallback != w.fallback {
			t.Fatalf("claim %d: %+v %v", i, got, err)
		}
	}
	if fb, _ := s.UnusedFallbackKeyTypes(ctx, "@a:hs", "DEV"); len(fb) != 0 {
		t.Fatalf("used fallback still reported unused: %v", fb)
	}
	// A new fallback key is unused again; re-uploading the used one keeps it used.
	if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:hs", DeviceID: "DEV",
		FallbackKeys: []storage.OneTimeKey{otk("signed_curve25519", "F", "kf")}}); err != nil {
		t.Fatal(err)
	}
	if fb, _ := s.UnusedFallbackKeyTypes(ctx, "@a:hs", "DEV"); len(fb) != 0 {
		t.Fatalf("identical fallback re-upload reset used: %v", fb)
	}
	if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:hs", DeviceID: "DEV",
		FallbackKeys: []storage.OneTimeKey{otk("signed_curve25519", "G", "kg")}}); err != nil {
		t.Fatal(err)
	}
	if fb, _ := s.UnusedFallbackKeyTypes(ctx, "@a:hs", "DEV"); len(fb) != 1 {
		t.Fatalf("new fallback not unused: %v", fb)
	}
	// No key at all for another algorithm: left out.
	got, err := s.ClaimKeys(ctx, []storage.KeyClaim{{UserID: "@a:hs", DeviceID: "DEV", Algorithm: "other"}})
	if err != nil || len(got) != 0 {
		t.Fatalf("claim of missing algorithm: %v %v", got, err)
	}
}

func TestE2EEClaimConcurrentExactlyOnce(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "DEV")
	const keys, claimers = 40, 100
	var ks []storage.OneTimeKey
	for i := range keys {
		ks = append(ks, otk("signed_curve25519", fmt.Sprintf("K%03d", i), fmt.Sprintf("key%d", i)))
	}
	if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:hs", DeviceID: "DEV", OneTimeKeys: ks,
		FallbackKeys: []storage.OneTimeKey{otk("signed_curve25519", "FB", "kf")}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range claimers {
		wg.Go(func() {
			got, err := s.ClaimKeys(ctx, []storage.KeyClaim{{UserID: "@a:hs", DeviceID: "DEV", Algorithm: "signed_curve25519"}})
			if err != nil || len(got) != 1 {
				t.Errorf("claim: %v %v", got, err)
				return
			}
			mu.Lock()
			seen[got[0].KeyID]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for id, n := range seen {
		if id != "FB" && n != 1 {
			t.Errorf("one-time key %s handed out %d times", id, n)
		}
	}
	if len(seen) != keys+1 || seen["FB"] != claimers-keys {
		t.Fatalf("distinct keys %d, fallback %d", len(seen), seen["FB"])
	}
}

func TestE2EEClaimManyDevicesOneCall(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	const n = 300
	var claims []storage.KeyClaim
	for i := range n {
		u := fmt.Sprintf("@u%d:hs", i)
		addDevices(t, s, u, "D")
		if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: u, DeviceID: "D",
			OneTimeKeys: []storage.OneTimeKey{otk("signed_curve25519", "A", "x"), otk("signed_curve25519", "B", "y")}}); err != nil {
			t.Fatal(err)
		}
		claims = append(claims, storage.KeyClaim{UserID: u, DeviceID: "D", Algorithm: "signed_curve25519"})
	}
	got, err := s.ClaimKeys(ctx, claims)
	if err != nil || len(got) != n {
		t.Fatalf("claimed %d, %v", len(got), err)
	}
	for _, k := range got {
		if k.KeyID != "A" { // oldest first
			t.Fatalf("claimed %s of %s", k.KeyID, k.UserID)
		}
	}
}

func TestE2EEToDevice(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "A1")
	addDevices(t, s, "@b:hs", "B1", "B2", "B3")
	send := storage.ToDeviceSend{Sender: "@a:hs", SenderDevice: "A1", TxnID: "t1", Type: "m.test",
		Messages: []storage.ToDeviceMessage{
			{UserID: "@b:hs", DeviceID: "*", Content: json.RawMessage(`{"n":1}`)},
			{UserID: "@a:hs", DeviceID: "GONE", Content: json.RawMessage(`{"n":2}`)},
		}}
	if _, err := s.SendToDevice(ctx, send); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendToDevice(ctx, send); !errors.Is(err, storage.ErrDuplicateTxn) {
		t.Fatalf("retransmission: %v", err)
	}
	for _, d := range []string{"B1", "B2", "B3"} {
		evs, err := s.ToDevice(ctx, "@b:hs", d, 0, 100)
		if err != nil || len(evs) != 1 || string(evs[0].Content) != `{"n":1}` || evs[0].Sender != "@a:hs" {
			t.Fatalf("%s: %+v %v", d, evs, err)
		}
	}
	if evs, _ := s.ToDevice(ctx, "@a:hs", "A1", 0, 100); len(evs) != 0 {
		t.Fatalf("sender's other device got %v", evs)
	}
	// Not acknowledged: delivered again. Acknowledged: gone.
	evs, _ := s.ToDevice(ctx, "@b:hs", "B1", 0, 100)
	if len(evs) != 1 {
		t.Fatal("redelivery failed")
	}
	if evs2, _ := s.ToDevice(ctx, "@b:hs", "B1", evs[0].ID, 100); len(evs2) != 0 {
		t.Fatalf("after ack: %v", evs2)
	}
	if has, _ := s.HasToDevice(ctx, "@b:hs", "B1", 0); has {
		t.Fatal("acknowledged message still queued")
	}
	if has, _ := s.HasToDevice(ctx, "@b:hs", "B2", 0); !has {
		t.Fatal("B2's message lost")
	}
}

func TestE2EEToDeviceLimitKeepsTail(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "A")
	addDevices(t, s, "@b:hs", "B")
	for i := range 5 {
		if _, err := s.SendToDevice(ctx, storage.ToDeviceSend{Sender: "@a:hs", SenderDevice: "A", TxnID: fmt.Sprint(i), Type: "m.t",
			Messages: []storage.ToDeviceMessage{{UserID: "@b:hs", DeviceID: "B", Content: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	var ack int64
	var got []string
	for range 3 {
		evs, err := s.ToDevice(ctx, "@b:hs", "B", ack, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			got = append(got, string(e.Content))
			ack = e.ID
		}
	}
	if fmt.Sprint(got) != `[{"i":0} {"i":1} {"i":2} {"i":3} {"i":4}]` {
		t.Fatalf("got %v", got)
	}
}

func TestE2EEDeviceDeletion(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "D1", "D2")
	if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:hs", DeviceID: "D1", DeviceKeys: json.RawMessage(`{}`),
		OneTimeKeys: []storage.OneTimeKey{otk("signed_curve25519", "A", "ka")}}); err != nil {
		t.Fatal(err)
	}
	before := s.Pos()
	if err := s.DeleteDevices(ctx, "@a:hs", []string{"D1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DeviceKeys(ctx, map[string][]string{"@a:hs": nil}); len(got) != 0 {
		t.Fatalf("keys of deleted device served: %v", got)
	}
	if c, _ := s.OneTimeKeyCounts(ctx, "@a:hs", "D1"); len(c) != 0 {
		t.Fatalf("one-time keys of deleted device kept: %v", c)
	}
	ch, err := s.DeviceListChanges(ctx, before, s.Pos())
	if err != nil || len(ch) != 1 || ch[0].UserID != "@a:hs" {
		t.Fatalf("device-list change on deletion: %v %v", ch, err)
	}
}

func TestE2EECrossSigningAndSignatures(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	msk := storage.CrossSigningKey{UserID: "@a:hs", Usage: storage.UsageMaster, PublicKey: "M1", JSON: json.RawMessage(`{"m":1}`)}
	usk := storage.CrossSigningKey{UserID: "@a:hs", Usage: storage.UsageUserSigning, PublicKey: "U1", JSON: json.RawMessage(`{"u":1}`)}
	ch, err := s.PutCrossSigningKeys(ctx, "@a:hs", []storage.CrossSigningKey{msk, usk})
	if err != nil || len(ch) != 1 || ch[0].SelfOnly {
		t.Fatalf("first upload: %v %v", ch, err)
	}
	if ch, _ := s.PutCrossSigningKeys(ctx, "@a:hs", []storage.CrossSigningKey{msk}); len(ch) != 0 {
		t.Fatalf("identical upload recorded %v", ch)
	}
	usk2 := usk
	usk2.PublicKey, usk2.JSON = "U2", json.RawMessage(`{"u":2}`)
	if ch, _ := s.PutCrossSigningKeys(ctx, "@a:hs", []storage.CrossSigningKey{usk2}); len(ch) != 1 || !ch[0].SelfOnly {
		t.Fatalf("user-signing key change should be self-only: %v", ch)
	}
	sig := storage.KeySignature{TargetUserID: "@a:hs", TargetKeyID: "M1", SignerUserID: "@a:hs", SignerKeyID: "ed25519:DEV", Signature: "s"}
	other := storage.KeySignature{TargetUserID: "@b:hs", TargetKeyID: "MB", SignerUserID: "@a:hs", SignerKeyID: "ed25519:U2", Signature: "t"}
	ch, err = s.PutSignatures(ctx, []storage.KeySignature{sig, other})
	if err != nil || len(ch) != 2 || ch[0].UserID != "@a:hs" || ch[0].SelfOnly || !ch[1].SelfOnly {
		t.Fatalf("signature changes: %+v %v", ch, err)
	}
	got, _ := s.Signatures(ctx, []string{"@a:hs"})
	if len(got) != 1 {
		t.Fatalf("signatures %v", got)
	}
	// A new master key drops the signatures on the old one.
	msk2 := msk
	msk2.PublicKey, msk2.JSON = "M2", json.RawMessage(`{"m":2}`)
	if _, err := s.PutCrossSigningKeys(ctx, "@a:hs", []storage.CrossSigningKey{msk2}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Signatures(ctx, []string{"@a:hs"}); len(got) != 0 {
		t.Fatalf("old master key signatures kept: %v", got)
	}
}

func bk(room, sess string, fmi, fc int64, verified bool, data string) storage.BackupKey {
	return storage.BackupKey{RoomID: room, SessionID: sess, FirstMessageIndex: fmi, ForwardedCount: fc, IsVerified: verified,
		SessionData: json.RawMessage(`{"d":"` + data + `"}`)}
}

func TestE2EEBackup(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	if _, err := s.BackupVersion(ctx, "@a:hs", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("no backup: %v", err)
	}
	if _, err := s.PutBackupKeys(ctx, "@a:hs", "1", nil); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("put without backup: %v", err)
	}
	v1, err := s.CreateBackupVersion(ctx, "@a:hs", "alg", json.RawMessage(`{"public_key":"x"}`))
	if err != nil || v1 != "1" {
		t.Fatal(v1, err)
	}
	c, err := s.PutBackupKeys(ctx, "@a:hs", v1, []storage.BackupKey{bk("!r", "s1", 5, 0, false, "a")})
	if err != nil || c.Count != 1 {
		t.Fatal(c, err)
	}
	etag := c.ETag
	// Replacement rule, step by step.
	steps := []struct {
		k    storage.BackupKey
		keep string // session data after the step
	}{
		{bk("!r", "s1", 6, 0, false, "b"), "a"}, // higher index: kept old
		{bk("!r", "s1", 3, 0, false, "c"), "c"}, // lower index: replaced
		{bk("!r", "s1", 3, 1, false, "d"), "c"}, // more forwarded: kept
		{bk("!r", "s1", 9, 9, true, "e"), "e"},  // verified wins
		{bk("!r", "s1", 0, 0, false, "f"), "e"}, // unverified never replaces verified
	}
	for i, st := range steps {
		if _, err := s.PutBackupKeys(ctx, "@a:hs", v1, []storage.BackupKey{st.k}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.BackupKeys(ctx, "@a:hs", v1, "!r", "s1")
		if len(got) != 1 || string(got[0].SessionData) != `{"d":"`+st.keep+`"}` {
			t.Fatalf("step %d: %s", i, got[0].SessionData)
		}
	}
	v, _ := s.BackupVersion(ctx, "@a:hs", "")
	if v.ETag == etag || v.Count != 1 {
		t.Fatalf("etag unchanged or count wrong: %+v", v)
	}
	v2, _ := s.CreateBackupVersion(ctx, "@a:hs", "alg", json.RawMessage(`{}`))
	var wv *storage.WrongBackupVersionError
	if _, err := s.PutBackupKeys(ctx, "@a:hs", v1, []storage.BackupKey{bk("!r", "s2", 0, 0, false, "x")}); !errors.As(err, &wv) || wv.Current != v2 {
		t.Fatalf("write to old version: %v", err)
	}
	if err := s.DeleteBackupVersion(ctx, "@a:hs", v2); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBackupVersion(ctx, "@a:hs", v2); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.DeleteBackupVersion(ctx, "@a:hs", "99"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete of unknown version: %v", err)
	}
	if v, _ := s.BackupVersion(ctx, "@a:hs", ""); v.Version != v1 {
		t.Fatalf("latest after delete: %+v", v)
	}
	if v3, _ := s.CreateBackupVersion(ctx, "@a:hs", "alg", json.RawMessage(`{}`)); v3 != "3" {
		t.Fatalf("version reused: %s", v3)
	}
	// Another user's backup is separate.
	if _, err := s.BackupVersion(ctx, "@b:hs", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("other user sees a backup: %v", err)
	}
	c, err = s.DeleteBackupKeys(ctx, "@a:hs", v1, "!r", "")
	if err != nil || c.Count != 0 {
		t.Fatal(c, err)
	}
}

func BenchmarkE2EEClaim1000Devices(b *testing.B) {
	s := openE2EE(b)
	ctx := context.Background()
	const n = 1000
	var claims []storage.KeyClaim
	for i := range n {
		u := fmt.Sprintf("@u%d:hs", i)
		addDevices(b, s, u, "D")
		if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: u, DeviceID: "D",
			FallbackKeys: []storage.OneTimeKey{otk("signed_curve25519", "F", "f")}}); err != nil {
			b.Fatal(err)
		}
		claims = append(claims, storage.KeyClaim{UserID: u, DeviceID: "D", Algorithm: "signed_curve25519"})
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.ClaimKeys(ctx, claims)
		if err != nil || len(got) != n {
			b.Fatal(len(got), err)
		}
	}
}

func BenchmarkE2EESendToDevice1000(b *testing.B) {
	s := openE2EE(b)
	ctx := context.Background()
	var msgs []storage.ToDeviceMessage
	for i := range 1000 {
		u := fmt.Sprintf("@u%d:hs", i)
		addDevices(b, s, u, "D")
		msgs = append(msgs, storage.ToDeviceMessage{UserID: u, DeviceID: "D", Content: json.RawMessage(`{"ciphertext":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.SendToDevice(ctx, storage.ToDeviceSend{Sender: "@u0:hs", SenderDevice: "D", TxnID: fmt.Sprint(i), Type: "m.t", Messages: msgs}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestE2EEDeviceSyncState(t *testing.T) {
	s := openE2EE(t)
	ctx := context.Background()
	addDevices(t, s, "@a:hs", "A")
	addDevices(t, s, "@b:hs", "B")
	if _, _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@b:hs", DeviceID: "B",
		OneTimeKeys:  []storage.OneTimeKey{otk("signed_curve25519", "1", "x"), otk("signed_curve25519", "2", "y"), otk("curve25519", "3", "z")},
		FallbackKeys: []storage.OneTimeKey{otk("signed_curve25519", "F", "f")}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.SendToDevice(ctx, storage.ToDeviceSend{Sender: "@a:hs", SenderDevice: "A", TxnID: fmt.Sprint(i), Type: "m.t",
			Messages: []storage.ToDeviceMessage{{UserID: "@b:hs", DeviceID: "B", Content: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.DeviceSyncState(ctx, "@b:hs", "B", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ToDevice) != 2 || st.AckPending || st.OneTimeKeyCounts["signed_curve25519"] != 2 || st.OneTimeKeyCounts["curve25519"] != 1 ||
		fmt.Sprint(st.UnusedFallbackKeyTypes) != "[signed_curve25519]" {
		t.Fatalf("state: %+v", st)
	}
	st2, _ := s.DeviceSyncState(ctx, "@b:hs", "B", st.ToDevice[1].ID, 2)
	if len(st2.ToDevice) != 1 || !st2.AckPending || string(st2.ToDevice[0].Content) != `{"i":2}` {
		t.Fatalf("after ack: %+v", st2)
	}
	if err := s.AckToDevice(ctx, "@b:hs", "B", st.ToDevice[1].ID); err != nil {
		t.Fatal(err)
	}
	if st3, _ := s.DeviceSyncState(ctx, "@b:hs", "B", st.ToDevice[1].ID, 2); st3.AckPending || len(st3.ToDevice) != 1 {
		t.Fatalf("after delete: %+v", st3)
	}
}
