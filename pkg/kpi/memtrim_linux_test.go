//go:build linux && cgo

package kpi

import (
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
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("CREATE TABLE t AS SELECT range AS v FROM range(2000000)")
	require.NoError(t, err)

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
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("CREATE TABLE t AS SELECT range AS v FROM range(100000)")
	require.NoError(t, err)
	before := duckdbDecay()
	require.GreaterOrEqual(t, before, 0, "DuckDB's jemalloc answers")
	defer setDuckDBDecay(before)
	require.True(t, setDuckDBDecay(0))
	require.Equal(t, 0, duckdbDecay())
	require.True(t, setDuckDBDecay(250))
	require.Equal(t, 250, duckdbDecay())

	setDuckDBDecay(1000)
	servingAllocatorDecay = sync.OnceFunc(func() { setDuckDBDecay(servingDecayMS) }) // as at the start of a process
	e, err := New(Options{})
	require.NoError(t, err)
	defer e.Close()
	require.Equal(t, servingDecayMS, duckdbDecay())
}
