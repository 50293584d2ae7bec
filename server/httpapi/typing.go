package httpapi

import (
	"slices"
	gosync "sync"
	"time"
)

// typingStore keeps typing notifications in memory (they are ephemeral). Each
// change gets a serial from its own counter, carried in the sync token.
type typingStore struct {
	mu     gosync.Mutex
	serial int64
	rooms  map[string]*roomTyping
}

type roomTyping struct {
	serial int64                // last change
	until  map[string]time.Time // user -> expiry
}

func newTypingStore() *typingStore { return &typingStore{rooms: map[string]*roomTyping{}} }

// set records a typing change and returns true if the visible set changed.
func (t *typingStore) set(roomID, userID string, typing bool, until, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := t.rooms[roomID]
	if rt == nil {
		rt = &roomTyping{until: map[string]time.Time{}}
		t.rooms[roomID] = rt
	}
	_, was := rt.until[userID]
	if exp, ok := rt.until[userID]; ok && !exp.After(now) {
		was = false
	}
	if typing {
		rt.until[userID] = until
	} else {
		delete(rt.until, userID)
	}
	if was != typing {
		t.serial++
		rt.serial = t.serial
		return true
	}
	return false
}

// current returns the typing serial.
func (t *typingStore) current() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.serial
}

// users returns who is typing in a room now and whether it changed after since.
func (t *typingStore) users(roomID string, since int64, now time.Time) ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := t.rooms[roomID]
	if rt == nil {
		return []string{}, false
	}
	out := []string{}
	for u, exp := range rt.until {
		if exp.After(now) {
			out = append(out, u)
		} else {
			delete(rt.until, u)
		}
	}
	slices.Sort(out)
	return out, rt.serial > since
}

// expireLoop bumps the serial when typing entries expire so that syncs see the stop.
func (t *typingStore) expire(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var rooms []string
	for id, rt := range t.rooms {
		changed := false
		for u, exp := range rt.until {
			if !exp.After(now) {
				delete(rt.until, u)
				changed = true
			}
		}
		if changed {
			t.serial++
			rt.serial = t.serial
			rooms = append(rooms, id)
		}
	}
	return rooms
}
