package recovery

import (
	"encoding/json"
	"errors"
	"testing"

	"myelin/crypto/backup"
)

// sharingWorld: device 1 (has the secrets), device 2 (new, requests),
// device 3 injected by the server (not cross-signed), device 4 dehydrated,
// and Mallory's device.
type sharingWorld struct {
	*world
	dev2, injected, dehydrated, mallory *testDevice
	devices                             []Device
	pub                                 *Published
}

func newSharingWorld(t *testing.T) *sharingWorld {
	t.Helper()
	w := newWorld(t, "")
	r := rnd(100)
	s := &sharingWorld{world: w}
	s.dev2 = newTestDevice(t, r, w.user, "DEVICETWO")
	s.injected = newTestDevice(t, r, w.user, "INJECTED")
	s.dehydrated = newTestDevice(t, r, w.user, "DEHYDRATED")
	s.mallory = newTestDevice(t, r, mustUser(t, "@mallory:example.org"), "DEVICEONE")
	dh := s.dehydrated.dev(true)
	dh.Dehydrated = true
	s.devices = []Device{w.dev1.dev(true), s.dev2.dev(true), s.injected.dev(false), dh}
	msk, ssk, usk := keysQuery(t, w.boot)
	v, err := TrustBackupVersion(VersionInput{UserID: w.user, Response: versionBody(t, "1", w.boot.Backup.AuthData), MasterKey: w.boot.Published.MasterKey})
	if err != nil {
		t.Fatal(err)
	}
	if s.pub, err = PublishedFromKeysQuery(w.user, msk, ssk, usk, v); err != nil {
		t.Fatal(err)
	}
	return s
}

// held is device 1's secret store.
func (s *sharingWorld) held(name string) ([]byte, bool) {
	switch name {
	case SecretBackup:
		return s.boot.Backup.Key.Secret(), true
	case SecretSelfSigning:
		return []byte(encodeSeed(s.boot.SigningKeys.SelfSigning.Seed())), true
	}
	return nil, false
}

func encodeSeed(b []byte) string {
	out, _ := json.Marshal(b) // base64 with padding, accepted by DecodeKeySecret
	return string(out[1 : len(out)-1])
}

func send(requestID, secret string) []byte {
	b, _ := json.Marshal(map[string]string{"request_id": requestID, "secret": secret})
	return b
}

func TestSecretSharingRoundTrip(t *testing.T) {
	s := newSharingWorld(t)
	for _, name := range []string{SecretBackup, SecretSelfSigning} {
		t.Run(name, func(t *testing.T) {
			reqs := NewSecretRequests(s.user, s.dev2.id)
			out, err := reqs.Request(rnd(101), name, s.devices)
			if err != nil {
				t.Fatal(err)
			}
			// Only our own cross-signed devices other than ourselves.
			if len(out.Targets) != 1 || out.Targets[0] != s.dev1.id {
				t.Fatalf("targets %v", out.Targets)
			}
			ans, err := AnswerRequest(s.user, s.dev1.id, Sender{UserID: alice}, out.Content, s.devices, s.held)
			if err != nil {
				t.Fatal(err)
			}
			if ans.DeviceID != s.dev2.id {
				t.Fatalf("answer to %v", ans.DeviceID)
			}
			acc, err := reqs.Accept(s.dev1.sender(), ans.Content, s.pub)
			if err != nil {
				t.Fatal(err)
			}
			switch name {
			case SecretBackup:
				if !acc.BackupKey.Equal(s.boot.Backup.Key) {
					t.Fatal("wrong backup key")
				}
			case SecretSelfSigning:
				if !acc.SigningKey.Equal(s.boot.SigningKeys.SelfSigning) {
					t.Fatal("wrong self-signing key")
				}
			}
			// First valid reply wins (A5 rule 1d).
			if _, err := reqs.Accept(s.dev1.sender(), ans.Content, s.pub); sharingReason(err) != SharingAlreadyAnswered {
				t.Fatalf("second reply: %v", err)
			}
		})
	}
}

