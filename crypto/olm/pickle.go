package olm

import (
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"myelin/keys"
)

// Pickles are this package's own storage format (not libolm's or
// vodozemac's):
//
//	version(1) = 0x01 | kind(1) ('A' account, 'S' session) | iv(16) | ciphertext | tag(32)
//
// The caller's key is expanded with HKDF-SHA-256 (no salt, info
// "myelin/crypto/olm pickle v1") into an AES-256 key, an IV key and a MAC
// key. The IV is synthetic, HMAC-SHA-256(ivKey, version|kind|plaintext)[:16]
// (as in SIV: pickling takes no randomness, and equal states give equal
// pickles but nothing else leaks), the plaintext is encrypted with
// AES-256-CTR, and tag = HMAC-SHA-256(macKey, version|kind|iv|ciphertext),
// all 32 bytes, checked before anything is decrypted.
//
// The plaintext is a fixed binary layout that starts with its own format
// version byte (0x01) and is decoded strictly: unknown versions, counts
// beyond the package limits, invalid keys and trailing bytes are refused.

const (
	// PickleKeySize is the minimum length of a pickle key. Use 32 random
	// bytes, or a key derived from a passphrase with a proper KDF.
	PickleKeySize = 32
	// MaxPickleSize bounds the pickles Unpickle* accept (an account with
	// [MaxStoredOneTimeKeys] keys needs about 190 KB).
	MaxPickleSize = 1 << 20

	pickleVersion     = 0x01
	pickleKindAccount = 'A'
	pickleKindSession = 'S'
	pickleInfo        = "myelin/crypto/olm pickle v1"
	pickleIVSize      = 16
	pickleTagSize     = sha256.Size
	pickleHeaderSize  = 2

	accountFormat = 0x01
	sessionFormat = 0x01
)

type pickleKeys struct{ enc, iv, mac [32]byte }

func derivePickleKeys(key []byte) (*pickleKeys, error) {
	if len(key) < PickleKeySize {
		return nil, ErrBadPickleKey
	}
	out, err := hkdf.Key(sha256.New, key, nil, pickleInfo, 96)
	if err != nil {
		panic("olm: internal error: " + err.Error())
	}
	k := &pickleKeys{}
	copy(k.enc[:], out[:32])
	copy(k.iv[:], out[32:64])
	copy(k.mac[:], out[64:])
	clear(out)
	return k, nil
}

func (k *pickleKeys) wipe() { clear(k.enc[:]); clear(k.iv[:]); clear(k.mac[:]) }

func (k *pickleKeys) syntheticIV(header, plaintext []byte) [pickleIVSize]byte {
	h := hmac.New(sha256.New, k.iv[:])
	h.Write(header)
	h.Write(plaintext)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var iv [pickleIVSize]byte
	copy(iv[:], sum[:])
	return iv
}

func (k *pickleKeys) ctr(iv [pickleIVSize]byte, dst, src []byte) {
	block, _ := aes.NewCipher(k.enc[:]) // 32-byte key cannot fail
	gocipher.NewCTR(block, iv[:]).XORKeyStream(dst, src)
}

func seal(key []byte, kind byte, plaintext []byte) ([]byte, error) {
	k, err := derivePickleKeys(key)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	out := make([]byte, pickleHeaderSize+pickleIVSize+len(plaintext), pickleHeaderSize+pickleIVSize+len(plaintext)+pickleTagSize)
	out[0], out[1] = pickleVersion, kind
	iv := k.syntheticIV(out[:pickleHeaderSize], plaintext)
	copy(out[pickleHeaderSize:], iv[:])
	k.ctr(iv, out[pickleHeaderSize+pickleIVSize:], plaintext)
	h := hmac.New(sha256.New, k.mac[:])
	h.Write(out)
	return h.Sum(out), nil
}

func open(key []byte, kind byte, data []byte) ([]byte, error) {
	if len(data) > MaxPickleSize {
		return nil, fmt.Errorf("%d bytes: %w", len(data), ErrBadPickle)
	}
	if len(data) < pickleHeaderSize+pickleIVSize+pickleTagSize {
		return nil, fmt.Errorf("truncated: %w", ErrBadPickle)
	}
	if data[0] != pickleVersion {
		return nil, fmt.Errorf("pickle version %d: %w", data[0], ErrBadVersion)
	}
	if data[1] != kind {
		return nil, fmt.Errorf("wrong kind of pickle: %w", ErrBadPickle)
	}
	k, err := derivePickleKeys(key)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	body, tag := data[:len(data)-pickleTagSize], data[len(data)-pickleTagSize:]
	h := hmac.New(sha256.New, k.mac[:])
	h.Write(body)
	if !hmac.Equal(h.Sum(nil), tag) {
		return nil, fmt.Errorf("authentication failed: %w", ErrBadPickle)
	}
	var iv [pickleIVSize]byte
	copy(iv[:], body[pickleHeaderSize:])
	ct := body[pickleHeaderSize+pickleIVSize:]
	pt := make([]byte, len(ct))
	k.ctr(iv, pt, ct)
	want := k.syntheticIV(body[:pickleHeaderSize], pt)
	if !hmac.Equal(want[:], iv[:]) { // cannot happen without the MAC key
		clear(pt)
		return nil, fmt.Errorf("authentication failed: %w", ErrBadPickle)
	}
	return pt, nil
}

