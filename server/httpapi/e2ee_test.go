package httpapi_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"myelin/canonicaljson"
	"myelin/server/httpapi"
	"myelin/server/storage"
)

const v3 = "/_matrix/client/v3"

func startE2EE(t *testing.T) *testServer {
	return startServer(t, func(c *httpapi.Config) { c.E2EE = c.Store.(storage.E2EE) })
}

var b64 = base64.RawStdEncoding

// edKey is an Ed25519 key pair made from a fixed seed (deterministic tests).
type edKey struct {
	pub  string
	priv ed25519.PrivateKey
}

func newKey(seed byte) edKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	p := ed25519.NewKeyFromSeed(s)
	return edKey{pub: b64.EncodeToString(p.Public().(ed25519.PublicKey)), priv: p}
}

// sign adds userID's signature with key "ed25519:<name>" to obj (Matrix
// signed JSON: canonical form without signatures and unsigned).
func sign(t *testing.T, obj map[string]any, userID, name string, k edKey) map[string]any {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := canonicaljson.CanonicalizeWithout(raw, "signatures", "unsigned")
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	sigs, _ := out["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
	}
	us, _ := sigs[userID].(map[string]any)
	if us == nil {
		us = map[string]any{}
	}
	us["ed25519:"+name] = b64.EncodeToString(ed25519.Sign(k.priv, msg))
	sigs[userID] = us
	out["signatures"] = sigs
	return out
}

func deviceKeys(t *testing.T, u user, k edKey) map[string]any {
	return sign(t, map[string]any{
		"user_id": u.id, "device_id": u.device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"curve25519:" + u.device: b64.EncodeToString(make([]byte, 32)), "ed25519:" + u.device: k.pub},
	}, u.id, u.device, k)
}

func csKey(t *testing.T, u user, usage string, k, master edKey) map[string]any {
	o := map[string]any{"user_id": u.id, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + k.pub: k.pub}}
	if usage != "master" {
		return sign(t, o, u.id, master.pub, master)
	}
	return o
}

func (ts *testServer) login(name, deviceID string) user {
	ts.t.Helper()
	r := ts.must(200, "POST", v3+"/login", "", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": name}, "password": "pw-" + name, "device_id": deviceID})
	return user{id: r.str("user_id"), token: r.str("access_token"), device: r.str("device_id")}
}

func otks(prefix string, n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("signed_curve25519:%s%03d", prefix, i)] = map[string]any{"key": fmt.Sprintf("k%s%d", prefix, i), "signatures": map[string]any{}}
	}
	return m
}

func num(v any) int { f, _ := v.(float64); return int(f) }

