package kpi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// Incremental maintenance: when new segments are appended to a store directory, the
// engine updates the current snapshot in place, in one transaction (queries meanwhile read
// the previous state), instead of rebuilding every fact. It recomputes only the rows the
// new events can change, with the same statements as a full build (facts.go) run on the
// events those rows depend on:
//
//   - messages (f_msg, their _delivery row) the new events name (message_id, reply_to),
//     and the messages sent to a new event's contact within 7 days of it when the event
//     can move last-touch credit between them (a campaign send, or an event credited by
//     last touch; a status, say, cannot);
//   - events (f_evt) of those contacts within 7 days of those new events, events naming
//     those messages, the new events (and a contact's received rows when an earlier first
//     inbound message arrives);
//   - conversations (f_conv, f_turn) the new events or the events naming their messages
//     belong to;
//
// then the hourly rollups of every hour those rows leave or enter. Randomized tests
// (incremental_test.go) require the result to equal a full build of the same store.
// Compaction keeps the snapshot (below); anything else (a segment removed or rewritten by
// retention, a segment sorting before an existing one, a DuckDB-file or Parquet-glob
// store) rebuilds in full, as does growth by increments past maxIncrementalShare. A full
// build runs in the background (engine.go, rebuildOnce); meanwhile the snapshot it
// replaces goes on taking appended segments, across retention's rewrites too (it then
// keeps the events retention removed until the build replaces it), and the build takes
// the segments appended since its listing before it serves.

// maxIncrementalShare is how far increments may grow a snapshot (in events since its full
// build) before a full build re-sorts the facts by time, which keeps time-range scans and
// the rollups compact.
var maxIncrementalShare = 0.25

// Compaction (store.Compact) merges runs of segments into one with the same events in
// the same order, and retires the inputs a moment after publishing it. A snapshot keeps
// its facts across merges: it knows its events as a sequence of base segments (segments
// as a writer wrote them; a merge stands for its inputs, as its metadata names them,
// store.CompactedFrom), and a store whose listing expands to that sequence and then
// more holds the snapshot's events plus new ones.

// expandListing gives the base segments of files, in order, each once (an input still
// listed beside its merge adds nothing); ends[i], how many of them files[:i+1] hold; and
// the inputs of each merge among files, as base segments. Merges in known are not read
// again, nor files plain says are not merges. norm, if set, maps every base segment's
// name (listingChange's stale mode: a rewrite stands for its original).
func expandListing(ctx context.Context, conn *sql.Conn, files []store.Segment, known map[string][]string, plain func(store.Segment) bool, norm func(string) string) (base []string, ends []int, merged map[string][]string, err error) {
	var unknown []store.Segment
	for _, f := range files {
		if _, ok := known[f.Name]; !ok && !plain(f) {
			unknown = append(unknown, f)
		}
	}
	read, err := store.CompactedFrom(ctx, conn, unknown)
	if err != nil {
		return nil, nil, nil, err
	}
	merged = map[string][]string{}
	seen := map[string]bool{}
	ends = make([]int, len(files))
	for i, f := range files {
		names := []string{f.Name}
		if in, ok := known[f.Name]; ok {
			names = in
			merged[f.Name] = in
		} else if from, ok := read[f.Name]; ok {
			names = names[:0]
			for _, n := range from { // a merge of merges: their inputs
				if in, ok := known[n]; ok {
					names = append(names, in...)
				} else {
					names = append(names, n)
				}
			}
			merged[f.Name] = names
		}
		for _, n := range names {
			if norm != nil {
				n = norm(n)
			}
			if !seen[n] {
				seen[n] = true
				base = append(base, n)
			}
		}
		ends[i] = len(base)
	}
	return base, ends, merged, nil
}

// listingChange compares the snapshot's segments with the store's (now). ok is true when
// now holds the snapshot's events in the same order followed by new ones, which are in
// appended (a merge of the snapshot's last segments with new ones is among them: its
// stored events are dropped as duplicates). base and merged describe now (expandListing).
//
// stale accepts a store that also lost some of the snapshot's events, to retention: a
// segment rewritten without its old rows (store.RetentionOriginal) or removed. The
// snapshot keeps those events, so it is only good until a full build replaces it (while
// one runs); base and merged then describe what the snapshot holds, now's and its own.
func listingChange(ctx context.Context, conn *sql.Conn, g *generation, now []store.Segment, stale bool) (appended []store.Segment, base []string, merged map[string][]string, ok bool, err error) {
	if g.base == nil && len(g.files) > 0 {
		return nil, nil, nil, false, nil // the snapshot's own listing could not be read
	}
	stored := make(map[string]int64, len(g.files))
	for _, f := range g.files {
		stored[f.Name] = f.Size
	}
	for _, f := range now {
		if size, ok := stored[f.Name]; ok && size != f.Size {
			return nil, nil, nil, false, nil // rewritten under its name: segments are immutable, so rebuild
		}
	}
	listed, plain := now, func(f store.Segment) bool {
		_, ok := stored[f.Name]
		return ok
	}
	var norm func(string) string
	if stale {
		norm = store.RetentionOriginal
		// A rewrite stands for the segment it replaces: named so, its events are among
		// the snapshot's when the original's are.
		listed = slices.Clone(now)
		held := make(map[string]bool, len(g.files))
		for _, f := range g.files {
			held[store.RetentionOriginal(f.Name)] = true
		}
		for i := range listed {
			listed[i].Name = store.RetentionOriginal(listed[i].Name)
		}
		plain = func(f store.Segment) bool { return held[f.Name] }
	}
	base, ends, merged, err := expandListing(ctx, conn, listed, g.merged, plain, norm)
	if err != nil {
		return nil, nil, nil, false, err
	}
	if !stale {
		if len(base) < len(g.base) || !slices.Equal(base[:len(g.base)], g.base) {
			return nil, nil, nil, false, nil // segments gone, rewritten (retention) or inserted
		}
		// The first file holding a base segment past the snapshot's.
		first, _ := slices.BinarySearch(ends, len(g.base)+1)
		return now[first:], base, merged, true, nil
	}
	// The snapshot's segments still listed, in its order, then only new ones (its own
	// base may name rewrites: a full build lists them as they are).
	pos := make(map[string]int, len(g.base))
	for i, n := range g.base {
		pos[store.RetentionOriginal(n)] = i
	}
	k, last := 0, -1
	for ; k < len(base); k++ {
		i, held := pos[base[k]]
		if !held {
			break
		}
		if i < last {
			return nil, nil, nil, false, nil // reordered
		}
		last = i
	}
	for _, n := range base[k:] {
		if _, held := pos[n]; held {
			return nil, nil, nil, false, nil // a new segment sorts before one the snapshot holds
		}
	}
	first, _ := slices.BinarySearch(ends, k+1)
	all := maps.Clone(g.merged)
	if all == nil {
		all = map[string][]string{}
	}
	maps.Copy(all, merged)
	return now[first:], append(slices.Clone(g.base), base[k:]...), all, true, nil
}

