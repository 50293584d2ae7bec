// Package recovery is the key-backup, secret-storage and secret-sharing logic
// of myelin's E2EE client: pure functions and small state machines over JSON
// in and JSON out. The caller (the client, driving the e2ee machine) does the
// HTTP requests and persistence; this package does no I/O and keeps no state
// beyond what it returns.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups,
// https://spec.matrix.org/v1.16/client-server-api/#secrets,
// https://spec.matrix.org/v1.16/client-server-api/#sharing,
// https://spec.matrix.org/v1.16/client-server-api/#cross-signing.
package recovery
