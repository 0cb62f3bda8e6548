package kpi

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// A full build runs in a child process: the executable itself, started again with
// buildProcessEnv set (BuildProcessMain). The serving process only opens the file the
// child wrote. Why:
//   - memory: a build's peak (1.87 GB at 100M events, much of it memory DuckDB does not
//     count against its limit) is the child's, and all of it goes back to the system when
//     the child exits; the serving process stays at its serving size;
//   - isolation: the child asks to be the kernel's first pick when memory runs out, and a
//     build killed that way leaves the plugin serving;
//   - priority: a build in the background runs at nice buildNice, so the increments that
//     keep new events visible meanwhile get the CPUs first (docs/BENCHMARKS.md).
//
// The request and the result are JSON on the child's stdin and stdout; its stderr is the
// parent's original one (logOutput), where Grafana reads the plugin's log lines. The
// segments the build lists are opened by the parent (pinSegments) and passed as inherited
// files, read by the child through /proc/self/fd, so compaction retiring one meanwhile
// changes nothing.

// buildProcessEnv marks the child process of a full build.
const buildProcessEnv = "BLUETICKS_BUILD_PROCESS"

// buildNice is how much lower than the plugin's a build in the background runs (nice
// values add up to 19). The first build, which queries wait for, runs at the plugin's.
const buildNice = 10

// buildProcessReady: this executable called BuildProcessMain, so it can be started again
// as a build's child process. Engines opened after that build in children.
var buildProcessReady atomic.Bool

// logOutput is the process's standard error as it started: the child's log lines go there.
// (In the plugin, go-plugin later replaces os.Stderr with a pipe Grafana discards; the
// SDK's logger, and Grafana with it, reads the original.)
var logOutput = os.Stderr

// BuildProcessMain must be the first call in main of an executable whose engines should
// build their facts in a child process (the plugin's). In that child process it builds and
// exits; otherwise it notes that the executable can be started as one and returns.
// Elsewhere than on Linux builds stay in the process (they need /proc/self/fd).
func BuildProcessMain() {
	if os.Getenv(buildProcessEnv) == "" {
		// Without /proc (a chroot or an empty container root), builds stay in the process.
		_, err := os.Readlink("/proc/self/exe")
		buildProcessReady.Store(runtime.GOOS == "linux" && err == nil && procFDs())
		return
	}
	os.Exit(runBuildProcess(os.Stdin, os.Stdout))
}

// buildProcessExe is what a build's child process runs: this very binary, even when an
// upgrade replaced the file since it started.
var buildProcessExe = "/proc/self/exe"

// buildProcessHook, when set (tests), is called with the pid of each build's child
// process as soon as it has started.
var buildProcessHook atomic.Pointer[func(pid int)]

// buildRequest is what a build's child process is asked to do.
type buildRequest struct {
	Source             *store.Source
	Demo               demo.Config
	DemoEnd            time.Time
	BuildMemoryLimitMB int
	Threads            int
	NoRollups          bool
	WorkDir            string // the engine's: the child spills into it
	Schema, Path       string
	Version            string
	Files              []store.Segment // Path: /proc/self/fd/N of the child
	// The package's tunables, so that tests changing them get the same build in a child.
	SortSliceRows, Partitions int
}

// buildResult is what it answers: g's listing and statistics, or why it failed.
type buildResult struct {
	Base   []string
	Merged map[string][]string
	Stats  Stats // its times travel as wireTimes: JSON has no times past year 9999
	Times  wireTimes
	Error  string
	Memory bool          // the error is ErrBuildMemory's
	DuckDB *duckdb.Error // DuckDB's error inside it, if any (callers may look at its type)
}