func TestE2EEUploadQueryClaim(t *testing.T) {
	ts := startE2EE(t)
	a, b := ts.register("alice"), ts.register("bob")
	ka := newKey(1)
	dk := deviceKeys(t, a, ka)

	r := ts.must(200, "POST", v3+"/keys/upload", a.token, map[string]any{"device_keys": dk, "one_time_keys": otks("A", 2),
		"fallback_keys": map[string]any{"signed_curve25519:FB": map[string]any{"key": "fb", "fallback": true, "signatures": map[string]any{}}}})
	if num(path(r.body, "one_time_key_counts", "signed_curve25519")) != 2 {
		t.Fatalf("counts: %s", r.raw)
	}
	// An empty upload still reports signed_curve25519.
	r = ts.must(200, "POST", v3+"/keys/upload", b.token, map[string]any{})
	if v, ok := path(r.body, "one_time_key_counts").(map[string]any)["signed_curve25519"]; !ok || num(v) != 0 {
		t.Fatalf("empty upload counts: %s", r.raw)
	}

	// Refusals: keys for another device or user, a reused key ID with a new key.
	for name, body := range map[string]any{
		"other device": map[string]any{"device_keys": deviceKeys(t, user{id: a.id, device: "OTHER"}, ka)},
		"other user":   map[string]any{"device_keys": deviceKeys(t, user{id: b.id, device: a.device}, ka)},
		"key reuse":    map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A000": map[string]any{"key": "different", "signatures": map[string]any{}}}},
		"bad name":     map[string]any{"one_time_keys": map[string]any{"nocolon": "x"}},
	} {
		if r := ts.do("POST", v3+"/keys/upload", a.token, body); r.status != 400 {
			t.Errorf("%s: status %d %s", name, r.status, r.raw)
		}
	}

	// Query: the uploaded object comes back unchanged apart from unsigned.
	r = ts.must(200, "POST", v3+"/keys/query", b.token, map[string]any{"device_keys": map[string]any{a.id: []string{}, "@nobody:test.local": []string{}}})
	got, _ := path(r.body, "device_keys", a.id, a.device).(map[string]any)
	if got == nil || path(got, "keys", "ed25519:"+a.device) != ka.pub || path(got, "signatures", a.id, "ed25519:"+a.device) != path(dk, "signatures", a.id, "ed25519:"+a.device) {
		t.Fatalf("query: %s", r.raw)
	}
	if _, ok := r.body["failures"].(map[string]any); !ok {
		t.Fatalf("failures missing: %s", r.raw)
	}

	// Claims: each one-time key once, then the fallback key forever.
	claim := map[string]any{"one_time_keys": map[string]any{a.id: map[string]string{a.device: "signed_curve25519"}}}
	var ids []string
	for range 4 {
		r = ts.must(200, "POST", v3+"/keys/claim", b.token, claim)
		m, _ := path(r.body, "one_time_keys", a.id, a.device).(map[string]any)
		if len(m) != 1 {
			t.Fatalf("claim: %s", r.raw)
		}
		for k := range m {
			ids = append(ids, k)
		}
	}
	// The two one-time keys came in one upload (a JSON object: no order
	// between them), so either may go first; the fallback key only after.
	slices.Sort(ids[:2])
	if fmt.Sprint(ids) != "[signed_curve25519:A000 signed_curve25519:A001 signed_curve25519:FB signed_curve25519:FB]" {
		t.Fatalf("claimed %v", ids)
	}
	s := ts.sync(a, "timeout=0")
	if num(path(s.body, "device_one_time_keys_count", "signed_curve25519")) != 0 || len(list(s.body["device_unused_fallback_key_types"])) != 0 {
		t.Fatalf("sync after fallback use: %s", s.raw)
	}
	// Unknown device: simply absent.
	r = ts.must(200, "POST", v3+"/keys/claim", b.token, map[string]any{"one_time_keys": map[string]any{a.id: map[string]string{"NOPE": "signed_curve25519"}}})
	if len(path(r.body, "one_time_keys").(map[string]any)) != 0 {
		t.Fatalf("claim of unknown device: %s", r.raw)
	}
}

func TestE2EEClaimConcurrentHTTP(t *testing.T) {
	ts := startE2EE(t)
	a, b := ts.register("alice"), ts.register("bob")
	const keys, claimers = 10, 30
	ts.must(200, "POST", v3+"/keys/upload", a.token, map[string]any{"one_time_keys": otks("K", keys)})
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range claimers {
		wg.Go(func() {
			r := ts.do("POST", v3+"/keys/claim", b.token, map[string]any{"one_time_keys": map[string]any{a.id: map[string]string{a.device: "signed_curve25519"}}})
			m, _ := path(r.body, "one_time_keys", a.id, a.device).(map[string]any)
			mu.Lock()
			defer mu.Unlock()
			for k := range m {
				seen[k]++
			}
		})
	}
	wg.Wait()
	if len(seen) != keys {
		t.Fatalf("%d distinct keys handed out, want %d", len(seen), keys)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s handed out %d times", k, n)
		}
	}
}

