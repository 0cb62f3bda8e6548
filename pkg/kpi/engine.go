package kpi

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// Options configure an Engine.
type Options struct {
	// Source is the store to read; nil means the embedded demo store.
	Source *store.Source
	// Demo configures the embedded demo store (End is ignored: it ends now).
	Demo demo.Config
	// MemoryLimitMB bounds DuckDB while it answers queries and applies increments (default
	// 128); BuildMemoryLimitMB while it builds the facts in full (default 1024, never less
	// than MemoryLimitMB). A full build runs in a DuckDB instance of its own, closed when it
	// ends, so its memory is given back and the process settles at the smaller limit.
	MemoryLimitMB      int
	BuildMemoryLimitMB int
	// BuildMemorySetting names what sets BuildMemoryLimitMB (a CLI flag), for the error
	// of a build that ran out of it (default: the data source's setting).
	BuildMemorySetting string
	// Threads bounds DuckDB's worker threads (default: the number of CPUs).
	Threads int
	// MaxRows caps the rows of a raw SQL result (default 100000).
	MaxRows int
	// CheckEvery is how often the engine looks at the store for new segments, in the
	// background once the first snapshot exists and on queries (default 250 ms: a look
	// lists one directory). A store directory is also looked at as soon as a segment
	// lands in it (watchLanded), so new events are visible after the time to apply them;
	// where the file system gives no change notices, up to CheckEvery later.
	CheckEvery time.Duration
	// NoChangeNotices looks at a store directory only every CheckEvery, not also as soon
	// as a segment lands in it (watchLanded): for tests that step the engine themselves.
	NoChangeNotices bool
	// DemoRefresh is how often the embedded demo store is regenerated up to now (default 10 min).
	DemoRefresh time.Duration
	// NoRollups answers every query from the fact tables and skips building the hourly
	// rollups (rollup.go): for benchmarks and for checking the rollups against the facts.
	NoRollups bool
	// NoIncremental rebuilds every fact when segments are added, instead of updating the
	// snapshot in place (incremental.go): for benchmarks and for checking the increments.
	NoIncremental bool
	// FactsDir, when set, keeps the facts of Source across restarts, in a directory of
	// their own under it (kept.go; DefaultFactsDir is the plugin's default): the next
	// engine of the same store serves them at once and takes what the store gained
	// meanwhile, instead of building them in full. Empty: a private temporary directory,
	// removed by Close.
	FactsDir string
}

// Stats describe the events behind the current snapshot.
type Stats struct {
	Events  int64
	MinTS   time.Time
	MaxTS   time.Time
	Files   int
	Version string
	BuiltAt time.Time
	// Increments counts the in-place updates since the last full build (incremental.go).
	Increments int
	// FullBuilds counts the full builds served since the engine opened.
	FullBuilds int
	// BuildPeakRSSMB is the peak resident memory of the child process that built the
	// facts in full (buildprocess.go); 0 when the build ran in this process.
	BuildPeakRSSMB int64
	// RebuildingSince is when the full build running in the background started (zero when
	// none runs): the snapshot above serves until it is done, taking new segments unless
	// an increment failed.
	RebuildingSince time.Time
}

// Engine answers queries from derived fact tables kept in DuckDB files of its own. It is
// safe for concurrent use.
type Engine struct {
	opts Options

	rebuild    sync.Mutex // one rebuild at a time
	cur        atomic.Pointer[generation]
	lastCheck  atomic.Int64 // unix nanos of the last look at the store
	nextGen    int
	fullBuilds int // served so far (Stats)
	// After a full build in the background failed, the next one waits until retryAt
	// (unix nanos; 0: no wait), doubling with each failure in a row (buildFailures).
	retryAt       atomic.Int64
	buildFailures int
	retryFollow   bool // meanwhile the snapshot takes new segments (not after a failed increment)
	// Increments in a row that ran out of memoryLimitMB (tryIncrement): retried at the next
	// looks, up to maxIncrementMemoryRetries, before a full build decides.
	incrementMemoryFailures int
	// roomyRetry: the next increment of the current snapshot runs on an instance with twice
	// memoryLimitMB, the last one having run out of it (tryIncrement).
	roomyRetry bool
	// checkpointPutOffs: looks in a row whose due checkpoint DuckDB refused
	// (checkpointIfDue; under the rebuild lock).
	checkpointPutOffs int
	closed            atomic.Bool
	// Why the store's changes are not served: the last look at the store failed (lookErr,
	// cleared by the next good look), or the last full build in the background did
	// (buildErr, cleared by a good build). The health check shows them.
	lookErr  atomic.Pointer[error]
	buildErr atomic.Pointer[error]
	cache    *resultCache // answers keyed by snapshot version (cache.go)
	// workDir holds the engine's DuckDB files: a private temporary directory, or the
	// store's kept directory (keepDir, flock'ed until keepRelease: kept.go). Set at the
	// first look at the store, before any file is opened.
	workDir     string
	keepDir     string
	keepRelease func()
	openMu      sync.Mutex
	open        map[*sql.DB]openInstance // every DuckDB instance open (Close closes them)

	life       context.Context // builds run under it; Close cancels it
	lifeCancel context.CancelFunc
	buildMu    sync.Mutex
	building   *buildRun // the look at the store in progress, if any
	// pending is the full build running in the background, if any: the current snapshot
	// serves (and takes increments, when it can) until it is done.
	pending atomic.Pointer[fullBuild]
	// childBuilds: full builds run in a child process (buildprocess.go).
	childBuilds bool
}

// generation is one snapshot of the store's facts, in its own schema of its own DuckDB
// file. Increments update the schema in place and make a new generation sharing it (and
// its lock).
type generation struct {
	schema  string
	db      *sql.DB    // the DuckDB instance serving it (its file is path)
	stmts   *stmtCache // prepared statements on db
	path    string
	version string
	stats   Stats
	inUse   *sync.RWMutex // queries hold it for reading; dropping the schema takes it for writing
	demoEnd time.Time
	files   []store.Segment // the segments it holds
	// nextFile is the arrival rank of the next appended segment (events' arr): one past
	// the last, never reused, as compaction merges segments (listingChange) without
	// renumbering the stored events.
	nextFile int
	// base and merged: the segments as written whose events it holds, in order, and the
	// inputs of each merged segment among files (expandListing).
	base   []string
	merged map[string][]string
	full   int64 // events at its full build
	added  int64 // events added by increments since
	// stale: it also holds events retention has since removed from the store (taken
	// while a full build ran, listingChange); only a full build can make it current.
	stale bool
}

