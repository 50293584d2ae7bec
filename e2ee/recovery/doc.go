// Package recovery is the key-backup, secret-storage and secret-sharing logic
// of myelin's E2EE client: pure functions and small state machines over JSON
// in and JSON out. The caller (the client, driving the e2ee machine) does the
// HTTP requests and the persistence; this package does no I/O, reads no
// clock, and its randomness is an io.Reader argument.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups,
// https://spec.matrix.org/v1.16/client-server-api/#storage,
// https://spec.matrix.org/v1.16/client-server-api/#sharing,
// https://spec.matrix.org/v1.16/client-server-api/#cross-signing.
// Threat model: docs/threat-model.md, attacks A5, A6, B7, B8 and B16.
//
// # Key backup
//
//   - CreateBackupVersion generates a backup key and auth_data signed by our
//     master key and our device; NewBackupVersion.RequestBody is the body of
//     POST /room_keys/version.
//   - TrustBackupVersion judges GET /room_keys/version: trusted only when
//     auth_data carries a valid signature by our trusted master key or one of
//     our own cross-signed devices, and the key we hold (if any) matches.
//     Otherwise *UntrustedBackupVersionError with a typed UntrustReason.
//     TrustedVersion.Changed flags a new version or key.
//   - TrustedVersion.EncryptSession makes a PUT /room_keys/keys entry from a
//     SessionExport, with the MSC4048 MAC; UploadBody assembles the body.
//     Only a TrustedVersion can be uploaded to.
//   - Restore / RestoreRoom decrypt GET /room_keys/keys bodies. Each
//     RestoredSession has a backup.Provenance: Authenticated (written by a
//     holder of the backup key, i.e. by us: the sender keys are the session's
//     original provenance) or Unauthenticated (anyone who knows the public
//     key could have written it; the machine must show "from backup,
//     unauthenticated"). Bad entries are refused one by one (*EntryError).
//
// # Secret storage
//
//   - OpenSecretStorage finds the default key and checks it against the Pin
//     this device remembers (*KeyDescriptionChangedError on any change);
//     LockedStorage unlocks with a recovery key or passphrase (key check
//     required, PBKDF2 floor; package crypto/ssss); UnlockedStorage.Pin is
//     what to remember.
//   - NewBootstrap creates the cross-signing keys, a secret-storage key
//     (optionally from a passphrase), a backup version, and returns every
//     upload: DeviceSigningUpload, SignaturesUpload, AccountData (key
//     description, default key, the four secrets).
//   - Recover decrypts the cross-signing keys and backup key and checks each
//     against Published (PublishedFromKeysQuery plus the trusted backup
//     version) before returning any: *SecretError names the secret that
//     failed.
//
// # Secret sharing
//
//   - SecretRequests.Request addresses m.secret.request to our own
//     cross-signed devices only; SecretRequests.Accept takes an m.secret.send
//     only over Olm, from our user, from a device we asked under the
//     Curve25519 key it had then, for an outstanding request, first valid
//     reply only, and only if the secret matches its published public key.
//   - AnswerRequest answers only our own cross-signed, non-dehydrated
//     devices; the answer goes over Olm to that device.
//
// # Rules and tests
//
// Rule numbers are those of the threat model's MUST lists, as far as they
// concern this package. Every test fails if its rule is removed: each check
// was mutated away and the tests run (all mutants killed).
//
//	A5.1a  m.secret.send only via Olm                       TestA5UnsolicitedSecretSendWithServerBackupKey ("not Olm")
//	A5.1b  only for an outstanding request_id we sent       TestA5UnsolicitedSecretSendWithServerBackupKey ("unsolicited ..."), TestRequestTargetsAndBounds
//	A5.1c  from our own cross-signed device, by Curve key   TestA5UnsolicitedSecretSendWithServerBackupKey (injected device, other user, device ID with another Curve25519 key, dehydrated)
//	A5.1d  first valid reply wins                           TestSecretSharingRoundTrip, TestRequestTargetsAndBounds (after Cancel)
//	A5.1   requests and answers only to own cross-signed    TestSecretSharingRoundTrip (targets), TestRequestTargetsAndBounds, TestAnswerRequestRules
//	A5.2   shared backup key used only if it matches an     TestA5UnsolicitedSecretSendWithServerBackupKey ("kH against the trusted version", "kH with no trusted version")
//	       independently trusted version
//	A5.3   shared cross-signing keys match the published    TestSharedCrossSigningKeyMustMatch
//	A6.1   recovered secrets checked against trusted keys   TestRecoverRefusesMismatchingSecrets ("A6: IV of self_signing swapped", rollbacks, swapped published keys)
//	A6.2   uniform failure: every reason is one *SecretError TestRecoverRefusesMismatchingSecrets (all cases: ErrSecretRejected, nothing returned)
//	       and nothing is recovered (this package does no I/O)
//	A6.3   HKDF info = secret name (crypto/ssss)            TestRecoverRefusesMismatchingSecrets ("secret moved between names")
//	B7.1   upload only to a version signed by our MSK or    TestBackupVersionTrustRefusals (2022 unsigned auth_data, unknown signer, non-cross-signed
//	       a cross-signed own device; re-check on change      own device, dehydrated device, other user, signature over other auth_data,
//	                                                          device ID = master key, key mismatch), TestEncryptSessionRules (forged TrustedVersion),
//	                                                          TestBackupVersionChangeFlagged
//	B7.2   v1 entries restored as unauthenticated           TestRestoreProvenanceAndRefusals (server-injected entry), TestRestoreForeignBackup (mautrix-go entries)
//	B7.3   bad MSC4048 MAC: entry ignored                   TestRestoreProvenanceAndRefusals (copied MAC)
//	B7.4   server's is_verified / forwarded_count ignored   TestRestoreProvenanceAndRefusals (injected entry with is_verified true stays unauthenticated)
//	B7.6   hardened decoder, malformed entry skipped        TestRestoreProvenanceAndRefusals, TestRestoreBounds, FuzzRestore
//	B8.1   key descriptions pinned; changes refused         TestKeyDescriptionChanged, TestPassphraseParamsChanged
//	B8.2   no writes without key check, PBKDF2 floors,      TestPBKDF2Floors, TestKeyDescriptionChanged ("key check stripped", no pin)
//	       32-character salt for writing
//	B8.3   rollback: valid MAC, wrong public key refused    TestRecoverRefusesMismatchingSecrets ("rolled back")
//	B8.4   secret sharing as A5.1                           see A5.1
//	B8.5   default key switched: no silent migration, the   TestKeyDescriptionChanged ("default key pointed at the server's key", old key refused after confirm)
//	       new key must be unlocked with its own key
//	B16    dehydrated devices: no secrets to them, none      TestAnswerRequestRules ("dehydrated device"), TestA5UnsolicitedSecretSendWithServerBackupKey
//	       from them, they do not vouch for backups           ("from a dehydrated device"), TestBackupVersionTrustRefusals ("own dehydrated device")
//
// Not here (the caller's job): the B7.1 alert and pause of uploads when
// TrustedVersion.Changed is set, B7.5 (m.key_backup changes), B8.1's alert
// and persisting the Pin, A6.2's identical network behaviour (the caller
// must not retry or request differently after a *SecretError).
package recovery
