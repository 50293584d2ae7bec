package httpapi

// The end-to-end-encryption endpoints: keys, cross-signing, send-to-device,
// key backup. The logic lives in server/keys; this file decodes requests,
// calls it and wires its hooks into /sync, login and device deletion.
// Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"myelin/api"
	"myelin/server/keys"
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
	// deviceChanged records a device-list change of userID made outside the
	// E2EE endpoints (a device renamed: the name is served in /keys/query's
	// unsigned.device_display_name) and wakes the users who must see it.
	// Deletions need no call: the storage hook records them. nil means none.
	deviceChanged func(ctx context.Context, userID string) error
}

// notifierAdapter feeds keys.Service wake-ups into the sync notifier.
type notifierAdapter struct{ n *sync.Notifier }

func (a notifierAdapter) Wake(pos int64, userIDs ...string) { a.n.Wake(pos, userIDs, false) }

// e2eeSync implements sync.E2EESource over keys.Service.
type e2eeSync struct{ svc *keys.Service }

func (e e2eeSync) SyncE2EE(ctx context.Context, req sync.E2EERequest) (sync.E2EEResponse, error) {
	d, err := e.svc.Sync(ctx, keys.SyncRequest{UserID: req.UserID, DeviceID: req.DeviceID, Since: req.Since, Upto: req.Upto,
		ToDeviceSince: req.ToDeviceSince, SharedUsers: req.SharedUsers, MembershipDone: true})
	if err != nil {
		return sync.E2EEResponse{}, err
	}
	out := sync.E2EEResponse{ToDeviceNext: d.ToDeviceNext, Changed: d.Changed, Left: d.Left,
		OneTimeKeyCounts: d.OneTimeKeysCount, UnusedFallbackKeyTypes: d.UnusedFallbackKeyTypes}
	out.ToDevice = make([]json.RawMessage, 0, len(d.ToDevice))
	for _, ev := range d.ToDevice {
		b, err := json.Marshal(ev)
		if err != nil {
			return sync.E2EEResponse{}, err
		}
		out.ToDevice = append(out.ToDevice, b)
	}
	return out, nil
}

// registerE2EE registers the E2EE endpoints and returns their hooks. Without
// an E2EE store the endpoints are absent (404 M_UNRECOGNIZED).
func (s *Server) registerE2EE() e2eeHooks {
	if s.cfg.E2EE == nil {
		return e2eeHooks{}
	}
	// The engine deletes a device's keys and to-device queue in the
	// transaction that deletes the device.
	if h, ok := s.cfg.E2EE.(interface{ RegisterE2EEHooks() }); ok {
		h.RegisterE2EEHooks()
	}
	svc := keys.New(keys.Config{Store: s.cfg.E2EE, Devices: s.store, Rooms: s.store,
		Notifier: notifierAdapter{s.notifier}, Log: s.log})
	h := &e2eeHandlers{s: s, svc: svc}
	s.client("POST", "/keys/upload", authRequired, h.uploadKeys)
	s.client("POST", "/keys/query", authRequired, h.queryKeys)
	s.client("POST", "/keys/claim", authRequired, h.claimKeys)
	s.client("GET", "/keys/changes", authRequired, h.keyChanges)
	s.client("POST", "/keys/device_signing/upload", authRequired, h.uploadCrossSigning)
	s.client("POST", "/keys/signatures/upload", authRequired, h.uploadSignatures)
	s.client("PUT", "/sendToDevice/{eventType}/{txnId}", authRequired, h.sendToDevice)
	s.client("POST", "/room_keys/version", authRequired, h.createBackup)
	s.client("GET", "/room_keys/version", authRequired, h.getBackup)
	s.client("GET", "/room_keys/version/{version}", authRequired, h.getBackup)
	s.client("PUT", "/room_keys/version/{version}", authRequired, h.putBackup)
	s.client("DELETE", "/room_keys/version/{version}", authRequired, h.deleteBackup)
	for _, p := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		s.client("GET", p, authRequired, h.getBackupKeys)
		s.client("PUT", p, authRequired, h.putBackupKeys)
		s.client("DELETE", p, authRequired, h.deleteBackupKeys)
	}
	return e2eeHooks{
		sync:          e2eeSync{svc},
		deviceChanged: svc.NotifyDeviceListChange,
		crossSigningKeyIDs: func(ctx context.Context, userID string) ([]string, error) {
			ks, err := s.cfg.E2EE.CrossSigningKeys(ctx, []string{userID})
			if err != nil {
				return nil, err
			}
			ids := make([]string, 0, len(ks))
			for _, k := range ks {
				ids = append(ids, k.PublicKey)
			}
			return ids, nil
		},
	}
}

type e2eeHandlers struct {
	s   *Server
	svc *keys.Service
}

