package kpi

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// Many queries preparing the same new statements at once, past the cache's bound: every
// one answers (none runs on a statement another closed), with the right value.
func TestStmtCacheConcurrentAndFull(t *testing.T) {
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	c := newStmtCache(db)
	defer c.close()
	const texts = maxCachedStmts + 40
	var wg sync.WaitGroup
	errs := make(chan error, 8*texts)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < texts; i++ {
				rows, err := c.query(context.Background(), fmt.Sprintf("SELECT %d + ?", i), 1)
				if err != nil {
					errs <- err
					continue
				}
				var v sql.NullInt64
				for rows.Next() {
					if err := rows.Scan(&v); err != nil {
						errs <- err
					}
				}
				rows.Close()
				if v.Int64 != int64(i+1) {
					errs <- fmt.Errorf("statement %d answered %v", i, v)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Equal(t, maxCachedStmts, len(c.m), "the cache keeps its first statements")
}
