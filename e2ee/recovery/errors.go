package recovery

import (
	"errors"
	"fmt"
)

// Sentinel errors. Detailed failures are struct types that unwrap to one of
// these (errors.Is) and to a more specific reason where there is one.
var (
	// ErrUntrustedBackupVersion reports a backup version this device must not
	// upload to or activate a key for (see *UntrustedBackupVersionError).
	ErrUntrustedBackupVersion = errors.New("recovery: untrusted backup version")
	// ErrEntryRefused reports a backup entry that restore skipped (see
	// *EntryError).
	ErrEntryRefused = errors.New("recovery: backup entry refused")
	// ErrSessionIDMismatch reports a backup entry or session export whose
	// session ID differs from the ID of the exported session key it holds.
	ErrSessionIDMismatch = errors.New("recovery: session ID does not match the session key")
	// ErrTooLarge reports input over one of this package's size bounds.
	ErrTooLarge = errors.New("recovery: input too large")
	// ErrMalformed reports JSON that does not have the expected shape.
	ErrMalformed = errors.New("recovery: malformed input")
	// ErrKeyDescriptionChanged reports that the default secret-storage key
	// or its description differs from what this device pinned (see
	// *KeyDescriptionChangedError).
	ErrKeyDescriptionChanged = errors.New("recovery: secret storage key description changed")
	// ErrNoDefaultKey reports account data without m.secret_storage.default_key
	// or without the description it names.
	ErrNoDefaultKey = errors.New("recovery: no default secret storage key")
	// ErrSecretRejected reports a secret that was not used (see
	// *SecretError): missing, failing its MAC, undecodable or not matching
	// the trusted public key.
	ErrSecretRejected = errors.New("recovery: secret rejected")
	// ErrSecretMismatch reports a decrypted secret whose public key differs
	// from the trusted published one (a rolled-back, swapped or IV-tampered
	// secret: threat model A6, B8).
	ErrSecretMismatch = errors.New("recovery: secret does not match the published public key")
	// ErrSecretMissing reports a secret that is not in account data, or not
	// encrypted under the key that was unlocked.
	ErrSecretMissing = errors.New("recovery: secret missing")
	// ErrNoTrustedPublicKey reports a secret for which no trusted public key
	// is known, so it cannot be checked and is not used.
	ErrNoTrustedPublicKey = errors.New("recovery: no trusted public key to check the secret against")
	// ErrSecretSharing reports a refused m.secret.request or m.secret.send
	// (see *SharingError).
	ErrSecretSharing = errors.New("recovery: secret sharing refused")
	// ErrNoTrustedDevice reports a secret request with no own cross-signed
	// device to send it to.
	ErrNoTrustedDevice = errors.New("recovery: no own cross-signed device")
	// ErrInvalidArgument reports a caller mistake (missing key, zero ID).
	ErrInvalidArgument = errors.New("recovery: invalid argument")
)

// UntrustReason says why a backup version is not trusted.
type UntrustReason string

// Reasons for *UntrustedBackupVersionError.
const (
	// ReasonMalformed: the version response or its auth_data does not parse.
	ReasonMalformed UntrustReason = "malformed"
	// ReasonUnsupportedAlgorithm: the algorithm is not
	// m.megolm_backup.v1.curve25519-aes-sha2.
	ReasonUnsupportedAlgorithm UntrustReason = "unsupported_algorithm"
	// ReasonUnsigned: auth_data carries no signature by our user.
	ReasonUnsigned UntrustReason = "unsigned"
	// ReasonUnknownSigner: auth_data is signed only by keys that are neither
	// our trusted master key nor one of our own cross-signed devices.
	ReasonUnknownSigner UntrustReason = "unknown_signer"
	// ReasonBadSignature: a signature by a trusted key is present but does
	// not verify over this auth_data (signed over different content).
	ReasonBadSignature UntrustReason = "bad_signature"
	// ReasonKeyMismatch: the backup decryption key we hold does not belong to
	// auth_data.public_key.
	ReasonKeyMismatch UntrustReason = "key_mismatch"
	// ReasonNoTrustRoot: the caller gave neither a trusted master key nor a
	// trusted device, so nothing can vouch for the version.
	ReasonNoTrustRoot UntrustReason = "no_trust_root"
)

// UntrustedBackupVersionError is the typed refusal of a backup version.
type UntrustedBackupVersionError struct {
	Version string // the version string the server gave (may be empty)
	Reason  UntrustReason
	Cause   error // detail, may be nil
}

