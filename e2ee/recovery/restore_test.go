package recovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"myelin/crypto/backup"
	"myelin/crypto/megolm"
	"myelin/id"
	"myelin/keys"
)

// testSession is an inbound Megolm session's export from a sender device.
func testSession(t testing.TB, seed byte, room string, sender *testDevice) *SessionExport {
	t.Helper()
	out, err := megolm.NewOutboundSession(rnd(seed))
	if err != nil {
		t.Fatal(err)
	}
	in, err := megolm.NewInboundSession(out.SessionKey())
	if err != nil {
		t.Fatal(err)
	}
	exp, err := in.Export(0)
	if err != nil {
		t.Fatal(err)
	}
	rid, err := id.ParseRoomID(room)
	if err != nil {
		t.Fatal(err)
	}
	return &SessionExport{
		RoomID: rid, SessionID: in.ID(), SenderKey: sender.curve.PublicKey(),
		SenderClaimedKeys: map[string]string{"ed25519": sender.ed.PublicKey().String()},
		SessionKey:        exp.String(), ForwardingChain: nil, FirstKnownIndex: 0, IsVerified: true,
	}
}

// body re-shapes an upload into the GET /room_keys/keys body (the same JSON
// shape) after letting edit change the decoded tree.
func getBody(t testing.TB, upload []byte, edit func(rooms map[string]map[string]map[string]json.RawMessage)) []byte {
	t.Helper()
	var b struct {
		Rooms map[string]map[string]map[string]json.RawMessage `json:"rooms"`
	}
	if err := json.Unmarshal(upload, &b); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(b.Rooms)
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUploadRestoreRoundTripIsAuthenticated(t *testing.T) {
	w := newWorld(t, "")
	k := w.boot.Backup.Key
	v := w.boot.Backup.Trusted("1")
	bob := newTestDevice(t, rnd(20), mustUser(t, "@bob:example.org"), "BOBDEVICE")
	s1 := testSession(t, 21, "!room1:example.org", bob)
	s2 := testSession(t, 22, "!room2:example.org", w.dev1)
	s2.ForwardingChain = []string{bob.curve.PublicKey().String()}
	var entries []UploadEntry
	for _, s := range []*SessionExport{s1, s2} {
		d, err := v.EncryptSession(rnd(23), w.user, k.MACKey(), s)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, UploadEntry{RoomID: s.RoomID, SessionID: s.SessionID, Data: d})
	}
	up, err := UploadBody(entries)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Restore(w.user, k, getBody(t, up, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Refused) != 0 || len(got.Sessions) != 2 {
		t.Fatalf("restored %d, refused %v", len(got.Sessions), got.Refused)
	}
	for i, s := range []*SessionExport{s1, s2} {
		r := got.Sessions[i]
		if !r.Authenticated() || r.RoomID != s.RoomID || r.SessionID != s.SessionID || r.SenderKey != s.SenderKey ||
			r.SenderClaimedEd25519.String() != s.SenderClaimedKeys["ed25519"] || r.SessionKey.String() != s.SessionKey ||
			r.FirstKnownIndex != 0 || len(r.ForwardingChain) != len(s.ForwardingChain) {
			t.Fatalf("session %d: got %+v", i, r)
		}
	}
	// RestoreRoom reads the per-room endpoint's shape.
	var b struct {
		Rooms map[string]json.RawMessage `json:"rooms"`
	}
	_ = json.Unmarshal(up, &b)
	rr, err := RestoreRoom(w.user, k, "!room1:example.org", b.Rooms["!room1:example.org"])
	if err != nil || len(rr.Sessions) != 1 || !rr.Sessions[0].Authenticated() {
		t.Fatalf("RestoreRoom: %+v, %v", rr, err)
	}
}

func TestEncryptSessionRules(t *testing.T) {
	w := newWorld(t, "")
	k := w.boot.Backup.Key
	v := w.boot.Backup.Trusted("1")
	s := testSession(t, 30, "!room:example.org", w.dev1)
	other := testSession(t, 31, "!room:example.org", w.dev1)

	// Only a TrustedVersion from TrustBackupVersion/CreateBackupVersion can
	// be uploaded to (B7 rule 1): a hand-made one with the server's key is not.
	forged := &TrustedVersion{Version: "2", PublicKey: k.PublicKey()}
	if _, err := forged.EncryptSession(rnd(1), w.user, k.MACKey(), s); !errors.Is(err, ErrUntrustedBackupVersion) {
		t.Fatalf("forged version: %v", err)
	}
	mismatch := *s
	mismatch.SessionID = other.SessionID
	if _, err := v.EncryptSession(rnd(1), w.user, k.MACKey(), &mismatch); !errors.Is(err, ErrSessionIDMismatch) {
		t.Fatalf("session ID mismatch: %v", err)
	}
	index := *s
	index.FirstKnownIndex = 5
	if _, err := v.EncryptSession(rnd(1), w.user, k.MACKey(), &index); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("index mismatch: %v", err)
	}
	noClaim := *s
	noClaim.SenderClaimedKeys = nil
	if _, err := v.EncryptSession(rnd(1), w.user, k.MACKey(), &noClaim); err == nil {
		t.Fatal("no sender_claimed_keys accepted")
	}
	if _, err := v.EncryptSession(rnd(1), w.user, nil, s); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no MAC key: %v", err)
	}
}

