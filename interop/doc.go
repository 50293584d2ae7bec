// Package interop holds myelin's interoperability tests and side-by-side
// benchmarks against the reference implementations: libolm 3.2.13 (through
// the cgo binding in [myelin/interop/libolm]) and goolm
// (maunium.net/go/mautrix/crypto/goolm).
//
// It is a separate Go module so that the product module never links cgo nor
// depends on mautrix. libolm is used only as a test oracle: it is deprecated
// upstream and must never be linked into myelin itself.
//
// The Olm and Megolm specifications are at
// https://spec.matrix.org/v1.16/olm-megolm/olm/ and
// https://spec.matrix.org/v1.16/olm-megolm/megolm/; the end-to-end
// encryption module is
// https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption.
package interop
