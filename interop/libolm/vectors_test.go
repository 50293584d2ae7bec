package libolm_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"myelin/interop/libolm"
)

// seq returns n bytes a, a+1, ... (mod 256): the fixed "random" inputs of
// the frozen vectors.
func seq(a byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = a + byte(i)
	}
	return b
}

type vectors struct {
	Olm struct {
		AliceCurve25519 string `json:"alice_curve25519"`
		AliceEd25519    string `json:"alice_ed25519"`
		BobCurve25519   string `json:"bob_curve25519"`
		BobEd25519      string `json:"bob_ed25519"`
		BobOTKID        string `json:"bob_otk_id"`
		BobOTK          string `json:"bob_otk"`
		PreKeyPlaintext string `json:"prekey_plaintext"`
		PreKeyMessage   string `json:"prekey_message"`
		SessionID       string `json:"session_id"`
		ReplyPlaintext  string `json:"reply_plaintext"`
		ReplyMessage    string `json:"reply_message"`
		SecondPlaintext string `json:"second_plaintext"`
		SecondMessage   string `json:"second_message"`
	} `json:"olm"`
	Megolm struct {
		SessionID   string `json:"session_id"`
		SessionKey  string `json:"session_key"`
		Plaintext0  string `json:"plaintext0"`
		Message0    string `json:"message0"`
		Plaintext1  string `json:"plaintext1"`
		Message1    string `json:"message1"`
		ExportIndex uint32 `json:"export_index"`
		Export1     string `json:"export1"`
	} `json:"megolm"`
	SAS struct {
		PubkeyA    string `json:"pubkey_a"`
		PubkeyB    string `json:"pubkey_b"`
		BytesInfo  string `json:"bytes_info"`
		BytesHex   string `json:"bytes_hex"`
		MACInput   string `json:"mac_input"`
		MACInfo    string `json:"mac_info"`
		MACV2      string `json:"mac_v2"`
		MACLegacy  string `json:"mac_legacy"`
		MACLongKDF string `json:"mac_long_kdf"`
	} `json:"sas"`
	PK struct {
		PublicKey  string `json:"public_key"`
		Plaintext  string `json:"plaintext"`
		Ephemeral  string `json:"ephemeral"`
		Ciphertext string `json:"ciphertext"`
		MAC        string `json:"mac"`
	} `json:"pk"`
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "libolm-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// must turns a (value, error) result into a value, failing the test on error:
// must(f())(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func eq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got  %s\n want %s", what, got, want)
	}
}

func TestVersion(t *testing.T) {
	if a, b, c := libolm.Version(); a != 3 || b != 2 {
		t.Fatalf("libolm version %d.%d.%d, want 3.2.x", a, b, c)
	}
}

func TestFrozenOlmVectors(t *testing.T) {
	v := loadVectors(t).Olm
	alice := must(libolm.NewAccount(seq(0x00, 64)))(t)
	defer alice.Free()
	bob := must(libolm.NewAccount(seq(0x80, 64)))(t)
	defer bob.Free()

	ac, ae, err := alice.IdentityKeys()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "alice curve25519", ac, v.AliceCurve25519)
	eq(t, "alice ed25519", ae, v.AliceEd25519)
	bc, be, err := bob.IdentityKeys()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "bob curve25519", bc, v.BobCurve25519)
	eq(t, "bob ed25519", be, v.BobEd25519)

	if err := bob.GenerateOneTimeKeys(1, seq(0xC0, 32)); err != nil {
		t.Fatal(err)
	}
	otks := must(bob.OneTimeKeys())(t)
	if len(otks) != 1 {
		t.Fatalf("one-time keys: %v", otks)
	}
	eq(t, "bob otk", otks[v.BobOTKID], v.BobOTK)

	random := seq(0xE0, 64)
	out := must(alice.NewOutboundSession(bc, otks[v.BobOTKID], random))(t)
	defer out.Free()
	if !bytes.Equal(random, seq(0xE0, 64)) {
		t.Fatal("caller's random buffer was modified")
	}
	if n := out.EncryptRandomLength(); n != 0 {
		t.Fatalf("first encrypt wants %d random bytes, want 0", n)
	}
	typ, pre, err := out.Encrypt([]byte(v.PreKeyPlaintext), nil)
	if err != nil {
		t.Fatal(err)
	}
	if typ != libolm.MessageTypePreKey {
		t.Fatalf("first message type %d", typ)
	}
	eq(t, "pre-key message", pre, v.PreKeyMessage)
	eq(t, "outbound session id", must(out.ID())(t), v.SessionID)

	in := must(bob.NewInboundSessionFrom(ac, pre))(t)
	defer in.Free()
	eq(t, "inbound session id", must(in.ID())(t), v.SessionID)
	if ok := must(in.MatchesInboundFrom(ac, pre))(t); !ok {
		t.Error("inbound session does not match its own pre-key message")
	}
	pt := must(in.Decrypt(libolm.MessageTypePreKey, pre))(t)
	eq(t, "pre-key plaintext", string(pt), v.PreKeyPlaintext)
	if err := bob.RemoveOneTimeKeys(in); err != nil {
		t.Fatal(err)
	}
	if m := must(bob.OneTimeKeys())(t); len(m) != 0 {
		t.Errorf("one-time key not removed: %v", m)
	}

	if n := in.EncryptRandomLength(); n != libolm.EncryptRandomLength {
		t.Fatalf("reply wants %d random bytes", n)
	}
	typ, reply, err := in.Encrypt([]byte(v.ReplyPlaintext), seq(0x60, 32))
	if err != nil {
		t.Fatal(err)
	}
	if typ != libolm.MessageTypeNormal {
		t.Fatalf("reply type %d", typ)
	}
	eq(t, "reply message", reply, v.ReplyMessage)
	eq(t, "reply plaintext", string(must(out.Decrypt(typ, reply))(t)), v.ReplyPlaintext)

	typ, second, err := out.Encrypt([]byte(v.SecondPlaintext), seq(0x50, 32))
	if err != nil {
		t.Fatal(err)
	}
	if typ != libolm.MessageTypeNormal {
		t.Fatalf("second type %d", typ)
	}
	eq(t, "second message", second, v.SecondMessage)
	eq(t, "second plaintext", string(must(in.Decrypt(typ, second))(t)), v.SecondPlaintext)
}

