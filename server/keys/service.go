package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"myelin/api"
	"myelin/server/storage"
)

// Rooms is the room membership the device-list tracking needs; storage.Rooms
// satisfies it.
type Rooms interface {
	// UsersSharingRooms returns the users who are joined to or invited into a
	// room that userID is joined to (including userID).
	UsersSharingRooms(ctx context.Context, userID string) ([]string, error)
	// UserMemberships returns a user's current membership in every room they have one in.
	UserMemberships(ctx context.Context, userID string) ([]storage.MembershipRow, error)
	// RoomsWithEvents returns which of roomIDs have events with from < pos <= to.
	RoomsWithEvents(ctx context.Context, roomIDs []string, from, to int64) (map[string]bool, error)
	// StateEventsRange returns the state events of a room with from < pos <= to.
	StateEventsRange(ctx context.Context, roomID string, from, to int64) ([]*storage.Event, error)
	// CurrentState returns the room's full current state.
	CurrentState(ctx context.Context, roomID string) ([]*storage.Event, error)
}

// Devices is the part of the accounts store the service needs.
type Devices interface {
	// Devices lists a user's devices.
	Devices(ctx context.Context, userID string) ([]storage.Device, error)
}

// Notifier wakes long-polling /sync requests.
type Notifier interface {
	// Wake wakes the syncs of userIDs for a change at stream position pos.
	Wake(pos int64, userIDs ...string)
}

// Config holds the dependencies of a [Service].
type Config struct {
	Store    storage.E2EE
	Devices  Devices
	Rooms    Rooms
	Notifier Notifier     // nil: no wake-ups
	Log      *slog.Logger // nil: discard
}

// Service implements the E2EE endpoints on top of storage. It is safe for
// concurrent use.
type Service struct {
	store   storage.E2EE
	devices Devices
	rooms   Rooms
	notify  Notifier
	log     *slog.Logger
}

// New returns a Service.
func New(c Config) *Service {
	s := &Service{store: c.Store, devices: c.Devices, rooms: c.Rooms, notify: c.Notifier, log: c.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("keys: %s: %w", op, err)
}

// wakeChanges wakes everyone who must see the recorded device-list changes:
// the owner, and for changes not self-only, everyone sharing a room with them.
func (s *Service) wakeChanges(ctx context.Context, changes []storage.DeviceListChange) {
	if s.notify == nil {
		return
	}
	for _, c := range changes {
		users := []string{c.UserID}
		if !c.SelfOnly && s.rooms != nil {
			shared, err := s.rooms.UsersSharingRooms(ctx, c.UserID)
			if err != nil {
				s.log.WarnContext(ctx, "keys: wake device-list watchers", "user_id", c.UserID, "err", err)
			}
			users = append(users, shared...)
		}
		s.notify.Wake(c.Pos, users...)
	}
}

// UploadRequest is the body of POST /keys/upload.
type UploadRequest struct {
	DeviceKeys   json.RawMessage `json:"device_keys"`
	OneTimeKeys  json.RawMessage `json:"one_time_keys"`
	FallbackKeys json.RawMessage `json:"fallback_keys"`
}

// UploadResponse is the response of POST /keys/upload.
type UploadResponse struct {
	OneTimeKeyCounts map[string]int `json:"one_time_key_counts"`
}

// UploadKeys handles POST /keys/upload for the authenticated device.
func (s *Service) UploadKeys(ctx context.Context, userID, deviceID string, req UploadRequest) (*UploadResponse, error) {
	u := storage.KeyUpload{UserID: userID, DeviceID: deviceID}
	if !isNull(req.DeviceKeys) {
		if err := ValidateDeviceKeys(req.DeviceKeys, userID, deviceID); err != nil {
			return nil, err
		}
		c, err := compact(req.DeviceKeys)
		if err != nil {
			return nil, api.BadJSON("device_keys is not valid JSON")
		}
		u.DeviceKeys = c
	}
	var err error
	if u.OneTimeKeys, err = ParseOneTimeKeys(req.OneTimeKeys, "one_time_keys", false); err != nil {
		return nil, err
	}
	if u.FallbackKeys, err = ParseOneTimeKeys(req.FallbackKeys, "fallback_keys", true); err != nil {
		return nil, err
	}
	if len(u.OneTimeKeys) > 0 {
		// Bound what one device can make the server store (clients keep
		// about 50-100 published; vodozemac holds at most 100).
		have, err := s.store.OneTimeKeyCounts(ctx, userID, deviceID)
		if err != nil {
			return nil, internal("upload: counts", err)
		}
		add := map[string]int{}
		for _, k := range u.OneTimeKeys {
			add[k.Algorithm]++
		}
		for alg, n := range add {
			if have[alg]+n > MaxStoredOneTimeKeys {
				return nil, api.InvalidParam("too many one-time keys stored for this device")
			}
		}
	}
	counts, changes, err := s.store.UploadKeys(ctx, u)
	if errors.Is(err, storage.ErrKeyConflict) {
		return nil, api.InvalidParam("one-time key ID already used for a different key")
	}
	if err != nil {
		return nil, internal("upload", err)
	}
	s.wakeChanges(ctx, changes)
	return &UploadResponse{OneTimeKeyCounts: withSignedCurve(counts)}, nil
}

// withSignedCurve returns counts with signed_curve25519 present (0 if absent):
// matrix-nio stops uploading one-time keys when the count is missing.
func withSignedCurve(counts map[string]int) map[string]int {
	if counts == nil {
		counts = make(map[string]int, 1)
	}
	if _, ok := counts[AlgSignedCurve25519]; !ok {
		counts[AlgSignedCurve25519] = 0
	}
	return counts
}

// QueryRequest is the body of POST /keys/query.
type QueryRequest struct {
	DeviceKeys map[string][]string `json:"device_keys"`
}

// QueryResponse is the response of POST /keys/query.
type QueryResponse struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
	Failures        map[string]json.RawMessage            `json:"failures"`
}

