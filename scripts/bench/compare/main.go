// Command compare runs the overview dashboard's KPIs three ways and prints medians and
// ratios as Markdown: the Blue Ticks engine, straightforward DuckDB SQL over a raw events
// table (scripts/bench/raw_duckdb.sql) and, with --psql, the same KPIs in PostgreSQL
// (scripts/bench/raw_postgres.sql, run through psql; the time is psql's \timing of the
// statement, so psql's own start-up is not counted).
//
// Before timing anything it runs every query once on every side (this also warms caches)
// and checks that the answers agree: every row, every metric, equal within 1e-9 relative
// (a bucket or group missing on one side counts as 0 for counts and money, as no value for
// rates and durations, as the engine shows them). A query whose answers differ is named
// with its first differences, left out of the timing, and makes the command exit 1.
//
// Then --rounds rounds run each query on each side in turn (the side that goes first
// rotates), every round on a range shifted by one more millisecond so no cache can answer.
// scripts/bench.sh sets everything up.
//
//	go run ./scripts/bench/compare --store /tmp/bt10m --rounds 5 --psql "host=127.0.0.1 port=54329 user=postgres dbname=bench"
//	go run ./scripts/bench/compare --store DIR --export /tmp/events   # CSV for PostgreSQL's COPY
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// benchQuery is one panel of dashboards/overview.json (variables at All: no filters), as
// the engine gets it, and the name of its raw SQL in raw_duckdb.sql / raw_postgres.sql.
type benchQuery struct {
	name, panel, engine string
}

var benchQueries = []benchQuery{
	{"sent", "Sent", `{"queryType":"timeseries","metrics":["sent"]}`},
	{"delivery_rate", "Delivery rate", `{"queryType":"table","metrics":["delivery_rate"]}`},
	{"read_rate", "Read rate", `{"queryType":"table","metrics":["read_rate"]}`},
	{"click_rate", "Click rate", `{"queryType":"table","metrics":["click_rate"]}`},
	{"conversion_rate", "Conversion rate", `{"queryType":"table","metrics":["conversion_rate"]}`},
	{"revenue", "Revenue", `{"queryType":"timeseries","metrics":["revenue"]}`},
	{"block_rate", "Block rate", `{"queryType":"table","metrics":["block_rate"]}`},
	{"opt_out_rate", "Opt-out rate", `{"queryType":"table","metrics":["opt_out_rate"]}`},
	{"conversations", "Conversations", `{"queryType":"timeseries","metrics":["conversations"]}`},
	{"first_response_p50", "First response (median)", `{"queryType":"table","metrics":["first_response_time_p50"]}`},
	{"status_daily", "Messages by status", `{"queryType":"timeseries","metrics":["sent","delivered","read","failed"],"bucket":"1d"}`},
	{"funnel_daily", "Funnel rates (daily)", `{"queryType":"timeseries","metrics":["delivery_rate","read_rate","click_rate","reply_rate","conversion_rate"],"bucket":"1d"}`},
	{"campaigns", "Campaigns", `{"queryType":"table","metrics":["sent","delivery_rate","read_rate","click_rate","conversion_rate","revenue","block_rate"],"groupBy":["campaign"],"limit":20}`},
}

// Time series without their own bucket get the request's interval: hourly buckets over
// the 7-day range (168 points), which the raw SQL groups by too.
const interval = time.Hour

const relTol = 1e-9

