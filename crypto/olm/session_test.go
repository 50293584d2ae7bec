package olm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"myelin/keys"
)

func TestConversation(t *testing.T) {
	p := newPair(t, "conversation")
	// Bursts of varying length in alternating directions, pickling and
	// restoring both sessions now and then.
	as, bs := p.as, p.bs
	for round := range 12 {
		from, to := bs, as
		if round%2 == 1 {
			from, to = as, bs
		}
		for i := range round%4 + 1 {
			pt := fmt.Sprintf("round %d message %d", round, i)
			m := encrypt(t, from, p.rand, pt)
			if from.HasReceivedMessage() != (m.Type() == MessageTypeNormal) {
				t.Fatalf("message type %d with HasReceivedMessage %v", m.Type(), from.HasReceivedMessage())
			}
			// Go through the wire format.
			parsed, err := ParseMessage(m.Type(), m.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			decryptOK(t, to, parsed, pt)
		}
		if round%3 == 2 {
			var err error
			if as, err = UnpickleSession(testPickleKey, mustPickle(t, as)); err != nil {
				t.Fatal(err)
			}
			if bs, err = UnpickleSession(testPickleKey, mustPickle(t, bs)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if as.ID() != bs.ID() || as.ID() != p.firstMessage.SessionID() {
		t.Fatal("session IDs differ")
	}
}

func TestPreKeyUntilReply(t *testing.T) {
	p := newPair(t, "prekey")
	m := encrypt(t, p.as, p.rand, "again")
	if m.Type() != MessageTypePreKey {
		t.Fatal("second message before any reply is not a pre-key message")
	}
	decryptOK(t, p.bs, m, "again")
	if !p.bs.MatchesInbound(p.aliceCurve, m.(*PreKeyMessage)) {
		t.Fatal("MatchesInbound false")
	}
	if p.bs.MatchesInbound(p.bobCurve, m.(*PreKeyMessage)) {
		t.Fatal("MatchesInbound true for the wrong identity key")
	}
	r := encrypt(t, p.bs, p.rand, "reply")
	if r.Type() != MessageTypeNormal {
		t.Fatal("inbound session sends pre-key messages")
	}
	decryptOK(t, p.as, r, "reply")
	if m := encrypt(t, p.as, p.rand, "after"); m.Type() != MessageTypeNormal {
		t.Fatal("pre-key message after a reply")
	}
}

func TestEncryptRandomConsumption(t *testing.T) {
	p := newPair(t, "random")
	// Alice still has her sender chain: no randomness.
	if _, err := p.as.Encrypt(nil, []byte("x")); err != nil {
		t.Fatalf("encrypt without randomness: %v", err)
	}
	// Bob has none yet: exactly 32 bytes, and nil rand is an error that
	// leaves the session unchanged.
	before := mustPickle(t, p.bs)
	if _, err := p.bs.Encrypt(nil, []byte("x")); err == nil {
		t.Fatal("encrypt with nil rand succeeded although a ratchet key was needed")
	}
	if _, err := p.bs.Encrypt(bytes.NewReader(make([]byte, 31)), []byte("x")); err == nil {
		t.Fatal("encrypt with 31 random bytes succeeded")
	}
	if !bytes.Equal(before, mustPickle(t, p.bs)) {
		t.Fatal("failed encrypt changed the session")
	}
	r := newDetRand("r")
	if _, err := p.bs.Encrypt(r, []byte("x")); err != nil || r.n != 32 {
		t.Fatalf("read %d random bytes (err %v), want 32", r.n, err)
	}
	if _, err := p.bs.Encrypt(r, []byte("y")); err != nil || r.n != 32 {
		t.Fatalf("second encrypt read randomness (%d, %v)", r.n, err)
	}
}

func TestOutOfOrder(t *testing.T) {
	p := newPair(t, "ooo")
	var msgs []Message
	for i := range 10 {
		msgs = append(msgs, encrypt(t, p.as, p.rand, fmt.Sprint(i)))
	}
	for _, i := range []int{9, 0, 5, 1, 8, 2, 7, 3, 6, 4} {
		decryptOK(t, p.bs, msgs[i], fmt.Sprint(i))
	}
	// Every key is used once: replays fail and change nothing.
	for i := range msgs {
		decryptFails(t, p.bs, msgs[i], ErrUnknownMessageIndex)
	}
	decryptFails(t, p.bs, p.firstMessage, ErrUnknownMessageIndex)
}

func TestSkippedKeyWindow(t *testing.T) {
	p := newPair(t, "window")
	// Bob's chain is at index 1; Alice sends indexes 1..60.
	var msgs []Message
	for i := range 60 {
		msgs = append(msgs, encrypt(t, p.as, p.rand, fmt.Sprint(i)))
	}
	decryptOK(t, p.bs, msgs[59], "59")
	// Only the last MaxSkippedMessageKeys skipped keys are kept.
	for i := range 59 {
		if i >= 59-MaxSkippedMessageKeys {
			decryptOK(t, p.bs, msgs[i], fmt.Sprint(i))
		} else {
			decryptFails(t, p.bs, msgs[i], ErrUnknownMessageIndex)
		}
	}
}

// TestSkippedKeysEvictOldest fills a chain's skipped-key store in two
// steps: the total stays at MaxSkippedMessageKeys and the oldest go first.
func TestSkippedKeysEvictOldest(t *testing.T) {
	p := newPair(t, "evict-skipped")
	msgs := map[int]Message{}
	for i := 1; i <= 60; i++ { // Bob's chain is at index 1
		msgs[i] = encrypt(t, p.as, p.rand, fmt.Sprint(i))
	}
	decryptOK(t, p.bs, msgs[30], "30") // skips 1..29
	decryptOK(t, p.bs, msgs[60], "60") // skips 31..59: 58 in all
	if n := len(p.bs.receivers[0].skipped); n != MaxSkippedMessageKeys {
		t.Fatalf("%d skipped keys stored, want %d", n, MaxSkippedMessageKeys)
	}
	for i := 1; i < 60; i++ {
		switch {
		case i == 30:
			continue
		case i <= 58-MaxSkippedMessageKeys: // 1..18 were evicted
			decryptFails(t, p.bs, msgs[i], ErrUnknownMessageIndex)
		default:
			decryptOK(t, p.bs, msgs[i], fmt.Sprint(i))
		}
	}
}

func TestMessageGap(t *testing.T) {
	p := newPair(t, "gap")
	// Bob's receiver chain is at index 1. Alice sends indexes 1..MaxMessageGap+2.
	var msgs []Message
	for i := 1; i <= MaxMessageGap+2; i++ {
		msgs = append(msgs, encrypt(t, p.as, p.rand, fmt.Sprint(i)))
	}
	last := msgs[len(msgs)-1] // index MaxMessageGap+2: a gap of MaxMessageGap+1
	decryptFails(t, p.bs, last, ErrMessageGap)
	_, err := p.bs.Decrypt(last)
	var gapErr *MessageGapError
	if !errors.As(err, &gapErr) || gapErr.Got != MaxMessageGap+1 || gapErr.Max != MaxMessageGap {
		t.Fatalf("err = %v, want MessageGapError{%d, %d}", err, MaxMessageGap+1, MaxMessageGap)
	}
	// A gap of exactly MaxMessageGap is fine.
	decryptOK(t, p.bs, msgs[len(msgs)-2], fmt.Sprint(MaxMessageGap+1))
	decryptOK(t, p.bs, last, fmt.Sprint(MaxMessageGap+2))
}

func TestMessageGapNewChain(t *testing.T) {
	for _, tc := range []struct {
		index int
		ok    bool
	}{{MaxMessageGap, true}, {MaxMessageGap + 1, false}} {
		p := newPair(t, "gap-new-chain")
		var m Message
		for range tc.index + 1 {
			m = encrypt(t, p.bs, p.rand, "x") // a new chain for Alice
		}
		if m.(*NormalMessage).ChainIndex() != uint32(tc.index) {
			t.Fatal("unexpected index")
		}
		if tc.ok {
			decryptOK(t, p.as, m, "x")
		} else {
			decryptFails(t, p.as, m, ErrMessageGap)
		}
	}
}

func TestReceiverChainsBounded(t *testing.T) {
	for _, extra := range []int{MaxReceiverChains - 1, MaxReceiverChains} {
		t.Run(fmt.Sprint(extra), func(t *testing.T) {
			p := newPair(t, "chains")
			// Bob's first chain: Alice receives one message and keeps
			// another undelivered.
			decryptOK(t, p.as, encrypt(t, p.bs, p.rand, "b0"), "b0")
			old := encrypt(t, p.bs, p.rand, "old")
			// Each round trip gives Alice one more receiver chain.
			for i := range extra {
				decryptOK(t, p.bs, encrypt(t, p.as, p.rand, "a"), "a")
				decryptOK(t, p.as, encrypt(t, p.bs, p.rand, fmt.Sprint(i)), fmt.Sprint(i))
			}
			if len(p.as.receivers) > MaxReceiverChains {
				t.Fatalf("%d receiver chains kept", len(p.as.receivers))
			}
			if extra < MaxReceiverChains {
				decryptOK(t, p.as, old, "old") // its chain is still kept
				return
			}
			// The oldest chain was dropped: the message is now on an
			// unknown ratchet key and cannot be decrypted.
			decryptFails(t, p.as, old, nil)
		})
	}
}

func TestTamperedMessages(t *testing.T) {
	p := newPair(t, "tamper")
	m := encrypt(t, p.as, p.rand, "secret").(*PreKeyMessage)
	n := m.Message()
	raw := n.Marshal()
	for _, tc := range []struct {
		name string
		pos  int
		flip byte
		want error
	}{
		{"mac", len(raw) - 1, 1, ErrBadMAC},
		{"ciphertext", len(raw) - macSize - 1, 1, ErrBadMAC},
		{"ratchet key", 5, 1, ErrUnexpectedRatchetKey}, // unknown chain, Bob has no sender chain
		{"index ahead", 3 + keySize + 1, 2, ErrBadMAC},
		{"index behind", 3 + keySize + 1, 1, ErrUnknownMessageIndex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(raw)
			b[tc.pos] ^= tc.flip
			bad, err := ParseNormalMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			decryptFails(t, p.bs, bad, tc.want)
		})
	}
	// The untampered message still decrypts afterwards.
	decryptOK(t, p.bs, m, "secret")
}

func TestNewRatchetKeyBeforeReply(t *testing.T) {
	p := newPair(t, "early-ratchet")
	// Bob has no sender chain: a message on a new ratchet key is refused
	// (libolm does the same).
	other := newPair(t, "other")
	m := encrypt(t, other.as, other.rand, "x").(*PreKeyMessage).Message()
	decryptFails(t, p.bs, m, ErrUnexpectedRatchetKey)
}

func TestPreKeyForAnotherSession(t *testing.T) {
	p := newPair(t, "mismatch")
	other := newPair(t, "mismatch-other")
	m := encrypt(t, other.as, other.rand, "x")
	decryptFails(t, p.bs, m, ErrSessionMismatch)
	if p.bs.MatchesInbound(other.aliceCurve, m.(*PreKeyMessage)) {
		t.Fatal("MatchesInbound true for another session's message")
	}
}

// withRatchetKey re-encodes m with a different ratchet key (the MAC then no
// longer matches, but the DH comes first).
func withRatchetKey(t *testing.T, m *NormalMessage, k []byte) *NormalMessage {
	t.Helper()
	b := m.Marshal()
	copy(b[3:3+keySize], k)
	out, err := ParseNormalMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNonContributoryRefused(t *testing.T) {
	p := newPair(t, "zero")
	// Alice has a sender chain, so an unknown ratchet key means a DH.
	reply := encrypt(t, p.bs, p.rand, "x").(*NormalMessage)
	for _, k := range [][]byte{make([]byte, 32), append([]byte{1}, make([]byte, 31)...)} {
		decryptFails(t, p.as, withRatchetKey(t, reply, k), keys.ErrNonContributory)
	}
	decryptOK(t, p.as, reply, "x")

	// Outbound session to a low-order one-time key.
	zero, _ := keys.NewCurve25519PublicKey(make([]byte, 32))
	if _, err := p.alice.NewOutboundSession(p.rand, p.bobCurve, zero); !errors.Is(err, keys.ErrNonContributory) {
		t.Fatalf("outbound to zero key: %v", err)
	}
	if _, err := p.alice.NewOutboundSession(p.rand, zero, p.bobCurve); !errors.Is(err, keys.ErrNonContributory) {
		t.Fatalf("outbound to zero identity: %v", err)
	}

	// Inbound pre-key message with a zero base key.
	if err := p.bob.GenerateOneTimeKeys(p.rand, 1); err != nil {
		t.Fatal(err)
	}
	otk := p.bob.OneTimeKeys()[0].Key
	s, err := p.alice.NewOutboundSession(p.rand, p.bobCurve, otk)
	if err != nil {
		t.Fatal(err)
	}
	pk := encrypt(t, s, p.rand, "x").(*PreKeyMessage)
	bad := newPreKeyMessage(pk.oneTimeKey, zero, pk.identityKey, pk.message)
	if _, _, err := p.bob.NewInboundSession(p.aliceCurve, bad); !errors.Is(err, keys.ErrNonContributory) {
		t.Fatalf("inbound with zero base key: %v", err)
	}
	if len(p.bob.OneTimeKeys()) != 1 {
		t.Fatal("one-time key removed by a failed inbound session")
	}
}

func TestInboundSessionFailures(t *testing.T) {
	r := newDetRand("inbound")
	alice, _ := NewAccount(r)
	bob, _ := NewAccount(r)
	ac, _ := alice.IdentityKeys()
	bc, _ := bob.IdentityKeys()
	if err := bob.GenerateOneTimeKeys(r, 2); err != nil {
		t.Fatal(err)
	}
	otk := bob.OneTimeKeys()[0]
	s, _ := alice.NewOutboundSession(r, bc, otk.Key)
	m := encrypt(t, s, r, "hi").(*PreKeyMessage)
	snapshot := func() []byte { b, _ := bob.Pickle(testPickleKey); return b }
	before := snapshot()

	tampered := bytes.Clone(m.Marshal())
	tampered[len(tampered)-1] ^= 1
	tm, err := ParsePreKeyMessage(tampered)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := alice.NewOutboundSession(r, bc, ac) // a key Bob never had
	unknown := encrypt(t, other, r, "hi").(*PreKeyMessage)
	for _, tc := range []struct {
		name   string
		sender keys.Curve25519PublicKey
		m      *PreKeyMessage
		want   error
	}{
		{"bad mac", ac, tm, ErrBadMAC},
		{"unknown one-time key", ac, unknown, ErrNoMatchingKey},
		{"sender key mismatch", bc, m, ErrSenderKeyMismatch},
		{"nil", ac, nil, ErrInvalidMessage},
	} {
		sess, pt, err := bob.NewInboundSession(tc.sender, tc.m)
		if !errors.Is(err, tc.want) || sess != nil || pt != nil {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if !bytes.Equal(before, snapshot()) {
			t.Fatalf("%s: account changed by a failed inbound session", tc.name)
		}
	}
	// The genuine message still works, and consumes exactly its key.
	if _, pt, err := bob.NewInboundSession(ac, m); err != nil || string(pt) != "hi" {
		t.Fatalf("genuine: %q %v", pt, err)
	}
	left := bob.OneTimeKeys()
	if len(left) != 1 || left[0].ID == otk.ID {
		t.Fatalf("one-time keys after use: %v", left)
	}
	// A second inbound session from the same message fails: the key is gone.
	if _, _, err := bob.NewInboundSession(ac, m); !errors.Is(err, ErrNoMatchingKey) {
		t.Fatalf("reused one-time key: %v", err)
	}
}

func TestFallbackKeys(t *testing.T) {
	r := newDetRand("fallback")
	alice, _ := NewAccount(r)
	bob, _ := NewAccount(r)
	ac, _ := alice.IdentityKeys()
	bc, _ := bob.IdentityKeys()
	if err := bob.GenerateOneTimeKeys(r, 2); err != nil {
		t.Fatal(err)
	}
	if _, ok := bob.UnpublishedFallbackKey(); ok {
		t.Fatal("fallback key before one was generated")
	}
	if err := bob.GenerateFallbackKey(r); err != nil {
		t.Fatal(err)
	}
	fb1, ok := bob.UnpublishedFallbackKey()
	if !ok || fb1.ID != "AAAAAw" { // the counter is shared with one-time keys
		t.Fatalf("fallback key = %v, %v", fb1, ok)
	}
	bob.MarkKeysAsPublished()
	if _, ok := bob.UnpublishedFallbackKey(); ok || len(bob.OneTimeKeys()) != 0 {
		t.Fatal("keys still unpublished after MarkKeysAsPublished")
	}
	inbound := func(k keys.Curve25519PublicKey) error {
		s, err := alice.NewOutboundSession(r, bc, k)
		if err != nil {
			return err
		}
		m := encrypt(t, s, r, "via fallback").(*PreKeyMessage)
		_, pt, err := bob.NewInboundSession(ac, m)
		if err == nil && string(pt) != "via fallback" {
			t.Fatalf("plaintext %q", pt)
		}
		return err
	}
	// A fallback key is not consumed by use.
	for range 2 {
		if err := inbound(fb1.Key); err != nil {
			t.Fatal(err)
		}
	}
	// Rotation: the previous key stays usable until forgotten.
	if err := bob.GenerateFallbackKey(r); err != nil {
		t.Fatal(err)
	}
	fb2, _ := bob.UnpublishedFallbackKey()
	if fb2.ID != "AAAABA" {
		t.Fatalf("second fallback ID %s", fb2.ID)
	}
	if err := inbound(fb1.Key); err != nil {
		t.Fatalf("previous fallback key: %v", err)
	}
	if err := inbound(fb2.Key); err != nil {
		t.Fatalf("current fallback key: %v", err)
	}
	bob.ForgetOldFallbackKey()
	if err := inbound(fb1.Key); !errors.Is(err, ErrNoMatchingKey) {
		t.Fatalf("forgotten fallback key: %v", err)
	}
	if err := inbound(fb2.Key); err != nil {
		t.Fatalf("current fallback key after forgetting the old one: %v", err)
	}
	// A third key drops the first for good, even without ForgetOldFallbackKey.
	if err := bob.GenerateFallbackKey(r); err != nil {
		t.Fatal(err)
	}
	if err := bob.GenerateFallbackKey(r); err != nil {
		t.Fatal(err)
	}
	if err := inbound(fb2.Key); !errors.Is(err, ErrNoMatchingKey) {
		t.Fatalf("fallback key two rotations old: %v", err)
	}
}

func TestOneTimeKeys(t *testing.T) {
	r := newDetRand("otk")
	a, _ := NewAccount(r)
	if a.MaxNumberOfOneTimeKeys() != 100 {
		t.Fatal("MaxNumberOfOneTimeKeys != 100")
	}
	if err := a.GenerateOneTimeKeys(r, 3); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range a.OneTimeKeys() {
		ids = append(ids, k.ID)
	}
	if fmt.Sprint(ids) != "[AAAAAQ AAAAAg AAAAAw]" {
		t.Fatalf("IDs %v", ids)
	}
	a.MarkKeysAsPublished()
	if err := a.GenerateOneTimeKeys(r, 1); err != nil {
		t.Fatal(err)
	}
	if k := a.OneTimeKeys(); len(k) != 1 || k[0].ID != "AAAABA" {
		t.Fatalf("after publishing: %v", k)
	}
	if err := a.GenerateOneTimeKeys(r, -1); !errors.Is(err, ErrTooManyOneTimeKeys) {
		t.Fatal(err)
	}
	if err := a.GenerateOneTimeKeys(r, MaxStoredOneTimeKeys+1); !errors.Is(err, ErrTooManyOneTimeKeys) {
		t.Fatal(err)
	}
	// Random input runs out: nothing changes.
	before, _ := a.Pickle(testPickleKey)
	if err := a.GenerateOneTimeKeys(bytes.NewReader(make([]byte, 63)), 2); err == nil {
		t.Fatal("short random input accepted")
	}
	if after, _ := a.Pickle(testPickleKey); !bytes.Equal(before, after) {
		t.Fatal("failed GenerateOneTimeKeys changed the account")
	}
}

func TestOneTimeKeyEviction(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 5000 keys")
	}
	r := newDetRand("evict")
	a, _ := NewAccount(r)
	if err := a.GenerateOneTimeKeys(r, 2); err != nil {
		t.Fatal(err)
	}
	oldest := a.OneTimeKeys()[0]
	if err := a.GenerateOneTimeKeys(r, MaxStoredOneTimeKeys-1); err != nil {
		t.Fatal(err)
	}
	ks := a.OneTimeKeys()
	if len(ks) != MaxStoredOneTimeKeys || ks[0].ID == oldest.ID {
		t.Fatalf("%d keys stored, first %s", len(ks), ks[0].ID)
	}
	if ks[0].ID != keyID(2) || ks[len(ks)-1].ID != keyID(MaxStoredOneTimeKeys+1) {
		t.Fatalf("wrong keys kept: %s..%s", ks[0].ID, ks[len(ks)-1].ID)
	}
}

func TestPlaintextTooLarge(t *testing.T) {
	p := newPair(t, "large")
	if _, err := p.as.Encrypt(p.rand, make([]byte, MaxPlaintextSize+1)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("err = %v", err)
	}
	// The largest plaintext makes a message the parsers accept.
	m := encrypt(t, p.as, p.rand, string(make([]byte, MaxPlaintextSize)))
	if _, err := ParsePreKeyMessage(m.Marshal()); err != nil {
		t.Fatalf("largest message refused: %v", err)
	}
	pt, err := p.bs.Decrypt(m)
	if err != nil || len(pt) != MaxPlaintextSize {
		t.Fatalf("largest message: %d, %v", len(pt), err)
	}
}

func TestSign(t *testing.T) {
	a, _ := NewAccount(newDetRand("sign"))
	_, ed := a.IdentityKeys()
	sig := a.Sign([]byte("msg"))
	if err := ed.Verify([]byte("msg"), sig); err != nil {
		t.Fatal(err)
	}
	if err := ed.Verify([]byte("msh"), sig); err == nil {
		t.Fatal("signature verifies for another message")
	}
}

func TestZeroValueMessages(t *testing.T) {
	p := newPair(t, "zero-value")
	for _, m := range []Message{&NormalMessage{}, &PreKeyMessage{}, (*NormalMessage)(nil), (*PreKeyMessage)(nil), nil} {
		decryptFails(t, p.bs, m, nil)
	}
	for _, m := range []*PreKeyMessage{{}, {message: &NormalMessage{}}} {
		if _, _, err := p.bob.NewInboundSession(p.aliceCurve, m); !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("zero pre-key message: %v", err)
		}
	}
}

func TestNewAccountShortRandom(t *testing.T) {
	if _, err := NewAccount(bytes.NewReader(make([]byte, 63))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
}
