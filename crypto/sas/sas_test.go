package sas

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"myelin/id"
	"myelin/keys"
)

type vectorFile struct {
	Libolm struct {
		RandomA    byte   `json:"random_a_seq"`
		RandomB    byte   `json:"random_b_seq"`
		PubA       string `json:"pubkey_a"`
		PubB       string `json:"pubkey_b"`
		BytesInfo  string `json:"bytes_info"`
		BytesHex   string `json:"bytes_hex"`
		MACInput   string `json:"mac_input"`
		MACInfo    string `json:"mac_info"`
		MACv2      string `json:"mac_v2"`
		MACLegacy  string `json:"mac_legacy"`
		MACLongKDF string `json:"mac_long_kdf"`
	} `json:"libolm"`
	SASBytes struct {
		Cases []struct {
			BytesHex string `json:"bytes_hex"`
			Emoji    []int  `json:"emoji"`
			Decimal  []int  `json:"decimal"`
		} `json:"cases"`
	} `json:"sas_bytes"`
	Commitment struct {
		Key            string `json:"key"`
		CanonicalStart string `json:"canonical_start"`
		Commitment     string `json:"commitment"`
	} `json:"commitment"`
	QR struct {
		Cases []struct {
			Mode       int    `json:"mode"`
			FlowID     string `json:"flow_id"`
			PayloadHex string `json:"payload_hex"`
		} `json:"cases"`
		Secret string `json:"secret"`
	} `json:"qr"`
}

func loadVectors(t testing.TB) *vectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func seq(a byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = a + byte(i)
	}
	return b
}

func mustV[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func pair(t testing.TB, a, b byte) (*Established, *Established) {
	t.Helper()
	ea := mustV(NewEphemeral(bytes.NewReader(seq(a, 32))))
	eb := mustV(NewEphemeral(bytes.NewReader(seq(b, 32))))
	pa, pb := ea.PublicKey(), eb.PublicKey()
	return mustV(ea.Establish(pb)), mustV(eb.Establish(pa))
}

func TestLibolmVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t).Libolm
	a, b := pair(t, v.RandomA, v.RandomB)
	if a.OurPublicKey().String() != v.PubA || b.OurPublicKey().String() != v.PubB {
		t.Fatalf("public keys %s %s", a.OurPublicKey(), b.OurPublicKey())
	}
	for _, s := range []*Established{a, b} {
		if got := hex.EncodeToString(s.GenerateBytes(v.BytesInfo, 6)); got != v.BytesHex {
			t.Errorf("GenerateBytes = %s, want %s", got, v.BytesHex)
		}
		for m, want := range map[MACMethod]string{MACv2: v.MACv2, MACInsecureLegacyHKDF: v.MACLegacy, MACInsecureLegacyLongKDF: v.MACLongKDF} {
			got, err := s.CalculateMAC(m, v.MACInput, v.MACInfo)
			if err != nil || got != want {
				t.Errorf("%v: %s, want %s (%v)", m, got, want, err)
			}
		}
	}
	// The legacy encoding is the v2 one with the in-place corruption: only
	// the first four characters survive.
	if v.MACLegacy[:4] != v.MACv2[:4] || v.MACLegacy == v.MACv2 {
		t.Error("legacy/v2 relation unexpected")
	}
	if _, err := a.CalculateMAC(MACMethod(99), "x", "y"); !errors.Is(err, ErrUnknownMethod) {
		t.Error("unknown method accepted")
	}
}

