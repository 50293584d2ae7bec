package libolm

// #cgo LDFLAGS: -lolm
// #include <stdlib.h>
// #include <string.h>
// #include <olm/olm.h>
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// Random input lengths of libolm 3.2.13 (checked at init against the
// library's own *_random_length functions where it has one).
const (
	AccountRandomLength              = 64  // [0:32] Ed25519 seed, [32:64] Curve25519 private
	OneTimeKeyRandomLength           = 32  // per key
	FallbackKeyRandomLength          = 32  // raw X25519 private
	OutboundSessionRandomLength      = 64  // [0:32] base key, [32:64] first ratchet key
	EncryptRandomLength              = 32  // when a new ratchet key is needed, else 0
	OutboundGroupSessionRandomLength = 160 // [0:128] ratchet, [128:160] Ed25519 seed
	SASRandomLength                  = 32  // ephemeral X25519 private
	PKEncryptRandomLength            = 32  // ephemeral X25519 private
	PKPrivateKeyLength               = 32
	PKSigningSeedLength              = 32
)

// Message types of Olm messages, as libolm numbers them.
const (
	MessageTypePreKey = 0
	MessageTypeNormal = 1
)

// ErrLibolm is matched (errors.Is) by every *Error.
var ErrLibolm = errors.New("libolm: error")

// Error is a failure reported by libolm: Op is the Go method and Code the
// string of libolm's last_error (for example "BAD_MESSAGE_MAC").
type Error struct {
	Op   string
	Code string
}

// Error returns "libolm: <op>: <code>".
func (e *Error) Error() string { return "libolm: " + e.Op + ": " + e.Code }

// Is reports whether target is ErrLibolm.
func (e *Error) Is(target error) bool { return target == ErrLibolm }

// HasCode reports whether err is a libolm *Error with the given code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

func failed(r C.size_t) bool { return r == C.olm_error() }

func newError(op string, s *C.char) error { return &Error{Op: op, Code: C.GoString(s)} }

// Version returns libolm's version numbers.
func Version() (major, minor, patch uint8) {
	var a, b, c C.uint8_t
	C.olm_get_library_version(&a, &b, &c)
	return uint8(a), uint8(b), uint8(c)
}

// cbuf is a C-allocated buffer, wiped on free.
type cbuf struct {
	p unsafe.Pointer
	n C.size_t
}

func cAlloc(n int) cbuf {
	m := n
	if m == 0 {
		m = 1
	}
	p := C.malloc(C.size_t(m))
	if p == nil {
		panic("libolm: out of memory")
	}
	C.memset(p, 0, C.size_t(m))
	return cbuf{p, C.size_t(n)}
}

func cBytes(b []byte) cbuf {
	c := cAlloc(len(b))
	if len(b) > 0 {
		C.memcpy(c.p, unsafe.Pointer(&b[0]), C.size_t(len(b)))
	}
	return c
}

func cString(s string) cbuf { return cBytes([]byte(s)) }

// cB64 copies a base64 string to C memory without padding.
func cB64(s string) cbuf { return cString(strings.TrimRight(s, "=")) }

func (c cbuf) u8() *C.uint8_t { return (*C.uint8_t)(c.p) }

func (c cbuf) bytes(n C.size_t) []byte { return C.GoBytes(c.p, C.int(n)) }

func (c cbuf) free() {
	if c.p != nil {
		C.memset(c.p, 0, max(c.n, 1))
		C.free(c.p)
	}
}

// object is C memory holding one libolm object of the given size.
func allocObject(size C.size_t) unsafe.Pointer {
	p := C.malloc(size)
	if p == nil {
		panic("libolm: out of memory")
	}
	return p
}

func freeObject(p unsafe.Pointer, size C.size_t) {
	C.memset(p, 0, size)
	C.free(p)
}

func checkRandom(op string, random []byte, want int) error {
	if len(random) != want {
		return fmt.Errorf("libolm: %s: need %d random bytes, got %d", op, want, len(random))
	}
	return nil
}

// Ed25519Verify checks an Ed25519 signature (base64) by key (base64) on msg
// with libolm's olm_ed25519_verify.
func Ed25519Verify(key string, msg []byte, signature string) error {
	mem := allocObject(C.olm_utility_size())
	u := C.olm_utility(mem)
	defer freeObject(mem, C.olm_utility_size())
	defer C.olm_clear_utility(u)
	k, m, s := cB64(key), cBytes(msg), cB64(signature)
	defer k.free()
	defer m.free()
	defer s.free()
	if failed(C.olm_ed25519_verify(u, k.p, k.n, m.p, m.n, s.p, s.n)) {
		return newError("ed25519 verify", C.olm_utility_last_error(u))
	}
	return nil
}

// SHA256 returns the unpadded base64 SHA-256 of input, computed by libolm.
func SHA256(input []byte) (string, error) {
	mem := allocObject(C.olm_utility_size())
	u := C.olm_utility(mem)
	defer freeObject(mem, C.olm_utility_size())
	defer C.olm_clear_utility(u)
	in := cBytes(input)
	defer in.free()
	n := C.olm_sha256_length(u)
	out := cAlloc(int(n))
	defer out.free()
	if failed(C.olm_sha256(u, in.p, in.n, out.p, n)) {
		return "", newError("sha256", C.olm_utility_last_error(u))
	}
	return string(out.bytes(n)), nil
}
