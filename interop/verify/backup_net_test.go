package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mcrypto "maunium.net/go/mautrix/crypto"
	mbackup "maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/cryptohelper"
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
