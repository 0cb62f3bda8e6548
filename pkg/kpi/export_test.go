package kpi

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"time"
)

// RenderedSQL is one statement the builder would run, with its bind arguments.
type RenderedSQL struct {
	SQL  string
	Args []any
}

// RenderForTest renders, without running anything, the SQL where a query's input meets
// SQL text: the aggregates of a timeseries or table query (bucketed as the engine would
// choose) over the fact tables of schema g0, and the filter conditions of any query on
// every fact table (what funnel, ab, retention, values and quality_rating add to theirs).
// Only the package's tests see it (export_test.go).
func RenderForTest(q *Query, from, to time.Time, interval time.Duration, maxPoints int64) ([]RenderedSQL, error) {
	var out []RenderedSQL
	for _, fact := range []Fact{FactMessage, FactEvent, FactConversation, FactTurn, FactQuality} {
		var args []any
		conds := filterSQL(q.Filters, fact, "", q.Location(), &args)
		sql := "SELECT 1 FROM g0." + string(fact)
		if len(conds) > 0 {
			sql += " WHERE " + joinAnd(conds)
		}
		out = append(out, RenderedSQL{sql, args})
	}
	if q.QueryType != TypeTimeSeries && q.QueryType != TypeTable {
		return out, nil
	}
	metrics := make([]*Metric, len(q.Metrics))
	for i, id := range q.Metrics {
		metrics[i], _ = LookupMetric(id)
	}
	if metrics[0].Fact == FactQuality {
		return out, nil // runQuality: the filter conditions above, no aggregate
	}
	var bucket *Bucket
	if q.QueryType == TypeTimeSeries {
		b, err := ChooseBucket(q, from, to, interval, maxPoints)
		if err != nil {
			return out, err
		}
		bucket = &b
	}
	for _, src := range planSources(metrics, q) {
		spec := selectSpec{schema: "g0", fact: src.fact, bucket: bucket, groupBy: q.GroupBy,
			filters: q.Filters, from: from, to: to, loc: q.Location(), agent: src.agent}
		for _, mi := range src.metrics {
			spec.aggs = append(spec.aggs, metricAggs(metrics[mi])...)
		}
		sql, args := spec.sql()
		out = append(out, RenderedSQL{sql, args})
	}
	return out, nil
}

func joinAnd(conds []string) string {
	s := conds[0]
	for _, c := range conds[1:] {
		s += " AND " + c
	}
	return s
}

// SetMaxIncrementalShare changes how far increments may grow a snapshot before a full
// build, and returns a function restoring it.
func SetMaxIncrementalShare(v float64) func() {
	old := maxIncrementalShare
	maxIncrementalShare = v
	return func() { maxIncrementalShare = old }
}

// SetReadRunRows sets the unit of an increment's read runs (readRuns), and returns a
// function restoring it.
func SetReadRunRows(n int64) func() {
	old := readRunRows
	readRunRows = n
	return func() { readRunRows = old }
}

// SetSortSliceRows sets how many rows one sorted slice of a fact table holds
// (buildstep.go), and returns a function restoring it.
func SetSortSliceRows(v int) func() {
	old := sortSliceRows
	sortSliceRows = v
	return func() { sortSliceRows = old }
}

// SetPartitions forces the number of hash partitions of the partitioned build steps
// (buildstep.go), and returns a function restoring it.
func SetPartitions(n int) func() {
	old := forcedPartitions
	forcedPartitions = n
	return func() { forcedPartitions = old }
}

// SnapshotEvents is the current snapshot's event count, read without looking at the store
// (Stats looks at it first).
func SnapshotEvents(e *Engine) int64 {
	if g := e.cur.Load(); g != nil {
		return g.stats.Events
	}
	return -1
}

// HoldFullBuilds makes every full build in the background (an engine's first is not held)
// wait before it reads the store (after it listed it), until release is called or its
// engine closes, and then fail with err if it is not nil. It returns release.
func HoldFullBuilds(err error) (release func()) {
	held := make(chan struct{})
	hook := func(ctx context.Context) error {
		select {
		case <-held:
		case <-ctx.Done():
		}
		return err
	}
	fullBuildHook.Store(&hook)
	var once sync.Once
	return func() {
		once.Do(func() {
			fullBuildHook.Store(nil)
			close(held)
		})
	}
}

// Look looks at the store once, as the engine does every CheckEvery: it applies what it
// can as an increment, or starts a full build without waiting for it.
func Look(e *Engine) error { return e.build(context.Background(), true) }

// FullBuildRunning says whether a full build runs in the background.
func FullBuildRunning(e *Engine) bool { return e.pending.Load() != nil }

// WaitFullBuild waits for the full build running in the background, if any, to be done.
func WaitFullBuild(e *Engine) {
	if p := e.pending.Load(); p != nil {
		<-p.done
	}
}

// OnBuildProcess calls f with the pid of every full build's child process as soon as it
// has started (before anything waits for it), until the returned function is called.
func OnBuildProcess(f func(pid int)) (stop func()) {
	buildProcessHook.Store(&f)
	return func() { buildProcessHook.Store(nil) }
}

// BuildInProcess makes e run its full builds in its own process (as the CLI does, and
// every executable that did not call BuildProcessMain). Call it before e's first build.
func BuildInProcess(e *Engine) { e.childBuilds = false }

// ReleaseFreedMemory hands the C heap's freed memory back to the system, as the engine
// does after closing a DuckDB instance.
func ReleaseFreedMemory() { releaseFreedMemory() }

// MallocStats reports the C heap's bytes in use and freed but kept (zero off Linux).
func MallocStats() (inUse, free int64) { return mallocStats() }