// New opens an engine. The first query (or Refresh) builds the facts.
func New(opts Options) (*Engine, error) {
	servingAllocatorDecay()
	if opts.MemoryLimitMB <= 0 {
		opts.MemoryLimitMB = DefaultMemoryLimitMB
	}
	if opts.BuildMemoryLimitMB <= 0 {
		opts.BuildMemoryLimitMB = DefaultBuildMemoryLimitMB
	}
	opts.BuildMemoryLimitMB = max(opts.BuildMemoryLimitMB, opts.MemoryLimitMB)
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 100_000
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = 250 * time.Millisecond
	}
	if opts.DemoRefresh <= 0 {
		opts.DemoRefresh = 10 * time.Minute
	}
	if opts.Source != nil {
		abs, err := filepath.Abs(opts.Source.Path)
		if err != nil {
			return nil, err
		}
		src := *opts.Source
		src.Path = abs
		opts.Source = &src
	}
	if opts.FactsDir != "" {
		dir, err := filepath.Abs(opts.FactsDir)
		if err != nil {
			return nil, err
		}
		opts.FactsDir = dir
	}
	// The facts live in DuckDB files (in a directory set up at the first look: kept.go),
	// so the buffer manager can evict them under memory_limit instead of holding every
	// fact of the store in RAM (docs/BENCHMARKS.md).
	e := &Engine{opts: opts, cache: newResultCache(cacheEntries), open: map[*sql.DB]openInstance{},
		childBuilds: buildProcessReady.Load()}
	if !e.keepsFacts() {
		if err := e.privateWorkDir(); err != nil {
			return nil, err
		}
	}
	e.life, e.lifeCancel = context.WithCancel(context.Background())
	go e.watch()
	return e, nil
}

// watch looks at the store every CheckEvery (at least every 100 ms) once the first
// snapshot exists, and at once when a store directory's segments folder changes (landed),
// so new segments are applied in the background: a query then finds the events
// acknowledged a few seconds earlier, even if no query came in between (an alert rule
// evaluated every minute would otherwise see them one evaluation late). The first build
// waits for the first query.
func (e *Engine) watch() {
	if e.opts.Source == nil {
		return // the embedded demo store is regenerated on queries (DemoRefresh)
	}
	var landed <-chan struct{}
	stop := func() {}
	if !e.opts.NoChangeNotices {
		landed, stop = watchLanded(e.opts.Source)
	}
	defer stop()
	t := time.NewTicker(max(e.opts.CheckEvery, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.life.Done():
			return
		case <-landed:
			if e.cur.Load() != nil {
				_ = e.lookAfterNow(e.life)
			}
		case <-t.C:
			// Half a period: a look a query made since the last tick makes this one
			// redundant, but the watcher's own last look does not (it started just after
			// the previous tick, so a full period would skip every other tick).
			if e.cur.Load() != nil && time.Now().UnixNano()-e.lastCheck.Load() >= int64(e.opts.CheckEvery)/2 {
				_ = e.build(e.life, false) // errors keep the last snapshot; the health check shows them
			}
		}
	}
}

