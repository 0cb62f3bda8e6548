package kpi_test

// Benchmarks of the KPI engine on the overview dashboard's workload (docs/BENCHMARKS.md).
//
// By default they run on a small demo store generated in a temp directory, so
//
//	go test ./pkg/kpi/ -run '^$' -bench . -benchtime 1x
//
// finishes in seconds. Point BLUETICKS_BENCH_STORE at a real store for the large sizes:
//
//	go run ./pkg/cmd/blueticks demo --store /tmp/bt10m --events 10000000
//	BLUETICKS_BENCH_STORE=/tmp/bt10m go test ./pkg/kpi/ -run '^$' -bench . -benchtime 200x -timeout 1h
//
// Each benchmark reports p50-ms and p99-ms beside ns/op. A benchmark is not a test: there
// are no timing assertions here.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/ingest"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// benchPanel is one query of the overview dashboard.
type benchPanel struct {
	title string
	query *kpi.Query
	raw   []byte
}

// overviewPanels reads dashboards/overview.json; template variables are at their default
// ("All"), as Grafana sends them.
func overviewPanels(tb testing.TB) []benchPanel {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "dashboards", "overview.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string            `json:"title"`
			Targets []json.RawMessage `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		tb.Fatal(err)
	}
	var out []benchPanel
	for _, p := range dash.Panels {
		for _, t := range p.Targets {
			raw := varRe(t)
			q, err := kpi.ParseQuery(raw)
			if err != nil {
				tb.Fatalf("panel %q: %v", p.Title, err)
			}
			out = append(out, benchPanel{title: p.Title, query: q, raw: raw})
		}
	}
	if len(out) == 0 {
		tb.Fatal("no panel queries in overview.json")
	}
	return out
}

// varRe replaces every "$variable" string value with Grafana's "All" marker.
func varRe(t []byte) []byte {
	var v any
	if err := json.Unmarshal(t, &v); err != nil {
		return t
	}
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, y := range x {
				x[k] = walk(y)
			}
		case []any:
			for i, y := range x {
				x[i] = walk(y)
			}
		case string:
			if strings.HasPrefix(x, "$") {
				return "$__all"
			}
		}
		return x
	}
	out, _ := json.Marshal(walk(v))
	return out
}

// benchStore gives the store directory: BLUETICKS_BENCH_STORE, or a small generated one.
var (
	smallStoreOnce sync.Once
	smallStoreDir  string
	smallStoreErr  error
)

func benchStore(tb testing.TB) string {
	if p := os.Getenv("BLUETICKS_BENCH_STORE"); p != "" {
		return p
	}
	smallStoreOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bt-bench-")
		if err != nil {
			smallStoreErr = err
			return
		}
		smallStoreDir = dir
		smallStoreErr = writeDemoStore(dir, 50_000, time.Now().UTC())
	})
	if smallStoreErr != nil {
		tb.Fatal(smallStoreErr)
	}
	return smallStoreDir
}

func writeDemoStore(dir string, n int, end time.Time) error {
	w, err := store.OpenWriter(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	var batch []events.Event
	flush := func() error {
		_, err := w.Append(context.Background(), batch, store.AppendOptions{})
		batch = batch[:0]
		return err
	}
	err = demo.Generate(demo.Config{Events: n, Days: 90, Seed: 1, End: end}, func(e *events.Event) error {
		batch = append(batch, e.Clone())
		if len(batch) >= 100_000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return err
}

// A shared engine per store: building the facts of a large store takes a while.
var (
	benchEngines   = map[string]*kpi.Engine{}
	benchEnginesMu sync.Mutex
)

func benchEngine(b *testing.B) (*kpi.Engine, kpi.Stats) {
	b.Helper()
	dir := benchStore(b)
	benchEnginesMu.Lock()
	defer benchEnginesMu.Unlock()
	e := benchEngines[dir]
	if e == nil {
		benchAllocatorDecay(b)
		src, err := store.OpenSource(dir)
		if err != nil {
			b.Fatal(err)
		}
		e, err = kpi.New(kpi.Options{Source: src, CheckEvery: time.Hour, NoChangeNotices: true, MemoryLimitMB: benchMemoryMB(), BuildMemoryLimitMB: benchBuildMemoryMB(), FactsDir: os.Getenv("BLUETICKS_BENCH_FACTS_DIR")})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := e.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
		st, _ := e.Stats(context.Background())
		b.Logf("built facts of %s in %s (peak RSS so far %d MB; the build's child process: %d MB)", dir, time.Since(start).Round(time.Millisecond), peakRSSMB(), st.BuildPeakRSSMB)
		benchEngines[dir] = e
	}
	st, err := e.Stats(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return e, st
}

// benchRange is the dashboard's default range (now-7d to now) with now at the store's
// newest event; BLUETICKS_BENCH_DAYS changes its length.
func benchRange(st kpi.Stats) (time.Time, time.Time) {
	days := 7
	if s := os.Getenv("BLUETICKS_BENCH_DAYS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			days = n
		}
	}
	to := st.MaxTS.Add(time.Second)
	return to.AddDate(0, 0, -days), to
}

func panelRequest(p benchPanel, from, to time.Time) kpi.Request {
	return kpi.Request{Query: p.query, From: from, To: to, Interval: 5 * time.Minute, MaxDataPoints: 1200}
}

// benchMemoryMB is the engine's memory_limit: BLUETICKS_BENCH_MEMORY_MB, else the default.
func benchMemoryMB() int {
	n, _ := strconv.Atoi(os.Getenv("BLUETICKS_BENCH_MEMORY_MB"))
	return n
}

// benchAllocatorDecay applies BLUETICKS_BENCH_JE_DECAY_MS, when set, to DuckDB's jemalloc:
// how long it keeps freed pages (the serving process's is servingDecayMS, 1000 ms,
// jemalloc's default; 100 ms until the twenty-second session).
func benchAllocatorDecay(b *testing.B) {
	v := os.Getenv("BLUETICKS_BENCH_JE_DECAY_MS")
	if v == "" {
		return
	}
	kpi.ServingAllocatorDecay() // first: New would set it over this one
	ms, err := strconv.Atoi(v)
	if err != nil || !kpi.SetDuckDBDecay(ms) {
		b.Fatalf("BLUETICKS_BENCH_JE_DECAY_MS=%q: cannot set DuckDB's allocator decay", v)
	}
	b.Logf("DuckDB's jemalloc decay: %d ms", kpi.DuckDBDecay())
}

// benchCheckpointMB applies BLUETICKS_BENCH_CHECKPOINT_MB, when set: the write-ahead log
// size at which a served increment is followed by a checkpoint (checkpointIfDue; default
// 4 MB). A small one gives many checkpoints in few rounds, to watch what each leaves.
func benchCheckpointMB(b *testing.B) {
	v := os.Getenv("BLUETICKS_BENCH_CHECKPOINT_MB")
	if v == "" {
		return
	}
	mb, err := strconv.Atoi(v)
	if err != nil || mb < 1 {
		b.Fatalf("BLUETICKS_BENCH_CHECKPOINT_MB=%q: want a whole number of MB, at least 1", v)
	}
	b.Cleanup(kpi.SetCheckpointWALBytes(int64(mb) << 20))
	b.Logf("checkpoint once the log holds %d MB", mb)
}

// benchBuildMemoryMB is the full build's memory_limit: BLUETICKS_BENCH_BUILD_MEMORY_MB,
// else the default.
func benchBuildMemoryMB() int {
	n, _ := strconv.Atoi(os.Getenv("BLUETICKS_BENCH_BUILD_MEMORY_MB"))
	return n
}

// benchShifts makes every shifted range of a run unique (1 ms apart), so no benchmark is
// answered from the result cache filled by another.
var benchShifts atomic.Int64

func nextShift() time.Duration { return time.Duration(benchShifts.Add(1)) * time.Millisecond }

// latencies collects durations and reports p50 and p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	b.ReportMetric(float64(l.quantile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.quantile(0.99).Microseconds())/1000, "p99-ms")
}

// quantile is the latency at quantile p (nearest rank below); l must not be empty.
func (l latencies) quantile(p float64) time.Duration {
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkOverviewPanels runs each panel query of the overview dashboard on its own.
// Every iteration uses a time range shifted by one millisecond (as Grafana's relative
// "now-7d" is), so a result cache keyed by the exact range cannot answer it.
func BenchmarkOverviewPanels(b *testing.B) {
	e, st := benchEngine(b)
	from, to := benchRange(st)
	ctx := context.Background()
	for _, p := range overviewPanels(b) {
		b.Run(benchName(p.title), func(b *testing.B) {
			var lat latencies
			for b.Loop() {
				shift := nextShift()
				start := time.Now()
				if _, err := e.Run(ctx, panelRequest(p, from.Add(shift), to.Add(shift))); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			lat.report(b)
		})
	}
}

// BenchmarkOverviewPanelsRepeat runs each panel query with the same range every time: a
// dashboard refreshed by several viewers, or an alert rule on an absolute range, on an
// unchanged store.
func BenchmarkOverviewPanelsRepeat(b *testing.B) {
	e, st := benchEngine(b)
	from, to := benchRange(st)
	ctx := context.Background()
	for _, p := range overviewPanels(b) {
		b.Run(benchName(p.title), func(b *testing.B) {
			var lat latencies
			for b.Loop() {
				start := time.Now()
				if _, err := e.Run(ctx, panelRequest(p, from, to)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			lat.report(b)
		})
	}
}

// BenchmarkOverviewDashboard runs all the dashboard's queries as one request does in the
// plugin's QueryData: concurrently, at most maxConcurrentQueries (4) at once.
func BenchmarkOverviewDashboard(b *testing.B) {
	e, st := benchEngine(b)
	from, to := benchRange(st)
	panels := overviewPanels(b)
	ctx := context.Background()
	var lat latencies
	for b.Loop() {
		shift := nextShift()
		took, err := runDashboard(ctx, e, panels, from.Add(shift), to.Add(shift))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, took)
	}
	lat.report(b)
	b.ReportMetric(float64(peakRSSMB()), "peak-RSS-MB")
	b.ReportMetric(float64(procStatusMB("VmRSS:")), "RSS-MB")
	b.ReportMetric(float64(st.BuildPeakRSSMB), "build-process-peak-RSS-MB")
}

// runDashboard runs all the panels' queries as one request does in the plugin's
// QueryData: concurrently, at most maxConcurrentQueries (4) at once.
func runDashboard(ctx context.Context, e *kpi.Engine, panels []benchPanel, from, to time.Time) (time.Duration, error) {
	start := time.Now()
	slots := make(chan struct{}, 4)
	var wg sync.WaitGroup
	errs := make([]error, len(panels))
	for j, p := range panels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			_, errs[j] = e.Run(ctx, panelRequest(p, from, to))
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// BenchmarkFactRebuild builds the fact tables of the whole store from scratch (what a new
// segment costs the engine) and reports the process's peak RSS.
func BenchmarkFactRebuild(b *testing.B) {
	dir := benchStore(b)
	src, err := store.OpenSource(dir)
	if err != nil {
		b.Fatal(err)
	}
	var lat latencies
	var buildPeak int64
	for b.Loop() {
		e, err := kpi.New(kpi.Options{Source: src, MemoryLimitMB: benchMemoryMB(), BuildMemoryLimitMB: benchBuildMemoryMB()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := e.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if st, err := e.Stats(context.Background()); err == nil {
			buildPeak = max(buildPeak, st.BuildPeakRSSMB)
		}
		e.Close()
	}
	lat.report(b)
	b.ReportMetric(float64(peakRSSMB()), "peak-RSS-MB")
	b.ReportMetric(float64(buildPeak), "build-process-peak-RSS-MB")
}

// BenchmarkRawDuckDB runs the same KPIs as a user would write them in DuckDB SQL over a
// raw events table (scripts/bench/raw_duckdb.sql), for the ratio in docs/BENCHMARKS.md.
func BenchmarkRawDuckDB(b *testing.B) {
	e, st := benchEngine(b)
	from, to := benchRange(st)
	dir := benchStore(b)
	db, err := store.OpenDuckDB("")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	files, err := filepath.Glob(filepath.Join(dir, "segments", "*.parquet"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no segments in %s", dir)
	}
	if _, err := db.Exec("CREATE TABLE events AS SELECT * FROM read_parquet(" + quoteList(files) + ", union_by_name=true)"); err != nil {
		b.Fatal(err)
	}
	for _, rq := range rawQueries(b, "raw_duckdb.sql") {
		b.Run(rq.name, func(b *testing.B) {
			var lat latencies
			for b.Loop() {
				start := time.Now()
				if _, err := runRaw(db, rq.sql, from, to); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			lat.report(b)
		})
		// The engine's answer to the same KPI, for the ratio.
		if q := rawEquivalent[rq.name]; q != "" {
			pq, err := kpi.ParseQuery([]byte(q))
			if err != nil {
				b.Fatal(err)
			}
			b.Run(rq.name+"-engine", func(b *testing.B) {
				var lat latencies
				for b.Loop() {
					shift := nextShift()
					start := time.Now()
					if _, err := e.Run(context.Background(), kpi.Request{Query: pq, From: from.Add(shift), To: to.Add(shift), Interval: time.Hour, MaxDataPoints: 1200}); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				lat.report(b)
			})
		}
	}
}

// rawEquivalent is the engine query answering each raw SQL KPI.
var rawEquivalent = map[string]string{
	"sent":               `{"queryType":"timeseries","metrics":["sent"]}`,
	"delivery_rate":      `{"queryType":"table","metrics":["delivery_rate"]}`,
	"read_rate":          `{"queryType":"table","metrics":["read_rate"]}`,
	"click_rate":         `{"queryType":"table","metrics":["click_rate"]}`,
	"conversion_rate":    `{"queryType":"table","metrics":["conversion_rate"]}`,
	"revenue":            `{"queryType":"timeseries","metrics":["revenue"]}`,
	"block_rate":         `{"queryType":"table","metrics":["block_rate"]}`,
	"opt_out_rate":       `{"queryType":"table","metrics":["opt_out_rate"]}`,
	"conversations":      `{"queryType":"timeseries","metrics":["conversations"]}`,
	"first_response_p50": `{"queryType":"table","metrics":["first_response_time_p50"]}`,
	"status_daily":       `{"queryType":"timeseries","metrics":["sent","delivered","read","failed"],"bucket":"1d"}`,
	"funnel_daily":       `{"queryType":"timeseries","metrics":["delivery_rate","read_rate","click_rate","reply_rate","conversion_rate"],"bucket":"1d"}`,
	"campaigns":          `{"queryType":"table","metrics":["sent","delivery_rate","read_rate","click_rate","conversion_rate","revenue","block_rate"],"groupBy":["campaign"],"limit":20}`,
}

type rawQuery struct{ name, sql string }

// rawQueries reads scripts/bench/NAME: statements separated by "-- name: X" lines; $1 and
// $2 are the range's ends.
func rawQueries(tb testing.TB, name string) []rawQuery {
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "bench", name))
	if err != nil {
		tb.Fatal(err)
	}
	var out []rawQuery
	for _, part := range bytes.Split(b, []byte("-- name: "))[1:] {
		nl := bytes.IndexByte(part, '\n')
		out = append(out, rawQuery{name: strings.TrimSpace(string(part[:nl])), sql: string(part[nl+1:])})
	}
	return out
}

func runRaw(db *sql.DB, text string, from, to time.Time) (int, error) {
	text = strings.ReplaceAll(text, "$1", "TIMESTAMPTZ '"+from.UTC().Format("2006-01-02 15:04:05.000000")+"+00'")
	text = strings.ReplaceAll(text, "$2", "TIMESTAMPTZ '"+to.UTC().Format("2006-01-02 15:04:05.000000")+"+00'")
	text = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(text), ";"))
	rows, err := db.Query(text)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

func quoteList(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = "'" + strings.ReplaceAll(f, "'", "''") + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func benchName(s string) string {
	return strings.NewReplacer(" ", "_", "(", "", ")", "", "/", "_").Replace(s)
}

// peakRSSMB is the process's peak resident set (VmHWM), 0 where /proc is missing.
func peakRSSMB() int64 { return procStatusMB("VmHWM:") }

// procStatusMB reads one memory line of /proc/self/status ("VmRSS:", "VmHWM:") in MB, 0
// where /proc is missing.
func procStatusMB(key string) int64 { return pidStatusMB("self", key) }

// pidStatusMB reads one memory line of /proc/PID/status in MB (pid "self": this process).
func pidStatusMB(pid, key string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb / 1024
			}
		}
	}
	return 0
}

var _ = runtime.NumCPU
var _ = fmt.Sprint

// BenchmarkIncrement measures how long a new segment takes to become visible. A copy of
// the store (hard links) leaves out its last segment; each iteration appends the next
// BLUETICKS_BENCH_INC_EVENTS (default 500) of that segment's events, in their order, and
// the engine updates its snapshot in place (incremental.go). These are the store's own
// newest events, so they concern stored contacts, conversations and messages (statuses
// and replies to earlier sends), as webhook traffic does. BLUETICKS_BENCH_INC_NEW=1
// instead appends fresh demo events of contacts the store has never seen (the cheaper
// case the first benchmarks measured). Reports p50/p99 of append-to-visible and peak RSS.
func BenchmarkIncrement(b *testing.B) {
	benchAllocatorDecay(b)
	benchCheckpointMB(b)
	base := benchStore(b)
	dir := b.TempDir()
	segs, err := store.ListSegments(base)
	if err != nil {
		b.Fatal(err)
	}
	fresh := os.Getenv("BLUETICKS_BENCH_INC_NEW") == "1"
	keep := segs
	if !fresh {
		if len(segs) < 2 {
			b.Skip("the store has fewer than two segments: nothing to hold back")
		}
		keep = segs[:len(segs)-1]
	}
	if err := linkSegments(keep, dir); err != nil {
		b.Fatal(err)
	}
	src, err := store.OpenSource(dir)
	if err != nil {
		b.Fatal(err)
	}
	e, err := kpi.New(kpi.Options{Source: src, CheckEvery: time.Nanosecond, MemoryLimitMB: benchMemoryMB(), BuildMemoryLimitMB: benchBuildMemoryMB()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	start := time.Now()
	if err := e.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	st, _ := e.Stats(ctx)
	b.Logf("full build of %d events in %s", st.Events, time.Since(start).Round(time.Millisecond))
	n := 500
	if v, err := strconv.Atoi(os.Getenv("BLUETICKS_BENCH_INC_EVENTS")); err == nil && v > 0 {
		n = v
	}
	var held []events.Event
	if !fresh {
		if held, err = readSegment(ctx, segs[len(segs)-1].Path); err != nil {
			b.Fatal(err)
		}
	}
	w, err := store.OpenWriter(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	var lat latencies
	for i := 0; b.Loop(); i++ {
		var batch []events.Event
		if fresh {
			end := st.MaxTS.Add(time.Duration(i+1) * time.Minute)
			if err := demo.Generate(demo.Config{Events: n * 20, Days: 1, Seed: int64(1000 + i), End: end}, func(ev *events.Event) error {
				if len(batch) < n && ev.TS.After(end.Add(-2*time.Hour)) {
					c := ev.Clone()
					c.EventID = fmt.Sprintf("inc%d-%s", i, c.EventID)
					batch = append(batch, c)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		} else {
			if len(held) < n {
				b.Fatalf("the held-back segment has no %d more events; use fewer iterations", n)
			}
			batch, held = held[:n], held[n:]
		}
		t0 := time.Now()
		if _, err := w.Append(ctx, batch, store.AppendOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	after, _ := e.Stats(ctx)
	if after.Increments == 0 {
		b.Fatal("no increment: the snapshot was rebuilt in full")
	}
	lat.report(b)
	b.ReportMetric(float64(peakRSSMB()), "peak-RSS-MB")
}

// readSegment reads a segment's events in their stored order.
func readSegment(ctx context.Context, path string) ([]events.Event, error) {
	return readSegmentLimit(ctx, path, 0)
}

// readSegmentLimit reads at most limit of a segment's events (0: all) in their stored order.
func readSegmentLimit(ctx context.Context, path string, limit int) ([]events.Event, error) {
	db, err := store.OpenDuckDB("")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	exprs := make([]string, len(events.Columns))
	for i, c := range events.Columns {
		exprs[i] = "CAST(" + c.Name + " AS VARCHAR)"
		if c.Name == "ts" {
			exprs[i] = "strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ')"
		}
	}
	rows, err := db.QueryContext(ctx, "SET TimeZone = 'UTC'; SELECT "+strings.Join(exprs, ", ")+" FROM read_parquet("+store.SQLString(path)+", file_row_number=true) ORDER BY file_row_number"+limitSQL(limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vals := make([]sql.NullString, len(events.Columns))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	var out []events.Event
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		m := map[string]string{}
		for i, c := range events.Columns {
			if vals[i].Valid {
				m[c.Name] = vals[i].String
			}
		}
		ev, err := events.FromFields(m)
		if err != nil {
			return nil, fmt.Errorf("%s row %d: %w", path, len(out)+1, err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

func limitSQL(limit int) string {
	if limit <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(limit)
}

// linkSegments makes dst a store with segs, hard-linked (copied where links fail).
func linkSegments(segs []store.Segment, dst string) error {
	w, err := store.OpenWriter(dst)
	if err != nil {
		return err
	}
	w.Close()
	for _, s := range segs {
		to := filepath.Join(dst, store.SegmentsDir, s.Name)
		if err := os.Link(s.Path, to); err != nil {
			data, err := os.ReadFile(s.Path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// visibleBatch events are posted per round of BenchmarkVisible, at most visibleMaxRounds
// rounds per run.
const (
	visibleBatch     = 500
	visibleMaxRounds = 120
)

// BenchmarkVisible measures what a user of the receiver sees: from the moment the events
// API acknowledges a batch to the moment the data source's queries count it. A store
// (BLUETICKS_BENCH_STORE, else a small demo one) without its last segment gets a real
// receiver (ingest.Server on 127.0.0.1, default flush and compaction every minute) in a
// child process, as `blueticks serve` runs beside Grafana, and an engine with the
// product's defaults in this one; each iteration posts the next 500 events of the
// held-back segment as NDJSON and polls the engine's statistics (as a query would) until
// they are in. Reports p50/p99/max, the compactions that ran, and the full builds that
// happened after the first (none expected: merges keep the snapshot).
// BLUETICKS_BENCH_PANELS=1 also refreshes the overview dashboard after each round and
// once over the whole store at the end; BLUETICKS_BENCH_MEMPROBE=1 reports where the
// process's memory goes (memProbe), and BLUETICKS_BENCH_HEAPPROFILE=FILE writes its Go
// heap profile at the end.
func BenchmarkVisible(b *testing.B) {
	benchAllocatorDecay(b)
	benchCheckpointMB(b)
	base := benchStore(b)
	segs, err := store.ListSegments(base)
	if err != nil {
		b.Fatal(err)
	}
	if len(segs) < 2 {
		b.Skip("the store has fewer than two segments: nothing to hold back")
	}
	dir := b.TempDir()
	keep := os.Getenv("BLUETICKS_BENCH_KEEP_DIR")
	var factsDir, template string
	if keep != "" {
		// A fixed place for the store and its facts, and a copy of the facts as first
		// built: a later run starts from that copy instead of a full build (30 minutes at
		// 100M events). The kept facts are found by the store's path, so it stays the same.
		dir, factsDir, template = filepath.Join(keep, "store"), filepath.Join(keep, "facts"), filepath.Join(keep, "template")
		for _, d := range []string{dir, factsDir} {
			if err := os.RemoveAll(d); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := os.Stat(template); err == nil {
			copyTree(b, template, factsDir)
		}
	}
	if err := linkSegments(segs[:len(segs)-1], dir); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// The rounds' bodies, encoded up front into files: the benchmark process stands in for
	// the plugin's, so it holds none of them (the 120 rounds' bodies are ~23 MB of Go heap),
	// and hands back what reading them took before it measures memory.
	held, err := readSegmentLimit(ctx, segs[len(segs)-1].Path, visibleMaxRounds*visibleBatch)
	if err != nil {
		b.Fatal(err)
	}
	bodyDir := b.TempDir()
	var bodies []string
	for len(held) >= visibleBatch {
		var body bytes.Buffer
		enc := json.NewEncoder(&body)
		for i := range held[:visibleBatch] {
			if err := enc.Encode(&held[i]); err != nil {
				b.Fatal(err)
			}
		}
		path := filepath.Join(bodyDir, fmt.Sprintf("round-%03d.ndjson", len(bodies)))
		if err := os.WriteFile(path, body.Bytes(), 0o600); err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, path)
		held = held[visibleBatch:]
	}
	held = nil
	kpi.ReleaseFreedMemory()
	debug.FreeOSMemory()
	// The receiver runs in a process of its own, as `blueticks serve` does beside Grafana:
	// this process's memory is then the plugin's alone.
	rcv := startBenchReceiver(b, dir)
	defer rcv.stop(b)
	src, err := store.OpenSource(dir)
	if err != nil {
		b.Fatal(err)
	}
	opts := kpi.Options{Source: src, MemoryLimitMB: benchMemoryMB(), BuildMemoryLimitMB: benchBuildMemoryMB(), FactsDir: factsDir}
	e, err := kpi.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { e.Close() }()
	start := time.Now()
	if err := e.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	st, _ := e.Stats(ctx)
	b.Logf("full build or kept facts of %d events in %s", st.Events, time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(template); keep != "" && err != nil {
		// The first run with this directory: keep a copy of the facts as built, with the
		// engine closed, and serve them again as a later run will.
		e.Close()
		copyTree(b, factsDir, template)
		if e, err = kpi.New(opts); err != nil {
			b.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		if st, _ = e.Stats(ctx); st.FullBuilds != 0 {
			b.Fatalf("the kept facts were not served again: %d full builds", st.FullBuilds)
		}
	}
	if os.Getenv("BLUETICKS_BENCH_REBUILDING") == "1" {
		// The worst case: from the second round on, a full build always runs in the
		// background (every increment grows the snapshot past its share), as after retention.
		defer kpi.SetMaxIncrementalShare(0)()
	}
	builds0 := st.FullBuilds
	probe := os.Getenv("BLUETICKS_BENCH_MEMPROBE") == "1"
	if probe {
		// Where the serving process's memory goes while it takes the rounds' increments.
		stop := startMemProbe(e)
		defer func() { stop().report(b) }()
	}
	if path := os.Getenv("BLUETICKS_BENCH_HEAPPROFILE"); path != "" {
		// The Go heap after the rounds (go tool pprof -sample_index=inuse_space).
		defer func() {
			f, err := os.Create(path)
			if err != nil {
				b.Error(err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Error(err)
			}
		}()
	}
	post := func(body []byte) {
		req, _ := http.NewRequest(http.MethodPost, rcv.url+ingest.RouteEvents, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+benchReceiverToken)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(resp.Body)
			b.Fatalf("events API: %s: %s", resp.Status, msg)
		}
	}
	// BLUETICKS_BENCH_PANELS=1: after each round, the overview dashboard refreshes (now-7d
	// to the newest event), as a viewer's would, on the snapshot that just took the round.
	var panels []benchPanel
	if os.Getenv("BLUETICKS_BENCH_PANELS") == "1" {
		panels = overviewPanels(b)
	}
	var lat, during, dash latencies
	for b.Loop() {
		if len(bodies) == 0 {
			b.Fatalf("the held-back segment has no %d more events; use at most %d iterations", visibleBatch, visibleMaxRounds)
		}
		body, err := os.ReadFile(bodies[0])
		if err != nil {
			b.Fatal(err)
		}
		bodies = bodies[1:]
		before, _ := e.Stats(ctx)
		post(body)
		t0 := time.Now()
		for {
			now, err := e.Stats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if now.Events > before.Events {
				lat = append(lat, time.Since(t0))
				if !before.RebuildingSince.IsZero() && !now.RebuildingSince.IsZero() {
					during = append(during, time.Since(t0))
				}
				break
			}
			if time.Since(t0) > 10*time.Minute {
				b.Fatal("not visible after 10 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if panels != nil {
			now, err := e.Stats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			from, to := benchRange(now)
			took, err := runDashboard(ctx, e, panels, from, to)
			if err != nil {
				b.Fatal(err)
			}
			dash = append(dash, took)
		}
		time.Sleep(500 * time.Millisecond) // traffic in bursts
		if probe {
			// Memory between rounds, in order, among the increments' steps in the debug log
			// (b.Logf keeps only a benchmark's first lines): what each round leaves.
			log.DefaultLogger.Debug("after round", "round", len(lat), "memory", memNow(e))
		}
	}
	b.StopTimer()
	lat.report(b)
	b.ReportMetric(float64(slices.Max(lat).Microseconds())/1000, "max-ms")
	rounds := make([]string, len(lat))
	for i, d := range lat {
		rounds[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	b.Logf("acknowledged → counted, each round in order (s): %s", strings.Join(rounds, " "))
	end, _ := e.Stats(ctx)
	b.ReportMetric(float64(end.FullBuilds-builds0), "full-builds")
	if len(dash) > 0 {
		// Once more over the whole store: the largest distinct counts a viewer can ask
		// for, within the serving memory_limit.
		took, err := runDashboard(ctx, e, panels, end.MinTS, end.MaxTS.Add(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(took.Microseconds())/1000, "dashboard-whole-store-ms")
		b.ReportMetric(float64(dash.quantile(0.5).Microseconds())/1000, "dashboard-p50-ms")
		b.ReportMetric(float64(dash.quantile(0.99).Microseconds())/1000, "dashboard-p99-ms")
		b.ReportMetric(float64(slices.Max(dash).Microseconds())/1000, "dashboard-max-ms")
	}
	if len(during) > 0 {
		// Rounds that began and ended while a full build ran in the background.
		b.ReportMetric(float64(len(during)), "rounds-during-builds")
		b.ReportMetric(float64(during.quantile(0.5).Microseconds())/1000, "during-p50-ms")
		b.ReportMetric(float64(slices.Max(during).Microseconds())/1000, "during-max-ms")
	}
	now, err := store.ListSegments(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(countMerged(now)-countMerged(segs[:len(segs)-1])), "merged-segments")
	// This process serves and takes the increments; full builds run in child processes.
	b.ReportMetric(float64(peakRSSMB()), "peak-RSS-MB")
	b.ReportMetric(float64(rcv.peakRSSMB()), "receiver-peak-RSS-MB")
	b.ReportMetric(float64(max(st.BuildPeakRSSMB, end.BuildPeakRSSMB)), "build-process-peak-RSS-MB")
}

// benchReceiverStoreEnv names the store a child of BenchmarkVisible receives events into
// (benchReceiverMain); benchReceiverToken is its events API token.
const (
	benchReceiverStoreEnv = "BLUETICKS_BENCH_RECEIVER_STORE"
	benchReceiverToken    = "bench-api-token"
)

// benchReceiverMain runs, in a child of BenchmarkVisible, a receiver with its defaults
// (flush, compaction every minute) on 127.0.0.1: it prints its URL, serves until its
// standard input closes, then exits. TestMain calls it; it returns at once in any other
// process.
func benchReceiverMain() {
	dir := os.Getenv(benchReceiverStoreEnv)
	if dir == "" {
		return
	}
	if err := serveBenchReceiver(dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench receiver:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveBenchReceiver(dir string) error {
	hasher, err := pseudo.New([]byte("bench-hash-key-0123456789abcdef"))
	if err != nil {
		return err
	}
	rcv, err := ingest.New(ingest.Config{StoreDir: dir, APIToken: benchReceiverToken, Hasher: hasher})
	if err != nil {
		return err
	}
	defer rcv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rcv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it (or exits)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// benchReceiver is the receiver's child process.
type benchReceiver struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startBenchReceiver starts this test binary again as a receiver on dir and waits for
// its URL.
func startBenchReceiver(b *testing.B, dir string) *benchReceiver {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchReceiverStoreEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatalf("the receiver's child did not start: %v", err)
	}
	return &benchReceiver{url: strings.TrimSpace(line), cmd: cmd, stdin: stdin}
}

// peakRSSMB is the child's peak resident memory so far.
func (r *benchReceiver) peakRSSMB() int64 {
	return pidStatusMB(strconv.Itoa(r.cmd.Process.Pid), "VmHWM:")
}

// stop closes the child's standard input and waits for it to shut down.
func (r *benchReceiver) stop(b *testing.B) {
	_ = r.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.Errorf("the receiver's child: %v", err)
		}
	case <-time.After(time.Minute):
		_ = r.cmd.Process.Kill()
		b.Error("the receiver's child did not stop within a minute")
	}
}

// countMerged is how many of segs compaction wrote: it names a merge after its first input
// plus "-c<random>" (store.Compact), so the name has a second "-c" part. (A plain segment's
// random part may start with c too.)
func countMerged(segs []store.Segment) int {
	n := 0
	for _, s := range segs {
		if _, rest, ok := strings.Cut(s.Name, "-"); ok && strings.Contains(rest, "-c") {
			n++
		}
	}
	return n
}

// memProbe samples this process's memory every second: resident (total, anonymous,
// file-backed), DuckDB's own count for the serving snapshot (duckdb_memory()), Go's heap
// in use and all the Go runtime holds from the system, and the C heap's bytes in use and
// freed but kept (glibc's mallinfo2: C++ objects of DuckDB's catalog and storage), and
// DuckDB's own allocator (its bundled jemalloc: buffers and working memory).
type memProbe struct {
	rss, anon, file, duck, goHeap, goHeld, cUsed, cFree []int64 // MB
	jeAlloc, jeActive, jeResident, jeMeta               []int64 // MB
}

func startMemProbe(e *kpi.Engine) (stop func() *memProbe) {
	p := &memProbe{}
	done := make(chan struct{})
	finished := make(chan struct{})
	if os.Getenv("BLUETICKS_BENCH_RSS_TRACE") == "1" {
		// When the peak happens: each new maximum of VmRSS, looked at every 10 ms, goes
		// to the debug log among the increment's steps.
		go func() {
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			var top int64
			for {
				select {
				case <-done:
					return
				case <-t.C:
				}
				if rss := procStatusMB("VmRSS:"); rss > top {
					top = rss
					used, free := kpi.MallocStats()
					_, _, jeResident, _ := kpi.DuckDBAllocatorStats()
					log.DefaultLogger.Debug("rss maximum", "MB", rss, "anon MB", procStatusMB("RssAnon:"),
						"c-used MB", used>>20, "c-free MB", free>>20, "je-resident MB", jeResident>>20)
				}
			}
		}()
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p.rss = append(p.rss, procStatusMB("VmRSS:"))
			p.anon = append(p.anon, procStatusMB("RssAnon:"))
			p.file = append(p.file, procStatusMB("RssFile:"))
			p.duck = append(p.duck, duckdbMemoryMB(e))
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			p.goHeap = append(p.goHeap, int64(ms.HeapInuse>>20))
			p.goHeld = append(p.goHeld, int64((ms.Sys-ms.HeapReleased)>>20)) // all the Go runtime holds
			used, free := kpi.MallocStats()                                  // glibc's heap: DuckDB's C++ objects, uncounted by it
			p.cUsed = append(p.cUsed, used>>20)
			p.cFree = append(p.cFree, free>>20)
			alloc, active, resident, meta := kpi.DuckDBAllocatorStats() // DuckDB's jemalloc
			p.jeAlloc = append(p.jeAlloc, alloc>>20)
			p.jeActive = append(p.jeActive, active>>20)
			p.jeResident = append(p.jeResident, resident>>20)
			p.jeMeta = append(p.jeMeta, meta>>20)
		}
	}()
	return func() *memProbe {
		close(done)
		<-finished
		return p
	}
}

// memNow is one line of the process's memory now: resident, the C heap in use and freed
// but kept, DuckDB's jemalloc resident, and DuckDB's own count.
func memNow(e *kpi.Engine) string {
	used, free := kpi.MallocStats()
	_, _, jeResident, _ := kpi.DuckDBAllocatorStats()
	return fmt.Sprintf("rss %d MB, c-used %d MB, c-free %d MB, je-resident %d MB, duckdb %d MB",
		procStatusMB("VmRSS:"), used>>20, free>>20, jeResident>>20, duckdbMemoryMB(e))
}

// duckdbMemoryMB is DuckDB's own count of the serving snapshot's memory (duckdb_memory()),
// in MB; 0 when there is no snapshot or it does not answer within 500 ms.
func duckdbMemoryMB(e *kpi.Engine) int64 {
	var duck int64
	if db := e.DB(); db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_ = db.QueryRowContext(ctx, "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").Scan(&duck)
		cancel()
	}
	return duck >> 20
}

func (p *memProbe) report(b *testing.B) {
	for _, m := range []struct {
		name string
		v    []int64
	}{{"rss", p.rss}, {"anon", p.anon}, {"file", p.file}, {"duckdb", p.duck}, {"go-heap", p.goHeap}, {"go-held", p.goHeld}, {"c-used", p.cUsed}, {"c-free", p.cFree},
		{"je-allocated", p.jeAlloc}, {"je-active", p.jeActive}, {"je-resident", p.jeResident}, {"je-metadata", p.jeMeta}} {
		if len(m.v) == 0 {
			continue
		}
		var sum int64
		for _, x := range m.v {
			sum += x
		}
		b.ReportMetric(float64(sum)/float64(len(m.v)), m.name+"-avg-MB")
		b.ReportMetric(float64(slices.Max(m.v)), m.name+"-max-MB")
	}
}
