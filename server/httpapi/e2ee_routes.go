package httpapi

// This file is a stub for the e2ee-endpoints helper, who takes it over (with
// every other e2ee*.go file of this package). registerE2EE is called once from
// New, after the core routes exist; register routes with s.client / s.clientV1
// (authRequired gives the caller through mustSession(r)), use s.checkUIA for the
// conditional UIA of /keys/device_signing/upload, and return the hooks below.
// Dependencies: s.cfg.E2EE (storage.E2EE), s.store (storage.Store: devices,
// rooms), s.notifier (*sync.Notifier: Wake(pos, users, all)), s.log. Handlers
// return (body, error); an *api.Error becomes its status and JSON body.
// The sqlite engine calls hooks registered with (*sqlite.Store).OnDeviceDelete
// inside the transaction that deletes devices (logout, DELETE /devices).

import (
	"context"

	"myelin/server/sync"
)

// e2eeHooks is what the E2EE endpoints give the rest of the server.
type e2eeHooks struct {
	// sync supplies to_device, device_lists, one-time-key counts and unused
	// fallback key types for /sync; nil means nothing to report.
	sync sync.E2EESource
	// crossSigningKeyIDs returns the public keys (unpadded base64, no
	// "ed25519:" prefix) of a user's cross-signing keys; login and register
	// refuse a device ID equal to one of them. nil means none.
	crossSigningKeyIDs func(ctx context.Context, userID string) ([]string, error)
}

// registerE2EE registers the E2EE endpoints and returns their hooks.
func (s *Server) registerE2EE() e2eeHooks { return e2eeHooks{} }
