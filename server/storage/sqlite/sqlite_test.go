package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"myelin/server/storage"
	"myelin/server/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := Open(filepath.Join(t.TempDir(), "db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsPositionAndMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pos, err := s.PutAccountData(context.Background(), "@a:x", "", "t", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, Options{}) // migrations already applied: no error
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Pos() != pos {
		t.Errorf("position after reopen: %d, want %d", s.Pos(), pos)
	}
	var n int
	s.ReadDB().QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE version=1`).Scan(&n)
	if n != 1 {
		t.Errorf("migration 1 recorded %d times", n)
	}
	p2, _ := s.PutAccountData(context.Background(), "@a:x", "", "t", json.RawMessage(`{}`))
	if p2 <= pos {
		t.Errorf("position reused after reopen")
	}
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	var mu sync.Mutex
	var woken []string
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{Notify: func(pos int64, users []string, all bool) {
		mu.Lock()
		woken = append(woken, users...)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	res := make([]error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = s.Write(ctx, func(t *Tx) error {
				pos := t.NextPos()
				if _, err := t.Exec(`INSERT INTO account_data(user_id, type, content, stream_pos) VALUES(?,?,?,?)`, "@u:x", "t"+string(rune('A'+i)), "{}", pos); err != nil {
					return err
				}
				if i%2 == 1 {
					t.Wake("@fail:x")
					return boom // this write is rolled back alone
				}
				t.Wake("@ok:x")
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range res {
		if (i%2 == 1) != errors.Is(err, boom) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	// Counted in the table: the raw inserts above bypass PutAccountData's
	// sync hint, which AccountDataRange relies on.
	var kept int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM account_data WHERE user_id='@u:x'`).Scan(&kept); err != nil || kept != 20 {
		t.Errorf("%d writes kept, want 20 (%v)", kept, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, u := range woken {
		if u == "@fail:x" {
			t.Errorf("failed write woke its users")
		}
	}
}

func TestPanicInCallback(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(context.Background(), func(*Tx) error { panic("x") }); err == nil {
		t.Fatal("panic not reported")
	}
	if _, err := s.PutAccountData(context.Background(), "@a:x", "", "t", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("writer dead after panic: %v", err)
	}
}

func BenchmarkGroupCommit(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.PutAccountData(ctx, "@a:x", "", "t", json.RawMessage(`{}`)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
