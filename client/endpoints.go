package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"myelin/api"
)

// Register creates an account with user-interactive auth by m.login.dummy
// and installs the new session. deviceID may be empty (the server picks one).
func (h *HTTP) Register(ctx context.Context, username, password, deviceID, displayName string) (*LoginResponse, error) {
	body := map[string]any{"username": username, "password": password}
	if deviceID != "" {
		body["device_id"] = deviceID
	}
	if displayName != "" {
		body["initial_device_display_name"] = displayName
	}
	var out LoginResponse
	err := h.doUIA(ctx, request{method: http.MethodPost, path: v3("register")}, body, "m.login.dummy", nil, &out)
	if err != nil {
		return nil, err
	}
	if out.AccessToken == "" || out.UserID == "" || out.DeviceID == "" {
		return nil, fmt.Errorf("%w: register: missing user_id, device_id or access_token", ErrBadResponse)
	}
	h.SetSession(out.AccessToken, out.UserID, out.DeviceID)
	return &out, nil
}

// uiaState is the 401 body of user-interactive auth.
type uiaState struct {
	Session string `json:"session"`
	Flows   []struct {
		Stages []string `json:"stages"`
	} `json:"flows"`
}

// doUIA sends body; on a 401 with a UIA session it retries once with an auth
// dict of the given stage type (extra merged in).
func (h *HTTP) doUIA(ctx context.Context, r request, body map[string]any, stage string, extra map[string]any, out any) error {
	r.body = body
	err := h.do(ctx, r, out)
	var me *MatrixError
	if !errors.As(err, &me) || me.Status != http.StatusUnauthorized || len(me.Body) == 0 {
		return err
	}
	var st uiaState
	if json.Unmarshal(me.Body, &st) != nil || st.Flows == nil {
		return err
	}
	auth := map[string]any{"type": stage}
	if st.Session != "" {
		auth["session"] = st.Session
	}
	for k, v := range extra {
		auth[k] = v
	}
	b2 := make(map[string]any, len(body)+1)
	for k, v := range body {
		b2[k] = v
	}
	b2["auth"] = auth
	r.body = b2
	return h.do(ctx, r, out)
}

// passwordAuth is the m.login.password UIA stage for the logged-in user.
func (h *HTTP) passwordAuth(password string) map[string]any {
	return map[string]any{
		"identifier": map[string]any{"type": "m.id.user", "user": h.UserID()},
		"password":   password,
	}
}

// Login logs in with a password and installs the new session. user is a
// localpart or a full user ID; deviceID may be empty.
func (h *HTTP) Login(ctx context.Context, user, password, deviceID, displayName string) (*LoginResponse, error) {
	body := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
	}
	if deviceID != "" {
		body["device_id"] = deviceID
	}
	if displayName != "" {
		body["initial_device_display_name"] = displayName
	}
	var out LoginResponse
	if err := h.do(ctx, request{method: http.MethodPost, path: v3("login"), body: body}, &out); err != nil {
		return nil, err
	}
	if out.AccessToken == "" || out.UserID == "" || out.DeviceID == "" {
		return nil, fmt.Errorf("%w: login: missing user_id, device_id or access_token", ErrBadResponse)
	}
	h.SetSession(out.AccessToken, out.UserID, out.DeviceID)
	return &out, nil
}

// Logout invalidates the access token and forgets it.
func (h *HTTP) Logout(ctx context.Context) error {
	err := h.do(ctx, request{method: http.MethodPost, path: v3("logout"), body: map[string]any{}, auth: true}, nil)
	if err == nil {
		h.SetSession("", "", "")
	}
	return err
}

// Whoami returns the user and device of the access token.
func (h *HTTP) Whoami(ctx context.Context) (userID, deviceID string, err error) {
	var out struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	err = h.do(ctx, request{method: http.MethodGet, path: v3("account", "whoami"), auth: true, idempotent: true}, &out)
	return out.UserID, out.DeviceID, err
}

// Devices lists the user's devices.
func (h *HTTP) Devices(ctx context.Context) ([]Device, error) {
	var out struct {
		Devices []Device `json:"devices"`
	}
	err := h.do(ctx, request{method: http.MethodGet, path: v3("devices"), auth: true, idempotent: true}, &out)
	return out.Devices, err
}

// DeleteDevice deletes one of the user's devices, authenticating with the
// account password.
func (h *HTTP) DeleteDevice(ctx context.Context, deviceID, password string) error {
	return h.doUIA(ctx, request{method: http.MethodDelete, path: v3("devices", deviceID), auth: true, idempotent: true},
		map[string]any{}, "m.login.password", h.passwordAuth(password), nil)
}

// CreateRoom creates a room and returns its ID.
func (h *HTTP) CreateRoom(ctx context.Context, req *CreateRoomRequest) (string, error) {
	var out struct {
		RoomID string `json:"room_id"`
	}
	if err := h.do(ctx, request{method: http.MethodPost, path: v3("createRoom"), body: req, auth: true}, &out); err != nil {
		return "", err
	}
	if out.RoomID == "" {
		return "", fmt.Errorf("%w: createRoom: no room_id", ErrBadResponse)
	}
	return out.RoomID, nil
}

