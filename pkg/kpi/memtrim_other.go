//go:build !linux || !cgo

package kpi

// releaseFreedMemory is a no-op where the C library has no malloc_trim.
func releaseFreedMemory() {}

// largeBlocksFromMmap is a no-op where the C library has no mallopt.
func largeBlocksFromMmap() {}
