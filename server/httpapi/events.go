package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	gosync "sync"

	"myelin/api"
	"myelin/server/rooms"
	"myelin/server/storage"
)

// roomCache keeps each room's current state parsed, for the event builder. It is
// used only inside WriteRoom callbacks (the single writer); every use checks the
// room's latest event against the database, so a rolled-back write can never
// leave a stale entry in use.
type roomCache struct {
	mu    gosync.Mutex
	rooms map[string]*cachedRoom
	vers  map[string]rooms.RoomVersion
}

type cachedRoom struct {
	version rooms.RoomVersion
	state   *rooms.State
	lastID  string
	depth   int64
}

// roomTx is the view of one room inside a write transaction.
type roomTx struct {
	s       *Server
	w       storage.RoomWriter
	roomID  string
	version rooms.RoomVersion
	state   *rooms.State
	lastID  string
	depth   int64
	wake    map[string]struct{}
	added   []*storage.Event
	// memberChange is set when a member event was added.
	memberChange bool
}

// mapRoomsErr translates rooms package errors into Matrix errors.
func mapRoomsErr(err error) error {
	var ae *rooms.AuthError
	var tl *rooms.TooLargeError
	switch {
	case errors.As(err, &ae):
		return api.Forbidden(ae.Reason)
	case errors.Is(err, rooms.ErrForbidden):
		return api.Forbidden("forbidden by the room's authorisation rules")
	case errors.As(err, &tl):
		return api.TooLarge(fmt.Sprintf("%s too large: %d > %d bytes", tl.What, tl.Size, tl.Limit))
	case errors.Is(err, rooms.ErrEventTooLarge):
		return api.TooLarge("event too large")
	case errors.Is(err, rooms.ErrInvalidEvent):
		return api.BadJSON(err.Error())
	case errors.Is(err, rooms.ErrUnsupportedRoomVersion):
		return api.NewError(http.StatusBadRequest, api.ErrCodeUnsupportedRoomVer, "unsupported room version")
	}
	return err
}

// openRoom loads the room inside a write transaction. create is set for a new room.
func (s *Server) openRoom(w storage.RoomWriter, roomID string, newVersion rooms.RoomVersion) (*roomTx, error) {
	rt := &roomTx{s: s, w: w, roomID: roomID, wake: map[string]struct{}{}}
	if newVersion != "" {
		rt.version, rt.state = newVersion, rooms.NewState()
		return rt, nil
	}
	last, depth, err := w.LastEvent()
	if err != nil {
		return nil, err
	}
	if last == nil {
		return nil, api.NotFound("unknown room")
	}
	s.cache.mu.Lock()
	c := s.cache.rooms[roomID]
	s.cache.mu.Unlock()
	if c != nil && c.lastID == last.EventID {
		rt.version, rt.state, rt.lastID, rt.depth = c.version, c.state.Clone(), c.lastID, c.depth
		return rt, nil
	}
	info, err := w.Room()
	if err != nil {
		return nil, err
	}
	rt.version = rooms.RoomVersion(info.Version)
	evs, err := w.AllState()
	if err != nil {
		return nil, err
	}
	rt.state = rooms.NewState()
	for _, e := range evs {
		re, err := rooms.LoadEvent(rt.version, e.EventID, e.PDU)
		if err != nil {
			return nil, fmt.Errorf("httpapi: load state event %s: %w", e.EventID, err)
		}
		rt.state.Set(re)
	}
	rt.lastID, rt.depth = last.EventID, depth
	return rt, nil
}

// add builds, authorises and appends one event.
func (rt *roomTx) add(p rooms.Proto, txnID, txnDevice string) (*storage.Event, *rooms.Event, error) {
	pos := rooms.Position{Version: rt.version, RoomID: rt.roomID, State: rt.state, PrevDepth: rt.depth, Now: rt.s.now()}
	if rt.lastID != "" {
		pos.PrevEvents = []string{rt.lastID}
	}
	ev, err := rooms.Build(p, pos, rt.s.signer)
	if err != nil {
		return nil, nil, mapRoomsErr(err)
	}
	ne := storage.NewEvent{EventID: ev.ID(), Type: ev.Type(), Sender: ev.Sender(), OriginTS: ev.OriginServerTS(), Depth: ev.Depth(),
		Membership: ev.Membership(), PDU: ev.JSON(), TxnID: txnID, TxnDevice: txnDevice}
	if sk, ok := ev.StateKey(); ok {
		ne.StateKey = &sk
		if prev := rt.state.Get(ev.Type(), sk); prev != nil {
			ne.ReplacesState = prev.ID()
		}
	}
	// Wake everyone joined before and after the event, and a member event's target.
	for _, u := range rt.state.Members(rooms.MembershipJoin) {
		rt.wake[u] = struct{}{}
	}
	se, err := rt.w.Append(ne)
	if err != nil {
		return nil, nil, err
	}
	rt.state.Set(ev)
	if ne.StateKey != nil && ev.Type() == rooms.TypeMember {
		rt.wake[*ne.StateKey] = struct{}{}
		rt.memberChange = true
	}
	for _, u := range rt.state.Members(rooms.MembershipJoin) {
		rt.wake[u] = struct{}{}
	}
	rt.lastID, rt.depth = ev.ID(), ev.Depth()
	rt.added = append(rt.added, se)
	return se, ev, nil
}