// Key spans: for every message and conversation that stored events name, the earliest
// and latest time of those events (span_msg, by mh and rh; span_conv, by vh). An increment
// looks up the spans of the keys it must find and scans only those times of ev, whose row
// groups follow time: a scan of every event's hashes took ~1.4 s (messages) and ~0.75 s
// (conversations) at 100M events. A full build writes one row per key; each increment
// appends one per key its new events name, so a key's rows together cover all of its
// events (stored events never change: retention's rewrites rebuild in full). ts is a
// required column: every event has a time.
func spanStatements() []string {
	return []string{
		`CREATE TABLE {g}.span_msg AS
		SELECT h, min(ts) AS lo, max(ts) AS hi FROM (
			SELECT mh AS h, ts FROM {g}.ev WHERE mh <> ` + nullHash + ` AND {part:mh}
			UNION ALL SELECT rh, ts FROM {g}.ev WHERE rh <> ` + nullHash + ` AND {part:rh})
		GROUP BY h`,
		`CREATE TABLE {g}.span_conv AS
		SELECT vh AS h, min(ts) AS lo, max(ts) AS hi FROM {g}.ev WHERE vh <> ` + nullHash + ` AND {part:vh}
		GROUP BY vh`,
	}
}

// spanAppends add the spans of the new events' keys (spanStatements), in the increment's
// transaction.
var spanAppends = []string{
	`INSERT INTO {g}.span_msg SELECT h, min(ts), max(ts) FROM (
		SELECT mh AS h, ts FROM temp.inc_d UNION ALL SELECT rh, ts FROM temp.inc_d)
	WHERE h <> ` + nullHash + ` GROUP BY h`,
	`INSERT INTO {g}.span_conv SELECT vh, min(ts), max(ts) FROM temp.inc_d WHERE vh <> ` + nullHash + ` GROUP BY vh`,
}

// nullHash is hash(NULL), a value: key hashes equal to it are left out of key lists (a
// real key with that very hash would be missed; odds ~1 in 10^19).
const nullHash = "hash(CAST(NULL AS VARCHAR))"

// maxSpanRuns bounds the time runs one key lookup scans (keySpanRuns).
const maxSpanRuns = 16

// minSpanGap is the shortest gap between two runs worth a scan of its own: a row group
// of ev holds ~2.6 hours of events at 100M events over 90 days.
const minSpanGap = time.Hour

// keySpanRuns reads the spans (lo, hi) the query returns and gives the time conditions on
// ev that cover them: disjoint runs, spans closer than minSpanGap joined, at most
// maxSpanRuns (the closest joined first). None: no stored event names the keys.
func keySpanRuns(ctx context.Context, conn *sql.Conn, query string) ([]string, error) {
	start := time.Now()
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("update facts: %w", err)
	}
	defer rows.Close()
	var spans [][2]time.Time
	for rows.Next() {
		var s [2]time.Time
		if err := rows.Scan(&s[0], &s[1]); err != nil {
			return nil, fmt.Errorf("update facts: %w", err)
		}
		spans = append(spans, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("update facts: %w", err)
	}
	// Logged as a step: the lookup scans every key's span (span_msg: ~200 ms at 100M events).
	log.DefaultLogger.Debug("increment step", "statement", stepName(query), "took", time.Since(start), "rows", len(spans))
	runs := spanRuns(spans)
	conds := make([]string, len(runs))
	for i, r := range runs {
		conds[i] = fmt.Sprintf("ev.ts >= %s AND ev.ts <= %s", sqlTime(r[0]), sqlTime(r[1]))
	}
	return conds, nil
}

// spanRuns merges closed time spans into disjoint runs covering them (keySpanRuns).
func spanRuns(spans [][2]time.Time) [][2]time.Time {
	slices.SortFunc(spans, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var runs [][2]time.Time
	for _, s := range spans {
		if n := len(runs); n > 0 && s[0].Sub(runs[n-1][1]) < minSpanGap {
			if s[1].After(runs[n-1][1]) {
				runs[n-1][1] = s[1]
			}
			continue
		}
		runs = append(runs, s)
	}
	return joinClosest(runs, maxSpanRuns,
		func(a, b [2]time.Time) int64 { return int64(b[0].Sub(a[1])) },
		func(a, b [2]time.Time) [2]time.Time { return [2]time.Time{a[0], b[1]} })
}

// joinClosest joins neighbouring runs (join) across the smallest gap (gap between a run
// and the next) until at most max are left.
func joinClosest[T any](runs []T, max int, gap func(a, b T) int64, join func(a, b T) T) []T {
	for len(runs) > max {
		best := 1
		for i := 2; i < len(runs); i++ {
			if gap(runs[i-1], runs[i]) < gap(runs[best-1], runs[best]) {
				best = i
			}
		}
		runs[best-1] = join(runs[best-1], runs[best])
		runs = append(runs[:best], runs[best+1:]...)
	}
	return runs
}

// contactRead gives the statements that create temporary table name from cols of the
// stored events within bound (a condition on ev) of the contacts in table windows (h, a
// contact's hash; lo and hi, its span, NULL for no end). They find the rows by contact
// and time first (name0: their row ids), then read cols of those rows only, in the
// vectors (2 048 rows) that hold one: the join hands the scan their row ids as a filter
// (incrementSettings). A scan reading cols beside the contact and time decoded them for
// every event in bound: at 100M events, sender in pass 1 cost ~77 ms that way (178 ms
// instead of 101; now ~114), and pass 3 takes ~189 ms instead of ~214 (docs/BENCHMARKS.md,
// twenty-eighth session).
func contactRead(name, cols, windows, bound string) []string {
	return []string{
		fmt.Sprintf(`CREATE TEMP TABLE %[1]s0 AS
			SELECT ev.rowid AS r FROM {g}.ev AS ev JOIN %[2]s AS w ON w.h = ev.ch
			WHERE %[3]s AND (w.lo IS NULL OR ev.ts >= w.lo) AND (w.hi IS NULL OR ev.ts <= w.hi)`, name, windows, bound),
		fmt.Sprintf(`CREATE TEMP TABLE %[1]s AS
			SELECT %[2]s FROM {g}.ev AS ev WHERE %[3]s AND rowid IN (SELECT r FROM temp.%[1]s0)`, name, cols, bound),
	}
}

// spanScan reads cols of the stored events within the runs (keySpanRuns), one branch per
// run; runs are disjoint, so no row comes twice. Callers filter its rows by key above
// it, never in each branch: every IN (SELECT ...) is a hash join whose table takes ~4 MB
// however few keys it holds (DuckDB partitions a join's build side), and a statement
// builds all its joins before it probes any. With the filters in each of 16 branches,
// pass 2 held 32 joins at once and ran out of a 128 MB memory_limit at 100M events.
func spanScan(cols string, runs []string) string {
	if len(runs) == 0 {
		return "SELECT " + cols + " FROM {g}.ev AS ev WHERE false"
	}
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = "SELECT " + cols + " FROM {g}.ev AS ev WHERE " + r
	}
	return strings.Join(parts, "\n\t\t\tUNION ALL ")
}

