package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Errors specific to [E2EE].
var (
	// ErrKeyConflict means a one-time key ID was uploaded before with other
	// content (the spec forbids reusing a key ID for a different key).
	ErrKeyConflict = errors.New("storage: key ID already used for a different key")
	// ErrDuplicateTxn means a to-device transaction was processed before;
	// the request is a retransmission and nothing was stored again.
	ErrDuplicateTxn = errors.New("storage: transaction already processed")
)

// WrongBackupVersionError is returned when keys are written to a backup
// version that is not the user's current one.
type WrongBackupVersionError struct {
	Current string // the current version, "" if the user has no backup
}

func (e *WrongBackupVersionError) Error() string {
	return fmt.Sprintf("storage: backup version is not current (current %q)", e.Current)
}

// OneTimeKey is one uploaded one-time or fallback key, stored as received.
type OneTimeKey struct {
	Algorithm string          // e.g. signed_curve25519
	KeyID     string          // the part after "algorithm:"
	JSON      json.RawMessage // the key object (or string) as uploaded
}

// KeyUpload is a validated /keys/upload request of one device.
type KeyUpload struct {
	UserID   string
	DeviceID string
	// DeviceKeys is the signed device-keys object as uploaded; nil if absent.
	DeviceKeys   json.RawMessage
	OneTimeKeys  []OneTimeKey
	FallbackKeys []OneTimeKey
}

// DeviceKeys is a device's stored device-keys object.
type DeviceKeys struct {
	UserID      string
	DeviceID    string
	JSON        json.RawMessage
	DisplayName string // the device's display name (from the accounts store)
}

// KeyClaim asks for one key of an algorithm for a device.
type KeyClaim struct {
	UserID    string
	DeviceID  string
	Algorithm string
}

// ClaimedKey is a key handed out by [E2EE.ClaimKeys].
type ClaimedKey struct {
	UserID    string
	DeviceID  string
	Algorithm string
	KeyID     string
	JSON      json.RawMessage
	Fallback  bool // a fallback key (not consumed, now marked used)
}

// Cross-signing key usages.
const (
	UsageMaster      = "master"
	UsageSelfSigning = "self_signing"
	UsageUserSigning = "user_signing"
)

// CrossSigningKey is one of a user's cross-signing keys as uploaded (without
// signatures added later through /keys/signatures/upload).
type CrossSigningKey struct {
	UserID    string
	Usage     string // UsageMaster, UsageSelfSigning or UsageUserSigning
	PublicKey string // unpadded base64 Ed25519 public key
	JSON      json.RawMessage
}

// KeySignature is one signature uploaded through /keys/signatures/upload on a
// device key or a master key.
type KeySignature struct {
	TargetUserID string // owner of the signed key
	TargetKeyID  string // device ID, or the master key's public key
	SignerUserID string
	SignerKeyID  string // "ed25519:<device ID or public key>"
	Signature    string
}

// DeviceListChange is a recorded change of a user's device list.
type DeviceListChange struct {
	UserID string
	Pos    int64
	// SelfOnly marks changes only the user themself sees (their user-signing
	// key, or their signatures on other users' keys).
	SelfOnly bool
}

// ToDeviceMessage is one message of a sendToDevice request addressed to one
// device, or to all of a user's devices when DeviceID is "*".
type ToDeviceMessage struct {
	UserID   string
	DeviceID string
	Content  json.RawMessage
}

// ToDeviceSend is a validated sendToDevice request.
type ToDeviceSend struct {
	Sender       string
	SenderDevice string
	TxnID        string
	Type         string
	Messages     []ToDeviceMessage
}

// ToDeviceEvent is a queued to-device message for one device.
type ToDeviceEvent struct {
	ID      int64 // per-message ID, increasing in arrival order
	Pos     int64 // stream position of the write that queued it
	Sender  string
	Type    string
	Content json.RawMessage
}

// DeviceSyncState is the per-device E2EE state a /sync response carries.
type DeviceSyncState struct {
	ToDevice               []ToDeviceEvent
	OneTimeKeyCounts       map[string]int
	UnusedFallbackKeyTypes []string
	// AckPending is set when acknowledged messages are still stored.
	AckPending bool
}

// BackupVersion is a key-backup version's metadata.
type BackupVersion struct {
	UserID    string
	Version   string
	Algorithm string
	AuthData  json.RawMessage
	Count     int64
	ETag      string
	Deleted   bool
}

// BackupKey is one backed-up session key.
type BackupKey struct {
	RoomID            string
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       json.RawMessage
}

// BackupCount is the count and etag of a backup version after a write.
type BackupCount struct {
	Count int64
	ETag  string
}

