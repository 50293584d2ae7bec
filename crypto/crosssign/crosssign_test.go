package crosssign

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"myelin/canonicaljson"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// seeded is a deterministic io.Reader: byte i of stream n is n+i.
func seeded(n byte) *bytes.Reader {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = n + byte(i)
	}
	return bytes.NewReader(b)
}

func mustUser(t testing.TB, s string) id.UserID {
	t.Helper()
	u, err := id.ParseUserID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type testDevice struct {
	sk    *keys.Ed25519SecretKey
	curve keys.Curve25519PublicKey
	raw   []byte
}

// newDevice builds a self-signed device-keys object. mutate, if non-nil,
// edits the fields before signing.
func newDevice(t testing.TB, user, deviceID string, seed byte, mutate func(map[string]any)) testDevice {
	t.Helper()
	r := seeded(seed)
	sk, err := keys.GenerateEd25519SecretKey(r)
	if err != nil {
		t.Fatal(err)
	}
	csk, err := keys.GenerateCurve25519SecretKey(r)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]any{
		"user_id":    user,
		"device_id":  deviceID,
		"algorithms": []any{AlgorithmOlm, AlgorithmMegolm},
		"keys": map[string]any{
			"ed25519:" + deviceID:    sk.PublicKey().String(),
			"curve25519:" + deviceID: csk.PublicKey().String(),
		},
		"unsigned": map[string]any{"device_display_name": "phone"},
	}
	if mutate != nil {
		mutate(fields)
	}
	raw, err := signing.SignFields(fields, user, "ed25519:"+deviceID, sk)
	if err != nil {
		t.Fatal(err)
	}
	return testDevice{sk: sk, curve: csk.PublicKey(), raw: raw}
}

type testUser struct {
	id  id.UserID
	sk  *SigningKeys
	msk []byte
	ssk []byte
	usk []byte
}

func newUser(t testing.TB, name string, seed byte) testUser {
	t.Helper()
	u := mustUser(t, name)
	sk, err := Generate(seeded(seed), u)
	if err != nil {
		t.Fatal(err)
	}
	tu := testUser{id: u, sk: sk}
	if tu.msk, err = sk.MasterKeyJSON(); err != nil {
		t.Fatal(err)
	}
	if tu.ssk, err = sk.SelfSigningKeyJSON(); err != nil {
		t.Fatal(err)
	}
	if tu.usk, err = sk.UserSigningKeyJSON(); err != nil {
		t.Fatal(err)
	}
	return tu
}

func (u testUser) our() *OurIdentity {
	return &OurIdentity{UserID: u.id, MasterKey: u.sk.Master.PublicKey(), UserSigningKey: u.sk.UserSigning.PublicKey()}
}

