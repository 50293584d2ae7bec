package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"myelin/api"
	"myelin/server/auth"
	"myelin/server/rooms"
	"myelin/server/storage"
	"myelin/server/sync"
)

func (s *Server) roomRoutes() {
	s.client("POST", "/createRoom", authRequired, s.createRoom)
	s.client("POST", "/rooms/{roomId}/join", authRequired, s.joinRoomByID)
	s.client("POST", "/join/{roomIdOrAlias}", authRequired, s.joinRoomByAlias)
	s.client("POST", "/rooms/{roomId}/invite", authRequired, s.membershipOf(rooms.MembershipInvite))
	s.client("POST", "/rooms/{roomId}/kick", authRequired, s.membershipOf(rooms.MembershipLeave))
	s.client("POST", "/rooms/{roomId}/ban", authRequired, s.membershipOf(rooms.MembershipBan))
	s.client("POST", "/rooms/{roomId}/unban", authRequired, s.unban)
	s.client("POST", "/rooms/{roomId}/leave", authRequired, s.leave)
	s.client("POST", "/rooms/{roomId}/forget", authRequired, s.forget)
	s.client("GET", "/joined_rooms", authRequired, s.joinedRooms)
	s.client("GET", "/rooms/{roomId}/state", authRequired, s.getAllState)
	s.client("GET", "/rooms/{roomId}/state/{eventType}", authRequired, s.getState)
	s.client("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", authRequired, s.getState)
	s.client("PUT", "/rooms/{roomId}/state/{eventType}", authRequired, s.putState)
	s.client("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", authRequired, s.putState)
	s.client("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", authRequired, s.send)
	s.client("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", authRequired, s.redact)
	s.client("GET", "/rooms/{roomId}/event/{eventId}", authRequired, s.getEvent)
	s.client("GET", "/rooms/{roomId}/messages", authRequired, s.messages)
	s.client("GET", "/rooms/{roomId}/context/{eventId}", authRequired, s.context)
	s.client("GET", "/rooms/{roomId}/members", authRequired, s.members)
	s.client("GET", "/rooms/{roomId}/joined_members", authRequired, s.joinedMembers)
	s.client("PUT", "/rooms/{roomId}/typing/{userId}", authRequired, s.putTyping)
	s.client("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", authRequired, s.postReceipt)
	s.client("POST", "/rooms/{roomId}/read_markers", authRequired, s.readMarkers)
	s.client("GET", "/directory/room/{alias}", authNone, s.getAlias)
	s.client("PUT", "/directory/room/{alias}", authRequired, s.putAlias)
	s.client("DELETE", "/directory/room/{alias}", authRequired, s.deleteAlias)
	s.client("GET", "/rooms/{roomId}/aliases", authRequired, s.roomAliases)
	s.client("GET", "/directory/list/room/{roomId}", authNone, s.getDirectoryVisibility)
	s.client("PUT", "/directory/list/room/{roomId}", authRequired, s.putDirectoryVisibility)
	s.client("GET", "/publicRooms", authOptional, s.publicRooms)
	s.client("POST", "/publicRooms", authRequired, s.publicRooms)
}

// ---- createRoom ----