// Pickle returns the account's state encrypted and authenticated under key
// (at least [PickleKeySize] bytes). See [UnpickleAccount].
func (a *Account) Pickle(key []byte) ([]byte, error) {
	pt := a.marshal()
	defer clear(pt)
	out, err := seal(key, pickleKindAccount, pt)
	if err != nil {
		return nil, fmt.Errorf("olm: pickle account: %w", err)
	}
	return out, nil
}

// UnpickleAccount restores an account from [Account.Pickle] output. It
// refuses pickles that do not authenticate under key, unknown versions and
// malformed contents.
func UnpickleAccount(key, data []byte) (*Account, error) {
	pt, err := open(key, pickleKindAccount, data)
	if err != nil {
		return nil, fmt.Errorf("olm: unpickle account: %w", err)
	}
	defer clear(pt)
	a, err := unmarshalAccount(pt)
	if err != nil {
		return nil, fmt.Errorf("olm: unpickle account: %w", err)
	}
	return a, nil
}

// Pickle returns the session's state encrypted and authenticated under key
// (at least [PickleKeySize] bytes). See [UnpickleSession].
func (s *Session) Pickle(key []byte) ([]byte, error) {
	pt := s.marshal()
	defer clear(pt)
	out, err := seal(key, pickleKindSession, pt)
	if err != nil {
		return nil, fmt.Errorf("olm: pickle session: %w", err)
	}
	return out, nil
}

// UnpickleSession restores a session from [Session.Pickle] output. It
// refuses pickles that do not authenticate under key, unknown versions and
// malformed contents.
func UnpickleSession(key, data []byte) (*Session, error) {
	pt, err := open(key, pickleKindSession, data)
	if err != nil {
		return nil, fmt.Errorf("olm: unpickle session: %w", err)
	}
	defer clear(pt)
	s, err := unmarshalSession(pt)
	if err != nil {
		return nil, fmt.Errorf("olm: unpickle session: %w", err)
	}
	return s, nil
}

// --- plaintext layouts ---

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendStoredKey(b []byte, k *storedKey) []byte {
	b = appendU32(b, k.id)
	b = append(b, k.key.Bytes()...)
	return appendBool(b, k.published)
}

func (a *Account) marshal() []byte {
	b := make([]byte, 0, 1+64+8+37*len(a.oneTimeKeys)+1+2*37)
	b = append(b, accountFormat)
	b = append(b, a.signing.Seed()...)
	b = append(b, a.identity.Bytes()...)
	b = appendU32(b, a.nextKeyID)
	b = appendU32(b, uint32(len(a.oneTimeKeys)))
	for i := range a.oneTimeKeys {
		b = appendStoredKey(b, &a.oneTimeKeys[i])
	}
	var flags byte
	if a.fallback != nil {
		flags |= 1
	}
	if a.prevFallback != nil {
		flags |= 2
	}
	b = append(b, flags)
	if a.fallback != nil {
		b = appendStoredKey(b, a.fallback)
	}
	if a.prevFallback != nil {
		b = appendStoredKey(b, a.prevFallback)
	}
	return b
}

func (s *Session) marshal() []byte {
	b := make([]byte, 0, 1+4*32+1+68+1+len(s.receivers)*(69+36*MaxSkippedMessageKeys))
	b = append(b, sessionFormat)
	for _, k := range []keys.Curve25519PublicKey{s.aliceIdentity, s.aliceBase, s.bobOneTime} {
		a := k.Array()
		b = append(b, a[:]...)
	}
	b = append(b, s.root[:]...)
	b = appendBool(b, s.sender != nil)
	if s.sender != nil {
		b = append(b, s.sender.ratchet.Bytes()...)
		b = append(b, s.sender.chain.key[:]...)
		b = appendU32(b, s.sender.chain.index)
	}
	b = append(b, byte(len(s.receivers)))
	for i := range s.receivers {
		rc := &s.receivers[i]
		a := rc.ratchetKey.Array()
		b = append(b, a[:]...)
		b = append(b, rc.chain.key[:]...)
		b = appendU32(b, rc.chain.index)
		b = append(b, byte(len(rc.skipped)))
		for _, k := range rc.skipped {
			b = appendU32(b, k.index)
			b = append(b, k.key[:]...)
		}
	}
	return b
}

