//go:build linux && cgo

package kpi

/*
#include <malloc.h>
*/
import "C"

import "sync"

// releaseFreedMemory hands memory freed by a closed DuckDB instance back to the operating
// system. glibc keeps freed heap memory for reuse, so without it the process would stay at
// the size of its largest build (docs/BENCHMARKS.md).
func releaseFreedMemory() { C.malloc_trim(0) }

// largeBlocksFromMmap makes the C heap serve every allocation of 128 KiB or more (DuckDB's
// 256 KiB buffer blocks among them) from mmap, and so return it to the system when freed.
// By default glibc raises that threshold each time such a block is freed, up to 32 MiB,
// after which freed blocks stay in its arenas: a serving process taking increments held
// ~100 MB more at its peak (docs/BENCHMARKS.md, eleventh session). Process-wide; the
// serving engine sets it (New), a build's child process does not.
var largeBlocksFromMmap = sync.OnceFunc(func() { C.mallopt(C.M_MMAP_THRESHOLD, 128<<10) })