type createRoomRequest struct {
	Visibility                string            `json:"visibility"`
	RoomAliasName             string            `json:"room_alias_name"`
	Name                      *string           `json:"name"`
	Topic                     *string           `json:"topic"`
	Invite                    []string          `json:"invite"`
	RoomVersion               string            `json:"room_version"`
	CreationContent           json.RawMessage   `json:"creation_content"`
	InitialState              []initialState    `json:"initial_state"`
	Preset                    string            `json:"preset"`
	IsDirect                  bool              `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage   `json:"power_level_content_override"`
	Invite3PID                []json.RawMessage `json:"invite_3pid"`
}

type initialState struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

func strp(s string) *string { return &s }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("httpapi: internal error: marshal: " + err.Error())
	}
	return b
}

// memberContent returns join/invite content with the user's profile.
func (s *Server) memberContent(ctx context.Context, userID, membership, reason string, extra map[string]any) json.RawMessage {
	c := map[string]any{"membership": membership}
	if membership == rooms.MembershipJoin || membership == rooms.MembershipInvite {
		if u, err := s.store.User(ctx, userID); err == nil {
			if u.DisplayName != "" {
				c["displayname"] = u.DisplayName
			}
			if u.AvatarURL != "" {
				c["avatar_url"] = u.AvatarURL
			}
		}
	}
	if reason != "" {
		c["reason"] = reason
	}
	for k, v := range extra {
		c[k] = v
	}
	return mustJSON(c)
}

func (s *Server) createRoom(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req createRoomRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	ver := rooms.DefaultVersion
	if req.RoomVersion != "" {
		v, err := rooms.ParseRoomVersion(req.RoomVersion)
		if err != nil {
			return nil, api.NewError(http.StatusBadRequest, api.ErrCodeUnsupportedRoomVer, "unsupported room version")
		}
		ver = v
	}
	if len(req.Invite3PID) > 0 {
		return nil, api.Forbidden("third-party invites are not supported")
	}
	preset := req.Preset
	if preset == "" {
		preset = "private_chat"
		if req.Visibility == "public" {
			preset = "public_chat"
		}
	}
	var joinRule, guest string
	switch preset {
	case "private_chat", "trusted_private_chat":
		joinRule, guest = "invite", "can_join"
	case "public_chat":
		joinRule, guest = "public", "forbidden"
	default:
		return nil, api.BadJSON("unknown preset")
	}
	for _, u := range req.Invite {
		if !s.isLocalUser(u) {
			return nil, api.Forbidden("cannot invite users of other servers")
		}
		if _, err := s.store.User(r.Context(), u); err != nil {
			return nil, api.NotFound("unknown user " + u)
		}
	}
	alias := ""
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ":#\x00 ") {
			return nil, api.InvalidParam("invalid room_alias_name")
		}
		alias = "#" + req.RoomAliasName + ":" + s.cfg.ServerName
		if len(alias) > 255 {
			return nil, api.InvalidParam("alias too long")
		}
		if _, err := s.store.ResolveAlias(r.Context(), alias); err == nil {
			return nil, api.NewError(http.StatusBadRequest, api.ErrCodeRoomInUse, "room alias already taken")
		}
	}
	create := map[string]json.RawMessage{}
	if len(req.CreationContent) > 0 && string(req.CreationContent) != "null" {
		if err := json.Unmarshal(req.CreationContent, &create); err != nil {
			return nil, api.BadJSON("creation_content must be an object")
		}
	}
	delete(create, "room_version")
	delete(create, "creator")
	pl := map[string]any{
		"users":          map[string]any{sess.UserID: 100},
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50, "kick": 50, "redact": 50, "invite": 0,
		"events": map[string]any{
			"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
			"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
			"m.room.encryption": 100, "m.room.server_acl": 100,
		},
		"notifications": map[string]any{"room": 50},
	}
	if preset == "trusted_private_chat" {
		users := pl["users"].(map[string]any)
		for _, u := range req.Invite {
			users[u] = 100
		}
	}
	if len(req.PowerLevelContentOverride) > 0 && string(req.PowerLevelContentOverride) != "null" {
		var over map[string]json.RawMessage
		if err := json.Unmarshal(req.PowerLevelContentOverride, &over); err != nil {
			return nil, api.BadJSON("power_level_content_override must be an object")
		}
		for k, v := range over {
			pl[k] = v
		}
	}
	local, err := auth.RandomString(s.rand, 18, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
	if err != nil {
		return nil, err
	}
	roomID := "!" + local + ":" + s.cfg.ServerName
	creatorContent := s.memberContent(r.Context(), sess.UserID, rooms.MembershipJoin, "", nil)
	inviteContents := make([]json.RawMessage, len(req.Invite))
	for i, u := range req.Invite {
		extra := map[string]any{}
		if req.IsDirect {
			extra["is_direct"] = true
		}
		inviteContents[i] = s.memberContent(r.Context(), u, rooms.MembershipInvite, "", extra)
	}
	err = s.writeRoom(r.Context(), roomID, ver, func(rt *roomTx) error {
		if err := rt.w.CreateRoom(storage.Room{RoomID: roomID, Version: string(ver), Creator: sess.UserID, Published: req.Visibility == "public"}); err != nil {
			return err
		}
		add := func(typ string, sk *string, content json.RawMessage) error {
			_, _, err := rt.add(rooms.Proto{Type: typ, StateKey: sk, Sender: sess.UserID, Content: content}, "", "")
			return err
		}
		if err := add(rooms.TypeCreate, strp(""), mustJSON(create)); err != nil {
			return err
		}
		if err := add(rooms.TypeMember, strp(sess.UserID), creatorContent); err != nil {
			return err
		}
		if err := add(rooms.TypePowerLevels, strp(""), mustJSON(pl)); err != nil {
			return err
		}
		if alias != "" {
			if err := rt.w.PutAlias(alias, sess.UserID); errors.Is(err, storage.ErrExists) {
				return api.NewError(http.StatusBadRequest, api.ErrCodeRoomInUse, "room alias already taken")
			} else if err != nil {
				return err
			}
			if err := add("m.room.canonical_alias", strp(""), mustJSON(map[string]string{"alias": alias})); err != nil {
				return err
			}
		}
		if err := add(rooms.TypeJoinRules, strp(""), mustJSON(map[string]string{"join_rule": joinRule})); err != nil {
			return err
		}
		if err := add(rooms.TypeHistoryVisibility, strp(""), mustJSON(map[string]string{"history_visibility": "shared"})); err != nil {
			return err
		}
		if err := add("m.room.guest_access", strp(""), mustJSON(map[string]string{"guest_access": guest})); err != nil {
			return err
		}
		for _, is := range req.InitialState {
			if is.Type == rooms.TypeCreate || is.Type == rooms.TypeMember || is.Type == "" {
				return api.NewError(http.StatusBadRequest, api.ErrCodeInvalidRoomState, "initial_state may not contain "+is.Type)
			}
			c := is.Content
			if len(c) == 0 {
				c = json.RawMessage("{}")
			}
			if err := add(is.Type, strp(is.StateKey), c); err != nil {
				return err
			}
		}
		if req.Name != nil {
			if err := add("m.room.name", strp(""), mustJSON(map[string]string{"name": *req.Name})); err != nil {
				return err
			}
		}
		if req.Topic != nil {
			if err := add("m.room.topic", strp(""), mustJSON(map[string]string{"topic": *req.Topic})); err != nil {
				return err
			}
		}
		for i, u := range req.Invite {
			if u == sess.UserID {
				continue
			}
			if err := add(rooms.TypeMember, strp(u), inviteContents[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"room_id": roomID}, nil
}

// ---- membership ----

// setMembership sends a member event for target unless it is a no-op.
func (s *Server) setMembership(ctx context.Context, roomID, sender, target, membership, reason string, noop func(cur string) bool) error {
	if !validRoomID(roomID) {
		return api.InvalidParam("invalid room ID")
	}
	content := s.memberContent(ctx, target, membership, reason, nil)
	return s.writeRoom(ctx, roomID, "", func(rt *roomTx) error {
		cur := rt.state.Membership(target)
		if rt.state.Get(rooms.TypeMember, target) == nil {
			cur = ""
		}
		if noop != nil && noop(cur) {
			return nil
		}
		_, _, err := rt.add(rooms.Proto{Type: rooms.TypeMember, StateKey: &target, Sender: sender, Content: content}, "", "")
		return err
	})
}

type membershipRequest struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

func (s *Server) join(r *http.Request, roomID string) (any, error) {
	sess := mustSession(r)
	var req membershipRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	err := s.setMembership(r.Context(), roomID, sess.UserID, sess.UserID, rooms.MembershipJoin, req.Reason,
		func(cur string) bool { return cur == rooms.MembershipJoin })
	if err != nil {
		return nil, err
	}
	return map[string]string{"room_id": roomID}, nil
}

func (s *Server) joinRoomByID(r *http.Request) (any, error) { return s.join(r, r.PathValue("roomId")) }

func (s *Server) joinRoomByAlias(r *http.Request) (any, error) {
	id := r.PathValue("roomIdOrAlias")
	if strings.HasPrefix(id, "#") {
		rid, err := s.store.ResolveAlias(r.Context(), id)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, api.NotFound("unknown room alias")
		}
		if err != nil {
			return nil, err
		}
		id = rid
	}
	return s.join(r, id)
}

func (s *Server) membershipOf(membership string) handlerFunc {
	return func(r *http.Request) (any, error) {
		sess := mustSession(r)
		var req membershipRequest
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		if req.UserID == "" {
			return nil, api.MissingParam("missing user_id")
		}
		var noop func(string) bool
		switch membership {
		case rooms.MembershipInvite:
			if !s.isLocalUser(req.UserID) {
				return nil, api.Forbidden("cannot invite users of other servers")
			}
			if _, err := s.store.User(r.Context(), req.UserID); err != nil {
				return nil, api.NotFound("unknown user")
			}
			noop = func(cur string) bool { return cur == rooms.MembershipInvite }
		case rooms.MembershipLeave: // kick
			noop = func(cur string) bool { return cur == rooms.MembershipLeave || cur == "" }
		}
		return empty, s.setMembership(r.Context(), r.PathValue("roomId"), sess.UserID, req.UserID, membership, req.Reason, noop)
	}
}

func (s *Server) unban(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req membershipRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if req.UserID == "" {
		return nil, api.MissingParam("missing user_id")
	}
	cur, err := s.store.StateEvent(r.Context(), r.PathValue("roomId"), rooms.TypeMember, req.UserID)
	if err != nil || cur.Membership != rooms.MembershipBan {
		return nil, api.NewError(http.StatusBadRequest, api.ErrCodeBadState, "user is not banned")
	}
	return empty, s.setMembership(r.Context(), r.PathValue("roomId"), sess.UserID, req.UserID, rooms.MembershipLeave, req.Reason, nil)
}

func (s *Server) leave(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req membershipRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	roomID := r.PathValue("roomId")
	cur, err := s.store.StateEvent(r.Context(), roomID, rooms.TypeMember, sess.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		if _, err := s.store.Room(r.Context(), roomID); err != nil {
			return nil, api.NotFound("unknown room")
		}
		return nil, api.Forbidden("not a member of the room")
	}
	if err != nil {
		return nil, err
	}
	if cur.Membership == rooms.MembershipLeave || cur.Membership == rooms.MembershipBan {
		return empty, nil
	}
	return empty, s.setMembership(r.Context(), roomID, sess.UserID, sess.UserID, rooms.MembershipLeave, req.Reason,
		func(cur string) bool { return cur == rooms.MembershipLeave || cur == rooms.MembershipBan || cur == "" })
}

func (s *Server) forget(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	cur, err := s.store.StateEvent(r.Context(), roomID, rooms.TypeMember, sess.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("not a member of the room")
	}
	if err != nil {
		return nil, err
	}
	if cur.Membership == rooms.MembershipJoin || cur.Membership == rooms.MembershipInvite {
		return nil, api.Unknown("cannot forget a room you are still in")
	}
	err = s.store.Forget(r.Context(), roomID, sess.UserID)
	s.memberC.invalidate()
	return empty, err
}

func (s *Server) joinedRooms(r *http.Request) (any, error) {
	ms, err := s.store.UserMemberships(r.Context(), mustSession(r).UserID)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, m := range ms {
		if m.Membership == rooms.MembershipJoin {
			out = append(out, m.RoomID)
		}
	}
	slices.Sort(out)
	return map[string]any{"joined_rooms": out}, nil
}

// updateMemberProfiles re-sends the user's join event in every joined room
// after a profile change (best effort).
func (s *Server) updateMemberProfiles(r *http.Request, userID string) {
	ms, err := s.store.UserMemberships(r.Context(), userID)
	if err != nil {
		return
	}
	for _, m := range ms {
		if m.Membership != rooms.MembershipJoin {
			continue
		}
		if err := s.setMembership(r.Context(), m.RoomID, userID, userID, rooms.MembershipJoin, "", nil); err != nil {
			s.log.Warn("profile update in room", "room_id", m.RoomID, "err", err)
		}
	}
}

// ---- reading state ----

// readAccess returns the visibility of a room for the caller and the last
// position whose state they may read; 403 if they were never joined.
func (s *Server) readAccess(ctx context.Context, roomID, userID string) (*visibility, int64, error) {
	if !validRoomID(roomID) {
		return nil, 0, api.InvalidParam("invalid room ID")
	}
	v, err := s.newVisibility(ctx, roomID, userID)
	if err != nil {
		return nil, 0, err
	}
	lim, ok := v.readLimit(s.store.Pos())
	if !ok {
		if len(v.hv) > 0 && v.hv[len(v.hv)-1].vis == rooms.WorldReadable {
			return v, s.store.Pos(), nil
		}
		return nil, 0, api.Forbidden("you are not a member of the room")
	}
	return v, lim, nil
}

func (s *Server) getAllState(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	_, lim, err := s.readAccess(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.StateAt(r.Context(), roomID, lim)
	if err != nil {
		return nil, err
	}
	return s.clientEvents(r.Context(), evs, clientOpts{sess: sess})
}

func (s *Server) getState(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	_, lim, err := s.readAccess(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	e, err := s.store.StateEventAt(r.Context(), roomID, r.PathValue("eventType"), r.PathValue("stateKey"), lim)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("no such state")
	}
	if err != nil {
		return nil, err
	}
	c, err := s.clientEvent(r.Context(), e, clientOpts{sess: sess})
	if err != nil {
		return nil, err
	}
	if r.URL.Query().Get("format") == "event" {
		return c, nil
	}
	var ce struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(c, &ce); err != nil {
		return nil, err
	}
	return ce.Content, nil
}

// ---- sending ----

// sendEvent builds and stores an event inside the writer, recording the
// transaction result (if txn is set) in the same commit.
func (s *Server) sendEvent(ctx context.Context, sess Session, roomID string, p rooms.Proto, txn *storage.TxnKey, txnID string) (string, error) {
	if !validRoomID(roomID) {
		return "", api.InvalidParam("invalid room ID")
	}
	var eventID string
	err := s.writeRoom(ctx, roomID, "", func(rt *roomTx) error {
		if txn != nil {
			if res, err := rt.w.Txn(*txn); err == nil {
				var b struct {
					EventID string `json:"event_id"`
				}
				_ = json.Unmarshal(res.Body, &b)
				eventID = b.EventID
				return nil
			}
		}
		if p.Type == rooms.TypeRedaction {
			target := rt.state // current state for the permission check
			te, err := s.store.Event(ctx, p.Redacts)
			if err == nil && te.RoomID == roomID {
				tev, err := rooms.LoadEvent(rt.version, te.EventID, te.PDU)
				if err != nil {
					return err
				}
				if err := rooms.MayRedact(target, p.Sender, tev); err != nil {
					return mapRoomsErr(err)
				}
			} else if p.Redacts == "" {
				return api.BadJSON("missing redacts")
			}
		}
		se, ev, err := rt.add(p, txnID, sess.DeviceID)
		if err != nil {
			return err
		}
		eventID = se.EventID
		if p.Type == rooms.TypeRedaction {
			if err := s.applyRedaction(ctx, rt, ev); err != nil {
				return err
			}
		}
		if txn != nil {
			return rt.w.PutTxn(*txn, storage.TxnResult{Status: 200, Body: mustJSON(map[string]string{"event_id": eventID})})
		}
		return nil
	})
	return eventID, err
}

// applyRedaction stores the redacted form of the target of an accepted redaction.
func (s *Server) applyRedaction(ctx context.Context, rt *roomTx, red *rooms.Event) error {
	te, err := s.store.Event(ctx, red.Redacts())
	if errors.Is(err, storage.ErrNotFound) || (err == nil && te.RoomID != rt.roomID) {
		return nil // redactions of unknown events are stored but apply to nothing
	}
	if err != nil {
		return err
	}
	tev, err := rooms.LoadEvent(rt.version, te.EventID, te.PDU)
	if err != nil {
		return err
	}
	redacted, err := tev.Redact()
	if err != nil {
		return err
	}
	if err := rt.w.Redact(te.EventID, red.ID(), redacted.JSON()); err != nil {
		return err
	}
	if sk, ok := redacted.StateKey(); ok {
		if cur := rt.state.Get(redacted.Type(), sk); cur != nil && cur.ID() == redacted.ID() {
			rt.state.Set(redacted)
		}
	}
	return nil
}

func (s *Server) txnKey(r *http.Request, sess Session) *storage.TxnKey {
	return &storage.TxnKey{UserID: sess.UserID, DeviceID: sess.DeviceID, Path: r.Method + " " + strings.Replace(r.URL.Path, "/r0/", "/v3/", 1)}
}

func (s *Server) send(r *http.Request) (any, error) {
	sess := mustSession(r)
	k := s.txnKey(r, sess)
	if res, err := s.store.Txn(r.Context(), *k); err == nil {
		return &response{status: res.Status, body: res.Body}, nil
	}
	content, err := readObject(r)
	if err != nil {
		return nil, err
	}
	p := rooms.Proto{Type: r.PathValue("eventType"), Sender: sess.UserID, Content: content}
	if p.Type == rooms.TypeRedaction {
		p.Redacts = contentString(mustJSON(map[string]json.RawMessage{"content": content}), "redacts")
	}
	id, err := s.sendEvent(r.Context(), sess, r.PathValue("roomId"), p, k, r.PathValue("txnId"))
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": id}, nil
}

func (s *Server) putState(r *http.Request) (any, error) {
	sess := mustSession(r)
	content, err := readObject(r)
	if err != nil {
		return nil, err
	}
	typ, sk := r.PathValue("eventType"), r.PathValue("stateKey")
	id, err := s.sendEvent(r.Context(), sess, r.PathValue("roomId"), rooms.Proto{Type: typ, StateKey: &sk, Sender: sess.UserID, Content: content}, nil, "")
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": id}, nil
}

func (s *Server) redact(r *http.Request) (any, error) {
	sess := mustSession(r)
	k := s.txnKey(r, sess)
	if res, err := s.store.Txn(r.Context(), *k); err == nil {
		return &response{status: res.Status, body: res.Body}, nil
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	content := map[string]any{}
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	id, err := s.sendEvent(r.Context(), sess, r.PathValue("roomId"), rooms.Proto{Type: rooms.TypeRedaction, Sender: sess.UserID,
		Content: mustJSON(content), Redacts: r.PathValue("eventId")}, k, r.PathValue("txnId"))
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": id}, nil
}

// ---- reading events ----

func (s *Server) getEvent(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	v, _, err := s.readAccess(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	e, err := s.store.Event(r.Context(), r.PathValue("eventId"))
	if err != nil || e.RoomID != roomID || !v.canSee(e) {
		return nil, api.NotFound("event not found")
	}
	return s.clientEvent(r.Context(), e, clientOpts{sess: sess})
}

// parseFilterParam parses a RoomEventFilter from a query parameter (JSON).
func parseFilterParam(q string) (*api.RoomEventFilter, error) {
	if q == "" {
		return &api.RoomEventFilter{}, nil
	}
	var f api.RoomEventFilter
	if err := json.Unmarshal([]byte(q), &f); err != nil {
		return nil, api.BadJSON("invalid filter")
	}
	return &f, nil
}

func parsePos(tok string) (int64, error) {
	t, err := sync.ParseToken(tok)
	if err != nil {
		return 0, api.InvalidParam("invalid pagination token")
	}
	return t.Pos, nil
}

func pagToken(pos int64) string { return "t" + strconv.FormatInt(pos, 10) }

// lazyMembers returns the member events (at pos) of the senders of evs.
func (s *Server) lazyMembers(ctx context.Context, roomID string, evs []*storage.Event, pos int64, sess Session) ([]json.RawMessage, error) {
	seen := map[string]bool{}
	out := []json.RawMessage{}
	for _, e := range evs {
		if seen[e.Sender] {
			continue
		}
		seen[e.Sender] = true
		m, err := s.store.StateEventAt(ctx, roomID, rooms.TypeMember, e.Sender, pos)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c, err := s.clientEvent(ctx, m, clientOpts{sess: sess})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func filterEvents(f *api.RoomEventFilter, evs []*storage.Event) []*storage.Event {
	out := evs[:0:0]
	for _, e := range evs {
		if f.Allows(e.Type, e.Sender) {
			out = append(out, e)
		}
	}
	return out
}

func (s *Server) messages(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	v, lim, err := s.readAccess(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	dir := q.Get("dir")
	if dir != "b" && dir != "f" {
		return nil, api.InvalidParam("dir must be b or f")
	}
	limit := 10
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, api.InvalidParam("invalid limit")
		}
		limit = min(max(n, 1), 1000)
	}
	f, err := parseFilterParam(q.Get("filter"))
	if err != nil {
		return nil, err
	}
	from := lim
	if dir == "f" {
		from = 0
	}
	if t := q.Get("from"); t != "" {
		if from, err = parsePos(t); err != nil {
			return nil, err
		}
	}
	to := int64(-1)
	if t := q.Get("to"); t != "" {
		if to, err = parsePos(t); err != nil {
			return nil, err
		}
	}
	var evs []*storage.Event
	var end int64
	more := false
	if dir == "b" {
		from = min(from, lim)
		lo := int64(0)
		if to >= 0 {
			lo = to
		}
		if evs, err = s.store.Events(r.Context(), roomID, lo, from, limit, true); err != nil {
			return nil, err
		}
		if len(evs) == limit {
			end, more = evs[0].Pos-1, true
		}
		slices.Reverse(evs)
	} else {
		hi := lim
		if to >= 0 {
			hi = min(hi, to)
		}
		if evs, err = s.store.Events(r.Context(), roomID, from, hi, limit, false); err != nil {
			return nil, err
		}
		if len(evs) == limit {
			end, more = evs[len(evs)-1].Pos, true
		}
	}
	visible := filterEvents(f, v.filter(evs))
	chunk, err := s.clientEvents(r.Context(), visible, clientOpts{sess: sess})
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"start": pagToken(from), "chunk": chunk}
	if more {
		resp["end"] = pagToken(end)
	}
	if f.LazyLoadMembers {
		st, err := s.lazyMembers(r.Context(), roomID, visible, lim, sess)
		if err != nil {
			return nil, err
		}
		resp["state"] = st
	}
	return resp, nil
}

func (s *Server) context(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	v, lim, err := s.readAccess(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	e, err := s.store.Event(r.Context(), r.PathValue("eventId"))
	if err != nil || e.RoomID != roomID || e.Pos > lim || !v.canSee(e) {
		return nil, api.NotFound("event not found")
	}
	limit := 10
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, api.InvalidParam("invalid limit")
		}
		limit = min(n, 100)
	}
	f, err := parseFilterParam(r.URL.Query().Get("filter"))
	if err != nil {
		return nil, err
	}
	nb := limit / 2
	na := limit - nb
	var before, after []*storage.Event
	if nb > 0 {
		if before, err = s.store.Events(r.Context(), roomID, 0, e.Pos-1, nb, true); err != nil {
			return nil, err
		}
	}
	if na > 0 {
		if after, err = s.store.Events(r.Context(), roomID, e.Pos, lim, na, false); err != nil {
			return nil, err
		}
	}
	start, end := e.Pos-1, e.Pos
	if len(before) > 0 {
		start = before[0].Pos - 1
	}
	if len(after) > 0 {
		end = after[len(after)-1].Pos
	}
	before = filterEvents(f, v.filter(before))
	after = filterEvents(f, v.filter(after))
	slices.Reverse(before)
	o := clientOpts{sess: sess}
	ev, err := s.clientEvent(r.Context(), e, o)
	if err != nil {
		return nil, err
	}
	cb, err := s.clientEvents(r.Context(), before, o)
	if err != nil {
		return nil, err
	}
	ca, err := s.clientEvents(r.Context(), after, o)
	if err != nil {
		return nil, err
	}
	var state []json.RawMessage
	if f.LazyLoadMembers {
		all := append(append(append([]*storage.Event{}, before...), e), after...)
		state, err = s.lazyMembers(r.Context(), roomID, all, end, sess)
	} else {
		var st []*storage.Event
		if st, err = s.store.StateAt(r.Context(), roomID, end); err == nil {
			state, err = s.clientEvents(r.Context(), st, o)
		}
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"event": ev, "events_before": cb, "events_after": ca, "start": pagToken(start), "end": pagToken(end), "state": state}, nil
}

func (s *Server) members(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	_, lim, err := s.readAccess(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	at := lim
	if t := q.Get("at"); t != "" {
		p, err := parsePos(t)
		if err != nil {
			return nil, err
		}
		at = min(p, lim)
	}
	st, err := s.store.StateAt(r.Context(), roomID, at)
	if err != nil {
		return nil, err
	}
	want, notWant := q.Get("membership"), q.Get("not_membership")
	var sel []*storage.Event
	for _, e := range st {
		if e.Type != rooms.TypeMember {
			continue
		}
		if want != "" && e.Membership != want {
			continue
		}
		if notWant != "" && e.Membership == notWant {
			continue
		}
		sel = append(sel, e)
	}
	chunk, err := s.clientEvents(r.Context(), sel, clientOpts{sess: sess})
	if err != nil {
		return nil, err
	}
	return map[string]any{"chunk": chunk}, nil
}

func (s *Server) joinedMembers(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	_, lim, err := s.readAccess(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	st, err := s.store.StateAt(r.Context(), roomID, lim)
	if err != nil {
		return nil, err
	}
	joined := map[string]any{}
	for _, e := range st {
		if e.Type != rooms.TypeMember || e.Membership != rooms.MembershipJoin || e.StateKey == nil {
			continue
		}
		m := map[string]any{}
		if dn := contentString(e.PDU, "displayname"); dn != "" {
			m["display_name"] = dn
		}
		if av := contentString(e.PDU, "avatar_url"); av != "" {
			m["avatar_url"] = av
		}
		joined[*e.StateKey] = m
	}
	return map[string]any{"joined": joined}, nil
}

// ---- ephemeral: typing, receipts, read markers ----

// requireJoined returns the room's joined members if the caller is joined.
func (s *Server) requireJoined(ctx context.Context, roomID, userID string) ([]string, error) {
	if !validRoomID(roomID) {
		return nil, api.InvalidParam("invalid room ID")
	}
	st, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var joined []string
	me := false
	for _, e := range st {
		if e.Type == rooms.TypeMember && e.Membership == rooms.MembershipJoin && e.StateKey != nil {
			joined = append(joined, *e.StateKey)
			me = me || *e.StateKey == userID
		}
	}
	if !me {
		return nil, api.Forbidden("you are not joined to the room")
	}
	return joined, nil
}

func (s *Server) putTyping(r *http.Request) (any, error) {
	sess := mustSession(r)
	if r.PathValue("userId") != sess.UserID {
		return nil, api.Forbidden("cannot set typing for another user")
	}
	var req struct {
		Typing  bool  `json:"typing"`
		Timeout int64 `json:"timeout"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	roomID := r.PathValue("roomId")
	joined, err := s.requireJoined(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(min(max(req.Timeout, 0), 120000)) * time.Millisecond
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	now := s.now()
	if s.typing.set(roomID, sess.UserID, req.Typing, now.Add(timeout), now) {
		s.notifier.Kick(joined...)
	}
	return empty, nil
}

func (s *Server) putReceipt(ctx context.Context, roomID, userID, typ, eventID, threadID string, joined []string) error {
	e, err := s.store.Event(ctx, eventID)
	if err != nil || e.RoomID != roomID {
		return api.NotFound("unknown event")
	}
	switch typ {
	case "m.fully_read":
		_, err := s.store.PutAccountData(ctx, userID, roomID, "m.fully_read", mustJSON(map[string]string{"event_id": eventID}))
		return err
	case "m.read", "m.read.private":
		wake := joined
		if typ == "m.read.private" {
			wake = []string{userID} // private receipts reach only their owner
		}
		_, err := s.store.PutReceipt(ctx, storage.Receipt{RoomID: roomID, UserID: userID, Type: typ, ThreadID: threadID, EventID: eventID, TS: s.now().UnixMilli()}, wake)
		return err
	}
	return api.InvalidParam("unknown receipt type")
}

func (s *Server) postReceipt(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req struct {
		ThreadID string `json:"thread_id"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if req.ThreadID != "" && req.ThreadID != "main" && !strings.HasPrefix(req.ThreadID, "$") {
		return nil, api.InvalidParam("invalid thread_id")
	}
	roomID := r.PathValue("roomId")
	joined, err := s.requireJoined(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	return empty, s.putReceipt(r.Context(), roomID, sess.UserID, r.PathValue("receiptType"), r.PathValue("eventId"), req.ThreadID, joined)
}

func (s *Server) readMarkers(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req map[string]string
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	roomID := r.PathValue("roomId")
	joined, err := s.requireJoined(r.Context(), roomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	for _, typ := range []string{"m.fully_read", "m.read", "m.read.private"} {
		if id := req[typ]; id != "" {
			if err := s.putReceipt(r.Context(), roomID, sess.UserID, typ, id, "", joined); err != nil {
				return nil, err
			}
		}
	}
	return empty, nil
}

// ---- directory ----

func (s *Server) getAlias(r *http.Request) (any, error) {
	id, err := s.store.ResolveAlias(r.Context(), r.PathValue("alias"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("unknown room alias")
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"room_id": id, "servers": []string{s.cfg.ServerName}}, nil
}

func (s *Server) putAlias(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req struct {
		RoomID string `json:"room_id"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	alias := r.PathValue("alias")
	if !strings.HasPrefix(alias, "#") || !strings.HasSuffix(alias, ":"+s.cfg.ServerName) || len(alias) > 255 {
		return nil, api.InvalidParam("invalid alias")
	}
	if _, err := s.requireJoined(r.Context(), req.RoomID, sess.UserID); err != nil {
		return nil, err
	}
	if err := s.store.PutAlias(r.Context(), alias, req.RoomID, sess.UserID); errors.Is(err, storage.ErrExists) {
		return nil, api.NewError(http.StatusConflict, api.ErrCodeUnknown, "room alias already exists")
	} else if err != nil {
		return nil, err
	}
	return empty, nil
}

func (s *Server) deleteAlias(r *http.Request) (any, error) {
	sess := mustSession(r)
	alias := r.PathValue("alias")
	creator, err := s.store.AliasCreator(r.Context(), alias)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("unknown room alias")
	}
	if err != nil {
		return nil, err
	}
	if creator != sess.UserID {
		roomID, err := s.store.ResolveAlias(r.Context(), alias)
		if err != nil {
			return nil, err
		}
		st, err := s.store.CurrentState(r.Context(), roomID)
		if err != nil {
			return nil, err
		}
		rs, err := s.loadState(r.Context(), roomID, st)
		if err != nil {
			return nil, err
		}
		pl := rs.PowerLevels()
		if pl.UserLevel(sess.UserID) < pl.EventLevel("m.room.canonical_alias", true) {
			return nil, api.Forbidden("not allowed to delete this alias")
		}
	}
	return empty, s.store.DeleteAlias(r.Context(), alias)
}

func (s *Server) roomAliases(r *http.Request) (any, error) {
	sess := mustSession(r)
	roomID := r.PathValue("roomId")
	if _, _, err := s.readAccess(r.Context(), roomID, sess.UserID); err != nil {
		return nil, err
	}
	as, err := s.store.RoomAliases(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"aliases": as}, nil
}

func (s *Server) getDirectoryVisibility(r *http.Request) (any, error) {
	info, err := s.store.Room(r.Context(), r.PathValue("roomId"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("unknown room")
	}
	if err != nil {
		return nil, err
	}
	v := "private"
	if info.Published {
		v = "public"
	}
	return map[string]string{"visibility": v}, nil
}

func (s *Server) putDirectoryVisibility(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req struct {
		Visibility string `json:"visibility"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Visibility != "public" && req.Visibility != "private" {
		return nil, api.InvalidParam("visibility must be public or private")
	}
	roomID := r.PathValue("roomId")
	if _, err := s.requireJoined(r.Context(), roomID, sess.UserID); err != nil {
		return nil, err
	}
	return empty, s.store.WriteRoom(r.Context(), roomID, func(w storage.RoomWriter) error {
		return w.SetPublished(req.Visibility == "public")
	})
}

func (s *Server) publicRooms(r *http.Request) (any, error) {
	ids, err := s.store.PublicRooms(r.Context())
	if err != nil {
		return nil, err
	}
	chunk := []map[string]any{}
	for _, id := range ids {
		st, err := s.store.CurrentState(r.Context(), id)
		if err != nil {
			return nil, err
		}
		entry := map[string]any{"room_id": id, "num_joined_members": 0, "world_readable": false, "guest_can_join": false}
		n := 0
		for _, e := range st {
			switch e.Type {
			case rooms.TypeMember:
				if e.Membership == rooms.MembershipJoin {
					n++
				}
			case "m.room.name":
				entry["name"] = contentString(e.PDU, "name")
			case "m.room.topic":
				entry["topic"] = contentString(e.PDU, "topic")
			case "m.room.canonical_alias":
				entry["canonical_alias"] = contentString(e.PDU, "alias")
			case "m.room.avatar":
				entry["avatar_url"] = contentString(e.PDU, "url")
			case rooms.TypeJoinRules:
				entry["join_rule"] = contentString(e.PDU, "join_rule")
			case rooms.TypeHistoryVisibility:
				entry["world_readable"] = contentString(e.PDU, "history_visibility") == "world_readable"
			}
		}
		entry["num_joined_members"] = n
		chunk = append(chunk, entry)
	}
	return map[string]any{"chunk": chunk, "total_room_count_estimate": len(chunk)}, nil
}
