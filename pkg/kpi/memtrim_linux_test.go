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
	require.Equal(t, 250, duckdbMuzzyDecay(), "setDuckDBDecay sets both")

	// The decays are 250 ms now, not the serving ones: only New can make the checks below
	// pass.
	servingAllocatorDecay = sync.OnceFunc(setServingDecays) // as at the start of a process
	e, err := New(Options{})
	require.NoError(t, err)
	defer e.Close()
	require.Equal(t, servingDecayMS, duckdbDecay())
	require.Equal(t, servingMuzzyDecayMS, duckdbMuzzyDecay())
}

// releaseFreedMemory hands back what DuckDB's jemalloc keeps of freed pages: after a
// 32 MB table is dropped (its pages kept: the decay is 10 s here), jemalloc's resident
// memory is back near what it has in use.
func TestReleaseFreedMemoryPurgesDuckDBsAllocator(t *testing.T) {
	before := duckdbDecay()
	require.GreaterOrEqual(t, before, 0, "DuckDB's jemalloc answers")
	defer setDuckDBDecay(before)
	require.True(t, setDuckDBDecay(10_000)) // nothing goes back by itself during the test
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("CREATE TABLE t AS SELECT range AS v FROM range(4000000)")
	require.NoError(t, err)
	_, err = db.Exec("DROP TABLE t")
	require.NoError(t, err)
	_, active, resident, metadata := duckdbAllocatorStats()
	require.Greater(t, resident-active-metadata, int64(16<<20), "the dropped table's pages are kept")
	releaseFreedMemory()
	_, active, resident, metadata = duckdbAllocatorStats()
	require.Less(t, resident-active-metadata, int64(4<<20), "and handed back")
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
