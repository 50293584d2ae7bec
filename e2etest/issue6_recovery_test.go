package e2etest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"myelin/client"
	"myelin/crypto/backup"
	"myelin/crypto/megolm"
	"myelin/e2ee"
	"myelin/e2ee/recovery"
	"myelin/keys"
)

// loginUncrossSigned adds a device to first's account without handing it the
// cross-signing keys (a new device that must recover or be verified).
func (first *tclient) loginUncrossSigned(n int) *tclient {
	t := first.t
	t.Helper()
	user := strings.TrimPrefix(strings.Split(first.UserID(), ":")[0], "@")
	tc := newT(t, user+"/"+string(rune('0'+n)))
	tc.password, tc.hs = first.password, first.hs
	c, err := client.Login(ctxT(t), first.hs, user, first.password, nil, tc.opts(""))
	if err != nil {
		t.Fatalf("login %s: %v", tc.name, err)
	}
	tc.Client = c
	tc.start()
	return tc
}

// TestRecoveryBootstrapAndRestore: device 1 bootstraps secret storage and a
// signed key backup; device 2, logged in later, recovers with the recovery
// key, ends up cross-signed by the recovered self-signing key, and reads the
// history sent before it existed from the backup, each message attributed to
// its original sender.
func TestRecoveryBootstrapAndRestore(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "history", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	alice.send(room, "before one")
	bob.text(room, "before one")
	bob.send(room, "before two")
	alice.text(room, "before two")

	rk, err := alice.BootstrapRecovery(ctxT(t))
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	// Bootstrap uploaded both sessions; nothing new since.
	if n, err := alice.BackupRoomKeys(ctxT(t)); err != nil || n != 0 {
		t.Fatalf("backup room keys again: n=%d err=%v (want nothing new)", n, err)
	}
	// Sessions that arrive later are backed up as they arrive.
	abCtx, abStop := context.WithCancel(context.Background())
	abDone := make(chan error, 1)
	go func() { abDone <- alice.AutoBackup(abCtx) }()
	room2, err := alice.CreateEncryptedRoom(ctxT(t), "later", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room2)
	alice.waitMember(room2, bob.UserID(), "join")
	bob.send(room2, "after bootstrap")
	alice.text(room2, "after bootstrap")
	tv, err := alice.TrustedBackupVersion(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := alice.HTTP().RoomKeys(ctxT(t), tv.Version)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Rooms map[string]json.RawMessage `json:"rooms"`
		}
		if json.Unmarshal(b, &got) == nil && got.Rooms[room2] != nil {
			break
		}
		if err := alice.WaitSync(ctxT(t)); err != nil {
			t.Fatalf("the new session never reached the backup: %v", err)
		}
	}
	abStop()
	if err := <-abDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("auto backup: %v", err)
	}

	alice2 := alice.loginUncrossSigned(2)
	res, err := alice2.RecoverWithKey(ctxT(t), rk)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if res.Restored < 3 || res.Authenticated != res.Restored || len(res.Refused) != 0 {
		t.Fatalf("restore: %+v", res)
	}
	// Device 2 now holds the account's keys, identical to device 1's.
	sk1, err := alice.CrossSigningKeys(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	sk2, err := alice2.CrossSigningKeys(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if sk1.Master.PublicKey() != sk2.Master.PublicKey() || sk1.SelfSigning.PublicKey() != sk2.SelfSigning.PublicKey() {
		t.Fatal("recovered cross-signing keys differ from device 1's")
	}
	// Others see device 2 as cross-signed by the recovered self-signing key.
	bob.knowsDevice(alice.UserID(), alice2.DeviceID())

	hist, err := alice2.DecryptHistory(ctxT(t), room, 50)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*tclient{"before one": alice, "before two": bob, "after bootstrap": bob}
	for _, ev := range hist {
		b := bodyOf(ev)
		from, ok := want[b]
		if !ok {
			continue
		}
		if ev.Provenance.SenderUser != from.UserID() || ev.Provenance.SenderDevice != from.DeviceID() {
			t.Errorf("%q: provenance %+v, want %s/%s", b, ev.Provenance, from.UserID(), from.DeviceID())
		}
		// Every entry carried our MSC4048 MAC, so the restored sessions keep
		// their original provenance: the senders' cross-signed devices.
		if ev.Provenance.Trust != e2ee.TrustVerifiedIdentity && ev.Provenance.Trust != e2ee.TrustCrossSignedPinned {
			t.Errorf("%q: authenticated backup entry shown with trust %v", b, ev.Provenance.Trust)
		}
		t.Logf("%q from backup: trust=%v sender=%s/%s", b, ev.Provenance.Trust, ev.Provenance.SenderUser, ev.Provenance.SenderDevice)
		delete(want, b)
	}
	hist2, err := alice2.DecryptHistory(ctxT(t), room2, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist2 {
		if bodyOf(ev) == "after bootstrap" && ev.Provenance.SenderUser == bob.UserID() {
			delete(want, "after bootstrap")
		}
	}
	if len(want) != 0 {
		var dump []string
		for _, ev := range hist {
			dump = append(dump, ev.Event.Type+":"+bodyOf(ev)+":"+errString(ev.Err))
		}
		t.Fatalf("history not decrypted from backup: missing %v; got %v", want, dump)
	}

	// A wrong recovery key unlocks nothing.
	alice3 := alice.loginUncrossSigned(3)
	if _, err := alice3.RecoverWithKey(ctxT(t), "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d"); err == nil {
		t.Fatal("recovery with a wrong recovery key succeeded")
	}
	if _, err := alice3.CrossSigningKeys(ctxT(t)); err == nil {
		t.Fatal("a failed recovery left cross-signing keys on the device")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRecoverySwappedBackupVersionRefused: a new backup version the server
// put in place (here POSTed with the user's token: valid-looking auth_data
// with the server's own public key, unsigned or signed by a key that is not
// ours) is refused by the client, which neither uploads keys to it nor
// restores from it, and reports it as untrusted.
func TestRecoverySwappedBackupVersionRefused(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	rk, err := alice.BootstrapRecovery(ctxT(t))
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	good, err := alice.TrustedBackupVersion(ctxT(t))
	if err != nil {
		t.Fatalf("own version not trusted: %v", err)
	}

	serverKey, err := backup.GenerateDecryptionKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fakeDevSig := keys.EncodeBase64(make([]byte, 64))
	cases := []struct {
		name     string
		authData map[string]any
		reason   recovery.UntrustReason
	}{
		{"unsigned", map[string]any{"public_key": serverKey.PublicKey().String()}, recovery.ReasonUnsigned},
		{"signed by an unknown key", map[string]any{"public_key": serverKey.PublicKey().String(),
			"signatures": map[string]any{alice.UserID(): map[string]string{"ed25519:SERVERDEV": fakeDevSig}}}, recovery.ReasonUnknownSigner},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"algorithm": backup.Algorithm, "auth_data": tc.authData})
			v, err := alice.HTTP().CreateBackupVersion(ctxT(t), body)
			if err != nil {
				t.Fatal(err)
			}
			if v == good.Version {
				t.Fatal("server reused the version string")
			}
			_, err = alice.TrustedBackupVersion(ctxT(t))
			var ue *recovery.UntrustedBackupVersionError
			if !errors.As(err, &ue) || !errors.Is(err, recovery.ErrUntrustedBackupVersion) {
				t.Fatalf("swapped version %s: got %v, want UntrustedBackupVersionError", v, err)
			}
			if ue.Version != v {
				t.Errorf("reported version %q, want %q", ue.Version, v)
			}
			if _, err := alice.BackupRoomKeys(ctxT(t)); !errors.Is(err, recovery.ErrUntrustedBackupVersion) {
				t.Fatalf("backup to swapped version: %v", err)
			}
			if err := alice.AutoBackup(ctxT(t)); !errors.Is(err, recovery.ErrUntrustedBackupVersion) {
				t.Fatalf("auto backup to swapped version: %v", err)
			}
			alice.waitEvent("backup alert", func(ev client.Event) bool {
				return ev.Alert != nil && ev.Alert.Code == client.AlertBackupVersionChanged && strings.Contains(ev.Alert.Message, string(tc.reason))
			})
			// A new device recovering with the genuine recovery key gets
			// the cross-signing keys but refuses the swapped backup.
			dev := alice.loginUncrossSigned(5)
			if _, err := dev.RecoverWithKey(ctxT(t), rk); !errors.Is(err, recovery.ErrUntrustedBackupVersion) {
				t.Fatalf("recover from swapped version: %v", err)
			}
			if ue.Reason != tc.reason {
				t.Errorf("reason %q, want %q", ue.Reason, tc.reason)
			}
			t.Logf("swapped version %s refused: %v", v, ue.Reason)
		})
	}
}