// lookAfterNow looks at the store in a look that starts after this call: one already
// running may have listed the store before the change the caller reacts to, so it is
// waited for first.
func (e *Engine) lookAfterNow(ctx context.Context) error {
	e.buildMu.Lock()
	running := e.building
	e.buildMu.Unlock()
	if running != nil {
		select {
		case <-running.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return e.build(ctx, true) // joins a look started since: it lists the store after the change
}

// removeStaleWorkDirs deletes the work directories of engines whose process is gone (a
// plugin killed by Grafana never runs Close).
func removeStaleWorkDirs() {
	if runtime.GOOS == "windows" {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "blueticks-engine-*-*"))
	for _, d := range dirs {
		parts := strings.SplitN(filepath.Base(d), "-", 4)
		if len(parts) < 4 {
			continue
		}
		pid, err := strconv.Atoi(parts[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil {
			if err := p.Signal(syscall.Signal(0)); err == nil || errors.Is(err, syscall.EPERM) {
				continue // still running
			}
		}
		_ = os.RemoveAll(d)
	}
}

// Default DuckDB memory limits (Options). 128 MB serves a 100M-event store and takes its
// new events about as fast as 256 MB did, with the process at ~340 MB RSS on average
// instead of ~450 MB (docs/BENCHMARKS.md, seventeenth session).
const (
	DefaultMemoryLimitMB      = 128
	DefaultBuildMemoryLimitMB = 1024
)

// openDB opens the DuckDB file path as an instance of its own with memMB of memory, the
// other resource limits and the sandbox (lockDown; extra are more files it may read), and
// tracks it for Close.
func (e *Engine) openDB(path string, memMB int, spill string, session []string, extra ...string) (*sql.DB, error) {
	// The limits are also given when the instance starts: opening a file with a
	// write-ahead log (left by a process that was killed: kept.go) replays it at once,
	// and DuckDB then refuses a temp_directory set afterwards.
	cfg := url.Values{"temp_directory": {filepath.Join(e.workDir, spill)}, "memory_limit": {fmt.Sprintf("%dMB", memMB)},
		"threads": {strconv.Itoa(e.opts.Threads)}}
	if session != nil {
		// A serving instance checkpoints after it serves an increment (checkpointIfDue);
		// DuckDB's own checkpoint in a COMMIT is only the backstop.
		cfg.Set("checkpoint_threshold", fmt.Sprintf("%dMB", 2*checkpointWALBytes>>20))
	}
	db, err := store.OpenDuckDB(path + "?" + cfg.Encode())
	if err != nil {
		return nil, err
	}
	inst := openInstance{spill: spill, memMB: memMB}
	if session != nil {
		if inst.inc, err = newIncrementConn(db, session); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := e.lockDown(db, memMB, filepath.Join(e.workDir, spill), extra); err != nil {
		inst.close()
		db.Close()
		return nil, err
	}
	// Keep the connections of concurrent queries open between requests (database/sql
	// keeps 2 idle by default, and a DuckDB connection is not free to set up).
	db.SetMaxIdleConns(e.opts.Threads + 8)
	e.openMu.Lock()
	e.open[db] = inst
	e.openMu.Unlock()
	return db, nil
}

// openInstance is what openDB tracks of an instance: its spill directory and, for one
// that serves a generation, the connection increments run on.
type openInstance struct {
	spill string
	memMB int
	inc   *incrementConn
}

// close closes the instance's increment connection (before the instance: database/sql
// keeps a connection in use open).
func (i openInstance) close() {
	if i.inc != nil {
		i.inc.mu.Lock()
		if i.inc.conn != nil {
			_ = i.inc.conn.Close()
			i.inc.conn = nil
		}
		i.inc.mu.Unlock()
	}
}

// incrementConn is the one connection of a serving instance that increments run on, one
// at a time, with incrementSettings as session settings: queries on the instance's other
// connections keep DuckDB's defaults. DuckDB locks every setting once lockDown has run,
// so the connection is opened and set before that.
type incrementConn struct {
	mu   sync.Mutex
	conn *sql.Conn // nil once closed: increments then take any connection
}

func newIncrementConn(db *sql.DB, session []string) (*incrementConn, error) {
	conn, err := db.Conn(context.Background())
	if err != nil {
		return nil, err
	}
	for _, s := range session {
		if _, err := conn.ExecContext(context.Background(), s); err != nil {
			conn.Close()
			return nil, fmt.Errorf("configure duckdb (%s): %w", s, err)
		}
	}
	return &incrementConn{conn: conn}, nil
}

// incrementConn returns the connection for an increment on db and what to call when it
// is done: db's increment connection, or one of its pool's once that is closed. (Closing
// it hands it back to the pool, settings and all; only closing the instance does that.)
func (e *Engine) incrementConn(ctx context.Context, db *sql.DB) (*sql.Conn, func(), error) {
	e.openMu.Lock()
	inc := e.open[db].inc
	e.openMu.Unlock()
	if inc != nil {
		inc.mu.Lock()
		if inc.conn != nil {
			return inc.conn, inc.mu.Unlock, nil
		}
		inc.mu.Unlock()
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	return conn, func() { conn.Close() }, nil
}

// openServing opens generation g's file to serve queries and take increments, with
// memMB of memory (memoryLimitMB, or twice that for an increment that did not fit it:
// tryIncrement), and incrementSettings on the connection increments run on.
func (e *Engine) openServing(g *generation, memMB int) (*sql.DB, error) {
	return e.openDB(g.path, memMB, "spill-"+g.schema, incrementSettings)
}

// incrementSettings are the session settings of the connection increments run on.
//
// A hash join with at most dynamic_or_filter_threshold rows on its build side hands the
// scan on its probe side the build's keys as a filter, not only their min and max, so the
// scan skips the vectors (2 048 rows) that hold none of them. DuckDB's default, 50, is
// far below the rows an increment reads by row id (incremental.go): with 16 384, the
// increment's read of 4 578 rows of 500 contacts' last 18 days at 100M events skips all
// but ~4.7M of the 63M rows between the first and the last, 5.4 → 2.1 s. The scan tests
// each vector against every key, so a far larger build would cost more than it skips
// (20 000 row ids spread over the last weeks at 100M: 7.4 s with the filter, 15.2 s
// without; 60 000: 20.1 s with it, 13.9 s without).
//
// Only increments get it: a panel query's joins have no use for it, and a filter of many
// keys that skips nothing costs time on every vector.
var incrementSettings = []string{"SET SESSION dynamic_or_filter_threshold = 16384"}

// closeDB closes an instance openDB opened and deletes its spill directory, and its file
// when remove is set.
func (e *Engine) closeDB(db *sql.DB, path string, remove bool) error {
	e.openMu.Lock()
	inst, ok := e.open[db]
	delete(e.open, db)
	e.openMu.Unlock()
	if !ok {
		return nil // closed already (by Close)
	}
	inst.close()
	err := db.Close()
	_ = os.RemoveAll(filepath.Join(e.workDir, inst.spill))
	if remove {
		removeDBFiles(path)
	}
	releaseFreedMemory()
	return err
}

// removeDBFiles deletes a DuckDB file and its write-ahead log.
func removeDBFiles(path string) {
	for _, f := range []string{path, path + ".wal"} {
		_ = os.Remove(f)
	}
}

// lockDown applies the resource limits and the sandbox (docs/SECURITY.md) to one DuckDB
// instance: no file access outside the store, spilling only into its private directory,
// no extension installs or loads, settings locked for every later statement.
func (e *Engine) lockDown(db *sql.DB, memMB int, spillDir string, extra []string) error {
	dirs, paths := sandboxPaths(e.opts.Source)
	paths = append(paths, extra...)
	// Spill only into the engine's private directory, which no query may read (it is not
	// among the allowed paths), and only up to a cap: by default DuckDB would spill into
	// the working directory up to 90 % of the disk. Building the facts of a large store
	// needs it; a viewer's query that outgrows it fails. openDB sets the directory when
	// the instance starts (DuckDB refuses to change it once used, even to the same value).
	var tmp string
	if err := db.QueryRow("SELECT current_setting('temp_directory')").Scan(&tmp); err != nil {
		return fmt.Errorf("configure duckdb: %w", err)
	}
	stmts := []string{
		fmt.Sprintf("SET memory_limit = '%dMB'", memMB),
		fmt.Sprintf("SET threads = %d", e.opts.Threads),
		fmt.Sprintf("SET max_temp_directory_size = '%dMiB'", spillLimitMB(memMB)),
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET allowed_directories = " + sqlList(dirs),
		"SET allowed_paths = " + sqlList(paths),
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	}
	if tmp != spillDir {
		stmts = append([]string{"SET temp_directory = " + store.SQLString(spillDir)}, stmts...)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			return fmt.Errorf("configure duckdb (%s): %w", s, err)
		}
	}
	return nil
}

// spillLimitMB caps an instance's temporary files: four times its memory limit, and at
// least 16 GiB, which building the facts of a 10M-event store within 1 GB needs.
func spillLimitMB(memMB int) int { return max(4*memMB, 16<<10) }

// sandboxPaths are what DuckDB may read: a store directory's segments/ and retired/; a
// DuckDB file and its WAL (not the directory it sits in); a single Parquet file; the
// directory of a Parquet glob or folder (all of it: point storePath at a folder that holds
// only events).
func sandboxPaths(src *store.Source) (dirs, paths []string) {
	if src == nil {
		return nil, nil
	}
	switch {
	case src.Kind == store.KindDuckDB:
		return nil, []string{src.Path, src.Path + ".wal"}
	case src.Kind == store.KindParquet && !strings.ContainsAny(src.Path, "*?["):
		return nil, []string{src.Path}
	}
	return src.Dirs(), nil
}

func sqlList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = store.SQLString(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// Close drops the snapshot and closes DuckDB.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil // closed already: the kept directory may be another engine's by now
	}
	e.lifeCancel() // interrupts a build in progress
	// A look in progress may still start a build; once it is done none starts (closed).
	e.rebuild.Lock()
	p := e.pending.Load()
	e.rebuild.Unlock()
	if p != nil {
		<-p.done // it stops at its next statement and closes its instance
	}
	e.rebuild.Lock()
	defer e.rebuild.Unlock()
	if g := e.cur.Load(); g != nil {
		// Wait for the queries reading the snapshot (new ones see closed): closing a
		// DuckDB instance a query still uses leaves it open until the query ends, and the
		// next engine must not open a kept file this one still writes (its checkpoint).
		g.inUse.Lock()
		g.stmts.close()
		defer g.inUse.Unlock()
	}
	e.openMu.Lock()
	dbs := e.open
	e.open = map[*sql.DB]openInstance{}
	e.openMu.Unlock()
	var err error
	for db, inst := range dbs {
		inst.close()
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	switch {
	case e.keepDir != "":
		// The served file stays for the next engine; spill directories and a build's file go.
		if g := e.cur.Load(); g != nil && filepath.Dir(g.path) == e.keepDir {
			e.keepCurrent(g)
		}
		clearKept(e.keepDir)
		e.keepRelease()
	case e.workDir != "":
		if rerr := os.RemoveAll(e.workDir); err == nil {
			err = rerr
		}
	}
	return err
}

// DB gives the current snapshot's DuckDB (nil before the first build), for tests.
func (e *Engine) DB() *sql.DB {
	if g := e.cur.Load(); g != nil {
		return g.db
	}
	return nil
}

// Stats returns the current snapshot's statistics, building it if needed.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	g, release, err := e.acquire(ctx)
	if err != nil {
		return Stats{}, err
	}
	defer release()
	st := g.stats
	if p := e.pending.Load(); p != nil {
		st.RebuildingSince = p.started
	}
	if p := e.buildErr.Load(); p != nil {
		next := ""
		if at := e.retryAt.Load(); at != 0 && st.RebuildingSince.IsZero() {
			next = fmt.Sprintf(" (the next full build starts after %s)", time.Unix(0, at).UTC().Format(time.RFC3339))
		}
		return st, fmt.Errorf("queries answer from the snapshot built %s%s: %w", g.stats.BuiltAt.UTC().Format(time.RFC3339), next, *p)
	}
	if p := e.lookErr.Load(); p != nil {
		return st, fmt.Errorf("queries answer from the snapshot built %s: %w", g.stats.BuiltAt.UTC().Format(time.RFC3339), *p)
	}
	return st, nil
}

// Refresh makes the snapshot current now (skipping the CheckEvery throttle and the wait
// after a failed full build), waiting for a look or a full build in progress and then
// looking at the store once more (waiting for the full build that look may start).
func (e *Engine) Refresh(ctx context.Context) error {
	if e.closed.Load() {
		return errors.New("data source is closed")
	}
	e.retryAt.Store(0) // an explicit refresh does not wait after a failed build
	for i := 0; i < 2; i++ {
		if err := e.build(ctx, true); err != nil && (e.cur.Load() == nil || ctx.Err() != nil) {
			return err
		}
		if p := e.pending.Load(); p != nil {
			select {
			case <-p.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	_, release, err := e.acquire(ctx)
	if err == nil {
		release()
	}
	return err
}

// acquire returns the current generation, held for reading until release. It looks at the
// store at most every CheckEvery (build). Only the first snapshot is waited for: a full
// build after it runs in the background while queries read the previous snapshot.
func (e *Engine) acquire(ctx context.Context) (*generation, func(), error) {
	if e.closed.Load() {
		return nil, nil, errors.New("data source is closed")
	}
	now := time.Now()
	g := e.cur.Load()
	due := now.UnixNano()-e.lastCheck.Load() >= int64(e.opts.CheckEvery)
	if g == nil {
		if err := e.build(ctx, true); err != nil && e.cur.Load() == nil {
			return nil, nil, err
		}
	} else if due {
		// Errors keep the last good snapshot serving; they show in the health check.
		_ = e.build(ctx, false)
	}
	for {
		g = e.cur.Load()
		if g == nil {
			return nil, nil, errors.New("store snapshot is not available")
		}
		g.inUse.RLock()
		if e.cur.Load() == g {
			return g, g.inUse.RUnlock, nil
		}
		g.inUse.RUnlock() // swapped meanwhile: take the new one
	}
}

// build looks at the store (updating the snapshot if it changed, or starting a full build
// in the background: rebuildOnce) under the engine's own context: a query's deadline never
// aborts a build, so a build longer than queryTimeoutSeconds still completes and the next
// query has it. The caller waits for the look as long as its context allows. Callers
// arriving while a look runs share it when wait is true, and otherwise go on with the
// current snapshot.
func (e *Engine) build(ctx context.Context, wait bool) error {
	e.buildMu.Lock()
	b := e.building
	if b != nil && !wait {
		e.buildMu.Unlock()
		return nil
	}
	if b == nil {
		b = &buildRun{done: make(chan struct{})}
		e.building = b
		go func() {
			e.rebuild.Lock()
			b.err = e.maybeRebuild(e.life)
			e.rebuild.Unlock()
			e.buildMu.Lock()
			e.building = nil
			e.buildMu.Unlock()
			close(b.done)
		}()
	}
	e.buildMu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// buildRun is one background build; err is set before done closes.
type buildRun struct {
	done chan struct{}
	err  error
}

// maybeRebuild builds a new generation when the store's version changed. Call with the
// rebuild lock held.
func (e *Engine) maybeRebuild(ctx context.Context) error {
	e.lastCheck.Store(time.Now().UnixNano())
	old := e.cur.Load()
	if e.closed.Load() {
		return errors.New("data source is closed") // Close may have run already: take nothing more
	}
	if e.workDir == "" {
		// The first look: facts kept by an earlier engine of the store serve at once.
		kept, err := e.setUpWorkDir(ctx)
		if err != nil {
			return err
		}
		if kept != nil {
			e.cur.Store(kept)
			old = kept
		}
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = e.rebuildOnce(ctx, old)
		// A segment listed but retired by compaction before DuckDB opened it: list again.
		if err == nil || !store.IsSegmentGone(err) {
			break
		}
	}
	if errors.Is(err, errRetryIncrement) {
		return nil // logged; the store is fine and the snapshot serves what it had
	}
	switch {
	case err == nil:
		e.lookErr.Store(nil)
	case ctx.Err() == nil:
		err = storeError(err)
		e.lookErr.Store(&err)
	}
	return err
}

// storeError gives why the store's changes could not be applied (the snapshot before them
// keeps serving) in the terms users see.
func storeError(err error) error {
	if !errors.Is(err, ErrBuildMemory) && !errors.Is(err, ErrBuildKilled) && !errors.Is(err, ErrBuildProcess) {
		err = fmt.Errorf("%w: %w", ErrStore, err)
	}
	return err
}

// ErrStore marks a store that cannot be read (a broken or unreadable file): the data's
// problem, not the query's nor the plugin's.
var ErrStore = errors.New("the store cannot be read")

// ErrBuildMemory marks a full build that ran out of buildMemoryLimitMB: a setting to
// raise, not a broken store. (An increment that runs out of memory is tried again at the
// next looks, then left to a full build: tryIncrement.)
var ErrBuildMemory = errors.New("building the facts ran out of memory")

// buildError says why a full build failed in the terms of the settings a user can change
// when DuckDB ran out of memory (its own advice names SQL settings they cannot), and
// keeps the error otherwise.
func (e *Engine) buildError(err error) error {
	if !isOutOfMemory(err) {
		return err
	}
	// The build's limit is buildMemoryLimitMB, or memoryLimitMB when that is larger.
	raise := "buildMemoryLimitMB above it in the data source's settings"
	if e.opts.BuildMemorySetting != "" {
		raise = e.opts.BuildMemorySetting + " above it"
	}
	return fmt.Errorf("%w within %d MB: raise %s; the default, %d MB, builds 100M events (%w)",
		ErrBuildMemory, e.opts.BuildMemoryLimitMB, raise, DefaultBuildMemoryLimitMB, firstLine{err})
}

// isOutOfMemory says whether err is DuckDB running out of its memory_limit.
func isOutOfMemory(err error) bool {
	var de *duckdb.Error
	return errors.As(err, &de) && de.Type == duckdb.ErrorTypeOutOfMemory
}

// firstLine is an error shown by its first line (DuckDB appends advice on SQL settings
// after a blank line), still unwrapping to the error.
type firstLine struct{ err error }

func (f firstLine) Error() string {
	s, _, _ := strings.Cut(f.err.Error(), "\n")
	return strings.TrimSpace(s)
}

func (f firstLine) Unwrap() error { return f.err }

// rebuildOnce looks at the store once: nothing changed; or the snapshot takes the new
// segments in place (tryIncrement); or a full build starts, in the background unless
// there is no snapshot yet. Call with the rebuild lock held.
func (e *Engine) rebuildOnce(ctx context.Context, old *generation) error {
	var (
		files   []store.Segment
		version string
		demoEnd time.Time
		follow  bool
	)
	if e.opts.Source == nil {
		demoEnd = time.Now().UTC().Truncate(time.Minute)
		if old != nil && demoEnd.Sub(old.demoEnd) < e.opts.DemoRefresh {
			return nil
		}
		version = "demo@" + demoEnd.Format(time.RFC3339)
		if e.pending.Load() != nil {
			return nil
		}
	} else {
		var err error
		files, err = e.opts.Source.Files()
		if err != nil {
			return fmt.Errorf("read store %s: %w", e.opts.Source.Path, err)
		}
		if old != nil && e.opts.Source.Kind == store.KindDir && store.RetentionMidway(files, time.Now()) {
			// Retention is between publishing a rewrite and retiring its original (a look
			// started by the rewrite's landing comes right then): the original's leaving
			// starts the next look.
			return nil
		}
		version = store.Version(files, string(e.opts.Source.Kind))
		p := e.pending.Load()
		if old != nil && old.version == version && (!old.stale || p != nil) {
			e.checkpointIfDue(old) // one refused while a query ran: the store is quiet now
			return nil
		}
		if p != nil {
			// A full build is on its way: until it is done, the snapshot it replaces takes
			// the new segments when it can (a build takes minutes to hours on a large store).
			if p.follow {
				var next *generation
				next, p.follow, err = e.tryIncrement(ctx, old, files, version, true)
				if next != nil {
					e.serve(next)
				}
			}
			return err
		}
		if old != nil && old.stale {
			follow = true // it holds events the store no longer has: only a full build helps
		} else {
			var next *generation
			if next, follow, err = e.tryIncrement(ctx, old, files, version, false); next != nil || err != nil {
				if next != nil {
					e.serve(next)
				}
				return err
			}
		}
	}
	if old != nil && time.Now().UnixNano() < e.retryAt.Load() {
		// A full build failed lately: the next one waits (a build the kernel killed for
		// memory would otherwise start again at every look, for minutes each time on a
		// large store). Meanwhile the snapshot takes new segments when it can, past its
		// share and across retention's rewrites, as while a build runs.
		if e.opts.Source == nil || !follow || !e.retryFollow || old.version == version {
			return nil
		}
		next, ok, err := e.tryIncrement(ctx, old, files, version, true)
		if next != nil {
			e.serve(next)
		}
		e.retryFollow = ok // after a failed increment, the next build decides
		return err
	}
	if e.closed.Load() {
		return errors.New("data source is closed")
	}
	// A full build gets a DuckDB file and instance of its own, with the build's memory
	// limit; queries go on reading the previous snapshot's instance meanwhile.
	e.nextGen++
	g := &generation{schema: fmt.Sprintf("g%d", e.nextGen), version: version, demoEnd: demoEnd, inUse: &sync.RWMutex{}, files: files, nextFile: len(files)}
	g.path = filepath.Join(e.workDir, fmt.Sprintf("facts-%s.duckdb", g.schema))
	if old == nil {
		// The first snapshot: the callers wait for it.
		if err := e.fullBuild(ctx, g, files); err != nil {
			return err
		}
		e.install(g)
		return nil
	}
	p := &fullBuild{done: make(chan struct{}), started: time.Now(), follow: follow}
	e.pending.Store(p)
	go e.buildInBackground(p, g, files, follow)
	return nil
}

// fullBuild is a full build running in the background while the current snapshot serves.
type fullBuild struct {
	done    chan struct{} // closed once it is installed or has failed
	started time.Time
	// follow: the current snapshot takes appended segments as increments meanwhile, also
	// across retention's rewrites (listingChange). Not once an increment failed: the build
	// is what decides about it. Read and written under the rebuild lock.
	follow bool
}

// buildInBackground runs a full build under the engine's life and installs it (under
// the rebuild lock, so never in the middle of an increment of the snapshot it replaces),
// after applying the segments appended since its listing (catchUp).
func (e *Engine) buildInBackground(p *fullBuild, g *generation, files []store.Segment, follow bool) {
	defer close(p.done)
	start := time.Now()
	log.DefaultLogger.Info("rebuilding the facts in full in the background", "segments", len(files), "follow", follow)
	err := e.fullBuild(e.life, g, files)
	e.rebuild.Lock()
	defer e.rebuild.Unlock()
	e.pending.Store(nil)
	switch {
	case err == nil && e.closed.Load():
		_ = e.closeDB(g.db, g.path, true)
	case err == nil:
		g = e.catchUp(g)
		e.install(g)
		e.buildErr.Store(nil)
		e.buildFailures = 0
		e.retryAt.Store(0)
		log.DefaultLogger.Info("full build done", "events", g.stats.Events, "took", time.Since(start))
	case e.life.Err() != nil:
	case store.IsSegmentGone(err):
		// Retired by compaction since the listing: the next look lists again and starts over.
		log.DefaultLogger.Info("full build restarts: a segment was merged while it read the store", "error", err)
	default:
		err = storeError(err)
		e.buildErr.Store(&err)
		e.buildFailures++
		e.retryFollow = true
		wait := min(retryFirst<<min(e.buildFailures-1, 10), retryMax)
		e.retryAt.Store(time.Now().Add(wait).UnixNano())
		log.DefaultLogger.Error("full build failed; the previous snapshot keeps serving", "error", err, "retryIn", wait)
	}
}

// How long the next full build waits after a failed one: retryFirst, doubling with each
// failure in a row up to retryMax. Refresh does not wait.
const (
	retryFirst = 30 * time.Second
	retryMax   = 30 * time.Minute
)

// catchUp applies the segments appended since g's listing to g before it is served: the
// snapshot it replaces took them meanwhile, and a panel's counts must not go back. When
// that cannot be done (the increment fails), g is served as it is and the next look
// decides: the counts then go back until it has.
func (e *Engine) catchUp(g *generation) *generation {
	if e.opts.Source == nil || e.opts.Source.Kind != store.KindDir {
		return g
	}
	for attempt := 0; attempt < 3; attempt++ {
		files, err := e.opts.Source.Files()
		if err != nil {
			return g
		}
		version := store.Version(files, string(e.opts.Source.Kind))
		if version == g.version {
			return g
		}
		next, _, err := e.tryIncrement(e.life, g, files, version, true)
		if next != nil {
			return next
		}
		if !store.IsSegmentGone(err) { // gone: merged since the listing, list again
			log.DefaultLogger.Warn("the new snapshot could not take the latest segments before serving", "error", err)
			return g
		}
	}
	return g
}

// serve makes g, an increment of the current snapshot (the same DuckDB instance), current,
// then checkpoints it if due.
func (e *Engine) serve(g *generation) {
	e.cur.Store(g)
	e.cache.clear()
	e.checkpointIfDue(g)
	trimCHeap()
}

// checkpointWALBytes is the write-ahead log size at which a served increment is followed
// by a checkpoint, and so by a reopen, which drops the storage metadata DuckDB's C++ heap
// gathers with every increment (~0.7 MB each at 100M events). Since increments rewrite
// only the rows that changed, 500 events log ~0.57 MB instead of ~4 MB: at 32 MB the
// checkpoint came once in ~55 increments, and over 60 rounds at 100M events the heap
// grew from 51 to 94 MB (RSS 335 MB on average); at 4 MB it comes every ~8, as before,
// and takes 0.55-0.87 s: 311-314 MB on average, peaks 384-425 MB in three runs; at 8 MB
// one of three checkpoints took 1.2 s with the heap at 143 MB, peak 426 MB
// (docs/BENCHMARKS.md, twenty-fifth session).
var checkpointWALBytes int64 = 4 << 20

// checkpointIfDue writes the write-ahead log of g's file into the file once the log holds
// checkpointWALBytes, then serves g from a new instance (reopen). DuckDB would checkpoint
// in the COMMIT that takes the log past its threshold, before the increment is served:
// 0.6-1.0 s more before that increment's events are visible, every ~8th increment at
// 100M events. Here the events are visible first, and the checkpoint delays only events
// that land while it runs. A query running at that moment makes DuckDB refuse it; the
// next look tries again (rebuildOnce), waiting for the queries after
// maxCheckpointPutOffs refusals, and DuckDB's own threshold (twice this) is the
// backstop. An instance opened with more than memoryLimitMB (tryIncrement) checkpoints
// after the increment it was opened for, whatever its log, to go back to the limit.
func (e *Engine) checkpointIfDue(g *generation) {
	e.openMu.Lock()
	roomy := e.open[g.db].memMB > e.opts.MemoryLimitMB
	e.openMu.Unlock()
	fi, err := os.Stat(g.path + ".wal")
	if !roomy && (err != nil || fi.Size() < checkpointWALBytes) {
		return
	}
	var walBytes int64
	if err == nil {
		walBytes = fi.Size()
	}
	wait := e.checkpointPutOffs >= maxCheckpointPutOffs
	if wait {
		g.inUse.Lock() // waits for the queries reading g; new ones wait behind it
		defer g.inUse.Unlock()
	}
	conn, release, err := e.incrementConn(e.life, g.db)
	if err != nil {
		return
	}
	start := time.Now()
	// What the allocators keep of the increments goes back first: the checkpoint's own
	// memory (tens of MB at 100M events) then does not come on top of it.
	releaseFreedMemory()
	_, err = conn.ExecContext(e.life, "CHECKPOINT")
	release()
	if err != nil {
		e.checkpointPutOffs++
		log.DefaultLogger.Debug("checkpoint put off", "wal bytes", walBytes, "times", e.checkpointPutOffs, "error", firstLine{err})
		return
	}
	e.checkpointPutOffs = 0
	log.DefaultLogger.Debug("checkpoint", "wal bytes", walBytes, "took", time.Since(start))
	if wait {
		e.reopenHeld(g, e.opts.MemoryLimitMB)
	} else {
		e.reopen(g, e.opts.MemoryLimitMB)
	}
}

// maxCheckpointPutOffs is how many looks in a row may have a due checkpoint refused
// because queries are reading the snapshot; the next one waits for them first (new
// queries wait behind it). Under queries back to back the checkpoint would otherwise
// come only from DuckDB's own threshold, in a COMMIT, with no reopen after it to drop
// the metadata the instance gathers.
const maxCheckpointPutOffs = 3

// reopen serves g from a new DuckDB instance on the same file, with memMB of memory, and
// returns the generation it serves (nil if the file could not be opened again). An
// instance keeps, for as long as it is open, the storage metadata of every column
// segment its statements have read, and an entry in its buffer pool's eviction queues
// for every temporary buffer freed since (docs/BENCHMARKS.md, twentieth session);
// checkpoints add to both. At 100M events that took its C++ heap from ~50 to ~140 MB
// over 60 increments, and the process past 400 MB RSS at its peaks; a new instance holds
// only what the statements after it read. Call with the rebuild lock held and g current;
// closing checkpoints what the write-ahead log holds, so opening replays nothing. Queries
// wait meanwhile (0.2-0.4 s at 100M events after a checkpoint) and then read the same
// snapshot.
func (e *Engine) reopen(g *generation, memMB int) *generation {
	g.inUse.Lock() // waits for the queries reading g; new ones wait for the new instance
	defer g.inUse.Unlock()
	return e.reopenHeld(g, memMB)
}

// reopenHeld is reopen with g.inUse held for writing by the caller.
func (e *Engine) reopenHeld(g *generation, memMB int) *generation {
	start := time.Now()
	g.stmts.close()
	if err := e.closeDB(g.db, g.path, false); err != nil {
		log.DefaultLogger.Warn("closing the facts' instance to open it again", "error", err)
	}
	closed := time.Since(start)
	db, err := e.openServing(g, memMB)
	if err != nil {
		// No instance serves g now: the next query's look opens the kept facts again or
		// builds them anew, and the health check says why meanwhile.
		err = fmt.Errorf("open the facts again: %w", err)
		log.DefaultLogger.Error("no snapshot to serve", "error", err)
		e.lookErr.Store(&err)
		e.cur.Store(nil)
		return nil
	}
	next := *g
	next.db, next.stmts = db, newStmtCache(db)
	e.cur.Store(&next)
	log.DefaultLogger.Debug("facts opened again", "memoryLimitMB", memMB, "took", time.Since(start), "closing took", closed)
	return &next
}

// fullBuildHook, when set (tests), runs in each full build in the background (not the
// first) before it reads the store.
var fullBuildHook atomic.Pointer[func(ctx context.Context) error]

// fullBuild builds generation g from files in a DuckDB file of its own, with the build's
// memory limit (in a child process when the executable can run one: buildprocess.go),
// then opens that file with the serving limit for g.
func (e *Engine) fullBuild(ctx context.Context, g *generation, files []store.Segment) (err error) {
	listed := files
	files, pins, opened, unpin, err := pinSegments(files)
	if err != nil {
		return err
	}
	defer unpin()
	if hook := fullBuildHook.Load(); hook != nil && e.cur.Load() != nil {
		if err := (*hook)(ctx); err != nil {
			return err
		}
	}
	if e.childBuilds {
		pins, err = e.buildInChild(ctx, g, files, opened)
	} else {
		err = e.buildFile(ctx, g, files, pins)
	}
	if err != nil {
		if len(pins) > 0 {
			err = namingSegments(err, pins, listed) // a broken segment is named by its path
		}
		return err
	}
	if g.db, err = e.openServing(g, e.opts.MemoryLimitMB); err != nil {
		removeDBFiles(g.path)
		return err
	}
	g.stmts = newStmtCache(g.db)
	e.keep(ctx, g) // what the file holds, for the next start (kept.go)
	return nil
}

// buildFile builds generation g's facts into the DuckDB file g.path in an instance of its
// own with the build's memory limit, reading files (pins: the extra paths they are read
// by), and closes it: serving opens the file again, so the build's memory (its buffers,
// hash tables and sort runs, and what the allocator kept of them) is given back even when
// the limits are equal (RSS 360 → 110 MB after a 10M build at 256 MB). It sets g's
// listing (base, merged) and statistics.
func (e *Engine) buildFile(ctx context.Context, g *generation, files []store.Segment, pins []string) error {
	// The build's intermediate tables go to a scratch database in its spill directory,
	// deleted with it: written into the facts file, they and the unsorted copies of the
	// fact tables left a third of it free blocks and unread tables (10M events: 2.9 GB,
	// of them 0.8 GB free and 0.3 GB of intermediates; DuckDB does not shrink a file).
	spill := "spill-build-" + g.schema
	scratch := filepath.Join(e.workDir, spill, "scratch.duckdb")
	if err := os.MkdirAll(filepath.Dir(scratch), 0o700); err != nil {
		return err
	}
	bdb, err := e.openDB(g.path, e.opts.BuildMemoryLimitMB, spill, nil, append(slices.Clone(pins), scratch, scratch+".wal")...)
	if err != nil {
		return err
	}
	if e.opts.Source != nil && e.opts.Source.Kind == store.KindDir {
		// What the files hold, for increments across compaction (listingChange).
		conn, err := bdb.Conn(ctx)
		if err == nil {
			g.base, _, g.merged, err = expandListing(ctx, conn, files, nil, func(store.Segment) bool { return false }, nil)
			conn.Close()
		}
		if err != nil {
			_ = e.closeDB(bdb, g.path, true)
			return err
		}
	}
	if err := e.buildFacts(ctx, bdb, g, files, scratch); err != nil {
		_ = e.closeDB(bdb, g.path, true)
		return e.buildError(err)
	}
	if err := e.closeDB(bdb, g.path, false); err != nil {
		removeDBFiles(g.path)
		return err
	}
	return nil
}

// pinSegments opens the segments for the length of a full build, and gives them paths
// that reach the open files (/proc/self/fd/N, also the only extra paths the build's
// sandbox allows): compaction and retention retire segments while a build of a large
// store reads for minutes, and a scan that reached a retired segment would make the build
// start over (and under steady traffic, again and again). Without /proc (procFDs) the
// segments are read where they are listed.
func pinSegments(files []store.Segment) (pinned []store.Segment, paths []string, open []*os.File, unpin func(), err error) {
	if len(files) == 0 || !procFDs() {
		return files, nil, nil, func() {}, nil
	}
	open = make([]*os.File, 0, len(files))
	unpin = func() {
		for _, f := range open {
			f.Close()
		}
	}
	pinned = make([]store.Segment, len(files))
	paths = make([]string, len(files))
	for i, s := range files {
		f, err := os.Open(s.Path)
		if err != nil {
			unpin()
			return nil, nil, nil, nil, err // gone since the listing (store.IsSegmentGone): list again
		}
		open = append(open, f)
		pinned[i] = s
		pinned[i].Path = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		paths[i] = pinned[i].Path
	}
	return pinned, paths, open, unpin, nil
}

// procFDs says whether open files can be read by path through /proc/self/fd: on Linux,
// where /proc is mounted (not in a chroot or an empty container root without it).
var procFDs = sync.OnceValue(func() bool {
	if runtime.GOOS != "linux" {
		return false
	}
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// namingSegments gives err with the pinned segments' paths in its text replaced by the
// paths they were listed at.
func namingSegments(err error, pins []string, listed []store.Segment) error {
	order := make([]int, len(pins))
	for i := range order {
		order[i] = i
	}
	// Longest first: /proc/self/fd/15 before /proc/self/fd/1.
	slices.SortFunc(order, func(a, b int) int { return len(pins[b]) - len(pins[a]) })
	pairs := make([]string, 0, 2*len(pins))
	for _, i := range order {
		pairs = append(pairs, pins[i], listed[i].Path)
	}
	return renamed{err, strings.NewReplacer(pairs...).Replace(err.Error())}
}

// renamed is an error shown by another text, still unwrapping to the error.
type renamed struct {
	err  error
	text string
}

func (r renamed) Error() string { return r.text }
func (r renamed) Unwrap() error { return r.err }

// install makes g the current snapshot and closes the one it replaces once the queries
// reading it are done. Call with the rebuild lock held.
func (e *Engine) install(g *generation) {
	e.fullBuilds++
	g.stats.FullBuilds = e.fullBuilds
	old := e.cur.Load()
	e.cur.Store(g)
	e.cache.clear() // answers of older snapshots can no longer be asked for
	e.keepCurrent(g)
	if old != nil {
		go func() {
			old.inUse.Lock() // waits for the queries still reading it
			old.stmts.close()
			_ = e.closeDB(old.db, old.path, true)
			old.inUse.Unlock()
		}()
	}
}

// buildFacts builds generation g's schema in db: the events, the facts, the rollups and
// the events view of raw SQL; then g's statistics. The steps' intermediate tables go to
// the database file scratch, attached for the build and deleted by the caller.
func (e *Engine) buildFacts(ctx context.Context, db *sql.DB, g *generation, files []store.Segment, scratch string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ATTACH "+store.SQLString(scratch)+" AS "+scratchDB); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), "DETACH "+scratchDB) //nolint:errcheck
	if _, err := conn.ExecContext(ctx, "CREATE SCHEMA "+g.schema); err != nil {
		return err
	}
	start := time.Now()
	if err := e.loadEvents(ctx, conn, g, files); err != nil {
		return err
	}
	log.DefaultLogger.Debug("build step", "table", g.schema+".ev", "files", len(files), "took", time.Since(start))
	// The events are final now (the facts only read them): their statistics size the steps.
	var minTS, maxTS sql.NullTime
	if err := conn.QueryRowContext(ctx, "SELECT count(*), min(ts), max(ts) FROM "+g.schema+".ev").Scan(&g.stats.Events, &minTS, &maxTS); err != nil {
		return err
	}
	g.stats.MinTS, g.stats.MaxTS = minTS.Time, maxTS.Time
	g.stats.Files, g.stats.Version = len(files), g.version
	g.full = g.stats.Events
	stmts := factStatements()
	if e.opts.Source != nil && e.opts.Source.Kind == store.KindDir {
		stmts = append(stmts, spanStatements()...) // only a store directory takes increments
	}
	if !e.opts.NoRollups {
		stmts = append(stmts, rollupStatements()...)
	}
	parts := e.partitions(g.stats.Events)
	for _, stmt := range stmts {
		stmt = strings.NewReplacer("{g}", g.schema, "{t}", scratchDB+".main").Replace(stmt)
		if err := e.buildStep(ctx, conn, stmt, g.stats.Events, parts); err != nil {
			return fmt.Errorf("build facts: %w", err)
		}
	}
	g.stats.BuiltAt = time.Now()
	_, err = conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE VIEW main.events AS SELECT %s FROM %s.ev", store.ColumnList(), g.schema))
	return err
}

// scratchDB is the name a full build attaches its scratch database by.
const scratchDB = "bt_scratch"

// keyHashes are ev's integer hashes of the keys increments look events up by
// (incremental.go): probing integers is several times cheaper than probing strings. eh,
// the event id's, only finds the stored copies of new events (which the ids then confirm)
// in a scan of every event: 32 bits of the hash are enough for that and halve the scan
// (at 100M events 500 new ids took 270 ms instead of 450-490, and match ~12 other
// events); the others select rows that are not confirmed, so they keep 64 bits.
const keyHashes = "hash(contact_id) AS ch, hash(conversation_id) AS vh, hash(message_id) AS mh, hash(reply_to) AS rh, CAST(hash(event_id) >> 32 AS UINTEGER) AS eh"

// loadEvents creates {g}.ev: the deduplicated events (first arrival wins) with arr, their
// arrival rank, and keyHashes.
func (e *Engine) loadEvents(ctx context.Context, conn *sql.Conn, g *generation, files []store.Segment) error {
	cols := store.ColumnList()
	// First arrival wins: arr orders rows by file, then row. Most ids are unique, so find
	// the few repeated ones and drop their later copies, instead of sorting every row by
	// event_id. Grouping 100M distinct id strings needs more than a 256 MB memory_limit
	// even out of core, so the repeated ids are found by their 64-bit hash first (fixed-size
	// keys spill well), then confirmed by the ids themselves (a collision is not a
	// duplicate). ev is not sorted: nothing reads it in order (arr says the order), and
	// sorting every column of 100M events would spill ~40 GB of rows. r is not
	// materialized: each use re-reads the Parquet files, only the columns it needs.
	dedup := func(rel string) string { return dedupStatement(g.schema, cols, rel) }
	if e.opts.Source == nil {
		if err := e.generateDemo(ctx, conn, g.demoEnd); err != nil {
			return fmt.Errorf("generate demo store: %w", err)
		}
		_, err := conn.ExecContext(ctx, dedup(fmt.Sprintf("SELECT %s, 0 AS _f, seq AS _r FROM main.demo_raw", cols)))
		return err
	}
	switch e.opts.Source.Kind {
	case store.KindDir, store.KindParquet:
		if len(files) == 0 {
			_, err := conn.ExecContext(ctx, dedup(emptyRelation()))
			return err
		}
		rel, err := segmentsRelation(ctx, conn, files, 0)
		if err != nil {
			return err
		}
		_, err = conn.ExecContext(ctx, dedup(rel))
		return err
	case store.KindDuckDB:
		if _, err := conn.ExecContext(ctx, "ATTACH "+store.SQLString(e.opts.Source.Path)+" AS src (READ_ONLY)"); err != nil {
			return fmt.Errorf("open DuckDB store %s read-only (is another process writing it?): %w", e.opts.Source.Path, err)
		}
		defer conn.ExecContext(context.Background(), "DETACH src") //nolint:errcheck
		proj, err := projection(ctx, conn, "SELECT * FROM src.events")
		if err != nil {
			return fmt.Errorf("DuckDB store %s: %w", e.opts.Source.Path, err)
		}
		_, err = conn.ExecContext(ctx, dedup(fmt.Sprintf("SELECT %s, 0 AS _f, row_number() OVER () AS _r FROM src.events", proj)))
		return err
	}
	return fmt.Errorf("unknown store kind %q", e.opts.Source.Kind)
}

// dedupStatement creates schema.ev from rel (cols plus _f, _r): the events deduplicated by
// event_id, first arrival (arr) winning, with keyHashes (loadEvents says how).
func dedupStatement(schema, cols, rel string) string {
	return fmt.Sprintf(`CREATE TABLE %[1]s.ev AS
		WITH r AS NOT MATERIALIZED (SELECT %[2]s, CAST(_f AS BIGINT) * 1099511627776 + CAST(_r AS BIGINT) AS arr, `+keyHashes+` FROM (%[3]s)),
		dh AS (SELECT hash(event_id) AS h FROM r GROUP BY h HAVING count(*) > 1),
		d AS (SELECT event_id, min(arr) AS keep FROM r WHERE hash(event_id) IN (SELECT h FROM dh) GROUP BY event_id HAVING count(*) > 1)
		SELECT r.* FROM r LEFT JOIN d ON d.event_id = r.event_id
		WHERE d.keep IS NULL OR r.arr = d.keep`, schema, cols, rel)
}

// segmentsRelation reads Parquet files as SPEC columns plus _f (the file's position in
// arrival order, counting from first) and _r (the row's position in its file).
func segmentsRelation(ctx context.Context, conn *sql.Conn, files []store.Segment, first int) (string, error) {
	scan := fmt.Sprintf("read_parquet(%s, filename=true, file_row_number=true, union_by_name=true)", store.ParquetList(files))
	proj, err := projection(ctx, conn, "SELECT * FROM "+scan)
	if err != nil {
		return "", err
	}
	// Each file's position in arrival order, joined by name.
	idx := make([]string, len(files))
	for i, f := range files {
		idx[i] = fmt.Sprintf("(%s, %d)", store.SQLString(f.Path), first+i)
	}
	return fmt.Sprintf("SELECT %s, files.idx AS _f, file_row_number AS _r FROM %s JOIN (VALUES %s) AS files(fname, idx) ON files.fname = filename",
		proj, scan, strings.Join(idx, ", ")), nil
}

// projection maps a user relation onto the SPEC columns: present columns are cast to their
// type, missing optional ones are NULL, a missing required one is an error.
func projection(ctx context.Context, conn *sql.Conn, rel string) (string, error) {
	rows, err := conn.QueryContext(ctx, "DESCRIBE "+rel)
	if err != nil {
		return "", err
	}
	have := map[string]bool{}
	for rows.Next() {
		var name, typ string
		var a, b, c, d sql.NullString
		if err := rows.Scan(&name, &typ, &a, &b, &c, &d); err != nil {
			rows.Close()
			return "", err
		}
		have[strings.ToLower(name)] = true
	}
	rows.Close()
	parts := make([]string, 0, len(events.Columns))
	var missing []string
	for _, c := range events.Columns {
		switch {
		case have[c.Name]:
			parts = append(parts, fmt.Sprintf("CAST(%s AS %s) AS %s", c.Name, c.SQLType, c.Name))
		case c.Required:
			missing = append(missing, c.Name)
		default:
			parts = append(parts, fmt.Sprintf("CAST(NULL AS %s) AS %s", c.SQLType, c.Name))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the events lack the required column(s) %s", strings.Join(missing, ", "))
	}
	return strings.Join(parts, ", "), nil
}

func emptyRelation() string {
	parts := make([]string, 0, len(events.Columns)+2)
	for _, c := range events.Columns {
		parts = append(parts, fmt.Sprintf("CAST(NULL AS %s) AS %s", c.SQLType, c.Name))
	}
	parts = append(parts, "0 AS _f", "0 AS _r")
	return "SELECT " + strings.Join(parts, ", ") + " WHERE false"
}

// generateDemo (re)writes main.demo_raw with the demo generator's events up to end.
func (e *Engine) generateDemo(ctx context.Context, conn *sql.Conn, end time.Time) error {
	ddl := strings.Replace(createTable("main.demo_raw"), "CREATE TABLE", "CREATE OR REPLACE TABLE", 1)
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return err
	}
	cfg := e.opts.Demo
	cfg.End = end
	return conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "main", "demo_raw")
		if err != nil {
			return err
		}
		var seq int64
		genErr := demo.Generate(cfg, func(ev *events.Event) error {
			seq++
			return app.AppendRow(store.EventRow(ev, seq)...)
		})
		if err := app.Close(); err != nil && genErr == nil {
			genErr = err
		}
		return genErr
	})
}

func createTable(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (", name)
	for _, c := range events.Columns {
		fmt.Fprintf(&b, "%s %s, ", c.Name, c.SQLType)
	}
	b.WriteString("seq BIGINT)")
	return b.String()
}