func TestFrozenMegolmVectors(t *testing.T) {
	v := loadVectors(t).Megolm
	out := must(libolm.NewOutboundGroupSession(seq(0x00, 160)))(t)
	defer out.Free()
	eq(t, "session id", must(out.ID())(t), v.SessionID)
	key := must(out.Key())(t)
	eq(t, "session key", key, v.SessionKey)
	m0 := must(out.Encrypt([]byte(v.Plaintext0)))(t)
	eq(t, "message 0", m0, v.Message0)
	m1 := must(out.Encrypt([]byte(v.Plaintext1)))(t)
	eq(t, "message 1", m1, v.Message1)
	if out.MessageIndex() != 2 {
		t.Errorf("message index %d, want 2", out.MessageIndex())
	}

	in := must(libolm.NewInboundGroupSession(key))(t)
	defer in.Free()
	if !in.IsVerified() || in.FirstKnownIndex() != 0 {
		t.Errorf("inbound: verified %v, first index %d", in.IsVerified(), in.FirstKnownIndex())
	}
	eq(t, "inbound session id", must(in.ID())(t), v.SessionID)
	for i, c := range []struct{ msg, pt string }{{m0, v.Plaintext0}, {m1, v.Plaintext1}} {
		pt, idx, err := in.Decrypt(c.msg)
		if err != nil {
			t.Fatal(err)
		}
		if idx != uint32(i) || string(pt) != c.pt {
			t.Errorf("decrypt %d: index %d plaintext %q", i, idx, pt)
		}
	}
	exp := must(in.Export(v.ExportIndex))(t)
	eq(t, "export", exp, v.Export1)

	imp := must(libolm.ImportInboundGroupSession(exp))(t)
	defer imp.Free()
	if imp.IsVerified() || imp.FirstKnownIndex() != v.ExportIndex {
		t.Errorf("import: verified %v, first index %d", imp.IsVerified(), imp.FirstKnownIndex())
	}
	if _, _, err := imp.Decrypt(m0); !libolm.HasCode(err, "UNKNOWN_MESSAGE_INDEX") {
		t.Errorf("decrypt before first known index: %v", err)
	}
	pt, idx, err := imp.Decrypt(m1)
	if err != nil || idx != 1 || string(pt) != v.Plaintext1 {
		t.Errorf("decrypt after import: %q %d %v", pt, idx, err)
	}
	if !imp.IsVerified() {
		t.Error("import not verified after a successful decrypt")
	}
}

