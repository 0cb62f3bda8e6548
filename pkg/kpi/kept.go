package kpi

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// Facts kept across restarts (Options.FactsDir). A full build of a large store takes
// minutes (10M events) to most of an hour (100M), and without this every start of the
// plugin (Grafana restarted, the plugin upgraded, the data source's settings saved) would
// wait for one before a panel answers. Instead the engine keeps its facts file in a
// directory of its own per store, FactsDir/<key>/:
//
//	lock                  flock'ed by the one engine using the directory (others build privately)
//	store                 the store's path, for people and for removing abandoned directories
//	current               the name of the facts file that serves, replaced atomically
//	facts-gN.duckdb       the facts (schema gN), with main.bt_kept: what the file holds
//
// main.bt_kept is written in the same transaction as every increment, so the file always
// says which segments its facts hold, also after a crash. At the next start the engine
// opens the file named by current, checks that it was built by the same definitions
// (keptFingerprint) from the same store, serves it, and takes what the store gained
// meanwhile as increments; a store that changed otherwise (retention) is rebuilt in the
// background while the kept snapshot serves, as at any other time.

// keptFormat is part of keptFingerprint: bump it when a change alters what the stored facts
// hold or how increments update them without changing the statements of facts.go and
// rollup.go (which the fingerprint covers), so that kept facts of older code are rebuilt.
const keptFormat = 1

// keptWait is how long an engine waits for another engine of the same process to let go
// of its store's kept facts: Grafana closes a data source instance whose settings changed
// 5 s after it opens the new one (and its Close waits for the queries still running). A
// second data source on the same store waits this long at its start, then builds privately.
var keptWait = 10 * time.Second

// keptUnused is how long a kept directory may go unused before the next engine removes it.
const keptUnused = 7 * 24 * time.Hour

// DefaultFactsDir is where the plugin keeps facts by default: a directory of the user's
// own in the system's temporary directory (kept across restarts of the plugin, not
// necessarily across reboots).
func DefaultFactsDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("blueticks-facts-%d", os.Getuid()))
}

// keptState is what a kept facts file holds, in main.bt_kept (one row of JSON): the
// generation's listing and statistics, and the fingerprint of the code that built it.
type keptState struct {
	Fingerprint string              `json:"fingerprint"`
	Store       string              `json:"store"`
	Kind        string              `json:"kind"`
	Version     string              `json:"version"`
	Files       []store.Segment     `json:"files"`
	NextFile    int                 `json:"nextFile"`
	Base        []string            `json:"base"`
	Merged      map[string][]string `json:"merged"`
	Full        int64               `json:"full"`
	Added       int64               `json:"added"`
	Stale       bool                `json:"stale"`
	Events      int64               `json:"events"`
	// Times as Unix microseconds: JSON cannot hold years outside 0–9999, and an event's
	// time in a copied-in segment may lie there.
	MinTS      int64 `json:"minTS"`
	MaxTS      int64 `json:"maxTS"`
	BuiltAt    int64 `json:"builtAt"`
	Increments int   `json:"increments"`
}

