package client

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"myelin/e2ee/verification"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

func signedDevice(t testing.TB, user, device string, sk *keys.Ed25519SecretKey) []byte {
	dk, _ := json.Marshal(map[string]any{"user_id": user, "device_id": device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
		"keys":       map[string]string{"ed25519:" + device: sk.PublicKey().String()}})
	out, err := signing.Sign(dk, user, "ed25519:"+device, sk)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVerifierLookup: the keys a flow pins come only from device objects
// that name the user and device asked for and are self-signed, and never
// when the master key differs from the pinned one.
func TestVerifierLookup(t *testing.T) {
	sk, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := signedDevice(t, "@b:x", "DEV", sk)
	forged := signedDevice(t, "@b:x", "DEV", other)
	// forged's key replaced by sk's public key: signature no longer matches.
	var fm map[string]any
	_ = json.Unmarshal(forged, &fm)
	fm["keys"] = map[string]string{"ed25519:DEV": sk.PublicKey().String()}
	forged, _ = json.Marshal(fm)
	cases := []struct {
		name    string
		devices map[string]json.RawMessage
		changed bool
		want    error
	}{
		{"self-signed", map[string]json.RawMessage{"DEV": good}, false, nil},
		{"bad self-signature", map[string]json.RawMessage{"DEV": forged}, false, verification.ErrUnknownDevice},
		{"filed under another ID", map[string]json.RawMessage{"DEV": signedDevice(t, "@b:x", "OTHER", sk)}, false, verification.ErrUnknownDevice},
		{"another user's device", map[string]json.RawMessage{"DEV": signedDevice(t, "@c:x", "DEV", sk)}, false, verification.ErrUnknownDevice},
		{"unknown device", map[string]json.RawMessage{}, false, verification.ErrUnknownDevice},
		{"master key not the pinned one", map[string]json.RawMessage{"DEV": good}, true, verification.ErrKeyChanged},
	}
	u, _ := id.ParseUserID("@b:x")
	d, _ := id.ParseDeviceID("DEV")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := &Verifier{keys: map[string]*queriedKeys{"@b:x": {devices: tc.devices, masterChanged: tc.changed}}}
			tk, err := v.lookup(u, d)
			if tc.want == nil {
				if err != nil || tk.DeviceKey != sk.PublicKey() {
					t.Fatalf("lookup: %+v, %v", tk, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("lookup: %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzVerifierLookup: whatever device object the server sends, lookup
// either refuses it or returns a key that self-signed that very object.
func FuzzVerifierLookup(f *testing.F) {
	sk, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(signedDevice(f, "@b:x", "DEV", sk)), `{"keys":{"ed25519:x":"`+sk.PublicKey().String()+`"}}`)
	f.Add(`{"user_id":"@b:x","device_id":"DEV","keys":{}}`, `null`)
	f.Add(`[]`, `{"keys":{"a":"b","c":"d"}}`)
	u, _ := id.ParseUserID("@b:x")
	d, _ := id.ParseDeviceID("DEV")
	f.Fuzz(func(t *testing.T, dev, master string) {
		v := &Verifier{keys: map[string]*queriedKeys{"@b:x": {devices: map[string]json.RawMessage{"DEV": json.RawMessage(dev)}, master: json.RawMessage(master)}}}
		tk, err := v.lookup(u, d)
		if err != nil {
			return
		}
		if signing.Verify([]byte(dev), "@b:x", "ed25519:DEV", tk.DeviceKey) != nil {
			t.Fatal("lookup accepted a device object not self-signed by the key it returned")
		}
	})
}