func TestE2EECrossSigning(t *testing.T) {
	ts := startE2EE(t)
	a, b := ts.register("alice"), ts.register("bob")
	msk, ssk, usk := newKey(10), newKey(11), newKey(12)
	up := map[string]any{
		"master_key":       csKey(t, a, "master", msk, msk),
		"self_signing_key": csKey(t, a, "self_signing", ssk, msk),
		"user_signing_key": csKey(t, a, "user_signing", usk, msk),
	}
	// A self-signing key not signed by the master key is refused.
	bad := map[string]any{"master_key": up["master_key"], "self_signing_key": csKey(t, a, "self_signing", ssk, newKey(99))}
	if r := ts.do("POST", v3+"/keys/device_signing/upload", a.token, bad); r.status != 400 || r.errcode() != "M_INVALID_SIGNATURE" {
		t.Fatalf("unsigned SSK: %d %s", r.status, r.raw)
	}
	// Only a master key can stand alone.
	if r := ts.do("POST", v3+"/keys/device_signing/upload", b.token, map[string]any{"self_signing_key": csKey(t, b, "self_signing", ssk, msk)}); r.errcode() != "M_MISSING_PARAM" {
		t.Fatalf("SSK without master: %d %s", r.status, r.raw)
	}
	// First upload: no UIA. The same keys again: no UIA either.
	ts.must(200, "POST", v3+"/keys/device_signing/upload", a.token, up)
	ts.must(200, "POST", v3+"/keys/device_signing/upload", a.token, up)

	// The user-signing key is visible to its owner only.
	for _, who := range []user{a, b} {
		r := ts.must(200, "POST", v3+"/keys/query", who.token, map[string]any{"device_keys": map[string]any{a.id: []string{}}})
		if path(r.body, "master_keys", a.id, "keys", "ed25519:"+msk.pub) != msk.pub || path(r.body, "self_signing_keys", a.id) == nil {
			t.Fatalf("query by %s: %s", who.id, r.raw)
		}
		_, hasUSK := path(r.body, "user_signing_keys").(map[string]any)[a.id]
		if hasUSK != (who.id == a.id) {
			t.Errorf("user-signing key visible to %s: %v", who.id, hasUSK)
		}
	}

	// Replacing the master key needs the password.
	msk2 := newKey(20)
	reset := map[string]any{"master_key": csKey(t, a, "master", msk2, msk2), "self_signing_key": csKey(t, a, "self_signing", ssk, msk2)}
	r := ts.do("POST", v3+"/keys/device_signing/upload", a.token, reset)
	if r.status != 401 || r.str("session") == "" {
		t.Fatalf("reset without UIA: %d %s", r.status, r.raw)
	}
	reset["auth"] = map[string]any{"type": "m.login.password", "session": r.str("session"), "password": "pw-alice",
		"identifier": map[string]any{"type": "m.id.user", "user": a.id}}
	ts.must(200, "POST", v3+"/keys/device_signing/upload", a.token, reset)
	r = ts.must(200, "POST", v3+"/keys/query", b.token, map[string]any{"device_keys": map[string]any{a.id: []string{}}})
	if path(r.body, "master_keys", a.id, "keys", "ed25519:"+msk2.pub) != msk2.pub {
		t.Fatalf("master key not replaced: %s", r.raw)
	}

	// A device ID equal to a cross-signing key is refused at login.
	if r := ts.do("POST", v3+"/login", "", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "pw-alice", "device_id": msk2.pub}); r.status != 403 {
		t.Fatalf("login with a device ID equal to the master key: %d %s", r.status, r.raw)
	}
}

func TestE2EECrossSigningKeyEqualsDeviceID(t *testing.T) {
	ts := startE2EE(t)
	k := newKey(7)
	a := ts.register("alice")
	a2 := ts.login("alice", k.pub) // a device named like the key to come
	_ = a2
	r := ts.do("POST", v3+"/keys/device_signing/upload", a.token, map[string]any{"master_key": csKey(t, a, "master", k, k)})
	if r.status != 403 || r.errcode() != "M_FORBIDDEN" {
		t.Fatalf("master key equal to a device ID: %d %s", r.status, r.raw)
	}
}