// incrementDB is the in-memory database, attached to a serving instance, that holds an
// increment's recomputed facts (scratchSchema) until they replace the stored rows. In the
// facts file they were written to its write-ahead log and dropped again: half of the log
// an increment wrote at 10M events (1.3 of 2.5 MB), so the checkpoint, due once the log
// holds 16 MB then (checkpointIfDue), came twice as often, and every statement creating one
// synced the log to disk.
const incrementDB = "bt_increment"

// scratchSchema is the schema in incrementDB of the increments of the facts in schema gs.
func scratchSchema(gs string) string { return incrementDB + "." + gs + "_inc" }

// dropScratch drops an increment's scratch tables (temp.inc_*).
func dropScratch(conn *sql.Conn) {
	ctx := context.Background()
	rows, err := conn.QueryContext(ctx, `SELECT table_name FROM duckdb_tables() WHERE database_name = 'temp' AND starts_with(table_name, 'inc_')`)
	if err != nil {
		return
	}
	var names []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			names = append(names, n)
		}
	}
	rows.Close()
	for _, n := range names {
		_, _ = conn.ExecContext(ctx, `DROP TABLE IF EXISTS temp."`+n+`"`)
	}
}

// maxIncrementMemoryRetries is how many looks in a row retry an increment that ran out of
// memoryLimitMB before a full build (in a process of its own, with buildMemoryLimitMB)
// takes the new segments instead.
const maxIncrementMemoryRetries = 3

// errRetryIncrement: the increment was rolled back and the next look tries it again.
var errRetryIncrement = errors.New("increment retried at the next look")

// incrementFault, when set (tests), runs before each statement of an increment, and its
// error fails the increment there.
var incrementFault atomic.Pointer[func(stmt string) error]

// incrementSteps, when set (tests), is told each statement of an increment that ran and
// the rows it changed.
var incrementSteps atomic.Pointer[func(stmt string, rows int64)]

// tryIncrement updates old in place when files are old's plus appended ones, and returns
// the generation it makes of it for the caller to serve; nil when a full build must run
// instead. follow says whether old can go on taking increments while that build runs: not
// after a failed one. allowStale, while such a build runs, also accepts a store that lost
// some of old's events to retention (listingChange); the result is then stale, and only
// serves until a full build replaces it. An increment that ran out of memory returns
// errRetryIncrement, and the next look tries it again.
func (e *Engine) tryIncrement(ctx context.Context, old *generation, files []store.Segment, version string, allowStale bool) (next *generation, follow bool, err error) {
	if old == nil || e.opts.NoIncremental || e.opts.Source.Kind != store.KindDir {
		return nil, false, nil
	}
	if !allowStale && float64(old.added) > maxIncrementalShare*float64(max(old.full, 1)) {
		return nil, true, nil
	}
	if e.roomyRetry && old == e.cur.Load() {
		// The last attempt ran out of memoryLimitMB, with nothing else running beside it
		// at times (seen at 100M events with 128 MB): this one runs on an instance with
		// twice that, which goes back to the limit once it is served (checkpointIfDue).
		e.roomyRetry = false
		if old = e.reopen(old, 2*e.opts.MemoryLimitMB); old == nil {
			return nil, false, errors.New("the facts could not be opened again to retry an increment with more memory")
		}
	}
	conn, release, err := e.incrementConn(ctx, old.db)
	if err != nil {
		return nil, false, err
	}
	defer release()
	newFiles, base, merged, ok, err := listingChange(ctx, conn, old, files, false)
	stale := old.stale
	if err == nil && !ok && allowStale {
		newFiles, base, merged, ok, err = listingChange(ctx, conn, old, files, true)
		stale = true
	}
	if err != nil || !ok {
		return nil, true, err // an error: a segment gone since the listing; the caller lists again
	}
	if len(newFiles) == 0 {
		// Compaction merged segments of the snapshot (same events, new file names), or
		// retention removed some of them while a full build runs.
		g := *old
		g.files, g.version, g.base, g.merged, g.stale = files, version, base, merged, stale
		g.stats.Files, g.stats.Version = len(files), version
		e.keep(ctx, &g)
		return &g, true, nil
	}
	// The generation the increment makes: its file records it in the increment's own
	// transaction (kept.go), so a restart never takes the same segments twice.
	incremented := func(added int64, span [2]sql.NullTime) *generation {
		g := &generation{schema: old.schema, db: old.db, stmts: old.stmts, path: old.path, version: version, inUse: old.inUse,
			files: files, base: base, merged: merged, nextFile: old.nextFile + len(newFiles), full: old.full, added: old.added + added, stale: stale}
		// The statistics follow from the old ones and the added events' (a scan of every
		// event's time costs ~0.4 s at 100M events).
		g.stats = old.stats
		g.stats.Events += added
		if span[0].Valid && (g.stats.MinTS.IsZero() || span[0].Time.Before(g.stats.MinTS)) {
			g.stats.MinTS = span[0].Time
		}
		if span[1].Valid && span[1].Time.After(g.stats.MaxTS) {
			g.stats.MaxTS = span[1].Time
		}
		g.stats.Files, g.stats.Version, g.stats.BuiltAt = len(files), version, time.Now()
		g.stats.Increments = old.stats.Increments + 1
		return g
	}
	var g *generation
	added, span, err := e.applyIncrement(ctx, conn, old, newFiles, old.nextFile, func(added int64, span [2]sql.NullTime) string {
		g = incremented(added, span)
		return e.keptStatement(g)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, err
		}
		if store.IsSegmentGone(err) {
			// Retired by compaction since the listing: the caller lists again (a full
			// build here would cost minutes to hours on a large store).
			return nil, true, err
		}
		if isOutOfMemory(err) && e.incrementMemoryFailures < maxIncrementMemoryRetries {
			// Rolled back. The queries running beside it may have held part of
			// memoryLimitMB (seen at 10M with a 128 MB limit while a dashboard refreshed),
			// or it needs more by itself: the next look tries it again with twice the
			// limit, where a full build would take minutes to hours.
			e.incrementMemoryFailures++
			e.roomyRetry = old == e.cur.Load()
			log.DefaultLogger.Warn("applying new segments ran out of memoryLimitMB; trying again at the next look",
				"memoryLimitMB", e.opts.MemoryLimitMB, "attempt", e.incrementMemoryFailures, "error", firstLine{err})
			return nil, true, errRetryIncrement
		}
		// Rolled back: a full build decides (and reports a broken segment).
		e.incrementMemoryFailures = 0
		log.DefaultLogger.Warn("incremental update failed; rebuilding the facts in full", "error", err)
		return nil, false, nil
	}
	e.incrementMemoryFailures = 0
	if g == nil {
		// Every new event was a duplicate: nothing was written but the listing.
		g = incremented(added, span)
		e.keep(ctx, g)
	}
	return g, true, nil
}

