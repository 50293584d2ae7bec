package recovery

import (
	"encoding/json"
	"errors"
	"testing"

	"myelin/crypto/backup"
	"myelin/crypto/crosssign"
	"myelin/crypto/ssss"
	"myelin/keys"
)

// keysQuery returns the published cross-signing objects from the bootstrap
// upload, as /keys/query would serve them.
func keysQuery(t *testing.T, b *Bootstrap) (msk, ssk, usk []byte) {
	t.Helper()
	var up struct {
		Master      json.RawMessage `json:"master_key"`
		SelfSigning json.RawMessage `json:"self_signing_key"`
		UserSigning json.RawMessage `json:"user_signing_key"`
	}
	if err := json.Unmarshal(b.DeviceSigningUpload, &up); err != nil {
		t.Fatal(err)
	}
	return up.Master, up.SelfSigning, up.UserSigning
}

func TestBootstrapUploads(t *testing.T) {
	w := newWorld(t, "")
	msk, ssk, usk := keysQuery(t, w.boot)
	pub, err := PublishedFromKeysQuery(w.user, msk, ssk, usk, w.boot.Backup.Trusted("1"))
	if err != nil {
		t.Fatal(err)
	}
	if *pub != *w.boot.Published {
		t.Fatalf("published %+v, bootstrap %+v", pub, w.boot.Published)
	}
	var sigs map[string]map[string]json.RawMessage
	if err := json.Unmarshal(w.boot.SignaturesUpload, &sigs); err != nil {
		t.Fatal(err)
	}
	d, err := crosssign.ParseDeviceKeys(sigs[alice]["DEVICEONE"])
	if err != nil {
		t.Fatal(err)
	}
	if err := d.VerifySignedBy(w.user, pub.SelfSigningKey); err != nil {
		t.Fatalf("device not signed by the SSK: %v", err)
	}
	for _, ty := range []string{DefaultKeyType, KeyTypePrefix + w.boot.KeyID, SecretMaster, SecretSelfSigning, SecretUserSigning, SecretBackup} {
		if _, ok := w.boot.AccountData[ty]; !ok {
			t.Errorf("no account data %s", ty)
		}
	}
}

func TestBootstrapRecoverRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, passphrase string
	}{{"recovery key", ""}, {"passphrase", "correct horse battery staple"}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.passphrase)
			msk, ssk, usk := keysQuery(t, w.boot)
			// Device 2: trusts the version by its master-key signature, then
			// recovers.
			v, err := TrustBackupVersion(VersionInput{UserID: w.user, Response: versionBody(t, "1", w.boot.Backup.AuthData), MasterKey: w.boot.Published.MasterKey})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := PublishedFromKeysQuery(w.user, msk, ssk, usk, v)
			if err != nil {
				t.Fatal(err)
			}
			l, err := OpenSecretStorage(w.boot.AccountData, nil)
			if err != nil {
				t.Fatal(err)
			}
			var u *UnlockedStorage
			if tc.passphrase != "" {
				if !l.HasPassphrase() {
					t.Fatal("no passphrase")
				}
				if _, err := l.UnlockWithPassphrase("wrong"); !errors.Is(err, ssss.ErrWrongKey) {
					t.Fatalf("wrong passphrase: %v", err)
				}
				u, err = l.UnlockWithPassphrase(tc.passphrase)
			} else {
				u, err = l.UnlockWithRecoveryKey(w.boot.StorageKey.RecoveryKey())
			}
			if err != nil {
				t.Fatal(err)
			}
			rec, err := Recover(u, w.boot.AccountData, pub)
			if err != nil {
				t.Fatal(err)
			}
			sk := w.boot.SigningKeys
			if !rec.SigningKeys.Master.Equal(sk.Master) || !rec.SigningKeys.SelfSigning.Equal(sk.SelfSigning) ||
				!rec.SigningKeys.UserSigning.Equal(sk.UserSigning) || !rec.BackupKey.Equal(w.boot.Backup.Key) || rec.SigningKeys.UserID != w.user {
				t.Fatal("recovered keys differ")
			}
		})
	}
}