func TestFrozenSASVectors(t *testing.T) {
	v := loadVectors(t).SAS
	a := must(libolm.NewSAS(seq(0x11, 32)))(t)
	defer a.Free()
	b := must(libolm.NewSAS(seq(0x33, 32)))(t)
	defer b.Free()
	pa, pb := must(a.PublicKey())(t), must(b.PublicKey())(t)
	eq(t, "pubkey a", pa, v.PubkeyA)
	eq(t, "pubkey b", pb, v.PubkeyB)
	if _, err := a.GenerateBytes([]byte(v.BytesInfo), 6); !libolm.HasCode(err, "OLM_SAS_THEIR_KEY_NOT_SET") {
		t.Errorf("generate bytes before set their key: %v", err)
	}
	if err := a.SetTheirKey(pb); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTheirKey(pa + "="); err != nil { // padding is stripped
		t.Fatal(err)
	}
	for name, s := range map[string]*libolm.SAS{"a": a, "b": b} {
		eq(t, name+" bytes", hex.EncodeToString(must(s.GenerateBytes([]byte(v.BytesInfo), 6))(t)), v.BytesHex)
		in, info := []byte(v.MACInput), []byte(v.MACInfo)
		eq(t, name+" mac v2", must(s.CalculateMACFixedBase64(in, info))(t), v.MACV2)
		eq(t, name+" mac legacy", must(s.CalculateMAC(in, info))(t), v.MACLegacy)
		eq(t, name+" mac long kdf", must(s.CalculateMACLongKDF(in, info))(t), v.MACLongKDF)
	}
}

func TestFrozenPKVectors(t *testing.T) {
	v := loadVectors(t).PK
	d := must(libolm.NewPKDecryption(seq(0x55, 32)))(t)
	defer d.Free()
	eq(t, "public key", d.PublicKey(), v.PublicKey)
	if priv := must(d.PrivateKey())(t); !bytes.Equal(priv, seq(0x55, 32)) {
		t.Error("private key round trip")
	}
	e := must(libolm.NewPKEncryption(d.PublicKey()))(t)
	defer e.Free()
	ct, mac, eph, err := e.Encrypt([]byte(v.Plaintext), seq(0x77, 32))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ephemeral", eph, v.Ephemeral)
	eq(t, "ciphertext", ct, v.Ciphertext)
	eq(t, "mac", mac, v.MAC)
	eq(t, "decrypt", string(must(d.Decrypt(eph, mac, ct))(t)), v.Plaintext)
	if _, err := d.Decrypt(eph, "AAAAAAAAAAA", ct); !libolm.HasCode(err, "BAD_MESSAGE_MAC") {
		t.Errorf("decrypt with a bad MAC: %v", err)
	}
}

func TestSigning(t *testing.T) {
	s := must(libolm.NewPKSigning(seq(0x80, 32)))(t)
	defer s.Free()
	// Bob's account uses the same Ed25519 seed.
	eq(t, "pk signing public key", s.PublicKey(), loadVectors(t).Olm.BobEd25519)
	msg := []byte("sign me")
	sig := must(s.Sign(msg))(t)
	if err := libolm.Ed25519Verify(s.PublicKey(), msg, sig); err != nil {
		t.Fatal(err)
	}
	bob := must(libolm.NewAccount(seq(0x80, 64)))(t)
	defer bob.Free()
	eq(t, "account signature", must(bob.Sign(msg))(t), sig) // Ed25519 is deterministic
	if err := libolm.Ed25519Verify(s.PublicKey(), []byte("sign me!"), sig); !libolm.HasCode(err, "BAD_MESSAGE_MAC") {
		t.Errorf("verify of another message: %v", err)
	}
}

func TestErrorsAndFallbackKeys(t *testing.T) {
	if _, err := libolm.NewAccount(seq(0, 63)); err == nil {
		t.Error("account from 63 random bytes")
	}
	a := must(libolm.NewAccount(seq(0x00, 64)))(t)
	defer a.Free()
	if a.MaxNumberOfOneTimeKeys() != 100 {
		t.Errorf("max one-time keys %d", a.MaxNumberOfOneTimeKeys())
	}
	if _, _, ok, err := a.UnpublishedFallbackKey(); ok || err != nil {
		t.Errorf("fallback key before generation: %v %v", ok, err)
	}
	if err := a.GenerateFallbackKey(seq(0x10, 32)); err != nil {
		t.Fatal(err)
	}
	id, key, ok, err := a.UnpublishedFallbackKey()
	if err != nil || !ok || id != "AAAAAQ" || len(key) != 43 {
		t.Fatalf("fallback key: %q %q %v %v", id, key, ok, err)
	}
	if n := a.MarkKeysAsPublished(); n != 0 {
		t.Errorf("marked %d one-time keys", n)
	}
	if _, _, ok, _ := a.UnpublishedFallbackKey(); ok {
		t.Error("fallback key still unpublished after marking")
	}
	a.ForgetOldFallbackKey()

	b := must(libolm.NewAccount(seq(0x80, 64)))(t)
	defer b.Free()
	bc, _, _ := b.IdentityKeys()
	if _, err := a.NewOutboundSession(bc, "not base64!", seq(0xE0, 64)); !libolm.HasCode(err, "INVALID_BASE64") {
		t.Errorf("outbound session to a bad key: %v", err)
	}
	if _, err := b.NewInboundSession("AwogAAAA"); err == nil {
		t.Error("inbound session from a truncated message")
	}
}
