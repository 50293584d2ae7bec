package signing

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"myelin/canonicaljson"
	"myelin/keys"
)

type specVectors struct {
	Seed    string
	Signer  string
	KeyID   string `json:"key_id"`
	Vectors []struct {
		Input  json.RawMessage
		Signed json.RawMessage
	}
}

func loadVectors(t testing.TB) (specVectors, *keys.Ed25519SecretKey) {
	raw, err := os.ReadFile("testdata/spec_json_signing.json")
	if err != nil {
		t.Fatal(err)
	}
	var v specVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	// The spec seed has non-zero trailing bits (its last character is "1"),
	// which strict unpadded base64 refuses; decode it leniently.
	seed, err := base64.RawStdEncoding.DecodeString(v.Seed)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.NewEd25519SecretKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return v, sk
}

func TestSpecVectors(t *testing.T) {
	v, sk := loadVectors(t)
	if len(v.Vectors) != 2 {
		t.Fatalf("want 2 vectors, got %d", len(v.Vectors))
	}
	for i, vec := range v.Vectors {
		got, err := Sign(vec.Input, v.Signer, v.KeyID, sk)
		if err != nil {
			t.Fatal(err)
		}
		want, err := canonicaljson.Canonicalize(vec.Signed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("vector %d: Sign = %s\nwant %s", i, got, want)
		}
		if err := Verify(vec.Signed, v.Signer, v.KeyID, sk.PublicKey()); err != nil {
			t.Errorf("vector %d: Verify: %v", i, err)
		}
	}
}

func reason(err error) error {
	for _, r := range []error{ErrMissingSignature, ErrMalformedSignature, ErrInvalidSignature} {
		if errors.Is(err, r) {
			return r
		}
	}
	return nil
}

func TestVerifyFailures(t *testing.T) {
	v, sk := loadVectors(t)
	pk := sk.PublicKey()
	signed := string(v.Vectors[1].Signed)
	sig := "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
	other, _ := keys.GenerateEd25519SecretKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))

	tests := []struct {
		name   string
		obj    string
		signer string
		keyID  string
		pk     keys.Ed25519PublicKey
		want   error
	}{
		{"valid", signed, "domain", "ed25519:1", pk, nil},
		{"unsigned is not covered", `{"one":1,"two":"Two","unsigned":{"x":1},"signatures":{"domain":{"ed25519:1":"` + sig + `"}}}`, "domain", "ed25519:1", pk, nil},
		{"whitespace and order do not matter", `{ "two" : "Two", "signatures":{"domain":{"ed25519:1":"` + sig + `"}}, "one":1 }`, "domain", "ed25519:1", pk, nil},
		{"changed content", strings.Replace(signed, `"Two"`, `"Three"`, 1), "domain", "ed25519:1", pk, ErrInvalidSignature},
		{"added field", strings.Replace(signed, `"one"`, `"zero":0,"one"`, 1), "domain", "ed25519:1", pk, ErrInvalidSignature},
		{"wrong key", signed, "domain", "ed25519:1", other.PublicKey(), ErrInvalidSignature},
		{"other signer", signed, "other", "ed25519:1", pk, ErrMissingSignature},
		{"other key ID", signed, "domain", "ed25519:2", pk, ErrMissingSignature},
		{"unknown algorithm", signed, "domain", "curve25519:1", pk, ErrMissingSignature},
		{"no signatures", `{"one":1,"two":"Two"}`, "domain", "ed25519:1", pk, ErrMissingSignature},
		{"bad base64", strings.Replace(signed, sig, "!!!!", 1), "domain", "ed25519:1", pk, ErrMalformedSignature},
		{"padded base64", strings.Replace(signed, sig, sig+"==", 1), "domain", "ed25519:1", pk, ErrMalformedSignature},
		{"short signature", strings.Replace(signed, sig, sig[:40], 1), "domain", "ed25519:1", pk, ErrMalformedSignature},
		{"signature not a string", `{"signatures":{"domain":{"ed25519:1":1}}}`, "domain", "ed25519:1", pk, ErrMalformedSignature},
		{"signatures not an object", `{"signatures":[]}`, "domain", "ed25519:1", pk, ErrMalformedSignature},
		{"duplicate key smuggling", `{"one":1,"two":"Two","two":"Evil","signatures":{"domain":{"ed25519:1":"` + sig + `"}}}`, "domain", "ed25519:1", pk, ErrMalformedSignature},
		{"not an object", `[]`, "domain", "ed25519:1", pk, ErrMalformedSignature},
		{"float smuggling", `{"one":1.0,"two":"Two","signatures":{"domain":{"ed25519:1":"` + sig + `"}}}`, "domain", "ed25519:1", pk, ErrMalformedSignature},
	}
	for _, tt := range tests {
		err := Verify([]byte(tt.obj), tt.signer, tt.keyID, tt.pk)
		if got := reason(err); got != tt.want || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil {
			continue
		}
		var se *SignatureError
		if !errors.As(err, &se) || se.Signer != tt.signer || se.KeyID != tt.keyID {
			t.Errorf("%s: error %#v does not name signer and key", tt.name, err)
		}
		if !strings.HasPrefix(err.Error(), "signing: ") {
			t.Errorf("%s: message %q", tt.name, err)
		}
	}
}