// TestRecoverRefusesMismatchingSecrets covers A6 rule 1 and B8 rule 3: a
// secret that passes its MAC but is not the trusted key (IV swapped by the
// server, rolled back, or checked against a server-swapped public key) is
// refused, naming the secret, and nothing is recovered.
func TestRecoverRefusesMismatchingSecrets(t *testing.T) {
	w := newWorld(t, "")
	msk, ssk, usk := keysQuery(t, w.boot)
	pub, err := PublishedFromKeysQuery(w.user, msk, ssk, usk, w.boot.Backup.Trusted("1"))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := OpenSecretStorage(w.boot.AccountData, nil)
	u, err := l.Unlock(w.boot.StorageKey)
	if err != nil {
		t.Fatal(err)
	}
	kid := w.boot.KeyID
	r := rnd(90)
	enc := func(ad AccountData, name string) *ssss.EncryptedData {
		c, err := ssss.ParseSecretContent(ad[name])
		if err != nil {
			t.Fatal(err)
		}
		e := c.Encrypted[kid]
		return &e
	}
	put := func(ad AccountData, name string, e *ssss.EncryptedData) {
		ad[name], _ = json.Marshal(ssss.SecretContent{Encrypted: map[string]ssss.EncryptedData{kid: *e}})
	}
	oldSSK, _ := keys.GenerateEd25519SecretKey(r)
	oldBackup, _ := backup.GenerateDecryptionKey(r)
	serverMSK, _ := keys.GenerateEd25519SecretKey(r)

	cases := []struct {
		name   string
		ad     func() AccountData
		pub    func() *Published
		secret string
		reason error
	}{
		{"A6: IV of self_signing swapped", func() AccountData {
			ad := copyAD(w.boot.AccountData)
			e := enc(ad, SecretSelfSigning)
			e.IV = enc(ad, SecretMaster).IV
			put(ad, SecretSelfSigning, e)
			return ad
		}, nil, SecretSelfSigning, nil},
		{"B8: self_signing rolled back to an older key", func() AccountData {
			ad := copyAD(w.boot.AccountData)
			c, _ := u.EncryptSecret(r, SecretSelfSigning, []byte(keys.EncodeBase64(oldSSK.Seed())))
			ad[SecretSelfSigning] = c
			return ad
		}, nil, SecretSelfSigning, ErrSecretMismatch},
		{"B8: backup key rolled back", func() AccountData {
			ad := copyAD(w.boot.AccountData)
			c, _ := u.EncryptSecret(r, SecretBackup, oldBackup.Secret())
			ad[SecretBackup] = c
			return ad
		}, nil, SecretBackup, ErrSecretMismatch},
		{"published master key swapped by the server", nil, func() *Published {
			p := *pub
			p.MasterKey = serverMSK.PublicKey()
			return &p
		}, SecretMaster, ErrSecretMismatch},
		{"backup version with the server's key", nil, func() *Published {
			p := *pub
			p.BackupKey = oldBackup.PublicKey()
			return &p
		}, SecretBackup, ErrSecretMismatch},
		{"ciphertext altered", func() AccountData {
			ad := copyAD(w.boot.AccountData)
			e := enc(ad, SecretUserSigning)
			e.Ciphertext = enc(ad, SecretMaster).Ciphertext
			put(ad, SecretUserSigning, e)
			return ad
		}, nil, SecretUserSigning, ssss.ErrBadMAC},
		{"secret moved between names", func() AccountData {
			ad := copyAD(w.boot.AccountData)
			ad[SecretUserSigning] = ad[SecretSelfSigning]
			return ad
		}, nil, SecretUserSigning, ssss.ErrBadMAC},
		{"secret missing", func() AccountData {
			ad := copyAD(w.boot.AccountData)
			delete(ad, SecretMaster)
			return ad
		}, nil, SecretMaster, ErrSecretMissing},
		{"secret under another key ID only", func() AccountData {
			ad := copyAD(w.boot.AccountData)
			ad[SecretMaster], _ = json.Marshal(ssss.SecretContent{Encrypted: map[string]ssss.EncryptedData{"OTHER": *enc(ad, SecretMaster)}})
			return ad
		}, nil, SecretMaster, ErrSecretMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ad, p := w.boot.AccountData, pub
			if tc.ad != nil {
				ad = tc.ad()
			}
			if tc.pub != nil {
				p = tc.pub()
			}
			rec, err := Recover(u, ad, p)
			var se *SecretError
			if rec != nil || !errors.Is(err, ErrSecretRejected) || !errors.As(err, &se) || se.Name != tc.secret {
				t.Fatalf("got %v, %v; want %s rejected", rec, err, tc.secret)
			}
			if tc.reason != nil && !errors.Is(err, tc.reason) {
				t.Fatalf("reason %v, want %v", err, tc.reason)
			}
		})
	}
	// Without a trusted backup version the backup key is not recovered.
	p := *pub
	p.BackupKey = keys.Curve25519PublicKey{}
	rec, err := Recover(u, w.boot.AccountData, &p)
	if err != nil || rec.BackupKey != nil {
		t.Fatalf("no trusted version: %+v, %v", rec, err)
	}
}

func TestPublishedFromKeysQueryRefusesBrokenChain(t *testing.T) {
	w := newWorld(t, "")
	msk, _, usk := keysQuery(t, w.boot)
	// The server publishes a self-signing key of its own, unsigned by our
	// master key.
	other, err := crosssign.Generate(rnd(95), w.user)
	if err != nil {
		t.Fatal(err)
	}
	ssk2, _ := other.SelfSigningKeyJSON()
	usk2, _ := other.UserSigningKeyJSON()
	for name, in := range map[string][3][]byte{
		"foreign ssk":   {msk, ssk2, usk},
		"foreign usk":   {msk, mustSSK(t, w), usk2},
		"ssk as master": {mustSSK(t, w), mustSSK(t, w), usk},
	} {
		if _, err := PublishedFromKeysQuery(w.user, in[0], in[1], in[2], nil); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func mustSSK(t *testing.T, w *world) []byte {
	_, ssk, _ := keysQuery(t, w.boot)
	return ssk
}
