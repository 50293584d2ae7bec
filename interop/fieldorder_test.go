package interop

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/id"

	"myelin/crypto/olm"
	"myelin/keys"
)

// TestPreKeyFieldOrder: goolm (mautrix-go's default Olm implementation)
// writes pre-key message fields in the order one-time key (0x0A), identity
// key (0x1A), base key (0x12), message (0x22); libolm writes 0x0A, 0x12,
// 0x1A, 0x22. The encoding is protobuf, so the order carries no meaning:
// libolm and vodozemac accept both. myelin must too, or it cannot receive
// Olm sessions from mautrix-go clients (found by these tests, fixed in
// crypto/olm).
func TestPreKeyFieldOrder(t *testing.T) {
	alice, err := account.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	bob, err := olm.NewAccount(detRand(77))
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.GenerateOneTimeKeys(detRand(78), 1); err != nil {
		t.Fatal(err)
	}
	bc, _ := bob.IdentityKeys()
	otk := bob.OneTimeKeys()[0].Key
	s, err := alice.NewOutboundSession(id.Curve25519(bc.String()), id.Curve25519(otk.String()))
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := s.Encrypt([]byte("from goolm"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := keys.DecodeBase64(string(msg))
	if err != nil {
		t.Fatal(err)
	}
	canon, ok := canonicalFieldOrder(raw)
	if !ok {
		t.Fatal("goolm pre-key message is not protobuf")
	}
	if bytes.Equal(canon, raw) {
		t.Fatal("goolm now writes libolm's field order; this test no longer exercises anything")
	}
	if _, err := olm.ParsePreKeyMessage(canon); err != nil {
		t.Fatalf("myelin rejects the re-ordered message too: %v", err)
	}
	m, err := olm.ParsePreKeyMessage(raw)
	if err != nil {
		t.Fatalf("myelin rejects goolm's pre-key message: %v", err)
	}
	_, ac, _ := alice.IdentityKeys() // goolm returns (ed25519, curve25519, error)
	aik, err := keys.ParseCurve25519PublicKey(string(ac))
	if err != nil {
		t.Fatal(err)
	}
	if _, pt, err := bob.NewInboundSession(aik, m); err != nil || string(pt) != "from goolm" {
		t.Fatalf("inbound session from goolm's order: %q %v", pt, err)
	}
}

// canonicalFieldOrder re-encodes a version byte followed by protobuf fields
// with the fields sorted by field number (stable), as libolm writes them.
func canonicalFieldOrder(b []byte) ([]byte, bool) {
	if len(b) < 1 {
		return nil, false
	}
	type field struct {
		num uint64
		enc []byte
	}
	var fields []field
	r := b[1:]
	for len(r) > 0 {
		start := r
		tag, n := binary.Uvarint(r)
		if n <= 0 {
			return nil, false
		}
		r = r[n:]
		switch tag & 7 {
		case 0:
			_, n = binary.Uvarint(r)
			if n <= 0 {
				return nil, false
			}
			r = r[n:]
		case 2:
			l, n := binary.Uvarint(r)
			if n <= 0 || uint64(len(r)-n) < l {
				return nil, false
			}
			r = r[n+int(l):]
		default:
			return nil, false
		}
		fields = append(fields, field{tag >> 3, start[:len(start)-len(r)]})
	}
	slices.SortStableFunc(fields, func(x, y field) int { return int(x.num) - int(y.num) })
	out := []byte{b[0]}
	for _, f := range fields {
		out = append(out, f.enc...)
	}
	return out, true
}
