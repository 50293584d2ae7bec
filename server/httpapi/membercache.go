package httpapi

import (
	"context"
	gosync "sync"
	"sync/atomic"

	"myelin/server/storage"
)

// memberCache caches, per user, the current memberships and the users who
// share a room with them: /sync reads both on every call, and they change
// only with member events (and forgetting a room). Every such commit bumps
// gen; an entry is used only if it was read under the current gen, and a
// reader stores its result under the gen it saw before reading, so a result
// that raced with a commit is never reused.
type memberCache struct {
	gen     atomic.Int64
	mu      gosync.Mutex
	entries map[string]*memberEntry
}

type memberEntry struct {
	gen         int64
	memberships []storage.MembershipRow
	shared      []string
}

const maxMemberCacheEntries = 100000

// invalidate must be called after every commit that changes memberships.
func (c *memberCache) invalidate() { c.gen.Add(1) }

func (c *memberCache) get(userID string) *memberEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[userID]
	if e == nil || e.gen != c.gen.Load() {
		return nil
	}
	return e
}

func (c *memberCache) put(userID string, e *memberEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxMemberCacheEntries {
		c.entries = map[string]*memberEntry{}
	}
	c.entries[userID] = e
}

// memberships returns the user's memberships and the users sharing a joined
// room with them (the user included).
func (s *Server) memberships(ctx context.Context, userID string) ([]storage.MembershipRow, []string, error) {
	if e := s.memberC.get(userID); e != nil {
		return e.memberships, e.shared, nil
	}
	gen := s.memberC.gen.Load()
	ms, err := s.store.UserMemberships(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	shared, err := s.store.UsersSharingRooms(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	s.memberC.put(userID, &memberEntry{gen: gen, memberships: ms, shared: shared})
	return ms, shared, nil
}
