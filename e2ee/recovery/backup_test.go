package recovery

import (
	"encoding/json"
	"errors"
	"testing"

	"myelin/canonicaljson"
	"myelin/crypto/backup"
	"myelin/keys"
	"myelin/signing"
)

// authData builds auth_data for pub with the given signatures applied in
// order (signer, key ID, key).
type sig struct {
	signer string
	keyID  string
	sk     *keys.Ed25519SecretKey
}

func authData(t *testing.T, pub keys.Curve25519PublicKey, sigs ...sig) []byte {
	t.Helper()
	obj, err := canonicaljson.Marshal(map[string]any{"public_key": pub.String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sigs {
		if obj, err = signing.Sign(obj, s.signer, s.keyID, s.sk); err != nil {
			t.Fatal(err)
		}
	}
	return obj
}

func TestCreateBackupVersionIsTrustedByMasterAndDevice(t *testing.T) {
	w := newWorld(t, "")
	nb := w.boot.Backup
	var body struct {
		Algorithm string          `json:"algorithm"`
		AuthData  json.RawMessage `json:"auth_data"`
	}
	if err := json.Unmarshal(nb.RequestBody, &body); err != nil || body.Algorithm != backup.Algorithm {
		t.Fatalf("request body %s: %v", nb.RequestBody, err)
	}
	resp := versionBody(t, "1", body.AuthData)
	msk := w.boot.Published.MasterKey
	for _, tc := range []struct {
		name   string
		in     VersionInput
		signer string
	}{
		{"master key", VersionInput{MasterKey: msk}, "ed25519:" + msk.String()},
		{"own cross-signed device", VersionInput{Devices: []Device{w.dev1.dev(true)}}, "ed25519:DEVICEONE"},
		{"with matching key", VersionInput{MasterKey: msk, Key: nb.Key}, "ed25519:" + msk.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.UserID, tc.in.Response = w.user, resp
			v, err := TrustBackupVersion(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if v.Version != "1" || v.PublicKey != nb.Key.PublicKey() || v.SignedBy != tc.signer || v.Changed || v.Count != 3 {
				t.Fatalf("got %+v", v)
			}
		})
	}
}

// TestBackupVersionTrustRefusals covers B7 rule 1 / A5 rule 2: the versions a
// malicious server can put up, including the 2022 one (valid-looking but
// unsigned auth_data with a key the server knows).
func TestBackupVersionTrustRefusals(t *testing.T) {
	w := newWorld(t, "")
	r := rnd(7)
	msk := w.boot.Published.MasterKey
	mskSK := w.boot.SigningKeys.Master
	user := w.user.String()
	serverKey, _ := backup.GenerateDecryptionKey(r) // kH: the server knows it
	serverEd, _ := keys.GenerateEd25519SecretKey(r)
	otherKey, _ := backup.GenerateDecryptionKey(r)
	uncross := newTestDevice(t, r, w.user, "INJECTED")
	dehydrated := newTestDevice(t, r, w.user, "DEHYDRATED")
	genuine := authData(t, w.boot.Backup.Key.PublicKey(), sig{user, "ed25519:" + msk.String(), mskSK})

	// The genuine signatures, moved onto the server's public key.
	var moved map[string]any
	_ = json.Unmarshal(genuine, &moved)
	moved["public_key"] = serverKey.PublicKey().String()
	movedJSON, _ := json.Marshal(moved)

	dehydratedDev := dehydrated.dev(true)
	dehydratedDev.Dehydrated = true
	// A device whose ID is the base64 of our master key (A2), carrying the
	// server's Ed25519 key.
	confused := Device{DeviceID: mustDevice(t, msk.String()), Ed25519: serverEd.PublicKey(), CrossSigned: true}

	trusted := VersionInput{MasterKey: msk, Devices: []Device{w.dev1.dev(true), uncross.dev(false), dehydratedDev}}
	cases := []struct {
		name string
		resp []byte
		in   VersionInput
		want UntrustReason
	}{
		{"2022: valid-looking unsigned auth_data with the server's key", versionBody(t, "2", authData(t, serverKey.PublicKey())), trusted, ReasonUnsigned},
		{"signed by an unknown key", versionBody(t, "2", authData(t, serverKey.PublicKey(), sig{user, "ed25519:EVILDEVICE", serverEd})), trusted, ReasonUnknownSigner},
		{"signed by own device that is not cross-signed", versionBody(t, "2", authData(t, serverKey.PublicKey(), sig{user, "ed25519:INJECTED", uncross.ed})), trusted, ReasonUnknownSigner},
		{"signed by own dehydrated device", versionBody(t, "2", authData(t, serverKey.PublicKey(), sig{user, "ed25519:DEHYDRATED", dehydrated.ed})), trusted, ReasonUnknownSigner},
		{"signed by another user's device", versionBody(t, "2", authData(t, serverKey.PublicKey(), sig{"@mallory:example.org", "ed25519:DEVICEONE", serverEd})), trusted, ReasonUnsigned},
		{"master key ID signed by a server key", versionBody(t, "2", authData(t, serverKey.PublicKey(), sig{user, "ed25519:" + msk.String(), serverEd})), trusted, ReasonBadSignature},
		{"device ID equal to the master key's base64", versionBody(t, "2", authData(t, serverKey.PublicKey(), sig{user, "ed25519:" + msk.String(), serverEd})), VersionInput{MasterKey: msk, Devices: []Device{confused}}, ReasonBadSignature},
		{"genuine signature over different auth_data", versionBody(t, "2", movedJSON), trusted, ReasonBadSignature},
		{"key we hold does not match", versionBody(t, "1", genuine), VersionInput{MasterKey: msk, Key: otherKey}, ReasonKeyMismatch},
		{"unknown algorithm", []byte(`{"algorithm":"m.megolm_backup.v2","auth_data":` + string(genuine) + `,"version":"1"}`), trusted, ReasonUnsupportedAlgorithm},
		{"no trust root", versionBody(t, "1", genuine), VersionInput{Devices: []Device{uncross.dev(false)}}, ReasonNoTrustRoot},
		{"malformed", []byte(`{"algorithm":`), trusted, ReasonMalformed},
		{"no version", []byte(`{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":` + string(genuine) + `}`), trusted, ReasonMalformed},
		{"bad public key", versionBody(t, "1", []byte(`{"public_key":"AAAA"}`)), trusted, ReasonMalformed},
		{"too large", make([]byte, MaxVersionResponseSize+1), trusted, ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.UserID, tc.in.Response = w.user, tc.resp
			v, err := TrustBackupVersion(tc.in)
			if v != nil || !errors.Is(err, ErrUntrustedBackupVersion) || untrustReason(err) != tc.want {
				t.Fatalf("got %v, %v; want reason %s", v, err, tc.want)
			}
		})
	}
	// Control: the genuine version is trusted with the same inputs.
	in := trusted
	in.UserID, in.Response = w.user, versionBody(t, "1", genuine)
	if _, err := TrustBackupVersion(in); err != nil {
		t.Fatalf("genuine version refused: %v", err)
	}
}

func TestBackupVersionChangeFlagged(t *testing.T) {
	w := newWorld(t, "")
	msk := w.boot.Published.MasterKey
	prev := w.boot.Backup.Trusted("1")
	// A second version created (and signed) by our own device: trusted, but
	// flagged so the caller alerts and asks before uploading (B7 rule 1).
	nb, err := CreateBackupVersion(rnd(9), w.user, w.boot.SigningKeys.Master, w.dev1.id, w.dev1.ed)
	if err != nil {
		t.Fatal(err)
	}
	v, err := TrustBackupVersion(VersionInput{UserID: w.user, Response: versionBody(t, "2", nb.AuthData), MasterKey: msk, Previous: prev})
	if err != nil || !v.Changed {
		t.Fatalf("new version: %+v, %v; want Changed", v, err)
	}
	v, err = TrustBackupVersion(VersionInput{UserID: w.user, Response: versionBody(t, "1", w.boot.Backup.AuthData), MasterKey: msk, Previous: prev})
	if err != nil || v.Changed {
		t.Fatalf("same version: %+v, %v; want not Changed", v, err)
	}
}

func TestCreateBackupVersionArguments(t *testing.T) {
	w := newWorld(t, "")
	if _, err := CreateBackupVersion(rnd(1), w.user, nil, w.dev1.id, w.dev1.ed); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no master key: %v", err)
	}
	if _, err := CreateBackupVersion(rnd(1), w.user, w.boot.SigningKeys.Master, w.dev1.id, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no device: %v", err)
	}
}