func TestE2EESignaturesUpload(t *testing.T) {
	ts := startE2EE(t)
	a, b, c := ts.register("alice"), ts.register("bob"), ts.register("carol")
	ka := newKey(1)
	dk := deviceKeys(t, a, ka)
	ts.must(200, "POST", v3+"/keys/upload", a.token, map[string]any{"device_keys": dk})
	amsk, assk, ausk := newKey(10), newKey(11), newKey(12)
	ts.must(200, "POST", v3+"/keys/device_signing/upload", a.token, map[string]any{
		"master_key": csKey(t, a, "master", amsk, amsk), "self_signing_key": csKey(t, a, "self_signing", assk, amsk),
		"user_signing_key": csKey(t, a, "user_signing", ausk, amsk)})
	bmsk := newKey(20)
	bm := csKey(t, b, "master", bmsk, bmsk)
	ts.must(200, "POST", v3+"/keys/device_signing/upload", b.token, map[string]any{"master_key": bm})

	signedDev := sign(t, dk, a.id, assk.pub, assk)
	signedMaster := sign(t, csKey(t, a, "master", amsk, amsk), a.id, a.device, ka)
	forged := sign(t, dk, a.id, assk.pub, newKey(66)) // wrong key
	r := ts.must(200, "POST", v3+"/keys/signatures/upload", a.token, map[string]any{
		a.id: map[string]any{a.device: signedDev, amsk.pub: signedMaster},
		b.id: map[string]any{bmsk.pub: sign(t, bm, a.id, ausk.pub, ausk)},
	})
	if f, _ := r.body["failures"].(map[string]any); len(f) != 0 {
		t.Fatalf("failures: %s", r.raw)
	}
	r = ts.must(200, "POST", v3+"/keys/signatures/upload", a.token, map[string]any{a.id: map[string]any{a.device: forged}})
	if path(r.body, "failures", a.id, a.device, "errcode") != "M_INVALID_SIGNATURE" {
		t.Fatalf("forged signature: %s", r.raw)
	}
	// Changed content under an existing key is refused too.
	changed := map[string]any{}
	for k, v := range dk {
		changed[k] = v
	}
	changed["algorithms"] = []string{"evil"}
	r = ts.must(200, "POST", v3+"/keys/signatures/upload", a.token, map[string]any{a.id: map[string]any{a.device: sign(t, changed, a.id, assk.pub, assk)}})
	if path(r.body, "failures", a.id, a.device, "errcode") != "M_INVALID_SIGNATURE" {
		t.Fatalf("changed object: %s", r.raw)
	}

	// Everybody sees the self-signing signature on Alice's device and her
	// device's signature on her master key.
	r = ts.must(200, "POST", v3+"/keys/query", c.token, map[string]any{"device_keys": map[string]any{a.id: []string{}, b.id: []string{}}})
	if path(r.body, "device_keys", a.id, a.device, "signatures", a.id, "ed25519:"+assk.pub) == nil {
		t.Fatalf("device signature missing: %s", r.raw)
	}
	if path(r.body, "master_keys", a.id, "signatures", a.id, "ed25519:"+a.device) == nil {
		t.Fatalf("master key device signature missing: %s", r.raw)
	}
	// Alice's signature on Bob's master key is Alice's business.
	if path(r.body, "master_keys", b.id, "signatures", a.id) != nil {
		t.Fatalf("carol sees alice's user-signing signature: %s", r.raw)
	}
	r = ts.must(200, "POST", v3+"/keys/query", a.token, map[string]any{"device_keys": map[string]any{b.id: []string{}}})
	if path(r.body, "master_keys", b.id, "signatures", a.id, "ed25519:"+ausk.pub) == nil {
		t.Fatalf("alice does not see her signature: %s", r.raw)
	}
	// Signing someone else's device is not a thing.
	r = ts.must(200, "POST", v3+"/keys/signatures/upload", a.token, map[string]any{b.id: map[string]any{b.device: map[string]any{"signatures": map[string]any{}}}})
	if path(r.body, "failures", b.id, b.device) == nil {
		t.Fatalf("signature on another user's device: %s", r.raw)
	}
}

func toDeviceBodies(r resp) []string {
	var out []string
	for _, e := range list(path(r.body, "to_device", "events")) {
		out = append(out, fmt.Sprint(path(e, "content", "n")))
	}
	return out
}

