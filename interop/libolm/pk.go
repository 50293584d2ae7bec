package libolm

// #include <stdlib.h>
// #include <olm/olm.h>
// #include <olm/pk.h>
import "C"

import "unsafe"

// PKEncryption is a libolm OlmPkEncryption (the sender side of
// m.megolm_backup.v1.curve25519-aes-sha2).
type PKEncryption struct {
	mem unsafe.Pointer
	ptr *C.OlmPkEncryption
}

// NewPKEncryption creates an encryptor to the recipient's Curve25519 public
// key (base64).
func NewPKEncryption(recipientKey string) (*PKEncryption, error) {
	mem := allocObject(C.olm_pk_encryption_size())
	e := &PKEncryption{mem: mem, ptr: C.olm_pk_encryption(mem)}
	k := cB64(recipientKey)
	defer k.free()
	if failed(C.olm_pk_encryption_set_recipient_key(e.ptr, k.p, k.n)) {
		err := newError("pk set recipient key", C.olm_pk_encryption_last_error(e.ptr))
		e.Free()
		return nil, err
	}
	return e, nil
}

// Free wipes and releases the encryptor's C memory.
func (e *PKEncryption) Free() {
	if e.ptr == nil {
		return
	}
	C.olm_clear_pk_encryption(e.ptr)
	freeObject(e.mem, C.olm_pk_encryption_size())
	e.ptr, e.mem = nil, nil
}

// Encrypt encrypts plaintext with an ephemeral key made from
// PKEncryptRandomLength random bytes; all outputs are base64.
func (e *PKEncryption) Encrypt(plaintext, random []byte) (ciphertext, mac, ephemeralKey string, err error) {
	if err := checkRandom("pk encrypt", random, int(C.olm_pk_encrypt_random_length(e.ptr))); err != nil {
		return "", "", "", err
	}
	p, r := cBytes(plaintext), cBytes(random)
	defer p.free()
	defer r.free()
	cn := C.olm_pk_ciphertext_length(e.ptr, p.n)
	mn := C.olm_pk_mac_length(e.ptr)
	kn := C.olm_pk_key_length()
	c, m, k := cAlloc(int(cn)), cAlloc(int(mn)), cAlloc(int(kn))
	defer c.free()
	defer m.free()
	defer k.free()
	if failed(C.olm_pk_encrypt(e.ptr, p.p, p.n, c.p, cn, m.p, mn, k.p, kn, r.p, r.n)) {
		return "", "", "", newError("pk encrypt", C.olm_pk_encryption_last_error(e.ptr))
	}
	return string(c.bytes(cn)), string(m.bytes(mn)), string(k.bytes(kn)), nil
}

// PKDecryption is a libolm OlmPkDecryption (the key-backup private key).
type PKDecryption struct {
	mem unsafe.Pointer
	ptr *C.OlmPkDecryption
	pub string
}

// NewPKDecryption creates a decryptor from a 32-byte Curve25519 private key.
func NewPKDecryption(privateKey []byte) (*PKDecryption, error) {
	if err := checkRandom("pk key from private", privateKey, int(C.olm_pk_private_key_length())); err != nil {
		return nil, err
	}
	mem := allocObject(C.olm_pk_decryption_size())
	d := &PKDecryption{mem: mem, ptr: C.olm_pk_decryption(mem)}
	priv := cBytes(privateKey)
	defer priv.free()
	kn := C.olm_pk_key_length()
	pub := cAlloc(int(kn))
	defer pub.free()
	if failed(C.olm_pk_key_from_private(d.ptr, pub.p, kn, priv.p, priv.n)) {
		err := d.err("pk key from private")
		d.Free()
		return nil, err
	}
	d.pub = string(pub.bytes(kn))
	return d, nil
}

// Free wipes and releases the decryptor's C memory.
func (d *PKDecryption) Free() {
	if d.ptr == nil {
		return
	}
	C.olm_clear_pk_decryption(d.ptr)
	freeObject(d.mem, C.olm_pk_decryption_size())
	d.ptr, d.mem = nil, nil
}

func (d *PKDecryption) err(op string) error {
	return newError(op, C.olm_pk_decryption_last_error(d.ptr))
}

// PublicKey returns the Curve25519 public key (base64).
func (d *PKDecryption) PublicKey() string { return d.pub }

// PrivateKey returns the 32-byte private key.
func (d *PKDecryption) PrivateKey() ([]byte, error) {
	n := C.olm_pk_private_key_length()
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_pk_get_private_key(d.ptr, out.p, n)
	if failed(r) {
		return nil, d.err("pk get private key")
	}
	return out.bytes(r), nil
}

// Decrypt decrypts a message given its base64 ephemeral key, MAC and
// ciphertext.
func (d *PKDecryption) Decrypt(ephemeralKey, mac, ciphertext string) ([]byte, error) {
	k, m, c := cB64(ephemeralKey), cB64(mac), cB64(ciphertext)
	defer k.free()
	defer m.free()
	defer c.free()
	n := C.olm_pk_max_plaintext_length(d.ptr, c.n)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_pk_decrypt(d.ptr, k.p, k.n, m.p, m.n, c.p, c.n, out.p, n)
	if failed(r) {
		return nil, d.err("pk decrypt")
	}
	return out.bytes(r), nil
}

// PKSigning is a libolm OlmPkSigning (an Ed25519 key, as used for
// cross-signing keys).
type PKSigning struct {
	mem unsafe.Pointer
	ptr *C.OlmPkSigning
	pub string
}

// NewPKSigning creates a signer from a 32-byte Ed25519 seed.
func NewPKSigning(seed []byte) (*PKSigning, error) {
	if err := checkRandom("pk signing key from seed", seed, int(C.olm_pk_signing_seed_length())); err != nil {
		return nil, err
	}
	mem := allocObject(C.olm_pk_signing_size())
	s := &PKSigning{mem: mem, ptr: C.olm_pk_signing(mem)}
	sd := cBytes(seed)
	defer sd.free()
	kn := C.olm_pk_signing_public_key_length()
	pub := cAlloc(int(kn))
	defer pub.free()
	if failed(C.olm_pk_signing_key_from_seed(s.ptr, pub.p, kn, sd.p, sd.n)) {
		err := newError("pk signing key from seed", C.olm_pk_signing_last_error(s.ptr))
		s.Free()
		return nil, err
	}
	s.pub = string(pub.bytes(kn))
	return s, nil
}

// Free wipes and releases the signer's C memory.
func (s *PKSigning) Free() {
	if s.ptr == nil {
		return
	}
	C.olm_clear_pk_signing(s.ptr)
	freeObject(s.mem, C.olm_pk_signing_size())
	s.ptr, s.mem = nil, nil
}

// PublicKey returns the Ed25519 public key (base64).
func (s *PKSigning) PublicKey() string { return s.pub }

// Sign signs msg and returns the base64 signature.
func (s *PKSigning) Sign(msg []byte) (string, error) {
	m := cBytes(msg)
	defer m.free()
	n := C.olm_pk_signature_length()
	out := cAlloc(int(n))
	defer out.free()
	if failed(C.olm_pk_sign(s.ptr, m.u8(), m.n, out.u8(), n)) {
		return "", newError("pk sign", C.olm_pk_signing_last_error(s.ptr))
	}
	return string(out.bytes(n)), nil
}