// Error implements the error interface.
func (e *UntrustedBackupVersionError) Error() string {
	s := fmt.Sprintf("recovery: untrusted backup version %q: %s", e.Version, e.Reason)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns ErrUntrustedBackupVersion and the cause.
func (e *UntrustedBackupVersionError) Unwrap() []error {
	return []error{ErrUntrustedBackupVersion, e.Cause}
}

// EntryError says why one backup entry was skipped on restore.
type EntryError struct {
	RoomID    string
	SessionID string
	Reason    error // ErrSessionIDMismatch, ErrMalformed, ErrTooLarge or a backup.Err*
}

// Error implements the error interface.
func (e *EntryError) Error() string {
	return fmt.Sprintf("recovery: backup entry %s/%s refused: %v", e.RoomID, e.SessionID, e.Reason)
}

// Unwrap returns ErrEntryRefused and the reason.
func (e *EntryError) Unwrap() []error { return []error{ErrEntryRefused, e.Reason} }

// ChangeKind says what changed in secret storage.
type ChangeKind string

// Kinds of *KeyDescriptionChangedError.
const (
	// DefaultKeyChanged: m.secret_storage.default_key names another key ID.
	DefaultKeyChanged ChangeKind = "default_key"
	// DescriptionChanged: the pinned key's description differs (algorithm,
	// passphrase parameters, key check, name).
	DescriptionChanged ChangeKind = "description"
)

// KeyDescriptionChangedError reports a change of the default secret-storage
// key or of its description since it was pinned. The caller must alert
// the user (threat model B8 ALERT(ssss_changed)) and may proceed only after
// the user confirms, by unlocking the new key with its own recovery key or
// passphrase (OpenSecretStorage with a nil pin).
type KeyDescriptionChangedError struct {
	Kind        ChangeKind
	PinnedKeyID string
	KeyID       string // the key ID the account data names now
}

// Error implements the error interface.
func (e *KeyDescriptionChangedError) Error() string {
	return fmt.Sprintf("recovery: secret storage %s changed (pinned key %q, now %q)", e.Kind, e.PinnedKeyID, e.KeyID)
}

// Unwrap returns ErrKeyDescriptionChanged.
func (e *KeyDescriptionChangedError) Unwrap() error { return ErrKeyDescriptionChanged }

// SecretError names a secret that was rejected and why. On recovery, every
// reason (missing, MAC failure, bad encoding, mismatch) leads to the same
// outcome: nothing recovered is used (threat model A6 rule 2).
type SecretError struct {
	Name   string // the secret name, e.g. m.cross_signing.self_signing
	Reason error  // ErrSecretMismatch, ErrSecretMissing, ErrNoTrustedPublicKey, ssss.Err*
}

// Error implements the error interface.
func (e *SecretError) Error() string {
	return fmt.Sprintf("recovery: secret %s rejected: %v", e.Name, e.Reason)
}

// Unwrap returns ErrSecretRejected and the reason.
func (e *SecretError) Unwrap() []error { return []error{ErrSecretRejected, e.Reason} }

// SharingReason says why a secret-sharing message was refused.
type SharingReason string

// Reasons for *SharingError.
const (
	SharingNotOlm           SharingReason = "not_olm"           // m.secret.send not Olm-authenticated
	SharingOtherUser        SharingReason = "other_user"        // sender is not our user
	SharingUnsolicited      SharingReason = "unsolicited"       // no outstanding request with that ID
	SharingWrongDevice      SharingReason = "wrong_device"      // not a device we asked, or its Curve25519 key differs
	SharingAlreadyAnswered  SharingReason = "already_answered"  // a valid reply was accepted before
	SharingUntrustedDevice  SharingReason = "untrusted_device"  // requester not our own cross-signed device
	SharingDehydratedDevice SharingReason = "dehydrated_device" // the device is a dehydrated device
	SharingOwnDevice        SharingReason = "own_device"        // a request from this very device
	SharingUnknownSecret    SharingReason = "unknown_secret"    // a secret name we do not share
	SharingSecretMismatch   SharingReason = "secret_mismatch"   // secret does not match the published public key
	SharingMalformed        SharingReason = "malformed"         // content does not parse
	SharingNotARequest      SharingReason = "not_a_request"     // action other than "request"
	SharingNotHeld          SharingReason = "not_held"          // we do not hold the secret asked for
	SharingNoTrustedKey     SharingReason = "no_trusted_key"    // nothing trusted to check the secret against
)

// SharingError is the typed refusal of a secret-sharing message.
type SharingError struct {
	Reason    SharingReason
	RequestID string
	Cause     error // detail, may be nil
}

// Error implements the error interface.
func (e *SharingError) Error() string {
	s := fmt.Sprintf("recovery: secret sharing refused (request %q): %s", e.RequestID, e.Reason)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns ErrSecretSharing and the cause.
func (e *SharingError) Unwrap() []error { return []error{ErrSecretSharing, e.Cause} }