func (h *e2eeHandlers) uploadKeys(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req keys.UploadRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	return h.svc.UploadKeys(r.Context(), sess.UserID, sess.DeviceID, req)
}

func (h *e2eeHandlers) queryKeys(r *http.Request) (any, error) {
	var req keys.QueryRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	return h.svc.QueryKeys(r.Context(), mustSession(r).UserID, req)
}

func (h *e2eeHandlers) claimKeys(r *http.Request) (any, error) {
	var req keys.ClaimRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	return h.svc.ClaimKeys(r.Context(), req)
}

func (h *e2eeHandlers) keyChanges(r *http.Request) (any, error) {
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	if from == "" || to == "" {
		return nil, api.MissingParam("from and to are required")
	}
	ft, err := sync.ParseToken(from)
	if err != nil {
		return nil, api.InvalidParam("invalid from token")
	}
	tt, err := sync.ParseToken(to)
	if err != nil {
		return nil, api.InvalidParam("invalid to token")
	}
	upto := min(tt.Pos, h.s.store.Pos())
	changed, left, err := h.svc.KeyChanges(r.Context(), mustSession(r).UserID, ft.Pos, upto)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"changed": changed, "left": left}, nil
}

func (h *e2eeHandlers) uploadCrossSigning(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req struct {
		keys.CrossSigningRequest
		Auth json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	up, err := h.svc.PrepareCrossSigning(r.Context(), sess.UserID, req.CrossSigningRequest)
	if err != nil {
		return nil, err
	}
	if up.NeedsAuth {
		// Replacing existing cross-signing keys resets the user's identity:
		// it needs the password (spec: UIA unless first upload or no change).
		if err := h.s.checkUIA(r, req.Auth, uiaParams{flows: [][]string{{"m.login.password"}},
			bind: "POST /keys/device_signing/upload " + sess.UserID, userID: sess.UserID}); err != nil {
			return nil, err
		}
	}
	if err := h.svc.CommitCrossSigning(r.Context(), up); err != nil {
		return nil, err
	}
	if up.NeedsAuth {
		h.s.finishUIA(req.Auth)
	}
	return empty, nil
}

func (h *e2eeHandlers) uploadSignatures(r *http.Request) (any, error) {
	var req map[string]map[string]json.RawMessage
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	return h.svc.UploadSignatures(r.Context(), mustSession(r).UserID, req)
}

func (h *e2eeHandlers) sendToDevice(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req keys.SendToDeviceRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if err := h.svc.SendToDevice(r.Context(), sess.UserID, sess.DeviceID, r.PathValue("eventType"), r.PathValue("txnId"), req); err != nil {
		return nil, err
	}
	return empty, nil
}

func (h *e2eeHandlers) createBackup(r *http.Request) (any, error) {
	var req keys.BackupVersionRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	v, err := h.svc.CreateBackupVersion(r.Context(), mustSession(r).UserID, req)
	if err != nil {
		return nil, err
	}
	return map[string]string{"version": v}, nil
}

func (h *e2eeHandlers) getBackup(r *http.Request) (any, error) {
	return h.svc.BackupVersion(r.Context(), mustSession(r).UserID, r.PathValue("version"))
}

func (h *e2eeHandlers) putBackup(r *http.Request) (any, error) {
	var req keys.BackupVersionRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if err := h.svc.UpdateBackupVersion(r.Context(), mustSession(r).UserID, r.PathValue("version"), req); err != nil {
		return nil, err
	}
	return empty, nil
}

func (h *e2eeHandlers) deleteBackup(r *http.Request) (any, error) {
	if err := h.svc.DeleteBackupVersion(r.Context(), mustSession(r).UserID, r.PathValue("version")); err != nil {
		return nil, err
	}
	return empty, nil
}

func (h *e2eeHandlers) getBackupKeys(r *http.Request) (any, error) {
	return h.svc.BackupKeys(r.Context(), mustSession(r).UserID, r.URL.Query().Get("version"), r.PathValue("roomId"), r.PathValue("sessionId"))
}

func (h *e2eeHandlers) putBackupKeys(r *http.Request) (any, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err // *http.MaxBytesError becomes M_TOO_LARGE
	}
	if strings.TrimSpace(string(b)) == "" || !json.Valid(b) {
		return nil, api.NotJSON("request body is not valid JSON")
	}
	ks, err := keys.ParseBackupKeys(r.PathValue("roomId"), r.PathValue("sessionId"), b)
	if err != nil {
		return nil, err
	}
	return h.svc.PutBackupKeys(r.Context(), mustSession(r).UserID, r.URL.Query().Get("version"), ks)
}

func (h *e2eeHandlers) deleteBackupKeys(r *http.Request) (any, error) {
	return h.svc.DeleteBackupKeys(r.Context(), mustSession(r).UserID, r.URL.Query().Get("version"), r.PathValue("roomId"), r.PathValue("sessionId"))
}
