package kpi

import (
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"
)

// runNiced starts cmd at a nice value nice above this process's (at most 19), and reports
// the start on started and its end on done. Linux keeps a nice value per thread and a
// child takes the one of the thread that forks it, so this goroutine forks from a thread
// of its own, lowered first; the thread ends with the goroutine (never unlocked), as only
// privileged threads may raise their priority again. The child is killed if that thread
// ends first (the plugin dies).
func runNiced(cmd *exec.Cmd, nice int, started, done chan<- error) {
	runtime.LockOSThread()
	if nice != 0 {
		// The raw getpriority gives 20 - nice.
		if prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid()); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), min(20-prio+nice, 19)) // best effort
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	startAndWait(cmd, started, done)
}

// nameProcess sets the calling thread's name (the process's, as top and ps show it, when
// it is the main thread: main's first call is), at most 15 bytes.
func nameProcess(name string) {
	b := append([]byte(name), 0)
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0)
}
