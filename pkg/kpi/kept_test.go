package kpi_test

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// keptQueries cover every fact table and the rollups.
var keptQueries = []string{
	`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
	`{"queryType":"table","metrics":["received","blocked","new_contacts","conversations","resolution_time","response_time"],"groupBy":["agent_id"],"limit":500}`,
	`{"queryType":"timeseries","metrics":["delivery_rate","block_rate"]}`,
}

// keptSetup is a store fed from a demo event list, and an opener of engines that keep
// their facts under one facts directory.
type keptSetup struct {
	t        *testing.T
	src      *store.Source
	feed     func(n int)
	factsDir string
	from, to time.Time
}

func newKeptSetup(t *testing.T, n int) *keptSetup {
	if runtime.GOOS == "windows" {
		t.Skip("facts are not kept on Windows")
	}
	t.Cleanup(kpi.SetMaxIncrementalShare(1e9))
	end := time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	w, src := writableStore(t)
	return &keptSetup{t: t, src: src, feed: eventFeed(t, w, demoEvents(t, seededRand(t), n, 10, end)),
		factsDir: t.TempDir(), from: end.AddDate(0, 0, -11), to: end.Add(time.Hour)}
}

// open starts an engine keeping its facts under factsDir and waits for its first snapshot.
func (k *keptSetup) open(factsDir string) (*kpi.Engine, kpi.Stats) {
	k.t.Helper()
	e, err := kpi.New(kpi.Options{Source: k.src, Threads: 2, MemoryLimitMB: 256, CheckEvery: time.Hour, NoChangeNotices: true, FactsDir: factsDir})
	require.NoError(k.t, err)
	k.t.Cleanup(func() { e.Close() })
	require.NoError(k.t, e.Refresh(context.Background()))
	st, err := e.Stats(context.Background())
	require.NoError(k.t, err)
	return e, st
}

// keptFiles lists the files of the engine's kept directory.
func keptFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A restarted engine serves the facts the last one kept, and takes what the store gained
// meanwhile as an increment instead of building in full; its answers equal a full build.
func TestKeptFactsServeAfterRestart(t *testing.T) {
	k := newKeptSetup(t, 4_000)
	ctx := context.Background()
	k.feed(3_000)
	a, st := k.open(k.factsDir)
	require.Equal(t, 1, st.FullBuilds)
	dir := kpi.KeptDir(a)
	require.NotEmpty(t, dir, "the engine keeps its facts")
	require.Equal(t, k.factsDir, filepath.Dir(dir))
	k.feed(300)
	require.NoError(t, a.Refresh(ctx))
	st, err := a.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments)
	eventsBefore := st.Events
	require.NoError(t, a.Close())
	assert.ElementsMatch(t, []string{"lock", "store", "current", "facts-g1.duckdb"}, keptFiles(t, dir),
		"only the served file stays (its WAL is checkpointed at close)")

	// Restarted with nothing new: no build, no increment, the same events.
	b, st := k.open(k.factsDir)
	assert.Equal(t, 0, st.FullBuilds, "served from the kept file")
	assert.Equal(t, 1, st.Increments, "the increment before the restart is counted")
	assert.Equal(t, eventsBefore, st.Events)
	assert.Equal(t, dir, kpi.KeptDir(b))
	requireMatchesFullBuild(t, "restarted", k.src, b, keptQueries, k.from, k.to)
	require.NoError(t, b.Close())

	// Restarted after the store grew: one increment.
	k.feed(-1)
	c, st := k.open(k.factsDir)
	assert.Equal(t, 0, st.FullBuilds)
	assert.Equal(t, 2, st.Increments)
	assert.Greater(t, st.Events, eventsBefore)
	requireMatchesFullBuild(t, "restarted after the store grew", k.src, c, keptQueries, k.from, k.to)
}

// The facts file is recorded in the increment's own transaction: a copy of the kept
// directory taken while the engine runs (what a killed process leaves, with DuckDB's WAL)
// serves a later engine, which takes only the segments the copy did not hold.
func TestKeptFactsAfterAKill(t *testing.T) {
	k := newKeptSetup(t, 4_000)
	ctx := context.Background()
	k.feed(3_000)
	a, _ := k.open(k.factsDir)
	k.feed(300)
	require.NoError(t, a.Refresh(ctx))
	copyDir := filepath.Join(t.TempDir(), "facts")
	copyTree(t, kpi.KeptDir(a), filepath.Join(copyDir, filepath.Base(kpi.KeptDir(a))))
	k.feed(-1)

	b, st := k.open(copyDir)
	assert.Equal(t, 0, st.FullBuilds, "the copy serves")
	assert.Equal(t, 2, st.Increments, "the increment recorded before the copy, and the segment after it")
	requireMatchesFullBuild(t, "from the copy", k.src, b, keptQueries, k.from, k.to)
}

// Kept facts that are not good are removed and built again: other definitions of the
// facts (another version of the plugin or DuckDB), a record naming another store, a
// damaged file. A store that lost segments is rebuilt in the background, the kept facts
// serving meanwhile.
func TestKeptFactsNotGoodAreRebuilt(t *testing.T) {
	k := newKeptSetup(t, 3_000)
	ctx := context.Background()
	k.feed(2_000)
	a, _ := k.open(k.factsDir)
	dir := kpi.KeptDir(a)
	require.NoError(t, a.Close())
	served := func() string {
		t.Helper()
		current, err := os.ReadFile(filepath.Join(dir, "current"))
		require.NoError(t, err)
		return filepath.Join(dir, strings.TrimSpace(string(current)))
	}
	edit := func(stmt string) {
		t.Helper()
		db, err := sql.Open("duckdb", served())
		require.NoError(t, err)
		_, err = db.Exec(stmt)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	rebuilt := func(label string) {
		t.Helper()
		e, st := k.open(k.factsDir)
		assert.Equal(t, 1, st.FullBuilds, label+": built in full")
		requireMatchesFullBuild(t, label, k.src, e, keptQueries, k.from, k.to)
		require.NoError(t, e.Close())
		assert.Len(t, keptFiles(t, dir), 4, label+": lock, store, current and the new file")
		assert.FileExists(t, served(), label)
	}

	edit(`UPDATE main.bt_kept SET state = json_merge_patch(state, '{"fingerprint": "0000"}')`)
	rebuilt("other definitions")
	edit(`UPDATE main.bt_kept SET state = json_merge_patch(state, '{"store": "/elsewhere"}')`)
	rebuilt("another store's record")
	edit(`DROP TABLE main.bt_kept`)
	rebuilt("no record")

	// A damaged file: built again, no error for the query.
	require.NoError(t, os.WriteFile(served(), []byte("not a database"), 0o600))
	e, st := k.open(k.factsDir)
	assert.Equal(t, 1, st.FullBuilds, "a damaged file: built in full")
	requireMatchesFullBuild(t, "after a damaged file", k.src, e, keptQueries, k.from, k.to)
	eventsKept := st.Events
	require.NoError(t, e.Close())

	// A segment removed while no engine ran: the kept facts serve at once (they hold
	// events the store no longer has) while a full build runs; then it serves.
	segs, err := store.ListSegments(k.src.Path)
	require.NoError(t, err)
	require.NoError(t, os.Remove(segs[0].Path))
	release := kpi.HoldFullBuilds(nil)
	e, err = kpi.New(kpi.Options{Source: k.src, Threads: 2, MemoryLimitMB: 256, CheckEvery: time.Hour, NoChangeNotices: true, FactsDir: k.factsDir})
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, kpi.Look(e))
	assert.True(t, kpi.FullBuildRunning(e), "a full build runs in the background")
	assert.Equal(t, eventsKept, kpi.SnapshotEvents(e), "the kept facts serve meanwhile")
	release()
	kpi.WaitFullBuild(e)
	require.NoError(t, e.Refresh(ctx))
	st, err = e.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, st.FullBuilds)
	assert.Less(t, st.Events, eventsKept)
	requireMatchesFullBuild(t, "after a segment was removed", k.src, e, keptQueries, k.from, k.to)
}

// One engine at a time keeps a store's facts. A second engine of the same process waits
// for the first to close (Grafana closes an instance whose settings changed 5 s after
// opening the new one) and then serves the kept facts; past the wait, it builds in a
// private directory of its own.
func TestKeptFactsOneEngineAtATime(t *testing.T) {
	k := newKeptSetup(t, 2_000)
	k.feed(-1)
	a, _ := k.open(k.factsDir)
	dir := kpi.KeptDir(a)

	defer kpi.SetKeptWait(200 * time.Millisecond)()
	b, st := k.open(k.factsDir)
	assert.Equal(t, 1, st.FullBuilds)
	assert.Empty(t, kpi.KeptDir(b), "past the wait: a private directory")
	assert.NotEqual(t, dir, kpi.WorkDir(b))
	requireSameAnswers(t, "private beside kept: ", keptQueries, k.from, k.to, a, b)
	require.NoError(t, b.Close())
	assert.NoDirExists(t, kpi.WorkDir(b), "the private directory is removed at close")

	kpi.SetKeptWait(time.Minute)
	go func() {
		time.Sleep(300 * time.Millisecond)
		a.Close()
	}()
	c, st := k.open(k.factsDir)
	assert.Equal(t, 0, st.FullBuilds, "took over the kept facts once the first engine closed")
	assert.Equal(t, dir, kpi.KeptDir(c))
}

// A facts directory others may write is refused (another user could place facts there):
// the engine builds privately and says why in the log.
func TestKeptFactsDirMustBePrivate(t *testing.T) {
	k := newKeptSetup(t, 1_000)
	k.feed(-1)
	shared := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(shared, 0o777))
	require.NoError(t, os.Chmod(shared, 0o777))
	e, st := k.open(shared)
	assert.Equal(t, 1, st.FullBuilds)
	assert.Empty(t, kpi.KeptDir(e))
	entries, err := os.ReadDir(shared)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing is written there")
}

// Kept directories of stores that are gone, or in which nothing changed for 7 days, are
// removed by the next engine; those of stores still there (a glob that matches included)
// and in use stay, and an engine never removes its own store's.
func TestKeptFactsOfGoneStoresRemoved(t *testing.T) {
	k := newKeptSetup(t, 1_000)
	k.feed(-1)
	kept := func(name, storePath string, lastUsed time.Time) string {
		t.Helper()
		dir := filepath.Join(k.factsDir, name)
		require.NoError(t, os.MkdirAll(dir, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "store"), []byte(storePath+"\n"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "facts-g1.duckdb"), []byte("x"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "lock"), nil, 0o600))
		for _, f := range []string{"store", "facts-g1.duckdb", "lock"} {
			require.NoError(t, os.Chtimes(filepath.Join(dir, f), lastUsed, lastUsed))
		}
		return dir
	}
	now := time.Now()
	gone := kept("0000000000000001", "/no/such/store", now)
	unused := kept("0000000000000002", k.src.Path, now.Add(-8*24*time.Hour))
	used := kept("0000000000000003", k.src.Path, now.Add(-6*24*time.Hour))
	glob := kept("0000000000000004", filepath.Join(k.src.Path, "segments", "*.parquet"), now)
	globGone := kept("0000000000000005", filepath.Join(k.src.Path, "nothing-*.parquet"), now)
	e, _ := k.open(k.factsDir)
	assert.NoDirExists(t, gone, "its store is gone")
	assert.NoDirExists(t, unused, "unused for 8 days")
	assert.NoDirExists(t, globGone, "its glob matches nothing")
	assert.DirExists(t, used, "used 6 days ago")
	assert.DirExists(t, glob, "its glob matches")
	dir := kpi.KeptDir(e)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "lock"), now.Add(-30*24*time.Hour), now.Add(-30*24*time.Hour)))
	require.NoError(t, e.Close())
	info, err := os.Stat(filepath.Join(dir, "lock"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), info.ModTime(), time.Minute, "Close marks the directory used")
	_, st := k.open(k.factsDir)
	assert.Equal(t, 0, st.FullBuilds, "a store kept for long is not taken for unused at its own restart")
}

// copyTree copies the regular files under src to the same places under dst.
func copyTree(tb testing.TB, src, dst string) {
	tb.Helper()
	require.NoError(tb, os.MkdirAll(dst, 0o700))
	entries, err := os.ReadDir(src)
	require.NoError(tb, err)
	for _, e := range entries {
		if e.IsDir() {
			copyTree(tb, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
			continue
		}
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		require.NoError(tb, err)
		out, err := os.Create(filepath.Join(dst, e.Name()))
		require.NoError(tb, err)
		_, err = io.Copy(out, in)
		require.NoError(tb, err)
		in.Close()
		// Synced: the kernel would otherwise write the copy back while the caller runs (17 GB
		// of facts at 100M events, for a minute or more), and BenchmarkVisible would time
		// the first checkpoint's fsync waiting behind it.
		require.NoError(tb, out.Sync())
		require.NoError(tb, out.Close())
	}
}

// Close waits for the queries still reading the snapshot before it closes DuckDB and lets
// go of the kept directory: the next engine must not open a file this one still uses.
func TestKeptFactsCloseWaitsForQueries(t *testing.T) {
	k := newKeptSetup(t, 1_000)
	k.feed(-1)
	a, _ := k.open(k.factsDir)
	slow := kpi.Request{Query: mustQuery(t, `{"queryType":"sql","rawSql":"SELECT count(*) AS n FROM range(2000000000) t(x) WHERE x % 7 = 3"}`),
		From: k.from, To: k.to, Interval: time.Hour, MaxDataPoints: 10}
	type result struct {
		n   any
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		frames, err := a.Run(context.Background(), slow)
		r := result{err: err, at: time.Now()}
		if err == nil && len(frames) == 1 && frames[0].Rows() == 1 {
			r.n, _ = frames[0].Fields[0].ConcreteAt(0)
		}
		done <- r
	}()
	time.Sleep(300 * time.Millisecond) // the query is running
	require.NoError(t, a.Close())
	closed := time.Now()
	r := <-done
	require.NoError(t, r.err)
	assert.EqualValues(t, 285714286, r.n, "the query ran to its end")
	assert.False(t, r.at.After(closed), "Close returned only after the query ended")

	b, st := k.open(k.factsDir)
	assert.Equal(t, 0, st.FullBuilds)
	requireMatchesFullBuild(t, "after a close during a query", k.src, b, keptQueries, k.from, k.to)
}

// An engine closed before its first look takes nothing: the kept facts stay, unlocked,
// for the next engine.
func TestKeptFactsCloseBeforeFirstLook(t *testing.T) {
	k := newKeptSetup(t, 1_000)
	k.feed(-1)
	a, _ := k.open(k.factsDir)
	dir := kpi.KeptDir(a)
	require.NoError(t, a.Close())

	b, err := kpi.New(kpi.Options{Source: k.src, Threads: 2, CheckEvery: time.Hour, NoChangeNotices: true, FactsDir: k.factsDir})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.Error(t, kpi.Look(b), "a closed engine does not look")
	assert.Empty(t, kpi.KeptDir(b))

	defer kpi.SetKeptWait(100 * time.Millisecond)()
	c, st := k.open(k.factsDir)
	assert.Equal(t, 0, st.FullBuilds, "the kept facts are still there")
	assert.Equal(t, dir, kpi.KeptDir(c))
}

// A full build leaves in the facts file only what queries and increments read: its
// intermediate tables and the unsorted copies of the fact tables go to a scratch database
// deleted after it. Written into the facts file, they left a third of it free blocks and
// unread tables (DuckDB does not give a file's free blocks back).
func TestKeptFactsFileHoldsOnlyFacts(t *testing.T) {
	t.Cleanup(kpi.SetSortSliceRows(2_000)) // the fact tables sorted in slices, through unsorted copies
	k := newKeptSetup(t, 30_000)
	k.feed(-1)
	e, st := k.open(k.factsDir)
	require.Equal(t, 1, st.FullBuilds)
	dir := kpi.KeptDir(e)
	require.NoError(t, e.Close())
	assert.ElementsMatch(t, []string{"lock", "store", "current", "facts-g1.duckdb"}, keptFiles(t, dir),
		"the scratch database went with the build's spill directory")

	db, err := store.OpenDuckDB(filepath.Join(dir, "facts-g1.duckdb") + "?access_mode=read_only")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT table_name FROM duckdb_tables() WHERE database_name = 'facts-g1' AND schema_name = 'g1' AND NOT starts_with(table_name, 'r_') ORDER BY 1`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"ev", "f_conv", "f_evt", "f_msg", "f_quality", "f_turn", "recv", "span_conv", "span_msg"}, tables)
	var total, free int64
	require.NoError(t, db.QueryRow(`SELECT total_blocks, free_blocks FROM pragma_database_size() WHERE database_name = 'facts-g1'`).Scan(&total, &free))
	t.Logf("facts file: %d blocks, %d free", total, free)
	assert.Less(t, float64(free), 0.05*float64(total), "free blocks left in the facts file")
}