func main() {
	dir := flag.String("store", "", "store directory")
	rounds := flag.Int("rounds", 5, "timed rounds (each runs every query on every side once)")
	psql := flag.String("psql", "", "psql connection string; empty skips PostgreSQL")
	pgTimeout := flag.Duration("pg-timeout", 0, "PostgreSQL statement_timeout per query (0: none); a query stopped by it counts as this long and is reported as a lower bound (\"> N\")")
	days := flag.Int("days", 7, "range length, ending just after the newest event (the dashboard's now-7d)")
	memMB := flag.Int("memory-mb", 0, "engine memory_limit in MB (0: the engine's default)")
	rawDB := flag.String("raw-db", "", "DuckDB file for the raw events table, loaded once and reused while the store is unchanged (empty: in memory)")
	rawMemMB := flag.Int("raw-memory-mb", 0, "raw DuckDB memory_limit in MB (0: DuckDB's default, 80% of RAM)")
	sqlDir := flag.String("sql", "scripts/bench", "directory of raw_duckdb.sql and raw_postgres.sql")
	only := flag.String("only", "", "comma-separated query names to run (default: all)")
	notes := flag.String("notes", "", "file of Markdown lines (set-up facts) to print with the report")
	export := flag.String("export", "", "write the store's events to PREFIX.csv (for PostgreSQL's COPY), print sizes and exit")
	ndjson := flag.Bool("ndjson", false, "with --export, also write PREFIX.ndjson (for the size comparison; ~520 bytes/event)")
	fingerprint := flag.Bool("fingerprint", false, "print the store's fingerprint (its directory and segment names) and exit")
	factsDir := flag.String("facts-dir", "", "keep the engine's facts under this directory, as the plugin does, so a later run on the same store opens them instead of building them in full (empty: built in a temporary directory)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "--store DIR is required")
		os.Exit(2)
	}
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
	}
	if *fingerprint {
		fp, err := storeFingerprint(*dir)
		must(err)
		fmt.Println(fp)
		return
	}
	if *export != "" {
		must(exportEvents(*dir, *export, *ndjson))
		return
	}
	queries, err := selectQueries(*only)
	must(err)
	dq, err := readQueries(filepath.Join(*sqlDir, "raw_duckdb.sql"))
	must(err)
	var pq map[string]string
	if *psql != "" {
		pq, err = readQueries(filepath.Join(*sqlDir, "raw_postgres.sql"))
		must(err)
	}
	for _, q := range queries {
		if dq[q.name] == "" {
			must(fmt.Errorf("raw_duckdb.sql has no query %q", q.name))
		}
		if *psql != "" && pq[q.name] == "" {
			must(fmt.Errorf("raw_postgres.sql has no query %q", q.name))
		}
	}
	ctx := context.Background()
	rep := &report{loadStart: loadAvg(), started: time.Now()}

	// The engine: facts built from the store, as the plugin does.
	src, err := store.OpenSource(*dir)
	must(err)
	e, err := kpi.New(kpi.Options{Source: src, CheckEvery: 1000 * time.Hour, MemoryLimitMB: *memMB, FactsDir: *factsDir})
	must(err)
	defer e.Close()
	start := time.Now()
	must(e.Refresh(ctx))
	st, err := e.Stats(ctx)
	must(err)
	rep.engineBuild = time.Since(start)
	rep.engineKept = st.FullBuilds == 0
	rep.events = st.Events
	fmt.Fprintf(os.Stderr, "engine: snapshot of %d events %s in %s (peak RSS so far %d MB)\n", st.Events, rep.engineHow(), rep.engineBuild.Round(time.Millisecond), peakRSSMB())

	// Raw DuckDB: the same events in a plain table.
	raw, loaded, err := openRaw(*dir, *rawDB, *rawMemMB)
	must(err)
	defer raw.Close()
	rep.rawLoad = loaded
	must(raw.QueryRow("SELECT version()").Scan(&rep.duckdbVersion))
	must(raw.QueryRow("SELECT current_setting('memory_limit')").Scan(&rep.rawMemory))
	must(raw.QueryRow("SELECT count(*) FROM events").Scan(&rep.rawRows))
	if *psql != "" {
		out, err := exec.Command("psql", *psql, "-X", "-At", "-c", "SELECT current_setting('server_version') || ', ' || (SELECT count(*) FROM events) || ' rows, ' || pg_size_pretty(pg_total_relation_size('events'))").CombinedOutput()
		if err != nil {
			must(fmt.Errorf("psql: %v: %s", err, out))
		}
		rep.pgVersion = strings.TrimSpace(string(out))
	}

	to := st.MaxTS.Truncate(time.Second).Add(time.Second)
	from := to.AddDate(0, 0, -*days)
	rep.from, rep.to = from, to
	sides := []string{"engine", "duckdb"}
	if *psql != "" {
		sides = append(sides, "postgres")
	}
	runSide := func(side string, q benchQuery, f, t time.Time) (answer, float64, error) {
		switch side {
		case "engine":
			return runEngine(ctx, e, q, f, t)
		case "duckdb":
			return runDuckDB(raw, bind(dq[q.name], f, t))
		default:
			return runPostgres(*psql, bind(pq[q.name], f, t), *pgTimeout)
		}
	}

	// Check round (untimed, also the warm-up): every side's answer must equal the engine's.
	fmt.Fprintf(os.Stderr, "checking answers over %s .. %s\n", from.Format(time.RFC3339), to.Format(time.RFC3339))
	var good []benchQuery
	for _, q := range queries {
		answers := map[string]answer{}
		ok := true
		for _, side := range sides {
			a, ms, err := runSide(side, q, from, to)
			if errors.Is(err, errTimedOut) {
				rep.unfinished = append(rep.unfinished, fmt.Sprintf("`%s` on %s: not finished within %s, so its answer was not checked", q.name, side, pgTimeout.String()))
				fmt.Fprintf(os.Stderr, "  check %-19s %-8s > %.0f ms (stopped by --pg-timeout)\n", q.name, side, ms)
				continue
			}
			if err != nil {
				rep.failures = append(rep.failures, fmt.Sprintf("`%s` on %s: error: %v", q.name, side, oneLine(err.Error())))
				ok = false
				continue
			}
			answers[side] = a
			fmt.Fprintf(os.Stderr, "  check %-19s %-8s %9.1f ms, %d rows\n", q.name, side, ms, len(a))
		}
		if !ok {
			continue
		}
		for _, side := range sides[1:] {
			if _, ran := answers[side]; !ran {
				continue // stopped by --pg-timeout (recorded above)
			}
			if d := diff(answers["engine"], answers[side]); len(d) > 0 {
				ok = false
				rep.failures = append(rep.failures, fmt.Sprintf("`%s`: %s differs from the engine: %s", q.name, side, strings.Join(d, "; ")))
			}
		}
		if ok {
			good = append(good, q)
			rep.rows = append(rep.rows, len(answers["engine"]))
		}
	}
	for _, f := range rep.failures {
		fmt.Fprintln(os.Stderr, "MISMATCH", f)
	}

	// Timed rounds.
	times := map[string]map[string][]float64{}
	for round := 0; round < *rounds; round++ {
		shift := time.Duration(round+1) * time.Millisecond
		f, t := from.Add(shift), to.Add(shift)
		for qi, q := range good {
			if times[q.name] == nil {
				times[q.name] = map[string][]float64{}
			}
			var line []string
			for k := range sides {
				side := sides[(k+round+qi)%len(sides)]
				_, ms, err := runSide(side, q, f, t)
				stopped := errors.Is(err, errTimedOut)
				if !stopped {
					must(err)
				}
				times[q.name][side] = append(times[q.name][side], ms)
				line = append(line, fmt.Sprintf("%s %s%.1f ms", side, atLeast(stopped), ms))
			}
			fmt.Fprintf(os.Stderr, "round %d/%d %-19s %s\n", round+1, *rounds, q.name, strings.Join(line, ", "))
		}
	}
	rep.loadEnd = loadAvg()
	rep.finished = time.Now()
	rep.pgTimeout = *pgTimeout
	rep.print(os.Stdout, good, sides, times, *rounds, *notes)
	if len(rep.failures) > 0 {
		os.Exit(1)
	}
}