// runBuildProcess is the child process: it reads a buildRequest from in, builds the file
// and writes a buildResult to out. It returns the exit code.
func runBuildProcess(in io.Reader, out io.Writer) int {
	var req buildRequest
	nameProcess("blueticks-build") // what top shows, instead of "exe"
	// When memory runs out, the kernel should pick the build rather than the plugin or
	// Grafana beside it (raising one's own score needs no privilege).
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("500"), 0)
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "blueticks build process: read the request: %v\n", err)
		return 2
	}
	if req.SortSliceRows > 0 {
		sortSliceRows = req.SortSliceRows
	}
	forcedPartitions = req.Partitions
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	e := &Engine{
		opts: Options{Source: req.Source, Demo: req.Demo, BuildMemoryLimitMB: req.BuildMemoryLimitMB,
			Threads: req.Threads, NoRollups: req.NoRollups},
		workDir: req.WorkDir,
		open:    map[*sql.DB]openInstance{},
	}
	g := &generation{schema: req.Schema, path: req.Path, version: req.Version, demoEnd: req.DemoEnd}
	pins := make([]string, 0, len(req.Files))
	for _, f := range req.Files {
		pins = append(pins, f.Path)
	}
	var res buildResult
	if err := e.buildFile(ctx, g, req.Files, pins); err != nil {
		res.Error, res.Memory = err.Error(), errors.Is(err, ErrBuildMemory)
		errors.As(err, &res.DuckDB)
	} else {
		res.Base, res.Merged, res.Stats = g.base, g.merged, g.stats
		res.Stats.BuildPeakRSSMB = selfPeakRSSMB()
		res.Times = toWire(&res.Stats)
	}
	if err := json.NewEncoder(out).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "blueticks build process: write the result: %v\n", err)
		return 2
	}
	return 0
}

// selfPeakRSSMB is this process's peak resident memory (VmHWM, since it started its
// executable), in MB. (The rusage of a child, as its parent sees it, counts the parent's
// peak before the exec too.)
func selfPeakRSSMB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb / 1024
		}
	}
	return 0
}

// ErrBuildKilled marks a full build whose child process was killed (SIGKILL, which the
// plugin sends only when it closes: most often the kernel's, for memory).
var ErrBuildKilled = errors.New("the process building the facts was killed")

// ErrBuildProcess marks a full build whose child process failed otherwise: it crashed, or
// ended without an answer. The plugin's fault, not the store's.
var ErrBuildProcess = errors.New("the process building the facts failed")

// killedBy says whether a process ended by signal sig.
func killedBy(exit *exec.ExitError, sig syscall.Signal) bool {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// buildInChild runs buildFile for g in a child process, reading files (pinned: read by
// this process's /proc/self/fd paths) through opened, inherited as its files 3, 4, ... It
// returns the paths the segments were read by (for namingSegments).
func (e *Engine) buildInChild(ctx context.Context, g *generation, files []store.Segment, opened []*os.File) ([]string, error) {
	req := buildRequest{Source: e.opts.Source, Demo: e.opts.Demo, DemoEnd: g.demoEnd,
		BuildMemoryLimitMB: e.opts.BuildMemoryLimitMB, Threads: e.opts.Threads, NoRollups: e.opts.NoRollups,
		WorkDir: e.workDir, Schema: g.schema, Path: g.path, Version: g.version,
		SortSliceRows: sortSliceRows, Partitions: forcedPartitions}
	pins := make([]string, len(files))
	for i, f := range files {
		f.Path = fmt.Sprintf("/proc/self/fd/%d", 3+i) // ExtraFiles[i] is the child's fd 3+i
		pins[i] = f.Path
		req.Files = append(req.Files, f)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var stdout bytes.Buffer
	cmd := exec.Command(buildProcessExe)
	cmd.Args = []string{os.Args[0], "--blueticks-build-facts"} // what ps shows; the child reads only its environment
	cmd.Env = append(os.Environ(), buildProcessEnv+"=1")
	cmd.Stdin = bytes.NewReader(body)
	cmd.Stdout = &stdout
	cmd.Stderr = logOutput
	cmd.ExtraFiles = opened
	start := time.Now()
	done := make(chan error, 1)
	started := make(chan error, 1)
	nice := 0 // added to the plugin's own
	if e.cur.Load() != nil {
		nice = buildNice
	}
	go runNiced(cmd, nice, started, done)
	if err := <-started; err != nil {
		// Cannot start a process here (seccomp, a process limit, a noexec mount): build in
		// this process rather than not at all.
		log.DefaultLogger.Warn("cannot start a process to build the facts; building them in the plugin's process", "error", err)
		own := make([]string, len(files)) // files are read through this process's descriptors
		for i, f := range files {
			own[i] = f.Path
		}
		return own, e.buildFile(ctx, g, files, own)
	}
	failed := func(err error) ([]string, error) {
		// The child removes what it wrote when it fails, unless it could not.
		removeDBFiles(g.path)
		_ = os.RemoveAll(filepath.Join(e.workDir, "spill-build-"+g.schema))
		return pins, err
	}
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return failed(ctx.Err())
	}
	var res buildResult
	derr := json.Unmarshal(stdout.Bytes(), &res)
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit) && killedBy(exit, syscall.SIGKILL):
		return failed(fmt.Errorf("%w (%v): when the machine runs out of memory the kernel kills the largest process; lower buildMemoryLimitMB or give the machine more memory", ErrBuildKilled, waitErr))
	case waitErr != nil:
		return failed(fmt.Errorf("%w: %w (the plugin's log has its last lines)", ErrBuildProcess, waitErr))
	case derr != nil:
		return failed(fmt.Errorf("%w: its answer cannot be read: %w", ErrBuildProcess, derr))
	case res.Error != "":
		return failed(childError{text: res.Error, memory: res.Memory, duckdb: res.DuckDB})
	}
	g.base, g.merged, g.stats = res.Base, res.Merged, res.Stats
	res.Times.restore(&g.stats)
	g.full = g.stats.Events
	log.DefaultLogger.Info("build process done", "events", g.stats.Events, "took", time.Since(start), "peakRSSMB", g.stats.BuildPeakRSSMB)
	return pins, nil
}

