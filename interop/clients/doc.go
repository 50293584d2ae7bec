// Package clients drives real third-party Matrix clients against a myelind
// homeserver started by the tests:
//
//   - mautrix-go v0.32.0 with its goolm crypto (registered over the default
//     libolm driver in an init function) and in-memory stores;
//   - matrix-nio (Debian's python3-matrix-nio with python3-olm), through
//     nio/driver.py;
//   - matrix-js-sdk (Element Web's SDK) with its rust crypto in Node, through
//     jssdk/driver.mjs.
//
// The nio and js-sdk drivers speak the same protocol: JSON commands on stdin
// ({"id": 1, "cmd": "send", "room": ..., "body": ...}), JSON replies and
// events ({"event": "message", ...}) on stdout.
//
// The package holds only tests. TestMain builds myelind once; each test
// starts it on a free 127.0.0.1 port with a fresh data directory and puts a
// recording reverse proxy in front of it, so that a failing test prints the
// HTTP exchanges (passwords redacted) and the server log. Every scenario also
// checks that no message body reached the server in plaintext.
//
// Scenarios: registration and login, encrypted rooms (m.room.encryption in
// initial_state), invite and join, encrypted messages both ways, a second
// device that decrypts new messages, mautrix-go, nio and js-sdk in one room,
// a mautrix-go restart as the same device, and Element's secure-backup
// set-up (cross-signing, secret storage, key backup) with a restore on a new
// device. See https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
//
// Install the client dependencies with scripts/install-client-deps.sh. Set
// MYELIND_BIN to test a prebuilt myelind instead of building one, and
// CLIENTS_DUMP=1 to print the HTTP exchanges of passing tests too.
package clients