func TestE2EESendToDevice(t *testing.T) {
	ts := startE2EE(t)
	a, c := ts.register("alice"), ts.register("carol")
	b1 := ts.register("bob")
	b2 := ts.login("bob", "BOB2")
	// Initial syncs: nothing queued.
	s1 := ts.sync(b1, "timeout=0")
	s2 := ts.sync(b2, "timeout=0")
	sc := ts.sync(c, "timeout=0")

	put := func(txn string, msgs map[string]any) {
		ts.must(200, "PUT", v3+"/sendToDevice/m.test/"+txn, a.token, map[string]any{"messages": msgs})
	}
	put("t1", map[string]any{b1.id: map[string]any{"*": map[string]any{"n": 1}}})
	put("t1", map[string]any{b1.id: map[string]any{"*": map[string]any{"n": 1}}}) // retransmission
	put("t2", map[string]any{b1.id: map[string]any{b2.device: map[string]any{"n": 2}}})

	r1 := ts.sync(b1, "timeout=0&since="+s1.str("next_batch"))
	r2 := ts.sync(b2, "timeout=0&since="+s2.str("next_batch"))
	if got := toDeviceBodies(r1); fmt.Sprint(got) != "[1]" {
		t.Errorf("bob's first device got %v", got)
	}
	if got := toDeviceBodies(r2); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("bob's second device got %v", got)
	}
	if ev := list(path(r1.body, "to_device", "events")); len(ev) == 1 && (path(ev[0], "sender") != a.id || path(ev[0], "type") != "m.test") {
		t.Errorf("event: %v", ev[0])
	}
	if got := toDeviceBodies(ts.sync(c, "timeout=0&since="+sc.str("next_batch"))); len(got) != 0 {
		t.Errorf("carol got %v", got)
	}
	// A lost response: syncing again from the old token delivers again.
	if got := toDeviceBodies(ts.sync(b1, "timeout=0&since="+s1.str("next_batch"))); fmt.Sprint(got) != "[1]" {
		t.Errorf("redelivery got %v", got)
	}
	// Acknowledged by the next token: gone for good.
	r1b := ts.sync(b1, "timeout=0&since="+r1.str("next_batch"))
	if got := toDeviceBodies(r1b); len(got) != 0 {
		t.Errorf("after acknowledgement got %v", got)
	}
	if got := toDeviceBodies(ts.sync(b1, "timeout=0&since="+s1.str("next_batch"))); len(got) != 0 {
		t.Errorf("acknowledged message came back: %v", got)
	}

	// A long-polling sync wakes for a new message: whether the sync is
	// already parked when the message is sent (woken) or not yet (returns at
	// once), it must answer with the message long before its timeout.
	done := make(chan resp, 1)
	start := time.Now()
	go func() { done <- ts.do("GET", v3+"/sync?timeout=20000&since="+r1b.str("next_batch"), b1.token, nil) }()
	put("wake", map[string]any{b1.id: map[string]any{b1.device: map[string]any{"n": 3}}})
	if got := toDeviceBodies(<-done); fmt.Sprint(got) != "[3]" || time.Since(start) > 15*time.Second {
		t.Errorf("long-polling sync got %v after %v", got, time.Since(start))
	}

	// Idempotency is per device: the same txn ID from another device is new.
	ts.must(200, "PUT", v3+"/sendToDevice/m.test/t1", b2.token, map[string]any{"messages": map[string]any{c.id: map[string]any{"*": map[string]any{"n": 4}}}})
	if got := toDeviceBodies(ts.sync(c, "timeout=0&since="+sc.str("next_batch"))); fmt.Sprint(got) != "[4]" {
		t.Errorf("carol got %v", got)
	}
}

func TestE2EEToDeviceManyDevicesFanOut(t *testing.T) {
	ts := startE2EE(t)
	a := ts.register("alice")
	b := ts.register("bob")
	const n = 30
	devs := []user{b}
	for i := range n - 1 {
		devs = append(devs, ts.login("bob", fmt.Sprintf("D%02d", i)))
	}
	ts.must(200, "PUT", v3+"/sendToDevice/m.test/fan", a.token, map[string]any{"messages": map[string]any{b.id: map[string]any{"*": map[string]any{"n": 7}}}})
	for _, d := range devs {
		if got := toDeviceBodies(ts.sync(d, "timeout=0")); fmt.Sprint(got) != "[7]" {
			t.Fatalf("%s got %v", d.device, got)
		}
	}
}

