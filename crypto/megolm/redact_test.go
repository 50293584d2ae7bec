package megolm

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"myelin/keys"
)

// TestNoSecretsInOutput formats every secret-holding type through fmt (all
// common verbs, values and pointers) and slog (text and JSON) and checks
// that no secret bytes appear in any common encoding.
func TestNoSecretsInOutput(t *testing.T) {
	o, in := newPair(t, 0x61)
	msg := o.Encrypt([]byte("the plaintext"))
	if _, _, err := in.Decrypt(msg); err != nil {
		t.Fatal(err)
	}
	sk := o.SessionKey()
	ek, err := in.Export(1)
	if err != nil {
		t.Fatal(err)
	}
	seed := o.signing.Seed()

	var secrets [][]byte
	for _, r := range []*ratchet{&o.ratchet, &in.initial, &in.latest, &sk.k.ratchet, &ek.k.ratchet} {
		for j := range ratchetParts {
			secrets = append(secrets, append([]byte(nil), r.part(j)[:]...))
		}
	}
	secrets = append(secrets, seed)
	var needles []string
	for _, s := range secrets {
		w := s[:8]
		needles = append(needles, string(w), hex.EncodeToString(w), strings.ToUpper(hex.EncodeToString(w)),
			strings.Trim(fmt.Sprint(w), "[]"), fmt.Sprintf("%#v", w)[len("[]byte{"):40])
		for off := range 3 { // base64 at every alignment
			needles = append(needles, keys.EncodeBase64(s[off : off+12])[4:12])
		}
	}
	needles = append(needles, sk.String()[10:40], ek.String()[10:40])

	values := []any{o, *o, in, *in, sk, &sk, ek, &ek}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"}
	var outputs []string
	for _, v := range values {
		for _, verb := range verbs {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		outputs = append(outputs, fmt.Sprint(v), fmt.Sprintln(v))
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v)
		outputs = append(outputs, buf.String())
	}
	for _, out := range outputs {
		for _, n := range needles {
			if strings.Contains(out, n) {
				t.Fatalf("secret leaked (%q) in output %q", n, out)
			}
		}
		if strings.Contains(out, "the plaintext") {
			t.Fatalf("plaintext in output %q", out)
		}
	}
	// The redacted forms still identify the session.
	if s := fmt.Sprint(in); !strings.Contains(s, in.ID()) || !strings.Contains(s, "REDACTED") {
		t.Fatalf("redacted form %q lacks the session ID", s)
	}
	// The explicit encodings are the secret ones (by design).
	if sk.String() == "" || ek.String() == "" {
		t.Fatal("String returns no encoding")
	}
}
