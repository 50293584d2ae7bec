package recovery

import (
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"myelin/canonicaljson"
	"myelin/crypto/crosssign"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// rnd is a deterministic randomness source for tests.
func rnd(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func mustUser(t testing.TB, s string) id.UserID {
	t.Helper()
	u, err := id.ParseUserID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustDevice(t testing.TB, s string) id.DeviceID {
	t.Helper()
	d, err := id.ParseDeviceID(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testDevice is a device with its private keys.
type testDevice struct {
	user  id.UserID
	id    id.DeviceID
	ed    *keys.Ed25519SecretKey
	curve *keys.Curve25519SecretKey
}

func newTestDevice(t testing.TB, r io.Reader, user id.UserID, name string) *testDevice {
	t.Helper()
	ed, err := keys.GenerateEd25519SecretKey(r)
	if err != nil {
		t.Fatal(err)
	}
	cu, err := keys.GenerateCurve25519SecretKey(r)
	if err != nil {
		t.Fatal(err)
	}
	return &testDevice{user: user, id: mustDevice(t, name), ed: ed, curve: cu}
}

// keysJSON is the device's self-signed device-keys object.
func (d *testDevice) keysJSON(t testing.TB) []byte {
	t.Helper()
	obj, err := canonicaljson.Marshal(map[string]any{
		"user_id":    d.user.String(),
		"device_id":  d.id.String(),
		"algorithms": []string{crosssign.AlgorithmOlm, crosssign.AlgorithmMegolm},
		"keys": map[string]string{
			"ed25519:" + d.id.String():    d.ed.PublicKey().String(),
			"curve25519:" + d.id.String(): d.curve.PublicKey().String(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := signing.Sign(obj, d.user.String(), "ed25519:"+d.id.String(), d.ed)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func (d *testDevice) dev(crossSigned bool) Device {
	return Device{DeviceID: d.id, Ed25519: d.ed.PublicKey(), Curve25519: d.curve.PublicKey(), CrossSigned: crossSigned}
}

func (d *testDevice) sender() Sender {
	return Sender{UserID: d.user.String(), DeviceID: d.id.String(), Curve25519: d.curve.PublicKey(), Olm: true}
}

// world is a user who bootstrapped on device 1.
type world struct {
	user id.UserID
	dev1 *testDevice
	boot *Bootstrap
}

const alice = "@alice:example.org"

func newWorld(t testing.TB, passphrase string) *world {
	t.Helper()
	r := rnd(1)
	u := mustUser(t, alice)
	d := newTestDevice(t, r, u, "DEVICEONE")
	b, err := NewBootstrap(r, BootstrapOptions{
		UserID: u, DeviceID: d.id, Device: d.ed, DeviceKeys: d.keysJSON(t), Passphrase: passphrase, KeyName: "test key",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &world{user: u, dev1: d, boot: b}
}

// versionBody is a GET /room_keys/version body around authData.
func versionBody(t testing.TB, version string, authData []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": json.RawMessage(authData),
		"version": version, "count": 3, "etag": "e1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyAD returns a deep copy of account data.
func copyAD(ad AccountData) AccountData {
	out := AccountData{}
	for k, v := range ad {
		out[k] = append(json.RawMessage{}, v...)
	}
	return out
}

func untrustReason(err error) UntrustReason {
	var e *UntrustedBackupVersionError
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func sharingReason(err error) SharingReason {
	var e *SharingError
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
