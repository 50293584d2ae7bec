package megolm

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

// Persistence. A pickle is
//
//	version(1) | kind(1) | tag(32) | AES-256-CTR(plaintext, iv = tag[:16])
//
// with tag = HMAC-SHA-256(macKey, version | kind | plaintext) and
// encKey | macKey = HKDF-SHA-256(pickle key, no salt, info, 64). This is the
// SIV construction: deterministic (no randomness needed, equal states give
// equal pickles and nothing else leaks), and authenticated, so a wrong key or
// any tampering fails with [ErrInvalidPickle] before the state is parsed.
// The format is myelin's own; libolm and vodozemac pickles are not read.

// PickleKeySize is the minimum length of a pickle key (as in crypto/olm).
// Use 32 random bytes kept in the platform's secret store.
const PickleKeySize = 32

const (
	pickleVersion   = 1
	pickleInfo      = "myelin/crypto/megolm pickle v1"
	pickleHeader    = 2
	pickleTagSize   = sha256.Size
	maxPickleSize   = 1024
	kindOutbound    = 'O'
	kindInbound     = 'I'
	outboundPickled = 4 + 1 + RatchetSize + keys.Ed25519SeedSize
	inboundPickled  = 4 + RatchetSize + 4 + RatchetSize + keys.Ed25519PublicKeySize + 1
)

func pickleKeys(key []byte) (enc, mac [32]byte, err error) {
	if len(key) < PickleKeySize {
		return enc, mac, fmt.Errorf("%w: pickle key of %d bytes (minimum %d)", ErrBadPickleKey, len(key), PickleKeySize)
	}
	out, err := hkdf.Key(sha256.New, key, nil, pickleInfo, 64)
	if err != nil {
		panic("megolm: internal error: " + err.Error())
	}
	copy(enc[:], out[:32])
	copy(mac[:], out[32:])
	clear(out)
	return enc, mac, nil
}

func pickleTag(macKey *[32]byte, header, plaintext []byte) []byte {
	h := hmac.New(sha256.New, macKey[:])
	h.Write(header)
	h.Write(plaintext)
	return h.Sum(nil)
}

func ctr(encKey *[32]byte, iv, dst, src []byte) {
	block, err := aes.NewCipher(encKey[:])
	if err != nil {
		panic("megolm: internal error: " + err.Error())
	}
	gocipher.NewCTR(block, iv[:aes.BlockSize]).XORKeyStream(dst, src)
}

func seal(key []byte, kind byte, plaintext []byte) ([]byte, error) {
	enc, mac, err := pickleKeys(key)
	if err != nil {
		return nil, err
	}
	defer clear(enc[:])
	defer clear(mac[:])
	out := make([]byte, pickleHeader+pickleTagSize+len(plaintext))
	out[0], out[1] = pickleVersion, kind
	tag := pickleTag(&mac, out[:pickleHeader], plaintext)
	copy(out[pickleHeader:], tag)
	ctr(&enc, tag, out[pickleHeader+pickleTagSize:], plaintext)
	return out, nil
}

// open authenticates and decrypts a pickle of the given kind and plaintext
// length. The caller clears the returned plaintext.
func open(key []byte, kind byte, want int, data []byte) ([]byte, error) {
	if len(data) > maxPickleSize {
		return nil, fmt.Errorf("%w: pickle of %d bytes", ErrInvalidPickle, len(data))
	}
	if len(data) < pickleHeader {
		return nil, fmt.Errorf("%w: pickle truncated", ErrInvalidPickle)
	}
	if data[0] != pickleVersion {
		return nil, fmt.Errorf("%w: pickle version %d", ErrUnknownPickleVersion, data[0])
	}
	if data[1] != kind {
		return nil, fmt.Errorf("%w: pickle holds the wrong kind of session", ErrInvalidPickle)
	}
	if len(data) != pickleHeader+pickleTagSize+want {
		return nil, fmt.Errorf("%w: pickle of %d bytes", ErrInvalidPickle, len(data))
	}
	enc, mac, err := pickleKeys(key)
	if err != nil {
		return nil, err
	}
	defer clear(enc[:])
	defer clear(mac[:])
	tag := data[pickleHeader : pickleHeader+pickleTagSize]
	pt := make([]byte, want)
	ctr(&enc, tag, pt, data[pickleHeader+pickleTagSize:])
	if !hmac.Equal(pickleTag(&mac, data[:pickleHeader], pt), tag) {
		clear(pt)
		return nil, fmt.Errorf("%w: pickle authentication failed (wrong key or corrupted)", ErrInvalidPickle)
	}
	return pt, nil
}

