package keys

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"myelin/api"
	"myelin/canonicaljson"
	"myelin/server/storage"
)

var b64 = base64.RawStdEncoding

func testKey(seed byte) (string, ed25519.PrivateKey) {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	p := ed25519.NewKeyFromSeed(s)
	return b64.EncodeToString(p.Public().(ed25519.PublicKey)), p
}

// signObj returns obj with userID's signature by "ed25519:<name>" added.
func signObj(t testing.TB, obj map[string]any, userID, name string, priv ed25519.PrivateKey) json.RawMessage {
	t.Helper()
	raw, _ := json.Marshal(obj)
	msg, err := canonicaljson.CanonicalizeWithout(raw, "signatures", "unsigned")
	if err != nil {
		t.Fatal(err)
	}
	obj["signatures"] = map[string]any{userID: map[string]string{"ed25519:" + name: b64.EncodeToString(ed25519.Sign(priv, msg))}}
	out, _ := json.Marshal(obj)
	return out
}

func errcode(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.ErrCode
	}
	if err != nil {
		return "other"
	}
	return ""
}

func TestValidateDeviceKeys(t *testing.T) {
	pub, _ := testKey(1)
	const u, d = "@a:hs", "DEV"
	base := func() map[string]any {
		return map[string]any{"user_id": u, "device_id": d, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
			"keys":       map[string]string{"ed25519:" + d: pub, "curve25519:" + d: pub},
			"signatures": map[string]any{u: map[string]string{"ed25519:" + d: "sig"}}}
	}
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		raw    string
		want   string
	}{
		{"valid", func(map[string]any) {}, "", ""},
		{"other user", func(m map[string]any) { m["user_id"] = "@b:hs" }, "", api.ErrCodeInvalidParam},
		{"other device", func(m map[string]any) { m["device_id"] = "X" }, "", api.ErrCodeInvalidParam},
		{"no user_id", func(m map[string]any) { delete(m, "user_id") }, "", api.ErrCodeMissingParam},
		{"no algorithms", func(m map[string]any) { delete(m, "algorithms") }, "", api.ErrCodeMissingParam},
		{"algorithms not strings", func(m map[string]any) { m["algorithms"] = []int{1} }, "", api.ErrCodeBadJSON},
		{"no ed25519", func(m map[string]any) { m["keys"] = map[string]string{"curve25519:" + d: pub} }, "", api.ErrCodeBadJSON},
		{"key of another device", func(m map[string]any) { m["keys"].(map[string]string)["ed25519:OTHER"] = pub }, "", api.ErrCodeBadJSON},
		{"bad ed25519", func(m map[string]any) { m["keys"].(map[string]string)["ed25519:"+d] = "!!" }, "", api.ErrCodeBadJSON},
		{"not self-signed", func(m map[string]any) { m["signatures"] = map[string]any{u: map[string]string{"ed25519:X": "s"}} }, "", api.ErrCodeBadJSON},
		{"no signatures", func(m map[string]any) { delete(m, "signatures") }, "", api.ErrCodeMissingParam},
		{"array", nil, `[1]`, api.ErrCodeBadJSON},
		{"string", nil, `"x"`, api.ErrCodeBadJSON},
		{"too large", nil, `{"x":"` + strings.Repeat("a", MaxKeyObjectSize) + `"}`, api.ErrCodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := json.RawMessage(tc.raw)
			if tc.mutate != nil {
				m := base()
				tc.mutate(m)
				raw, _ = json.Marshal(m)
			}
			if got := errcode(ValidateDeviceKeys(raw, u, d)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseOneTimeKeys(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		fallback bool
		want     string
		n        int
	}{
		{"objects", `{"signed_curve25519:A":{"key":"k","signatures":{"@a:hs":{"ed25519:D":"s"}}},"signed_curve25519:B":{"key":"k2","signatures":{}}}`, false, "", 2},
		{"string key", `{"curve25519:A":"k"}`, false, "", 1},
		{"null", `null`, false, "", 0},
		{"no colon", `{"signed_curve25519":{"key":"k"}}`, false, api.ErrCodeBadJSON, 0},
		{"empty id", `{"signed_curve25519:":{"key":"k"}}`, false, api.ErrCodeBadJSON, 0},
		{"no key", `{"signed_curve25519:A":{"signatures":{}}}`, false, api.ErrCodeBadJSON, 0},
		{"bad signatures", `{"signed_curve25519:A":{"key":"k","signatures":[1]}}`, false, api.ErrCodeBadJSON, 0},
		{"number", `{"signed_curve25519:A":5}`, false, api.ErrCodeBadJSON, 0},
		{"two fallbacks of one algorithm", `{"signed_curve25519:A":{"key":"k"},"signed_curve25519:B":{"key":"l"}}`, true, api.ErrCodeInvalidParam, 0},
		{"array", `[]`, false, api.ErrCodeBadJSON, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOneTimeKeys(json.RawMessage(tc.raw), "one_time_keys", tc.fallback)
			if errcode(err) != tc.want || (err == nil && len(got) != tc.n) {
				t.Fatalf("got %v %v", got, err)
			}
		})
	}
	var sb strings.Builder
	sb.WriteString("{")
	for i := range MaxOneTimeKeysPerUpload + 1 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"a:` + strings.Repeat("x", i%7+1) + string(rune('A'+i%26)) + jsonInt(i) + `":"k"`)
	}
	sb.WriteString("}")
	if _, err := ParseOneTimeKeys(json.RawMessage(sb.String()), "one_time_keys", false); errcode(err) != api.ErrCodeInvalidParam {
		t.Fatalf("too many keys: %v", err)
	}
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestParseCrossSigningKey(t *testing.T) {
	pub, _ := testKey(2)
	const u = "@a:hs"
	tests := []struct {
		name, raw, usage, want string
	}{
		{"valid", `{"user_id":"@a:hs","usage":["master"],"keys":{"ed25519:` + pub + `":"` + pub + `"}}`, "master", ""},
		{"wrong usage", `{"user_id":"@a:hs","usage":["self_signing"],"keys":{"ed25519:` + pub + `":"` + pub + `"}}`, "master", api.ErrCodeInvalidParam},
		{"wrong user", `{"user_id":"@b:hs","usage":["master"],"keys":{"ed25519:` + pub + `":"` + pub + `"}}`, "master", api.ErrCodeInvalidParam},
		{"two keys", `{"user_id":"@a:hs","usage":["master"],"keys":{"ed25519:` + pub + `":"` + pub + `","ed25519:x":"x"}}`, "master", api.ErrCodeInvalidParam},
		{"name and value differ", `{"user_id":"@a:hs","usage":["master"],"keys":{"ed25519:AAAA":"` + pub + `"}}`, "master", api.ErrCodeInvalidParam},
		{"not a key", `{"user_id":"@a:hs","usage":["master"],"keys":{"ed25519:abc":"abc"}}`, "master", api.ErrCodeInvalidParam},
		{"other algorithm", `{"user_id":"@a:hs","usage":["master"],"keys":{"curve25519:` + pub + `":"` + pub + `"}}`, "master", api.ErrCodeInvalidParam},
		{"no keys", `{"user_id":"@a:hs","usage":["master"]}`, "master", api.ErrCodeMissingParam},
		{"usage not a list", `{"user_id":"@a:hs","usage":"master","keys":{}}`, "master", api.ErrCodeBadJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseCrossSigningKey(json.RawMessage(tc.raw), u, tc.usage)
			if errcode(err) != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if err == nil && k.PublicKey != pub {
				t.Fatalf("public key %q", k.PublicKey)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	pub, priv := testKey(3)
	_, other := testKey(4)
	obj := func() map[string]any {
		return map[string]any{"user_id": "@a:hs", "usage": []string{"self_signing"}, "n": 1}
	}
	good := signObj(t, obj(), "@a:hs", pub, priv)
	if !verifySignature(good, "@a:hs", pub, pub) {
		t.Fatal("valid signature refused")
	}
	// The same signature with an "unsigned" member added still verifies.
	var m map[string]any
	json.Unmarshal(good, &m)
	m["unsigned"] = map[string]any{"x": 1}
	withUnsigned, _ := json.Marshal(m)
	if !verifySignature(withUnsigned, "@a:hs", pub, pub) {
		t.Fatal("unsigned member broke the signature")
	}
	m["n"] = 2
	tampered, _ := json.Marshal(m)
	if verifySignature(tampered, "@a:hs", pub, pub) {
		t.Fatal("tampered object verified")
	}
	if verifySignature(signObj(t, obj(), "@a:hs", pub, other), "@a:hs", pub, pub) {
		t.Fatal("signature by another key verified")
	}
	if verifySignature(good, "@b:hs", pub, pub) {
		t.Fatal("signature of another user accepted")
	}
}

func TestReplaceBackupKey(t *testing.T) {
	k := func(v bool, fmi, fc int64) storage.BackupKey {
		return storage.BackupKey{IsVerified: v, FirstMessageIndex: fmi, ForwardedCount: fc}
	}
	tests := []struct {
		stored, upload storage.BackupKey
		replace        bool
	}{
		{k(false, 0, 0), k(true, 9, 9), true},
		{k(true, 9, 9), k(false, 0, 0), false},
		{k(false, 5, 0), k(false, 4, 9), true},
		{k(false, 5, 0), k(false, 6, 0), false},
		{k(false, 5, 3), k(false, 5, 2), true},
		{k(false, 5, 3), k(false, 5, 4), false},
		{k(true, 5, 3), k(true, 5, 3), false},
	}
	for i, tc := range tests {
		if got := storage.ReplaceBackupKey(tc.stored, tc.upload); got != tc.replace {
			t.Errorf("case %d: got %v", i, got)
		}
	}
}

func TestParseBackupKeys(t *testing.T) {
	one := `{"first_message_index":1,"forwarded_count":0,"is_verified":false,"session_data":{"ciphertext":"c"}}`
	tests := []struct {
		name, room, session, body, want string
		n                               int
	}{
		{"single", "!r", "s", one, "", 1},
		{"room", "!r", "", `{"sessions":{"a":` + one + `,"b":` + one + `}}`, "", 2},
		{"all", "", "", `{"rooms":{"!r":{"sessions":{"a":` + one + `}},"!q":{"sessions":{"b":` + one + `}}}}`, "", 2},
		{"missing field", "!r", "s", `{"first_message_index":1,"forwarded_count":0,"session_data":{}}`, api.ErrCodeMissingParam, 0},
		{"negative index", "!r", "s", `{"first_message_index":-1,"forwarded_count":0,"is_verified":false,"session_data":{}}`, api.ErrCodeInvalidParam, 0},
		{"session_data not object", "!r", "s", `{"first_message_index":1,"forwarded_count":0,"is_verified":false,"session_data":"x"}`, api.ErrCodeBadJSON, 0},
		{"room without sessions", "!r", "", `{}`, api.ErrCodeBadJSON, 0},
		{"all without rooms", "", "", `{}`, api.ErrCodeBadJSON, 0},
		{"wrong types", "!r", "s", `{"first_message_index":"1","forwarded_count":0,"is_verified":false,"session_data":{}}`, api.ErrCodeBadJSON, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBackupKeys(tc.room, tc.session, json.RawMessage(tc.body))
			if errcode(err) != tc.want || (err == nil && len(got) != tc.n) {
				t.Fatalf("got %v %v", got, err)
			}
		})
	}
}

func TestRenderKeyKeepsSignedContent(t *testing.T) {
	pub, priv := testKey(5)
	stored := signObj(t, map[string]any{"user_id": "@a:hs", "device_id": "D", "keys": map[string]string{"ed25519:D": pub},
		"algorithms": []string{"x"}, "big": 9007199254740991}, "@a:hs", "D", priv)
	out, err := renderKey(stored, []storage.KeySignature{{SignerUserID: "@a:hs", SignerKeyID: "ed25519:SSK", Signature: "s"}}, "Phone", true)
	if err != nil {
		t.Fatal(err)
	}
	if !verifySignature(out, "@a:hs", "D", pub) {
		t.Fatalf("rendered key no longer verifies: %s", out)
	}
	var m struct {
		Unsigned   map[string]string            `json:"unsigned"`
		Signatures map[string]map[string]string `json:"signatures"`
	}
	json.Unmarshal(out, &m)
	if m.Unsigned["device_display_name"] != "Phone" || m.Signatures["@a:hs"]["ed25519:SSK"] != "s" || m.Signatures["@a:hs"]["ed25519:D"] == "" {
		t.Fatalf("rendered: %s", out)
	}
}

func FuzzValidateDeviceKeys(f *testing.F) {
	f.Add([]byte(`{"user_id":"@a:hs","device_id":"D","algorithms":[],"keys":{"ed25519:D":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"signatures":{"@a:hs":{"ed25519:D":"x"}}}`))
	f.Add([]byte(`{"keys":{"a":"b"}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ValidateDeviceKeys(b, "@a:hs", "D")
		_, _ = ParseCrossSigningKey(b, "@a:hs", storage.UsageMaster)
		_, _ = ParseOneTimeKeys(b, "one_time_keys", false)
		_, _ = ParseOneTimeKeys(b, "fallback_keys", true)
		_ = verifySignature(b, "@a:hs", "D", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	})
}

func FuzzParseBackupKeys(f *testing.F) {
	f.Add([]byte(`{"rooms":{"!r":{"sessions":{"s":{"first_message_index":0,"forwarded_count":0,"is_verified":true,"session_data":{}}}}}}`))
	f.Add([]byte(`{"sessions":{"s":{}}}`))
	f.Add([]byte(`{"first_message_index":1e400}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range [][2]string{{"", ""}, {"!r", ""}, {"!r", "s"}} {
			ks, err := ParseBackupKeys(p[0], p[1], b)
			if err == nil {
				for _, k := range ks {
					if k.FirstMessageIndex < 0 || k.ForwardedCount < 0 || !json.Valid(k.SessionData) {
						t.Fatalf("accepted invalid key %+v", k)
					}
				}
			}
		}
	})
}

func FuzzRenderKey(f *testing.F) {
	f.Add([]byte(`{"signatures":{"@a:hs":{"ed25519:D":"s"}},"unsigned":{"x":1},"keys":{}}`), "@b:hs", "ed25519:K")
	f.Add([]byte(`{"signatures":null}`), "@a:hs", "x")
	f.Fuzz(func(t *testing.T, b []byte, signer, keyID string) {
		out, err := renderKey(b, []storage.KeySignature{{SignerUserID: signer, SignerKeyID: keyID, Signature: "s"}}, "n", true)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}
