//go:build windows

package ingest

import (
	"errors"
	"os"
)

// walSupported is false on Windows: without flock a receiver cannot tell a live WAL file
// from a dead one, so each group commit writes a segment directly (the slower path).
const walSupported = false

func tryLockFile(*os.File) (bool, error) {
	return false, errors.New("WAL file locks are not supported on Windows")
}