// microTime and timeMicro convert keptState's times; the zero time stays zero.
func microTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func timeMicro(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// keptHolders are the kept directories engines of this process hold, each with a channel
// closed when its engine lets go.
var keptHolders = struct {
	sync.Mutex
	m map[string]chan struct{}
}{m: map[string]chan struct{}{}}

// duckdbVersion is the version of the DuckDB library linked in, asked of an in-memory
// instance once.
var duckdbVersion = sync.OnceValues(func() (string, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	err = db.QueryRow("SELECT library_version FROM pragma_version()").Scan(&v)
	return v, err
})

// keptFingerprint identifies the definitions the facts were built by: the statements of
// a full build (the events' deduplication, key hashes and arrival ranks, the facts, the
// rollups if any), the events' columns and types, DuckDB's version (hash() is part of the
// stored keys) and keptFormat. Every increment records it: it is computed once per process.
func (e *Engine) keptFingerprint() (string, error) {
	if e.opts.NoRollups {
		return fingerprintWithoutRollups()
	}
	return fingerprintWithRollups()
}

var (
	fingerprintWithRollups    = sync.OnceValues(func() (string, error) { return factsFingerprint(true) })
	fingerprintWithoutRollups = sync.OnceValues(func() (string, error) { return factsFingerprint(false) })
)

func factsFingerprint(rollups bool) (string, error) {
	version, err := duckdbVersion()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "format %d\x00duckdb %s\x00rollups %t\x00", keptFormat, version, rollups)
	for _, c := range events.Columns {
		fmt.Fprintf(h, "%s %s %t\x00", c.Name, c.SQLType, c.Required)
	}
	fmt.Fprintf(h, "%s\x00%s\x00", dedupStatement("{g}", "{cols}", "{rel}"), qualitySelect("{rel}"))
	for _, s := range append(factStatements(), spanStatements()...) {
		fmt.Fprintf(h, "%s\x00", s)
	}
	if rollups {
		for _, s := range rollupStatements() {
			fmt.Fprintf(h, "%s\x00", s)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// keptKey names a store's kept directory.
func keptKey(src *store.Source) string {
	sum := sha256.Sum256([]byte(string(src.Kind) + "\x00" + src.Path))
	return hex.EncodeToString(sum[:8])
}

// setUpWorkDir gives an engine that keeps its facts its work directory at its first look
// (rebuild lock held), and returns the snapshot kept there, if one is good: the store's
// kept directory when no other process uses it, else a private temporary directory.
func (e *Engine) setUpWorkDir(ctx context.Context) (*generation, error) {
	if e.workDir != "" {
		return nil, nil
	}
	dir, err := e.takeKeptDir(ctx)
	switch {
	case err != nil:
		log.DefaultLogger.Warn("facts are not kept across restarts", "factsDir", e.opts.FactsDir, "error", err)
	case dir != "":
		e.workDir = dir
		return e.openKept(ctx), nil
	default:
		log.DefaultLogger.Info("another engine (another process, or another data source on the same store) keeps this store's facts; building them privately", "factsDir", e.opts.FactsDir)
	}
	return nil, e.privateWorkDir()
}

// keepsFacts says whether the engine is to keep its facts across restarts (Options.FactsDir):
// not for the embedded demo store (regenerated up to now), nor on Windows (no flock).
func (e *Engine) keepsFacts() bool {
	return e.opts.FactsDir != "" && e.opts.Source != nil && runtime.GOOS != "windows"
}

// privateWorkDir gives the engine a private temporary directory, removed by Close (and by
// a later engine once this process is gone: removeStaleWorkDirs).
func (e *Engine) privateWorkDir() error {
	removeStaleWorkDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("blueticks-engine-%d-", os.Getpid()))
	if err != nil {
		return fmt.Errorf("engine work directory: %w", err)
	}
	e.workDir = dir
	return nil
}

// takeKeptDir takes the store's kept directory under FactsDir: "" when another process
// holds it (or another engine of this process does for longer than keptWait).
func (e *Engine) takeKeptDir(ctx context.Context) (string, error) {
	base := e.opts.FactsDir
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	if err := checkPrivateDir(base); err != nil {
		return "", err
	}
	key := keptKey(e.opts.Source)
	removeAbandonedKept(base, key)
	dir := filepath.Join(base, key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	deadline := time.Now().Add(keptWait)
	retried := false
	for {
		unlock, ok, err := store.TryLock(filepath.Join(dir, "lock"))
		if err != nil {
			return "", err
		}
		if ok {
			keptHolders.Lock()
			released := make(chan struct{})
			keptHolders.m[dir] = released
			keptHolders.Unlock()
			e.keepDir = dir
			e.keepRelease = sync.OnceFunc(func() { // Close may run more than once
				touchKept(dir)
				unlock()
				keptHolders.Lock()
				if keptHolders.m[dir] == released {
					delete(keptHolders.m, dir)
				}
				keptHolders.Unlock()
				close(released)
			})
			if err := os.WriteFile(filepath.Join(dir, "store"), []byte(e.opts.Source.Path+"\n"), 0o600); err != nil {
				e.keepRelease()
				e.keepDir, e.keepRelease = "", nil
				return "", err
			}
			return dir, nil
		}
		keptHolders.Lock()
		released, here := keptHolders.m[dir]
		keptHolders.Unlock()
		wait := time.Until(deadline)
		if !here && !retried {
			retried = true // let go between the two looks: try once more
			continue
		}
		if !here || wait <= 0 {
			return "", nil // another process, or an engine here that keeps it
		}
		select {
		case <-released:
		case <-time.After(wait):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// checkPrivateDir refuses a facts directory that is not a directory of this user's, or
// that others may write: another user could place facts of their own in it.
func checkPrivateDir(dir string) error {
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by other users (mode %v); make it private (chmod 700) or name another factsDir", dir, info.Mode().Perm())
	}
	if uid, ok := fileOwner(info); ok && uid != os.Getuid() {
		return fmt.Errorf("%s belongs to another user (uid %d)", dir, uid)
	}
	return nil
}

// removeAbandonedKept removes the kept directories under base (but own, the caller's)
// whose store is gone or that no engine used for keptUnused, when no engine holds them.
func removeAbandonedKept(base, own string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, ent := range entries {
		if !ent.IsDir() || ent.Name() == own {
			continue
		}
		dir := filepath.Join(base, ent.Name())
		keptHolders.Lock()
		_, here := keptHolders.m[dir]
		keptHolders.Unlock()
		if here || !abandoned(dir) {
			continue
		}
		unlock, ok, err := store.TryLock(filepath.Join(dir, "lock"))
		if err != nil || !ok {
			continue
		}
		if abandoned(dir) { // again, now that no engine can take it
			_ = os.RemoveAll(dir)
		}
		unlock()
	}
}

// abandoned says whether a kept directory's store is gone or nothing in it changed for
// keptUnused (increments write the facts file's WAL; the lock's time is set at each start,
// full build and close).
func abandoned(dir string) bool {
	path, err := os.ReadFile(filepath.Join(dir, "store"))
	if err != nil || storeGone(strings.TrimSpace(string(path))) {
		return true
	}
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		if info, err := ent.Info(); err == nil && time.Since(info.ModTime()) < keptUnused {
			return false
		}
	}
	return true
}

// storeGone says whether nothing is at a store path any more (a glob: nothing matches).
func storeGone(path string) bool {
	if strings.ContainsAny(path, "*?[") {
		m, err := filepath.Glob(path)
		return err == nil && len(m) == 0
	}
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// touchKept marks the kept directory as in use (removeAbandonedKept goes by the lock
// file's time): at the start, at each full build served and at close.
func touchKept(dir string) {
	now := time.Now()
	_ = os.Chtimes(filepath.Join(dir, "lock"), now, now)
}

// notADatabase says whether DuckDB refused a file as no database of its own (damaged, or
// written by a newer DuckDB).
func notADatabase(err error) bool {
	var de *duckdb.Error
	if errors.As(err, &de) && (de.Type == duckdb.ErrorTypeIO || de.Type == duckdb.ErrorTypeSerialization || de.Type == duckdb.ErrorTypeInternal) {
		msg := strings.ToLower(de.Error())
		return strings.Contains(msg, "not a valid duckdb database") || strings.Contains(msg, "database file") || strings.Contains(msg, "version") || strings.Contains(msg, "corrupt")
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "not a valid duckdb database")
}

// clearKept removes from a kept directory everything but its lock, store and current
// files and the facts file current names (with its WAL): spill directories, and the file
// of a build that was not served. It returns that name ("" when current names none).
func clearKept(dir string) string {
	name := ""
	if b, err := os.ReadFile(filepath.Join(dir, "current")); err == nil {
		name = strings.TrimSpace(string(b))
	}
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		n := ent.Name()
		if n == "lock" || n == "store" || n == "current" || (name != "" && (n == name || n == name+".wal")) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, n))
	}
	return name
}

var keptFileName = regexp.MustCompile(`^facts-(g([0-9]+))\.duckdb$`)

// openKept returns the snapshot kept in the engine's kept directory, opened with the
// serving memory limit, if it is good; it removes every other file there (a build or a
// spill directory left by a process that was killed) and a kept file that is not good.
func (e *Engine) openKept(ctx context.Context) *generation {
	dir := e.keepDir
	touchKept(dir)
	name := clearKept(dir)
	if name == "" {
		return nil
	}
	g, err := e.loadKept(ctx, name)
	if err != nil {
		log.DefaultLogger.Info("kept facts not used; building them in full", "file", filepath.Join(dir, name), "reason", err)
		if errors.Is(err, errKeptNotGood) {
			removeDBFiles(filepath.Join(dir, name))
			_ = os.Remove(filepath.Join(dir, "current"))
		} // else (the context ended, out of memory, files): the file stays for the next start
		return nil
	}
	log.DefaultLogger.Info("serving the kept facts", "file", g.path, "events", g.stats.Events, "segments", len(g.files), "builtAt", g.stats.BuiltAt)
	return g
}

// errKeptNotGood marks kept facts that can never serve (removed, then built again), as
// opposed to a failure to open them now.
var errKeptNotGood = errors.New("kept facts not good")

// loadKept opens the kept facts file name and makes its generation.
func (e *Engine) loadKept(ctx context.Context, name string) (*generation, error) {
	m := keptFileName.FindStringSubmatch(name)
	if m == nil {
		return nil, fmt.Errorf("%w: current names %q, not a facts file", errKeptNotGood, name)
	}
	n, _ := strconv.Atoi(m[2])
	e.nextGen = max(e.nextGen, n) // a build never writes over the kept file, even one not used now
	g := &generation{schema: m[1], path: filepath.Join(e.keepDir, name), inUse: &sync.RWMutex{}}
	if _, err := os.Stat(g.path); err != nil {
		return nil, fmt.Errorf("%w: %w", errKeptNotGood, err)
	}
	db, err := e.openServing(g, e.opts.MemoryLimitMB)
	if err != nil {
		if ctx.Err() == nil && notADatabase(err) {
			err = fmt.Errorf("%w: %w", errKeptNotGood, err)
		}
		return nil, err
	}
	st, err := readKeptState(ctx, db, g.schema)
	if err == nil {
		var print string
		if print, err = e.keptFingerprint(); err == nil {
			switch {
			case st.Fingerprint != print:
				err = fmt.Errorf("%w: built by other definitions of the facts (another version of the plugin or of DuckDB)", errKeptNotGood)
			case st.Store != e.opts.Source.Path || st.Kind != string(e.opts.Source.Kind):
				err = fmt.Errorf("%w: built from %s store %s", errKeptNotGood, st.Kind, st.Store)
			}
		}
	}
	if err != nil {
		_ = e.closeDB(db, g.path, false)
		return nil, err
	}
	g.db, g.stmts = db, newStmtCache(db)
	g.version, g.files, g.nextFile, g.base, g.merged = st.Version, st.Files, st.NextFile, st.Base, st.Merged
	g.full, g.added, g.stale = st.Full, st.Added, st.Stale
	g.stats = Stats{Events: st.Events, MinTS: timeMicro(st.MinTS), MaxTS: timeMicro(st.MaxTS), Files: len(st.Files), Version: st.Version,
		BuiltAt: timeMicro(st.BuiltAt), Increments: st.Increments}
	return g, nil
}

// readKeptState reads main.bt_kept and checks that the schema it describes is there.
func readKeptState(ctx context.Context, db *sql.DB, schema string) (keptState, error) {
	var st keptState
	var raw string
	var tables int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'bt_kept'").Scan(&tables); err != nil {
		return st, err
	}
	if tables == 0 {
		return st, fmt.Errorf("%w: no record of what the file holds", errKeptNotGood)
	}
	if err := db.QueryRowContext(ctx, "SELECT state FROM main.bt_kept").Scan(&raw); err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, fmt.Errorf("%w: its record is not readable: %w", errKeptNotGood, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ?", schema).Scan(&tables); err != nil {
		return st, err
	}
	if tables == 0 {
		return st, fmt.Errorf("%w: schema %s holds no facts", errKeptNotGood, schema)
	}
	return st, nil
}

// keptStatement is the statement that records generation g in its file (main.bt_kept),
// "" when the engine keeps no facts. When the record cannot be made, the statement drops
// the file's record instead (the next start then builds in full) rather than failing the
// increment whose transaction it is part of.
func (e *Engine) keptStatement(g *generation) string {
	if e.keepDir == "" {
		return ""
	}
	rec, err := e.keptRecord(g)
	if err != nil {
		log.DefaultLogger.Warn("the kept facts cannot record what they hold; the next start builds them in full", "file", g.path, "error", err)
		return "DROP TABLE IF EXISTS main.bt_kept"
	}
	return "CREATE OR REPLACE TABLE main.bt_kept AS SELECT " + store.SQLString(rec) + " AS state"
}

// keptRecord is the JSON of main.bt_kept for generation g.
func (e *Engine) keptRecord(g *generation) (string, error) {
	print, err := e.keptFingerprint()
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(keptState{
		Fingerprint: print, Store: e.opts.Source.Path, Kind: string(e.opts.Source.Kind),
		Version: g.version, Files: g.files, NextFile: g.nextFile, Base: g.base, Merged: g.merged,
		Full: g.full, Added: g.added, Stale: g.stale,
		Events: g.stats.Events, MinTS: microTime(g.stats.MinTS), MaxTS: microTime(g.stats.MaxTS), BuiltAt: microTime(g.stats.BuiltAt),
		Increments: g.stats.Increments,
	})
	return string(b), err
}

// keep records generation g in its file outside an increment's transaction (after a full
// build; after a look that changed only the listing, or added only duplicates). A failure
// only costs the next start work: the file then describes an earlier listing of the same
// events (taking those segments again adds nothing: their events are duplicates), or
// nothing, and is built again.
func (e *Engine) keep(ctx context.Context, g *generation) {
	stmt := e.keptStatement(g)
	if stmt == "" {
		return
	}
	if _, err := g.db.ExecContext(ctx, stmt); err != nil {
		log.DefaultLogger.Warn("could not record the kept facts' listing", "file", g.path, "error", err)
	}
}

// keepCurrent names g's file as the one to serve at the next start (after it was
// recorded: keep), replacing the name atomically.
func (e *Engine) keepCurrent(g *generation) {
	if e.keepDir == "" || filepath.Dir(g.path) != e.keepDir {
		return
	}
	tmp := filepath.Join(e.keepDir, "current.tmp")
	err := os.WriteFile(tmp, []byte(filepath.Base(g.path)+"\n"), 0o600)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(e.keepDir, "current"))
	}
	if err != nil {
		log.DefaultLogger.Warn("could not name the kept facts file", "file", g.path, "error", err)
	}
	touchKept(e.keepDir)
}
