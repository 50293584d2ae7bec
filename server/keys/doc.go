// Package keys is the homeserver side of end-to-end encryption: device keys,
// one-time and fallback keys, cross-signing keys and signatures, send-to-device
// messages, device-list tracking and server-side key backups.
//
// The server is untrusted transport and storage: it stores what clients upload
// as opaque JSON and hands it out again, so it never imports the code that
// decrypts. It validates only the shape of uploads (and that a device uploads
// keys for itself), and the signatures the spec requires it to check
// (self-signing and user-signing keys signed by the master key, signatures
// uploaded through /keys/signatures/upload). Clients verify everything again.
//
// Use [New] to build a [Service] over a [storage.E2EE] and the small
// interfaces it needs from the rest of the server ([Devices], [Rooms],
// [Notifier]). server/httpapi turns requests into calls on the Service, and
// server/sync calls [Service.Sync] for the E2EE fields of /sync.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption,
// https://spec.matrix.org/v1.16/client-server-api/#send-to-device-messaging and
// https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups.
package keys