// TestA5UnsolicitedSecretSendWithServerBackupKey runs the 2022 sequence
// (paper section VI-C): the server puts up a backup version with its own
// key kH, then delivers kH in m.secret.send. Every delivery is refused, and
// the genuine reply is still accepted afterwards.
func TestA5UnsolicitedSecretSendWithServerBackupKey(t *testing.T) {
	s := newSharingWorld(t)
	kH, _ := backup.GenerateDecryptionKey(rnd(110))
	// (1) The server's version: unsigned, so not trusted; the published
	// backup key stays the genuine one or none.
	ad, _ := json.Marshal(map[string]any{"public_key": kH.PublicKey().String()})
	if _, err := TrustBackupVersion(VersionInput{UserID: s.user, Response: versionBody(t, "2", ad), MasterKey: s.pub.MasterKey, Devices: s.devices}); untrustReason(err) != ReasonUnsigned {
		t.Fatalf("server version: %v", err)
	}
	reqs := NewSecretRequests(s.user, s.dev2.id)
	out, err := reqs.Request(rnd(111), SecretBackup, s.devices)
	if err != nil {
		t.Fatal(err)
	}
	kHsecret := string(kH.Secret())
	impostor := s.dev1.sender()
	impostor.Curve25519 = s.injected.curve.PublicKey() // the server's Olm key under device 1's ID
	notOlm := s.dev1.sender()
	notOlm.Olm = false
	cases := []struct {
		name    string
		from    Sender
		content []byte
		pub     *Published
		want    SharingReason
	}{
		{"unsolicited, over Olm from our verified device", s.dev1.sender(), send("UNSOLICITED", kHsecret), s.pub, SharingUnsolicited},
		{"unsolicited, no trusted backup version", s.dev1.sender(), send("UNSOLICITED", kHsecret), &Published{UserID: s.user, MasterKey: s.pub.MasterKey}, SharingUnsolicited},
		{"not Olm (plaintext or Megolm)", notOlm, send(out.RequestID, kHsecret), s.pub, SharingNotOlm},
		{"from a device the server injected", s.injected.sender(), send(out.RequestID, kHsecret), s.pub, SharingWrongDevice},
		{"from another user's device", s.mallory.sender(), send(out.RequestID, kHsecret), s.pub, SharingOtherUser},
		{"device 1's ID with another Curve25519 key", impostor, send(out.RequestID, kHsecret), s.pub, SharingWrongDevice},
		{"from a dehydrated device", s.dehydrated.sender(), send(out.RequestID, kHsecret), s.pub, SharingWrongDevice},
		{"from ourselves", s.dev2.sender(), send(out.RequestID, kHsecret), s.pub, SharingWrongDevice},
		{"solicited, from device 1, kH against the trusted version", s.dev1.sender(), send(out.RequestID, kHsecret), s.pub, SharingSecretMismatch},
		{"solicited, from device 1, kH with no trusted version", s.dev1.sender(), send(out.RequestID, kHsecret), &Published{UserID: s.user, MasterKey: s.pub.MasterKey}, SharingNoTrustedKey},
		{"solicited, not a key", s.dev1.sender(), send(out.RequestID, "not base64!"), s.pub, SharingSecretMismatch},
		{"malformed", s.dev1.sender(), []byte(`{"request_id":`), s.pub, SharingMalformed},
		{"no secret", s.dev1.sender(), []byte(`{"request_id":"x"}`), s.pub, SharingMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			acc, err := reqs.Accept(tc.from, tc.content, tc.pub)
			if acc != nil || !errors.Is(err, ErrSecretSharing) || sharingReason(err) != tc.want {
				t.Fatalf("got %v, %v; want %s", acc, err, tc.want)
			}
		})
	}
	// Control: the genuine reply is still accepted.
	acc, err := reqs.Accept(s.dev1.sender(), send(out.RequestID, string(s.boot.Backup.Key.Secret())), s.pub)
	if err != nil || !acc.BackupKey.Equal(s.boot.Backup.Key) {
		t.Fatalf("genuine reply: %v", err)
	}
}

