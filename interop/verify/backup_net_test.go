package verify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mcrypto "maunium.net/go/mautrix/crypto"
	mbackup "maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/event"
	mid "maunium.net/go/mautrix/id"

	"myelin/client"
)

// TestRecoveryMyelinToMautrixOverMyelind: a myelin device sends an
// encrypted message, sets up recovery (BootstrapRecovery: secret storage,
// cross-signing secrets, a signed backup version, its room keys uploaded with
// MSC4048 MACs). A new mautrix-go device of the same user, given only the
// recovery key, unlocks myelin's secret storage (mautrix's
// VerifyWithRecoveryKey: key check, cross-signing secrets), reads the
// backup key from it, downloads and imports the backup with its OlmMachine
// (DownloadAndStoreLatestKeyBackup, which also checks the version against
// the key) and decrypts the message from history.
func TestRecoveryMyelinToMautrixOverMyelind(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), netWait)
	defer cancel()
	hs := startMyelind(t)
	alice, err := client.Register(ctx, hs, "alice", "pw-alice", client.Options{SyncTimeout: time.Second})
	if err != nil {
		t.Fatalf("myelin register: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { alice.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	room, err := alice.CreateEncryptedRoom(ctx, "history", nil)
	if err != nil {
		t.Fatal(err)
	}
	const text = "history only the backup can give back"
	eventID, err := alice.SendText(ctx, room, text)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := alice.BootstrapRecovery(ctx)
	if err != nil {
		t.Fatalf("myelin BootstrapRecovery: %v", err)
	}
	if _, err := alice.BackupRoomKeys(ctx); err != nil {
		t.Fatalf("myelin BackupRoomKeys: %v", err)
	}

	// A new mautrix device of alice's.
	mx, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mx.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:         "pw-alice",
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("mautrix login: %v", err)
	}
	mx.StateStore = mautrix.NewMemoryStateStore()
	ch, err := cryptohelper.NewCryptoHelper(mx, []byte("myelin interop pickle key"), mcrypto.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Init(ctx); err != nil {
		t.Fatal(err)
	}
	mx.Crypto = ch
	mach := ch.Machine()

	// Secret storage written by myelin, read by mautrix.
	if err := mach.VerifyWithRecoveryKey(ctx, rk); err != nil {
		t.Fatalf("mautrix VerifyWithRecoveryKey on myelin's secret storage: %v", err)
	}
	keyID, keyData, err := mach.SSSS.GetDefaultKeyData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyData.VerifyRecoveryKey(keyID, rk)
	if err != nil {
		t.Fatalf("mautrix: myelin's recovery key: %v", err)
	}
	secret, err := mach.SSSS.GetDecryptedAccountData(ctx, event.AccountDataMegolmBackupKey, key)
	if err != nil {
		t.Fatalf("mautrix: backup key from myelin's secret storage: %v", err)
	}
	// (mautrix's ssss.Key.Decrypt already undoes the secret's base64.)
	mk, err := mbackup.MegolmBackupKeyFromBytes(secret)
	if err != nil {
		t.Fatal(err)
	}

	// The backup written by myelin, imported by mautrix's OlmMachine.
	version, err := mach.DownloadAndStoreLatestKeyBackup(ctx, mk)
	if err != nil || version == "" {
		t.Fatalf("mautrix DownloadAndStoreLatestKeyBackup: version %q: %v", version, err)
	}
	evt, err := mx.GetEvent(ctx, mid.RoomID(room), mid.EventID(eventID))
	if err != nil {
		t.Fatal(err)
	}
	if evt.Type != event.EventEncrypted {
		t.Fatalf("event type %s, want m.room.encrypted", evt.Type.Type)
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !strings.Contains(err.Error(), "already parsed") {
		t.Fatal(err)
	}
	dec, err := mach.DecryptMegolmEvent(ctx, evt)
	if err != nil {
		t.Fatalf("mautrix cannot decrypt myelin's message with the restored key: %v", err)
	}
	if err := dec.Content.ParseRaw(dec.Type); err != nil && !strings.Contains(err.Error(), "already parsed") {
		t.Fatal(err)
	}
	if got := dec.Content.AsMessage().Body; got != text {
		t.Fatalf("decrypted %q, want %q", got, text)
	}
	t.Logf("mautrix restored backup version %s from myelin and read %q", version, text)
}

// TestRecoveryMautrixToMyelinOverMyelind: the reverse direction over myelind.
// A mautrix-go device of the user unlocks myelin's secret storage with the
// recovery key, takes the backup key, checks the current version with its
// OlmMachine and uploads a real goolm Megolm session export into it with
// mautrix's client API (PutKeysInBackup, EncryptSessionData: no MSC4048
// MAC). A new myelin device recovering with the recovery key then restores
// both myelin's own entries (authenticated) and mautrix's (restored, counted
// as unauthenticated).
func TestRecoveryMautrixToMyelinOverMyelind(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), netWait)
	defer cancel()
	hs := startMyelind(t)
	alice, err := client.Register(ctx, hs, "alice", "pw-alice", client.Options{SyncTimeout: time.Second})
	if err != nil {
		t.Fatalf("myelin register: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { alice.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	room, err := alice.CreateEncryptedRoom(ctx, "history", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room, "from myelin"); err != nil {
		t.Fatal(err)
	}
	rk, err := alice.BootstrapRecovery(ctx)
	if err != nil {
		t.Fatalf("myelin BootstrapRecovery: %v", err)
	}
	// BootstrapRecovery already uploaded the room keys it had; this call
	// uploads only what arrived since (possibly nothing).
	if _, err := alice.BackupRoomKeys(ctx); err != nil {
		t.Fatalf("myelin BackupRoomKeys: %v", err)
	}
	exported, err := alice.Machine().ExportRoomKeys(ctx)
	if err != nil || len(exported) == 0 {
		t.Fatalf("myelin has no sessions to back up: %d %v", len(exported), err)
	}
	own := len(exported)

	// mautrix device: backup key from myelin's secret storage.
	mx, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mx.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:         "pw-alice",
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("mautrix login: %v", err)
	}
	mx.StateStore = mautrix.NewMemoryStateStore()
	ch, err := cryptohelper.NewCryptoHelper(mx, []byte("myelin interop pickle key"), mcrypto.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Init(ctx); err != nil {
		t.Fatal(err)
	}
	mach := ch.Machine()
	keyID, keyData, err := mach.SSSS.GetDefaultKeyData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyData.VerifyRecoveryKey(keyID, rk)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := mach.SSSS.GetDecryptedAccountData(ctx, event.AccountDataMegolmBackupKey, key)
	if err != nil {
		t.Fatal(err)
	}
	mk, err := mbackup.MegolmBackupKeyFromBytes(secret)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := mach.GetAndVerifyLatestKeyBackupVersion(ctx, mk)
	if err != nil {
		t.Fatalf("mautrix does not trust myelin's backup version: %v", err)
	}

	// A real Megolm session, exported and backed up the way mautrix writes
	// entries.
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
	exp, err := in.Export(0)
	if err != nil {
		t.Fatal(err)
	}
	esd, err := mbackup.EncryptSessionData(mk, mbackup.MegolmSessionData{
		Algorithm:          mid.AlgorithmMegolmV1,
		ForwardingKeyChain: []string{},
		SenderClaimedKeys:  mbackup.SenderClaimedKeys{Ed25519: mach.OwnIdentity().SigningKey},
		SenderKey:          mach.OwnIdentity().IdentityKey,
		SessionKey:         string(exp),
	})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := json.Marshal(esd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mx.PutKeysInBackup(ctx, ver.Version, &mautrix.ReqKeyBackup{Rooms: map[mid.RoomID]mautrix.ReqRoomKeyBackup{
		mid.RoomID(room): {Sessions: map[mid.SessionID]mautrix.ReqKeyBackupData{out.ID(): {SessionData: sd}}},
	}}); err != nil {
		t.Fatalf("mautrix PutKeysInBackup: %v", err)
	}

	// A new myelin device recovers.
	alice2, err := client.Login(ctx, hs, "alice", "pw-alice", nil, client.Options{SyncTimeout: time.Second})
	if err != nil {
		t.Fatalf("myelin login: %v", err)
	}
	res, err := alice2.RecoverWithKey(ctx, rk)
	if err != nil {
		t.Fatalf("myelin RecoverWithKey: %v", err)
	}
	if len(res.Refused) != 0 {
		t.Fatalf("myelin refused entries: %v", res.Refused)
	}
	if res.BackupVersion != string(ver.Version) || res.Restored != own+1 || res.Authenticated != own {
		t.Fatalf("myelin restored version %s: %d sessions (%d authenticated), want %s: %d (%d authenticated)",
			res.BackupVersion, res.Restored, res.Authenticated, ver.Version, own+1, own)
	}
	t.Logf("myelin restored %d sessions from version %s: %d authenticated (its own), mautrix's entry unauthenticated", res.Restored, res.BackupVersion, res.Authenticated)
}