// wireTimes are a Stats' times as Unix microseconds (a store that is not the receiver's
// may hold any year DuckDB can); the zero time as 0 with its flag.
type wireTimes struct {
	MinTS, MaxTS, BuiltAt      int64
	HasMin, HasMax, HasBuiltAt bool
}

// toWire moves st's times into wireTimes, leaving st without them.
func toWire(st *Stats) wireTimes {
	var w wireTimes
	for _, f := range []struct {
		t   *time.Time
		us  *int64
		has *bool
	}{{&st.MinTS, &w.MinTS, &w.HasMin}, {&st.MaxTS, &w.MaxTS, &w.HasMax}, {&st.BuiltAt, &w.BuiltAt, &w.HasBuiltAt}} {
		if !f.t.IsZero() {
			*f.us, *f.has = f.t.UnixMicro(), true
		}
		*f.t = time.Time{}
	}
	return w
}

// restore puts the times back into st.
func (w wireTimes) restore(st *Stats) {
	for _, f := range []struct {
		t   *time.Time
		us  int64
		has bool
	}{{&st.MinTS, w.MinTS, w.HasMin}, {&st.MaxTS, w.MaxTS, w.HasMax}, {&st.BuiltAt, w.BuiltAt, w.HasBuiltAt}} {
		if f.has {
			*f.t = time.UnixMicro(f.us).UTC()
		}
	}
}

// startAndWait starts cmd, reports the start on started and its end on done (runNiced).
func startAndWait(cmd *exec.Cmd, started, done chan<- error) {
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	if hook := buildProcessHook.Load(); hook != nil {
		(*hook)(cmd.Process.Pid) // before Wait: the process cannot be reaped meanwhile
	}
	started <- nil
	done <- cmd.Wait()
}

// childError is a build's error as its child process told it: its text, whether it is
// ErrBuildMemory, and DuckDB's error inside it.
type childError struct {
	text   string
	memory bool
	duckdb *duckdb.Error
}

func (c childError) Error() string { return c.text }

func (c childError) Unwrap() error {
	if c.duckdb == nil {
		return nil
	}
	return c.duckdb
}

func (c childError) Is(target error) bool { return c.memory && target == ErrBuildMemory }
