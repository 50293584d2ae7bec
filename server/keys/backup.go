package keys

import (
	"context"
	"encoding/json"
	"errors"

	"myelin/api"
	"myelin/server/storage"
)

// Key backup bounds.
const (
	// MaxBackupKeysPerRequest bounds the sessions in one PUT /room_keys/keys.
	MaxBackupKeysPerRequest = 10000
	// MaxBackupSessionData bounds one session_data object in bytes.
	MaxBackupSessionData = 16 << 10
	// MaxAuthData bounds a backup version's auth_data in bytes.
	MaxAuthData = 16 << 10
)

// BackupVersionRequest is the body of POST and PUT /room_keys/version.
type BackupVersionRequest struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   *string         `json:"version,omitempty"`
}

// BackupVersionResponse is the response of GET /room_keys/version[/{v}].
type BackupVersionResponse struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int64           `json:"count"`
	ETag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// BackupKeyData is one KeyBackupData object.
type BackupKeyData struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// RoomBackup is the RoomKeyBackup object: {"sessions": {...}}.
type RoomBackup struct {
	Sessions map[string]json.RawMessage `json:"sessions"`
}

// AllBackup is the body and response of /room_keys/keys: {"rooms": {...}}.
type AllBackup struct {
	Rooms map[string]RoomBackup `json:"rooms"`
}

// BackupCountResponse is the response of PUT and DELETE /room_keys/keys.
type BackupCountResponse struct {
	Count int64  `json:"count"`
	ETag  string `json:"etag"`
}

func validateBackupVersion(req BackupVersionRequest) error {
	if req.Algorithm == "" {
		return api.MissingParam("algorithm is required")
	}
	if !validID(req.Algorithm) {
		return api.InvalidParam("invalid algorithm")
	}
	if isNull(req.AuthData) {
		return api.MissingParam("auth_data is required")
	}
	if len(req.AuthData) > MaxAuthData {
		return api.TooLarge("auth_data too large")
	}
	if !startsWithObject(req.AuthData) {
		return api.BadJSON("auth_data must be an object")
	}
	return nil
}

// CreateBackupVersion handles POST /room_keys/version.
func (s *Service) CreateBackupVersion(ctx context.Context, userID string, req BackupVersionRequest) (string, error) {
	if err := validateBackupVersion(req); err != nil {
		return "", err
	}
	ad, err := compact(req.AuthData)
	if err != nil {
		return "", api.BadJSON("auth_data is not valid JSON")
	}
	v, err := s.store.CreateBackupVersion(ctx, userID, req.Algorithm, ad)
	return v, internal("create backup version", err)
}

func noBackup() error { return api.NotFound("no backup found") }

// BackupVersion handles GET /room_keys/version ("" = latest) and
// GET /room_keys/version/{version}.
func (s *Service) BackupVersion(ctx context.Context, userID, version string) (*BackupVersionResponse, error) {
	v, err := s.store.BackupVersion(ctx, userID, version)
	if errors.Is(err, storage.ErrNotFound) || err == nil && v.Deleted {
		return nil, noBackup()
	}
	if err != nil {
		return nil, internal("backup version", err)
	}
	return &BackupVersionResponse{Algorithm: v.Algorithm, AuthData: v.AuthData, Count: v.Count, ETag: v.ETag, Version: v.Version}, nil
}

// UpdateBackupVersion handles PUT /room_keys/version/{version}: only
// auth_data may change.
func (s *Service) UpdateBackupVersion(ctx context.Context, userID, version string, req BackupVersionRequest) error {
	if err := validateBackupVersion(req); err != nil {
		return err
	}
	if req.Version != nil && *req.Version != version {
		return api.InvalidParam("version does not match the path")
	}
	cur, err := s.store.BackupVersion(ctx, userID, version)
	if errors.Is(err, storage.ErrNotFound) || err == nil && cur.Deleted {
		return noBackup()
	}
	if err != nil {
		return internal("backup version", err)
	}
	if cur.Algorithm != req.Algorithm {
		return api.InvalidParam("algorithm does not match")
	}
	ad, err := compact(req.AuthData)
	if err != nil {
		return api.BadJSON("auth_data is not valid JSON")
	}
	err = s.store.UpdateBackupVersion(ctx, userID, version, ad)
	if errors.Is(err, storage.ErrNotFound) {
		return noBackup()
	}
	return internal("update backup version", err)
}

// DeleteBackupVersion handles DELETE /room_keys/version/{version}.
func (s *Service) DeleteBackupVersion(ctx context.Context, userID, version string) error {
	err := s.store.DeleteBackupVersion(ctx, userID, version)
	if errors.Is(err, storage.ErrNotFound) {
		return noBackup()
	}
	return internal("delete backup version", err)
}

func parseBackupKey(roomID, sessionID string, raw json.RawMessage) (storage.BackupKey, error) {
	var k BackupKeyData
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return storage.BackupKey{}, api.BadJSON("key backup data must be an object")
	}
	for _, f := range []string{"first_message_index", "forwarded_count", "is_verified", "session_data"} {
		if _, ok := m[f]; !ok {
			return storage.BackupKey{}, api.MissingParam(f + " is required")
		}
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return storage.BackupKey{}, api.BadJSON("invalid key backup data")
	}
	if k.FirstMessageIndex < 0 || k.ForwardedCount < 0 {
		return storage.BackupKey{}, api.InvalidParam("negative index or count")
	}
	if len(k.SessionData) > MaxBackupSessionData {
		return storage.BackupKey{}, api.TooLarge("session_data too large")
	}
	if !startsWithObject(k.SessionData) {
		return storage.BackupKey{}, api.BadJSON("session_data must be an object")
	}
	sd, err := compact(k.SessionData)
	if err != nil {
		return storage.BackupKey{}, api.BadJSON("invalid session_data")
	}
	if !validID(roomID) || !validID(sessionID) {
		return storage.BackupKey{}, api.InvalidParam("invalid room or session ID")
	}
	return storage.BackupKey{RoomID: roomID, SessionID: sessionID, FirstMessageIndex: k.FirstMessageIndex,
		ForwardedCount: k.ForwardedCount, IsVerified: k.IsVerified, SessionData: sd}, nil
}

