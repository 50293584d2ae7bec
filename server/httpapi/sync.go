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
	"myelin/server/rooms"
	"myelin/server/storage"
	"myelin/server/sync"
)

// /sync (https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3sync).

const (
	defaultTimelineLimit = 10
	maxTimelineLimit     = 100
	maxSyncTimeout       = 5 * time.Minute
)

func (s *Server) syncRoutes() {
	s.client("GET", "/sync", authRequired, s.sync)
}

func (s *Server) syncFilter(r *http.Request, userID string) (*api.Filter, error) {
	f := &api.Filter{}
	q := r.URL.Query().Get("filter")
	if q == "" {
		return f, nil
	}
	raw := []byte(q)
	if !strings.HasPrefix(strings.TrimSpace(q), "{") {
		stored, err := s.store.Filter(r.Context(), userID, q)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, api.InvalidParam("unknown filter")
		}
		if err != nil {
			return nil, err
		}
		raw = stored
	}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, api.BadJSON("invalid filter")
	}
	return f, nil
}

func (s *Server) sync(r *http.Request) (any, error) {
	sess := mustSession(r)
	q := r.URL.Query()
	f, err := s.syncFilter(r, sess.UserID)
	if err != nil {
		return nil, err
	}
	var since *sync.Token
	if t := q.Get("since"); t != "" {
		tok, err := sync.ParseToken(t)
		if err != nil {
			return nil, api.InvalidParam("invalid since token")
		}
		since = &tok
	}
	timeout := time.Duration(0)
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return nil, api.InvalidParam("invalid timeout")
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxSyncTimeout)
	}
	fullState := q.Get("full_state") == "true"
	s.touch(r, sess)

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	woken := false
	for {
		upto := s.store.Pos()
		typ := s.typing.current()
		resp, nonEmpty, err := s.buildSync(r.Context(), sess, f, since, upto, typ, fullState)
		if err != nil {
			return nil, err
		}
		if since == nil || fullState || nonEmpty || woken || ctx.Err() != nil {
			return resp, nil
		}
		if !s.notifier.Wait(ctx, sess.UserID, upto) {
			return resp, nil // timeout: the (empty) response with an unchanged position
		}
		woken = true
	}
}

type syncRoom map[string]any