// TestRecoveryServerWrittenEntryNotLaundered: the server, which knows the
// backup's public key, writes its own entry claiming to be one of bob's
// sessions (no MSC4048 MAC) and injects a message under it. A recovering
// device restores it as unauthenticated, never shows the message above
// forwarded/backup trust, and does not upload the entry again under its own
// MAC (which would make it look authenticated to every later restore).
func TestRecoveryServerWrittenEntryNotLaundered(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "forged", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	bob.send(room, "genuine")
	alice.text(room, "genuine")
	rk, err := alice.BootstrapRecovery(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	tv, err := alice.TrustedBackupVersion(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}

	// The server's session, claimed as bob's device's.
	out, err := megolm.NewOutboundSession(rand.Reader)
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
	bobCurve, bobEd := bob.Machine().IdentityKeys()
	plain, _ := json.Marshal(map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "sender_key": bobCurve.String(),
		"sender_claimed_keys": map[string]string{"ed25519": bobEd.String()}, "session_key": exp.String(),
		"forwarding_curve25519_key_chain": []string{}})
	sd, err := backup.Encrypt(rand.Reader, tv.PublicKey, plain)
	if err != nil {
		t.Fatal(err)
	}
	entry := map[string]any{"first_message_index": 0, "forwarded_count": 5, "is_verified": false, "session_data": sd}
	body, _ := json.Marshal(map[string]any{"rooms": map[string]any{room: map[string]any{"sessions": map[string]any{out.ID(): entry}}}})
	if _, err := alice.HTTP().PutRoomKeys(ctxT(t), tv.Version, body); err != nil {
		t.Fatal(err)
	}
	evPlain, _ := json.Marshal(map[string]any{"type": "m.room.message", "room_id": room,
		"content": map[string]any{"msgtype": "m.text", "body": "forged"}})
	content := map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "sender_key": bobCurve.String(),
		"ciphertext": keys.EncodeBase64(out.Encrypt(evPlain)), "session_id": out.ID(), "device_id": bob.DeviceID()}
	if _, err := bob.HTTP().SendEvent(ctxT(t), room, "m.room.encrypted", bob.HTTP().NewTxnID(), content); err != nil {
		t.Fatal(err)
	}

	alice2 := alice.loginUncrossSigned(2)
	res, err := alice2.RecoverWithKey(ctxT(t), rk)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if res.Restored < 2 || res.Authenticated != res.Restored-1 {
		t.Fatalf("restore: %+v, want exactly one unauthenticated entry", res)
	}
	hist, err := alice2.DecryptHistory(ctxT(t), room, 50)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, ev := range hist {
		if bodyOf(ev) == "forged" {
			seen = true
			if ev.Provenance.Trust != e2ee.TrustForwardedOrBackup {
				t.Fatalf("server-written session shown with trust %v", ev.Provenance.Trust)
			}
		}
	}
	if !seen {
		t.Log("forged message not decrypted (the machine refused the session); fine")
	}
	if n, err := alice2.BackupRoomKeys(ctxT(t)); err != nil || n != 0 {
		t.Fatalf("re-upload of restored sessions: n=%d err=%v, want 0", n, err)
	}
	all, err := alice.HTTP().RoomKeys(ctxT(t), tv.Version)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Rooms map[string]struct {
			Sessions map[string]struct {
				SessionData backup.SessionData `json:"session_data"`
			} `json:"sessions"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(all, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Rooms[room].Sessions[out.ID()].SessionData.Signatures) != 0 {
		t.Fatal("the server-written entry now carries a MAC: laundered by a re-upload")
	}
}

// TestRecoveryServerTamperingRefused: the server edits secret storage in
// account data. A device that pinned the key description refuses a swapped
// default key (B8: no silent switch) and a device recovering refuses a
// secret moved under another name (its MAC is bound to the name: A6); in
// both cases nothing is recovered.
func TestRecoveryServerTamperingRefused(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	rk, err := alice.BootstrapRecovery(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	h := alice.HTTP()
	get := func(typ string) json.RawMessage {
		b, err := h.GetAccountData(ctxT(t), typ)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	origUSK, origSSK := get(recovery.SecretUserSigning), get(recovery.SecretSelfSigning)
	origDefault := get(recovery.DefaultKeyType)

	t.Run("secret moved under another name", func(t *testing.T) {
		if err := h.PutAccountData(ctxT(t), recovery.SecretSelfSigning, origUSK); err != nil {
			t.Fatal(err)
		}
		dev := alice.loginUncrossSigned(4)
		_, err := dev.RecoverWithKey(ctxT(t), rk)
		if !errors.Is(err, recovery.ErrSecretRejected) {
			t.Fatalf("recover with a swapped secret: %v, want ErrSecretRejected", err)
		}
		if _, err := dev.CrossSigningKeys(ctxT(t)); err == nil {
			t.Fatal("a refused recovery left keys on the device")
		}
		if err := h.PutAccountData(ctxT(t), recovery.SecretSelfSigning, origSSK); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("default key switched after pinning", func(t *testing.T) {
		dev := alice.loginUncrossSigned(5)
		if _, err := dev.RecoverWithKey(ctxT(t), rk); err != nil {
			t.Fatalf("genuine recovery: %v", err)
		}
		// The server installs a key of its own as the default.
		desc, _ := json.Marshal(map[string]any{"algorithm": "m.secret_storage.v1.aes-hmac-sha2",
			"iv": keys.EncodeBase64(make([]byte, 16)), "mac": keys.EncodeBase64(make([]byte, 32))})
		if err := h.PutAccountData(ctxT(t), recovery.KeyTypePrefix+"serverkey", desc); err != nil {
			t.Fatal(err)
		}
		if err := h.PutAccountData(ctxT(t), recovery.DefaultKeyType, json.RawMessage(`{"key":"serverkey"}`)); err != nil {
			t.Fatal(err)
		}
		_, err := dev.RecoverWithKey(ctxT(t), rk)
		var kc *recovery.KeyDescriptionChangedError
		if !errors.As(err, &kc) || kc.Kind != recovery.DefaultKeyChanged {
			t.Fatalf("recover after a default-key switch: %v, want KeyDescriptionChangedError(default_key)", err)
		}
		if err := h.PutAccountData(ctxT(t), recovery.DefaultKeyType, origDefault); err != nil {
			t.Fatal(err)
		}
		if _, err := dev.RecoverWithKey(ctxT(t), rk); err != nil {
			t.Fatalf("recover after the server put the genuine key back: %v", err)
		}
	})
}
