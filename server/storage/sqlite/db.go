package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"myelin/server/storage"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// maxBatch bounds how many queued writes share one transaction.
const maxBatch = 128

// Options configures [Open].
type Options struct {
	// Logger receives errors; nil discards.
	Logger *slog.Logger
	// Notify is called after each commit with the new stream position and the
	// users whose /sync should wake (all=true wakes everyone).
	Notify func(pos int64, users []string, all bool)
	// Readers is the size of the reader pool (default 8).
	Readers int
}

// Store is the SQLite implementation of storage.Store.
type Store struct {
	w        *sql.DB // exactly one connection, used only by the writer goroutine
	r        *sql.DB // readers
	rq       *readDB // readers through the prepared-statement cache
	wstmts   map[string]*sql.Stmt
	wpending map[string]struct{}
	log      *slog.Logger
	notify   func(int64, []string, bool)
	reqs     chan *writeReq
	done     chan struct{}
	closing  sync.Once
	pos      atomic.Int64 // last committed stream position
	next     int64        // next position to hand out; writer goroutine only

	hints syncHints // in-memory stream marks and key-state cache for /sync

	hookMu            sync.RWMutex
	deviceDeleteHooks []func(tx *Tx, userID string, deviceIDs []string) error
}

var _ storage.Store = (*Store)(nil)

type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

// Tx is a write transaction handed to [Store.Write] callbacks. It is valid only
// during the callback.
type Tx struct {
	tx       *sql.Tx
	s        *Store
	wake     map[string]struct{}
	wakeAll  bool
	onCommit []func()
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(q string, args ...any) (sql.Result, error) {
	if st := t.s.writerStmt(q); st != nil {
		return t.tx.Stmt(st).Exec(args...)
	}
	return t.tx.Exec(q, args...)
}

// Query runs a query in the transaction.
func (t *Tx) Query(q string, args ...any) (*sql.Rows, error) {
	if st := t.s.writerStmt(q); st != nil {
		return t.tx.Stmt(st).Query(args...)
	}
	return t.tx.Query(q, args...)
}

// QueryRow runs a single-row query in the transaction.
func (t *Tx) QueryRow(q string, args ...any) *sql.Row {
	if st := t.s.writerStmt(q); st != nil {
		return t.tx.Stmt(st).QueryRow(args...)
	}
	return t.tx.QueryRow(q, args...)
}

// NextPos allocates the next stream position. Positions of a failed callback
// are not reused; gaps are harmless.
func (t *Tx) NextPos() int64 {
	t.s.next++
	return t.s.next
}

// Wake marks users whose long-polling /sync must wake after commit.
func (t *Tx) Wake(userIDs ...string) {
	for _, u := range userIDs {
		t.wake[u] = struct{}{}
	}
}

// WakeAll wakes every long-poller after commit.
func (t *Tx) WakeAll() { t.wakeAll = true }

// OnCommit runs fn after the transaction committed (not if it failed).
func (t *Tx) OnCommit(fn func()) { t.onCommit = append(t.onCommit, fn) }

// Open opens (creating if needed) the database file at path, applies
// migrations and starts the writer.
func Open(path string, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Readers <= 0 {
		o.Readers = 8
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create data dir: %w", err)
		}
	}
	// synchronous=FULL: in WAL mode NORMAL survives a process crash (kill -9)
	// but may lose the last commits on power loss or an OS crash. We acknowledge
	// client writes only after commit, so we pay for FULL (an fsync of the WAL per
	// commit) and amortise it with group commit.
	pragmas := []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"}
	dsn := func(extra ...string) string {
		v := url.Values{}
		for _, p := range append(pragmas, extra...) {
			v.Add("_pragma", p)
		}
		return "file:" + path + "?" + v.Encode()
	}
	w, err := sql.Open("sqlite", dsn()+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn("query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	r.SetMaxOpenConns(o.Readers)
	r.SetMaxIdleConns(o.Readers)
	s := &Store{w: w, r: r, rq: &readDB{DB: r}, wstmts: map[string]*sql.Stmt{}, wpending: map[string]struct{}{}, log: o.Logger, notify: o.Notify, reqs: make(chan *writeReq, 1024), done: make(chan struct{})}
	var pos int64
	var v string
	switch err := w.QueryRow(`SELECT value FROM meta WHERE key='stream_pos'`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		s.Close()
		return nil, fmt.Errorf("sqlite: read stream position: %w", err)
	default:
		pos, _ = strconv.ParseInt(v, 10, 64)
	}
	s.pos.Store(pos)
	s.next = pos
	s.hints.floor = pos
	go s.writer()
	return s, nil
}

// Close stops the writer (after finishing queued writes) and closes the database.
func (s *Store) Close() error {
	s.closing.Do(func() { close(s.reqs) })
	<-s.done
	for _, st := range s.wstmts {
		st.Close()
	}
	return errors.Join(s.rq.Close(), s.w.Close())
}

// Pos returns the last committed stream position.
func (s *Store) Pos() int64 { return s.pos.Load() }

// ReadDB returns the pool of read-only connections.
func (s *Store) ReadDB() *sql.DB { return s.r }

// OnDeviceDelete registers a hook that runs inside the transaction deleting
// devices (for example to delete their keys and record a device-list change).
func (s *Store) OnDeviceDelete(fn func(tx *Tx, userID string, deviceIDs []string) error) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.deviceDeleteHooks = append(s.deviceDeleteHooks, fn)
}

// Write runs fn in the single writer and returns after its changes are durable
// (or fn's error, in which case none of its changes are kept). Writes queued at
// the same time share one commit.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) (err error) {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	defer func() {
		if recover() != nil { // send on closed channel: store closed
			err = storage.ErrClosed
		}
	}()
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the write may commit.
	return <-req.done
}