// buildSync computes one sync response for (since, upto].
func (s *Server) buildSync(ctx context.Context, sess Session, f *api.Filter, since *sync.Token, upto, typ int64, fullState bool) (map[string]any, bool, error) {
	var from sync.Token
	if since != nil {
		from = *since
	}
	initial := since == nil
	nonEmpty := false
	ms, shared, err := s.memberships(ctx, sess.UserID)
	if err != nil {
		return nil, false, err
	}
	join, invite, leave := map[string]any{}, map[string]any{}, map[string]any{}
	changed, left := map[string]bool{}, map[string]bool{}

	// Room account data, grouped by room.
	adFrom := from.Pos
	if fullState {
		adFrom = 0
	}
	ad, err := s.store.AccountDataRange(ctx, sess.UserID, adFrom, upto)
	if err != nil {
		return nil, false, err
	}
	roomAD := map[string][]api.BasicEvent{}
	globalAD := []api.BasicEvent{}
	for _, it := range ad {
		ev := api.BasicEvent{Type: it.Type, Content: it.Content}
		if it.RoomID == "" {
			if f.AccountData.Allows(it.Type, "") {
				globalAD = append(globalAD, ev)
			}
		} else if f.Room.AccountData.Allows(it.Type, "") {
			roomAD[it.RoomID] = append(roomAD[it.RoomID], ev)
		}
	}
	if initial || fullState {
		if !slices.ContainsFunc(globalAD, func(e api.BasicEvent) bool { return e.Type == "m.push_rules" }) && f.AccountData.Allows("m.push_rules", "") {
			pr, err := s.pushRules(ctx, sess.UserID)
			if err != nil {
				return nil, false, err
			}
			globalAD = append(globalAD, api.BasicEvent{Type: "m.push_rules", Content: pr})
		}
	}

	// Rooms the user is joined to, to find rooms with new events cheaply.
	var joinedIDs []string
	for _, m := range ms {
		if m.Membership == rooms.MembershipJoin && f.Room.AllowsRoom(m.RoomID) && m.Pos <= upto {
			joinedIDs = append(joinedIDs, m.RoomID)
		}
	}
	var active, receipts map[string]bool
	if !initial && !fullState && len(joinedIDs) > 0 {
		if active, err = s.store.RoomsWithEvents(ctx, joinedIDs, from.Pos, upto); err != nil {
			return nil, false, err
		}
		if receipts, err = s.store.RoomsWithReceipts(ctx, joinedIDs, from.Pos, upto); err != nil {
			return nil, false, err
		}
	}
	for _, m := range ms {
		if !f.Room.AllowsRoom(m.RoomID) || m.Pos > upto {
			continue
		}
		switch m.Membership {
		case rooms.MembershipJoin:
			newly := initial || fullState
			if !newly && m.Pos > from.Pos {
				// A join after since is a new join unless it replaced a join
				// (a profile change).
				newly = true
				if e, err := s.store.Event(ctx, m.EventID); err == nil && e.ReplacesState != "" {
					if prev, err := s.store.Event(ctx, e.ReplacesState); err == nil && prev.Membership == rooms.MembershipJoin && prev.Pos <= from.Pos {
						newly = false
					}
				}
			}
			if newly && !initial {
				// Newly shared rooms: every member is a device-list change.
				st, err := s.store.CurrentState(ctx, m.RoomID)
				if err != nil {
					return nil, false, err
				}
				for _, e := range st {
					if e.Type == rooms.TypeMember && e.StateKey != nil && (e.Membership == rooms.MembershipJoin || e.Membership == rooms.MembershipInvite) {
						changed[*e.StateKey] = true
					}
				}
			}
			if !newly && !active[m.RoomID] && !receipts[m.RoomID] && len(roomAD[m.RoomID]) == 0 {
				// Only typing (in memory) can have changed.
				since := from.Typing
				if from.Typing > typ {
					since = -1
				}
				if _, changed := s.typing.users(m.RoomID, since, s.now()); !changed {
					continue
				}
			}
			room, err := s.syncJoinedRoom(ctx, sess, f, m, from, upto, typ, newly, roomAD[m.RoomID], changed, left)
			if err != nil {
				return nil, false, err
			}
			if room != nil {
				join[m.RoomID] = room
			}
		case rooms.MembershipInvite:
			if !initial && !fullState && m.Pos <= from.Pos {
				continue
			}
			inv, err := s.syncInvite(ctx, m)
			if err != nil {
				return nil, false, err
			}
			invite[m.RoomID] = inv
		case rooms.MembershipLeave, rooms.MembershipBan:
			if m.Forgotten {
				continue
			}
			if initial || fullState {
				if !f.Room.IncludeLeave {
					continue
				}
			} else if m.Pos <= from.Pos {
				continue
			}
			room, err := s.syncLeftRoom(ctx, sess, f, m, from, initial || fullState)
			if err != nil {
				return nil, false, err
			}
			leave[m.RoomID] = room
			if !initial {
				st, err := s.store.StateAt(ctx, m.RoomID, m.Pos)
				if err != nil {
					return nil, false, err
				}
				for _, e := range st {
					if e.Type == rooms.TypeMember && e.StateKey != nil && e.Membership == rooms.MembershipJoin {
						left[*e.StateKey] = true
					}
				}
			}
		}
	}

	// End-to-end encryption.
	er, err := s.e2ee.sync.SyncE2EE(ctx, sync.E2EERequest{UserID: sess.UserID, DeviceID: sess.DeviceID, Since: from.Pos, Upto: upto,
		Initial: initial, ToDeviceSince: from.ToDevice, SharedUsers: shared})
	if err != nil {
		return nil, false, err
	}
	for _, u := range er.Changed {
		changed[u] = true
	}
	for _, u := range er.Left {
		left[u] = true
	}
	sharedSet := map[string]bool{}
	for _, u := range shared {
		sharedSet[u] = true
	}
	dl := map[string]any{"changed": []string{}, "left": []string{}}
	if !initial {
		var ch, lf []string
		for u := range changed {
			if sharedSet[u] || u == sess.UserID {
				ch = append(ch, u)
			}
		}
		for u := range left {
			if !sharedSet[u] && u != sess.UserID {
				lf = append(lf, u)
			}
		}
		slices.Sort(ch)
		slices.Sort(lf)
		if ch != nil {
			dl["changed"] = ch
		}
		if lf != nil {
			dl["left"] = lf
		}
		nonEmpty = nonEmpty || len(ch) > 0 || len(lf) > 0
	}
	otk := map[string]int{"signed_curve25519": 0} // nio stops uploading keys if this is absent
	for k, v := range er.OneTimeKeyCounts {
		otk[k] = v
	}
	fb := er.UnusedFallbackKeyTypes
	if fb == nil {
		fb = []string{}
	}
	toDev := er.ToDevice
	if toDev == nil {
		toDev = []json.RawMessage{}
	}
	nonEmpty = nonEmpty || len(join) > 0 || len(invite) > 0 || len(leave) > 0 || len(globalAD) > 0 || len(toDev) > 0
	next := sync.Token{Pos: upto, Typing: typ, ToDevice: er.ToDeviceNext}
	resp := map[string]any{
		"next_batch":                       next.String(),
		"account_data":                     map[string]any{"events": globalAD},
		"presence":                         map[string]any{"events": []any{}},
		"to_device":                        map[string]any{"events": toDev},
		"device_lists":                     dl,
		"device_one_time_keys_count":       otk,
		"device_unused_fallback_key_types": fb,
		"rooms":                            map[string]any{"join": join, "invite": invite, "leave": leave, "knock": map[string]any{}},
	}
	return resp, nonEmpty, nil
}