// Join joins a room by ID or alias and returns the room ID.
func (h *HTTP) Join(ctx context.Context, roomIDOrAlias string) (string, error) {
	var out struct {
		RoomID string `json:"room_id"`
	}
	err := h.do(ctx, request{method: http.MethodPost, path: v3("join", roomIDOrAlias), body: map[string]any{}, auth: true, idempotent: true}, &out)
	return out.RoomID, err
}

// Invite invites userID into roomID.
func (h *HTTP) Invite(ctx context.Context, roomID, userID string) error {
	return h.do(ctx, request{method: http.MethodPost, path: v3("rooms", roomID, "invite"), body: map[string]any{"user_id": userID}, auth: true}, nil)
}

// Leave leaves roomID.
func (h *HTTP) Leave(ctx context.Context, roomID string) error {
	return h.do(ctx, request{method: http.MethodPost, path: v3("rooms", roomID, "leave"), body: map[string]any{}, auth: true, idempotent: true}, nil)
}

// Kick removes userID from roomID.
func (h *HTTP) Kick(ctx context.Context, roomID, userID, reason string) error {
	return h.do(ctx, request{method: http.MethodPost, path: v3("rooms", roomID, "kick"), body: map[string]any{"user_id": userID, "reason": reason}, auth: true}, nil)
}

// SendEvent sends a message event with the given transaction ID (retried
// idempotently under the same ID) and returns its event ID.
func (h *HTTP) SendEvent(ctx context.Context, roomID, evType, txnID string, content any) (string, error) {
	var out struct {
		EventID string `json:"event_id"`
	}
	err := h.do(ctx, request{method: http.MethodPut, path: v3("rooms", roomID, "send", evType, txnID), body: content, auth: true, idempotent: true}, &out)
	if err == nil && out.EventID == "" {
		err = fmt.Errorf("%w: send: no event_id", ErrBadResponse)
	}
	return out.EventID, err
}

// SendState sets a state event and returns its event ID.
func (h *HTTP) SendState(ctx context.Context, roomID, evType, stateKey string, content any) (string, error) {
	var out struct {
		EventID string `json:"event_id"`
	}
	err := h.do(ctx, request{method: http.MethodPut, path: v3("rooms", roomID, "state", evType, stateKey), body: content, auth: true, idempotent: true}, &out)
	return out.EventID, err
}

// State returns the room's current state.
func (h *HTTP) State(ctx context.Context, roomID string) ([]api.ClientEvent, error) {
	var out []api.ClientEvent
	err := h.do(ctx, request{method: http.MethodGet, path: v3("rooms", roomID, "state"), auth: true, idempotent: true}, &out)
	return out, err
}

// StateEvent returns the content of one state event.
func (h *HTTP) StateEvent(ctx context.Context, roomID, evType, stateKey string) (json.RawMessage, error) {
	var out json.RawMessage
	err := h.do(ctx, request{method: http.MethodGet, path: v3("rooms", roomID, "state", evType, stateKey), auth: true, idempotent: true}, &out)
	return out, err
}

// JoinedMembers returns the user IDs joined to roomID.
func (h *HTTP) JoinedMembers(ctx context.Context, roomID string) ([]string, error) {
	var out struct {
		Joined map[string]json.RawMessage `json:"joined"`
	}
	if err := h.do(ctx, request{method: http.MethodGet, path: v3("rooms", roomID, "joined_members"), auth: true, idempotent: true}, &out); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(out.Joined))
	for u := range out.Joined {
		ids = append(ids, u)
	}
	return ids, nil
}

// JoinedRooms returns the IDs of the rooms the user is joined to.
func (h *HTTP) JoinedRooms(ctx context.Context) ([]string, error) {
	var out struct {
		JoinedRooms []string `json:"joined_rooms"`
	}
	err := h.do(ctx, request{method: http.MethodGet, path: v3("joined_rooms"), auth: true, idempotent: true}, &out)
	return out.JoinedRooms, err
}