func TestE2EEDeviceLists(t *testing.T) {
	ts := startE2EE(t)
	a, b, c := ts.register("alice"), ts.register("bob"), ts.register("carol")
	room := ts.createRoom(a, nil)
	ts.invite(a, room, b.id)
	ts.join(b, room)
	sb := ts.sync(b, "timeout=0")
	sc := ts.sync(c, "timeout=0")
	sa := ts.sync(a, "timeout=0")

	// Alice uploads keys for a new device.
	a2 := ts.login("alice", "NEWDEV")
	ts.must(200, "POST", v3+"/keys/upload", a2.token, map[string]any{"device_keys": deviceKeys(t, a2, newKey(3))})

	rb := ts.sync(b, "timeout=0&since="+sb.str("next_batch"))
	if !slices.Contains(toStrings(path(rb.body, "device_lists", "changed")), a.id) {
		t.Fatalf("bob not told: %s", rb.raw)
	}
	ra := ts.sync(a, "timeout=0&since="+sa.str("next_batch"))
	if !slices.Contains(toStrings(path(ra.body, "device_lists", "changed")), a.id) {
		t.Fatalf("alice not told of her own new device: %s", ra.raw)
	}
	// Renaming a device changes what /keys/query shows: a device-list change.
	ts.must(200, "PUT", v3+"/devices/NEWDEV", a2.token, map[string]any{"display_name": "renamed"})
	rb1 := ts.sync(b, "timeout=0&since="+rb.str("next_batch"))
	if !slices.Contains(toStrings(path(rb1.body, "device_lists", "changed")), a.id) {
		t.Fatalf("bob not told of alice's device rename: %s", rb1.raw)
	}
	rc := ts.sync(c, "timeout=0&since="+sc.str("next_batch"))
	if slices.Contains(toStrings(path(rc.body, "device_lists", "changed")), a.id) {
		t.Fatalf("carol (no shared room) told: %s", rc.raw)
	}
	r := ts.must(200, "GET", v3+"/keys/changes?from="+sb.str("next_batch")+"&to="+rb.str("next_batch"), b.token, nil)
	if !slices.Contains(toStrings(r.body["changed"]), a.id) {
		t.Fatalf("keys/changes: %s", r.raw)
	}
	r = ts.must(200, "GET", v3+"/keys/changes?from="+sc.str("next_batch")+"&to="+rc.str("next_batch"), c.token, nil)
	if len(toStrings(r.body["changed"])) != 0 {
		t.Fatalf("keys/changes for carol: %s", r.raw)
	}

	// Carol joins: Alice and Bob learn about her, and she about them
	// (/keys/changes over the range).
	ts.invite(a, room, c.id)
	ts.join(c, room)
	rb2 := ts.sync(b, "timeout=0&since="+rb.str("next_batch"))
	if !slices.Contains(toStrings(path(rb2.body, "device_lists", "changed")), c.id) {
		t.Fatalf("bob not told of carol's join: %s", rb2.raw)
	}
	r = ts.must(200, "GET", v3+"/keys/changes?from="+rc.str("next_batch")+"&to="+ts.sync(c, "timeout=0").str("next_batch"), c.token, nil)
	if ch := toStrings(r.body["changed"]); !slices.Contains(ch, a.id) || !slices.Contains(ch, b.id) {
		t.Fatalf("carol's keys/changes after joining: %s", r.raw)
	}
	// Bob leaves: Alice's /keys/changes lists him as left.
	before := ts.sync(a, "timeout=0").str("next_batch")
	ts.must(200, "POST", v3+"/rooms/"+esc(room)+"/leave", b.token, map[string]any{})
	after := ts.sync(a, "timeout=0").str("next_batch")
	r = ts.must(200, "GET", v3+"/keys/changes?from="+before+"&to="+after, a.token, nil)
	if !slices.Contains(toStrings(r.body["left"]), b.id) {
		t.Fatalf("bob not in left: %s", r.raw)
	}

	// Carol leaves: her own /keys/changes lists Alice as left.
	before = ts.sync(c, "timeout=0").str("next_batch")
	ts.must(200, "POST", v3+"/rooms/"+esc(room)+"/leave", c.token, map[string]any{})
	after = ts.sync(c, "timeout=0").str("next_batch")
	r = ts.must(200, "GET", v3+"/keys/changes?from="+before+"&to="+after, c.token, nil)
	if !slices.Contains(toStrings(r.body["left"]), a.id) || slices.Contains(toStrings(r.body["left"]), c.id) {
		t.Fatalf("carol's keys/changes after leaving: %s", r.raw)
	}
	// She shares a new room with Alice again for the rest of the test.
	room2 := ts.createRoom(a, nil)
	ts.invite(a, room2, c.id)
	ts.join(c, room2)

	// Deleting a device is a change too, and a long-polling sync wakes for it.
	sa2 := ts.sync(a, "timeout=0")
	sc2 := ts.sync(c, "timeout=0")
	done := make(chan resp, 1)
	go func() { done <- ts.do("GET", v3+"/sync?timeout=20000&since="+sc2.str("next_batch"), c.token, nil) }()
	ts.must(200, "POST", v3+"/logout", a2.token, nil)
	select {
	case r := <-done:
		if !slices.Contains(toStrings(path(r.body, "device_lists", "changed")), a.id) {
			t.Fatalf("carol's woken sync: %s", r.raw)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("carol's sync not woken by alice's device deletion")
	}
	q := ts.must(200, "POST", v3+"/keys/query", c.token, map[string]any{"device_keys": map[string]any{a.id: []string{}}})
	if _, ok := path(q.body, "device_keys", a.id).(map[string]any)["NEWDEV"]; ok {
		t.Fatalf("deleted device still served: %s", q.raw)
	}
	_ = sa2
}

func toStrings(v any) []string {
	var out []string
	for _, x := range list(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func TestE2EEKeyBackup(t *testing.T) {
	ts := startE2EE(t)
	a, b := ts.register("alice"), ts.register("bob")
	if r := ts.do("GET", v3+"/room_keys/version", a.token, nil); r.status != 404 || r.errcode() != "M_NOT_FOUND" {
		t.Fatalf("no backup: %d %s", r.status, r.raw)
	}
	if r := ts.do("PUT", v3+"/room_keys/keys?version=1", a.token, map[string]any{"rooms": map[string]any{}}); r.status != 404 {
		t.Fatalf("keys without backup: %d %s", r.status, r.raw)
	}
	alg := "m.megolm_backup.v1.curve25519-aes-sha2"
	v := ts.must(200, "POST", v3+"/room_keys/version", a.token, map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "pk"}}).str("version")
	r := ts.must(200, "GET", v3+"/room_keys/version", a.token, nil)
	if r.str("version") != v || r.str("algorithm") != alg || num(r.body["count"]) != 0 || r.str("etag") == "" {
		t.Fatalf("version info: %s", r.raw)
	}
	etag0 := r.str("etag")
	sess := func(fmi, fc int, verified bool, ct string) map[string]any {
		return map[string]any{"first_message_index": fmi, "forwarded_count": fc, "is_verified": verified,
			"session_data": map[string]any{"ephemeral": "e", "ciphertext": ct, "mac": "m"}}
	}
	room := "!room:test.local"
	r = ts.must(200, "PUT", v3+"/room_keys/keys?version="+v, a.token, map[string]any{"rooms": map[string]any{
		room: map[string]any{"sessions": map[string]any{"s1": sess(5, 0, false, "one"), "s2": sess(0, 0, false, "two")}}}})
	if num(r.body["count"]) != 2 || r.str("etag") == etag0 {
		t.Fatalf("put all: %s", r.raw)
	}
	// A worse key does not replace, a better one does.
	ts.must(200, "PUT", v3+"/room_keys/keys/"+esc(room)+"/s1?version="+v, a.token, sess(9, 0, false, "worse"))
	ts.must(200, "PUT", v3+"/room_keys/keys/"+esc(room)+"?version="+v, a.token, map[string]any{"sessions": map[string]any{"s2": sess(0, 0, true, "verified")}})
	r = ts.must(200, "GET", v3+"/room_keys/keys/"+esc(room)+"/s1?version="+v, a.token, nil)
	if path(r.body, "session_data", "ciphertext") != "one" {
		t.Fatalf("worse key replaced: %s", r.raw)
	}
	r = ts.must(200, "GET", v3+"/room_keys/keys/"+esc(room)+"?version="+v, a.token, nil)
	if path(r.body, "sessions", "s2", "session_data", "ciphertext") != "verified" {
		t.Fatalf("better key not stored: %s", r.raw)
	}
	r = ts.must(200, "GET", v3+"/room_keys/keys?version="+v, a.token, nil)
	if len(path(r.body, "rooms", room, "sessions").(map[string]any)) != 2 {
		t.Fatalf("get all: %s", r.raw)
	}
	if r := ts.do("GET", v3+"/room_keys/keys/"+esc(room)+"/nope?version="+v, a.token, nil); r.status != 404 || r.errcode() != "M_NOT_FOUND" {
		t.Fatalf("missing session: %d %s", r.status, r.raw)
	}
	if r := ts.must(200, "GET", v3+"/room_keys/keys/"+esc("!other:test.local")+"?version="+v, a.token, nil); r.body["sessions"] == nil {
		t.Fatalf("empty room: %s", r.raw)
	}

	// Bob sees none of it, and cannot write or delete it.
	if r := ts.do("GET", v3+"/room_keys/version/"+v, b.token, nil); r.status != 404 {
		t.Fatalf("bob reads alice's version: %d %s", r.status, r.raw)
	}
	if r := ts.do("GET", v3+"/room_keys/keys?version="+v, b.token, nil); r.status != 404 {
		t.Fatalf("bob reads alice's keys: %d %s", r.status, r.raw)
	}
	if r := ts.do("PUT", v3+"/room_keys/keys/"+esc(room)+"/s1?version="+v, b.token, sess(0, 0, true, "evil")); r.status != 404 {
		t.Fatalf("bob writes alice's backup: %d %s", r.status, r.raw)
	}
	if r := ts.do("DELETE", v3+"/room_keys/version/"+v, b.token, nil); r.status != 404 {
		t.Fatalf("bob deletes alice's backup: %d %s", r.status, r.raw)
	}
	r = ts.must(200, "GET", v3+"/room_keys/keys/"+esc(room)+"/s1?version="+v, a.token, nil)
	if path(r.body, "session_data", "ciphertext") != "one" {
		t.Fatalf("alice's backup changed by bob: %s", r.raw)
	}

	// Update: algorithm must match, version in body must match the path.
	if r := ts.do("PUT", v3+"/room_keys/version/"+v, a.token, map[string]any{"algorithm": "other", "auth_data": map[string]any{}}); r.status != 400 {
		t.Fatalf("algorithm change: %d %s", r.status, r.raw)
	}
	if r := ts.do("PUT", v3+"/room_keys/version/"+v, a.token, map[string]any{"algorithm": alg, "auth_data": map[string]any{}, "version": "77"}); r.status != 400 {
		t.Fatalf("version mismatch: %d %s", r.status, r.raw)
	}
	ts.must(200, "PUT", v3+"/room_keys/version/"+v, a.token, map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "pk2"}})

	// A new version makes the old one read-only.
	v2 := ts.must(200, "POST", v3+"/room_keys/version", a.token, map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "pk3"}}).str("version")
	r = ts.do("PUT", v3+"/room_keys/keys/"+esc(room)+"/s3?version="+v, a.token, sess(0, 0, false, "x"))
	if r.status != 403 || r.errcode() != "M_WRONG_ROOM_KEYS_VERSION" || r.str("current_version") != v2 {
		t.Fatalf("write to old version: %d %s", r.status, r.raw)
	}
	ts.must(200, "GET", v3+"/room_keys/keys?version="+v, a.token, nil) // still readable
	r = ts.must(200, "DELETE", v3+"/room_keys/keys/"+esc(room)+"?version="+v, a.token, nil)
	if num(r.body["count"]) != 0 {
		t.Fatalf("delete room keys: %s", r.raw)
	}
	ts.must(200, "DELETE", v3+"/room_keys/version/"+v2, a.token, nil)
	ts.must(200, "DELETE", v3+"/room_keys/version/"+v2, a.token, nil) // deleting again is fine
	if r := ts.do("DELETE", v3+"/room_keys/version/999", a.token, nil); r.status != 404 {
		t.Fatalf("delete of unknown version: %d", r.status)
	}
	if r := ts.must(200, "GET", v3+"/room_keys/version", a.token, nil); r.str("version") != v {
		t.Fatalf("latest after delete: %s", r.raw)
	}
	if r := ts.do("GET", v3+"/room_keys/version/"+v2, a.token, nil); r.status != 404 {
		t.Fatalf("deleted version readable: %d", r.status)
	}
}