func TestSignMerges(t *testing.T) {
	_, sk := loadVectors(t)
	dev, _ := keys.GenerateEd25519SecretKey(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	obj := []byte(`{"user_id":"@a:b","unsigned":{"device_display_name":"x"},"signatures":{"@a:b":{"ed25519:OLD":"keepme"}}}`)
	// An existing malformed signature is kept verbatim; Sign does not judge it.
	once, err := Sign(obj, "@a:b", "ed25519:DEV", dev)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := Sign(once, "domain", "ed25519:1", sk)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Parse(twice)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Verify("@a:b", "ed25519:DEV", dev.PublicKey()); err != nil {
		t.Error(err)
	}
	if err := o.Verify("domain", "ed25519:1", sk.PublicKey()); err != nil {
		t.Error(err)
	}
	if s, ok := o.Signature("@a:b", "ed25519:OLD"); !ok || s != "keepme" {
		t.Error("existing signature lost")
	}
	if u, _ := o.Fields()["unsigned"].(map[string]any); u["device_display_name"] != "x" {
		t.Error("unsigned lost")
	}
	if len(o.KeyIDs("@a:b")) != 2 {
		t.Errorf("KeyIDs = %v", o.KeyIDs("@a:b"))
	}
	for _, bad := range []string{"", "ed25519:", "curve25519:X", "1"} {
		if _, err := Sign(obj, "@a:b", bad, dev); !errors.Is(err, ErrInvalidKeyID) {
			t.Errorf("Sign with key ID %q: %v", bad, err)
		}
	}
	if _, err := Sign([]byte(`{"signatures":{"x":1}}`), "@a:b", "ed25519:D", dev); !errors.Is(err, ErrMalformedSignature) {
		t.Errorf("Sign over malformed signatures: %v", err)
	}
	if _, err := Sign([]byte(`{"a":1,"a":2}`), "@a:b", "ed25519:D", dev); !errors.Is(err, ErrInvalidObject) {
		t.Errorf("Sign over duplicate keys: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	v, sk := loadVectors(f)
	pk := sk.PublicKey()
	for _, vec := range v.Vectors {
		f.Add([]byte(vec.Signed))
	}
	f.Add([]byte(`{"one":1,"two":"Two","unsigned":{},"signatures":{"domain":{"ed25519:1":"KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}}}`))
	f.Add([]byte(`{"signatures":{"domain":{"ed25519:1":1}}}`))
	f.Add([]byte(`{"signatures":{"domain":"x"}}`))
	allowed := map[string]bool{`{}`: true, `{"one":1,"two":"Two"}`: true}
	f.Fuzz(func(t *testing.T, obj []byte) {
		err := Verify(obj, "domain", "ed25519:1", pk)
		if err == nil {
			// A valid signature means the signed part is one of the two
			// vectors' contents (Ed25519 is unforgeable).
			c, cerr := canonicaljson.CanonicalizeWithout(obj, "signatures", "unsigned")
			if cerr != nil || !allowed[string(c)] {
				t.Fatalf("forged acceptance of %q", obj)
			}
			return
		}
		if reason(err) == nil {
			t.Fatalf("error without a reason: %v", err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	_, sk := loadVectors(b)
	obj, err := Sign([]byte(deviceKeys), "@alice:example.com", "ed25519:JLAFKJWSCS", sk)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(obj, "@alice:example.com", "ed25519:JLAFKJWSCS", sk.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
}

const deviceKeys = `{"user_id":"@alice:example.com","device_id":"JLAFKJWSCS","algorithms":["m.olm.v1.curve25519-aes-sha2","m.megolm.v1.aes-sha2"],"keys":{"curve25519:JLAFKJWSCS":"3C5BFWi2Y8MaVvjM8M22DBmh24PmgR0nPvJOIArzgyI","ed25519:JLAFKJWSCS":"lEuiRJBit0IG6nUf5pUzWTUEsRVVe/HJkoKuEww9ULI"},"unsigned":{"device_display_name":"Alice's mobile phone"}}`
