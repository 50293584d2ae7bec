// Package client is myelin's client SDK: a typed HTTP client for the Matrix
// client-server API (HTTP) and, around the end-to-end-encryption machine of
// package e2ee, a sync loop and a small application API (Client).
//
// Use Register or Login to get a Client, Run it (it syncs with exponential
// backoff until its context ends), and read decrypted events with their
// provenance from Events. CreateEncryptedRoom, Invite, Join, Leave and
// SendText are the actions an application needs; SendText encrypts whenever
// the room is encrypted and the e2ee machine refuses plaintext into a room it
// has once seen encrypted.
//
// Recovery and verification (recovery.go, verify.go): BootstrapRecovery on
// the device that holds the cross-signing keys sets up secret storage under
// a new recovery key and a key backup signed by the master key;
// BackupRoomKeys / AutoBackup upload room keys to it (only to a version our
// master key signed); RecoverWithKey sets up a new device from the recovery
// key (every recovered key checked against the published public keys) and
// restores the backup; DecryptHistory reads a room's history with /messages.
// Verifier runs to-device SAS verification and signs what it proved.
// Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups,
// https://spec.matrix.org/v1.16/client-server-api/#short-authentication-string-sas-verification
//
// The homeserver is untrusted: every response body is size-bounded, errors
// are typed (*MatrixError), and nothing the server returns is believed about
// keys or devices except through the e2ee machine.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/
package client