// An increment's write-ahead log is checkpointed into the facts file after the increment
// is served, once the log holds checkpointWALBytes: not in its COMMIT, where DuckDB's own
// threshold would put it (that threshold stays above, as the backstop).
func TestCheckpointAfterServedIncrement(t *testing.T) {
	k, e, walBytes := walSetup(t)
	ctx := context.Background()
	// Below the size: the log stays (DuckDB's threshold is far above it).
	k.feed(200)
	require.NoError(t, e.Refresh(ctx))
	grown := walBytes()
	require.Positive(t, grown, "the increment is in the write-ahead log")
	before, err := e.Stats(ctx)
	require.NoError(t, err)

	// At the size: the next served increment is followed by a checkpoint.
	t.Cleanup(kpi.SetCheckpointWALBytes(grown))
	k.feed(200)
	require.NoError(t, e.Refresh(ctx))
	st, err := e.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.Increments)
	require.Greater(t, st.Events, before.Events, "the increment is served")
	require.Zero(t, walBytes(), "the log was checkpointed into the facts file")
}

// A checkpoint DuckDB refuses because a query is reading the snapshot is tried again at
// the next look, even one that finds nothing new in the store.
func TestCheckpointRefusedDuringAQueryIsRetried(t *testing.T) {
	k, e, walBytes := walSetup(t)
	ctx := context.Background()
	t.Cleanup(kpi.SetCheckpointWALBytes(1))
	endRead, err := kpi.HoldSnapshotRead(e)
	require.NoError(t, err)
	k.feed(200)
	require.NoError(t, kpi.Look(e))
	st, err := e.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments, "the increment is served while the query reads")
	require.Positive(t, walBytes(), "no checkpoint while a query reads the snapshot")

	endRead()
	require.NoError(t, kpi.Look(e)) // nothing new in the store
	require.Zero(t, walBytes(), "the next look checkpointed")
}

