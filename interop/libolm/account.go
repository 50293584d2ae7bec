package libolm

// #include <stdlib.h>
// #include <olm/olm.h>
import "C"

import (
	"encoding/json"
	"fmt"
	"unsafe"
)

// Account is a libolm OlmAccount: identity keys, one-time keys and fallback
// keys of one device.
type Account struct {
	mem unsafe.Pointer
	ptr *C.OlmAccount
}

// NewAccount creates an account from exactly AccountRandomLength random
// bytes ([0:32] Ed25519 seed, [32:64] Curve25519 private key).
func NewAccount(random []byte) (*Account, error) {
	if err := checkRandom("create account", random, AccountRandomLength); err != nil {
		return nil, err
	}
	mem := allocObject(C.olm_account_size())
	a := &Account{mem: mem, ptr: C.olm_account(mem)}
	if n := int(C.olm_create_account_random_length(a.ptr)); n != AccountRandomLength {
		a.Free()
		return nil, fmt.Errorf("libolm: create account: library wants %d random bytes", n)
	}
	r := cBytes(random)
	defer r.free()
	if failed(C.olm_create_account(a.ptr, r.p, r.n)) {
		err := a.err("create account")
		a.Free()
		return nil, err
	}
	return a, nil
}

// Free wipes and releases the account's C memory.
func (a *Account) Free() {
	if a.ptr == nil {
		return
	}
	C.olm_clear_account(a.ptr)
	freeObject(a.mem, C.olm_account_size())
	a.ptr, a.mem = nil, nil
}

func (a *Account) err(op string) error { return newError(op, C.olm_account_last_error(a.ptr)) }

// IdentityKeysJSON returns libolm's identity keys JSON
// ({"curve25519":"…","ed25519":"…"}).
func (a *Account) IdentityKeysJSON() (string, error) {
	n := C.olm_account_identity_keys_length(a.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_account_identity_keys(a.ptr, out.p, n)
	if failed(r) {
		return "", a.err("identity keys")
	}
	return string(out.bytes(r)), nil
}

// IdentityKeys returns the Curve25519 and Ed25519 identity keys (base64).
func (a *Account) IdentityKeys() (curve25519, ed25519 string, err error) {
	s, err := a.IdentityKeysJSON()
	if err != nil {
		return "", "", err
	}
	var k struct {
		Curve25519 string `json:"curve25519"`
		Ed25519    string `json:"ed25519"`
	}
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return "", "", fmt.Errorf("libolm: identity keys: %w", err)
	}
	return k.Curve25519, k.Ed25519, nil
}