// timelineLimit is the filter's timeline limit.
func timelineLimit(f *api.Filter) int {
	return f.Room.Timeline.LimitOr(defaultTimelineLimit, maxTimelineLimit)
}

// timeline returns the visible events of (lo, hi] (newest limit), whether it
// was limited, and the position just before the first one.
func (s *Server) timeline(ctx context.Context, f *api.Filter, v *visibility, roomID string, lo, hi int64) ([]*storage.Event, bool, int64, error) {
	limit := timelineLimit(f)
	evs, err := s.store.Events(ctx, roomID, lo, hi, limit+1, true)
	if err != nil {
		return nil, false, 0, err
	}
	limited := len(evs) > limit
	if limited {
		evs = evs[1:]
	}
	start := hi
	if len(evs) > 0 {
		start = evs[0].Pos - 1
	}
	evs = v.filter(evs)
	evs = filterEvents(&f.Room.Timeline, evs)
	return evs, limited, start, nil
}

// stateFor returns the state section: the state at start (full) or the state
// changes in (lo, start] (delta), lazy-loaded if the filter says so.
func (s *Server) stateFor(ctx context.Context, sess Session, f *api.Filter, roomID string, full bool, lo, start int64, tl []*storage.Event) ([]*storage.Event, error) {
	var st []*storage.Event
	var err error
	if full {
		st, err = s.store.StateAt(ctx, roomID, start)
	} else if start > lo {
		var rng []*storage.Event
		rng, err = s.store.StateEventsRange(ctx, roomID, lo, start)
		latest := map[storage.StateKey]*storage.Event{}
		for _, e := range rng {
			latest[storage.StateKey{Type: e.Type, StateKey: *e.StateKey}] = e
		}
		for _, e := range rng {
			if latest[storage.StateKey{Type: e.Type, StateKey: *e.StateKey}] == e {
				st = append(st, e)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if f.Room.State.LazyLoadMembers {
		need := map[string]bool{sess.UserID: true}
		for _, e := range tl {
			need[e.Sender] = true
		}
		st = slices.DeleteFunc(st, func(e *storage.Event) bool {
			return e.Type == rooms.TypeMember && !need[*e.StateKey]
		})
		if !full {
			// Members of timeline senders that the client may not have seen.
			for u := range need {
				if slices.ContainsFunc(st, func(e *storage.Event) bool { return e.Type == rooms.TypeMember && *e.StateKey == u }) {
					continue
				}
				if slices.ContainsFunc(tl, func(e *storage.Event) bool {
					return e.Type == rooms.TypeMember && e.StateKey != nil && *e.StateKey == u
				}) {
					continue
				}
				if u == sess.UserID {
					continue
				}
				if m, err := s.store.StateEventAt(ctx, roomID, rooms.TypeMember, u, start); err == nil {
					st = append(st, m)
				}
			}
		}
	}
	return filterEvents(&f.Room.State, st), nil
}

func (s *Server) syncJoinedRoom(ctx context.Context, sess Session, f *api.Filter, m storage.MembershipRow, from sync.Token, upto, typ int64,
	newly bool, ad []api.BasicEvent, changed, left map[string]bool) (syncRoom, error) {
	var v *visibility
	if !newly && m.Membership == rooms.MembershipJoin && m.Pos <= from.Pos {
		// Joined before the range and still joined: the user's membership at
		// every event of the range is join, so all are visible.
		v = joinedSince()
	} else {
		var err error
		if v, err = s.newVisibility(ctx, m.RoomID, sess.UserID); err != nil {
			return nil, err
		}
	}
	lo := from.Pos
	if newly {
		lo = 0
	}
	tl, limited, start, err := s.timeline(ctx, f, v, m.RoomID, lo, upto)
	if err != nil {
		return nil, err
	}
	st, err := s.stateFor(ctx, sess, f, m.RoomID, newly, from.Pos, start, tl)
	if err != nil {
		return nil, err
	}
	if !newly {
		// Membership changes in the range drive device_lists.
		for _, list := range [][]*storage.Event{st, tl} {
			for _, e := range list {
				if e.Type != rooms.TypeMember || e.StateKey == nil {
					continue
				}
				switch e.Membership {
				case rooms.MembershipJoin, rooms.MembershipInvite:
					changed[*e.StateKey] = true
				case rooms.MembershipLeave, rooms.MembershipBan:
					left[*e.StateKey] = true
				}
			}
		}
	}
	o := clientOpts{omitRoomID: true, sess: sess}
	ctl, err := s.clientEvents(ctx, tl, o)
	if err != nil {
		return nil, err
	}
	cst, err := s.clientEvents(ctx, st, o)
	if err != nil {
		return nil, err
	}
	eph, err := s.ephemeral(ctx, sess, m.RoomID, from, upto, typ, newly)
	if err != nil {
		return nil, err
	}
	eph = slices.DeleteFunc(eph, func(e api.BasicEvent) bool { return !f.Room.Ephemeral.Allows(e.Type, "") })
	if !newly && len(ctl) == 0 && len(cst) == 0 && len(eph) == 0 && len(ad) == 0 {
		return nil, nil
	}
	if ad == nil {
		ad = []api.BasicEvent{}
	}
	room := syncRoom{
		"timeline":     map[string]any{"events": ctl, "limited": limited, "prev_batch": pagToken(start)},
		"state":        map[string]any{"events": cst},
		"ephemeral":    map[string]any{"events": eph},
		"account_data": map[string]any{"events": ad},
	}
	unread, err := s.unread(ctx, m.RoomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	room["unread_notifications"] = map[string]int{"notification_count": unread, "highlight_count": 0}
	if newly || slices.ContainsFunc(append(append([]*storage.Event{}, st...), tl...), func(e *storage.Event) bool { return e.Type == rooms.TypeMember }) {
		sum, err := s.summary(ctx, m.RoomID, sess.UserID)
		if err != nil {
			return nil, err
		}
		room["summary"] = sum
	}
	return room, nil
}

// unread counts messages after the user's read position.
func (s *Server) unread(ctx context.Context, roomID, userID string) (int, error) {
	return s.store.UnreadCount(ctx, roomID, userID)
}

func (s *Server) summary(ctx context.Context, roomID, userID string) (map[string]any, error) {
	st, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	joined, invited := 0, 0
	heroes := []string{}
	for _, e := range st {
		if e.Type != rooms.TypeMember || e.StateKey == nil {
			continue
		}
		switch e.Membership {
		case rooms.MembershipJoin:
			joined++
		case rooms.MembershipInvite:
			invited++
		default:
			continue
		}
		if *e.StateKey != userID && len(heroes) < 5 {
			heroes = append(heroes, *e.StateKey)
		}
	}
	slices.Sort(heroes)
	return map[string]any{"m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited}, nil
}

// ephemeral returns typing and receipts changed in the range (all on initial).
func (s *Server) ephemeral(ctx context.Context, sess Session, roomID string, from sync.Token, upto, typ int64, initial bool) ([]api.BasicEvent, error) {
	out := []api.BasicEvent{}
	since := from.Typing
	if initial || from.Typing > typ { // typing serials restart with the server
		since = -1
	}
	if users, changed := s.typing.users(roomID, since, s.now()); changed || (initial && len(users) > 0) {
		out = append(out, api.BasicEvent{Type: "m.typing", Content: map[string]any{"user_ids": users}})
	}
	lo := from.Pos
	if initial {
		lo = 0
	}
	rcs, err := s.store.ReceiptsRange(ctx, roomID, lo, upto)
	if err != nil {
		return nil, err
	}
	content := map[string]map[string]map[string]any{}
	for _, rc := range rcs {
		if rc.Type == "m.read.private" && rc.UserID != sess.UserID {
			continue // private receipts are only for their owner
		}
		if content[rc.EventID] == nil {
			content[rc.EventID] = map[string]map[string]any{}
		}
		if content[rc.EventID][rc.Type] == nil {
			content[rc.EventID][rc.Type] = map[string]any{}
		}
		data := map[string]any{"ts": rc.TS}
		if rc.ThreadID != "" {
			data["thread_id"] = rc.ThreadID
		}
		content[rc.EventID][rc.Type][rc.UserID] = data
	}
	if len(content) > 0 {
		out = append(out, api.BasicEvent{Type: "m.receipt", Content: content})
	}
	return out, nil
}

func (s *Server) syncInvite(ctx context.Context, m storage.MembershipRow) (syncRoom, error) {
	st, err := s.store.StateAt(ctx, m.RoomID, m.Pos)
	if err != nil {
		return nil, err
	}
	rs, err := s.loadState(ctx, m.RoomID, st)
	if err != nil {
		return nil, err
	}
	me := rs.Get(rooms.TypeMember, m.UserID)
	sender := ""
	if me != nil {
		sender = me.Sender()
	}
	events := rs.InviteState(sender)
	if me != nil {
		events = append(events, me.Stripped())
	}
	return syncRoom{"invite_state": map[string]any{"events": events}}, nil
}

func (s *Server) syncLeftRoom(ctx context.Context, sess Session, f *api.Filter, m storage.MembershipRow, from sync.Token, full bool) (syncRoom, error) {
	v, err := s.newVisibility(ctx, m.RoomID, sess.UserID)
	if err != nil {
		return nil, err
	}
	lo := from.Pos
	if full {
		lo = 0
	}
	tl, limited, start, err := s.timeline(ctx, f, v, m.RoomID, lo, m.Pos)
	if err != nil {
		return nil, err
	}
	st, err := s.stateFor(ctx, sess, f, m.RoomID, full, from.Pos, start, tl)
	if err != nil {
		return nil, err
	}
	o := clientOpts{omitRoomID: true, sess: sess}
	ctl, err := s.clientEvents(ctx, tl, o)
	if err != nil {
		return nil, err
	}
	cst, err := s.clientEvents(ctx, st, o)
	if err != nil {
		return nil, err
	}
	return syncRoom{
		"timeline":     map[string]any{"events": ctl, "limited": limited, "prev_batch": pagToken(start)},
		"state":        map[string]any{"events": cst},
		"account_data": map[string]any{"events": []any{}},
	}, nil
}