// Pickle returns the session state encrypted and authenticated under key
// (at least [PickleKeySize] bytes). Restore it with
// [UnpickleOutboundSession].
func (o *OutboundSession) Pickle(key []byte) ([]byte, error) {
	pt := make([]byte, 0, outboundPickled)
	defer clear(pt[:cap(pt)])
	pt = binary.BigEndian.AppendUint32(pt, o.ratchet.counter)
	pt = append(pt, boolByte(o.exhausted))
	pt = append(pt, o.ratchet.data[:]...)
	seed := o.signing.Seed()
	pt = append(pt, seed...)
	clear(seed)
	return seal(key, kindOutbound, pt)
}

// UnpickleOutboundSession restores a session written by
// [OutboundSession.Pickle]. It fails with [ErrInvalidPickle] for a wrong key
// or tampered data and with [ErrUnknownPickleVersion] for a newer format.
func UnpickleOutboundSession(key, data []byte) (*OutboundSession, error) {
	pt, err := open(key, kindOutbound, outboundPickled, data)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	exhausted, ok := byteBool(pt[4])
	if !ok {
		return nil, fmt.Errorf("%w: pickle: bad flag", ErrInvalidPickle)
	}
	sk, err := keys.NewEd25519SecretKeyFromSeed(pt[5+RatchetSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: bad key in pickle", ErrInvalidPickle)
	}
	o := &OutboundSession{signing: sk, exhausted: exhausted}
	o.ratchet.counter = binary.BigEndian.Uint32(pt[:4])
	copy(o.ratchet.data[:], pt[5:5+RatchetSize])
	return o, nil
}

// Pickle returns the session state encrypted and authenticated under key
// (at least [PickleKeySize] bytes). Restore it with
// [UnpickleInboundSession].
func (s *InboundSession) Pickle(key []byte) ([]byte, error) {
	pt := make([]byte, 0, inboundPickled)
	defer clear(pt[:cap(pt)])
	pt = binary.BigEndian.AppendUint32(pt, s.initial.counter)
	pt = append(pt, s.initial.data[:]...)
	pt = binary.BigEndian.AppendUint32(pt, s.latest.counter)
	pt = append(pt, s.latest.data[:]...)
	pub := s.signingKey.Array()
	pt = append(pt, pub[:]...)
	pt = append(pt, boolByte(s.verified))
	return seal(key, kindInbound, pt)
}

// UnpickleInboundSession restores a session written by
// [InboundSession.Pickle]. It fails with [ErrInvalidPickle] for a wrong key
// or tampered data and with [ErrUnknownPickleVersion] for a newer format.
func UnpickleInboundSession(key, data []byte) (*InboundSession, error) {
	pt, err := open(key, kindInbound, inboundPickled, data)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	s := &InboundSession{}
	p := pt
	s.initial.counter = binary.BigEndian.Uint32(p)
	copy(s.initial.data[:], p[4:4+RatchetSize])
	p = p[4+RatchetSize:]
	s.latest.counter = binary.BigEndian.Uint32(p)
	copy(s.latest.data[:], p[4:4+RatchetSize])
	p = p[4+RatchetSize:]
	pub, err := keys.NewEd25519PublicKey(p[:keys.Ed25519PublicKeySize])
	if err != nil {
		return nil, fmt.Errorf("%w: bad key in pickle", ErrInvalidPickle)
	}
	s.signingKey = pub
	verified, ok := byteBool(p[keys.Ed25519PublicKeySize])
	if !ok || s.latest.counter < s.initial.counter {
		s.initial.wipe()
		s.latest.wipe()
		return nil, fmt.Errorf("%w: pickle: inconsistent state", ErrInvalidPickle)
	}
	s.verified = verified
	s.recent = s.initial // a cache; not persisted
	return s, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func byteBool(b byte) (v, ok bool) {
	switch b {
	case 0:
		return false, true
	case 1:
		return true, true
	}
	return false, false
}
