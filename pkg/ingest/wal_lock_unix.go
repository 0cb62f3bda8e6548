//go:build !windows

package ingest

import (
	"os"
	"syscall"
)

// walSupported: the receiver keeps a write-ahead log (flock tells live WAL files from
// those of dead processes).
const walSupported = true

// tryLockFile takes an exclusive, non-blocking flock on f; it lasts until f is closed or
// the process dies.
func tryLockFile(f *os.File) (bool, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if err == syscall.EWOULDBLOCK {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
