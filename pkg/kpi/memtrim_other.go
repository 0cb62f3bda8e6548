//go:build !linux || !cgo

package kpi

// releaseFreedMemory is a no-op where the C library has no malloc_trim.
func releaseFreedMemory() {}

// trimCHeap is a no-op where the C library has no malloc_trim.
func trimCHeap() {}

// mallocStats reports nothing where the C library has no mallinfo2.
func mallocStats() (inUse, free int64) { return 0, 0 }

// duckdbAllocatorStats reports nothing where DuckDB uses the system's allocator.
func duckdbAllocatorStats() (allocated, active, resident, metadata int64) { return 0, 0, 0, 0 }

// setDuckDBDecay does nothing where DuckDB uses the system's allocator.
func setDuckDBDecay(int) bool { return false }

// duckdbDecay reports no jemalloc.
func duckdbDecay() int { return -2 }

// duckdbMuzzyDecay reports no jemalloc.
func duckdbMuzzyDecay() int { return -2 }

// servingAllocatorDecay does nothing where DuckDB uses the system's allocator.
func servingAllocatorDecay() {}
