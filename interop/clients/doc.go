// Package clients drives real third-party Matrix clients against a myelind
// homeserver started by the tests: mautrix-go (v0.32.0, with its goolm crypto)
// and matrix-nio (Debian's python3-matrix-nio with python3-olm, through the
// driver script in nio/driver.py).
//
// The package holds only tests. Each test builds myelind once per test binary
// (TestMain), starts it on a free 127.0.0.1 port with a fresh data directory,
// and puts a recording reverse proxy in front of it, so that a failing test
// prints the HTTP exchanges that led to the failure.
//
// Scenarios: registration and login, an encrypted room (m.room.encryption in
// initial_state), invite and join, encrypted messages both ways, a second
// device of one user that decrypts new messages, and mautrix-go and nio in one
// room together. See the end-to-end encryption module of the client-server API:
// https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
//
// Install the client dependencies with scripts/install-client-deps.sh. Set
// MYELIND_BIN to test a prebuilt myelind instead of building one, and
// CLIENTS_DUMP=1 to print the HTTP exchanges of passing tests too.
package clients
