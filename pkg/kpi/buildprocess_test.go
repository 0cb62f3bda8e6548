package kpi_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// buildProcessStore writes n demo events over 10 days before end, in segs segments.
func buildProcessStore(t *testing.T, n, segs int, end time.Time) (*store.Writer, *store.Source) {
	t.Helper()
	all := demoEvents(t, seededRand(t), n, 10, end)
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	for i := 0; i < segs; i++ {
		_, err := w.Append(context.Background(), all[i*len(all)/segs:(i+1)*len(all)/segs], store.AppendOptions{})
		require.NoError(t, err)
	}
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	return w, src
}

// niceOf reads a process's nice value.
func niceOf(pid int) (int, error) { return statNice("/proc/" + strconv.Itoa(pid) + "/stat") }

// statNice reads the nice value (field 19) of a /proc stat file.
func statNice(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])) // from field 3
	return strconv.Atoi(fields[19-3])
}

// ownNice is this process's nice value: the lowest of its threads' (a thread that forked
// a niced child may keep the child's, when it was the main thread: Go parks a locked
// main thread instead of ending it).
func ownNice() (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	low := 20
	for _, task := range tasks {
		n, err := statNice("/proc/self/task/" + task.Name() + "/stat")
		var gone *fs.PathError
		if errors.As(err, &gone) {
			continue // ended meanwhile
		}
		if err != nil {
			return 0, err
		}
		low = min(low, n)
	}
	return low, nil
}

