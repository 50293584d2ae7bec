package sqlite

import (
	"context"
	"database/sql"
	gosync "sync"
)

// maxCachedStmts bounds the statement caches (queries with variable IN lists
// produce one statement per list length).
const maxCachedStmts = 2048

// readDB is the reader pool with a prepared-statement cache: parsing SQL was
// a fifth of the CPU time of a busy server.
type readDB struct {
	*sql.DB
	stmts gosync.Map // query -> *sql.Stmt
	n     gosync.Mutex
	count int
}

func (r *readDB) stmt(ctx context.Context, q string) *sql.Stmt {
	if v, ok := r.stmts.Load(q); ok {
		return v.(*sql.Stmt)
	}
	r.n.Lock()
	full := r.count >= maxCachedStmts
	r.n.Unlock()
	if full {
		return nil
	}
	st, err := r.DB.PrepareContext(ctx, q)
	if err != nil {
		return nil // let the unprepared path report the error
	}
	if v, loaded := r.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	r.n.Lock()
	r.count++
	r.n.Unlock()
	return st
}

// QueryContext runs a cached prepared query.
func (r *readDB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := r.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.DB.QueryContext(ctx, q, args...)
}

// QueryRowContext runs a cached prepared single-row query.
func (r *readDB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := r.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return r.DB.QueryRowContext(ctx, q, args...)
}

// Close closes the cached statements and the pool.
func (r *readDB) Close() error {
	r.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	return r.DB.Close()
}

// writerStmt returns the writer connection's prepared statement for q, or nil
// the first time: the single writer connection is busy with the transaction,
// so new statements are prepared after the commit (prepareWriterStmts). Only
// the writer goroutine calls these, so no locking.
func (s *Store) writerStmt(q string) *sql.Stmt {
	if st, ok := s.wstmts[q]; ok {
		return st
	}
	if len(s.wstmts)+len(s.wpending) < maxCachedStmts {
		s.wpending[q] = struct{}{}
	}
	return nil
}

func (s *Store) prepareWriterStmts() {
	for q := range s.wpending {
		if st, err := s.w.Prepare(q); err == nil {
			s.wstmts[q] = st
		}
	}
	clear(s.wpending)
}
