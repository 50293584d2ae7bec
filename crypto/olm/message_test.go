package olm

import (
	"bytes"
	"errors"
	"testing"
)

// vectorMessages returns the libolm pre-key message and normal message.
func vectorMessages(t testing.TB) (preKey, normal []byte) {
	v := loadVectors(t)
	return mustDecode(t, v.PreKeyMessage), mustDecode(t, v.ReplyMessage)
}

func TestParseCanonical(t *testing.T) {
	pk, nm := vectorMessages(t)
	m, err := ParsePreKeyMessage(pk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Marshal(), pk) {
		t.Fatal("pre-key message does not re-encode to the same bytes")
	}
	if len(pk) != 168 || !bytes.Equal(pk[103:106], []byte{0x22, 0x3F, 0x03}) {
		t.Fatal("vector layout differs from crypto-digest.md §2.7")
	}
	if !bytes.Equal(m.Message().Marshal(), pk[105:]) {
		t.Fatal("inner message bytes differ")
	}
	n, err := ParseNormalMessage(nm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(n.Marshal(), nm) || n.ChainIndex() != 0 || len(n.Ciphertext()) != 16 {
		t.Fatal("normal message fields")
	}
	for _, tc := range []struct {
		t    MessageType
		b    []byte
		want MessageType
	}{{MessageTypePreKey, pk, MessageTypePreKey}, {MessageTypeNormal, nm, MessageTypeNormal}} {
		got, err := ParseMessage(tc.t, tc.b)
		if err != nil || got.Type() != tc.want {
			t.Fatalf("ParseMessage(%d): %v", tc.t, err)
		}
	}
	if _, err := ParseMessage(2, nm); !errors.Is(err, ErrInvalidMessage) {
		t.Fatal("unknown message type accepted")
	}
}

// normalBytes builds a normal message from parts, for malformed inputs.
func normalBytes(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseNormalRejects(t *testing.T) {
	_, nm := vectorMessages(t)
	key := nm[3:35]
	ct := make([]byte, 16)
	mac := make([]byte, 8)
	good := normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x22, 16}, ct, mac)
	if _, err := ParseNormalMessage(good); err != nil {
		t.Fatalf("baseline rejected: %v", err)
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrInvalidMessage},
		{"version 2", append([]byte{2}, good[1:]...), ErrBadVersion},
		{"version 4", append([]byte{4}, good[1:]...), ErrBadVersion},
		{"key 31 bytes", normalBytes([]byte{3, 0x0A, 31}, key[:31], []byte{0x10, 5, 0x22, 16}, ct, mac), ErrInvalidMessage},
		{"key 33 bytes", normalBytes([]byte{3, 0x0A, 33}, key, []byte{0}, []byte{0x10, 5, 0x22, 16}, ct, mac), ErrInvalidMessage},
		{"non-minimal index", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 0x85, 0x00, 0x22, 16}, ct, mac), ErrInvalidMessage},
		{"non-minimal length", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x22, 0x90, 0x00}, ct, mac), ErrInvalidMessage},
		{"index over 2^32", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x10, 0x22, 16}, ct, mac), ErrInvalidMessage},
		{"over-long varint", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x22, 16}, ct, mac), ErrInvalidMessage},
		{"missing index", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x22, 16}, ct, mac), ErrInvalidMessage},
		{"fields out of order", normalBytes([]byte{3, 0x10, 5, 0x0A, 32}, key, []byte{0x22, 16}, ct, mac), ErrInvalidMessage},
		{"duplicate index", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x10, 5, 0x22, 16}, ct, mac), ErrInvalidMessage},
		{"unknown field", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x18, 1, 0x22, 16}, ct, mac), ErrInvalidMessage},
		{"trailing field", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x22, 16}, ct, []byte{0x28, 1}, mac), ErrInvalidMessage},
		{"empty ciphertext", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x22, 0}, mac), ErrInvalidMessage},
		{"partial block", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x22, 15}, ct[:15], mac), ErrInvalidMessage},
		{"length past end", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x22, 17}, ct, mac), ErrInvalidMessage},
		{"oversized", normalBytes([]byte{3, 0x0A, 32}, key, []byte{0x10, 5, 0x22}, appendVarint(nil, MaxMessageSize), make([]byte, MaxMessageSize), mac), ErrMessageTooLarge},
	}
	for i := range good {
		cases = append(cases, struct {
			name string
			b    []byte
			want error
		}{"truncated", good[:i], nil})
	}
	for _, tc := range cases {
		m, err := ParseNormalMessage(tc.b)
		if err == nil || m != nil {
			t.Errorf("%s (%d bytes): accepted", tc.name, len(tc.b))
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParsePreKeyRejects(t *testing.T) {
	pk, _ := vectorMessages(t)
	k := func(i int) []byte { return pk[3+34*i : 3+34*i+32] } // otk, base, identity
	inner := pk[105:]
	good := normalBytes([]byte{3, 0x0A, 32}, k(0), []byte{0x12, 32}, k(1), []byte{0x1A, 32}, k(2), []byte{0x22, byte(len(inner))}, inner)
	if !bytes.Equal(good, pk) {
		t.Fatal("rebuilt vector differs")
	}
	badInner := bytes.Clone(inner)
	badInner[0] = 4
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"version 2", append([]byte{2}, pk[1:]...), ErrBadVersion},
		{"inner version 4", normalBytes(pk[:105], badInner), ErrBadVersion},
		{"duplicate key", normalBytes([]byte{3, 0x0A, 32}, k(0), []byte{0x0A, 32}, k(1), []byte{0x1A, 32}, k(2), []byte{0x22, byte(len(inner))}, inner), ErrInvalidMessage},
		{"unknown field", normalBytes([]byte{3, 0x0A, 32}, k(0), []byte{0x12, 32}, k(1), []byte{0x2A, 0}, []byte{0x1A, 32}, k(2), []byte{0x22, byte(len(inner))}, inner), ErrInvalidMessage},
		{"missing identity key", normalBytes([]byte{3, 0x0A, 32}, k(0), []byte{0x12, 32}, k(1), []byte{0x22, byte(len(inner))}, inner), ErrInvalidMessage},
		{"short base key", normalBytes([]byte{3, 0x0A, 32}, k(0), []byte{0x12, 31}, k(1)[:31], []byte{0x1A, 32}, k(2), []byte{0x22, byte(len(inner))}, inner), ErrInvalidMessage},
		{"trailing data", append(bytes.Clone(pk), 0), ErrInvalidMessage},
		{"inner truncated", normalBytes(pk[:104], []byte{byte(len(inner) - 1)}, inner[:len(inner)-1]), ErrInvalidMessage},
		{"duplicate message", normalBytes(pk, []byte{0x22, byte(len(inner))}, inner), ErrInvalidMessage},
		{"oversized", make([]byte, MaxMessageSize+1), ErrMessageTooLarge},
	}
	for i := range pk {
		cases = append(cases, struct {
			name string
			b    []byte
			want error
		}{"truncated", pk[:i], nil})
	}
	for _, tc := range cases {
		m, err := ParsePreKeyMessage(tc.b)
		if err == nil || m != nil {
			t.Errorf("%s (%d bytes): accepted", tc.name, len(tc.b))
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestPreKeyFieldOrder: goolm writes the pre-key fields in the order 1, 3,
// 2, 4; such messages must parse to the same fields, keep their bytes, and
// start a session.
func TestPreKeyFieldOrder(t *testing.T) {
	r := newDetRand("field-order")
	alice, _ := NewAccount(r)
	bob, _ := NewAccount(r)
	ac, _ := alice.IdentityKeys()
	bc, _ := bob.IdentityKeys()
	_ = bob.GenerateOneTimeKeys(r, 1)
	s, _ := alice.NewOutboundSession(r, bc, bob.OneTimeKeys()[0].Key)
	m := encrypt(t, s, r, "reordered").(*PreKeyMessage)
	pk := m.Marshal()
	key := func(i int) []byte { return pk[1+34*i : 1+34*i+34] } // tag, length, key
	rest := pk[1+3*34:]
	for _, order := range [][]int{{0, 2, 1}, {2, 1, 0}, {1, 0, 2}} {
		b := []byte{3}
		for _, i := range order {
			b = append(b, key(i)...)
		}
		b = append(b, rest...)
		got, err := ParsePreKeyMessage(b)
		if err != nil {
			t.Fatalf("order %v: %v", order, err)
		}
		if !bytes.Equal(got.Marshal(), b) || got.SessionID() != m.SessionID() {
			t.Fatalf("order %v: bytes or fields changed", order)
		}
	}
	// The message first, then the keys.
	b := append([]byte{3}, rest...)
	b = append(b, pk[1:1+3*34]...)
	got, err := ParsePreKeyMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, pt, err := bob.NewInboundSession(ac, got); err != nil || string(pt) != "reordered" {
		t.Fatalf("inbound from reordered message: %q %v", pt, err)
	}
}

func TestVarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 16383, 16384, 1<<32 - 1, 1<<63 + 5, 1<<64 - 1} {
		b := appendVarint(nil, v)
		if len(b) != varintLen(v) {
			t.Fatalf("varintLen(%d)", v)
		}
		r := reader{b: b}
		got, err := r.varint(1<<64 - 1)
		if err != nil || got != v || !r.done() {
			t.Fatalf("varint %d: %d %v", v, got, err)
		}
	}
}
