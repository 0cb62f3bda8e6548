//go:build linux && cgo

package kpi

/*
#include <malloc.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

// DuckDB's own allocator on Linux: its bundled jemalloc, prefixed duckdb_je_. Weak, so a
// DuckDB built without it still links (the statistics then read zero).
extern int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

static size_t bt_je_stat(const char *name) {
	if (!duckdb_je_mallctl) return 0;
	size_t v = 0, len = sizeof(v);
	if (duckdb_je_mallctl(name, &v, &len, NULL, 0) != 0) return 0;
	return v;
}

// bt_je_set_decay sets one of jemalloc's decays ("dirty_decay_ms": how long freed pages
// are kept; "muzzy_decay_ms": how long pages returned lazily, with MADV_FREE and still
// resident until the kernel needs them, wait before being returned for good) to ms, for
// every arena now (arena.<i>: jemalloc takes no "all arenas" index for these) and every
// arena made later (arenas.*). 0 on success.
static int bt_je_set_decay(const char *which, ssize_t ms) {
	if (!duckdb_je_mallctl) return -1;
	char name[64];
	snprintf(name, sizeof(name), "arenas.%s", which);
	int rc = duckdb_je_mallctl(name, NULL, NULL, &ms, sizeof(ms)) != 0 ? -1 : 0;
	unsigned n = 0;
	size_t len = sizeof(n);
	if (duckdb_je_mallctl("arenas.narenas", &n, &len, NULL, 0) != 0) return -1;
	for (unsigned i = 0; i < n; i++) {
		// An arena not initialised yet has no settings to change: arenas.* covers it.
		snprintf(name, sizeof(name), "arena.%u.%s", i, which);
		duckdb_je_mallctl(name, NULL, NULL, &ms, sizeof(ms));
	}
	return rc;
}

// bt_je_decay sets both decays (freed pages kept, then returned lazily) to ms.
static int bt_je_decay(ssize_t ms) {
	int dirty = bt_je_set_decay("dirty_decay_ms", ms);
	int muzzy = bt_je_set_decay("muzzy_decay_ms", ms);
	return dirty != 0 || muzzy != 0 ? -1 : 0;
}

// bt_je_decay_read reads arena 0's decay which (-2: no jemalloc to ask).
static ssize_t bt_je_decay_read(const char *which) {
	if (!duckdb_je_mallctl) return -2;
	char name[64];
	snprintf(name, sizeof(name), "arena.0.%s", which);
	ssize_t v = -2;
	size_t len = sizeof(v);
	if (duckdb_je_mallctl(name, &v, &len, NULL, 0) != 0) return -2;
	return v;
}

// bt_je_purge hands every arena's freed pages back to the system now.
static void bt_je_purge(void) {
	if (!duckdb_je_mallctl) return;
	duckdb_je_mallctl("arena.4096.purge", NULL, NULL, NULL, 0); // 4096: MALLCTL_ARENAS_ALL
}

static void bt_je_refresh(void) {
	if (!duckdb_je_mallctl) return;
	uint64_t epoch = 1;
	size_t len = sizeof(epoch);
	duckdb_je_mallctl("epoch", &epoch, &len, &epoch, len);
}
*/
import "C"

import (
	"sync"
	"unsafe"
)

// mallocStats reports what glibc's heap holds: bytes handed out to callers (DuckDB's C++
// objects, which its memory count leaves out; its buffers come from its jemalloc), and
// bytes freed but kept by the allocator. A diagnostic for benchmarks.
func mallocStats() (inUse, free int64) {
	mi := C.mallinfo2()
	return int64(mi.uordblks) + int64(mi.hblkhd), int64(mi.fordblks)
}

// duckdbAllocatorStats reads DuckDB's jemalloc: bytes allocated by DuckDB (its buffers
// and working memory), in active pages, resident (data and the allocator's metadata), and
// the metadata alone. A diagnostic for benchmarks (docs/BENCHMARKS.md, twelfth session).
func duckdbAllocatorStats() (allocated, active, resident, metadata int64) {
	C.bt_je_refresh()
	stat := func(name string) int64 {
		cs := C.CString(name)
		defer C.free(unsafe.Pointer(cs))
		return int64(C.bt_je_stat(cs))
	}
	return stat("stats.allocated"), stat("stats.active"), stat("stats.resident"), stat("stats.metadata")
}