// applyIncrement adds the events of files (arrival ranks first, first+1, ... in arrival
// order) to generation g in place. Before it commits, it runs the statement record gives
// for the events added (none: nothing is written when every new event is a duplicate).
// It returns how many events were added and their earliest and latest times.
func (e *Engine) applyIncrement(ctx context.Context, conn *sql.Conn, g *generation, files []store.Segment, first int,
	record func(added int64, span [2]sql.NullTime) string) (added int64, span [2]sql.NullTime, err error) {
	rel, err := segmentsRelation(ctx, conn, files, first)
	if err != nil {
		return 0, span, err
	}
	inTx := false
	step := "" // the statement running, for the log of one that ran out of memory
	defer func() {
		if err != nil && isOutOfMemory(err) {
			log.DefaultLogger.Warn("increment ran out of memoryLimitMB", "statement", stepName(step), "duckdb memory", memoryByTag(g.db))
		}
		if err != nil && inTx {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
		_, _ = conn.ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+scratchSchema(g.schema)+" CASCADE")
		dropScratch(conn)
	}()
	gs := g.schema
	inc := scratchSchema(gs)
	if _, err = conn.ExecContext(ctx, "ATTACH IF NOT EXISTS ':memory:' AS "+incrementDB); err != nil {
		return 0, span, fmt.Errorf("update facts: %w", err)
	}
	cols := store.ColumnList()
	names := strings.NewReplacer("{g}", gs, "{inc}", inc)
	run := func(stmts ...string) error {
		for _, s := range stmts {
			s = names.Replace(s)
			if f := incrementFault.Load(); f != nil {
				if err := (*f)(s); err != nil {
					return fmt.Errorf("update facts: %w", err)
				}
			}
			start := time.Now()
			step = s
			res, err := conn.ExecContext(ctx, s)
			if err != nil {
				return fmt.Errorf("update facts: %w", err)
			}
			rows, _ := res.RowsAffected()
			if f := incrementSteps.Load(); f != nil {
				(*f)(s, rows)
			}
			log.DefaultLogger.Debug("increment step", "statement", stepName(s), "took", time.Since(start), "rows", rows)
		}
		return nil
	}
	// The new events: first arrival wins, against the snapshot and within the new files.
	// Stored events with the same id are found by the id's hash (one integer column), then
	// confirmed by the id.
	err = run(
		fmt.Sprintf(`CREATE TEMP TABLE inc_r AS
			SELECT %[1]s, CAST(_f AS BIGINT) * 1099511627776 + CAST(_r AS BIGINT) AS arr, `+keyHashes+` FROM (%[2]s)`, cols, rel),
		`CREATE TEMP TABLE inc_seen AS
			SELECT event_id FROM {g}.ev WHERE rowid IN (SELECT rowid FROM {g}.ev WHERE eh IN (SELECT eh FROM temp.inc_r))`,
		`CREATE TEMP TABLE inc_d AS
			SELECT * FROM temp.inc_r AS r
			WHERE NOT EXISTS (SELECT 1 FROM temp.inc_seen AS s WHERE s.event_id = r.event_id)
			QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY arr) = 1`,
	)
	if err != nil {
		return 0, span, err
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*), min(ts), max(ts) FROM temp.inc_d").Scan(&added, &span[0], &span[1]); err != nil {
		return 0, span, err
	}
	if added == 0 {
		return 0, span, nil
	}
	// Everything up to the transaction below only reads the snapshot and writes scratch
	// tables. The stored events are found in passes over integer key hashes, in the order
	// the keys depend on each other; each pass keeps the hashes, types and times of the
	// rows it finds, which is all the next one needs. Only then are the rows' string and
	// other columns read, once: reading any string column of the stored events costs a
	// scan of it however few rows are wanted. A hash collision only adds rows to
	// recompute. NULL keys are left out of the key lists: hash(NULL) is a value (nul
	// below), and a real key with that very hash would be missed (odds ~1 in 10^19).
	//
	// Keys named outright (messages, conversations) are looked up over all events. Rows
	// tied to the new events only through their contact are bounded in time: last-touch
	// credit joins a contact's event to its campaign messages at most 7 days earlier
	// (SPEC section 5), so a new event at t can move credit only between the contact's
	// messages sent in [t-7d, t+7d] and change only its events in that span, and those
	// rows are recomputed from the contact's events in [t-14d, t+14d]. The bounds are also
	// written as constants, so the scans skip every row group outside them (ev is in
	// arrival order, which follows time closely). The exception is a contact's first
	// inbound message: stored on its received rows (f_evt.first_recv_ts), it changes all
	// of them when an earlier one arrives. They all lie at or after the first inbound
	// message stored so far, so such a contact's events are read from 7 days before that
	// on (reading such contacts from the start made an increment at 100M events take
	// 50-80 s instead of ~15).
	const nul = nullHash
	const status = "('sent', 'delivered', 'read', 'failed')"
	const near = "INTERVAL 7 DAY"
	err = run(
		// Messages the new events name.
		`CREATE TEMP TABLE inc_m0 AS
			SELECT message_id FROM temp.inc_d WHERE message_id IS NOT NULL
			UNION SELECT reply_to FROM temp.inc_d WHERE reply_to IS NOT NULL`,
		`CREATE TEMP TABLE inc_hm0 AS SELECT DISTINCT hash(message_id) AS h FROM temp.inc_m0`,
		// The contacts of the new events that can move last-touch credit, with the spans
		// their credit can reach: campaign sends (new candidates: SPEC section 5) and
		// events credited by last touch. Any other event changes only the rows of the
		// message it names (passes 2 and 3 read those with the message's contact), its own
		// and its conversation's: statuses carry their contact when they come through the
		// webhook receiver, half of such a store's events, and reading their contacts'
		// three weeks made an increment at 10M events read 50 % more stored rows
		// (docs/BENCHMARKS.md, twenty-seventh and twenty-eighth sessions).
		`CREATE TEMP TABLE inc_wd AS
			SELECT ch AS h, min(ts) - `+near+` AS lo, max(ts) + `+near+` AS hi
			FROM temp.inc_d
			WHERE ch <> `+nul+` AND ((type = 'sent' AND sender = 'campaign') OR (type IN `+creditedTypes+` AND `+explicitCredit+` IS NULL))
			GROUP BY ch`,
	)
	if err == nil {
		// Pass 1: the events of those contacts within those spans. Affected messages: the
		// named ones, and the campaign messages among these events (a new send or reply
		// can move last-touch credit between them; other messages are credited only
		// explicitly).
		pass1 := contactRead("inc_b", "rowid AS r, mh, type = 'sent' AND sender = 'campaign' AS cand, type NOT IN "+status+" AS fe", "temp.inc_wd",
			fmt.Sprintf("ev.ts >= %s - "+near+" AND ev.ts <= %s + "+near, sqlTime(span[0].Time), sqlTime(span[1].Time)))
		err = run(append(pass1, `CREATE TEMP TABLE inc_hm AS
			SELECT DISTINCT h FROM (SELECT h FROM temp.inc_hm0 UNION ALL SELECT mh FROM temp.inc_b WHERE cand)
			WHERE h <> `+nul)...)
	}
	if err != nil {
		return 0, span, err
	}
	// Pass 2 reads only the times the affected messages' events lie at (spanStatements).
	msgRuns, err := keySpanRuns(ctx, conn, names.Replace(`SELECT lo, hi FROM {g}.span_msg WHERE h IN (SELECT h FROM temp.inc_hm)`))
	if err != nil {
		return 0, span, err
	}
	err = run(
		// Pass 2: events naming an affected message. Affected conversations: the new
		// events', and those of the events naming the new events' messages (inc_a).
		// cand: a campaign send (a candidate for last-touch credit); lt: an event credited
		// by last touch (explicitCredit is NULL: no reply_to, nor a message_id on a block,
		// opt-out or report; their hashes equal hash(NULL)), which needs its contact's
		// candidates. A false positive (a hash collision) only widens what pass 3 reads.
		`CREATE TEMP TABLE inc_cm AS
			SELECT r, mh, rh, ch, vh, ts, type NOT IN `+status+` AS fe,
			       type = 'sent' AND sender = 'campaign' AS cand,
			       type IN `+creditedTypes+` AND rh = `+nul+` AND (type NOT IN `+aboutTypes+` OR mh = `+nul+`) AS lt
			FROM (`+spanScan("rowid AS r, mh, rh, ch, vh, ts, type, sender", msgRuns)+`)
			WHERE mh IN (SELECT h FROM temp.inc_hm) OR rh IN (SELECT h FROM temp.inc_hm)`,
		`CREATE TEMP TABLE inc_a AS
			SELECT r, vh FROM temp.inc_cm WHERE mh IN (SELECT h FROM temp.inc_hm0) OR rh IN (SELECT h FROM temp.inc_hm0)`,
		`CREATE TEMP TABLE inc_hv AS
			SELECT DISTINCT h FROM (SELECT vh AS h FROM temp.inc_a UNION ALL SELECT vh FROM temp.inc_d) WHERE h <> `+nul,
		// Contacts whose first inbound message moves earlier: all their received rows
		// change, each at or after the first inbound message stored so far (old).
		`CREATE TEMP TABLE inc_hrc AS
			SELECT hash(d.contact_id) AS h, min(r.first_recv_ts) AS old
			FROM (SELECT contact_id, min(ts) AS ts FROM temp.inc_d WHERE type = 'received' AND contact_id IS NOT NULL GROUP BY 1) AS d
			JOIN {g}.recv AS r ON r.contact_id = d.contact_id
			WHERE d.ts < r.first_recv_ts
			GROUP BY 1`,
		// Affected events (f_evt rows, fe): pass 1's, pass 2's, the new ones, and the
		// received rows of inc_hrc's contacts. The events those rows depend on, per contact
		// and span: the new events' contacts within reach (inc_wd); the candidates for
		// credit of an affected event credited by last touch (its contact's messages in the
		// 7 days before it); an affected campaign message's events that may credit it by
		// last touch, with their candidates (its contact's events within 7 days either side
		// of its send); inc_hrc's contacts from 7 days before their old first inbound
		// message on (their received rows' candidates). Other affected events and messages
		// need no contact's events: explicit credit names its message, which pass 2 read.
		`CREATE TEMP TABLE inc_w AS
			SELECT h, CASE WHEN bool_or(lo IS NULL) THEN NULL ELSE min(lo) END AS lo,
			       CASE WHEN bool_or(hi IS NULL) THEN NULL ELSE max(hi) END AS hi
			FROM (
				SELECT h, lo - `+near+` AS lo, hi + `+near+` AS hi FROM temp.inc_wd
				UNION ALL SELECT ch, ts - `+near+`, ts FROM temp.inc_cm WHERE lt
				UNION ALL SELECT ch, ts - `+near+`, ts + `+near+` FROM temp.inc_cm WHERE cand AND mh IN (SELECT h FROM temp.inc_hm)
				UNION ALL SELECT h, old - `+near+`, NULL FROM temp.inc_hrc)
			WHERE h <> `+nul+`
			GROUP BY h`,
	)
	if err != nil {
		return 0, span, err
	}
	var lo sql.NullTime
	var whole bool
	if err := conn.QueryRowContext(ctx, "SELECT min(lo), coalesce(bool_or(lo IS NULL), false) FROM temp.inc_w").Scan(&lo, &whole); err != nil {
		return 0, span, fmt.Errorf("update facts: %w", err)
	}
	bound := "true"
	if lo.Valid && !whole {
		bound = "ev.ts >= " + sqlTime(lo.Time)
	}
	convRuns, err := keySpanRuns(ctx, conn, names.Replace(`SELECT lo, hi FROM {g}.span_conv WHERE h IN (SELECT h FROM temp.inc_hv)`))
	if err != nil {
		return 0, span, err
	}
	// Pass 3: those events (found as in pass 1), the events of affected conversations (at
	// their spans' times), and pass 2's, with the hashes of the messages they name.
	err = run(contactRead("inc_wr", "rowid AS r, mh, rh, ts", "temp.inc_w", bound)...)
	if err != nil {
		return 0, span, err
	}
	err = run(
		`CREATE TEMP TABLE inc_rows AS
			SELECT r, mh, rh, ts FROM temp.inc_wr
			UNION SELECT r, mh, rh, ts FROM (`+spanScan("rowid AS r, mh, rh, vh, ts", convRuns)+`) WHERE vh IN (SELECT h FROM temp.inc_hv)
			UNION SELECT r, mh, rh, ts FROM temp.inc_cm`,
		// Pass 4: the sent rows of every message those events and the new ones name.
		`CREATE TEMP TABLE inc_hop AS
			SELECT DISTINCT h FROM (
				SELECT mh AS h FROM temp.inc_rows UNION ALL SELECT rh FROM temp.inc_rows
				UNION ALL SELECT mh FROM temp.inc_d UNION ALL SELECT rh FROM temp.inc_d)
			WHERE h <> `+nul,
		// Of a message's sent rows the facts use the first in arrival order (msg, facts.go),
		// whose time f_msg holds (send_ts) for every message with a sent row: the scan of ev
		// then skips the row groups without one of those times (a scan of every event's
		// hash took 0.8-1.0 s at 100M events).
		`CREATE TEMP TABLE inc_hopt AS
			SELECT DISTINCT send_ts AS ts FROM {g}.f_msg WHERE kh IN (SELECT h FROM temp.inc_hop)`,
		`CREATE TEMP TABLE inc_hopr AS
			SELECT rowid AS r, ts FROM {g}.ev
			WHERE ts IN (SELECT ts FROM temp.inc_hopt) AND mh IN (SELECT h FROM temp.inc_hop) AND type = 'sent'`,
		`CREATE TEMP TABLE inc_pick AS SELECT r, ts FROM temp.inc_rows UNION SELECT r, ts FROM temp.inc_hopr`,
	)
	if err != nil {
		return 0, span, err
	}
	// The rows, read once (_r: the stored row's id). Every row of passes 1 and 2 is among
	// them: pass 2's are pass 3's, pass 1's lie in their contact's span of inc_w. Each run
	// of row groups holding picked rows is read with constant row id bounds: the scan then
	// skips the row groups between runs, where one semi-join would read every column of
	// every row group between the first picked row and the last. Within a run, the scan
	// skips the vectors (2 048 rows) that hold no picked row: the join hands it the run's
	// row ids as a filter (incrementSettings). Each run also bounds the times of its rows:
	// DuckDB tests a row-id bound on every vector of the table, and a time bound on each
	// row group's zone map first (a run of one row group read with both at 100M events:
	// 10 ms, against 47 ms with row ids alone).
	runs, err := readRuns(ctx, conn, "temp.inc_pick")
	if err != nil {
		return 0, span, err
	}
	// The new events first; then the runs, a few per statement: each run's join holds
	// ~4 MB (spanScan), and 32 of them in one statement would need 128 MB at once.
	//
	// The key hashes are computed again rather than read: the read decodes a vector of
	// every column it reads for each picked row (~2 200 rows, most in vectors of their
	// own), and four of the five hashes are 64-bit random values stored uncompressed.
	// hash() gives the stored values (kept facts built by another DuckDB version are
	// rebuilt: kept.go). Measured at 100M events: docs/BENCHMARKS.md, twenty-seventh
	// session.
	reads := []string{`CREATE TEMP TABLE inc_sub AS SELECT CAST(NULL AS BIGINT) AS _r, * FROM temp.inc_d`}
	for batch := range slices.Chunk(runs, readRunsPerStatement) {
		parts := make([]string, len(batch))
		for i, r := range batch {
			parts[i] = fmt.Sprintf(`SELECT rowid AS _r, %[5]s, arr, `+keyHashes+` FROM {g}.ev
			WHERE rowid >= %[1]d AND rowid < %[2]d AND ts >= %[3]s AND ts <= %[4]s
			AND rowid IN (SELECT r FROM temp.inc_pick WHERE r >= %[1]d AND r < %[2]d)`, r.rows[0], r.rows[1], sqlTime(r.ts[0]), sqlTime(r.ts[1]), cols)
		}
		reads = append(reads, `INSERT INTO temp.inc_sub `+strings.Join(parts, "\n\t\t\tUNION ALL "))
	}
	if err := run(reads...); err != nil {
		return 0, span, err
	}
	err = run(
		// The keys of the fact rows to replace.
		`CREATE TEMP TABLE inc_m AS
			SELECT message_id FROM temp.inc_m0
			UNION SELECT message_id FROM temp.inc_sub WHERE _r IN (SELECT r FROM temp.inc_b WHERE cand)`,
		`CREATE TEMP TABLE inc_e AS
			SELECT event_id FROM temp.inc_sub
			WHERE _r IN (SELECT r FROM temp.inc_b WHERE fe UNION SELECT r FROM temp.inc_cm WHERE fe)
			   OR (_r IS NOT NULL AND type = 'received' AND ch IN (SELECT h FROM temp.inc_hrc))
			UNION ALL SELECT event_id FROM temp.inc_d WHERE type NOT IN `+status,
		`CREATE TEMP TABLE inc_v AS
			SELECT DISTINCT conversation_id FROM (
				SELECT conversation_id FROM temp.inc_sub WHERE _r IN (SELECT r FROM temp.inc_a)
				UNION ALL SELECT conversation_id FROM temp.inc_d)
			WHERE conversation_id IS NOT NULL`,
		`CREATE SCHEMA {inc}`,
		`CREATE TABLE {inc}.ev AS SELECT * EXCLUDE (_r) FROM temp.inc_sub ORDER BY arr`,
	)
	if err != nil {
		return 0, span, err
	}
	// Recompute the facts of the affected rows, from their events only.
	for _, stmt := range factStatements() {
		switch {
		case strings.Contains(stmt, "{g}.recv AS\n"):
			// The first inbound message of each contact of the affected events, over all events.
			stmt = `CREATE TABLE {g}.recv AS SELECT contact_id, min(first_recv_ts) AS first_recv_ts FROM (
				SELECT * FROM ` + gs + `.recv WHERE contact_id IN (SELECT contact_id FROM {g}.ev)
				UNION ALL SELECT contact_id, ts FROM temp.inc_d WHERE type = 'received' AND contact_id IS NOT NULL
			) GROUP BY contact_id`
		case strings.Contains(stmt, "{g}.f_quality AS"):
			continue
		}
		start := time.Now()
		// The intermediate tables ({t}) too go to the increment's scratch schema.
		stmt = strings.NewReplacer("{g}", inc, "{t}", inc).Replace(stmt)
		step = stmt
		if _, err := conn.ExecContext(ctx, partitioned(stmt, 0, 1)); err != nil {
			return 0, span, fmt.Errorf("update facts: %w", err)
		}
		log.DefaultLogger.Debug("increment step", "statement", stepName(stmt), "took", time.Since(start))
	}
	// One transaction: add the events, swap the affected rows (noting the hours they leave
	// or enter), update those hours' rollups.
	if _, err = conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return 0, span, err
	}
	inTx = true
	err = run(
		`INSERT INTO {g}.ev SELECT * FROM temp.inc_d ORDER BY arr`,
		`UPDATE {g}.recv AS r SET first_recv_ts = n.first_recv_ts FROM {inc}.recv AS n
			WHERE r.contact_id = n.contact_id AND n.first_recv_ts < r.first_recv_ts`,
		// The contacts already there are looked up among the increment's few: a NOT IN
		// over every stored contact holds them all in a hash table (~1.5M ids at 100M
		// events, more than a 128 MB memoryLimitMB).
		`INSERT INTO {g}.recv SELECT * FROM {inc}.recv WHERE contact_id NOT IN (
			SELECT r.contact_id FROM {g}.recv AS r WHERE r.contact_id IN (SELECT contact_id FROM {inc}.recv))`,
	)
	if err == nil {
		err = run(spanAppends...)
	}
	if err != nil {
		return 0, span, err
	}
	// The fact rows to replace are those of the affected keys, found by the keys' two
	// hashes (kh, kx: 128 bits together, stored on every fact row) on both sides: matching
	// the string keys would read those string columns of every row (~1 s for f_evt at 10M
	// events), and a DELETE ... RETURNING reads every column of every row whatever it
	// returns, so the old rows are found first, then deleted by row id. _delivery rows hash
	// their message id apart from event ids ('d', 'dx').
	err = run(
		`CREATE TEMP TABLE inc_km AS
			SELECT DISTINCT hash(message_id) AS h, hash(message_id, 'kx') AS x FROM temp.inc_m WHERE message_id IS NOT NULL`,
		`CREATE TEMP TABLE inc_ke AS
			SELECT DISTINCT hash(event_id) AS h, hash(event_id, 'kx') AS x FROM temp.inc_e WHERE event_id IS NOT NULL
			UNION SELECT DISTINCT hash(message_id, 'd'), hash(message_id, 'dx') FROM temp.inc_m WHERE message_id IS NOT NULL`,
		`CREATE TEMP TABLE inc_kv AS
			SELECT DISTINCT hash(conversation_id) AS h, hash(conversation_id, 'kx') AS x FROM temp.inc_v`,
	)
	if err != nil {
		return 0, span, err
	}
	// Every old row of an affected key sits at the time of one of the stored events read
	// above (a message at its first send, an event at its own time, a delivery at its
	// earliest status or credited click or reply, a conversation at its opening, a turn
	// at its first message), so the facts are searched from the earliest of them on: a
	// constant bound that skips older row groups.
	var since sql.NullTime
	var read int64
	if err := conn.QueryRowContext(ctx, "SELECT min(ts), count(*) FROM temp.inc_sub WHERE _r IS NOT NULL").Scan(&since, &read); err != nil {
		return 0, span, fmt.Errorf("update facts: %w", err)
	}
	log.DefaultLogger.Debug("increment reads", "stored rows", read, "read runs", len(runs), "earliest", since.Time)
	keyPairs := map[Fact]string{FactMessage: "temp.inc_km", FactEvent: "temp.inc_ke", FactConversation: "temp.inc_kv", FactTurn: "temp.inc_kv"}
	for _, f := range rollupFacts {
		t := factTime[f]
		affected := fmt.Sprintf("EXISTS (SELECT 1 FROM %s AS k WHERE k.h = fr.kh AND k.x = fr.kx)", keyPairs[f])
		// The old rows and the recomputed ones are compared, each by its hour and hash (rh,
		// stored): only the rows that differ are deleted or appended, and an hour's
		// rollups depend only on the rows in that hour, so only the hours whose multiset
		// of rows changed are re-aggregated. Most recomputed rows come back
		// unchanged (a contact's earlier messages keep their outcomes), and re-aggregating
		// every hour they sit in would redo most of the store's history. A 64-bit collision
		// between a row and its recomputed version could hide a change (~1 in 10^19).
		//
		// The old rows are found by a join with the (distinct) key pairs, not by EXISTS:
		// DuckDB runs a correlated EXISTS as a delim join, which first collects and groups
		// the hashes of every row in the time bound (f_evt at 100M events: 2.7 s for
		// 12M rows, against 0.2 s joined).
		err = run(
			fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE inc_old AS
				SELECT fr.rowid AS r, date_trunc('hour', fr.%s) AS h, fr.rh FROM {g}.%s AS fr JOIN %s AS k ON k.h = fr.kh AND k.x = fr.kx
				WHERE %s`, t, f, keyPairs[f], oldBound(t, since)),
			fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE inc_new AS
				SELECT fr.rowid AS r, date_trunc('hour', fr.%s) AS h, fr.rh FROM {inc}.%s AS fr WHERE %s`, t, f, affected),
			`CREATE OR REPLACE TEMP TABLE inc_h AS
				SELECT DISTINCT h FROM (
					(SELECT h, rh FROM temp.inc_old EXCEPT ALL SELECT h, rh FROM temp.inc_new)
					UNION ALL (SELECT h, rh FROM temp.inc_new EXCEPT ALL SELECT h, rh FROM temp.inc_old))
				WHERE h IS NOT NULL`,
			// An old row whose recomputed version hashes alike stays, and that version is
			// not appended.
			fmt.Sprintf(`DELETE FROM {g}.%s WHERE rowid IN (%s)`, f, rowsNotAmong("temp.inc_old", "temp.inc_new")),
			fmt.Sprintf(`INSERT INTO {g}.%s SELECT * FROM {inc}.%s WHERE rowid IN (%s) ORDER BY %s`, f, f, rowsNotAmong("temp.inc_new", "temp.inc_old"), t),
		)
		if err != nil {
			return 0, span, err
		}
		changed, err := changedHours(ctx, conn)
		if err != nil {
			return 0, span, err
		}
		runs := hourRuns(changed)
		log.DefaultLogger.Debug("increment rows", "fact", string(f), "changed hours", len(changed), "hour runs", len(runs))
		if e.opts.NoRollups || len(changed) == 0 {
			continue
		}
		// The changed hours' rows of the facts: the runs of consecutive changed hours (often
		// a few runs far apart: this hour and the hours of a contact's older rows), each
		// scanned with constant bounds the facts' zone maps skip by (an OR of the bounds is
		// tested row by row over the whole table), in one UNION ALL under a single
		// aggregate (an aggregate per run side by side outgrew 256 MB at 100M events; a
		// statement per run cost ~3 ms each). Past maxRollupRuns, one scan bounded by the
		// first and last changed hour.
		first, last := sqlTime(runs[0][0]), sqlTime(runs[len(runs)-1][1])
		facts, where := "{g}."+string(f), fmt.Sprintf("%[1]s >= %[2]s AND %[1]s < %[3]s AND date_trunc('hour', %[1]s) IN (SELECT h FROM temp.inc_h)", t, first, last)
		if len(runs) <= maxRollupRuns {
			scans := make([]string, len(runs))
			for i, r := range runs {
				scans[i] = fmt.Sprintf("SELECT * FROM {g}.%[1]s WHERE %[2]s >= %[3]s AND %[2]s < %[4]s", f, t, sqlTime(r[0]), sqlTime(r[1]))
			}
			facts, where = "("+strings.Join(scans, " UNION ALL ")+") AS "+string(f), ""
		}
		// The "all" level from those rows into a temporary table (inc_rall), of which
		// only the rows that changed are rewritten (rewriteChanged); the other levels
		// (dimsTable) from it and, for "fine", from the rows again. Most rows of a changed
		// hour come back as they were (1.7 % of r_msg_all's changed per increment at 100M
		// events), and rewriting them all made a checkpoint now and then vacuum the
		// rollups' row groups, ~2 s and ~130 MB more (docs/BENCHMARKS.md, twenty-fourth and
		// twenty-fifth sessions). A table, not a CTE of each statement: computing the level
		// twice would cost its ~125 ms for f_msg at 100M events again, and the table's
		// blocks stand in, until COMMIT, for those of the rows no longer appended.
		dims := dimsTable(f)
		stmts := rewriteChanged(rollupTable(f, "all"), allSelect(f, facts, where), fmt.Sprintf("%s IN (SELECT h FROM temp.inc_h)", t))
		stmts = append(stmts,
			// "fine" rows start within their hour: date_trunc finds them.
			fmt.Sprintf(`DELETE FROM {g}.%[1]s WHERE %[2]s >= %[3]s AND %[2]s < %[4]s AND date_trunc('hour', %[2]s) IN (SELECT h FROM temp.inc_h)`,
				dims, t, first, last),
			fmt.Sprintf(`INSERT INTO {g}.%s %s ORDER BY level, %s`, dims, dimsSelect(f, "temp.inc_rall", facts, where), t))
		if err = run(stmts...); err != nil {
			return 0, span, err
		}
	}
	kept := record(added, span)
	err = run(`INSERT INTO {g}.f_quality ` + qualitySelect("temp.inc_d"))
	if err == nil && kept != "" {
		// Not through run: the record is no template, and its JSON may hold "{g}".
		_, err = conn.ExecContext(ctx, kept)
	}
	if err == nil {
		err = run(`COMMIT`)
	}
	if err == nil {
		inTx = false
		if fi, statErr := os.Stat(g.path + ".wal"); statErr == nil {
			log.DefaultLogger.Debug("increment committed", "wal bytes", fi.Size())
		}
	}
	return added, span, err
}