// E2EE is the storage the end-to-end-encryption endpoints need (server/keys).
// Everything is stored as the client sent it: the server cannot verify
// plaintext and never needs to. Writes that change a device list record a
// [DeviceListChange] in the same transaction.
type E2EE interface {
	// UploadKeys stores device keys, one-time keys and fallback keys of one
	// device in one transaction and returns the device's unclaimed one-time
	// key counts per algorithm. New or changed device keys record a device-list
	// change. A one-time key ID seen before with other content fails the whole
	// upload with ErrKeyConflict; an identical re-upload is a no-op. A fallback
	// key replaces the previous one of its algorithm and is unused.
	// The returned changes are the device-list changes recorded.
	UploadKeys(ctx context.Context, u KeyUpload) (map[string]int, []DeviceListChange, error)
	// DeviceKeys returns stored device keys: for each user in query, the listed
	// devices, or all of them when the list is empty.
	DeviceKeys(ctx context.Context, query map[string][]string) ([]DeviceKeys, error)
	// OneTimeKeyCounts returns a device's unclaimed one-time keys per algorithm.
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error)
	// UnusedFallbackKeyTypes returns the algorithms of a device's unused fallback keys.
	UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error)
	// ClaimKeys removes and returns one one-time key per claim (oldest upload
	// first), or else the device's fallback key of that algorithm, which stays
	// stored and is marked used. Claims with no key are left out. All claims
	// run in one transaction, so each one-time key is returned at most once.
	ClaimKeys(ctx context.Context, claims []KeyClaim) ([]ClaimedKey, error)

	// CrossSigningKeys returns the stored cross-signing keys of the users.
	CrossSigningKeys(ctx context.Context, userIDs []string) ([]CrossSigningKey, error)
	// PutCrossSigningKeys stores (replacing by usage) a user's cross-signing
	// keys and records a device-list change (self-only when only the
	// user-signing key changed). A new master key drops the signatures made on
	// the previous one.
	PutCrossSigningKeys(ctx context.Context, userID string, keys []CrossSigningKey) ([]DeviceListChange, error)
	// Signatures returns the uploaded signatures on keys owned by targetUserIDs.
	Signatures(ctx context.Context, targetUserIDs []string) ([]KeySignature, error)
	// PutSignatures stores signatures (replacing one with the same target and
	// signer key) and records device-list changes: for the target user when
	// signing their own keys, self-only for the signer otherwise.
	PutSignatures(ctx context.Context, sigs []KeySignature) ([]DeviceListChange, error)
	// DeviceListChanges returns the changes with from < pos <= to, ascending.
	DeviceListChanges(ctx context.Context, from, to int64) ([]DeviceListChange, error)
	// RecordDeviceListChange records a change of userID's device list (for
	// example a device rename) and returns its position.
	RecordDeviceListChange(ctx context.Context, userID string) (int64, error)

	// SendToDevice queues the messages in one transaction, together with the
	// transaction record (sender, sender device, txn ID), and returns the
	// position of the write. DeviceID "*" stands for all the user's devices;
	// messages to devices that do not exist are dropped. ErrDuplicateTxn if
	// that transaction was processed before.
	SendToDevice(ctx context.Context, s ToDeviceSend) (int64, error)
	// ToDevice deletes the device's messages with ID <= ack (acknowledged by
	// the device's next sync), then returns up to limit queued messages with
	// ID > ack in arrival order.
	ToDevice(ctx context.Context, userID, deviceID string, ack int64, limit int) ([]ToDeviceEvent, error)
	// DeviceSyncState reads, in one query, what /sync needs of a device: up
	// to limit queued to-device messages with ID > ack, the one-time key
	// counts, the unused fallback key types, and whether messages with
	// ID <= ack are still stored (to be deleted with AckToDevice).
	DeviceSyncState(ctx context.Context, userID, deviceID string, ack int64, limit int) (DeviceSyncState, error)
	// AckToDevice deletes the device's messages with ID <= ack.
	AckToDevice(ctx context.Context, userID, deviceID string, ack int64) error
	// HasToDevice reports whether the device has queued messages with ID > ack.
	HasToDevice(ctx context.Context, userID, deviceID string, ack int64) (bool, error)

	// CreateBackupVersion creates a new current backup version and returns it.
	CreateBackupVersion(ctx context.Context, userID, algorithm string, authData json.RawMessage) (string, error)
	// BackupVersion returns a version ("" = the latest not deleted), or
	// ErrNotFound. Deleted versions are returned with Deleted set.
	BackupVersion(ctx context.Context, userID, version string) (BackupVersion, error)
	// UpdateBackupVersion replaces a live version's auth_data, or ErrNotFound.
	UpdateBackupVersion(ctx context.Context, userID, version string, authData json.RawMessage) error
	// DeleteBackupVersion deletes a version and its keys; ErrNotFound if it
	// never existed (deleting a deleted version succeeds).
	DeleteBackupVersion(ctx context.Context, userID, version string) error
	// PutBackupKeys stores keys in the current version, keeping the better of
	// an existing and a new key by the spec's rule. ErrNotFound if the version
	// does not exist, *WrongBackupVersionError if it is not current.
	PutBackupKeys(ctx context.Context, userID, version string, keys []BackupKey) (BackupCount, error)
	// BackupKeys returns stored keys of a live version, filtered by roomID and
	// sessionID when not empty. ErrNotFound if the version does not exist.
	BackupKeys(ctx context.Context, userID, version, roomID, sessionID string) ([]BackupKey, error)
	// DeleteBackupKeys deletes keys of a live version, filtered like BackupKeys.
	DeleteBackupKeys(ctx context.Context, userID, version, roomID, sessionID string) (BackupCount, error)
}

// ReplaceBackupKey reports whether a newly uploaded backup key should replace
// the stored one of the same session (spec "Server-side key backups"): keep
// the verified one, then the lower first_message_index, then the lower
// forwarded_count. Ties keep the stored key.
func ReplaceBackupKey(stored, upload BackupKey) bool {
	if stored.IsVerified != upload.IsVerified {
		return upload.IsVerified
	}
	if stored.FirstMessageIndex != upload.FirstMessageIndex {
		return upload.FirstMessageIndex < stored.FirstMessageIndex
	}
	return upload.ForwardedCount < stored.ForwardedCount
}