// ParseBackupKeys turns a PUT /room_keys/keys[/{roomId}[/{sessionId}]] body
// into keys: with roomID and sessionID set the body is one KeyBackupData, with
// only roomID a RoomKeyBackup, else {"rooms": ...}.
func ParseBackupKeys(roomID, sessionID string, body json.RawMessage) ([]storage.BackupKey, error) {
	switch {
	case roomID != "" && sessionID != "":
		k, err := parseBackupKey(roomID, sessionID, body)
		if err != nil {
			return nil, err
		}
		return []storage.BackupKey{k}, nil
	case roomID != "":
		var rb RoomBackup
		if err := json.Unmarshal(body, &rb); err != nil || rb.Sessions == nil {
			return nil, api.BadJSON("body must be {\"sessions\": {...}}")
		}
		return parseSessions(roomID, rb.Sessions, nil)
	default:
		var all AllBackup
		if err := json.Unmarshal(body, &all); err != nil || all.Rooms == nil {
			return nil, api.BadJSON("body must be {\"rooms\": {...}}")
		}
		var out []storage.BackupKey
		for r, rb := range all.Rooms {
			var err error
			if out, err = parseSessions(r, rb.Sessions, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

func parseSessions(roomID string, sessions map[string]json.RawMessage, out []storage.BackupKey) ([]storage.BackupKey, error) {
	for sid, raw := range sessions {
		k, err := parseBackupKey(roomID, sid, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
		if len(out) > MaxBackupKeysPerRequest {
			return nil, api.InvalidParam("too many keys in one request")
		}
	}
	return out, nil
}

// PutBackupKeys handles PUT /room_keys/keys[...]?version=.
func (s *Service) PutBackupKeys(ctx context.Context, userID, version string, keys []storage.BackupKey) (*BackupCountResponse, error) {
	if version == "" {
		return nil, api.MissingParam("version is required")
	}
	c, err := s.store.PutBackupKeys(ctx, userID, version, keys)
	var wv *storage.WrongBackupVersionError
	switch {
	case errors.As(err, &wv):
		e := api.NewError(403, api.ErrCodeWrongRoomKeysVersion, "backup version is not the current one")
		e.Extra = map[string]any{"current_version": wv.Current}
		return nil, e
	case errors.Is(err, storage.ErrNotFound):
		return nil, noBackup()
	case err != nil:
		return nil, internal("put backup keys", err)
	}
	return &BackupCountResponse{Count: c.Count, ETag: c.ETag}, nil
}

// resolveVersion returns version, or the latest one when empty (clients
// always send it; the spec makes it required, Synapse defaults it).
func (s *Service) resolveVersion(ctx context.Context, userID, version string) (string, error) {
	v, err := s.store.BackupVersion(ctx, userID, version)
	if errors.Is(err, storage.ErrNotFound) || err == nil && v.Deleted {
		return "", noBackup()
	}
	if err != nil {
		return "", internal("backup version", err)
	}
	return v.Version, nil
}

// BackupKeys handles GET /room_keys/keys[/{roomId}[/{sessionId}]]?version=
// and returns the matching response object.
func (s *Service) BackupKeys(ctx context.Context, userID, version, roomID, sessionID string) (any, error) {
	version, err := s.resolveVersion(ctx, userID, version)
	if err != nil {
		return nil, err
	}
	ks, err := s.store.BackupKeys(ctx, userID, version, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, noBackup()
	}
	if err != nil {
		return nil, internal("backup keys", err)
	}
	render := func(k storage.BackupKey) json.RawMessage {
		b, _ := json.Marshal(BackupKeyData{FirstMessageIndex: k.FirstMessageIndex, ForwardedCount: k.ForwardedCount,
			IsVerified: k.IsVerified, SessionData: k.SessionData})
		return b
	}
	switch {
	case roomID != "" && sessionID != "":
		if len(ks) == 0 {
			return nil, api.NotFound("no key found for this session")
		}
		return render(ks[0]), nil
	case roomID != "":
		rb := RoomBackup{Sessions: map[string]json.RawMessage{}}
		for _, k := range ks {
			rb.Sessions[k.SessionID] = render(k)
		}
		return rb, nil
	default:
		all := AllBackup{Rooms: map[string]RoomBackup{}}
		for _, k := range ks {
			rb, ok := all.Rooms[k.RoomID]
			if !ok {
				rb = RoomBackup{Sessions: map[string]json.RawMessage{}}
				all.Rooms[k.RoomID] = rb
			}
			rb.Sessions[k.SessionID] = render(k)
		}
		return all, nil
	}
}

// DeleteBackupKeys handles DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=.
func (s *Service) DeleteBackupKeys(ctx context.Context, userID, version, roomID, sessionID string) (*BackupCountResponse, error) {
	version, err := s.resolveVersion(ctx, userID, version)
	if err != nil {
		return nil, err
	}
	c, err := s.store.DeleteBackupKeys(ctx, userID, version, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, noBackup()
	}
	if err != nil {
		return nil, internal("delete backup keys", err)
	}
	return &BackupCountResponse{Count: c.Count, ETag: c.ETag}, nil
}
