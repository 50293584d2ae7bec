package interop

// BenchmarkFloor measures the primitives (through Go's standard library,
// which myelin uses) so that the protocol benchmarks can be read as ratios
// to what they cannot beat:
//
//	Megolm encrypt  ≈ Ed25519 sign + HKDF(128-byte ratchet, 80) + AES-CBC + HMAC + one ratchet HMAC
//	Megolm decrypt  ≈ Ed25519 verify + the same symmetric work
//	Olm outbound    ≈ 2 X25519 key generations (base and ratchet key) + 3 X25519 + HKDF
//	Olm inbound     ≈ 3 X25519 + HKDF + decrypting one message
//	Olm ping-pong   ≈ 1 key generation + 2 X25519 + 2 HKDF ratchet steps + encrypt/decrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

type floorKit struct {
	signKey  ed25519.PrivateKey
	signPub  ed25519.PublicKey
	x1, x2   *ecdh.PrivateKey
	seed     []byte
	ratchet  []byte
	msg      []byte
	sig      []byte
	hmacKey  []byte
	aesKey   []byte
	iv       []byte
	ctBuffer []byte
}

func newFloorKit(b *testing.B, size int) *floorKit {
	k := &floorKit{seed: seq(1, 32), ratchet: seq(2, 128), msg: benchPlaintext(size), hmacKey: seq(3, 32), aesKey: seq(4, 32), iv: seq(5, 16)}
	k.signKey = ed25519.NewKeyFromSeed(k.seed)
	k.signPub = k.signKey.Public().(ed25519.PublicKey)
	k.sig = ed25519.Sign(k.signKey, k.msg)
	var err error
	if k.x1, err = ecdh.X25519().NewPrivateKey(seq(6, 32)); err != nil {
		b.Fatal(err)
	}
	if k.x2, err = ecdh.X25519().NewPrivateKey(seq(7, 32)); err != nil {
		b.Fatal(err)
	}
	k.ctBuffer = make([]byte, (size/16+1)*16)
	return k
}

func (k *floorKit) x25519(b *testing.B) {
	if _, err := k.x1.ECDH(k.x2.PublicKey()); err != nil {
		b.Fatal(err)
	}
}

func (k *floorKit) keygen(b *testing.B) {
	p, err := ecdh.X25519().NewPrivateKey(k.seed)
	if err != nil {
		b.Fatal(err)
	}
	_ = p.PublicKey()
}

func (k *floorKit) hkdf(b *testing.B, secret []byte, n int) {
	if _, err := hkdf.Key(sha256.New, secret, nil, "MEGOLM_KEYS", n); err != nil {
		b.Fatal(err)
	}
}

func (k *floorKit) hmac(data []byte) {
	h := hmac.New(sha256.New, k.hmacKey)
	h.Write(data)
	_ = h.Sum(nil)
}

func (k *floorKit) aesCBC(b *testing.B) {
	c, err := aes.NewCipher(k.aesKey)
	if err != nil {
		b.Fatal(err)
	}
	n := copy(k.ctBuffer, k.msg)
	for i := n; i < len(k.ctBuffer); i++ { // PKCS#7
		k.ctBuffer[i] = byte(len(k.ctBuffer) - n)
	}
	cipher.NewCBCEncrypter(c, k.iv).CryptBlocks(k.ctBuffer, k.ctBuffer)
}

func (k *floorKit) symmetric(b *testing.B) {
	k.hkdf(b, k.ratchet, 80)
	k.aesCBC(b)
	k.hmac(k.ctBuffer)
	k.hmac([]byte{3}) // ratchet advance
}

func BenchmarkFloor(b *testing.B) {
	const size = 1024
	cases := []struct {
		name  string
		bytes bool
		op    func(b *testing.B, k *floorKit)
	}{
		{"ed25519sign", true, func(b *testing.B, k *floorKit) { ed25519.Sign(k.signKey, k.msg) }},
		{"ed25519verify", true, func(b *testing.B, k *floorKit) {
			if !ed25519.Verify(k.signPub, k.msg, k.sig) {
				b.Fatal("bad signature")
			}
		}},
		{"x25519", false, func(b *testing.B, k *floorKit) { k.x25519(b) }},
		{"x25519keygen", false, func(b *testing.B, k *floorKit) { k.keygen(b) }},
		{"hkdf80", false, func(b *testing.B, k *floorKit) { k.hkdf(b, k.ratchet, 80) }},
		{"hmacsha256", true, func(b *testing.B, k *floorKit) { k.hmac(k.msg) }},
		{"aescbc", true, func(b *testing.B, k *floorKit) { k.aesCBC(b) }},
		{"megolmencrypt", true, func(b *testing.B, k *floorKit) {
			k.symmetric(b)
			ed25519.Sign(k.signKey, k.ctBuffer)
		}},
		{"megolmdecrypt", true, func(b *testing.B, k *floorKit) {
			if !ed25519.Verify(k.signPub, k.msg, k.sig) {
				b.Fatal("bad signature")
			}
			k.symmetric(b)
		}},
		{"olmoutbound", false, func(b *testing.B, k *floorKit) {
			k.keygen(b)
			k.keygen(b)
			k.x25519(b)
			k.x25519(b)
			k.x25519(b)
			k.hkdf(b, k.ratchet[:96], 64)
		}},
		{"olmpingpong", true, func(b *testing.B, k *floorKit) {
			k.keygen(b)
			k.x25519(b)
			k.x25519(b)
			k.hkdf(b, k.ratchet[:32], 64)
			k.hkdf(b, k.ratchet[:32], 64)
			k.symmetric(b) // encrypt
			k.symmetric(b) // decrypt costs about the same
		}},
	}
	for _, c := range cases {
		name := "op=" + c.name
		if c.bytes {
			name += "/size=1024"
		}
		b.Run(name, func(b *testing.B) {
			k := newFloorKit(b, size)
			b.ReportAllocs()
			if c.bytes {
				b.SetBytes(size)
			}
			for b.Loop() {
				c.op(b, k)
			}
		})
	}
}