// rowsNotAmong selects the row ids (r) of the rows of relation rows whose hash (rh) no
// row of relation among has. The rows of a fact or rollup table are distinct (each holds
// its key: a fact's key hashes, a rollup's hour and dimensions), so this compares rows,
// but for a 64-bit collision among an increment's few thousand rows (~1 in 10^12): it
// could drop a recomputed row. Compared as multisets (a row number per hash on both
// sides), the 16 statements using this took ~159 ms per increment at 100M events,
// against ~101 ms (docs/BENCHMARKS.md, twenty-sixth session).
func rowsNotAmong(rows, among string) string {
	return fmt.Sprintf(`SELECT r FROM %s ANTI JOIN (SELECT rh FROM %s) USING (rh)`, rows, among)
}

// rewriteChanged are the statements that make the rows of rollup table table that hold
// where those of query (which has the table's columns, rh last), rewriting only the rows
// that differ: query's rows go into temporary table inc_rall (sorted, though only the
// rows appended from it need the order: inserted unsorted, the in-memory tables grew by
// 23 MB instead of 18 in TestIncrementKeepsNoCopyOfTheRollups, probably each thread's
// blocks of its own),
// the stored rows not among them (by rh) are deleted, and those of them not among the
// rows left are appended. As
// for fact rows, a 64-bit collision between a row and its recomputed version could keep
// the old one (~1 in 10^19).
func rewriteChanged(table, query, where string) []string {
	stored := fmt.Sprintf("(SELECT rowid AS r, rh FROM {g}.%s WHERE %s)", table, where)
	const fresh = "(SELECT rowid AS r, rh FROM temp.inc_rall)"
	return []string{
		fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE inc_rall AS FROM {g}.%s LIMIT 0`, table),
		fmt.Sprintf(`INSERT INTO temp.inc_rall %s ORDER BY 1`, query),
		fmt.Sprintf(`DELETE FROM {g}.%s WHERE rowid IN (%s)`, table, rowsNotAmong(stored, fresh)),
		fmt.Sprintf(`INSERT INTO {g}.%s SELECT * FROM temp.inc_rall WHERE rowid IN (%s) ORDER BY 1`, table, rowsNotAmong(fresh, stored)),
	}
}

// memoryByTag is what holds DuckDB's memory in db's instance by its own count
// (duckdb_memory(): tags holding 1 MB or more, in MB, on disk after the slash): logged
// when an increment runs out of memoryLimitMB, to tell what filled it.
func memoryByTag(db *sql.DB) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()
		WHERE memory_usage_bytes + temporary_storage_bytes >= 1048576 ORDER BY memory_usage_bytes DESC`)
	if err != nil {
		return "unknown: " + firstLine{err}.Error()
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var tag string
		var mem, tmp int64
		if err := rows.Scan(&tag, &mem, &tmp); err != nil {
			return "unknown: " + err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", tag, mem>>20, tmp>>20))
	}
	return strings.Join(parts, ", ")
}

// oldBound is the condition on a fact's time column t that its rows of affected keys meet:
// none when no stored event was read (only new keys are affected).
func oldBound(t string, since sql.NullTime) string {
	if !since.Valid {
		return "false"
	}
	return fmt.Sprintf("fr.%s >= %s", t, sqlTime(since.Time))
}

// rowGroupSize is DuckDB's number of rows per row group: the unit a scan skips.
const rowGroupSize = 122880

// maxReadRuns bounds the row-group runs of an increment's read of stored rows
// (readRuns): the closest runs are merged past it.
const maxReadRuns = 32

// readRunRows is the unit of readRuns: rowGroupSize, smaller in tests (any unit
// gives the same rows; tests get many runs out of small stores).
var readRunRows int64 = rowGroupSize

// readRunsPerStatement bounds the runs one statement of the increment's read takes.
const readRunsPerStatement = 4

// readRun is a run of consecutive row groups to read: row ids [start, end), and the
// earliest and latest time of the rows wanted in it.
type readRun struct {
	rows [2]int64
	ts   [2]time.Time
}

// readRuns returns the runs of consecutive row groups that hold the rows of table (columns
// r, row ids, and ts, their times), at most maxReadRuns.
func readRuns(ctx context.Context, conn *sql.Conn, table string) ([]readRun, error) {
	size := readRunRows
	rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT r // %d AS g, min(ts), max(ts) FROM %s GROUP BY g ORDER BY g", size, table))
	if err != nil {
		return nil, fmt.Errorf("update facts: %w", err)
	}
	defer rows.Close()
	var runs []readRun
	for rows.Next() {
		var g int64
		var lo, hi time.Time
		if err := rows.Scan(&g, &lo, &hi); err != nil {
			return nil, fmt.Errorf("update facts: %w", err)
		}
		r := readRun{rows: [2]int64{g, g + 1}, ts: [2]time.Time{lo, hi}}
		if n := len(runs); n > 0 && runs[n-1].rows[1] == g {
			runs[n-1] = runs[n-1].join(r)
			continue
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("update facts: %w", err)
	}
	runs = joinClosest(runs, maxReadRuns, func(a, b readRun) int64 { return b.rows[0] - a.rows[1] }, readRun.join)
	for i := range runs {
		runs[i].rows[0] *= size
		runs[i].rows[1] *= size
	}
	return runs, nil
}

// join is the run from r's start to next's end.
func (r readRun) join(next readRun) readRun {
	out := readRun{rows: [2]int64{r.rows[0], next.rows[1]}, ts: r.ts}
	if next.ts[0].Before(out.ts[0]) {
		out.ts[0] = next.ts[0]
	}
	if next.ts[1].After(out.ts[1]) {
		out.ts[1] = next.ts[1]
	}
	return out
}

// changedHours reads temp.inc_h, the changed hours, in order.
func changedHours(ctx context.Context, conn *sql.Conn) ([]time.Time, error) {
	rows, err := conn.QueryContext(ctx, "SELECT h FROM temp.inc_h ORDER BY h")
	if err != nil {
		return nil, fmt.Errorf("update facts: %w", err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var h time.Time
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("update facts: %w", err)
		}
		out = append(out, h.UTC())
	}
	return out, rows.Err()
}

// maxRollupRuns bounds the scans of one rollup update (hourRuns); more runs than this are
// read in one scan of their whole span.
const maxRollupRuns = 48

// hourRuns groups sorted whole hours into runs of consecutive hours, each as [start, end).
func hourRuns(hours []time.Time) [][2]time.Time {
	var runs [][2]time.Time
	for _, h := range hours {
		if n := len(runs); n > 0 && runs[n-1][1].Equal(h) {
			runs[n-1][1] = h.Add(time.Hour)
			continue
		}
		runs = append(runs, [2]time.Time{h, h.Add(time.Hour)})
	}
	return runs
}

// sqlTime renders a time as a DuckDB TIMESTAMPTZ literal.
func sqlTime(t time.Time) string {
	return "TIMESTAMPTZ '" + t.UTC().Format("2006-01-02 15:04:05.999999") + "+00'"
}

// stepName is the start of a statement, for the debug log of increment steps.
func stepName(stmt string) string {
	f := strings.Join(strings.Fields(stmt), " ")
	if len(f) > 90 {
		f = f[:90]
	}
	return f
}
