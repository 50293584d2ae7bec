package keys

import (
	"context"
	"slices"

	"myelin/server/storage"
)

// DeviceLists computes device_lists {changed, left} for userID over the
// stream range (from, to] (spec "Tracking the device list for a user"):
//
//   - changed: users who share a room with userID (joined or invited to a
//     room userID is joined to) and whose device keys or cross-signing keys
//     changed or who added or deleted a device; users who newly share a room
//     (a join or invite in a shared room, or userID joining a room); userID
//     itself for its own changes, including self-only ones.
//   - left: users who no longer share any room with userID after a leave in
//     the range.
func (s *Service) DeviceLists(ctx context.Context, userID string, from, to int64) (changed, left []string, err error) {
	return s.deviceLists(ctx, userID, from, to, nil)
}

func (s *Service) deviceLists(ctx context.Context, userID string, from, to int64, sharedList []string) (changed, left []string, err error) {
	if from >= to {
		return []string{}, []string{}, nil
	}
	if sharedList == nil {
		if sharedList, err = s.rooms.UsersSharingRooms(ctx, userID); err != nil {
			return nil, nil, internal("device lists: shared users", err)
		}
	}
	shared := make(map[string]bool, len(sharedList)+1)
	for _, u := range sharedList {
		shared[u] = true
	}
	shared[userID] = true
	ch := map[string]bool{}
	lf := map[string]bool{}

	keyCh, err := s.keyChanges(ctx, userID, from, to, sharedList)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range keyCh {
		ch[u] = true
	}

	mems, err := s.rooms.UserMemberships(ctx, userID)
	if err != nil {
		return nil, nil, internal("device lists: memberships", err)
	}
	var steady []string // rooms joined before from: look at their member events
	for _, m := range mems {
		inRange := m.Pos > from && m.Pos <= to
		switch {
		case m.Membership == "join" && !inRange:
			steady = append(steady, m.RoomID)
		case m.Membership == "join" && inRange:
			// We joined: everyone in the room is new to us.
			if err := s.roomMembers(ctx, m.RoomID, func(u, ms string) {
				if (ms == "join" || ms == "invite") && shared[u] {
					ch[u] = true
				}
			}); err != nil {
				return nil, nil, err
			}
		case (m.Membership == "leave" || m.Membership == "ban") && inRange:
			// We left: members we no longer share any room with are gone.
			if err := s.roomMembers(ctx, m.RoomID, func(u, ms string) {
				if !shared[u] {
					lf[u] = true
				}
			}); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(steady) > 0 {
		active, err := s.rooms.RoomsWithEvents(ctx, steady, from, to)
		if err != nil {
			return nil, nil, internal("device lists: active rooms", err)
		}
		for _, roomID := range steady {
			if !active[roomID] {
				continue
			}
			evs, err := s.rooms.StateEventsRange(ctx, roomID, from, to)
			if err != nil {
				return nil, nil, internal("device lists: member events", err)
			}
			for _, ev := range evs {
				if ev.Type != "m.room.member" || ev.StateKey == nil {
					continue
				}
				u := *ev.StateKey
				switch ev.Membership {
				case "join", "invite":
					if shared[u] {
						ch[u] = true
					}
				case "leave", "ban":
					if !shared[u] {
						lf[u] = true
					}
				}
			}
		}
	}
	delete(lf, userID)
	return sortedKeys(ch), sortedKeys(lf), nil
}

// keyChanges returns the users among shared (and userID) with device-list
// changes in (from, to] that userID may see.
func (s *Service) keyChanges(ctx context.Context, userID string, from, to int64, shared []string) ([]string, error) {
	if from >= to {
		return []string{}, nil
	}
	if shared == nil {
		var err error
		if shared, err = s.rooms.UsersSharingRooms(ctx, userID); err != nil {
			return nil, internal("device lists: shared users", err)
		}
	}
	changes, err := s.store.DeviceListChanges(ctx, from, to)
	if err != nil {
		return nil, internal("device lists: changes", err)
	}
	if len(changes) == 0 {
		return []string{}, nil
	}
	set := make(map[string]bool, len(shared)+1)
	for _, u := range shared {
		set[u] = true
	}
	set[userID] = true
	ch := map[string]bool{}
	for _, c := range changes {
		if set[c.UserID] && (!c.SelfOnly || c.UserID == userID) {
			ch[c.UserID] = true
		}
	}
	return sortedKeys(ch), nil
}

func (s *Service) roomMembers(ctx context.Context, roomID string, fn func(userID, membership string)) error {
	st, err := s.rooms.CurrentState(ctx, roomID)
	if err != nil {
		return internal("device lists: room state", err)
	}
	for _, ev := range st {
		if ev.Type == "m.room.member" && ev.StateKey != nil {
			fn(*ev.StateKey, ev.Membership)
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// NotifyDeviceListChange records a change of userID's device list that the
// accounts code made (a device renamed, or deleted outside
// storage.Accounts.DeleteDevices hooks) and wakes everyone who must see it.
func (s *Service) NotifyDeviceListChange(ctx context.Context, userID string) error {
	pos, err := s.store.RecordDeviceListChange(ctx, userID)
	if err != nil {
		return internal("record device-list change", err)
	}
	s.wakeChanges(ctx, []storage.DeviceListChange{{UserID: userID, Pos: pos}})
	return nil
}