// A checkpoint DuckDB refuses while queries read the snapshot is put off only a few looks
// in a row: then the look waits for the queries, so queries back to back cannot keep
// it off for good (DuckDB's own threshold would then checkpoint in a COMMIT, with no
// reopen after it). The increment is served meanwhile.
func TestCheckpointWaitsForQueriesAfterPutOffs(t *testing.T) {
	k, e, walBytes := walSetup(t)
	t.Cleanup(kpi.SetCheckpointWALBytes(1))
	hold, err := kpi.HoldSnapshotRead(e)
	require.NoError(t, err)
	var once sync.Once
	endRead := func() { once.Do(hold) }
	t.Cleanup(endRead) // before the engine closes, should the test fail midway
	for i := 1; i <= kpi.MaxCheckpointPutOffs; i++ {
		k.feed(100)
		require.NoError(t, kpi.Look(e))
		require.Positive(t, walBytes(), "put off %d times", i)
	}
	before := kpi.SnapshotEvents(e)
	k.feed(100)
	looked := make(chan error, 1)
	go func() { looked <- kpi.Look(e) }()
	// The look serves its increment, then waits for the query (new queries, Stats among
	// them, wait behind it: the snapshot's events are read without one).
	require.Eventually(t, func() bool { return kpi.SnapshotEvents(e) > before },
		30*time.Second, 10*time.Millisecond, "the increment is served before the checkpoint")
	select {
	case err := <-looked:
		t.Fatalf("the look ended (%v) while the query still read the snapshot", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.Positive(t, walBytes(), "no checkpoint while the query reads")
	endRead()
	require.NoError(t, <-looked)
	require.Zero(t, walBytes(), "checkpointed once the query ended")
	requireMatchesFullBuild(t, "after the waited-for checkpoint", k.src, e, keptQueries, k.from, k.to)
}

// After a checkpoint the serving instance is closed and its file opened again (reopen),
// which drops what DuckDB kept of the segments it had read. The same snapshot serves from
// the new instance, whose increment connection has its session settings, and takes the
// next increments.
func TestReopenAfterCheckpoint(t *testing.T) {
	k, e, walBytes := walSetupOf(t, 4_000) // the generator makes about as many events as asked
	ctx := context.Background()
	t.Cleanup(kpi.SetCheckpointWALBytes(1))
	first := e.DB()
	k.feed(300)
	require.NoError(t, e.Refresh(ctx))
	require.Zero(t, walBytes(), "checkpointed")
	second := e.DB()
	require.NotSame(t, first, second, "a new instance serves")
	require.ErrorContains(t, first.PingContext(ctx), "database is closed")
	st, err := e.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments)
	requireMatchesFullBuild(t, "reopened", k.src, e, keptQueries, k.from, k.to)
	v, err := kpi.IncrementSetting(e, "dynamic_or_filter_threshold")
	require.NoError(t, err)
	require.Equal(t, "16384", v, "the new instance's increment connection")

	// (Its log now checkpoints in DuckDB's COMMIT: the new instance's threshold, twice
	// SetCheckpointWALBytes, is 2 bytes.)
	k.feed(300)
	require.NoError(t, e.Refresh(ctx))
	st2, err := e.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st2.Increments)
	require.Greater(t, st2.Events, st.Events)
	requireMatchesFullBuild(t, "an increment on the new instance", k.src, e, keptQueries, k.from, k.to)
}