// TestRestoreProvenanceAndRefusals: authenticated entries keep provenance;
// entries the server injected with the public key alone are marked
// unauthenticated (B7 rule 2); bad entries are refused one by one (B7 rules
// 3 and 6) without spoiling the others.
func TestRestoreProvenanceAndRefusals(t *testing.T) {
	w := newWorld(t, "")
	k := w.boot.Backup.Key
	v := w.boot.Backup.Trusted("1")
	bob := newTestDevice(t, rnd(40), mustUser(t, "@bob:example.org"), "BOBDEVICE")
	const room = "!room:example.org"
	good := testSession(t, 41, room, bob)
	goodData, err := v.EncryptSession(rnd(42), w.user, k.MACKey(), good)
	if err != nil {
		t.Fatal(err)
	}
	// The server (knowing only the public key) injects a session of its own
	// under Bob's claimed keys.
	injected := testSession(t, 43, room, bob)
	pt, _ := json.Marshal(backedUpSession{Algorithm: MegolmAlgorithm, ForwardingChain: []string{}, SenderKey: injected.SenderKey.String(),
		SenderClaimedKeys: injected.SenderClaimedKeys, SessionKey: injected.SessionKey})
	injSD, err := backup.Encrypt(rnd(44), k.PublicKey(), pt)
	if err != nil {
		t.Fatal(err)
	}
	// ... and one with our MSC4048 MAC copied from the good entry.
	forgedMAC := testSession(t, 45, room, bob)
	pt2, _ := json.Marshal(backedUpSession{Algorithm: MegolmAlgorithm, ForwardingChain: []string{}, SenderKey: forgedMAC.SenderKey.String(),
		SenderClaimedKeys: forgedMAC.SenderClaimedKeys, SessionKey: forgedMAC.SessionKey})
	fSD, _ := backup.Encrypt(rnd(46), k.PublicKey(), pt2)
	fSD.Signatures = goodData.SessionData.Signatures
	// An entry filed under another session's ID.
	moved := testSession(t, 47, room, bob)
	movedData, _ := v.EncryptSession(rnd(48), w.user, k.MACKey(), moved)
	// An entry encrypted to another key.
	otherKey, _ := backup.GenerateDecryptionKey(rnd(49))
	other := testSession(t, 50, room, bob)
	otherData, _ := w.boot.Backup.Trusted("1").EncryptSession(rnd(51), w.user, otherKey.MACKey(), other)
	otherSD, _ := backup.Encrypt(rnd(52), otherKey.PublicKey(), pt)
	_ = otherData
	// A plaintext with a wrong algorithm.
	algo := testSession(t, 53, room, bob)
	pt3, _ := json.Marshal(backedUpSession{Algorithm: "m.olm.v1.curve25519-aes-sha2", SenderKey: algo.SenderKey.String(),
		SenderClaimedKeys: algo.SenderClaimedKeys, SessionKey: algo.SessionKey})
	algoSD, _ := backup.Encrypt(rnd(54), k.PublicKey(), pt3)

	entry := func(sd *backup.SessionData, isVerified bool) json.RawMessage {
		b, _ := json.Marshal(KeyBackupData{FirstMessageIndex: 0, IsVerified: isVerified, SessionData: sd})
		return b
	}
	body, _ := json.Marshal(map[string]any{"rooms": map[string]any{
		room: map[string]any{"sessions": map[string]json.RawMessage{
			good.SessionID:      entry(goodData.SessionData, true),
			injected.SessionID:  entry(injSD, true), // is_verified: the server's word, ignored
			forgedMAC.SessionID: entry(fSD, true),
			other.SessionID:     entry(movedData.SessionData, true), // moved's data under other's ID
			moved.SessionID:     entry(otherSD, false),
			algo.SessionID:      entry(algoSD, false),
			"garbage":           json.RawMessage(`{"session_data":{"ephemeral":"!!","ciphertext":"","mac":""}}`),
			"nosessiondata":     json.RawMessage(`{"first_message_index":0}`),
			"notanobject":       json.RawMessage(`[1,2]`),
		}},
		"not a room id": map[string]any{"sessions": map[string]json.RawMessage{good.SessionID: entry(goodData.SessionData, true)}},
	}})
	got, err := Restore(w.user, k, body)
	if err != nil {
		t.Fatal(err)
	}
	prov := map[string]backup.Provenance{}
	for _, s := range got.Sessions {
		prov[s.SessionID] = s.Provenance
	}
	if len(prov) != 2 || prov[good.SessionID] != backup.Authenticated || prov[injected.SessionID] != backup.Unauthenticated {
		t.Fatalf("restored %v", prov)
	}
	refused := map[string]error{}
	for _, e := range got.Refused {
		if !errors.Is(e, ErrEntryRefused) {
			t.Fatalf("refusal %v is not ErrEntryRefused", e)
		}
		refused[e.RoomID+"|"+e.SessionID] = e.Reason
	}
	want := map[string]error{
		room + "|" + forgedMAC.SessionID:  backup.ErrBadAuthenticationMAC,
		room + "|" + other.SessionID:      ErrSessionIDMismatch,
		room + "|" + moved.SessionID:      backup.ErrBadMAC,
		room + "|" + algo.SessionID:       ErrMalformed,
		room + "|garbage":                 backup.ErrMalformed,
		room + "|nosessiondata":           ErrMalformed,
		room + "|notanobject":             ErrMalformed,
		"not a room id|" + good.SessionID: ErrMalformed,
	}
	if len(refused) != len(want) {
		t.Fatalf("refused %v", refused)
	}
	for key, w := range want {
		if !errors.Is(refused[key], w) {
			t.Errorf("%s: refused with %v, want %v", key, refused[key], w)
		}
	}
}

