package libolm

// #include <stdlib.h>
// #include <olm/olm.h>
// #include <olm/inbound_group_session.h>
// #include <olm/outbound_group_session.h>
import "C"

import (
	"fmt"
	"unsafe"
)

// OutboundGroupSession is a libolm OlmOutboundGroupSession (Megolm sender).
type OutboundGroupSession struct {
	mem unsafe.Pointer
	ptr *C.OlmOutboundGroupSession
}

// NewOutboundGroupSession creates a Megolm session from
// OutboundGroupSessionRandomLength random bytes ([0:128] ratchet,
// [128:160] Ed25519 seed).
func NewOutboundGroupSession(random []byte) (*OutboundGroupSession, error) {
	mem := allocObject(C.olm_outbound_group_session_size())
	o := &OutboundGroupSession{mem: mem, ptr: C.olm_outbound_group_session(mem)}
	want := int(C.olm_init_outbound_group_session_random_length(o.ptr))
	if err := checkRandom("init outbound group session", random, want); err != nil {
		o.Free()
		return nil, err
	}
	r := cBytes(random)
	defer r.free()
	if failed(C.olm_init_outbound_group_session(o.ptr, r.u8(), r.n)) {
		err := o.err("init outbound group session")
		o.Free()
		return nil, err
	}
	return o, nil
}

// Free wipes and releases the session's C memory.
func (o *OutboundGroupSession) Free() {
	if o.ptr == nil {
		return
	}
	C.olm_clear_outbound_group_session(o.ptr)
	freeObject(o.mem, C.olm_outbound_group_session_size())
	o.ptr, o.mem = nil, nil
}

func (o *OutboundGroupSession) err(op string) error {
	return newError(op, C.olm_outbound_group_session_last_error(o.ptr))
}

// ID returns the session ID (base64 Ed25519 public key).
func (o *OutboundGroupSession) ID() (string, error) {
	n := C.olm_outbound_group_session_id_length(o.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_outbound_group_session_id(o.ptr, out.u8(), n)
	if failed(r) {
		return "", o.err("outbound group session id")
	}
	return string(out.bytes(r)), nil
}

// Key returns the signed session-sharing key (version 0x02, base64) at the
// current message index.
func (o *OutboundGroupSession) Key() (string, error) {
	n := C.olm_outbound_group_session_key_length(o.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_outbound_group_session_key(o.ptr, out.u8(), n)
	if failed(r) {
		return "", o.err("outbound group session key")
	}
	return string(out.bytes(r)), nil
}

// MessageIndex is the index of the next message.
func (o *OutboundGroupSession) MessageIndex() uint32 {
	return uint32(C.olm_outbound_group_session_message_index(o.ptr))
}

// Encrypt encrypts plaintext and returns the base64 Megolm message.
func (o *OutboundGroupSession) Encrypt(plaintext []byte) (string, error) {
	p := cBytes(plaintext)
	defer p.free()
	n := C.olm_group_encrypt_message_length(o.ptr, p.n)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_group_encrypt(o.ptr, p.u8(), p.n, out.u8(), n)
	if failed(r) {
		return "", o.err("group encrypt")
	}
	return string(out.bytes(r)), nil
}

// InboundGroupSession is a libolm OlmInboundGroupSession (Megolm receiver).
type InboundGroupSession struct {
	mem unsafe.Pointer
	ptr *C.OlmInboundGroupSession
}

func newInboundGroupSession() *InboundGroupSession {
	mem := allocObject(C.olm_inbound_group_session_size())
	return &InboundGroupSession{mem: mem, ptr: C.olm_inbound_group_session(mem)}
}

// NewInboundGroupSession creates a receiver from a signed session-sharing
// key (version 0x02, base64); the signature is checked.
func NewInboundGroupSession(sessionKey string) (*InboundGroupSession, error) {
	s := newInboundGroupSession()
	k := cB64(sessionKey)
	defer k.free()
	if failed(C.olm_init_inbound_group_session(s.ptr, k.u8(), k.n)) {
		err := s.err("init inbound group session")
		s.Free()
		return nil, err
	}
	return s, nil
}

// ImportInboundGroupSession creates a receiver from an exported session key
// (version 0x01, base64), which carries no signature.
func ImportInboundGroupSession(exportedKey string) (*InboundGroupSession, error) {
	s := newInboundGroupSession()
	k := cB64(exportedKey)
	defer k.free()
	if failed(C.olm_import_inbound_group_session(s.ptr, k.u8(), k.n)) {
		err := s.err("import inbound group session")
		s.Free()
		return nil, err
	}
	return s, nil
}

// Free wipes and releases the session's C memory.
func (s *InboundGroupSession) Free() {
	if s.ptr == nil {
		return
	}
	C.olm_clear_inbound_group_session(s.ptr)
	freeObject(s.mem, C.olm_inbound_group_session_size())
	s.ptr, s.mem = nil, nil
}

func (s *InboundGroupSession) err(op string) error {
	return newError(op, C.olm_inbound_group_session_last_error(s.ptr))
}

// ID returns the session ID (base64 Ed25519 public key).
func (s *InboundGroupSession) ID() (string, error) {
	n := C.olm_inbound_group_session_id_length(s.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_inbound_group_session_id(s.ptr, out.u8(), n)
	if failed(r) {
		return "", s.err("inbound group session id")
	}
	return string(out.bytes(r)), nil
}

// FirstKnownIndex is the first message index the session can decrypt.
func (s *InboundGroupSession) FirstKnownIndex() uint32 {
	return uint32(C.olm_inbound_group_session_first_known_index(s.ptr))
}

// IsVerified reports whether the session's key was signed (0x02) or has
// decrypted a message.
func (s *InboundGroupSession) IsVerified() bool {
	return C.olm_inbound_group_session_is_verified(s.ptr) != 0
}

// Decrypt decrypts a base64 Megolm message and returns the plaintext and
// the message index.
func (s *InboundGroupSession) Decrypt(msg string) ([]byte, uint32, error) {
	m := cB64(msg)
	n := C.olm_group_decrypt_max_plaintext_length(s.ptr, m.u8(), m.n)
	m.free()
	if failed(n) {
		return nil, 0, s.err("group decrypt")
	}
	m = cB64(msg)
	defer m.free()
	out := cAlloc(int(n))
	defer out.free()
	var idx C.uint32_t
	r := C.olm_group_decrypt(s.ptr, m.u8(), m.n, out.u8(), n, &idx)
	if failed(r) {
		return nil, 0, s.err("group decrypt")
	}
	return out.bytes(r), uint32(idx), nil
}

// Export returns the exported session key (version 0x01, base64) at index.
func (s *InboundGroupSession) Export(index uint32) (string, error) {
	n := C.olm_export_inbound_group_session_length(s.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_export_inbound_group_session(s.ptr, out.u8(), n, C.uint32_t(index))
	if failed(r) {
		return "", s.err(fmt.Sprintf("export inbound group session at %d", index))
	}
	return string(out.bytes(r)), nil
}