func TestGenerateAndChains(t *testing.T) {
	bob := newUser(t, "@bob:example.org", 10)
	msk, err := ParseKey(bob.msk)
	if err != nil {
		t.Fatal(err)
	}
	ssk, err := ParseKey(bob.ssk)
	if err != nil {
		t.Fatal(err)
	}
	usk, err := ParseKey(bob.usk)
	if err != nil {
		t.Fatal(err)
	}
	if msk.Usage != UsageMaster || ssk.Usage != UsageSelfSigning || usk.Usage != UsageUserSigning {
		t.Fatal("usages")
	}
	if msk.PublicKey != bob.sk.Master.PublicKey() || msk.KeyID() != "ed25519:"+bob.sk.Master.PublicKey().String() {
		t.Fatal("master public key")
	}
	for _, k := range []*Key{ssk, usk} {
		if err := k.VerifySignedBy(bob.id, msk.PublicKey); err != nil {
			t.Errorf("%s not signed by MSK: %v", k.Usage, err)
		}
		if err := k.VerifySignedBy(bob.id, k.PublicKey); !errors.Is(err, ErrNotSigned) {
			t.Errorf("%s self-signature accepted as MSK signature", k.Usage)
		}
	}
	// Generate reads exactly 96 bytes.
	r := seeded(1)
	if _, err := Generate(r, bob.id); err != nil || r.Len() != 4096-96 {
		t.Fatalf("Generate consumed %d bytes, err %v", 4096-r.Len(), err)
	}
	if _, err := Generate(bytes.NewReader(make([]byte, 95)), bob.id); err == nil {
		t.Fatal("Generate with short randomness succeeded")
	}
	// Redaction.
	s := fmt.Sprintf("%v %+v %#v %s", bob.sk, bob.sk, bob.sk, bob.sk)
	for _, k := range []*keys.Ed25519SecretKey{bob.sk.Master, bob.sk.SelfSigning, bob.sk.UserSigning} {
		if strings.Contains(s, keys.EncodeBase64(k.Seed())) {
			t.Fatal("secret leaked through fmt")
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	pk := "nqOvzeuGWT/sRx3h7+MHoInYj3Uk2LD/unI9kDYcHwk"
	obj := func(user, usage, kid, val string) string {
		return fmt.Sprintf(`{"user_id":%q,"usage":%s,"keys":{%q:%q}}`, user, usage, kid, val)
	}
	if _, err := ParseKey([]byte(obj("@a:b", `["master"]`, "ed25519:"+pk, pk))); err != nil {
		t.Fatalf("valid key rejected: %v", err)
	}
	for name, raw := range map[string]string{
		"two usages":        obj("@a:b", `["master","self_signing"]`, "ed25519:"+pk, pk),
		"no usage":          obj("@a:b", `[]`, "ed25519:"+pk, pk),
		"unknown usage":     obj("@a:b", `["admin"]`, "ed25519:"+pk, pk),
		"key ID mismatch":   obj("@a:b", `["master"]`, "ed25519:AAAA", pk),
		"wrong algorithm":   obj("@a:b", `["master"]`, "curve25519:"+pk, pk),
		"bad key":           obj("@a:b", `["master"]`, "ed25519:AAAA", "AAAA"),
		"bad user":          obj("a:b", `["master"]`, "ed25519:"+pk, pk),
		"two keys":          `{"user_id":"@a:b","usage":["master"],"keys":{"ed25519:` + pk + `":"` + pk + `","ed25519:x":"x"}}`,
		"duplicate usage":   `{"user_id":"@a:b","usage":["master"],"usage":["user_signing"],"keys":{"ed25519:` + pk + `":"` + pk + `"}}`,
		"not an object":     `[]`,
		"signatures broken": `{"user_id":"@a:b","usage":["master"],"keys":{"ed25519:` + pk + `":"` + pk + `"},"signatures":{"@a:b":"x"}}`,
	} {
		if _, err := ParseKey([]byte(raw)); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestEvaluateHappyPath(t *testing.T) {
	alice := newUser(t, "@alice:example.org", 1)
	bob := newUser(t, "@bob:example.org", 10)
	d1 := newDevice(t, "@bob:example.org", "BOBPHONE", 20, nil)
	d2 := newDevice(t, "@bob:example.org", "BOBLAPTOP", 30, nil)
	signed1, err := bob.sk.SignDevice(d1.raw)
	if err != nil {
		t.Fatal(err)
	}
	in := Input{
		UserID:         bob.id,
		MasterKey:      bob.msk,
		SelfSigningKey: bob.ssk,
		Devices:        map[string][]byte{"BOBPHONE": signed1, "BOBLAPTOP": d2.raw},
		Our:            alice.our(),
	}
	r, err := Evaluate(in)
	if err != nil {
		t.Fatal(err)
	}
	if r.IdentityErr != nil || r.MasterKey != bob.sk.Master.PublicKey() || r.SelfSigningKey != bob.sk.SelfSigning.PublicKey() {
		t.Fatalf("identity: %v", r.IdentityErr)
	}
	if len(r.Invalid) != 0 || len(r.Devices) != 2 {
		t.Fatalf("devices %v invalid %v", r.Devices, r.Invalid)
	}
	if cs := r.CrossSigned(); len(cs) != 1 || cs[0].String() != "BOBPHONE" {
		t.Fatalf("cross-signed = %v", cs)
	}
	if r.Devices[mustDev(t, "BOBPHONE")].Device.Curve25519 != d1.curve {
		t.Fatal("curve key")
	}
	if r.Verified || r.Changed || r.DeviceIDCollision {
		t.Fatalf("verified=%v changed=%v collision=%v", r.Verified, r.Changed, r.DeviceIDCollision)
	}

	// Alice verifies Bob and signs his MSK with her USK.
	signedMSK, err := alice.sk.SignMasterKey(bob.msk, bob.sk.Master.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	in.MasterKey = signedMSK
	pin := bob.sk.Master.PublicKey()
	in.PinnedMasterKey = &pin
	r, err = Evaluate(in)
	if err != nil || !r.Verified || r.Changed {
		t.Fatalf("after signing: verified=%v changed=%v err=%v", r.Verified, r.Changed, err)
	}
	// Without our identity nothing is verified.
	in.Our = nil
	if r, _ := Evaluate(in); r.Verified {
		t.Fatal("verified without our USK")
	}
	// Our own identity: verified when the MSK is our trusted one.
	own := Input{UserID: alice.id, MasterKey: alice.msk, SelfSigningKey: alice.ssk, Our: alice.our()}
	if r, _ := Evaluate(own); !r.Verified {
		t.Fatalf("own identity not verified: %v", r.IdentityErr)
	}
}

func mustDev(t testing.TB, s string) id.DeviceID {
	d, err := id.ParseDeviceID(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestEvaluateDeviceRules has one negative case per device rule. Each would
// pass (the device would be accepted) if its rule were removed.
func TestEvaluateDeviceRules(t *testing.T) {
	bob := newUser(t, "@bob:example.org", 10)
	mallory := newUser(t, "@mallory:evil.example", 40)
	const user = "@bob:example.org"
	good := newDevice(t, user, "GOOD", 20, nil)

	// A fake master key (the A2 attack: the server's parallel identity) and
	// a device whose ID is that key's base64.
	fake := newUser(t, user, 50)
	fakeID := fake.sk.Master.PublicKey().String()
	collider := newDevice(t, user, fakeID, 60, nil)
	// A device whose ID is the real SSK's base64.
	sskCollider := newDevice(t, user, bob.sk.SelfSigning.PublicKey().String(), 61, nil)

	tampered := bytes.Replace(newDevice(t, user, "TAMPER", 21, nil).raw, []byte(`"m.megolm.v1.aes-sha2"`), []byte(`"m.megolm.v1.aes-sha2","x"`), 1)
	wrongSigner := newDevice(t, user, "WRONGSIG", 22, nil)
	other := newDevice(t, user, "OTHER", 23, nil)
	// WRONGSIG's object carries a signature by OTHER's key under its own ID.
	wsFields, _ := canonicaljson.ParseObject(wrongSigner.raw)
	delete(wsFields, "signatures")
	wrongSignerRaw, _ := signing.SignFields(wsFields, user, "ed25519:WRONGSIG", other.sk)

	malloryDev := newDevice(t, "@mallory:evil.example", "MDEV", 24, nil)
	misfiled := newDevice(t, user, "REALID", 25, nil)
	noMegolm := newDevice(t, user, "NOMEGOLM", 26, func(f map[string]any) { f["algorithms"] = []any{AlgorithmOlm} })
	noCurve := newDevice(t, user, "NOCURVE", 27, func(f map[string]any) { delete(f["keys"].(map[string]any), "curve25519:NOCURVE") })
	foreignKey := newDevice(t, user, "FOREIGN", 28, func(f map[string]any) {
		f["keys"].(map[string]any)["ed25519:GOOD"] = good.sk.PublicKey().String()
	})
	changed := newDevice(t, user, "CHANGED", 29, nil)
	before := newDevice(t, user, "CHANGED", 30, nil)

	tests := []struct {
		name    string
		listed  string
		raw     []byte
		ssk     []byte // served SSK (default bob's)
		msk     []byte // served MSK (default bob's)
		pinned  *keys.Ed25519PublicKey
		want    error
		collide bool
	}{
		{name: "control", listed: "GOOD", raw: good.raw},
		{name: "bad self-signature (tampered)", listed: "TAMPER", raw: tampered, want: ErrBadSelfSignature},
		{name: "bad self-signature (other key)", listed: "WRONGSIG", raw: wrongSignerRaw, want: ErrBadSelfSignature},
		{name: "user_id differs from listing", listed: "MDEV", raw: malloryDev.raw, want: ErrUserIDMismatch},
		{name: "device_id differs from listing", listed: "OTHERID", raw: misfiled.raw, want: ErrDeviceIDMismatch},
		{name: "device ID is fake MSK (A2)", listed: fakeID, raw: collider.raw, msk: fake.msk, ssk: fake.ssk, want: ErrDeviceIDIsCrossSigningKey, collide: true},
		{name: "device ID is fake MSK, identity invalid", listed: fakeID, raw: collider.raw, msk: fake.msk, ssk: bob.ssk, want: ErrDeviceIDIsCrossSigningKey, collide: true},
		{name: "device ID is pinned MSK", listed: fakeID, raw: collider.raw, pinned: ptr(fake.sk.Master.PublicKey()), want: ErrDeviceIDIsCrossSigningKey, collide: true},
		{name: "device ID is SSK", listed: bob.sk.SelfSigning.PublicKey().String(), raw: sskCollider.raw, want: ErrDeviceIDIsCrossSigningKey, collide: true},
		{name: "missing megolm", listed: "NOMEGOLM", raw: noMegolm.raw, want: ErrMissingAlgorithms},
		{name: "missing curve25519 key", listed: "NOCURVE", raw: noCurve.raw, want: ErrMissingAlgorithms},
		{name: "key under another device ID", listed: "FOREIGN", raw: foreignKey.raw, want: ErrDeviceMalformed},
		{name: "keys changed under known ID", listed: "CHANGED", raw: changed.raw, want: ErrDeviceKeysChanged},
		{name: "duplicate keys in JSON", listed: "GOOD", raw: append([]byte(`{"device_id":"X",`), good.raw[1:]...), want: ErrDeviceMalformed},
	}
	_ = mallory
	for _, tt := range tests {
		in := Input{
			UserID:          bob.id,
			MasterKey:       bob.msk,
			SelfSigningKey:  bob.ssk,
			Devices:         map[string][]byte{tt.listed: tt.raw},
			PinnedMasterKey: tt.pinned,
			KnownDevices:    map[id.DeviceID]KnownDevice{mustDev(t, "CHANGED"): {Ed25519: before.sk.PublicKey(), Curve25519: before.curve}},
		}
		if tt.msk != nil {
			in.MasterKey = tt.msk
		}
		if tt.ssk != nil {
			in.SelfSigningKey = tt.ssk
		}
		r, err := Evaluate(in)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		de := r.Invalid[tt.listed]
		if tt.want == nil {
			if de != nil || len(r.Devices) != 1 {
				t.Errorf("%s: rejected: %v", tt.name, de)
			}
			continue
		}
		if de == nil || !errors.Is(de, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, de, tt.want)
			continue
		}
		if len(r.Devices) != 0 {
			t.Errorf("%s: device also accepted", tt.name)
		}
		if de.DeviceID != tt.listed || de.UserID != user {
			t.Errorf("%s: error names %q/%q", tt.name, de.UserID, de.DeviceID)
		}
		if r.DeviceIDCollision != tt.collide {
			t.Errorf("%s: DeviceIDCollision = %v", tt.name, r.DeviceIDCollision)
		}
	}

	// Listed under another user entirely.
	r, _ := Evaluate(Input{UserID: bob.id, ListedUserID: "@mallory:evil.example", Devices: map[string][]byte{"GOOD": good.raw}})
	if !errors.Is(r.Invalid["GOOD"], ErrUserIDMismatch) {
		t.Errorf("listed under another user: %v", r.Invalid["GOOD"])
	}
}

func ptr[T any](v T) *T { return &v }

// TestCollisionBlocksVerification: even if our USK signed the MSK, a device
// ID colliding with a cross-signing key makes the identity unverified.
func TestCollisionBlocksVerification(t *testing.T) {
	alice := newUser(t, "@alice:example.org", 1)
	fake := newUser(t, "@bob:example.org", 50)
	signed, err := alice.sk.SignMasterKey(fake.msk, fake.sk.Master.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	collider := newDevice(t, "@bob:example.org", fake.sk.Master.PublicKey().String(), 60, nil)
	in := Input{UserID: fake.id, MasterKey: signed, SelfSigningKey: fake.ssk, Our: alice.our()}
	if r, _ := Evaluate(in); !r.Verified {
		t.Fatal("control: signed MSK not verified")
	}
	in.Devices = map[string][]byte{fake.sk.Master.PublicKey().String(): collider.raw}
	if r, _ := Evaluate(in); r.Verified || !r.DeviceIDCollision {
		t.Fatalf("collision: verified=%v collision=%v", r.Verified, r.DeviceIDCollision)
	}
}

func TestEvaluateIdentityRules(t *testing.T) {
	alice := newUser(t, "@alice:example.org", 1)
	bob := newUser(t, "@bob:example.org", 10)
	evil := newUser(t, "@bob:example.org", 70)    // the server's replacement identity
	carol := newUser(t, "@carol:example.org", 80) // a real other user
	dev := newDevice(t, "@bob:example.org", "DEV", 20, nil)
	signedDev, err := bob.sk.SignDevice(dev.raw)
	if err != nil {
		t.Fatal(err)
	}
	evilSignedDev, err := evil.sk.SignDevice(dev.raw)
	if err != nil {
		t.Fatal(err)
	}
	bobMSKSignedByAlice, _ := alice.sk.SignMasterKey(bob.msk, bob.sk.Master.PublicKey())
	bobMSKSignedByCarol, _ := carol.sk.SignMasterKey(bob.msk, bob.sk.Master.PublicKey())
	pin := bob.sk.Master.PublicKey()

	tests := []struct {
		name        string
		msk, ssk    []byte
		dev         []byte
		pinned      *keys.Ed25519PublicKey
		identityErr error
		crossSigned bool
		verified    bool
		changed     bool
	}{
		{name: "control", msk: bobMSKSignedByAlice, ssk: bob.ssk, dev: signedDev, pinned: &pin, crossSigned: true, verified: true},
		{name: "no identity", dev: signedDev, identityErr: ErrNoIdentity},
		{name: "no identity but pinned", dev: signedDev, pinned: &pin, identityErr: ErrNoIdentity, changed: true},
		{name: "SSK signed by another MSK", msk: bob.msk, ssk: evil.ssk, dev: evilSignedDev, identityErr: ErrNotSigned},
		{name: "SSK served as MSK", msk: bob.ssk, ssk: bob.ssk, dev: signedDev, identityErr: ErrWrongUsage},
		{name: "USK served as SSK", msk: bob.msk, ssk: bob.usk, dev: signedDev, identityErr: ErrWrongUsage},
		{name: "MSK of another user", msk: carol.msk, ssk: bob.ssk, dev: signedDev, identityErr: ErrWrongUser},
		{name: "device signed by another SSK", msk: bob.msk, ssk: bob.ssk, dev: evilSignedDev},
		{name: "MSK signed by someone else's USK", msk: bobMSKSignedByCarol, ssk: bob.ssk, dev: signedDev, crossSigned: true},
		{name: "identity replaced (B1b)", msk: evil.msk, ssk: evil.ssk, dev: evilSignedDev, pinned: &pin, crossSigned: true, changed: true},
		{name: "malformed MSK", msk: []byte(`{"user_id":"@bob:example.org"}`), ssk: bob.ssk, dev: signedDev, identityErr: ErrMalformedKey},
	}
	for _, tt := range tests {
		r, err := Evaluate(Input{
			UserID: bob.id, MasterKey: tt.msk, SelfSigningKey: tt.ssk,
			Devices: map[string][]byte{"DEV": tt.dev}, Our: alice.our(), PinnedMasterKey: tt.pinned,
		})
		if err != nil {
			t.Fatal(err)
		}
		if (tt.identityErr == nil) != (r.IdentityErr == nil) || (tt.identityErr != nil && !errors.Is(r.IdentityErr, tt.identityErr)) {
			t.Errorf("%s: IdentityErr = %v, want %v", tt.name, r.IdentityErr, tt.identityErr)
		}
		if r.IdentityErr != nil && !r.MasterKey.IsZero() {
			t.Errorf("%s: master key reported for an ignored identity", tt.name)
		}
		st, ok := r.Devices[mustDev(t, "DEV")]
		if !ok {
			t.Errorf("%s: device rejected: %v", tt.name, r.Invalid["DEV"])
			continue
		}
		if st.CrossSigned != tt.crossSigned || r.Verified != tt.verified || r.Changed != tt.changed {
			t.Errorf("%s: crossSigned=%v verified=%v changed=%v; want %v %v %v", tt.name,
				st.CrossSigned, r.Verified, r.Changed, tt.crossSigned, tt.verified, tt.changed)
		}
	}
}

func TestSignerRefusals(t *testing.T) {
	alice := newUser(t, "@alice:example.org", 1)
	bob := newUser(t, "@bob:example.org", 10)
	bobDev := newDevice(t, "@bob:example.org", "BOBDEV", 20, nil)
	if _, err := alice.sk.SignDevice(bobDev.raw); !errors.Is(err, ErrUserIDMismatch) {
		t.Errorf("signed another user's device: %v", err)
	}
	// A device of ours whose ID is our own MSK.
	col := newDevice(t, "@alice:example.org", alice.sk.Master.PublicKey().String(), 21, nil)
	if _, err := alice.sk.SignDevice(col.raw); !errors.Is(err, ErrDeviceIDIsCrossSigningKey) {
		t.Errorf("signed a colliding device: %v", err)
	}
	bad := bytes.Replace(newDevice(t, "@alice:example.org", "X", 22, nil).raw, []byte(`"X"`), []byte(`"Y"`), 1)
	if _, err := alice.sk.SignDevice(bad); err == nil {
		t.Error("signed a device with a bad self-signature")
	}
	// SignMasterKey binds to the verified public key.
	if _, err := alice.sk.SignMasterKey(bob.msk, alice.sk.Master.PublicKey()); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("signed an unexpected master key: %v", err)
	}
	if _, err := alice.sk.SignMasterKey(bob.ssk, bob.sk.SelfSigning.PublicKey()); !errors.Is(err, ErrWrongUsage) {
		t.Errorf("signed a self-signing key as master: %v", err)
	}
	if _, err := alice.sk.SignMasterKey(alice.msk, alice.sk.Master.PublicKey()); !errors.Is(err, ErrWrongUser) {
		t.Errorf("signed our own master key with our USK: %v", err)
	}
	partial := &SigningKeys{UserID: alice.id, SelfSigning: alice.sk.SelfSigning}
	if _, err := partial.SelfSigningKeyJSON(); !errors.Is(err, ErrNoSecretKey) {
		t.Errorf("no MSK: %v", err)
	}
	if _, err := partial.SignMasterKey(bob.msk, bob.sk.Master.PublicKey()); !errors.Is(err, ErrNoSecretKey) {
		t.Errorf("no USK: %v", err)
	}
	// Existing signatures survive signing.
	devSigned, _ := bob.sk.SignDevice(bobDev.raw)
	d, err := ParseDeviceKeys(devSigned)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.VerifySignedBy(bob.id, bob.sk.SelfSigning.PublicKey()); err != nil {
		t.Fatal(err)
	}
}

func TestTooManyDevices(t *testing.T) {
	devs := map[string][]byte{}
	for i := range MaxDevices + 1 {
		devs[fmt.Sprint(i)] = nil
	}
	if _, err := Evaluate(Input{UserID: mustUser(t, "@a:b"), Devices: devs}); !errors.Is(err, ErrTooManyDevices) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseDeviceKeys(f *testing.F) {
	d := newDevice(f, "@bob:example.org", "DEV", 20, nil)
	f.Add(d.raw)
	f.Add([]byte(`{"user_id":"@a:b","device_id":"D","algorithms":[],"keys":{}}`))
	bob := newUser(f, "@bob:example.org", 10)
	f.Add(bob.msk)
	f.Add(bob.ssk)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if dev, err := ParseDeviceKeys(raw); err == nil {
			// Only the seed's self-signed content can verify.
			if dev.Ed25519 != d.sk.PublicKey() {
				t.Fatalf("forged device accepted: %q", raw)
			}
		} else if !errors.Is(err, ErrDeviceMalformed) && !errors.Is(err, ErrBadSelfSignature) && !errors.Is(err, ErrMissingAlgorithms) {
			t.Fatalf("untyped error %v", err)
		}
		if k, err := ParseKey(raw); err == nil && k.PublicKey.IsZero() {
			t.Fatal("zero key accepted")
		}
		_, _ = Evaluate(Input{UserID: bob.id, MasterKey: bob.msk, SelfSigningKey: raw, Devices: map[string][]byte{"DEV": raw}})
	})
}

func BenchmarkEvaluate(b *testing.B) {
	alice := newUser(b, "@alice:example.org", 1)
	bob := newUser(b, "@bob:example.org", 10)
	devs := map[string][]byte{}
	for i := range 10 {
		d := newDevice(b, "@bob:example.org", fmt.Sprintf("DEV%02d", i), byte(100+i), nil)
		signed, err := bob.sk.SignDevice(d.raw)
		if err != nil {
			b.Fatal(err)
		}
		devs[fmt.Sprintf("DEV%02d", i)] = signed
	}
	msk, err := alice.sk.SignMasterKey(bob.msk, bob.sk.Master.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	in := Input{UserID: bob.id, MasterKey: msk, SelfSigningKey: bob.ssk, Devices: devs, Our: alice.our()}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Evaluate(in)
		if err != nil || !r.Verified || len(r.CrossSigned()) != 10 {
			b.Fatal("unexpected result")
		}
	}
}