func TestRequestTargetsAndBounds(t *testing.T) {
	s := newSharingWorld(t)
	reqs := NewSecretRequests(s.user, s.dev2.id)
	// No cross-signed device other than ourselves.
	if _, err := reqs.Request(rnd(120), SecretBackup, []Device{s.dev2.dev(true), s.injected.dev(false)}); !errors.Is(err, ErrNoTrustedDevice) {
		t.Fatalf("no trusted device: %v", err)
	}
	if _, err := reqs.Request(rnd(120), "m.something.else", s.devices); sharingReason(err) != SharingUnknownSecret {
		t.Fatalf("unknown secret: %v", err)
	}
	// Cancellations go to the other devices we asked.
	dev5 := newTestDevice(t, rnd(121), s.user, "DEVICEFIVE")
	devs := append([]Device{dev5.dev(true)}, s.devices...)
	out, err := reqs.Request(rnd(122), SecretBackup, devs)
	if err != nil || len(out.Targets) != 2 {
		t.Fatalf("targets %v, %v", out, err)
	}
	acc, err := reqs.Accept(s.dev1.sender(), send(out.RequestID, string(s.boot.Backup.Key.Secret())), s.pub)
	if err != nil || len(acc.Cancellations) != 1 || acc.Cancellations[0].DeviceID != dev5.id {
		t.Fatalf("cancellations %+v, %v", acc, err)
	}
	var c map[string]string
	_ = json.Unmarshal(acc.Cancellations[0].Content, &c)
	if c["action"] != "request_cancellation" || c["request_id"] != out.RequestID {
		t.Fatalf("cancellation %v", c)
	}
	// Cancel forgets; the oldest request is dropped beyond the bound.
	first, _ := reqs.Request(rnd(123), SecretBackup, s.devices)
	if cs := reqs.Cancel(first.RequestID); len(cs) != 1 {
		t.Fatalf("cancel: %v", cs)
	}
	if _, err := reqs.Accept(s.dev1.sender(), send(first.RequestID, string(s.boot.Backup.Key.Secret())), s.pub); sharingReason(err) != SharingAlreadyAnswered {
		t.Fatalf("after cancel: %v", err)
	}
	oldest, _ := reqs.Request(rnd(124), SecretBackup, s.devices)
	for i := 0; i < MaxPendingRequests; i++ {
		if _, err := reqs.Request(rnd(byte(125+i)), SecretBackup, s.devices); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reqs.Accept(s.dev1.sender(), send(oldest.RequestID, string(s.boot.Backup.Key.Secret())), s.pub); sharingReason(err) != SharingUnsolicited {
		t.Fatalf("forgotten request: %v", err)
	}
}

// TestAnswerRequestRules: we answer only our own cross-signed,
// non-dehydrated devices (A5 rule 1, B8 rule 4, B16).
func TestAnswerRequestRules(t *testing.T) {
	s := newSharingWorld(t)
	req := func(name, action, device string) []byte {
		b, _ := json.Marshal(map[string]string{"name": name, "action": action, "requesting_device_id": device, "request_id": "R1"})
		return b
	}
	cases := []struct {
		name    string
		from    Sender
		content []byte
		want    SharingReason
	}{
		{"other user", Sender{UserID: "@mallory:example.org"}, req(SecretBackup, "request", "DEVICETWO"), SharingOtherUser},
		{"device not cross-signed", Sender{UserID: alice}, req(SecretBackup, "request", "INJECTED"), SharingUntrustedDevice},
		{"unknown device", Sender{UserID: alice}, req(SecretBackup, "request", "UNKNOWN"), SharingUntrustedDevice},
		{"dehydrated device", Sender{UserID: alice}, req(SecretBackup, "request", "DEHYDRATED"), SharingDehydratedDevice},
		{"ourselves", Sender{UserID: alice}, req(SecretBackup, "request", "DEVICEONE"), SharingOwnDevice},
		{"cancellation", Sender{UserID: alice}, req(SecretBackup, "request_cancellation", "DEVICETWO"), SharingNotARequest},
		{"unknown secret", Sender{UserID: alice}, req("m.other", "request", "DEVICETWO"), SharingUnknownSecret},
		{"not held", Sender{UserID: alice}, req(SecretUserSigning, "request", "DEVICETWO"), SharingNotHeld},
		{"malformed", Sender{UserID: alice}, []byte(`{`), SharingMalformed},
		{"too large", Sender{UserID: alice}, make([]byte, MaxSharingContentSize+1), SharingMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := AnswerRequest(s.user, s.dev1.id, tc.from, tc.content, s.devices, s.held)
			if a != nil || sharingReason(err) != tc.want {
				t.Fatalf("got %v, %v; want %s", a, err, tc.want)
			}
		})
	}
	if a, err := AnswerRequest(s.user, s.dev1.id, Sender{UserID: alice}, req(SecretBackup, "request", "DEVICETWO"), s.devices, s.held); err != nil || a.DeviceID != s.dev2.id {
		t.Fatalf("control: %v, %v", a, err)
	}
}

// TestSharedCrossSigningKeyMustMatch: a shared cross-signing key is used only
// if it is the published one (A5 rule 3).
func TestSharedCrossSigningKeyMustMatch(t *testing.T) {
	s := newSharingWorld(t)
	reqs := NewSecretRequests(s.user, s.dev2.id)
	out, err := reqs.Request(rnd(140), SecretSelfSigning, s.devices)
	if err != nil {
		t.Fatal(err)
	}
	// Another valid seed (the user-signing key, or an old self-signing key).
	wrong := encodeSeed(s.boot.SigningKeys.UserSigning.Seed())
	if _, err := reqs.Accept(s.dev1.sender(), send(out.RequestID, wrong), s.pub); sharingReason(err) != SharingSecretMismatch {
		t.Fatalf("wrong seed: %v", err)
	}
	if _, err := reqs.Accept(s.dev1.sender(), send(out.RequestID, encodeSeed(s.boot.SigningKeys.SelfSigning.Seed())), s.pub); err != nil {
		t.Fatalf("genuine seed: %v", err)
	}
}
