// Package verify holds interoperability tests of myelin's verification and
// key-backup flows against mautrix-go: SAS verification
// (https://spec.matrix.org/v1.16/client-server-api/#short-authentication-string-sas-verification)
// between myelin's e2ee/verification machine and mautrix-go's
// crypto/verificationhelper, and server-side key backup
// (https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups)
// written by one side and restored by the other through myelin's
// e2ee/recovery and mautrix-go's crypto/backup and OlmMachine import path.
//
// The package has no non-test code; run it with go test from the interop
// module.
package verify