func selectQueries(only string) ([]benchQuery, error) {
	if only == "" {
		return benchQueries, nil
	}
	var out []benchQuery
	for _, name := range strings.Split(only, ",") {
		found := false
		for _, q := range benchQueries {
			if q.name == strings.TrimSpace(name) {
				out = append(out, q)
				found = true
			}
		}
		if !found {
			var names []string
			for _, q := range benchQueries {
				names = append(names, q.name)
			}
			return nil, fmt.Errorf("unknown query %q (known: %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// readQueries reads statements separated by "-- name: X" lines.
func readQueries(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, part := range bytes.Split(b, []byte("-- name: "))[1:] {
		nl := bytes.IndexByte(part, '\n')
		if nl < 0 {
			continue
		}
		out[strings.TrimSpace(string(part[:nl]))] = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(part[nl+1:])), ";"))
	}
	return out, nil
}

func bind(sql string, from, to time.Time) string {
	lit := func(t time.Time) string {
		return "TIMESTAMPTZ '" + t.UTC().Format("2006-01-02 15:04:05.000000") + "+00'"
	}
	return strings.ReplaceAll(strings.ReplaceAll(sql, "$1", lit(from)), "$2", lit(to))
}

// answer is a result normalised for comparison: row key (bucket and group values) ->
// metric id -> value (nil: no value).
type answer map[string]map[string]*float64

func rowKey(t *time.Time, groups map[string]*string) string {
	var parts []string
	if t != nil {
		parts = append(parts, t.UTC().Format("2006-01-02T15:04:05Z"))
	}
	dims := make([]string, 0, len(groups))
	for d := range groups {
		dims = append(dims, d)
	}
	sort.Strings(dims)
	for _, d := range dims {
		v := "∅"
		if groups[d] != nil {
			v = strconv.Quote(*groups[d])
		}
		parts = append(parts, d+"="+v)
	}
	if len(parts) == 0 {
		return "(all)"
	}
	return strings.Join(parts, " ")
}

func runEngine(ctx context.Context, e *kpi.Engine, q benchQuery, from, to time.Time) (answer, float64, error) {
	parsed, err := kpi.ParseQuery([]byte(q.engine))
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	frames, err := e.Run(ctx, kpi.Request{Query: parsed, From: from, To: to, Interval: interval, MaxDataPoints: 1200})
	ms := msSince(start)
	if err != nil {
		return nil, ms, err
	}
	return framesAnswer(frames), ms, nil
}

// framesAnswer reads the engine's frames: a time field, group values from string fields
// (tables) or labels (time series; "(none)" is a missing value), numeric fields by name.
func framesAnswer(frames data.Frames) answer {
	out := answer{}
	for _, f := range frames {
		var tf *data.Field
		var groupFields, metricFields []*data.Field
		for _, fld := range f.Fields {
			switch {
			case fld.Name == "time" && fld.Type().Time():
				tf = fld
			case fld.Type().Numeric():
				metricFields = append(metricFields, fld)
			default:
				groupFields = append(groupFields, fld)
			}
		}
		for r := 0; r < f.Rows(); r++ {
			groups := map[string]*string{}
			for _, g := range groupFields {
				if v, ok := g.ConcreteAt(r); ok {
					s := fmt.Sprint(v)
					groups[g.Name] = &s
				} else {
					groups[g.Name] = nil
				}
			}
			var tp *time.Time
			if tf != nil {
				if v, ok := tf.ConcreteAt(r); ok {
					t := v.(time.Time)
					tp = &t
				}
			}
			for _, m := range metricFields {
				for k, v := range m.Labels {
					if v == kpi.NoneLabel {
						groups[k] = nil
					} else {
						s := v
						groups[k] = &s
					}
				}
				key := rowKey(tp, groups)
				if out[key] == nil {
					out[key] = map[string]*float64{}
				}
				var val *float64
				if v, ok := m.ConcreteAt(r); ok {
					if x, ok := toFloat(v); ok {
						val = &x
					}
				}
				out[key][m.Name] = val
			}
		}
	}
	return out
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	case uint64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// columnsAnswer normalises raw SQL rows: a `time` column, columns named after a dimension
// are groups, the others metrics.
func columnsAnswer(cols []string, rows [][]any) (answer, error) {
	out := answer{}
	for _, row := range rows {
		var tp *time.Time
		groups := map[string]*string{}
		vals := map[string]*float64{}
		for i, c := range cols {
			v := row[i]
			switch {
			case c == "time":
				t, err := toTime(v)
				if err != nil {
					return nil, fmt.Errorf("column time: %w", err)
				}
				tp = &t
			case isDimension(c):
				if v == nil {
					groups[c] = nil
				} else {
					s := fmt.Sprint(v)
					groups[c] = &s
				}
			default:
				if v == nil {
					vals[c] = nil
					continue
				}
				x, ok := toFloat(v)
				if !ok {
					return nil, fmt.Errorf("column %s: %T %v is not a number", c, v, v)
				}
				vals[c] = &x
			}
		}
		key := rowKey(tp, groups)
		if out[key] != nil {
			return nil, fmt.Errorf("two rows for %s", key)
		}
		out[key] = vals
	}
	return out, nil
}

func isDimension(c string) bool {
	_, ok := kpi.LookupDimension(c)
	return ok
}

func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UTC(), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("%T %v is not a time", v, v)
}

// diff lists the differences of other from the engine's answer (at most 5).
func diff(eng, other answer) []string {
	metrics := map[string]bool{}
	for _, r := range eng {
		for m := range r {
			metrics[m] = true
		}
	}
	var problems []string
	for _, r := range other {
		for m := range r {
			if !metrics[m] {
				return []string{fmt.Sprintf("column %q is not a metric of the engine's answer", m)}
			}
		}
	}
	keys := map[string]bool{}
	for k := range eng {
		keys[k] = true
	}
	for k := range other {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	ms := make([]string, 0, len(metrics))
	for m := range metrics {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	n := 0
	for _, k := range sorted {
		for _, m := range ms {
			a, b := value(eng, k, m), value(other, k, m)
			if _, present := other[k]; present {
				if _, has := other[k][m]; !has {
					problems = append(problems, fmt.Sprintf("no column %q", m))
					return problems
				}
			}
			if !equal(a, b) {
				n++
				if n <= 5 {
					problems = append(problems, fmt.Sprintf("%s %s: engine %s, other %s", k, m, fmtVal(a), fmtVal(b)))
				}
			}
		}
	}
	if n > 5 {
		problems = append(problems, fmt.Sprintf("… %d differences in all", n))
	}
	return problems
}

// value is a cell, with a missing row read as the engine shows an empty bucket or group:
// 0 for counts and money, no value otherwise.
func value(a answer, key, metric string) *float64 {
	if r, ok := a[key]; ok {
		if v, ok := r[metric]; ok {
			return v
		}
	}
	if m, ok := kpi.LookupMetric(metric); ok && m.Additive() {
		zero := 0.0
		return &zero
	}
	return nil
}

func equal(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	x, y := *a, *b
	if x == y {
		return true
	}
	return math.Abs(x-y) <= relTol*math.Max(math.Abs(x), math.Abs(y))
}

func fmtVal(v *float64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatFloat(*v, 'g', 17, 64)
}

func runDuckDB(db *sql.DB, text string) (answer, float64, error) {
	start := time.Now()
	rows, err := db.Query(text)
	if err != nil {
		return nil, msSince(start), err
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return nil, msSince(start), err
	}
	var all [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return nil, msSince(start), err
		}
		all = append(all, vals)
	}
	err = rows.Err()
	rows.Close()
	ms := msSince(start)
	if err != nil {
		return nil, ms, err
	}
	a, err := columnsAnswer(cols, all)
	return a, ms, err
}

var timingRe = regexp.MustCompile(`Time: ([0-9.]+) ms`)

// errTimedOut: PostgreSQL cancelled the statement at --pg-timeout.
var errTimedOut = errors.New("stopped by statement_timeout")

// runPostgres runs one statement through psql: CSV to a file, \timing to stdout. With a
// timeout > 0 the statement runs under that statement_timeout; when it is cancelled the
// error is errTimedOut and the time is the timeout.
func runPostgres(conn, text string, timeout time.Duration) (answer, float64, error) {
	f, err := os.CreateTemp("", "bt-compare-*.csv")
	if err != nil {
		return nil, 0, err
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	args := []string{conn, "-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1", "-o", path}
	if timeout > 0 {
		args = append(args, "-c", fmt.Sprintf("SET statement_timeout = %d", timeout.Milliseconds()))
	}
	args = append(args, "-c", `\timing on`, "-c", text)
	cmd := exec.Command("psql", args...)
	cmd.Env = append(os.Environ(), "PGTZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil && timeout > 0 && bytes.Contains(out, []byte("canceling statement due to statement timeout")) {
		return nil, float64(timeout.Milliseconds()), errTimedOut
	}
	if err != nil {
		return nil, 0, fmt.Errorf("psql: %v: %s", err, out)
	}
	m := timingRe.FindSubmatch(out)
	if m == nil {
		return nil, 0, fmt.Errorf("psql: no timing in %q", out)
	}
	ms, _ := strconv.ParseFloat(string(m[1]), 64)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, ms, err
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, ms, fmt.Errorf("psql output: %w", err)
	}
	if len(recs) == 0 {
		return nil, ms, errors.New("psql printed no header")
	}
	rows := make([][]any, 0, len(recs)-1)
	for _, r := range recs[1:] {
		row := make([]any, len(r))
		for i, s := range r {
			if s != "" { // psql's CSV prints NULL as an empty field
				row[i] = s
			}
		}
		rows = append(rows, row)
	}
	a, err := columnsAnswer(recs[0], rows)
	return a, ms, err
}

// openRaw gives a DuckDB with the store's events in a table `events`: in memory, or in a
// file reused while the store's fingerprint is unchanged.
func openRaw(dir, path string, memMB int) (*sql.DB, time.Duration, error) {
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return nil, 0, err
	}
	setup := []string{"SET GLOBAL TimeZone = 'UTC'"}
	if memMB > 0 {
		setup = append(setup, fmt.Sprintf("SET GLOBAL memory_limit = '%dMB'", memMB))
	}
	if path != "" {
		setup = append(setup, "SET GLOBAL temp_directory = "+store.SQLString(path+".tmp"))
	}
	for _, s := range setup {
		if _, err := db.Exec(s); err != nil {
			db.Close()
			return nil, 0, err
		}
	}
	fp, err := storeFingerprint(dir)
	if err != nil {
		db.Close()
		return nil, 0, err
	}
	var have string
	_ = db.QueryRow("SELECT fingerprint FROM bench_meta").Scan(&have)
	if have == fp {
		fmt.Fprintf(os.Stderr, "duckdb: reusing the raw events table in %s\n", path)
		return db, 0, nil
	}
	files, _ := filepath.Glob(filepath.Join(dir, "segments", "*.parquet"))
	if len(files) == 0 {
		db.Close()
		return nil, 0, fmt.Errorf("no segments in %s", dir)
	}
	list := make([]string, len(files))
	for i, f := range files {
		list[i] = store.SQLString(f)
	}
	start := time.Now()
	for _, s := range []string{
		"DROP TABLE IF EXISTS bench_meta",
		"CREATE OR REPLACE TABLE events AS SELECT " + store.ColumnList() + " FROM read_parquet([" + strings.Join(list, ", ") + "], union_by_name=true)",
		"CREATE TABLE bench_meta AS SELECT " + store.SQLString(fp) + " AS fingerprint",
		"CHECKPOINT",
	} {
		if _, err := db.Exec(s); err != nil {
			db.Close()
			return nil, 0, err
		}
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "duckdb: raw events table loaded in %s\n", el.Round(time.Millisecond))
	return db, el, nil
}

// storeFingerprint names the store's content: its path and segment file names (segments
// are immutable and uniquely named).
func storeFingerprint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	files, err := filepath.Glob(filepath.Join(abs, "segments", "*.parquet"))
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no segments in %s", dir)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(filepath.Base(f) + "\n"))
	}
	return fmt.Sprintf("%s@%d-%s", abs, len(files), hex.EncodeToString(h.Sum(nil))[:16]), nil
}