// decoder reads a pickle plaintext; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, ErrBadPickle)
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad flag")
	return false
}

func (d *decoder) u32() uint32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (d *decoder) array32() (a [32]byte) {
	copy(a[:], d.take(32))
	return a
}

func (d *decoder) secret() *keys.Curve25519SecretKey {
	b := d.take(32)
	if b == nil {
		return nil
	}
	k, err := keys.NewCurve25519SecretKey(b)
	if err != nil {
		d.fail("bad key")
		return nil
	}
	return k
}

func (d *decoder) public() keys.Curve25519PublicKey {
	b := d.take(32)
	if b == nil {
		return keys.Curve25519PublicKey{}
	}
	k, _ := keys.NewCurve25519PublicKey(b) // 32 bytes cannot fail
	return k
}

func (d *decoder) storedKey(maxID uint32) *storedKey {
	k := &storedKey{id: d.u32(), key: d.secret(), published: d.bool()}
	if d.err == nil && (k.id == 0 || k.id > maxID) {
		d.fail("bad key ID")
	}
	return k
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing data")
	}
	return d.err
}

func unmarshalAccount(b []byte) (*Account, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != accountFormat {
		return nil, fmt.Errorf("account format %d: %w", v, ErrBadVersion)
	}
	a := &Account{}
	if seed := d.take(keys.Ed25519SeedSize); seed != nil {
		var err error
		if a.signing, err = keys.NewEd25519SecretKeyFromSeed(seed); err != nil {
			d.fail("bad key")
		}
	}
	a.identity = d.secret()
	a.nextKeyID = d.u32()
	n := d.u32()
	if d.err == nil && n > MaxStoredOneTimeKeys {
		d.fail("too many one-time keys")
	}
	var lastID uint32
	for i := uint32(0); i < n && d.err == nil; i++ {
		k := d.storedKey(a.nextKeyID)
		if d.err == nil && k.id <= lastID {
			d.fail("one-time keys out of order")
		}
		lastID = k.id
		a.oneTimeKeys = append(a.oneTimeKeys, *k)
	}
	flags := d.byte()
	if d.err == nil && flags > 3 {
		d.fail("bad flags")
	}
	if flags&1 != 0 {
		a.fallback = d.storedKey(a.nextKeyID)
	}
	if flags&2 != 0 {
		a.prevFallback = d.storedKey(a.nextKeyID)
	}
	if err := d.finish(); err != nil {
		a.wipe()
		return nil, err
	}
	return a, nil
}

func unmarshalSession(b []byte) (*Session, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != sessionFormat {
		return nil, fmt.Errorf("session format %d: %w", v, ErrBadVersion)
	}
	s := newSession(d.public(), d.public(), d.public())
	s.root = d.array32()
	if d.bool() {
		s.sender = &senderChain{ratchet: d.secret()}
		s.sender.chain.key = d.array32()
		s.sender.chain.index = d.u32()
	}
	n := d.byte()
	if d.err == nil && (n > MaxReceiverChains || (n == 0 && s.sender == nil)) {
		d.fail("bad receiver chain count")
	}
	for i := byte(0); i < n && d.err == nil; i++ {
		rc := receiverChain{ratchetKey: d.public()}
		rc.chain.key = d.array32()
		rc.chain.index = d.u32()
		m := d.byte()
		if d.err == nil && m > MaxSkippedMessageKeys {
			d.fail("too many skipped keys")
		}
		for j := byte(0); j < m && d.err == nil; j++ {
			k := messageKey{index: d.u32(), key: d.array32()}
			if d.err == nil && k.index >= rc.chain.index {
				d.fail("skipped key ahead of its chain")
			}
			rc.skipped = append(rc.skipped, k)
		}
		s.receivers = append(s.receivers, rc)
	}
	if err := d.finish(); err != nil {
		s.wipe()
		return nil, err
	}
	return s, nil
}

func (a *Account) wipe() {
	for _, k := range a.oneTimeKeys {
		if k.key != nil {
			k.key.Wipe()
		}
	}
	a.oneTimeKeys = nil
	for _, k := range []*storedKey{a.fallback, a.prevFallback} {
		if k != nil && k.key != nil {
			k.key.Wipe()
		}
	}
	a.fallback, a.prevFallback = nil, nil
	if a.identity != nil {
		a.identity.Wipe()
	}
	if a.signing != nil {
		a.signing.Wipe()
	}
}
