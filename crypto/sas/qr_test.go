package sas

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"myelin/keys"
)

func TestQRVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t).QR
	for _, c := range v.Cases {
		raw, _ := hex.DecodeString(c.PayloadHex)
		q, err := ParseQRCode(raw)
		if err != nil {
			t.Fatalf("mode %d: %v", c.Mode, err)
		}
		if int(q.Mode) != c.Mode || q.FlowID != c.FlowID || string(q.Secret) != v.Secret {
			t.Errorf("mode %d: parsed %+v", c.Mode, q)
		}
		enc, err := q.Encode()
		if err != nil || !bytes.Equal(enc, raw) {
			t.Errorf("mode %d: re-encoding differs: %v", c.Mode, err)
		}
		if err := q.VerifySecret(keys.EncodeBase64([]byte(v.Secret))); err != nil {
			t.Error(err)
		}
		if err := q.VerifySecret(keys.EncodeBase64([]byte("SHARED_SECRET!"))); !errors.Is(err, ErrQRSecretMismatch) {
			t.Error("wrong secret accepted")
		}
		if err := q.VerifySecret("***"); !errors.Is(err, ErrQRSecretMismatch) {
			t.Error("garbage secret accepted")
		}
	}
}

func TestQRRefuses(t *testing.T) {
	t.Parallel()
	raw, _ := hex.DecodeString(loadVectors(t).QR.Cases[1].PayloadHex) // mode 0, flow "$test:localhost"
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), raw...)) }
	cases := []struct {
		name   string
		in     []byte
		reason string
	}{
		{"empty", nil, "header"},
		{"header", mut(func(b []byte) []byte { b[0] = 'm'; return b }), "header"},
		{"version 1", mut(func(b []byte) []byte { b[6] = 1; return b }), "version"},
		{"mode 3", mut(func(b []byte) []byte { b[7] = 3; return b }), "unknown mode"},
		{"length past the end", mut(func(b []byte) []byte { b[8], b[9] = 0xff, 0xff; return b }), "truncated"},
		{"zero-length flow", mut(func(b []byte) []byte { b[8], b[9] = 0, 0; return b }), "flow ID length"},
		{"flow not UTF-8", mut(func(b []byte) []byte { b[10] = 0xff; return b }), "flow ID not UTF-8"},
		{"secret 7 bytes", mut(func(b []byte) []byte { return b[:len(b)-6] }), "shared secret too short"},
		{"no secret", mut(func(b []byte) []byte { return b[:10+15+64] }), "shared secret too short"},
		{"keys truncated", mut(func(b []byte) []byte { return b[:10+15+40] }), "truncated"},
		{"too large", append(mut(func(b []byte) []byte { return b }), make([]byte, MaxQRPayloadSize)...), "payload too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseQRCode(c.in)
			var qe *QRError
			if !errors.Is(err, ErrInvalidQRCode) || !errors.As(err, &qe) || qe.Reason != c.reason {
				t.Fatalf("ParseQRCode: %v, want %q", err, c.reason)
			}
		})
	}
	k := edKey(t, 1)
	for _, q := range []QRCode{
		{Mode: 3, FlowID: "f", Key1: k, Key2: k, Secret: make([]byte, 8)},
		{Mode: 0, FlowID: "", Key1: k, Key2: k, Secret: make([]byte, 8)},
		{Mode: 0, FlowID: strings.Repeat("f", 0x10000), Key1: k, Key2: k, Secret: make([]byte, 8)},
		{Mode: 0, FlowID: "f", Key2: k, Secret: make([]byte, 8)},
		{Mode: 0, FlowID: "f", Key1: k, Key2: k, Secret: make([]byte, 7)},
		{Mode: 0, FlowID: strings.Repeat("f", 3000), Key1: k, Key2: k, Secret: make([]byte, 8)},
	} {
		if _, err := q.Encode(); !errors.Is(err, ErrInvalidQRCode) {
			t.Errorf("Encode accepted mode %d flow %d secret %d", q.Mode, len(q.FlowID), len(q.Secret))
		}
	}
	s, err := NewQRSecret(bytes.NewReader(make([]byte, 16)))
	if err != nil || len(s) != 16 {
		t.Fatal(err)
	}
}

func FuzzParseQRCode(f *testing.F) {
	for _, c := range loadVectors(f).QR.Cases {
		raw, _ := hex.DecodeString(c.PayloadHex)
		f.Add(raw)
		f.Add(raw[:len(raw)-6])
		f.Add(raw[:12])
	}
	f.Add([]byte("MATRIX\x02\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQRCode(b)
		if err != nil {
			return
		}
		enc, err := q.Encode()
		if err != nil {
			t.Fatalf("accepted payload does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatal("accepted payload does not round-trip byte for byte")
		}
	})
}
