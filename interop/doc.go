// Package interop holds myelin's interoperability tests and side-by-side
// benchmarks against the reference implementations: libolm 3.2.13 (through
// the cgo binding in [myelin/interop/libolm]) and goolm
// (maunium.net/go/mautrix/crypto/goolm).
//
// It is a separate Go module so that the product module never links cgo nor
// depends on mautrix. libolm is used only as a test oracle: it is deprecated
// upstream and must never be linked into myelin itself. Run the tests with
// `make test-interop` (installs libolm-dev first) and the benchmarks with
// `make bench` (scripts/bench.sh; benchstat, one column per implementation).
//
// What the tests cover (all in _test.go files):
//   - impl_test.go, myelin_impl_test.go: one interface over the three
//     implementations, in libolm's base64 encoding;
//   - olm_test.go, megolm_test.go: every ordered pair of implementations
//     (myelin<->libolm, myelin<->goolm, and the oracle with itself):
//     session setup, long conversations, reordering within the limits
//     (40 skipped keys, gap 2000, gap 2001 rejected), pre-key matching,
//     fallback keys, tampering; Megolm keys shared (0x02) and exported
//     (0x01) by one side and imported by the other;
//   - equality_test.go, vectors_test.go: myelin and libolm fed the same
//     random bytes produce identical keys, key IDs, signatures, messages,
//     session IDs and Megolm session keys and exports;
//   - bench_test.go, floor_test.go: the benchmarks and the primitive floor.
//
// The Olm and Megolm specifications are at
// https://spec.matrix.org/v1.16/olm-megolm/olm/ and
// https://spec.matrix.org/v1.16/olm-megolm/megolm/; the end-to-end
// encryption module is
// https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption.
package interop