// Messages pages through a room's history (dir "b" or "f").
func (h *HTTP) Messages(ctx context.Context, roomID, from, dir string, limit int) (*MessagesResponse, error) {
	q := url.Values{"dir": {dir}}
	if from != "" {
		q.Set("from", from)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out MessagesResponse
	err := h.do(ctx, request{method: http.MethodGet, path: v3("rooms", roomID, "messages"), query: q, auth: true, idempotent: true}, &out)
	for i := range out.Chunk {
		if out.Chunk[i].RoomID == "" {
			out.Chunk[i].RoomID = roomID
		}
	}
	return &out, err
}

// Sync calls GET /sync. The context should outlive the long-poll timeout.
func (h *HTTP) Sync(ctx context.Context, req SyncRequest) (*SyncResponse, error) {
	q := url.Values{}
	if req.Since != "" {
		q.Set("since", req.Since)
	}
	if req.TimeoutMS > 0 {
		q.Set("timeout", strconv.Itoa(req.TimeoutMS))
	}
	if req.Filter != "" {
		q.Set("filter", req.Filter)
	}
	if req.FullState {
		q.Set("full_state", "true")
	}
	if req.SetPresence != "" {
		q.Set("set_presence", req.SetPresence)
	}
	var out SyncResponse
	if err := h.do(ctx, request{method: http.MethodGet, path: v3("sync"), query: q, auth: true, idempotent: true}, &out); err != nil {
		return nil, err
	}
	if out.NextBatch == "" {
		return nil, fmt.Errorf("%w: sync: no next_batch", ErrBadResponse)
	}
	for rid, jr := range out.Rooms.Join {
		fillRoom(rid, jr.State.Events)
		fillRoom(rid, jr.Timeline.Events)
	}
	for rid, lr := range out.Rooms.Leave {
		fillRoom(rid, lr.State.Events)
		fillRoom(rid, lr.Timeline.Events)
	}
	return &out, nil
}

// fillRoom sets room_id on events of a /sync room map (the server omits it;
// a value the server did put there is overwritten by the map key).
func fillRoom(roomID string, evs []api.ClientEvent) {
	for i := range evs {
		evs[i].RoomID = roomID
	}
}

// KeysUpload posts a keys/upload body and returns the raw response.
func (h *HTTP) KeysUpload(ctx context.Context, body json.RawMessage) (json.RawMessage, error) {
	return h.raw(ctx, http.MethodPost, v3("keys", "upload"), body, true)
}

// KeysQuery posts a keys/query body and returns the raw response.
func (h *HTTP) KeysQuery(ctx context.Context, body json.RawMessage) (json.RawMessage, error) {
	return h.raw(ctx, http.MethodPost, v3("keys", "query"), body, true)
}

// KeysClaim posts a keys/claim body and returns the raw response. It is not
// retried after a transport error: a lost answer costs one-time keys, a
// repeated claim costs more.
func (h *HTTP) KeysClaim(ctx context.Context, body json.RawMessage) (json.RawMessage, error) {
	return h.raw(ctx, http.MethodPost, v3("keys", "claim"), body, false)
}

// SendToDevice sends to-device messages ({"messages": {user: {device:
// content}}}) under txnID (retried idempotently).
func (h *HTTP) SendToDevice(ctx context.Context, evType, txnID string, body json.RawMessage) (json.RawMessage, error) {
	return h.raw(ctx, http.MethodPut, v3("sendToDevice", evType, txnID), body, true)
}

// UploadCrossSigningKeys uploads the master, self-signing and user-signing
// key objects (keys/device_signing/upload), authenticating with the account
// password if the server asks.
func (h *HTTP) UploadCrossSigningKeys(ctx context.Context, master, selfSigning, userSigning json.RawMessage, password string) error {
	body := map[string]any{"master_key": master, "self_signing_key": selfSigning, "user_signing_key": userSigning}
	return h.doUIA(ctx, request{method: http.MethodPost, path: v3("keys", "device_signing", "upload"), auth: true, idempotent: true},
		body, "m.login.password", h.passwordAuth(password), nil)
}

// UploadSignatures posts keys/signatures/upload ({user: {key id: signed
// object}}) and returns the raw response (which lists failures).
func (h *HTTP) UploadSignatures(ctx context.Context, body json.RawMessage) (json.RawMessage, error) {
	return h.raw(ctx, http.MethodPost, v3("keys", "signatures", "upload"), body, true)
}

// CreateBackupVersion posts room_keys/version and returns the new version.
func (h *HTTP) CreateBackupVersion(ctx context.Context, body json.RawMessage) (string, error) {
	var out struct {
		Version string `json:"version"`
	}
	err := h.do(ctx, request{method: http.MethodPost, path: v3("room_keys", "version"), body: body, auth: true}, &out)
	return out.Version, err
}

// BackupVersion returns the current backup version's raw description.
func (h *HTTP) BackupVersion(ctx context.Context) (json.RawMessage, error) {
	return h.raw(ctx, http.MethodGet, v3("room_keys", "version"), nil, true)
}

// PutRoomKeys uploads backed-up room keys ({"rooms": ...}) into version.
func (h *HTTP) PutRoomKeys(ctx context.Context, version string, body json.RawMessage) (json.RawMessage, error) {
	var out json.RawMessage
	err := h.do(ctx, request{method: http.MethodPut, path: v3("room_keys", "keys"), query: url.Values{"version": {version}}, body: body, auth: true, idempotent: true}, &out)
	return out, err
}

// RoomKeys downloads every backed-up room key of version.
func (h *HTTP) RoomKeys(ctx context.Context, version string) (json.RawMessage, error) {
	var out json.RawMessage
	err := h.do(ctx, request{method: http.MethodGet, path: v3("room_keys", "keys"), query: url.Values{"version": {version}}, auth: true, idempotent: true}, &out)
	return out, err
}

func (h *HTTP) raw(ctx context.Context, method string, path []string, body json.RawMessage, idempotent bool) (json.RawMessage, error) {
	var out json.RawMessage
	r := request{method: method, path: path, auth: true, idempotent: idempotent}
	if body != nil {
		r.body = body
	}
	err := h.do(ctx, r, &out)
	return out, err
}