// TestBuildProcessMatchesInProcess: the facts a child process builds (what the plugin
// does) answer exactly as those built in the process (what the CLI does), with the
// listing increments need: a segment appended afterwards is taken by both alike.
func TestBuildProcessMatchesInProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("full builds run in a child process only on Linux")
	}
	end := time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	w, src := buildProcessStore(t, 20_000, 4, end)
	ctx := context.Background()
	// A merged segment among them: the child's listing must say what it holds.
	compact := store.CompactOptions{SmallBytes: 1 << 30, MinSegments: 2, RetiredGrace: time.Hour}
	res, err := w.Compact(ctx, compact)
	require.NoError(t, err)
	require.Equal(t, 4, res.Merged)
	// Stepped by Refresh: no look when a segment lands (the two appended below make one increment).
	child, err := kpi.New(kpi.Options{Source: src, Threads: 2, CheckEvery: time.Hour, NoChangeNotices: true})
	require.NoError(t, err)
	defer child.Close()
	require.True(t, kpi.BuildsInChild(child), "TestMain called BuildProcessMain")
	inProc, err := kpi.New(kpi.Options{Source: src, Threads: 2, CheckEvery: time.Hour, NoChangeNotices: true})
	require.NoError(t, err)
	defer inProc.Close()
	kpi.BuildInProcess(inProc)

	var pids []int
	nice, niceErr := -1, error(nil)
	defer kpi.OnBuildProcess(func(pid int) {
		pids = append(pids, pid)
		nice, niceErr = niceOf(pid)
	})()
	require.NoError(t, child.Refresh(ctx))
	require.Len(t, pids, 1, "one build, in a child process")
	require.NotEqual(t, os.Getpid(), pids[0])
	require.NoError(t, niceErr)
	own, err := ownNice()
	require.NoError(t, err)
	assert.Equal(t, own, nice, "the first build, which queries wait for, runs at the plugin's priority")
	require.NoError(t, inProc.Refresh(ctx))
	require.Len(t, pids, 1, "the in-process engine started no child")

	queries := []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["received","blocked","new_contacts","conversations","resolution_time","response_time"],"groupBy":["agent_id"],"limit":500}`,
		`{"queryType":"timeseries","metrics":["sent","delivery_rate","block_rate","active_contacts"],"bucket":"1d"}`,
	}
	from, to := end.AddDate(0, 0, -11), end.Add(time.Hour)
	a, err := child.Stats(ctx)
	require.NoError(t, err)
	b, err := inProc.Stats(ctx)
	require.NoError(t, err)
	require.Greater(t, a.Events, int64(15_000))
	require.Equal(t, b.Events, a.Events)
	require.Equal(t, b.MinTS, a.MinTS)
	require.Equal(t, b.MaxTS, a.MaxTS)
	require.Equal(t, b.Files, a.Files)
	require.Equal(t, b.Version, a.Version)
	require.Zero(t, b.BuildPeakRSSMB, "built in the process")
	require.Greater(t, a.BuildPeakRSSMB, int64(20), "the child's peak memory")
	requireSameAnswers(t, "after the build: ", queries, from, to, inProc, child)

	// The child's listing of what the segments hold lets the snapshot take the next one,
	// and a merge of it with the earlier merge, as increments.
	for i := 0; i < 2; i++ {
		_, err = w.Append(ctx, demoEvents(t, seededRand(t), 1_000, 2, end), store.AppendOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, child.Refresh(ctx))
	res, err = w.Compact(ctx, compact)
	require.NoError(t, err)
	require.Equal(t, 3, res.Merged)
	require.NoError(t, child.Refresh(ctx))
	require.NoError(t, inProc.Refresh(ctx))
	a, err = child.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, a.Increments, "taken as an increment and a rename, not built again")
	require.Len(t, pids, 1)
	requireSameAnswers(t, "after an increment and a merge: ", queries, from, to, inProc, child)
}

// TestKilledBuildProcess: a build's child process runs below the plugin's priority; when
// it is killed (the kernel's out-of-memory killer, say) the snapshot before it keeps
// serving, the health check says what happened, nothing of the build is left on disk, and
// the next build succeeds. Close kills a build in progress.
func TestKilledBuildProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("full builds run in a child process only on Linux")
	}
	end := time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	w, src := buildProcessStore(t, 20_000, 2, end)
	ctx := context.Background()
	e, err := kpi.New(kpi.Options{Source: src, Threads: 2, CheckEvery: time.Hour, NoChangeNotices: true})
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Refresh(ctx))
	before, err := e.Stats(ctx)
	require.NoError(t, err)
	work := kpi.WorkDir(e)
	assert.Greater(t, before.BuildPeakRSSMB, int64(20), "the child process's peak memory")
	assert.Less(t, before.BuildPeakRSSMB, int64(2000))

	// Growing past the share of increments builds in full: the look after next does, and
	// its child process is killed once it has started writing its file.
	defer kpi.SetMaxIncrementalShare(0)()
	grow := func() {
		t.Helper()
		_, err = w.Append(ctx, demoEvents(t, seededRand(t), 500, 1, end), store.AppendOptions{})
		require.NoError(t, err)
	}
	grow()
	require.NoError(t, kpi.Look(e))
	require.False(t, kpi.FullBuildRunning(e), "the first increment is taken")
	filesBefore, err := os.ReadDir(work)
	require.NoError(t, err)
	grow()
	var (
		nice    = -1
		hookErr error
		wrote   bool
	)
	stop := kpi.OnBuildProcess(func(pid int) {
		if nice, hookErr = niceOf(pid); hookErr != nil {
			return
		}
		// Wait (bounded) until the child has created its DuckDB file, so that what it
		// leaves behind is there to be removed.
		for i := 0; i < 500 && !wrote; i++ {
			now, _ := os.ReadDir(work)
			wrote = len(names(now)) > len(names(filesBefore))
			time.Sleep(10 * time.Millisecond)
		}
		hookErr = syscall.Kill(pid, syscall.SIGKILL)
	})
	require.NoError(t, kpi.Look(e))
	kpi.WaitFullBuild(e)
	stop()
	require.NoError(t, hookErr)
	require.True(t, wrote, "the child started writing before it was killed")
	own, err := ownNice()
	require.NoError(t, err)
	assert.Equal(t, min(own+10, 19), nice, "a build in the background runs below the serving process's priority")
	st, err := e.Stats(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, kpi.ErrBuildKilled)
	assert.NotErrorIs(t, err, kpi.ErrStore, "not the store's fault")
	assert.Contains(t, err.Error(), "the process building the facts was killed (signal: killed)")
	assert.Contains(t, err.Error(), "lower buildMemoryLimitMB or give the machine more memory")
	assert.Contains(t, err.Error(), "(the next full build starts after ")
	assert.GreaterOrEqual(t, st.Events, before.Events, "the snapshot before it serves")
	after, err := os.ReadDir(work)
	require.NoError(t, err)
	assert.Equal(t, names(filesBefore), names(after), "nothing of the killed build is left in the work directory")

	// The next build waits: a look meanwhile starts none (one killed for memory would be
	// killed again), but the snapshot takes the new segment.
	counted := st.Events
	grow()
	require.NoError(t, kpi.Look(e))
	require.False(t, kpi.FullBuildRunning(e), "no build right after a failed one")
	st, err = e.Stats(ctx)
	require.ErrorIs(t, err, kpi.ErrBuildKilled, "the error stays until a build succeeds")
	assert.Greater(t, st.Events, counted, "new events are still counted")

	// Refresh does not wait: with the next segment, the build runs, succeeds and clears
	// the error.
	grow()
	require.NoError(t, e.Refresh(ctx))
	st, err = e.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, before.FullBuilds+1, st.FullBuilds)
	assert.Greater(t, st.Events, before.Events)

	// Close kills a build in progress: a stopped child would never end by itself.
	grow()
	require.NoError(t, kpi.Look(e))
	grow()
	pids := make(chan int, 1)
	defer kpi.OnBuildProcess(func(pid int) {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		pids <- pid
	})()
	require.NoError(t, kpi.Look(e))
	pid := <-pids
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Close did not end the build's child process")
	}
	assert.True(t, errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), "the build's child process is gone")
	_, err = os.Stat(work)
	assert.True(t, os.IsNotExist(err), "the work directory is removed")
}

// TestBuildProcessCannotStart: where no process can be started (seccomp, a process limit,
// a noexec mount), the build runs in the plugin's process instead of not at all.
func TestBuildProcessCannotStart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("full builds run in a child process only on Linux")
	}
	defer kpi.SetBuildProcessExe(filepath.Join(t.TempDir(), "missing"))()
	_, src := buildProcessStore(t, 5_000, 2, time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC))
	e, err := kpi.New(kpi.Options{Source: src, Threads: 2})
	require.NoError(t, err)
	defer e.Close()
	require.True(t, kpi.BuildsInChild(e))
	require.NoError(t, e.Refresh(context.Background()))
	st, err := e.Stats(context.Background())
	require.NoError(t, err)
	assert.Greater(t, st.Events, int64(4_000))
	assert.Zero(t, st.BuildPeakRSSMB, "built in the process")
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
