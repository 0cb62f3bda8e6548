//go:build !linux

package kpi

import "os/exec"

// runNiced starts cmd (at its normal priority: builds run in a child process only on
// Linux, BuildProcessMain), reports the start on started and its end on done.
func runNiced(cmd *exec.Cmd, _ int, started, done chan<- error) {
	startAndWait(cmd, started, done)
}

// nameProcess does nothing here.
func nameProcess(string) {}
