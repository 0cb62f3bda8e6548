package kpi

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the prepared statements of one DuckDB instance. A dashboard sends the
// same statements every refresh, with a range a few seconds later in the arguments, and
// parsing, binding and planning is a good part of a query that reads a few hundred
// rollup rows (Sent: ~0.5 of ~2.9 ms on a 2M-event store). DuckDB binds a prepared statement
// again by itself when a table it reads changed (increments).
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// maxCachedStmts bounds the cache: the catalog's shapes times a few variable values.
// Past it, statements run unprepared (a cached statement is never closed while the cache
// lives: another query may be about to run it).
const maxCachedStmts = 512

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// query runs text with args on a prepared statement, preparing it on first use.
func (c *stmtCache) query(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, text)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.db.QueryContext(ctx, text, args...)
	}
	return st.QueryContext(ctx, args...)
}

// stmt gives text's cached statement, preparing it if there is room; nil when the cache
// is full.
func (c *stmtCache) stmt(ctx context.Context, text string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, full := c.m[text], len(c.m) >= maxCachedStmts
	c.mu.Unlock()
	if st != nil || full {
		return st, nil
	}
	// Prepared outside the lock; when two queries prepare the same text at once, the
	// first one stored is kept and the other closed before anyone else sees it.
	st, err := c.db.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kept := c.m[text]; kept != nil {
		_ = st.Close()
		return kept, nil
	}
	c.m[text] = st
	return st, nil
}

// close closes every cached statement; call it when no query uses the instance any more.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range c.m {
		_ = st.Close()
		delete(c.m, k)
	}
}
