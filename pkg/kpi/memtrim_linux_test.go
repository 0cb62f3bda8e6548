//go:build linux && cgo

package kpi

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// The benchmarks' memory probe (docs/BENCHMARKS.md) reads DuckDB's jemalloc and glibc's
// heap. A table of 2M integers held by an open DuckDB instance must show in jemalloc's
// count (zeros would mean a DuckDB built without its allocator, or a broken read), and
// resident memory covers what is allocated.
func TestAllocatorStatsRead(t *testing.T) {
	duckdbHolding(t, 2_000_000)

	allocated, active, resident, metadata := duckdbAllocatorStats()
	require.GreaterOrEqual(t, allocated, int64(8<<20), "2M BIGINTs are 16 MB in DuckDB's buffers")
	require.GreaterOrEqual(t, active, allocated)
	require.GreaterOrEqual(t, resident, active)
	require.Positive(t, metadata)

	inUse, _ := mallocStats()
	require.Positive(t, inUse, "DuckDB's C++ objects live in glibc's heap")
}

// The allocator's decay is set and read back (arena 0, once DuckDB has allocated), and the
// serving engine sets servingDecayMS.
func TestDuckDBDecaySet(t *testing.T) {
	duckdbHolding(t, 100_000)
	before := duckdbDecay()
	require.GreaterOrEqual(t, before, 0, "DuckDB's jemalloc answers")
	defer setDuckDBDecay(before)
	require.True(t, setDuckDBDecay(0))
	require.Equal(t, 0, duckdbDecay())
	require.True(t, setDuckDBDecay(250))
	require.Equal(t, 250, duckdbDecay())

	// The decay is 250 ms now, not servingDecayMS: only New can make the check below pass.
	servingAllocatorDecay = sync.OnceFunc(func() { setDuckDBDecay(servingDecayMS) }) // as at the start of a process
	e, err := New(Options{})
	require.NoError(t, err)
	defer e.Close()
	require.Equal(t, servingDecayMS, duckdbDecay())
}

// duckdbHolding opens an in-memory DuckDB instance holding a table of n BIGINTs, closed
// at the end of the test: DuckDB's allocator has then allocated.
func duckdbHolding(t *testing.T, n int) {
	t.Helper()
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.Exec(fmt.Sprintf("CREATE TABLE t AS SELECT range AS v FROM range(%d)", n))
	require.NoError(t, err)
}
