package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"maunium.net/go/mautrix"
	mcrypto "maunium.net/go/mautrix/crypto"
	mbackup "maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/signatures"
	mid "maunium.net/go/mautrix/id"

	"myelin/crypto/backup"
	"myelin/crypto/megolm"
	"myelin/e2ee/recovery"
	"myelin/id"
	"myelin/keys"
)

const (
	backupUser   = "@alice:example.org"
	backupDevice = "ALICEDEV"
	backupRoom   = "!room:example.org"
)

func mustUser(t *testing.T, s string) id.UserID {
	t.Helper()
	u, err := id.ParseUserID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestBackupMautrixToMyelin: mautrix-go backs up a real goolm Megolm session
// export with crypto/backup.EncryptSessionData (as its OlmMachine does); the
// body a server would return for GET /room_keys/keys is restored with
// recovery.Restore. The entry has no MSC4048 MAC, so it must come back as
// Unauthenticated, and the restored session must decrypt messages goolm
// encrypted.
func TestBackupMautrixToMyelin(t *testing.T) {
	user := mustUser(t, backupUser)
	mk, err := mbackup.NewMegolmBackupKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := backup.NewDecryptionKey(mk.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if key.PublicKey().String() != keys.EncodeBase64(mk.PublicKey().Bytes()) {
		t.Fatal("backup public keys differ")
	}

	type sent struct {
		out   *session.MegolmOutboundSession
		msgs  [][]byte // base64 group messages
		plain [][]byte
		first uint32
	}
	senderKey := "JUUfV6vErSATm3rIOU9DML+IX1SlYxnAAS824xhbhC4"
	claimed := "R2UJWSfgGr64iPENthl/98WGqBtnNlYuP12d6TEuGo4"
	body := mautrix.RespRoomKeys[json.RawMessage]{Rooms: map[mid.RoomID]mautrix.RespRoomKeyBackup[json.RawMessage]{}}
	room := mautrix.RespRoomKeyBackup[json.RawMessage]{Sessions: map[mid.SessionID]mautrix.RespKeyBackupData[json.RawMessage]{}}
	var all []sent
	for i, first := range []uint32{0, 3} {
		out, err := session.NewMegolmOutboundSession()
		if err != nil {
			t.Fatal(err)
		}
		sk, err := out.SessionSharingMessage()
		if err != nil {
			t.Fatal(err)
		}
		in, err := session.NewMegolmInboundSession(sk)
		if err != nil {
			t.Fatal(err)
		}
		s := sent{out: out, first: first}
		for j := range 5 {
			pt := []byte(`{"type":"m.room.message","content":{"body":"hello ` + string(rune('a'+i)) + string(rune('0'+j)) + `"}}`)
			ct, err := out.Encrypt(pt)
			if err != nil {
				t.Fatal(err)
			}
			s.msgs = append(s.msgs, ct)
			s.plain = append(s.plain, pt)
		}
		exp, err := in.Export(first)
		if err != nil {
			t.Fatal(err)
		}
		esd, err := mbackup.EncryptSessionData(mk, mbackup.MegolmSessionData{
			Algorithm:          mid.AlgorithmMegolmV1,
			ForwardingKeyChain: []string{},
			SenderClaimedKeys:  mbackup.SenderClaimedKeys{Ed25519: mid.Ed25519(claimed)},
			SenderKey:          mid.SenderKey(senderKey),
			SessionKey:         string(exp),
		})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(esd)
		if err != nil {
			t.Fatal(err)
		}
		room.Sessions[out.ID()] = mautrix.RespKeyBackupData[json.RawMessage]{FirstMessageIndex: int(first), SessionData: raw}
		all = append(all, s)
	}
	body.Rooms[backupRoom] = room
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}

	got, err := recovery.Restore(user, key, raw)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if len(got.Refused) != 0 {
		t.Fatalf("refused entries: %v", got.Refused)
	}
	if len(got.Sessions) != len(all) {
		t.Fatalf("restored %d sessions, want %d", len(got.Sessions), len(all))
	}
	for _, s := range all {
		var r *recovery.RestoredSession
		for i := range got.Sessions {
			if got.Sessions[i].SessionID == string(s.out.ID()) {
				r = &got.Sessions[i]
			}
		}
		if r == nil {
			t.Fatalf("session %s not restored", s.out.ID())
		}
		if r.Provenance != backup.Unauthenticated || r.Authenticated() {
			t.Errorf("session %s: provenance %v, want Unauthenticated (mautrix writes no MSC4048 MAC)", r.SessionID, r.Provenance)
		}
		if r.RoomID.String() != backupRoom || r.SenderKey.String() != senderKey || r.SenderClaimedEd25519.String() != claimed {
			t.Errorf("session %s: provenance fields %s %s %s", r.SessionID, r.RoomID, r.SenderKey, r.SenderClaimedEd25519)
		}
		if r.FirstKnownIndex != s.first {
			t.Errorf("session %s: first known index %d, want %d", r.SessionID, r.FirstKnownIndex, s.first)
		}
		in, err := megolm.ImportInboundSession(r.SessionKey)
		if err != nil {
			t.Fatal(err)
		}
		for j, m := range s.msgs {
			bin, err := keys.DecodeBase64(string(m))
			if err != nil {
				t.Fatal(err)
			}
			pt, idx, err := in.Decrypt(bin)
			if uint32(j) < s.first {
				if err == nil {
					t.Errorf("decrypted index %d below the first known index %d", j, s.first)
				}
				continue
			}
			if err != nil || idx != uint32(j) || !bytes.Equal(pt, s.plain[j]) {
				t.Fatalf("restored session cannot decrypt goolm message %d: %v", j, err)
			}
		}
	}
}

// TestBackupMautrixEntryTamperedSessionID: the server moves a mautrix-written
// entry under another session ID; myelin refuses that entry alone.
func TestBackupMautrixEntryTamperedSessionID(t *testing.T) {
	user := mustUser(t, backupUser)
	mk, _ := mbackup.NewMegolmBackupKey()
	key, _ := backup.NewDecryptionKey(mk.Bytes())
	out, _ := session.NewMegolmOutboundSession()
	sk, _ := out.SessionSharingMessage()
	in, _ := session.NewMegolmInboundSession(sk)
	exp, _ := in.Export(0)
	esd, err := mbackup.EncryptSessionData(mk, mbackup.MegolmSessionData{
		Algorithm: mid.AlgorithmMegolmV1, ForwardingKeyChain: []string{},
		SenderKey: "JUUfV6vErSATm3rIOU9DML+IX1SlYxnAAS824xhbhC4", SessionKey: string(exp),
	})
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := json.Marshal(esd)
	other, _ := session.NewMegolmOutboundSession()
	body, _ := json.Marshal(mautrix.RespRoomKeys[json.RawMessage]{Rooms: map[mid.RoomID]mautrix.RespRoomKeyBackup[json.RawMessage]{
		backupRoom: {Sessions: map[mid.SessionID]mautrix.RespKeyBackupData[json.RawMessage]{other.ID(): {SessionData: sd}}},
	}})
	got, err := recovery.Restore(user, key, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sessions) != 0 || len(got.Refused) != 1 || !errors.Is(got.Refused[0], recovery.ErrSessionIDMismatch) {
		t.Fatalf("moved entry: sessions %d refused %v, want one ErrSessionIDMismatch", len(got.Sessions), got.Refused)
	}
}

// TestBackupMyelinToMautrix: myelin creates a backup version signed by its
// master key and device (recovery.CreateBackupVersion), encrypts a real
// myelin Megolm session export with the MSC4048 MAC
// (TrustedVersion.EncryptSession) into a PUT /room_keys/keys body
// (recovery.UploadBody). mautrix-go checks the auth_data signatures with its
// signatures package, parses the body as the server would return it,
// decrypts each entry with EncryptedSessionData.Decrypt and imports it
// through OlmMachine.ImportRoomKeyFromBackupWithoutSaving; the imported
// session must decrypt myelin's messages.
func TestBackupMyelinToMautrix(t *testing.T) {
	user := mustUser(t, backupUser)
	dev, err := id.ParseDeviceID(backupDevice)
	if err != nil {
		t.Fatal(err)
	}
	master, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	devKey, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nv, err := recovery.CreateBackupVersion(rand.Reader, user, master, dev, devKey)
	if err != nil {
		t.Fatal(err)
	}
	tv := nv.Trusted("1")
	roomID, err := id.ParseRoomID(backupRoom)
	if err != nil {
		t.Fatal(err)
	}

	// mautrix reads the version's auth_data and checks both signatures.
	var req mautrix.ReqRoomKeysVersionCreate[mbackup.MegolmAuthData]
	if err := json.Unmarshal(nv.RequestBody, &req); err != nil {
		t.Fatalf("mautrix cannot parse the version request: %v", err)
	}
	if req.Algorithm != mid.KeyBackupAlgorithmMegolmBackupV1 {
		t.Fatalf("algorithm %q", req.Algorithm)
	}
	mk, err := mbackup.MegolmBackupKeyFromBytes(nv.Key.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if string(req.AuthData.PublicKey) != keys.EncodeBase64(mk.PublicKey().Bytes()) {
		t.Fatalf("auth_data.public_key %s is not the backup key's", req.AuthData.PublicKey)
	}
	for _, s := range []struct {
		name string
		key  keys.Ed25519PublicKey
	}{{master.PublicKey().String(), master.PublicKey()}, {backupDevice, devKey.PublicKey()}} {
		ok, err := signatures.VerifySignatureJSON(req.AuthData, mid.UserID(backupUser), s.name, mid.Ed25519(s.key.String()))
		if err != nil || !ok {
			t.Errorf("mautrix does not verify the auth_data signature by %s: %v", s.name, err)
		}
	}

	// myelin backs up two sessions.
	type sent struct {
		id    string
		msgs  [][]byte
		plain [][]byte
	}
	var all []sent
	var entries []recovery.UploadEntry
	for i := range 2 {
		out, err := megolm.NewOutboundSession(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		in, err := megolm.NewInboundSession(out.SessionKey())
		if err != nil {
			t.Fatal(err)
		}
		s := sent{id: out.ID()}
		for j := range 4 {
			pt := []byte(`{"type":"m.room.message","content":{"body":"from myelin ` + string(rune('a'+i)) + string(rune('0'+j)) + `"}}`)
			s.msgs = append(s.msgs, out.Encrypt(pt))
			s.plain = append(s.plain, pt)
		}
		exp, err := in.Export(0)
		if err != nil {
			t.Fatal(err)
		}
		kbd, err := tv.EncryptSession(rand.Reader, user, nv.Key.MACKey(), &recovery.SessionExport{
			RoomID:            roomID,
			SessionID:         out.ID(),
			SenderKey:         mustCurve(t, "JUUfV6vErSATm3rIOU9DML+IX1SlYxnAAS824xhbhC4"),
			SenderClaimedKeys: map[string]string{"ed25519": devKey.PublicKey().String()},
			SessionKey:        exp.String(),
			ForwardingChain:   []string{},
		})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, recovery.UploadEntry{RoomID: roomID, SessionID: out.ID(), Data: kbd})
		all = append(all, s)
	}
	upload, err := recovery.UploadBody(entries)
	if err != nil {
		t.Fatal(err)
	}

	// The server stores the entries and returns them with the same shape.
	var stored mautrix.RespRoomKeys[mbackup.EncryptedSessionData[mbackup.MegolmSessionData]]
	if err := json.Unmarshal(upload, &stored); err != nil {
		t.Fatalf("mautrix cannot parse myelin's upload body: %v", err)
	}
	// What a mautrix client that re-uploads the entries would write. Through
	// pointers: EphemeralKey.MarshalJSON has a pointer receiver, so a
	// map-held EncryptedSessionData value marshals its ephemeral key as {}
	// (a mautrix quirk, not a wire incompatibility).
	var viaPtr mautrix.RespRoomKeys[*mbackup.EncryptedSessionData[mbackup.MegolmSessionData]]
	if err := json.Unmarshal(upload, &viaPtr); err != nil {
		t.Fatal(err)
	}
	reencoded, err := json.Marshal(viaPtr)
	if err != nil {
		t.Fatal(err)
	}
	// And the upload body is what mautrix's own PUT would send.
	var asReq mautrix.ReqKeyBackup
	if err := json.Unmarshal(upload, &asReq); err != nil {
		t.Fatalf("mautrix ReqKeyBackup: %v", err)
	}
	var mach *mcrypto.OlmMachine // ImportRoomKeyFromBackupWithoutSaving uses no machine state
	n := 0
	for roomID, room := range stored.Rooms {
		for sessionID, kbd := range room.Sessions {
			sd, err := kbd.SessionData.Decrypt(mk)
			if err != nil {
				t.Fatalf("mautrix cannot decrypt myelin's entry %s: %v", sessionID, err)
			}
			igs, err := mach.ImportRoomKeyFromBackupWithoutSaving(context.Background(), "1", roomID, nil, sessionID, sd)
			if err != nil {
				t.Fatalf("mautrix cannot import myelin's entry %s: %v", sessionID, err)
			}
			if string(igs.SigningKey) != devKey.PublicKey().String() || string(igs.SenderKey) != "JUUfV6vErSATm3rIOU9DML+IX1SlYxnAAS824xhbhC4" {
				t.Errorf("entry %s: mautrix sees claimed key %s sender %s", sessionID, igs.SigningKey, igs.SenderKey)
			}
			var s *sent
			for i := range all {
				if all[i].id == string(sessionID) {
					s = &all[i]
				}
			}
			if s == nil {
				t.Fatalf("unknown session %s", sessionID)
			}
			for j, m := range s.msgs {
				pt, idx, err := igs.Internal.Decrypt([]byte(keys.EncodeBase64(m)))
				if err != nil || idx != uint(j) || !bytes.Equal(pt, s.plain[j]) {
					t.Fatalf("mautrix cannot decrypt myelin message %d of %s: %v", j, sessionID, err)
				}
			}
			n++
		}
	}
	if n != len(all) {
		t.Fatalf("mautrix imported %d sessions, want %d", n, len(all))
	}

	// myelin restores its own upload as Authenticated (the MSC4048 MAC
	// survives the round trip through mautrix's types).
	got, err := recovery.Restore(user, nv.Key, upload)
	if err != nil || len(got.Sessions) != len(all) {
		t.Fatalf("myelin restore of its own upload: %v", err)
	}
	for _, s := range got.Sessions {
		if !s.Authenticated() {
			t.Errorf("own entry %s not authenticated", s.SessionID)
		}
	}
	got, err = recovery.Restore(user, nv.Key, reencoded)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sessions) != len(all) || len(got.Refused) != 0 {
		t.Fatalf("re-encoded through mautrix's types: %d restored, refused %v", len(got.Sessions), got.Refused)
	}
	for _, s := range got.Sessions {
		// mautrix's EncryptedSessionData has no signatures field, so a
		// client that re-uploads entries through it drops the MSC4048 MAC:
		// the entry then restores as Unauthenticated, never as forged.
		if s.Authenticated() {
			t.Errorf("entry %s kept an MSC4048 MAC through a struct without signatures", s.SessionID)
		}
	}
}

func mustCurve(t *testing.T, s string) keys.Curve25519PublicKey {
	t.Helper()
	k, err := keys.ParseCurve25519PublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
