package main

import (
	"myelin/server/storage"
	"myelin/server/storage/sqlite"
)

// e2eeStore returns the E2EE storage of the engine, or nil while the engine
// does not implement it yet.
func e2eeStore(s *sqlite.Store) storage.E2EE {
	if e, ok := any(s).(storage.E2EE); ok {
		return e
	}
	return nil
}