// DuckDBAllocatorStats reads DuckDB's jemalloc (zero where DuckDB has none).
func DuckDBAllocatorStats() (allocated, active, resident, metadata int64) {
	return duckdbAllocatorStats()
}

// BuildsInChild says whether e runs its full builds in a child process.
func BuildsInChild(e *Engine) bool { return e.childBuilds }

// WorkDir is e's private directory of DuckDB files and spill.
func WorkDir(e *Engine) string { return e.workDir }

// SetBuildProcessExe changes what a build's child process runs, and returns a function
// restoring it.
func SetBuildProcessExe(path string) func() {
	old := buildProcessExe
	buildProcessExe = path
	return func() { buildProcessExe = old }
}

// FailIncrements runs f before each statement of every increment, whose error fails the
// increment there (it is rolled back), until the returned function is called.
func FailIncrements(f func(stmt string) error) (stop func()) {
	incrementFault.Store(&f)
	return func() { incrementFault.Store(nil) }
}

// WatchIncrements tells f each statement of every increment that ran and the rows it
// changed, until the returned function is called.
func WatchIncrements(f func(stmt string, rows int64)) (stop func()) {
	incrementSteps.Store(&f)
	return func() { incrementSteps.Store(nil) }
}

// KeptDir is the directory the engine keeps its facts in ("" when it keeps none).
func KeptDir(e *Engine) string { return e.keepDir }

// SetKeptWait sets how long an engine waits for another engine of the process to let go
// of its store's kept facts, and returns the restore.
func SetKeptWait(d time.Duration) func() {
	old := keptWait
	keptWait = d
	return func() { keptWait = old }
}

// SetDuckDBDecay sets DuckDB's jemalloc decay (ms) for every arena; DuckDBDecay reads it.
func SetDuckDBDecay(ms int) bool { return setDuckDBDecay(ms) }
func DuckDBDecay() int           { return duckdbDecay() }
func DuckDBMuzzyDecay() int      { return duckdbMuzzyDecay() }

// ServingAllocatorDecay applies the serving process's decay now, as New does once, so a
// decay set after it stays.
func ServingAllocatorDecay() { servingAllocatorDecay() }

// IncrementSetting reads a DuckDB setting on the connection increments of the current
// snapshot run on.
func IncrementSetting(e *Engine, name string) (string, error) {
	g := e.cur.Load()
	if g == nil {
		return "", nil
	}
	conn, release, err := e.incrementConn(context.Background(), g.db)
	if err != nil {
		return "", err
	}
	defer release()
	var v string
	err = conn.QueryRowContext(context.Background(), "SELECT current_setting('"+name+"')::VARCHAR").Scan(&v)
	return v, err
}

// UncoveredKeyEvents counts the current snapshot's events that name a message or a
// conversation at a time no span of that key covers (spanStatements): an increment would
// not find them.
func UncoveredKeyEvents(e *Engine) (int64, error) {
	g := e.cur.Load()
	if g == nil {
		return 0, nil
	}
	var n int64
	err := g.db.QueryRowContext(context.Background(), strings.NewReplacer("{g}", g.schema, "{nul}", nullHash).Replace(`
		SELECT count(*) FROM (
			SELECT mh AS h, ts, 'm' AS k FROM {g}.ev WHERE mh <> {nul}
			UNION ALL SELECT rh, ts, 'm' FROM {g}.ev WHERE rh <> {nul}
			UNION ALL SELECT vh, ts, 'v' FROM {g}.ev WHERE vh <> {nul}) AS x
		WHERE NOT EXISTS (
			SELECT 1 FROM (SELECT *, 'm' AS k FROM {g}.span_msg UNION ALL SELECT *, 'v' FROM {g}.span_conv) AS s
			WHERE s.k = x.k AND s.h = x.h AND x.ts BETWEEN s.lo AND s.hi)`)).Scan(&n)
	return n, err
}

// SpanRuns is spanRuns (incremental.go).
func SpanRuns(spans [][2]time.Time) [][2]time.Time { return spanRuns(spans) }

// MaxSpanRuns is maxSpanRuns.
const MaxSpanRuns = maxSpanRuns

// MemoryByTag is memoryByTag (incremental.go).
func MemoryByTag(db *sql.DB) string { return memoryByTag(db) }

// SetCheckpointWALBytes sets the write-ahead log size at which a served increment is
// followed by a checkpoint (checkpointIfDue), and returns a function restoring it.
func SetCheckpointWALBytes(n int64) func() {
	old := checkpointWALBytes
	checkpointWALBytes = n
	return func() { checkpointWALBytes = old }
}

// HoldSnapshotRead starts a transaction that reads the current snapshot's facts, holding
// the snapshot as a query does (acquire), and keeps both until the returned function
// ends them.
func HoldSnapshotRead(e *Engine) (func(), error) {
	g := e.cur.Load()
	g.inUse.RLock()
	ctx := context.Background()
	conn, err := g.db.Conn(ctx)
	if err != nil {
		g.inUse.RUnlock()
		return nil, err
	}
	var n int64
	if _, err = conn.ExecContext(ctx, "BEGIN TRANSACTION"); err == nil {
		err = conn.QueryRowContext(ctx, "SELECT count(*) FROM "+g.schema+".ev").Scan(&n)
	}
	if err != nil {
		conn.Close()
		g.inUse.RUnlock()
		return nil, err
	}
	return func() {
		_, _ = conn.ExecContext(ctx, "COMMIT")
		conn.Close()
		g.inUse.RUnlock()
	}, nil
}

// MaxCheckpointPutOffs is maxCheckpointPutOffs.
const MaxCheckpointPutOffs = maxCheckpointPutOffs
