package sqlite

import (
	"maps"
	"sync"

	"myelin/server/storage"
)

// syncHints lets the per-sync range queries of a long-poll woken by one
// stream (a to-device message, say) skip the streams that did not move. It
// remembers, in memory, the newest stream position of each user's account
// data and of any device-list change. Positions are recorded inside the write
// transaction, before commit, so a recorded position is never older than a
// committed write (a rolled-back write leaves a harmlessly high mark). The
// marks start at the position the store opened at: a range starting before
// it always runs the query.
//
// The marks are only as good as the write sites that set them: account_data
// is written only by PutAccountData, e2ee_device_list_changes only by
// recordChange, and e2ee_otk/e2ee_fallback_keys only in transactions that
// call Tx.keysWritten. A new write site must do the same.
type syncHints struct {
	floor int64 // committed position at Open; read-only afterwards

	mu          sync.Mutex
	accountData map[string]int64 // user ID -> newest account-data position
	deviceLists int64            // newest device-list change position

	// keys caches one-time-key counts and unused fallback key types per
	// device. Every write of those tables clears it after commit and bumps
	// gen, so a read that raced a write is not cached.
	keys    map[[2]string]deviceKeyState
	keysGen uint64
}

type deviceKeyState struct {
	otk      map[string]int
	fallback []string
}

// maxKeyCacheEntries bounds the key-state cache (it is cleared when full).
const maxKeyCacheEntries = 200_000

func (h *syncHints) noteAccountData(userID string, pos int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.accountData == nil {
		h.accountData = map[string]int64{}
	}
	h.accountData[userID] = max(h.accountData[userID], pos)
}

// accountDataMoved reports whether the user may have account data in (from, ∞).
func (h *syncHints) accountDataMoved(userID string, from int64) bool {
	if from < h.floor {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accountData[userID] > from
}

func (h *syncHints) noteDeviceList(pos int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deviceLists = max(h.deviceLists, pos)
}

// deviceListsMoved reports whether a device-list change may exist in (from, ∞).
func (h *syncHints) deviceListsMoved(from int64) bool {
	if from < h.floor {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deviceLists > from
}

// cachedKeys returns the device's cached key state and the generation to
// pass to storeKeys.
func (h *syncHints) cachedKeys(userID, deviceID string) (deviceKeyState, bool, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.keys[[2]string{userID, deviceID}]
	return st, ok, h.keysGen
}

// storeKeys caches a state read at generation gen, unless a key write
// committed since.
func (h *syncHints) storeKeys(userID, deviceID string, gen uint64, st deviceKeyState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.keysGen {
		return
	}
	if h.keys == nil || len(h.keys) >= maxKeyCacheEntries {
		h.keys = map[[2]string]deviceKeyState{}
	}
	h.keys[[2]string{userID, deviceID}] = st
}

// invalidateKeys drops every cached key state.
func (h *syncHints) invalidateKeys() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keysGen++
	clear(h.keys)
}

// keysWritten invalidates the key-state cache now and again after t commits
// (a read between the two sees either state; one after the commit caches
// only the new one).
func (t *Tx) keysWritten() {
	t.s.hints.invalidateKeys()
	t.OnCommit(t.s.hints.invalidateKeys)
}

// copyTo fills st's key fields with copies of the cached state.
func (k deviceKeyState) copyTo(st *storage.DeviceSyncState) {
	st.OneTimeKeyCounts = maps.Clone(k.otk)
	if st.OneTimeKeyCounts == nil {
		st.OneTimeKeyCounts = map[string]int{}
	}
	st.UnusedFallbackKeyTypes = append([]string{}, k.fallback...)
}
