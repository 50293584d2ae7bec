package storage

import (
	"context"
	"encoding/json"
	"errors"
)

// Sentinel errors returned by every engine.
var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrExists means a row with the same unique key exists already.
	ErrExists = errors.New("storage: already exists")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("storage: closed")
)

// User is a local account.
type User struct {
	UserID       string
	PasswordHash string // PHC string (argon2id); empty means no password login
	DisplayName  string
	AvatarURL    string
	Deactivated  bool
	CreatedTS    int64
}

// Device is one login session of a user.
type Device struct {
	UserID      string
	DeviceID    string
	DisplayName string
	LastSeenIP  string
	LastSeenTS  int64
	CreatedTS   int64
}

// Session is what an access token resolves to.
type Session struct {
	UserID   string
	DeviceID string
}

// Accounts stores users, devices and access tokens. Access tokens are stored
// only as hashes: the engine never sees a token itself.
type Accounts interface {
	// CreateUser creates u and, when dev is non-nil, a device with an access
	// token hash, in one transaction. ErrExists if the user exists.
	CreateUser(ctx context.Context, u User, dev *Device, tokenHash []byte) error
	// User returns a user or ErrNotFound.
	User(ctx context.Context, userID string) (User, error)
	// SetPasswordHash replaces the user's password hash.
	SetPasswordHash(ctx context.Context, userID, hash string) error
	// Deactivate marks a user deactivated and removes their password hash.
	Deactivate(ctx context.Context, userID string) error
	// SetProfile updates the display name and/or avatar URL (nil leaves a field as is).
	SetProfile(ctx context.Context, userID string, displayName, avatarURL *string) error
	// Login creates the device if it does not exist (keeping an existing one and
	// its keys), removes the device's previous access tokens, and stores tokenHash.
	Login(ctx context.Context, dev Device, tokenHash []byte) error
	// SessionByToken resolves an access-token hash, or ErrNotFound.
	SessionByToken(ctx context.Context, tokenHash []byte) (Session, error)
	// Devices lists a user's devices.
	Devices(ctx context.Context, userID string) ([]Device, error)
	// Device returns one device or ErrNotFound.
	Device(ctx context.Context, userID, deviceID string) (Device, error)
	// RenameDevice sets a device's display name, or ErrNotFound.
	RenameDevice(ctx context.Context, userID, deviceID, name string) error
	// DeleteDevices deletes devices with their tokens and everything attached to them
	// (engines run their device-deletion hooks in the same transaction).
	// deviceIDs nil means all devices of the user.
	DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error
	// TouchDevice records last-seen information (best effort, may be batched).
	TouchDevice(ctx context.Context, userID, deviceID, ip string, ts int64)
}

// AccountDataItem is one account-data entry; RoomID is empty for global data.
type AccountDataItem struct {
	RoomID  string
	Type    string
	Content json.RawMessage
	Pos     int64
}

// AccountData stores per-user global and per-room account data.
type AccountData interface {
	// PutAccountData stores content and returns its stream position.
	PutAccountData(ctx context.Context, userID, roomID, typ string, content json.RawMessage) (int64, error)
	// AccountData returns one entry or ErrNotFound.
	AccountData(ctx context.Context, userID, roomID, typ string) (json.RawMessage, error)
	// AccountDataRange returns entries changed in (from, to]; from 0 means all.
	AccountDataRange(ctx context.Context, userID string, from, to int64) ([]AccountDataItem, error)
}

// Filters stores sync filters.
type Filters interface {
	// PutFilter stores a filter and returns its ID.
	PutFilter(ctx context.Context, userID string, filter json.RawMessage) (string, error)
	// Filter returns a stored filter or ErrNotFound.
	Filter(ctx context.Context, userID, filterID string) (json.RawMessage, error)
}

// TxnKey identifies a client transaction: (user, device, method+path).
type TxnKey struct {
	UserID   string
	DeviceID string
	Path     string
}

// TxnResult is the stored response to a client transaction.
type TxnResult struct {
	Status int
	Body   json.RawMessage
}

// Txns looks up stored transaction results (writes happen inside the
// transaction that performs the request, so that the effect and its record
// commit together).
type Txns interface {
	// Txn returns the stored result, or ErrNotFound.
	Txn(ctx context.Context, k TxnKey) (TxnResult, error)
}

// Position reports the latest committed stream position.
type Position interface {
	// Pos returns the highest stream position whose writes are committed.
	Pos() int64
}
