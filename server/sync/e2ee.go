package sync

import (
	"context"
	"encoding/json"
)

// E2EERequest describes the device a /sync response is for.
type E2EERequest struct {
	UserID   string
	DeviceID string
	// Since and Upto bound the global stream range (Since, Upto]; Since is 0
	// on an initial sync.
	Since, Upto int64
	// Initial is true when the request had no since token.
	Initial bool
	// ToDeviceSince is the last to-device message ID the device has received:
	// messages up to and including it are acknowledged and may be deleted.
	ToDeviceSince int64
	// SharedUsers are the users who currently share a joined room with the
	// caller (the caller included).
	SharedUsers []string
}

// E2EEResponse is the E2EE part of a /sync response.
type E2EEResponse struct {
	// ToDevice holds pending to-device events, oldest first (at most ~100).
	ToDevice []json.RawMessage
	// ToDeviceNext is the ID of the last message in ToDevice (or
	// ToDeviceSince if none), carried in next_batch.
	ToDeviceNext int64
	// Changed lists users whose device list or cross-signing keys changed in
	// (Since, Upto] (incremental syncs only).
	Changed []string
	// Left lists users who no longer share a room with the caller, if the
	// source tracks it (the HTTP layer adds membership-derived entries).
	Left []string
	// OneTimeKeyCounts maps algorithm to the number of unclaimed one-time keys.
	OneTimeKeyCounts map[string]int
	// UnusedFallbackKeyTypes lists algorithms with an unused fallback key.
	UnusedFallbackKeyTypes []string
}

// E2EESource supplies the E2EE parts of /sync; server/keys implements it.
type E2EESource interface {
	SyncE2EE(ctx context.Context, req E2EERequest) (E2EEResponse, error)
}

// NoE2EE is an [E2EESource] that has nothing to report.
type NoE2EE struct{}

// SyncE2EE implements E2EESource.
func (NoE2EE) SyncE2EE(ctx context.Context, req E2EERequest) (E2EEResponse, error) {
	return E2EEResponse{ToDeviceNext: req.ToDeviceSince}, nil
}
