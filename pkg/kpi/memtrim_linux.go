//go:build linux && cgo

package kpi

/*
#include <malloc.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>

// DuckDB's own allocator on Linux: its bundled jemalloc, prefixed duckdb_je_. Weak, so a
// DuckDB built without it still links (the statistics then read zero).
extern int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

static size_t bt_je_stat(const char *name) {
	if (!duckdb_je_mallctl) return 0;
	size_t v = 0, len = sizeof(v);
	if (duckdb_je_mallctl(name, &v, &len, NULL, 0) != 0) return 0;
	return v;
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

// releaseFreedMemory hands memory freed by a closed DuckDB instance back to the operating
// system. glibc keeps freed heap memory for reuse, so without it the process would stay at
// the size of its largest build (docs/BENCHMARKS.md).
func releaseFreedMemory() { C.malloc_trim(0) }

// largeBlocksFromMmap makes the C heap serve every allocation of 128 KiB or more from
// mmap, and so return it to the system when freed. By default glibc raises that threshold
// each time such a block is freed, up to 32 MiB, after which freed blocks stay in its
// arenas. DuckDB's buffers and working memory come from its own jemalloc, not from here;
// what glibc serves is DuckDB's C++ objects and vectors and the driver's copies (~40 MB
// in use at 10M events, with 8–14 MB freed but kept: docs/BENCHMARKS.md, twelfth
// session). Process-wide; the serving engine sets it (New), a build's child does not.
var largeBlocksFromMmap = sync.OnceFunc(func() { C.mallopt(C.M_MMAP_THRESHOLD, 128<<10) })
