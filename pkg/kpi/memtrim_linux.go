//go:build linux && cgo

package kpi

/*
#include <malloc.h>
*/
import "C"

// releaseFreedMemory hands memory freed by a closed DuckDB instance back to the operating
// system. glibc keeps freed heap memory for reuse, so without it the process would stay at
// the size of its largest build (docs/BENCHMARKS.md).
func releaseFreedMemory() { C.malloc_trim(0) }
