// Package sqlite is the default on-disk e2ee.Store, on modernc.org/sqlite
// (pure Go). One table holds every record kind; each Save is one
// transaction, and a single connection serialises writers.
//
// Values arrive already encrypted where they are secret (olm/megolm pickles
// and AES-GCM sealed records under the machine's pickle key), so the file on
// disk never holds key material in the clear.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"myelin/e2ee"
)

// Store is an e2ee.Store in a SQLite file.
type Store struct {
	db *sql.DB
}

const schema = `CREATE TABLE IF NOT EXISTS e2ee_records (
	kind  TEXT NOT NULL,
	key   BLOB NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (kind, key)
) WITHOUT ROWID`

// Open opens (creating if needed) the store at path.
func Open(ctx context.Context, path string) (*Store, error) {
	v := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)"} {
		v.Add("_pragma", p)
	}
	v.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: create schema: %w", err)
	}
	return &Store{db: db}, nil
}

// Get implements e2ee.Store.
func (s *Store) Get(ctx context.Context, kind e2ee.Kind, key string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM e2ee_records WHERE kind = ? AND key = ?`, string(kind), []byte(key)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s %q: %w", kind, key, e2ee.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// List implements e2ee.Store. Keys are BLOBs, so ordering is bytewise and the
// prefix match is a range scan (no LIKE wildcards).
func (s *Store) List(ctx context.Context, kind e2ee.Kind, prefix string) ([]e2ee.Record, error) {
	var rows *sql.Rows
	var err error
	if end, ok := prefixEnd([]byte(prefix)); ok {
		rows, err = s.db.QueryContext(ctx, `SELECT key, value FROM e2ee_records WHERE kind = ? AND key >= ? AND key < ? ORDER BY key`, string(kind), []byte(prefix), end)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT key, value FROM e2ee_records WHERE kind = ? AND key >= ? ORDER BY key`, string(kind), []byte(prefix))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	defer rows.Close()
	var out []e2ee.Record
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("sqlite: list: %w", err)
		}
		if v == nil {
			v = []byte{}
		}
		out = append(out, e2ee.Record{Kind: kind, Key: string(k), Value: v})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	return out, nil
}

// prefixEnd returns the smallest byte string greater than every string with
// prefix p, or false if there is none (p empty or all 0xff).
func prefixEnd(p []byte) ([]byte, bool) {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1], true
		}
	}
	return nil, false
}

// Save implements e2ee.Store: one transaction, deletes then puts.
func (s *Store) Save(ctx context.Context, c *e2ee.Changes) error {
	if c.IsEmpty() {
		return nil
	}
	for _, r := range c.Puts {
		if r.Kind == "" {
			return errors.New("sqlite: save: empty kind")
		}
	}
	for _, r := range c.Deletes {
		if r.Kind == "" {
			return errors.New("sqlite: save: empty kind")
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: save: %w", err)
	}
	defer tx.Rollback()
	if len(c.Deletes) > 0 {
		del, err := tx.PrepareContext(ctx, `DELETE FROM e2ee_records WHERE kind = ? AND key = ?`)
		if err != nil {
			return fmt.Errorf("sqlite: save: %w", err)
		}
		for _, d := range c.Deletes {
			if _, err := del.ExecContext(ctx, string(d.Kind), []byte(d.Key)); err != nil {
				return fmt.Errorf("sqlite: save: delete: %w", err)
			}
		}
	}
	if len(c.Puts) > 0 {
		put, err := tx.PrepareContext(ctx, `INSERT INTO e2ee_records (kind, key, value) VALUES (?, ?, ?)
			ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value`)
		if err != nil {
			return fmt.Errorf("sqlite: save: %w", err)
		}
		for _, r := range c.Puts {
			v := r.Value
			if v == nil {
				v = []byte{}
			}
			if _, err := put.ExecContext(ctx, string(r.Kind), []byte(r.Key), v); err != nil {
				return fmt.Errorf("sqlite: save: put: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: save: commit: %w", err)
	}
	return nil
}

// Close implements e2ee.Store.
func (s *Store) Close() error { return s.db.Close() }
