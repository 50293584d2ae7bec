// Package libolm is a small cgo binding to libolm 3.2.13, used only by
// myelin's interoperability tests and benchmarks as a test oracle. It must
// never be imported by the product: libolm is deprecated upstream and the
// product module does not link cgo.
//
// The binding keeps libolm's own encodings: keys, signatures, MACs and
// messages are unpadded standard base64 strings, exactly as libolm reads
// and writes them. Every call that consumes randomness takes it as an
// explicit byte slice so that tests are deterministic; the required lengths
// are those of libolm's *_random_length functions (see the constants below).
//
// libolm decodes some input buffers in place and may overwrite random
// buffers, so every call passes a fresh C copy of its inputs and the
// caller's slices are never modified. Padded base64 input is accepted and
// stripped before it reaches libolm, which rejects padding. Objects hold C
// memory: call Free when done (a cleanup frees forgotten objects too).
//
// Olm: https://spec.matrix.org/v1.16/olm-megolm/olm/
// Megolm: https://spec.matrix.org/v1.16/olm-megolm/megolm/
package libolm