func TestE2EEKeysSurviveRelogin(t *testing.T) {
	ts := startE2EE(t)
	a := ts.register("alice")
	k := newKey(1)
	ts.must(200, "POST", v3+"/keys/upload", a.token, map[string]any{"device_keys": deviceKeys(t, a, k), "one_time_keys": otks("R", 3)})
	a2 := ts.login("alice", a.device) // same device ID: same device, new token
	r := ts.must(200, "POST", v3+"/keys/query", a2.token, map[string]any{"device_keys": map[string]any{a.id: []string{a.device}}})
	if path(r.body, "device_keys", a.id, a.device, "keys", "ed25519:"+a.device) != k.pub {
		t.Fatalf("keys lost on re-login: %s", r.raw)
	}
	if s := ts.sync(a2, "timeout=0"); num(path(s.body, "device_one_time_keys_count", "signed_curve25519")) != 3 {
		t.Fatalf("one-time keys lost on re-login: %s", s.raw)
	}
}

func TestE2EEOneTimeKeyStorageBound(t *testing.T) {
	ts := startE2EE(t)
	a := ts.register("alice")
	batch := 1000
	for i := 0; i*batch < 10000; i++ {
		ts.must(200, "POST", v3+"/keys/upload", a.token, map[string]any{"one_time_keys": otks(fmt.Sprintf("b%02d_", i), batch)})
	}
	if r := ts.do("POST", v3+"/keys/upload", a.token, map[string]any{"one_time_keys": otks("over", 1)}); r.status != 400 {
		t.Fatalf("upload beyond the bound: %d %s", r.status, r.raw)
	}
}
