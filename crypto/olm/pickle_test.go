package olm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"myelin/keys"
)

func TestAccountPickleRoundTrip(t *testing.T) {
	r := newDetRand("account-pickle")
	a, _ := NewAccount(r)
	if err := a.GenerateOneTimeKeys(r, 5); err != nil {
		t.Fatal(err)
	}
	a.MarkKeysAsPublished()
	_ = a.GenerateOneTimeKeys(r, 2)
	_ = a.GenerateFallbackKey(r)
	_ = a.GenerateFallbackKey(r)
	p1, err := a.Pickle(testPickleKey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := UnpickleAccount(testPickleKey, p1)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := b.Pickle(testPickleKey)
	if !bytes.Equal(p1, p2) {
		t.Fatal("pickle round trip changed the account")
	}
	if a.String() != b.String() || fmt.Sprint(a.OneTimeKeys()) != fmt.Sprint(b.OneTimeKeys()) {
		t.Fatal("restored account differs")
	}
	fa, _ := a.FallbackKey()
	fb, _ := b.FallbackKey()
	if fa != fb {
		t.Fatal("fallback key differs")
	}
	// The restored account keeps generating IDs where the old one stopped.
	_ = a.GenerateOneTimeKeys(r, 1)
	_ = b.GenerateOneTimeKeys(newDetRand("x"), 1)
	ka, kb := a.OneTimeKeys(), b.OneTimeKeys()
	if ka[len(ka)-1].ID != kb[len(kb)-1].ID {
		t.Fatal("key ID counter not restored")
	}
}

func TestSessionPickleRoundTrip(t *testing.T) {
	p := newPair(t, "session-pickle")
	// Give Bob skipped keys and several chains.
	var held []Message
	for i := range 3 {
		decryptOK(t, p.as, encrypt(t, p.bs, p.rand, "b"), "b")
		held = append(held, encrypt(t, p.as, p.rand, fmt.Sprint(i)))
		decryptOK(t, p.bs, encrypt(t, p.as, p.rand, "a"), "a")
	}
	b2, err := UnpickleSession(testPickleKey, mustPickle(t, p.bs))
	if err != nil {
		t.Fatal(err)
	}
	if b2.ID() != p.bs.ID() || !bytes.Equal(mustPickle(t, b2), mustPickle(t, p.bs)) {
		t.Fatal("session round trip differs")
	}
	for i, m := range held {
		decryptOK(t, b2, m, fmt.Sprint(i))
	}
}

func TestPickleRejects(t *testing.T) {
	p := newPair(t, "pickle-rejects")
	sp := mustPickle(t, p.bs)
	ap, _ := p.bob.Pickle(testPickleKey)
	otherKey := bytes.Repeat([]byte{0x43}, 32)

	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name    string
		key     []byte
		data    []byte
		account bool
		want    error
	}{
		{"wrong key", otherKey, sp, false, ErrBadPickle},
		{"short key", testPickleKey[:31], sp, false, ErrBadPickleKey},
		{"flipped tag", testPickleKey, flip(sp, len(sp)-1), false, ErrBadPickle},
		{"flipped ciphertext", testPickleKey, flip(sp, 30), false, ErrBadPickle},
		{"flipped iv", testPickleKey, flip(sp, 3), false, ErrBadPickle},
		{"version 2", testPickleKey, append([]byte{2}, sp[1:]...), false, ErrBadVersion},
		{"truncated", testPickleKey, sp[:len(sp)-1], false, ErrBadPickle},
		{"empty", testPickleKey, nil, false, ErrBadPickle},
		{"account as session", testPickleKey, ap, false, ErrBadPickle},
		{"session as account", testPickleKey, sp, true, ErrBadPickle},
		{"oversized", testPickleKey, make([]byte, MaxPickleSize+1), true, ErrBadPickle},
	} {
		var err error
		if tc.account {
			_, err = UnpickleAccount(tc.key, tc.data)
		} else {
			_, err = UnpickleSession(tc.key, tc.data)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := p.bs.Pickle(testPickleKey[:16]); !errors.Is(err, ErrBadPickleKey) {
		t.Errorf("Pickle with short key: %v", err)
	}
}

// TestPickleContentsStrict re-seals malformed plaintexts under the right key
// and checks that the decoders refuse them.
func TestPickleContentsStrict(t *testing.T) {
	p := newPair(t, "pickle-strict")
	decryptOK(t, p.as, encrypt(t, p.bs, p.rand, "x"), "x")
	_ = encrypt(t, p.bs, p.rand, "skip")
	decryptOK(t, p.as, encrypt(t, p.bs, p.rand, "y"), "y") // one skipped key
	sess := p.as.marshal()
	acct := p.bob.marshal()
	for _, tc := range []struct {
		name string
		kind byte
		pt   []byte
		want error
	}{
		{"session format 2", pickleKindSession, append([]byte{2}, sess[1:]...), ErrBadVersion},
		{"session trailing", pickleKindSession, append(bytes.Clone(sess), 0), ErrBadPickle},
		{"session truncated", pickleKindSession, sess[:len(sess)-1], ErrBadPickle},
		{"session bad flag", pickleKindSession, func() []byte { b := bytes.Clone(sess); b[1+4*32] = 2; return b }(), ErrBadPickle},
		{"account format 0", pickleKindAccount, append([]byte{0}, acct[1:]...), ErrBadVersion},
		{"account trailing", pickleKindAccount, append(bytes.Clone(acct), 0), ErrBadPickle},
		{"account truncated", pickleKindAccount, acct[:len(acct)-1], ErrBadPickle},
	} {
		data, err := seal(testPickleKey, tc.kind, tc.pt)
		if err != nil {
			t.Fatal(err)
		}
		if tc.kind == pickleKindSession {
			_, err = UnpickleSession(testPickleKey, data)
		} else {
			_, err = UnpickleAccount(testPickleKey, data)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestSecretsNeverFormatted prints accounts and sessions through every fmt
// verb and slog handler and looks for their secrets in the output.
func TestSecretsNeverFormatted(t *testing.T) {
	p := newPair(t, "leak")
	_ = p.bob.GenerateOneTimeKeys(p.rand, 1)
	_ = p.bob.GenerateFallbackKey(p.rand)
	decryptOK(t, p.as, encrypt(t, p.bs, p.rand, "x"), "x")
	_ = encrypt(t, p.as, p.rand, "y")

	secrets := map[string][]byte{
		"bob identity":  p.bob.identity.Bytes(),
		"bob ed25519":   p.bob.signing.Seed(),
		"bob otk":       p.bob.oneTimeKeys[0].key.Bytes(),
		"bob fallback":  p.bob.fallback.key.Bytes(),
		"alice root":    p.as.root[:],
		"alice chain":   p.as.sender.chain.key[:],
		"alice ratchet": p.as.sender.ratchet.Bytes(),
		"alice recv":    p.as.receivers[0].chain.key[:],
		"bob root":      p.bs.root[:],
	}
	var out bytes.Buffer
	values := []any{p.bob, p.as, p.bs, *p.bob, *p.as, struct {
		A *Account
		S *Session
	}{p.bob, p.bs}, []*Session{p.as}}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("olm", "account", p.bob, "session", p.as, "sv", *p.bs)
	}
	text := out.String()
	for name, s := range secrets {
		for _, enc := range []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)), keys.EncodeBase64(s), fmt.Sprint(s), fmt.Sprintf("%d", s)} {
			if strings.Contains(text, enc) {
				t.Errorf("%s leaked in formatted output", name)
			}
		}
	}
	if !strings.Contains(text, p.as.ID()) || !strings.Contains(text, p.bobCurve.String()) {
		t.Error("formatted output lacks the public identifiers")
	}
}

// TestUnpickleBounds builds states beyond the package limits by hand and
// checks that their pickles are refused.
func TestUnpickleBounds(t *testing.T) {
	p := newPair(t, "unpickle-bounds")
	decryptOK(t, p.as, encrypt(t, p.bs, p.rand, "x"), "x")

	chains := *p.as
	chains.receivers = nil
	for range MaxReceiverChains + 1 {
		chains.receivers = append(chains.receivers, p.as.receivers[0])
	}
	skipped := *p.as
	rc := p.as.receivers[0]
	rc.chain.index = 100
	for i := range MaxSkippedMessageKeys + 1 {
		rc.skipped = append(rc.skipped, messageKey{index: uint32(i)})
	}
	skipped.receivers = []receiverChain{rc}
	for name, s := range map[string]*Session{"receiver chains": &chains, "skipped keys": &skipped} {
		if _, err := UnpickleSession(testPickleKey, mustPickle(t, s)); !errors.Is(err, ErrBadPickle) {
			t.Errorf("%s over the limit: err = %v", name, err)
		}
	}
	// Right at the limits the same pickles are fine.
	chains.receivers = chains.receivers[:MaxReceiverChains]
	rc.skipped = rc.skipped[:MaxSkippedMessageKeys]
	skipped.receivers = []receiverChain{rc}
	for name, s := range map[string]*Session{"receiver chains": &chains, "skipped keys": &skipped} {
		if _, err := UnpickleSession(testPickleKey, mustPickle(t, s)); err != nil {
			t.Errorf("%s at the limit: err = %v", name, err)
		}
	}

	if testing.Short() {
		return // the rest decodes 10,000 keys
	}
	a := *p.bob
	k := storedKey{key: p.bob.identity}
	a.oneTimeKeys = nil
	for i := range MaxStoredOneTimeKeys + 1 {
		k.id = uint32(i + 1)
		a.oneTimeKeys = append(a.oneTimeKeys, k)
	}
	a.nextKeyID = MaxStoredOneTimeKeys + 1
	data, err := a.Pickle(testPickleKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnpickleAccount(testPickleKey, data); !errors.Is(err, ErrBadPickle) {
		t.Errorf("one-time keys over the limit: err = %v", err)
	}
	a.oneTimeKeys = a.oneTimeKeys[:MaxStoredOneTimeKeys]
	data, _ = a.Pickle(testPickleKey)
	if _, err := UnpickleAccount(testPickleKey, data); err != nil {
		t.Errorf("one-time keys at the limit: err = %v", err)
	}
}