// Queries running while increments are checkpointed and their instance reopened wait for
// the new instance and answer from it: none fails, and the last ones see every event.
func TestQueriesDuringReopen(t *testing.T) {
	k := newKeptSetup(t, 4_000) // the generator makes about as many events as asked
	k.feed(2_000)
	e, _ := k.open(k.factsDir)
	ctx := context.Background()
	t.Cleanup(kpi.SetCheckpointWALBytes(1))
	req := kpi.Request{Query: mustQuery(t, `{"queryType":"table","metrics":["received"],"limit":10}`), From: k.from, To: k.to, Interval: time.Hour, MaxDataPoints: 100}
	stop := make(chan struct{})
	errs := make(chan error, 4)
	answers := make(chan int, 4)
	for i := 0; i < 4; i++ {
		go func() {
			n := 0
			for {
				select {
				case <-stop:
					errs <- nil
					answers <- n
					return
				default:
				}
				r := req
				r.To = r.To.Add(time.Duration(n) * time.Second) // past the result cache: DuckDB answers
				if _, err := e.Run(ctx, r); err != nil {
					errs <- err
					answers <- n
					return
				}
				n++
			}
		}()
	}
	instances := map[*sql.DB]bool{e.DB(): true}
	for i := 0; i < 5; i++ {
		k.feed(200)
		require.NoError(t, e.Refresh(ctx))
		instances[e.DB()] = true
	}
	close(stop)
	total := 0
	for i := 0; i < 4; i++ {
		require.NoError(t, <-errs)
		total += <-answers
	}
	// The first increment is checkpointed after it is served (the first instance's own
	// threshold is 64 MB), so at least one reopen ran beside the queries; later ones may
	// checkpoint in DuckDB's COMMIT instead (a new instance's threshold is 2 bytes here).
	assert.GreaterOrEqual(t, len(instances), 2, "reopened while the queries ran")
	assert.Positive(t, total)
	requireMatchesFullBuild(t, "after the reopens", k.src, e, keptQueries, k.from, k.to)
}

// walSetup is an engine keeping the facts of 2 000 events (of 3 000 to feed), and the
// size of its facts file's write-ahead log.
func walSetup(t *testing.T) (*keptSetup, *kpi.Engine, func() int64) {
	return walSetupOf(t, 3_000)
}

// walSetupOf is walSetup with n events to feed.
func walSetupOf(t *testing.T, n int) (*keptSetup, *kpi.Engine, func() int64) {
	k := newKeptSetup(t, n)
	k.feed(2_000)
	e, _ := k.open(k.factsDir)
	wal := filepath.Join(kpi.KeptDir(e), "facts-g1.duckdb.wal")
	return k, e, func() int64 { return fileSize(t, wal) }
}

// fileSize is the size of the file at path, 0 if there is none.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	return fi.Size()
}
