package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"myelin/e2ee"
	"myelin/e2ee/store/sqlite"
	"myelin/e2ee/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) e2ee.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "e2ee.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPersistent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e2ee.db")
	storetest.RunPersistent(t, func(t *testing.T) e2ee.Store {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