// QueryKeys handles POST /keys/query for requester.
func (s *Service) QueryKeys(ctx context.Context, requester string, req QueryRequest) (*QueryResponse, error) {
	if req.DeviceKeys == nil {
		return nil, api.MissingParam("device_keys is required")
	}
	if len(req.DeviceKeys) > MaxQueryUsers {
		return nil, api.InvalidParam("too many users")
	}
	resp := &QueryResponse{
		DeviceKeys:      make(map[string]map[string]json.RawMessage, len(req.DeviceKeys)),
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
		Failures:        map[string]json.RawMessage{},
	}
	users := make([]string, 0, len(req.DeviceKeys))
	for u := range req.DeviceKeys {
		users = append(users, u)
	}
	slices.Sort(users)
	dks, err := s.store.DeviceKeys(ctx, req.DeviceKeys)
	if err != nil {
		return nil, internal("query device keys", err)
	}
	sigs, err := s.store.Signatures(ctx, users)
	if err != nil {
		return nil, internal("query signatures", err)
	}
	csks, err := s.store.CrossSigningKeys(ctx, users)
	if err != nil {
		return nil, internal("query cross-signing keys", err)
	}
	// Index signatures by (target user, target key ID).
	type target struct{ user, key string }
	byTarget := make(map[target][]storage.KeySignature)
	for _, sg := range sigs {
		t := target{sg.TargetUserID, sg.TargetKeyID}
		byTarget[t] = append(byTarget[t], sg)
	}
	for _, u := range users {
		resp.DeviceKeys[u] = map[string]json.RawMessage{}
	}
	for _, dk := range dks {
		out, err := renderKey(dk.JSON, byTarget[target{dk.UserID, dk.DeviceID}], dk.DisplayName, true)
		if err != nil {
			s.log.WarnContext(ctx, "keys: stored device keys unreadable", "user_id", dk.UserID, "device_id", dk.DeviceID, "err", err)
			continue
		}
		resp.DeviceKeys[dk.UserID][dk.DeviceID] = out
	}
	for _, k := range csks {
		switch k.Usage {
		case storage.UsageMaster:
			// Signatures on a master key are visible when made by its owner
			// (their devices) or by the requester (their user-signing key);
			// other users' signatures are theirs alone.
			var visible []storage.KeySignature
			for _, sg := range byTarget[target{k.UserID, k.PublicKey}] {
				if sg.SignerUserID == k.UserID || sg.SignerUserID == requester {
					visible = append(visible, sg)
				}
			}
			out, err := renderKey(k.JSON, visible, "", false)
			if err != nil {
				s.log.WarnContext(ctx, "keys: stored master key unreadable", "user_id", k.UserID, "err", err)
				continue
			}
			resp.MasterKeys[k.UserID] = out
		case storage.UsageSelfSigning:
			resp.SelfSigningKeys[k.UserID] = k.JSON
		case storage.UsageUserSigning:
			// The user-signing key is private to its owner (spec: only for
			// the user making the request).
			if k.UserID == requester {
				resp.UserSigningKeys[k.UserID] = k.JSON
			}
		}
	}
	return resp, nil
}