// releaseFreedMemory hands memory freed by DuckDB back to the operating system: what the
// C heap (glibc) and DuckDB's jemalloc keep for reuse. Called when an instance closes
// (without it the process would stay at the size of its largest build) and before a
// checkpoint, whose own allocations then do not come on top of it (docs/BENCHMARKS.md).
func releaseFreedMemory() {
	C.malloc_trim(0)
	C.bt_je_purge()
}

// trimCHeap hands what glibc keeps of DuckDB's freed C++ objects back to the system,
// after each served increment: with its own (dynamic) thresholds glibc otherwise keeps up
// to tens of MB of them, which at 100M events stood on top of the next increment's peak
// (docs/BENCHMARKS.md, twenty-third session). DuckDB's jemalloc keeps its freed pages for
// the panel queries that follow (servingDecayMS).
func trimCHeap() { C.malloc_trim(0) }

// glibc's own thresholds are left as they are. Fixed at 128 KiB (eleventh to twenty-first
// sessions), M_MMAP_THRESHOLD made each of DuckDB's larger C++ allocations a fresh mapping,
// faulted in page by page: at 100M events an update made ~3× the page faults and took
// ~1.5 s longer, for ~10 MB less RSS on average (docs/BENCHMARKS.md, twenty-second
// session).

// setDuckDBDecay sets how many milliseconds DuckDB's jemalloc keeps pages it freed before
// giving them back to the system (its default, 1000, lets a busy process hold ~50 MB it
// does not use: docs/BENCHMARKS.md, twelfth session). It reports whether it could.
func setDuckDBDecay(ms int) bool { return C.bt_je_decay(C.ssize_t(ms)) == 0 }

// duckdbDecay reads arena 0's dirty decay in milliseconds (-2: no jemalloc to ask).
func duckdbDecay() int { return decayRead("dirty_decay_ms") }

// servingDecayMS is how long DuckDB's jemalloc keeps freed pages in the serving process:
// 1000 ms, jemalloc's default, set here so that a DuckDB release changing it does not
// change it silently. Panel queries allocate a few MB of working memory each (hash
// tables) and free it at the end; pages handed back in between are faulted in again by
// the next query. At 100 ms (until 2026-12-07) the overview's Campaigns panel took 20-25
// ms instead of 7-10 ms, and the whole dashboard 66-93 ms instead of 37-56 ms, at 10M and
// 100M events on a VM where page faults are dear; the process held ~19 MB less on
// average while increments ran at 10M, ~20 MB less at its peaks at 100M. 0 costs
// increments ~1.3 s more (docs/BENCHMARKS.md, thirteenth and twenty-second sessions).
const servingDecayMS = 1000

// duckdbMuzzyDecay reads arena 0's muzzy decay in milliseconds (-2: no jemalloc to ask).
func duckdbMuzzyDecay() int { return decayRead("muzzy_decay_ms") }

func decayRead(which string) int {
	cs := C.CString(which)
	defer C.free(unsafe.Pointer(cs))
	return int(C.bt_je_decay_read(cs))
}

// servingMuzzyDecayMS: pages jemalloc has kept servingDecayMS are returned for good
// (MADV_DONTNEED), not lazily (MADV_FREE), which leaves them resident until the kernel
// needs memory: 4-22 MB of the serving process's RSS at 100M events while increments ran,
// and part of its peaks (docs/BENCHMARKS.md, twenty-third session).
const servingMuzzyDecayMS = 0

// servingAllocatorDecay sets servingDecayMS and servingMuzzyDecayMS, once, in the serving
// process (New); a full build's child process keeps jemalloc's defaults.
var servingAllocatorDecay = sync.OnceFunc(setServingDecays)

func setServingDecays() {
	setDuckDBDecay(servingDecayMS)
	cs := C.CString("muzzy_decay_ms")
	defer C.free(unsafe.Pointer(cs))
	C.bt_je_set_decay(cs, C.ssize_t(servingMuzzyDecayMS))
}