type report struct {
	started, finished    time.Time
	loadStart, loadEnd   string
	events, rawRows      int64
	engineBuild, rawLoad time.Duration
	engineKept           bool // the engine opened facts kept by an earlier run (--facts-dir)
	duckdbVersion        string
	rawMemory, pgVersion string
	from, to             time.Time
	failures             []string
	unfinished           []string // queries stopped by --pg-timeout in the check round
	pgTimeout            time.Duration
	rows                 []int
}

// engineHow says how the engine got its snapshot: built in full, or opened from the facts
// an earlier run kept (--facts-dir), which takes seconds instead of a full build's minutes.
func (r *report) engineHow() string {
	if r.engineKept {
		return "opened from kept facts"
	}
	return "built"
}

func (r *report) print(w *os.File, good []benchQuery, sides []string, times map[string]map[string][]float64, rounds int, notesPath string) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "### Engine vs raw DuckDB SQL vs PostgreSQL (%s)\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %s, %d cores (nproc), %s RAM, %s, %s/%s, host %s\n", cpuModel(), runtime.NumCPU(), memTotal(), kernel(), runtime.GOOS, runtime.GOARCH, host)
	fmt.Fprintf(w, "- load average (1, 5, 15 min): %s at start, %s at end (%s)\n", r.loadStart, r.loadEnd, r.finished.Sub(r.started).Round(time.Second))
	fmt.Fprintf(w, "- data: %d events (%d rows with duplicates in the raw tables); range %s .. %s (the dashboard's now-7d, now = the newest event)\n", r.events, r.rawRows, r.from.Format(time.RFC3339), r.to.Format(time.RFC3339))
	fmt.Fprintf(w, "- engine: snapshot %s in %s; raw DuckDB %s (memory_limit %s), events table loaded in %s", r.engineHow(), r.engineBuild.Round(time.Millisecond), r.duckdbVersion, r.rawMemory, r.rawLoad.Round(time.Millisecond))
	if r.rawLoad == 0 {
		fmt.Fprint(w, " (reused)")
	}
	fmt.Fprintln(w)
	if r.pgVersion != "" {
		fmt.Fprintf(w, "- PostgreSQL %s\n", r.pgVersion)
	}
	if notesPath != "" {
		if b, err := os.ReadFile(notesPath); err == nil {
			w.Write(b)
		}
	}
	fmt.Fprintf(w, "- method: answers checked equal on every side (1e-9 relative) before timing; then %d rounds, sides alternating, each round on a range 1 ms later (no cache can answer); times are medians in ms (engine and DuckDB: in-process wall time incl. fetching rows; PostgreSQL: psql \\timing)", rounds)
	if r.pgTimeout > 0 {
		fmt.Fprintf(w, "; PostgreSQL queries run under statement_timeout %s, and one stopped by it counts as that long", r.pgTimeout)
	}
	fmt.Fprint(w, "\n\n")
	hasPG := len(sides) == 3
	fmt.Fprint(w, "| panel | query | engine (ms) | raw DuckDB (ms) | DuckDB ÷ engine |")
	if hasPG {
		fmt.Fprint(w, " PostgreSQL (ms) | PostgreSQL ÷ engine |")
	}
	fmt.Fprint(w, "\n|---|---|---:|---:|---:|")
	if hasPG {
		fmt.Fprint(w, "---:|---:|")
	}
	fmt.Fprintln(w)
	var sumE, sumD, sumP float64
	pgCapped := false
	for _, q := range good {
		en, du := median(times[q.name]["engine"]), median(times[q.name]["duckdb"])
		sumE += en
		sumD += du
		fmt.Fprintf(w, "| %s | `%s` | %s | %s | %s |", q.panel, q.name, fmtMS(en), fmtMS(du), ratio(du, en))
		if hasPG {
			pg := median(times[q.name]["postgres"])
			sumP += pg
			// A median at the timeout means at least half the runs were stopped by it:
			// the real time, and so the ratio, is a lower bound.
			capped := r.pgTimeout > 0 && pg >= float64(r.pgTimeout.Milliseconds())
			pgCapped = pgCapped || capped
			fmt.Fprintf(w, " %s%s | %s%s |", atLeast(capped), fmtMS(pg), atLeast(capped), ratio(pg, en))
		}
		fmt.Fprintln(w)
	}
	if len(good) > 1 {
		fmt.Fprintf(w, "| **all %d, one after another** | | %s | %s | %s |", len(good), fmtMS(sumE), fmtMS(sumD), ratio(sumD, sumE))
		if hasPG {
			fmt.Fprintf(w, " %s%s | %s%s |", atLeast(pgCapped), fmtMS(sumP), atLeast(pgCapped), ratio(sumP, sumE))
		}
		fmt.Fprintln(w)
	}
	if len(r.unfinished) > 0 || pgCapped {
		fmt.Fprintf(w, "\n**Stopped by the PostgreSQL timeout (%s; \"> \" marks a median at it, a lower bound):**\n\n", r.pgTimeout)
		for _, u := range r.unfinished {
			fmt.Fprintf(w, "- %s\n", u)
		}
	}
	if len(r.failures) > 0 {
		fmt.Fprintf(w, "\n**Answers differ (left out of the table):**\n\n")
		for _, f := range r.failures {
			fmt.Fprintf(w, "- %s\n", f)
		}
	}
	fmt.Fprintln(w)
}