// renderKey returns stored key JSON with extra signatures merged in and, for
// device keys, unsigned.device_display_name set. Members other than
// "signatures" and "unsigned" are passed through as stored, so the owner's
// signature over them stays valid.
func renderKey(stored json.RawMessage, extra []storage.KeySignature, displayName string, device bool) (json.RawMessage, error) {
	if len(extra) == 0 && !device {
		return stored, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(stored, &m); err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		sigs := map[string]map[string]string{}
		if raw, ok := m["signatures"]; ok {
			if err := json.Unmarshal(raw, &sigs); err != nil {
				return nil, err
			}
			if sigs == nil {
				sigs = map[string]map[string]string{}
			}
		}
		for _, sg := range extra {
			if sigs[sg.SignerUserID] == nil {
				sigs[sg.SignerUserID] = map[string]string{}
			}
			sigs[sg.SignerUserID][sg.SignerKeyID] = sg.Signature
		}
		b, err := json.Marshal(sigs)
		if err != nil {
			return nil, err
		}
		m["signatures"] = b
	}
	if device {
		delete(m, "unsigned")
		if displayName != "" {
			b, err := json.Marshal(map[string]string{"device_display_name": displayName})
			if err != nil {
				return nil, err
			}
			m["unsigned"] = b
		}
	}
	return json.Marshal(m)
}

// ClaimRequest is the body of POST /keys/claim.
type ClaimRequest struct {
	OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
}

// ClaimResponse is the response of POST /keys/claim.
type ClaimResponse struct {
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	Failures    map[string]json.RawMessage                       `json:"failures"`
}

// ClaimKeys handles POST /keys/claim: one key per requested device, all in
// one storage transaction.
func (s *Service) ClaimKeys(ctx context.Context, req ClaimRequest) (*ClaimResponse, error) {
	if req.OneTimeKeys == nil {
		return nil, api.MissingParam("one_time_keys is required")
	}
	var claims []storage.KeyClaim
	for u, devs := range req.OneTimeKeys {
		for d, alg := range devs {
			if !validID(alg) {
				return nil, api.InvalidParam("invalid algorithm")
			}
			claims = append(claims, storage.KeyClaim{UserID: u, DeviceID: d, Algorithm: alg})
			if len(claims) > MaxClaims {
				return nil, api.InvalidParam("too many devices")
			}
		}
	}
	resp := &ClaimResponse{
		OneTimeKeys: map[string]map[string]map[string]json.RawMessage{},
		Failures:    map[string]json.RawMessage{},
	}
	if len(claims) == 0 {
		return resp, nil
	}
	got, err := s.store.ClaimKeys(ctx, claims)
	if err != nil {
		return nil, internal("claim", err)
	}
	for _, k := range got {
		if resp.OneTimeKeys[k.UserID] == nil {
			resp.OneTimeKeys[k.UserID] = map[string]map[string]json.RawMessage{}
		}
		resp.OneTimeKeys[k.UserID][k.DeviceID] = map[string]json.RawMessage{k.Algorithm + ":" + k.KeyID: k.JSON}
	}
	return resp, nil
}

// IsCrossSigningKeyID reports whether deviceID equals the public key of one
// of userID's cross-signing keys. Login and registration must refuse such a
// device ID: a device named after a cross-signing key would make
// "ed25519:<id>" ambiguous in signatures.
func (s *Service) IsCrossSigningKeyID(ctx context.Context, userID, deviceID string) (bool, error) {
	ks, err := s.store.CrossSigningKeys(ctx, []string{userID})
	if err != nil {
		return false, internal("cross-signing keys", err)
	}
	for _, k := range ks {
		if k.PublicKey == deviceID {
			return true, nil
		}
	}
	return false, nil
}
