//go:build !windows

package kpi

import (
	"os"
	"syscall"
)

// fileOwner gives the user id owning a file.
func fileOwner(info os.FileInfo) (int, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