func TestRestoreBounds(t *testing.T) {
	w := newWorld(t, "")
	k := w.boot.Backup.Key
	big := bytes.Repeat([]byte("A"), MaxEntrySize)
	body := []byte(`{"rooms":{"!r:example.org":{"sessions":{"s":{"session_data":{"ephemeral":"` + string(big) + `"}}}}}}`)
	got, err := Restore(w.user, k, body)
	if err != nil || len(got.Refused) != 1 || !errors.Is(got.Refused[0], ErrTooLarge) {
		t.Fatalf("oversized entry: %+v, %v", got, err)
	}
	// A forwarding chain over the bound.
	v := w.boot.Backup.Trusted("1")
	s := testSession(t, 60, "!r:example.org", w.dev1)
	chain := make([]string, MaxForwardingChain+1)
	for i := range chain {
		chain[i] = w.dev1.curve.PublicKey().String()
	}
	pt, _ := json.Marshal(backedUpSession{Algorithm: MegolmAlgorithm, ForwardingChain: chain, SenderKey: s.SenderKey.String(),
		SenderClaimedKeys: s.SenderClaimedKeys, SessionKey: s.SessionKey})
	sd, _ := backup.Encrypt(rnd(61), v.PublicKey, pt)
	e, _ := json.Marshal(KeyBackupData{SessionData: sd})
	body, _ = json.Marshal(map[string]any{"rooms": map[string]any{"!r:example.org": map[string]any{"sessions": map[string]json.RawMessage{s.SessionID: e}}}})
	got, err = Restore(w.user, k, body)
	if err != nil || len(got.Refused) != 1 || !errors.Is(got.Refused[0], ErrTooLarge) {
		t.Fatalf("long chain: %+v, %v", got, err)
	}
	for _, b := range [][]byte{[]byte(`[`), []byte(`{"rooms":[]}`), []byte(`null{`)} {
		if _, err := Restore(w.user, k, b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", b, err)
		}
	}
}

