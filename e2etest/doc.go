// Package e2etest holds scenario tests: several myelin clients (package
// client) against a real myelind (server/httpapi on SQLite, in-process on
// 127.0.0.1) exchanging end-to-end-encrypted messages, with joins, leaves,
// key rotation, offline devices catching up, and the provenance every
// decrypted message must carry.
//
// The package has only tests; run them with `go test ./e2etest`.
package e2etest