// finish wakes syncs and caches the state; call it last in the callback.
func (rt *roomTx) finish() {
	for u := range rt.wake {
		rt.w.Wake(u)
	}
	if rt.memberChange {
		rt.w.OnCommit(rt.s.memberC.invalidate)
	}
	c := &cachedRoom{version: rt.version, state: rt.state, lastID: rt.lastID, depth: rt.depth}
	rt.s.cache.mu.Lock()
	rt.s.cache.rooms[rt.roomID] = c
	rt.s.cache.vers[rt.roomID] = rt.version
	rt.s.cache.mu.Unlock()
}

// writeRoom runs fn on the room inside the writer.
func (s *Server) writeRoom(ctx context.Context, roomID string, newVersion rooms.RoomVersion, fn func(rt *roomTx) error) error {
	return s.store.WriteRoom(ctx, roomID, func(w storage.RoomWriter) error {
		rt, err := s.openRoom(w, roomID, newVersion)
		if err != nil {
			return err
		}
		if err := fn(rt); err != nil {
			return err
		}
		rt.finish()
		return nil
	})
}

// roomVersion returns a room's version (cached; versions never change).
func (s *Server) roomVersion(ctx context.Context, roomID string) (rooms.RoomVersion, error) {
	s.cache.mu.Lock()
	v, ok := s.cache.vers[roomID]
	s.cache.mu.Unlock()
	if ok {
		return v, nil
	}
	info, err := s.store.Room(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", api.NotFound("unknown room")
	}
	if err != nil {
		return "", err
	}
	v = rooms.RoomVersion(info.Version)
	s.cache.mu.Lock()
	s.cache.vers[roomID] = v
	s.cache.mu.Unlock()
	return v, nil
}

// loadEvent parses a stored event.
func (s *Server) loadEvent(ctx context.Context, e *storage.Event) (*rooms.Event, error) {
	v, err := s.roomVersion(ctx, e.RoomID)
	if err != nil {
		return nil, err
	}
	return rooms.LoadEvent(v, e.EventID, e.PDU)
}

// loadState parses stored state events into a State.
func (s *Server) loadState(ctx context.Context, roomID string, evs []*storage.Event) (*rooms.State, error) {
	v, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	st := rooms.NewState()
	for _, e := range evs {
		re, err := rooms.LoadEvent(v, e.EventID, e.PDU)
		if err != nil {
			return nil, err
		}
		st.Set(re)
	}
	return st, nil
}

// clientOpts says how an event is served to a session.
type clientOpts struct {
	omitRoomID bool
	sess       Session
}

// clientEvent converts a stored event to the client format for sess.
func (s *Server) clientEvent(ctx context.Context, e *storage.Event, o clientOpts) (json.RawMessage, error) {
	re, err := s.loadEvent(ctx, e)
	if err != nil {
		return nil, err
	}
	co := rooms.ClientOptions{Now: s.now(), OmitRoomID: o.omitRoomID}
	if e.TxnID != "" && e.Sender == o.sess.UserID && e.TxnDevice == o.sess.DeviceID {
		co.TransactionID = e.TxnID
	}
	if e.ReplacesState != "" {
		if prev, err := s.store.Event(ctx, e.ReplacesState); err == nil {
			if pe, err := s.loadEvent(ctx, prev); err == nil {
				co.Replaced = pe
			}
		}
	}
	if e.RedactedBy != "" {
		if red, err := s.store.Event(ctx, e.RedactedBy); err == nil {
			if re2, err := s.loadEvent(ctx, red); err == nil {
				co.RedactedBecause = re2
			}
		}
	}
	if e.Type == rooms.TypeMember && e.Membership == rooms.MembershipInvite && e.StateKey != nil && *e.StateKey == o.sess.UserID {
		if st, err := s.store.StateAt(ctx, e.RoomID, e.Pos); err == nil {
			if rs, err := s.loadState(ctx, e.RoomID, st); err == nil {
				co.InviteRoomState = rs.InviteState(e.Sender)
			}
		}
	}
	return json.Marshal(re.Client(co))
}

// clientEvents converts a list.
func (s *Server) clientEvents(ctx context.Context, evs []*storage.Event, o clientOpts) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(evs))
	for _, e := range evs {
		c, err := s.clientEvent(ctx, e, o)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
