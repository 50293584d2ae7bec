package backup

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"myelin/crypto/internal/cipher"
	"myelin/id"
	"myelin/keys"
)

type vectorFile struct {
	Libolm struct {
		PrivateSeq   byte   `json:"private_key_seq"`
		EphemeralSeq byte   `json:"ephemeral_random_seq"`
		PublicKey    string `json:"public_key"`
		Plaintext    string `json:"plaintext"`
		Ephemeral    string `json:"ephemeral"`
		Ciphertext   string `json:"ciphertext"`
		MAC          string `json:"mac"`
	} `json:"libolm"`
	Mautrix struct {
		PrivateKey string `json:"private_key"`
		Entries    []struct {
			SessionData json.RawMessage `json:"session_data"`
			SenderKey   string          `json:"sender_key"`
			SessionKey  string          `json:"session_key"`
		} `json:"entries"`
	} `json:"mautrix"`
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

func mustKey(t testing.TB, b []byte) *DecryptionKey {
	t.Helper()
	k, err := NewDecryptionKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var alice = func() id.UserID {
	u, err := id.ParseUserID("@alice:example.org")
	if err != nil {
		panic(err)
	}
	return u
}()

func TestLibolmVector(t *testing.T) {
	t.Parallel()
	v := loadVectors(t).Libolm
	k := mustKey(t, seq(v.PrivateSeq, 32))
	if got := k.PublicKey().String(); got != v.PublicKey {
		t.Fatalf("public key %s, want %s", got, v.PublicKey)
	}
	sd, err := Encrypt(bytes.NewReader(seq(v.EphemeralSeq, 32)), k.PublicKey(), []byte(v.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	if sd.Ephemeral != v.Ephemeral || sd.Ciphertext != v.Ciphertext || sd.MAC != v.MAC {
		t.Fatalf("got %+v, want libolm's %s %s %s", sd, v.Ephemeral, v.Ciphertext, v.MAC)
	}
	d, err := k.Decrypt(alice, sd)
	if err != nil || string(d.Plaintext) != v.Plaintext || d.Provenance != Unauthenticated {
		t.Fatalf("Decrypt: %v %+v", err, d)
	}
}

// TestEmptyStringMAC shows that the v1 MAC is over the empty string: the MAC
// "as the spec intended" (over the ciphertext) does not match libolm.
func TestEmptyStringMAC(t *testing.T) {
	t.Parallel()
	v := loadVectors(t).Libolm
	k := mustKey(t, seq(v.PrivateSeq, 32))
	eph, _ := keys.ParseCurve25519PublicKey(v.Ephemeral)
	shared, err := k.sk.SharedSecret(eph)
	if err != nil {
		t.Fatal(err)
	}
	ck := cipher.DeriveKeys(shared[:], "")
	ct, _ := keys.DecodeBase64(v.Ciphertext)
	proper := ck.MAC(ct)
	if keys.EncodeBase64(proper[:]) == v.MAC {
		t.Fatal("the MAC over the ciphertext matches libolm: the vector is wrong")
	}
	empty := ck.MAC(nil)
	if keys.EncodeBase64(empty[:]) != v.MAC {
		t.Fatal("the empty-string MAC does not match libolm")
	}
	// An entry with the "proper" MAC is refused, as libolm refuses it.
	sd := &SessionData{Ephemeral: v.Ephemeral, Ciphertext: v.Ciphertext, MAC: keys.EncodeBase64(proper[:])}
	if _, err := k.Decrypt(alice, sd); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("proper-MAC entry: %v, want ErrBadMAC", err)
	}
}

func TestMautrixVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t).Mautrix
	raw, _ := keys.DecodeBase64(v.PrivateKey)
	k := mustKey(t, raw)
	for i, e := range v.Entries {
		sd, err := ParseSessionData(e.SessionData)
		if err != nil {
			t.Fatal(err)
		}
		d, err := k.Decrypt(alice, sd)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		var got struct {
			Algorithm  string `json:"algorithm"`
			SenderKey  string `json:"sender_key"`
			SessionKey string `json:"session_key"`
		}
		if err := json.Unmarshal(d.Plaintext, &got); err != nil {
			t.Fatal(err)
		}
		if got.SessionKey != e.SessionKey || got.SenderKey != e.SenderKey || got.Algorithm != "m.megolm.v1.aes-sha2" {
			t.Errorf("entry %d: %+v", i, got)
		}
		if d.Provenance != Unauthenticated {
			t.Errorf("entry %d: provenance %v", i, d.Provenance)
		}
	}
}

func TestMACKeyDerivation(t *testing.T) {
	t.Parallel()
	k := mustKey(t, seq(0x55, 32))
	want, _ := hkdf.Key(sha256.New, seq(0x55, 32), make([]byte, 32), "MATRIX_BACKUP_MAC_KEY", 32)
	if !bytes.Equal(k.MACKey().Bytes(), want) {
		t.Fatal("MAC key is not HKDF(no salt, key, MATRIX_BACKUP_MAC_KEY)")
	}
}

func TestAuthenticated(t *testing.T) {
	t.Parallel()
	k := mustKey(t, seq(0x55, 32))
	pt := []byte(`{"algorithm":"m.megolm.v1.aes-sha2","session_key":"x"}`)
	sd, err := EncryptAuthenticated(bytes.NewReader(seq(0x77, 32)), k.PublicKey(), k.MACKey(), alice, pt)
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON and back, as the server would store it.
	raw, _ := json.Marshal(sd)
	sd2, err := ParseSessionData(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := k.Decrypt(alice, sd2)
	if err != nil || !bytes.Equal(d.Plaintext, pt) || d.Provenance != Authenticated {
		t.Fatalf("Decrypt: %v %+v", err, d)
	}
	// The MAC is HMAC(mac key, canonical session_data without signatures).
	h := hmac.New(sha256.New, k.MACKey().Bytes())
	fmt.Fprintf(h, `{"ciphertext":"%s","ephemeral":"%s","mac":"%s"}`, sd.Ciphertext, sd.Ephemeral, sd.MAC)
	if keys.EncodeBase64(h.Sum(nil)) != sd.Signatures[alice.String()][SignatureKeyID] {
		t.Fatal("MSC4048 MAC is not over the canonical session_data")
	}

	bob, _ := id.ParseUserID("@bob:example.org")
	attacker, _ := GenerateDecryptionKey(bytes.NewReader(seq(0x99, 32)))
	forged, _ := EncryptAuthenticated(bytes.NewReader(seq(0x10, 32)), k.PublicKey(), attacker.MACKey(), alice, []byte(`{"evil":1}`))

	flipB64 := func(s string, i int) string {
		b, _ := keys.DecodeBase64(s)
		b[i] ^= 1
		return keys.EncodeBase64(b)
	}
	cases := []struct {
		name     string
		user     id.UserID
		mut      func(sd *SessionData)
		want     error
		wantProv Provenance
	}{
		{"signature stripped: decrypts, unauthenticated", alice, func(sd *SessionData) { sd.Signatures = nil }, nil, Unauthenticated},
		{"signature for another user only", bob, func(*SessionData) {}, nil, Unauthenticated},
		{"other key ID only", alice, func(sd *SessionData) {
			sd.Signatures = map[string]map[string]string{alice.String(): {"ed25519:DEVICE": sd.Signatures[alice.String()][SignatureKeyID]}}
		}, nil, Unauthenticated},
		{"MAC bit flipped", alice, func(sd *SessionData) {
			sd.Signatures[alice.String()][SignatureKeyID] = flipB64(sd.Signatures[alice.String()][SignatureKeyID], 0)
		}, ErrBadAuthenticationMAC, 0},
		{"ciphertext changed under a valid MAC", alice, func(sd *SessionData) { sd.Ciphertext = flipB64(sd.Ciphertext, 3) }, ErrBadAuthenticationMAC, 0},
		{"ephemeral swapped under a valid MAC", alice, func(sd *SessionData) { sd.Ephemeral = forged.Ephemeral }, ErrBadAuthenticationMAC, 0},
		{"MAC made with another key", alice, func(sd *SessionData) { *sd = *cloneSD(forged) }, ErrBadAuthenticationMAC, 0},
		{"MAC truncated", alice, func(sd *SessionData) { sd.Signatures[alice.String()][SignatureKeyID] = "AAAA" }, ErrMalformed, 0},
		{"extra field on an authenticated entry", alice, func(sd *SessionData) { sd.extra = true }, ErrUnsupportedFields, 0},
		{"extra field on an unauthenticated entry", alice, func(sd *SessionData) { sd.extra = true; sd.Signatures = nil }, nil, Unauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cloneSD(sd)
			tc.mut(c)
			d, err := k.Decrypt(tc.user, c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decrypt: %v, want %v", err, tc.want)
			}
			if err == nil && (d.Provenance != tc.wantProv || !bytes.Equal(d.Plaintext, pt)) {
				t.Fatalf("provenance %v, want %v", d.Provenance, tc.wantProv)
			}
			if err != nil && d != nil {
				t.Fatal("result returned with an error")
			}
		})
	}
}

func cloneSD(sd *SessionData) *SessionData {
	c := *sd
	if sd.Signatures != nil {
		c.Signatures = map[string]map[string]string{}
		for u, m := range sd.Signatures {
			c.Signatures[u] = map[string]string{}
			for k, v := range m {
				c.Signatures[u][k] = v
			}
		}
	}
	return &c
}

func TestParseSessionDataExtraFields(t *testing.T) {
	t.Parallel()
	sd, err := ParseSessionData([]byte(`{"ephemeral":"a","ciphertext":"b","mac":"c","unsigned":{}}`))
	if err != nil || sd.extra {
		t.Fatalf("unsigned counted as extra: %v", err)
	}
	sd, err = ParseSessionData([]byte(`{"ephemeral":"a","ciphertext":"b","mac":"c","iv":"d"}`))
	if err != nil || !sd.extra {
		t.Fatalf("extra field not noticed: %v", err)
	}
	for _, in := range []string{`[]`, `{"ephemeral":1}`, `{` + strings.Repeat(" ", MaxSessionDataSize) + `}`} {
		if _, err := ParseSessionData([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%.40q: %v", in, err)
		}
	}
}

func TestDecryptRefuses(t *testing.T) {
	t.Parallel()
	v := loadVectors(t).Libolm
	k := mustKey(t, seq(v.PrivateSeq, 32))
	good := SessionData{Ephemeral: v.Ephemeral, Ciphertext: v.Ciphertext, MAC: v.MAC}
	zeroKey := keys.EncodeBase64(make([]byte, 32))
	other, _ := GenerateDecryptionKey(bytes.NewReader(seq(1, 32)))
	cases := []struct {
		name string
		key  *DecryptionKey
		mut  func(sd *SessionData)
		want error
	}{
		{"wrong key", other, func(*SessionData) {}, ErrBadMAC},
		{"mac changed", k, func(sd *SessionData) { sd.MAC = "AAAAAAAAAAA" }, ErrBadMAC},
		{"ciphertext not whole blocks", k, func(sd *SessionData) { sd.Ciphertext = "AAAA" }, ErrDecrypt},
		{"low-order ephemeral", k, func(sd *SessionData) { sd.Ephemeral = zeroKey }, keys.ErrNonContributory},
		{"ephemeral short", k, func(sd *SessionData) { sd.Ephemeral = "AAAA" }, ErrMalformed},
		{"mac 9 bytes", k, func(sd *SessionData) { sd.MAC = "AAAAAAAAAAAA" }, ErrMalformed},
		{"mac not base64", k, func(sd *SessionData) { sd.MAC = "!!!" }, ErrMalformed},
		{"ciphertext not base64", k, func(sd *SessionData) { sd.Ciphertext = "!!!" }, ErrMalformed},
		{"ciphertext too long", k, func(sd *SessionData) { sd.Ciphertext = strings.Repeat("A", 2*MaxPlaintextSize+4) }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sd := good
			tc.mut(&sd)
			if d, err := tc.key.Decrypt(alice, &sd); !errors.Is(err, tc.want) || d != nil {
				t.Fatalf("Decrypt: %v, want %v", err, tc.want)
			}
		})
	}
	// Padded base64 input is accepted (some clients pad).
	padded := SessionData{Ephemeral: v.Ephemeral + "=", Ciphertext: v.Ciphertext + "==", MAC: v.MAC + "="}
	if _, err := k.Decrypt(alice, &padded); err != nil {
		t.Errorf("padded entry: %v", err)
	}
	if _, err := Encrypt(bytes.NewReader(seq(0, 32)), k.PublicKey(), make([]byte, MaxPlaintextSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized plaintext: %v", err)
	}
	if _, err := Encrypt(bytes.NewReader(seq(0, 32)), keys.Curve25519PublicKey{}, []byte("x")); !errors.Is(err, keys.ErrNonContributory) {
		t.Errorf("zero public key: %v", err)
	}
	if _, err := EncryptAuthenticated(bytes.NewReader(seq(0, 32)), k.PublicKey(), k.MACKey(), id.UserID{}, []byte("x")); err == nil {
		t.Error("empty user ID accepted")
	}
}

func TestKeyForms(t *testing.T) {
	t.Parallel()
	k := mustKey(t, seq(0x55, 32))
	k2, err := ParseRecoveryKey(k.RecoveryKey())
	if err != nil || !k2.Equal(k) {
		t.Fatalf("recovery key round trip: %v", err)
	}
	k3, err := ParseSecret(k.Secret())
	if err != nil || !k3.Equal(k) {
		t.Fatalf("secret round trip: %v", err)
	}
	if _, err := ParseSecret(append(k.Secret(), '=')); err != nil {
		t.Errorf("padded secret: %v", err)
	}
	if _, err := ParseRecoveryKey("EsTE"); !errors.Is(err, ErrInvalidRecoveryKey) {
		t.Errorf("short recovery key: %v", err)
	}
	for _, s := range []string{"", "AAAA", keys.EncodeBase64(seq(0, 33))} {
		if _, err := ParseSecret([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseSecret(%q): %v", s, err)
		}
	}
	a, err := ParseAuthData([]byte(`{"public_key":"` + k.PublicKey().String() + `","signatures":{"@alice:example.org":{"ed25519:B":"s","ed25519:A":"s"}}}`))
	if err != nil || !a.Matches(k) || a.Matches(mustKey(t, seq(1, 32))) {
		t.Fatalf("auth data: %v", err)
	}
	if got := a.SignatureKeyIDs(alice); len(got) != 2 || got[0] != "ed25519:A" {
		t.Errorf("SignatureKeyIDs = %v", got)
	}
	for _, in := range []string{`{}`, `{"public_key":"AAAA"}`, `null`} {
		if _, err := ParseAuthData([]byte(in)); err == nil {
			t.Errorf("ParseAuthData(%s) accepted", in)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	k := mustKey(t, bytes.Repeat([]byte{0xAB}, 32))
	for _, v := range []any{k, k.MACKey()} {
		out := fmt.Sprintf("%v %+v %#v %s %x %q", v, v, v, v, v, v)
		if strings.Contains(strings.ToLower(out), "abab") || strings.Contains(out, "q6ur") || !strings.Contains(out, "REDACTED") {
			t.Errorf("formatting leaks: %s", out)
		}
	}
}

func FuzzDecrypt(f *testing.F) {
	v := loadVectors(f)
	for _, e := range v.Mautrix.Entries {
		f.Add([]byte(e.SessionData))
	}
	f.Add([]byte(`{"ephemeral":"` + v.Libolm.Ephemeral + `","ciphertext":"` + v.Libolm.Ciphertext + `","mac":"` + v.Libolm.MAC + `"}`))
	k := mustKey(f, seq(0x55, 32))
	sd, _ := EncryptAuthenticated(bytes.NewReader(seq(0x77, 32)), k.PublicKey(), k.MACKey(), alice, []byte("{}"))
	raw, _ := json.Marshal(sd)
	f.Add(raw)
	f.Add([]byte(`{"ephemeral":"","ciphertext":"","mac":"","signatures":{"@alice:example.org":{"org.matrix.msc4048.hmac-sha-256:backup_mac_key":""}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := ParseSessionData(b)
		if err != nil {
			return
		}
		d, err := k.Decrypt(alice, sd)
		if err != nil {
			return
		}
		if d.Provenance == Authenticated {
			// Only our own entry carries a MAC we accept.
			if string(d.Plaintext) != "{}" {
				t.Fatalf("an authenticated entry we did not write: %q", d.Plaintext)
			}
		}
	})
}

func BenchmarkEncrypt(b *testing.B) {
	k := mustKey(b, seq(0x55, 32))
	pt := bytes.Repeat([]byte("x"), 600) // a typical BackedUpSessionData
	b.ReportAllocs()
	b.SetBytes(int64(len(pt)))
	r := bytes.NewReader(nil)
	rnd := seq(0x77, 32)
	for b.Loop() {
		r.Reset(rnd)
		if _, err := Encrypt(r, k.PublicKey(), pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := mustKey(b, seq(0x55, 32))
	pt := bytes.Repeat([]byte("x"), 600)
	for _, auth := range []bool{false, true} {
		var sd *SessionData
		if auth {
			sd, _ = EncryptAuthenticated(bytes.NewReader(seq(0x77, 32)), k.PublicKey(), k.MACKey(), alice, pt)
		} else {
			sd, _ = Encrypt(bytes.NewReader(seq(0x77, 32)), k.PublicKey(), pt)
		}
		b.Run(fmt.Sprintf("authenticated=%v", auth), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := k.Decrypt(alice, sd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