// TestRestoreForeignBackup restores entries written by mautrix-go (vectors
// in crypto/backup/testdata, source named there): they carry no MSC4048 MAC,
// so they restore as unauthenticated.
func TestRestoreForeignBackup(t *testing.T) {
	raw, err := os.ReadFile("../../crypto/backup/testdata/vectors.json")
	if err != nil {
		t.Skip(err)
	}
	var v struct {
		Mautrix struct {
			PrivateKey string `json:"private_key"`
			Entries    []struct {
				SessionData json.RawMessage `json:"session_data"`
				SenderKey   string          `json:"sender_key"`
				SessionKey  string          `json:"session_key"`
			} `json:"entries"`
		} `json:"mautrix"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	pk, err := keys.DecodeBase64(v.Mautrix.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := backup.NewDecryptionKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	sessions := map[string]json.RawMessage{}
	for _, e := range v.Mautrix.Entries {
		sk, err := megolm.ParseExportedSessionKey(e.SessionKey)
		if err != nil {
			t.Fatal(err)
		}
		sessions[sk.ID()], _ = json.Marshal(map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false, "session_data": e.SessionData})
	}
	body, _ := json.Marshal(map[string]any{"rooms": map[string]any{"!room:example.org": map[string]any{"sessions": sessions}}})
	got, err := Restore(mustUser(t, alice), k, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Refused) != 0 || len(got.Sessions) != len(v.Mautrix.Entries) {
		t.Fatalf("restored %d, refused %v", len(got.Sessions), got.Refused)
	}
	for _, s := range got.Sessions {
		if s.Authenticated() {
			t.Fatalf("foreign entry %s restored as authenticated", s.SessionID)
		}
	}
}

// FuzzRestore feeds hostile GET /room_keys/keys bodies to Restore.
func FuzzRestore(f *testing.F) {
	w := newWorld(f, "")
	k := w.boot.Backup.Key
	v := w.boot.Backup.Trusted("1")
	s := testSession(f, 70, "!room:example.org", w.dev1)
	d, err := v.EncryptSession(rnd(71), w.user, k.MACKey(), s)
	if err != nil {
		f.Fatal(err)
	}
	up, _ := UploadBody([]UploadEntry{{RoomID: s.RoomID, SessionID: s.SessionID, Data: d}})
	f.Add(up)
	f.Add([]byte(`{"rooms":{"!r:x":{"sessions":{"s":{"session_data":{"ephemeral":"","ciphertext":"","mac":""}}}}}}`))
	f.Add([]byte(`{"rooms":{"!r:x":{"sessions":{"s":{"session_data":{"ephemeral":"AAAA","ciphertext":"AAAA","mac":"AAAA","signatures":{"@alice:example.org":{"x":"y"}}}}}}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Restore(w.user, k, body)
		if err != nil {
			if got != nil {
				t.Fatal("result with error")
			}
			return
		}
		for _, r := range got.Sessions {
			if r.SessionKey.ID() != r.SessionID {
				t.Fatalf("restored session %s with key of %s", r.SessionID, r.SessionKey.ID())
			}
			if r.Authenticated() && r.SessionID != s.SessionID {
				// Only entries we wrote can be authenticated; the fuzzer
				// can only reuse ours.
				t.Fatalf("fuzzer forged an authenticated entry %s", r.SessionID)
			}
		}
	})
}