// atLeast marks a time or ratio that is a lower bound.
func atLeast(lowerBound bool) string {
	if lowerBound {
		return "> "
	}
	return ""
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "—"
	}
	r := a / b
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.1f×", r)
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "CPU ?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "CPU ?"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "?"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

// peakRSSMB is the process's peak resident set (VmHWM).
func peakRSSMB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// exportEvents writes the segments' events as CSV (and NDJSON) and prints bytes per event
// of the store and of each.
func exportEvents(dir, prefix string, withNDJSON bool) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("SET GLOBAL TimeZone = 'UTC'"); err != nil {
		return err
	}
	glob := store.SQLString(filepath.Join(dir, "segments", "*.parquet"))
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM read_parquet(" + glob + ", union_by_name=true)").Scan(&n); err != nil {
		return err
	}
	formats := []struct{ ext, opts string }{{"csv", "FORMAT csv, HEADER"}}
	if withNDJSON {
		formats = append(formats, struct{ ext, opts string }{"ndjson", "FORMAT json"})
	}
	for _, f := range formats {
		path := prefix + "." + f.ext
		start := time.Now()
		if _, err := db.Exec(fmt.Sprintf("COPY (SELECT %s FROM read_parquet(%s, union_by_name=true)) TO %s (%s)", store.ColumnList(), glob, store.SQLString(path), f.opts)); err != nil {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d bytes, %.1f bytes/event, written in %s\n", path, fi.Size(), float64(fi.Size())/float64(n), time.Since(start).Round(time.Millisecond))
	}
	var size int64
	files, _ := filepath.Glob(filepath.Join(dir, "segments", "*.parquet"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	fmt.Printf("store segments: %d bytes for %d events, %.1f bytes/event\n", size, n, float64(size)/float64(n))
	return nil
}
