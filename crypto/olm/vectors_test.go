package olm

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"myelin/keys"
)

func seq(a byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = a + byte(i)
	}
	return b
}

type libolmVectors struct {
	Source          string `json:"source"`
	AliceCurve      string `json:"alice_curve25519"`
	AliceEd         string `json:"alice_ed25519"`
	BobCurve        string `json:"bob_curve25519"`
	BobEd           string `json:"bob_ed25519"`
	BobOTKID        string `json:"bob_otk_id"`
	BobOTK          string `json:"bob_otk"`
	PreKeyPlaintext string `json:"prekey_plaintext"`
	PreKeyMessage   string `json:"prekey_message"`
	SessionID       string `json:"session_id"`
	ReplyPlaintext  string `json:"reply_plaintext"`
	ReplyMessage    string `json:"reply_message"`
	SecondPlaintext string `json:"second_plaintext"`
	SecondMessage   string `json:"second_message"`
}

func loadVectors(t testing.TB) libolmVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/libolm-3.2.13-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v libolmVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustDecode(t testing.TB, s string) []byte {
	t.Helper()
	b, err := keys.DecodeBase64(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLibolmVectors reproduces, byte for byte, a conversation libolm 3.2.13
// produced from fixed random input.
func TestLibolmVectors(t *testing.T) {
	v := loadVectors(t)
	alice, err := NewAccount(bytes.NewReader(seq(0x00, 64)))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewAccount(bytes.NewReader(seq(0x80, 64)))
	if err != nil {
		t.Fatal(err)
	}
	ac, ae := alice.IdentityKeys()
	bc, be := bob.IdentityKeys()
	for _, c := range []struct{ name, got, want string }{
		{"alice curve25519", ac.String(), v.AliceCurve},
		{"alice ed25519", ae.String(), v.AliceEd},
		{"bob curve25519", bc.String(), v.BobCurve},
		{"bob ed25519", be.String(), v.BobEd},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	if err := bob.GenerateOneTimeKeys(bytes.NewReader(seq(0xC0, 32)), 1); err != nil {
		t.Fatal(err)
	}
	otks := bob.OneTimeKeys()
	if len(otks) != 1 || otks[0].ID != v.BobOTKID || otks[0].Key.String() != v.BobOTK {
		t.Fatalf("bob OTKs = %v, want %s:%s", otks, v.BobOTKID, v.BobOTK)
	}

	as, err := alice.NewOutboundSession(bytes.NewReader(seq(0xE0, 64)), bc, otks[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	if as.ID() != v.SessionID {
		t.Errorf("alice session ID = %s, want %s", as.ID(), v.SessionID)
	}
	m1, err := as.Encrypt(nil, []byte(v.PreKeyPlaintext)) // no randomness needed
	if err != nil {
		t.Fatal(err)
	}
	if m1.Type() != MessageTypePreKey || keys.EncodeBase64(m1.Marshal()) != v.PreKeyMessage {
		t.Fatalf("pre-key message = %d %s\nwant 0 %s", m1.Type(), keys.EncodeBase64(m1.Marshal()), v.PreKeyMessage)
	}

	pk, err := ParsePreKeyMessage(mustDecode(t, v.PreKeyMessage))
	if err != nil {
		t.Fatal(err)
	}
	if pk.SessionID() != v.SessionID {
		t.Errorf("pre-key SessionID = %s", pk.SessionID())
	}
	bs, pt, err := bob.NewInboundSession(ac, pk)
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != v.PreKeyPlaintext || bs.ID() != v.SessionID {
		t.Fatalf("bob got %q in session %s", pt, bs.ID())
	}
	if len(bob.OneTimeKeys()) != 0 {
		t.Error("one-time key not removed after use")
	}
	if !bs.MatchesInbound(ac, pk) {
		t.Error("MatchesInbound = false for the session's own pre-key message")
	}

	m2, err := bs.Encrypt(bytes.NewReader(seq(0x60, 32)), []byte(v.ReplyPlaintext))
	if err != nil {
		t.Fatal(err)
	}
	if m2.Type() != MessageTypeNormal || keys.EncodeBase64(m2.Marshal()) != v.ReplyMessage {
		t.Fatalf("reply = %d %s\nwant 1 %s", m2.Type(), keys.EncodeBase64(m2.Marshal()), v.ReplyMessage)
	}
	nm, err := ParseNormalMessage(mustDecode(t, v.ReplyMessage))
	if err != nil {
		t.Fatal(err)
	}
	pt, err = as.Decrypt(nm)
	if err != nil || string(pt) != v.ReplyPlaintext {
		t.Fatalf("alice decrypt = %q, %v", pt, err)
	}
	if !as.HasReceivedMessage() {
		t.Error("HasReceivedMessage = false after a reply")
	}

	m3, err := as.Encrypt(bytes.NewReader(seq(0x50, 32)), []byte(v.SecondPlaintext))
	if err != nil {
		t.Fatal(err)
	}
	if m3.Type() != MessageTypeNormal || keys.EncodeBase64(m3.Marshal()) != v.SecondMessage {
		t.Fatalf("second = %d %s\nwant 1 %s", m3.Type(), keys.EncodeBase64(m3.Marshal()), v.SecondMessage)
	}
	pt, err = bs.Decrypt(m3)
	if err != nil || string(pt) != v.SecondPlaintext {
		t.Fatalf("bob decrypt = %q, %v", pt, err)
	}
}
