// Package verify holds interoperability tests of myelin's verification and
// key-backup flows against mautrix-go v0.32.0 (goolm crypto):
//
//   - SAS verification
//     (https://spec.matrix.org/v1.16/client-server-api/#short-authentication-string-sas-verification)
//     between myelin's e2ee/verification machine and mautrix-go's
//     crypto/verificationhelper: to-device in every order over mautrix's
//     in-memory mockserver (sas_test.go, sas_negative_test.go), to-device in
//     both directions over a real myelind with myelin's client.Verifier
//     (myelind_test.go), and in-room (inroom_test.go);
//   - server-side key backup
//     (https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups)
//     written by one side and restored by the other: mautrix's
//     crypto/backup entries through e2ee/recovery.Restore, myelin's signed
//     version and MSC4048 entries through mautrix's OlmMachine import path
//     (backup_test.go); over myelind, myelin's BootstrapRecovery (secret
//     storage and backup) read by a mautrix device, and mautrix entries
//     uploaded into that backup restored by a recovering myelin device as
//     unauthenticated (backup_net_test.go).
//
// Two mautrix-go v0.32.0 defects are pinned by the tests (they fail, asking
// for an update, once mautrix fixes them): ConfirmSAS compares its own master
// key with the other user's when the other side's MAC arrived first
// (errMautrixOwnMasterKey), and in-room verification events are looked up by
// their own event ID instead of m.relates_to (TestSASInRoomWithMautrix).
//
// The package has no non-test code; run it with go test from the interop
// module (-short skips the myelind tests).
package verify