func (s *Store) writer() {
	defer close(s.done)
	for first := range s.reqs {
		batch := []*writeReq{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commitBatch(batch)
		s.prepareWriterStmts()
	}
}

func (s *Store) commitBatch(batch []*writeReq) {
	fail := func(err error) {
		for _, r := range batch {
			if r != nil {
				r.done <- err
			}
		}
	}
	startNext := s.next
	tx, err := s.w.Begin()
	if err != nil {
		fail(fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	type okReq struct {
		r *writeReq
		t *Tx
	}
	var oks []okReq
	for i, r := range batch {
		if r.ctx.Err() != nil {
			r.done <- r.ctx.Err()
			batch[i] = nil
			continue
		}
		if _, err := tx.Exec(`SAVEPOINT w`); err != nil {
			tx.Rollback()
			s.next = startNext
			fail(fmt.Errorf("sqlite: savepoint: %w", err))
			return
		}
		t := &Tx{tx: tx, s: s, wake: map[string]struct{}{}}
		ferr := safeCall(r.fn, t)
		if ferr != nil {
			if _, err := tx.Exec(`ROLLBACK TO w`); err != nil {
				tx.Rollback()
				s.next = startNext
				fail(fmt.Errorf("sqlite: rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := tx.Exec(`RELEASE w`); err != nil {
			tx.Rollback()
			s.next = startNext
			fail(fmt.Errorf("sqlite: release savepoint: %w", err))
			return
		}
		if ferr != nil {
			r.done <- ferr
			batch[i] = nil
			continue
		}
		oks = append(oks, okReq{r, t})
	}
	if s.next != startNext {
		if _, err := tx.Exec(`INSERT INTO meta(key, value) VALUES('stream_pos', ?)
			ON CONFLICT(key) DO UPDATE SET value=excluded.value`, strconv.FormatInt(s.next, 10)); err != nil {
			tx.Rollback()
			s.next = startNext
			fail(fmt.Errorf("sqlite: store stream position: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		s.next = startNext
		fail(fmt.Errorf("sqlite: commit: %w", err))
		return
	}
	s.pos.Store(s.next)
	wake := map[string]struct{}{}
	all := false
	for _, o := range oks {
		for u := range o.t.wake {
			wake[u] = struct{}{}
		}
		all = all || o.t.wakeAll
		for _, fn := range o.t.onCommit {
			fn()
		}
	}
	if s.notify != nil && (len(wake) > 0 || all) {
		users := make([]string, 0, len(wake))
		for u := range wake {
			users = append(users, u)
		}
		s.notify(s.next, users, all)
	}
	for _, o := range oks {
		o.r.done <- nil
	}
}

func safeCall(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: write callback panicked: %v", p)
		}
	}()
	return fn(t)
}

func migrate(db *sql.DB) error {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: read migrations: %w", err)
	}
	type mig struct {
		n    int
		name string
	}
	var migs []mig
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return fmt.Errorf("sqlite: bad migration file name %q", name)
		}
		migs = append(migs, mig{n, name})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].n < migs[j].n })
	for i := 1; i < len(migs); i++ {
		if migs[i].n == migs[i-1].n {
			return fmt.Errorf("sqlite: duplicate migration number %d", migs[i].n)
		}
	}
	for _, m := range migs {
		var one int
		err := db.QueryRow(`SELECT 1 FROM schema_migrations WHERE version=?`, m.n).Scan(&one)
		if err == nil {
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: check migration %d: %w", m.n, err)
		}
		body, err := migrationFS.ReadFile("migrations/" + m.name)
		if err != nil {
			return fmt.Errorf("sqlite: read migration %s: %w", m.name, err)
		}
		tx, err := db.Begin()
		if err != nil {
			return fmt.Errorf("sqlite: begin migration: %w", err)
		}
		if _, err := tx.Exec(string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: apply migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations(version, name, applied_ts) VALUES(?,?,?)`,
			m.n, m.name, time.Now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: record migration %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: commit migration %s: %w", m.name, err)
		}
	}
	return nil
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
