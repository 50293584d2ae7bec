package libolm

// #include <stdlib.h>
// #include <olm/olm.h>
// #include <olm/sas.h>
import "C"

import "unsafe"

// SAS is a libolm OlmSAS (short authentication string verification,
// https://spec.matrix.org/v1.16/client-server-api/#short-authentication-string-sas-verification).
type SAS struct {
	mem unsafe.Pointer
	ptr *C.OlmSAS
}

// NewSAS creates a SAS object whose ephemeral X25519 private key is the
// SASRandomLength random bytes.
func NewSAS(random []byte) (*SAS, error) {
	mem := allocObject(C.olm_sas_size())
	s := &SAS{mem: mem, ptr: C.olm_sas(mem)}
	if err := checkRandom("create sas", random, int(C.olm_create_sas_random_length(s.ptr))); err != nil {
		s.Free()
		return nil, err
	}
	r := cBytes(random)
	defer r.free()
	if failed(C.olm_create_sas(s.ptr, r.p, r.n)) {
		err := s.err("create sas")
		s.Free()
		return nil, err
	}
	return s, nil
}

// Free wipes and releases the SAS object's C memory.
func (s *SAS) Free() {
	if s.ptr == nil {
		return
	}
	C.olm_clear_sas(s.ptr)
	freeObject(s.mem, C.olm_sas_size())
	s.ptr, s.mem = nil, nil
}

func (s *SAS) err(op string) error { return newError(op, C.olm_sas_last_error(s.ptr)) }

// PublicKey returns our ephemeral public key (base64).
func (s *SAS) PublicKey() (string, error) {
	n := C.olm_sas_pubkey_length(s.ptr)
	out := cAlloc(int(n))
	defer out.free()
	if failed(C.olm_sas_get_pubkey(s.ptr, out.p, n)) {
		return "", s.err("sas get pubkey")
	}
	return string(out.bytes(n)), nil
}

// SetTheirKey sets the other party's ephemeral public key (base64).
func (s *SAS) SetTheirKey(key string) error {
	k := cB64(key)
	defer k.free()
	if failed(C.olm_sas_set_their_key(s.ptr, k.p, k.n)) {
		return s.err("sas set their key")
	}
	return nil
}

// GenerateBytes derives n SAS bytes with the given HKDF info.
func (s *SAS) GenerateBytes(info []byte, n int) ([]byte, error) {
	in := cBytes(info)
	defer in.free()
	out := cAlloc(n)
	defer out.free()
	if failed(C.olm_sas_generate_bytes(s.ptr, in.p, in.n, out.p, out.n)) {
		return nil, s.err("sas generate bytes")
	}
	return out.bytes(out.n), nil
}

type macFunc func(*C.OlmSAS, unsafe.Pointer, C.size_t, unsafe.Pointer, C.size_t, unsafe.Pointer, C.size_t) C.size_t

func (s *SAS) mac(op string, f macFunc, input, info []byte) (string, error) {
	in, inf := cBytes(input), cBytes(info)
	defer in.free()
	defer inf.free()
	n := C.olm_sas_mac_length(s.ptr)
	out := cAlloc(int(n))
	defer out.free()
	if failed(f(s.ptr, in.p, in.n, inf.p, inf.n, out.p, n)) {
		return "", s.err(op)
	}
	return string(out.bytes(n)), nil
}

// CalculateMAC is the legacy "hkdf-hmac-sha256" MAC with libolm's broken
// base64 (olm_sas_calculate_mac).
func (s *SAS) CalculateMAC(input, info []byte) (string, error) {
	return s.mac("sas calculate mac", func(p *C.OlmSAS, a unsafe.Pointer, an C.size_t, b unsafe.Pointer, bn C.size_t, c unsafe.Pointer, cn C.size_t) C.size_t {
		return C.olm_sas_calculate_mac(p, a, an, b, bn, c, cn)
	}, input, info)
}

// CalculateMACFixedBase64 is the "hkdf-hmac-sha256.v2" MAC
// (olm_sas_calculate_mac_fixed_base64).
func (s *SAS) CalculateMACFixedBase64(input, info []byte) (string, error) {
	return s.mac("sas calculate mac fixed base64", func(p *C.OlmSAS, a unsafe.Pointer, an C.size_t, b unsafe.Pointer, bn C.size_t, c unsafe.Pointer, cn C.size_t) C.size_t {
		return C.olm_sas_calculate_mac_fixed_base64(p, a, an, b, bn, c, cn)
	}, input, info)
}

// CalculateMACLongKDF is the "hmac-sha256" MAC (olm_sas_calculate_mac_long_kdf).
func (s *SAS) CalculateMACLongKDF(input, info []byte) (string, error) {
	return s.mac("sas calculate mac long kdf", func(p *C.OlmSAS, a unsafe.Pointer, an C.size_t, b unsafe.Pointer, bn C.size_t, c unsafe.Pointer, cn C.size_t) C.size_t {
		return C.olm_sas_calculate_mac_long_kdf(p, a, an, b, bn, c, cn)
	}, input, info)
}
