package libolm

// #include <stdlib.h>
// #include <olm/olm.h>
import "C"

import "unsafe"

// Session is a libolm OlmSession: one Olm double-ratchet session.
type Session struct {
	mem unsafe.Pointer
	ptr *C.OlmSession
}

func newSession() *Session {
	mem := allocObject(C.olm_session_size())
	return &Session{mem: mem, ptr: C.olm_session(mem)}
}

// Free wipes and releases the session's C memory.
func (s *Session) Free() {
	if s.ptr == nil {
		return
	}
	C.olm_clear_session(s.ptr)
	freeObject(s.mem, C.olm_session_size())
	s.ptr, s.mem = nil, nil
}

func (s *Session) err(op string) error { return newError(op, C.olm_session_last_error(s.ptr)) }

// ID returns the session ID (base64 SHA-256 of I_A | E_A | E_B).
func (s *Session) ID() (string, error) {
	n := C.olm_session_id_length(s.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_session_id(s.ptr, out.p, n)
	if failed(r) {
		return "", s.err("session id")
	}
	return string(out.bytes(r)), nil
}

// HasReceivedMessage reports whether the session has decrypted a message.
func (s *Session) HasReceivedMessage() bool { return C.olm_session_has_received_message(s.ptr) != 0 }

// EncryptMessageType is the type of the next message Encrypt will produce.
func (s *Session) EncryptMessageType() int { return int(C.olm_encrypt_message_type(s.ptr)) }

// EncryptRandomLength is the number of random bytes the next Encrypt needs
// (0, or EncryptRandomLength when a new ratchet key is due).
func (s *Session) EncryptRandomLength() int { return int(C.olm_encrypt_random_length(s.ptr)) }

// Encrypt encrypts plaintext. random must be exactly EncryptRandomLength()
// bytes long (it may be nil when that is 0). It returns the message type and
// the base64 message.
func (s *Session) Encrypt(plaintext, random []byte) (msgType int, msg string, err error) {
	if err := checkRandom("encrypt", random, s.EncryptRandomLength()); err != nil {
		return 0, "", err
	}
	msgType = s.EncryptMessageType()
	p, r := cBytes(plaintext), cBytes(random)
	defer p.free()
	defer r.free()
	n := C.olm_encrypt_message_length(s.ptr, p.n)
	out := cAlloc(int(n))
	defer out.free()
	res := C.olm_encrypt(s.ptr, p.p, p.n, r.p, r.n, out.p, n)
	if failed(res) {
		return 0, "", s.err("encrypt")
	}
	return msgType, string(out.bytes(res)), nil
}

// Decrypt decrypts a base64 message of the given type.
func (s *Session) Decrypt(msgType int, msg string) ([]byte, error) {
	m := cB64(msg)
	n := C.olm_decrypt_max_plaintext_length(s.ptr, C.size_t(msgType), m.p, m.n)
	m.free()
	if failed(n) {
		return nil, s.err("decrypt")
	}
	m = cB64(msg)
	defer m.free()
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_decrypt(s.ptr, C.size_t(msgType), m.p, m.n, out.p, n)
	if failed(r) {
		return nil, s.err("decrypt")
	}
	return out.bytes(r), nil
}

// MatchesInbound reports whether a pre-key message (base64) belongs to
// this session.
func (s *Session) MatchesInbound(preKeyMessage string) (bool, error) {
	m := cB64(preKeyMessage)
	defer m.free()
	r := C.olm_matches_inbound_session(s.ptr, m.p, m.n)
	if failed(r) {
		return false, s.err("matches inbound session")
	}
	return r == 1, nil
}

// MatchesInboundFrom is MatchesInbound that also checks the sender's
// identity key.
func (s *Session) MatchesInboundFrom(theirIdentityKey, preKeyMessage string) (bool, error) {
	ik, m := cB64(theirIdentityKey), cB64(preKeyMessage)
	defer ik.free()
	defer m.free()
	r := C.olm_matches_inbound_session_from(s.ptr, ik.p, ik.n, m.p, m.n)
	if failed(r) {
		return false, s.err("matches inbound session from")
	}
	return r == 1, nil
}