func TestEstablishRefuses(t *testing.T) {
	t.Parallel()
	e := mustV(NewEphemeral(bytes.NewReader(seq(1, 32))))
	if _, err := e.Establish(keys.Curve25519PublicKey{}); !errors.Is(err, keys.ErrNonContributory) {
		t.Errorf("all-zero key: %v", err)
	}
	// A low-order point other than zero (order 8 point from RFC 7748 list).
	lo, _ := hex.DecodeString("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
	lok, _ := keys.NewCurve25519PublicKey(lo)
	if _, err := e.Establish(lok); !errors.Is(err, keys.ErrNonContributory) {
		t.Errorf("low-order key: %v", err)
	}
	if _, err := e.Establish(e.PublicKey()); err == nil {
		t.Error("our own key accepted")
	}
	other := mustV(NewEphemeral(bytes.NewReader(seq(9, 32))))
	if _, err := e.Establish(other.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Establish(other.PublicKey()); err == nil {
		t.Error("ephemeral key used twice")
	}
	if e.PublicKey().IsZero() {
		t.Error("public key lost after Establish")
	}
	if _, err := NewEphemeral(bytes.NewReader(seq(1, 31))); err == nil {
		t.Error("short random accepted")
	}
}

func TestCommitment(t *testing.T) {
	t.Parallel()
	v := loadVectors(t).Commitment
	k := mustV(keys.ParseCurve25519PublicKey(v.Key))
	if got := Commitment(k, []byte(v.CanonicalStart)); got != v.Commitment {
		t.Fatalf("Commitment = %s, want %s", got, v.Commitment)
	}
	if err := VerifyCommitment(v.Commitment, k, []byte(v.CanonicalStart)); err != nil {
		t.Fatal(err)
	}
	other := mustV(NewEphemeral(bytes.NewReader(seq(3, 32)))).PublicKey()
	if err := VerifyCommitment(v.Commitment, other, []byte(v.CanonicalStart)); !errors.Is(err, ErrMismatchedCommitment) {
		t.Errorf("other key: %v", err)
	}
	changed := strings.Replace(v.CanonicalStart, `"decimal",`, ``, 1)
	if err := VerifyCommitment(v.Commitment, k, []byte(changed)); !errors.Is(err, ErrMismatchedCommitment) {
		t.Errorf("changed start content: %v", err)
	}
}

func TestEmojiTableMatchesSpec(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/sas-emoji.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec []struct {
		Number      int    `json:"number"`
		Emoji       string `json:"emoji"`
		Description string `json:"description"`
		Unicode     string `json:"unicode"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	table := EmojiTable()
	if len(spec) != len(table) {
		t.Fatalf("spec has %d entries", len(spec))
	}
	seen := map[string]bool{}
	for i, e := range spec {
		got := table[i]
		if got.Number != e.Number || got.Emoji != e.Emoji || got.Description != e.Description || got.Unicode != e.Unicode {
			t.Errorf("entry %d: %+v, spec %+v", i, got, e)
		}
		seen[e.Description] = true
	}
	if len(seen) != 64 {
		t.Error("descriptions are not distinct")
	}
}

func TestSASBytes(t *testing.T) {
	t.Parallel()
	for _, c := range loadVectors(t).SASBytes.Cases {
		var b [6]byte
		hex.Decode(b[:], []byte(c.BytesHex))
		s := NewShortAuthString(b)
		em := s.Emoji()
		for i, e := range em {
			if e.Number != c.Emoji[i] {
				t.Errorf("%s: emoji %d = %d, want %d", c.BytesHex, i, e.Number, c.Emoji[i])
			}
		}
		d := s.Decimal()
		for i := range d {
			if d[i] != c.Decimal[i] {
				t.Errorf("%s: decimal %v, want %v", c.BytesHex, d, c.Decimal)
			}
		}
	}
}

var (
	aliceUser = mustV(id.ParseUserID("@alice:example.org"))
	bobUser   = mustV(id.ParseUserID("@bob:example.org"))
	aliceDev  = mustV(id.ParseDeviceID("ALICEDEV"))
	bobDev    = mustV(id.ParseDeviceID("BOBDEV"))
)

func flows() (aliceFlow, bobFlow Flow) {
	alice, bob := Party{aliceUser, aliceDev}, Party{bobUser, bobDev}
	return Flow{ID: "txn1", Our: alice, Their: bob, WeStarted: true},
		Flow{ID: "txn1", Our: bob, Their: alice, WeStarted: false}
}

func TestShortAuthStringInfo(t *testing.T) {
	t.Parallel()
	a, b := pair(t, 0x11, 0x33)
	fa, fb := flows()
	sa := mustV(a.ShortAuthString(fa))
	sb := mustV(b.ShortAuthString(fb))
	if sa != sb {
		t.Fatal("the two sides disagree")
	}
	// The info layout, spelled out: starter first, "|" separators, keys.
	info := "MATRIX_KEY_VERIFICATION_SAS|@alice:example.org|ALICEDEV|" + a.OurPublicKey().String() +
		"|@bob:example.org|BOBDEV|" + b.OurPublicKey().String() + "|txn1"
	want := a.GenerateBytes(info, 6)
	got := sa.Bytes()
	if !bytes.Equal(got[:], want) {
		t.Fatal("SAS info layout differs from the spec's")
	}
	// Disagreeing about who started, or about the flow, changes the SAS.
	fb2 := fb
	fb2.WeStarted = true
	if s := mustV(b.ShortAuthString(fb2)); s == sa {
		t.Error("starter/accepter order does not matter")
	}
	fb3 := fb
	fb3.ID = "txn2"
	if s := mustV(b.ShortAuthString(fb3)); s == sa {
		t.Error("flow ID does not matter")
	}
	if _, err := a.ShortAuthString(Flow{}); !errors.Is(err, ErrInvalidFlow) {
		t.Error("empty flow accepted")
	}
}

func edKey(t testing.TB, seed byte) keys.Ed25519PublicKey {
	t.Helper()
	return mustV(keys.NewEd25519SecretKeyFromSeed(seq(seed, 32))).PublicKey()
}

func TestMACFlow(t *testing.T) {
	t.Parallel()
	a, b := pair(t, 0x11, 0x33)
	fa, fb := flows()
	aliceDevKey, aliceMSK := edKey(t, 1), edKey(t, 2)
	aliceSSK := edKey(t, 3)
	for _, m := range []MACMethod{MACv2, MACInsecureLegacyHKDF, MACInsecureLegacyLongKDF} {
		content := mustV(a.MACs(m, fa, []Key{DeviceKey(aliceDev, aliceDevKey), MasterKey(aliceMSK)}))
		pinned := mustV(Pin(TheirKeys{Device: aliceDev, DeviceKey: aliceDevKey, MasterKey: aliceMSK, OtherCrossSigningKeys: []keys.Ed25519PublicKey{aliceSSK}}))
		got, err := b.VerifyMACs(m, fb, pinned, content)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if len(got) != 2 {
			t.Fatalf("%v: verified %d keys", m, len(got))
		}
		for _, k := range got {
			if k.ID().IsCrossSigning() {
				if k.PublicKey() != aliceMSK {
					t.Error("master key verified with the wrong public key")
				}
			} else if d, _ := k.ID().DeviceID(); d != aliceDev || k.PublicKey() != aliceDevKey {
				t.Error("device key verified with the wrong public key")
			}
		}
	}
}

func TestMACRefusals(t *testing.T) {
	t.Parallel()
	a, b := pair(t, 0x11, 0x33)
	fa, fb := flows()
	aliceDevKey, aliceMSK, evilMSK := edKey(t, 1), edKey(t, 2), edKey(t, 4)
	offer := []Key{DeviceKey(aliceDev, aliceDevKey), MasterKey(aliceMSK)}
	pinned := mustV(Pin(TheirKeys{Device: aliceDev, DeviceKey: aliceDevKey, MasterKey: aliceMSK}))
	good := mustV(a.MACs(MACv2, fa, offer))
	clone := func(c *MACContent) *MACContent {
		n := &MACContent{MAC: map[string]string{}, Keys: c.Keys}
		for k, v := range c.MAC {
			n.MAC[k] = v
		}
		return n
	}
	otherDev := mustV(id.ParseDeviceID("OTHER"))
	withExtra := mustV(a.MACs(MACv2, fa, append(offer, DeviceKey(otherDev, edKey(t, 5)))))
	deviceOnly := mustV(a.MACs(MACv2, fa, offer[:1]))

	cases := []struct {
		name   string
		method MACMethod
		flow   Flow
		pinned *PinnedKeys
		c      *MACContent
		want   error
	}{
		{"entry removed: KEY_IDS over a different list", MACv2, fb, pinned, func() *MACContent {
			c := clone(good)
			delete(c.MAC, MasterKey(aliceMSK).ID().String())
			return c
		}(), ErrKeyMismatch},
		{"KEY_IDS MAC of another list", MACv2, fb, pinned, func() *MACContent {
			c := clone(good)
			c.Keys = deviceOnly.Keys
			return c
		}(), ErrKeyMismatch},
		{"key ID outside the pinned set (MACs valid)", MACv2, fb, pinned, withExtra, ErrUnexpectedKeyID},
		{"server swapped the master key we pinned", MACv2, fb, mustV(Pin(TheirKeys{Device: aliceDev, DeviceKey: aliceDevKey, MasterKey: evilMSK})), good, ErrUnexpectedKeyID},
		{"device key changed under the same ID", MACv2, fb, mustV(Pin(TheirKeys{Device: aliceDev, DeviceKey: edKey(t, 6), MasterKey: aliceMSK})), good, ErrKeyMismatch},
		{"MAC value swapped between entries", MACv2, fb, pinned, func() *MACContent {
			c := clone(good)
			d, m := DeviceKey(aliceDev, aliceDevKey).ID().String(), MasterKey(aliceMSK).ID().String()
			c.MAC[d], c.MAC[m] = c.MAC[m], c.MAC[d]
			return c
		}(), ErrKeyMismatch},
		{"roles not swapped (our info instead of theirs)", MACv2, fa, pinned, good, ErrKeyMismatch},
		{"legacy MAC checked as v2", MACv2, fb, pinned, mustV(a.MACs(MACInsecureLegacyHKDF, fa, offer)), ErrKeyMismatch},
		{"empty", MACv2, fb, pinned, &MACContent{}, ErrNoKeys},
		{"invalid flow", MACv2, Flow{}, pinned, good, ErrInvalidFlow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.VerifyMACs(tc.method, tc.flow, tc.pinned, tc.c)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("VerifyMACs: %v (%d keys), want %v", err, len(got), tc.want)
			}
		})
	}
	// Sanity: the unmodified message verifies with the same inputs.
	if _, err := b.VerifyMACs(MACv2, fb, pinned, good); err != nil {
		t.Fatal(err)
	}
	// A device-only message verifies only the device.
	got, err := b.VerifyMACs(MACv2, fb, pinned, deviceOnly)
	if err != nil || len(got) != 1 || got[0].ID().IsCrossSigning() {
		t.Fatalf("device only: %v", err)
	}
}

// TestKeyIDConfusion is CVE-2022-39250: a device whose ID is the base64 of a
// master key.
func TestKeyIDConfusion(t *testing.T) {
	t.Parallel()
	realMSK, evilMSK, devKey := edKey(t, 2), edKey(t, 4), edKey(t, 1)
	evilDev := mustV(id.ParseDeviceID(evilMSK.String()))

	// The two IDs print the same, yet are different values of different kinds.
	dk, ck := DeviceKeyID(evilDev), CrossSigningKeyID(evilMSK)
	if dk.String() != ck.String() {
		t.Fatal("test setup: wire forms should collide")
	}
	if dk == ck || dk.IsCrossSigning() || !ck.IsCrossSigning() {
		t.Fatal("a device key ID is taken for a cross-signing key ID")
	}
	if _, ok := dk.CrossSigningKey(); ok {
		t.Fatal("a device key ID yields a cross-signing key")
	}

	cases := []struct {
		name string
		t    TheirKeys
	}{
		{"the device in the flow", TheirKeys{Device: evilDev, DeviceKey: devKey, MasterKey: evilMSK}},
		{"another device of the user", TheirKeys{Device: aliceDev, DeviceKey: devKey, MasterKey: evilMSK, OtherDevices: []id.DeviceID{evilDev}}},
		{"the self-signing key", TheirKeys{Device: evilDev, DeviceKey: devKey, MasterKey: realMSK, OtherCrossSigningKeys: []keys.Ed25519PublicKey{evilMSK}}},
	}
	for _, tc := range cases {
		if _, err := Pin(tc.t); !errors.Is(err, ErrDeviceIDCollision) {
			t.Errorf("%s: Pin: %v, want ErrDeviceIDCollision", tc.name, err)
		}
	}

	// The A2 attack flow: Alice's device (ID = b64(evil MSK)) honestly MACs
	// its device key under ed25519:<evilMSK>. Bob, served evilMSK as Alice's
	// master key and asked to pin it, refuses at Pin; and even if he had
	// pinned only the device, the device MAC can never verify the master key.
	a, b := pair(t, 0x11, 0x33)
	fa, fb := flows()
	fa.Our.Device, fb.Their.Device = evilDev, evilDev
	content := mustV(a.MACs(MACv2, fa, []Key{DeviceKey(evilDev, devKey), MasterKey(realMSK)}))
	pinned := mustV(Pin(TheirKeys{Device: evilDev, DeviceKey: devKey}))
	if _, err := b.VerifyMACs(MACv2, fb, pinned, content); !errors.Is(err, ErrUnexpectedKeyID) {
		t.Fatalf("real MSK not pinned: %v", err)
	}
	onlyDev := mustV(a.MACs(MACv2, fa, []Key{DeviceKey(evilDev, devKey)}))
	got := mustV(b.VerifyMACs(MACv2, fb, pinned, onlyDev))
	if len(got) != 1 || got[0].ID().IsCrossSigning() {
		t.Fatal("a device key was reported as a cross-signing key")
	}
	// Our own offer is checked the same way.
	if _, err := a.MACs(MACv2, fa, []Key{DeviceKey(evilDev, devKey), MasterKey(evilMSK)}); !errors.Is(err, ErrDeviceIDCollision) {
		t.Errorf("MACs with a colliding offer: %v", err)
	}
}

func TestChooseMACMethod(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []string
		want MACMethod
	}{
		{[]string{"hkdf-hmac-sha256", "hkdf-hmac-sha256.v2"}, MACv2},
		{[]string{"hmac-sha256", "org.matrix.msc3783.hkdf-hmac-sha256"}, MACv2},
		{[]string{"hmac-sha256", "hkdf-hmac-sha256"}, MACInsecureLegacyHKDF},
		{[]string{"hmac-sha256", "x"}, MACInsecureLegacyLongKDF},
	} {
		if got, err := ChooseMACMethod(c.in); err != nil || got != c.want {
			t.Errorf("%v: %v %v", c.in, got, err)
		}
	}
	if _, err := ChooseMACMethod([]string{"hmac-md5"}); !errors.Is(err, ErrUnknownMethod) {
		t.Error("unknown methods accepted")
	}
	for _, m := range []MACMethod{MACv2, MACInsecureLegacyHKDF, MACInsecureLegacyLongKDF} {
		if p, err := ParseMACMethod(m.String()); err != nil || p != m {
			t.Errorf("%v does not round-trip", m)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	a, _ := pair(t, 0x11, 0x33)
	out := fmt.Sprintf("%v %+v %#v %s %x", a, a, a, a, a)
	if !strings.Contains(out, "REDACTED") || strings.Contains(out, hex.EncodeToString(a.shared[:4])) {
		t.Errorf("formatting leaks: %s", out)
	}
}