// Sign signs msg with the Ed25519 identity key (base64 signature).
func (a *Account) Sign(msg []byte) (string, error) {
	m := cBytes(msg)
	defer m.free()
	n := C.olm_account_signature_length(a.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_account_sign(a.ptr, m.p, m.n, out.p, n)
	if failed(r) {
		return "", a.err("sign")
	}
	return string(out.bytes(r)), nil
}

// GenerateOneTimeKeys makes count new one-time keys from
// count*OneTimeKeyRandomLength random bytes.
func (a *Account) GenerateOneTimeKeys(count int, random []byte) error {
	want := int(C.olm_account_generate_one_time_keys_random_length(a.ptr, C.size_t(count)))
	if err := checkRandom("generate one-time keys", random, want); err != nil {
		return err
	}
	r := cBytes(random)
	defer r.free()
	if failed(C.olm_account_generate_one_time_keys(a.ptr, C.size_t(count), r.p, r.n)) {
		return a.err("generate one-time keys")
	}
	return nil
}

// OneTimeKeysJSON returns libolm's unpublished one-time keys JSON
// ({"curve25519":{"AAAAAQ":"…",…}}).
func (a *Account) OneTimeKeysJSON() (string, error) {
	n := C.olm_account_one_time_keys_length(a.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_account_one_time_keys(a.ptr, out.p, n)
	if failed(r) {
		return "", a.err("one-time keys")
	}
	return string(out.bytes(r)), nil
}

// OneTimeKeys returns the unpublished one-time keys, key ID to base64 key.
func (a *Account) OneTimeKeys() (map[string]string, error) {
	s, err := a.OneTimeKeysJSON()
	if err != nil {
		return nil, err
	}
	return parseKeyMap("one-time keys", s)
}

func parseKeyMap(op, s string) (map[string]string, error) {
	var k struct {
		Curve25519 map[string]string `json:"curve25519"`
	}
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return nil, fmt.Errorf("libolm: %s: %w", op, err)
	}
	if k.Curve25519 == nil {
		k.Curve25519 = map[string]string{}
	}
	return k.Curve25519, nil
}

// MarkKeysAsPublished marks the one-time keys and the fallback key as
// published and returns how many one-time keys were marked.
func (a *Account) MarkKeysAsPublished() int {
	return int(C.olm_account_mark_keys_as_published(a.ptr))
}

// MaxNumberOfOneTimeKeys is the number of one-time keys libolm can hold.
func (a *Account) MaxNumberOfOneTimeKeys() int {
	return int(C.olm_account_max_number_of_one_time_keys(a.ptr))
}

// RemoveOneTimeKeys removes the one-time key used by the inbound session s.
func (a *Account) RemoveOneTimeKeys(s *Session) error {
	if failed(C.olm_remove_one_time_keys(a.ptr, s.ptr)) {
		return a.err("remove one-time keys")
	}
	return nil
}

// GenerateFallbackKey makes a new fallback key from FallbackKeyRandomLength
// random bytes; the previous one is kept as the old fallback key.
func (a *Account) GenerateFallbackKey(random []byte) error {
	want := int(C.olm_account_generate_fallback_key_random_length(a.ptr))
	if err := checkRandom("generate fallback key", random, want); err != nil {
		return err
	}
	r := cBytes(random)
	defer r.free()
	if failed(C.olm_account_generate_fallback_key(a.ptr, r.p, r.n)) {
		return a.err("generate fallback key")
	}
	return nil
}

// UnpublishedFallbackKey returns the current fallback key if it has not
// been marked as published.
func (a *Account) UnpublishedFallbackKey() (id, key string, ok bool, err error) {
	n := C.olm_account_unpublished_fallback_key_length(a.ptr)
	out := cAlloc(int(n))
	defer out.free()
	r := C.olm_account_unpublished_fallback_key(a.ptr, out.p, n)
	if failed(r) {
		return "", "", false, a.err("unpublished fallback key")
	}
	m, err := parseKeyMap("unpublished fallback key", string(out.bytes(r)))
	if err != nil {
		return "", "", false, err
	}
	for id, key := range m {
		return id, key, true, nil
	}
	return "", "", false, nil
}

// ForgetOldFallbackKey drops the private part of the previous fallback key.
func (a *Account) ForgetOldFallbackKey() { C.olm_account_forget_old_fallback_key(a.ptr) }

// NewOutboundSession starts an Olm session to a device with the given
// identity key and one-time (or fallback) key, from
// OutboundSessionRandomLength random bytes.
func (a *Account) NewOutboundSession(theirIdentityKey, theirOneTimeKey string, random []byte) (*Session, error) {
	s := newSession()
	if want := int(C.olm_create_outbound_session_random_length(s.ptr)); len(random) != want {
		s.Free()
		return nil, checkRandom("create outbound session", random, want)
	}
	ik, otk, r := cB64(theirIdentityKey), cB64(theirOneTimeKey), cBytes(random)
	defer ik.free()
	defer otk.free()
	defer r.free()
	if failed(C.olm_create_outbound_session(s.ptr, a.ptr, ik.p, ik.n, otk.p, otk.n, r.p, r.n)) {
		err := s.err("create outbound session")
		s.Free()
		return nil, err
	}
	return s, nil
}

// NewInboundSession creates a session from a pre-key message (base64). It
// does not decrypt the message nor remove the one-time key.
func (a *Account) NewInboundSession(preKeyMessage string) (*Session, error) {
	s := newSession()
	m := cB64(preKeyMessage)
	defer m.free()
	if failed(C.olm_create_inbound_session(s.ptr, a.ptr, m.p, m.n)) {
		err := s.err("create inbound session")
		s.Free()
		return nil, err
	}
	return s, nil
}

// NewInboundSessionFrom is NewInboundSession that also checks the sender's
// identity key.
func (a *Account) NewInboundSessionFrom(theirIdentityKey, preKeyMessage string) (*Session, error) {
	s := newSession()
	ik, m := cB64(theirIdentityKey), cB64(preKeyMessage)
	defer ik.free()
	defer m.free()
	if failed(C.olm_create_inbound_session_from(s.ptr, a.ptr, ik.p, ik.n, m.p, m.n)) {
		err := s.err("create inbound session from")
		s.Free()
		return nil, err
	}
	return s, nil
}
