package sync

import (
	"context"
	gosync "sync"
)

// Notifier wakes long-polling /sync requests. Writers call [Notifier.Wake]
// after commit with the new stream position and the affected users; a request
// waits with [Notifier.Wait] for a change newer than the position it has read up to.
type Notifier struct {
	mu      gosync.Mutex
	userPos map[string]int64 // last position that touched the user
	allPos  int64            // last position that touched everyone
	waiters map[string]map[chan struct{}]struct{}
}

// NewNotifier returns an empty notifier.
func NewNotifier() *Notifier {
	return &Notifier{userPos: map[string]int64{}, waiters: map[string]map[chan struct{}]struct{}{}}
}

// Wake records that users (or everyone, if all) have changes at pos and wakes
// their waiting requests.
func (n *Notifier) Wake(pos int64, users []string, all bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if all {
		n.allPos = max(n.allPos, pos)
		for _, ws := range n.waiters {
			for ch := range ws {
				close(ch)
			}
		}
		clear(n.waiters)
		return
	}
	for _, u := range users {
		n.userPos[u] = max(n.userPos[u], pos)
		for ch := range n.waiters[u] {
			close(ch)
		}
		delete(n.waiters, u)
	}
}

// Kick wakes a user's waiting requests without a stream position (used for
// in-memory streams such as typing).
func (n *Notifier) Kick(users ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range users {
		for ch := range n.waiters[u] {
			close(ch)
		}
		delete(n.waiters, u)
	}
}

// Wait blocks until the user has a change after pos, a Kick, or ctx ends. It
// reports whether it was woken (false on ctx end).
func (n *Notifier) Wait(ctx context.Context, user string, pos int64) bool {
	n.mu.Lock()
	if n.userPos[user] > pos || n.allPos > pos {
		n.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	if n.waiters[user] == nil {
		n.waiters[user] = map[chan struct{}]struct{}{}
	}
	n.waiters[user][ch] = struct{}{}
	n.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		n.mu.Lock()
		delete(n.waiters[user], ch)
		if len(n.waiters[user]) == 0 {
			delete(n.waiters, user)
		}
		n.mu.Unlock()
		return false
	}
}
