package interop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"myelin/crypto/megolm"
	"myelin/crypto/olm"
	"myelin/keys"
)

func seq(a byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = a + byte(i)
	}
	return b
}

// TestMyelinFrozenVectors reproduces the libolm vectors of
// testdata/libolm-vectors.json with myelin alone. Each random reader holds
// exactly the bytes libolm consumed, so this also checks that myelin reads
// the same amount of randomness at the same steps.
func TestMyelinFrozenVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "libolm-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Olm    map[string]string `json:"olm"`
		Megolm map[string]any    `json:"megolm"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	o := v.Olm
	eq := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s:\n got  %s\n want %s", what, got, want)
		}
	}
	aliceRand := fixedRand(seq(0x00, 64), seq(0xE0, 64), seq(0x50, 32))
	bobRand := fixedRand(seq(0x80, 64), seq(0xC0, 32), seq(0x60, 32))
	alice, err := olm.NewAccount(aliceRand)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := olm.NewAccount(bobRand)
	if err != nil {
		t.Fatal(err)
	}
	ac, ae := alice.IdentityKeys()
	bc, be := bob.IdentityKeys()
	eq("alice curve25519", ac.String(), o["alice_curve25519"])
	eq("alice ed25519", ae.String(), o["alice_ed25519"])
	eq("bob curve25519", bc.String(), o["bob_curve25519"])
	eq("bob ed25519", be.String(), o["bob_ed25519"])
	if err := bob.GenerateOneTimeKeys(bobRand, 1); err != nil {
		t.Fatal(err)
	}
	otks := bob.OneTimeKeys()
	if len(otks) != 1 {
		t.Fatalf("one-time keys: %v", otks)
	}
	eq("bob otk id", otks[0].ID, o["bob_otk_id"])
	eq("bob otk", otks[0].Key.String(), o["bob_otk"])

	sa, err := alice.NewOutboundSession(aliceRand, bc, otks[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := sa.Encrypt(aliceRand, []byte(o["prekey_plaintext"]))
	if err != nil {
		t.Fatal(err)
	}
	eq("pre-key message", keys.EncodeBase64(pre.Marshal()), o["prekey_message"])
	eq("session id", sa.ID(), o["session_id"])

	pm, ok := pre.(*olm.PreKeyMessage)
	if !ok {
		t.Fatalf("first message is a %T", pre)
	}
	sb, pt, err := bob.NewInboundSession(ac, pm)
	if err != nil {
		t.Fatal(err)
	}
	eq("pre-key plaintext", string(pt), o["prekey_plaintext"])
	reply, err := sb.Encrypt(bobRand, []byte(o["reply_plaintext"]))
	if err != nil {
		t.Fatal(err)
	}
	eq("reply", keys.EncodeBase64(reply.Marshal()), o["reply_message"])
	if pt, err = sa.Decrypt(reply); err != nil || string(pt) != o["reply_plaintext"] {
		t.Fatalf("decrypt reply: %q %v", pt, err)
	}
	second, err := sa.Encrypt(aliceRand, []byte(o["second_plaintext"]))
	if err != nil {
		t.Fatal(err)
	}
	eq("second", keys.EncodeBase64(second.Marshal()), o["second_message"])
	if len(aliceRand.b) != 0 || len(bobRand.b) != 0 {
		t.Errorf("random left unread: alice %d bytes, bob %d bytes", len(aliceRand.b), len(bobRand.b))
	}

	m := v.Megolm
	out, err := megolm.NewOutboundSession(fixedRand(seq(0x00, 160)))
	if err != nil {
		t.Fatal(err)
	}
	eq("megolm session id", out.ID(), m["session_id"].(string))
	eq("megolm session key", out.SessionKey().String(), m["session_key"].(string))
	eq("megolm message 0", keys.EncodeBase64(out.Encrypt([]byte(m["plaintext0"].(string)))), m["message0"].(string))
	eq("megolm message 1", keys.EncodeBase64(out.Encrypt([]byte(m["plaintext1"].(string)))), m["message1"].(string))
	sk, err := megolm.ParseSessionKey(m["session_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	in, err := megolm.NewInboundSession(sk)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := in.Export(1)
	if err != nil {
		t.Fatal(err)
	}
	eq("megolm export at 1", exp.String(), m["export1"].(string))
}
