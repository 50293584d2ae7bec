package httpapi

import (
	"testing"

	"myelin/server/storage"
)

func TestMemberCacheGeneration(t *testing.T) {
	var c memberCache
	gen := c.gen.Load()
	// A read that raced with a commit: stored under the old generation.
	c.invalidate()
	c.put("@a:x", &memberEntry{gen: gen, shared: []string{"stale"}})
	if c.get("@a:x") != nil {
		t.Fatal("entry read before a membership commit was reused")
	}
	c.put("@a:x", &memberEntry{gen: c.gen.Load(), memberships: []storage.MembershipRow{{RoomID: "!r:x"}}})
	if e := c.get("@a:x"); e == nil || len(e.memberships) != 1 {
		t.Fatal("fresh entry not used")
	}
	c.invalidate()
	if c.get("@a:x") != nil {
		t.Fatal("entry survived invalidation")
	}
}
