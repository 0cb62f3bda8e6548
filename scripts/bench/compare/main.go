// Command compare runs the overview KPIs three ways, alternating, and prints medians and
// ratios as a Markdown table: the Blue Ticks engine, the straightforward DuckDB SQL over a
// raw events table (scripts/bench/raw_duckdb.sql) and, when --psql is given, the same
// KPIs in PostgreSQL (scripts/bench/raw_postgres.sql, run through psql; its server-side
// time is taken from \timing). scripts/bench.sh sets everything up.
//
//	go run ./scripts/bench/compare --store /tmp/bt10m --rounds 5 --psql "host=127.0.0.1 port=54329 user=postgres dbname=bench"
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

var engineQueries = map[string]string{
	"status_daily":    `{"queryType":"timeseries","metrics":["sent","delivered","read","failed"],"bucket":"1d"}`,
	"rates":           `{"queryType":"table","metrics":["delivery_rate","read_rate"]}`,
	"campaigns":       `{"queryType":"table","metrics":["sent","delivery_rate","read_rate","conversion_rate","revenue"],"groupBy":["campaign"],"limit":20}`,
	"block_rate":      `{"queryType":"table","metrics":["block_rate"]}`,
	"conversion_rate": `{"queryType":"table","metrics":["conversion_rate"]}`,
}

type query struct{ name, sql string }

func readQueries(path string) ([]query, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []query
	for _, part := range bytes.Split(b, []byte("-- name: "))[1:] {
		nl := bytes.IndexByte(part, '\n')
		out = append(out, query{strings.TrimSpace(string(part[:nl])), strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(part[nl+1:])), ";"))})
	}
	return out, nil
}

func bind(sql string, from, to time.Time) string {
	lit := func(t time.Time) string {
		return "TIMESTAMPTZ '" + t.UTC().Format("2006-01-02 15:04:05.000000") + "+00'"
	}
	return strings.ReplaceAll(strings.ReplaceAll(sql, "$1", lit(from)), "$2", lit(to))
}

var timingRe = regexp.MustCompile(`Time: ([0-9.]+) ms`)

func main() {
	dir := flag.String("store", "", "store directory")
	rounds := flag.Int("rounds", 5, "rounds (each runs every query on every side once)")
	psql := flag.String("psql", "", "psql connection string; empty skips PostgreSQL")
	days := flag.Int("days", 7, "range length ending at the newest event")
	memMB := flag.Int("memory-mb", 0, "engine memory_limit (0: default)")
	sqlDir := flag.String("sql", "scripts/bench", "directory of raw_duckdb.sql and raw_postgres.sql")
	export := flag.String("export", "", "write the store's events to PREFIX.csv (for PostgreSQL's COPY) and PREFIX.ndjson, print their sizes and exit")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "--store DIR is required")
		os.Exit(2)
	}
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if *export != "" {
		must(exportEvents(*dir, *export))
		return
	}
	src, err := store.OpenSource(*dir)
	must(err)
	e, err := kpi.New(kpi.Options{Source: src, CheckEvery: time.Hour, MemoryLimitMB: *memMB})
	must(err)
	defer e.Close()
	start := time.Now()
	must(e.Refresh(ctx))
	st, err := e.Stats(ctx)
	must(err)
	fmt.Fprintf(os.Stderr, "engine: facts of %d events built in %s\n", st.Events, time.Since(start).Round(time.Millisecond))

	raw, err := store.OpenDuckDB("")
	must(err)
	defer raw.Close()
	files, _ := filepath.Glob(filepath.Join(*dir, "segments", "*.parquet"))
	list := make([]string, len(files))
	for i, f := range files {
		list[i] = store.SQLString(f)
	}
	start = time.Now()
	_, err = raw.Exec("CREATE TABLE events AS SELECT * FROM read_parquet([" + strings.Join(list, ", ") + "], union_by_name=true)")
	must(err)
	fmt.Fprintf(os.Stderr, "duckdb: raw events table loaded in %s\n", time.Since(start).Round(time.Millisecond))

	dq, err := readQueries(filepath.Join(*sqlDir, "raw_duckdb.sql"))
	must(err)
	pq, err := readQueries(filepath.Join(*sqlDir, "raw_postgres.sql"))
	must(err)
	pgSQL := map[string]string{}
	for _, q := range pq {
		pgSQL[q.name] = q.sql
	}
	to := st.MaxTS.Add(time.Second)
	from := to.AddDate(0, 0, -*days)
	times := map[string]map[string][]float64{} // query -> side -> ms
	for round := 0; round < *rounds; round++ {
		shift := time.Duration(round) * time.Millisecond // a new range each round: no cache hit
		f, t := from.Add(shift), to.Add(shift)
		for _, q := range dq {
			if times[q.name] == nil {
				times[q.name] = map[string][]float64{}
			}
			parsed, err := kpi.ParseQuery([]byte(engineQueries[q.name]))
			must(err)
			s := time.Now()
			_, err = e.Run(ctx, kpi.Request{Query: parsed, From: f, To: t, Interval: time.Hour, MaxDataPoints: 1200})
			must(err)
			times[q.name]["engine"] = append(times[q.name]["engine"], ms(time.Since(s)))

			s = time.Now()
			rows, err := raw.Query(bind(q.sql, f, t))
			must(err)
			for rows.Next() {
			}
			rows.Close()
			times[q.name]["duckdb"] = append(times[q.name]["duckdb"], ms(time.Since(s)))

			if *psql != "" && pgSQL[q.name] != "" {
				out, err := exec.Command("psql", *psql, "-X", "-q", "-o", "/dev/null", "-c", "\\timing on", "-c", bind(pgSQL[q.name], f, t)).CombinedOutput()
				if err != nil {
					must(fmt.Errorf("psql %s: %v: %s", q.name, err, out))
				}
				m := timingRe.FindSubmatch(out)
				if m == nil {
					must(fmt.Errorf("psql %s: no timing in %q", q.name, out))
				}
				v, _ := strconv.ParseFloat(string(m[1]), 64)
				times[q.name]["postgres"] = append(times[q.name]["postgres"], v)
			}
			fmt.Fprintf(os.Stderr, "round %d %s: engine %.1f ms, duckdb %.0f ms, postgres %v ms\n", round+1, q.name,
				last(times[q.name]["engine"]), last(times[q.name]["duckdb"]), lastOr(times[q.name]["postgres"]))
		}
	}
	fmt.Printf("| KPI | Blue Ticks median (ms) | raw DuckDB median (ms) | ratio | PostgreSQL median (ms) | ratio |\n|---|---|---|---|---|---|\n")
	for _, q := range dq {
		en, du := median(times[q.name]["engine"]), median(times[q.name]["duckdb"])
		pg := "—"
		pr := "—"
		if v := times[q.name]["postgres"]; len(v) > 0 {
			pg = fmt.Sprintf("%.0f", median(v))
			pr = fmt.Sprintf("%.0f×", median(v)/en)
		}
		fmt.Printf("| %s | %.1f | %.0f | %.0f× | %s | %s |\n", q.name, en, du, du/en, pg, pr)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func last(v []float64) float64   { return v[len(v)-1] }
func lastOr(v []float64) any {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v[len(v)-1])
}
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

// exportEvents writes the segments' events as CSV and NDJSON and prints bytes per event of
// the store and of each.
func exportEvents(dir, prefix string) error {
	db, err := store.OpenDuckDB("")
	if err != nil {
		return err
	}
	defer db.Close()
	glob := store.SQLString(filepath.Join(dir, "segments", "*.parquet"))
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM read_parquet(" + glob + ", union_by_name=true)").Scan(&n); err != nil {
		return err
	}
	cols := store.ColumnList()
	for _, f := range []struct{ ext, opts string }{{"csv", "FORMAT csv, HEADER"}, {"ndjson", "FORMAT json"}} {
		path := prefix + "." + f.ext
		if _, err := db.Exec(fmt.Sprintf("COPY (SELECT %s FROM read_parquet(%s, union_by_name=true)) TO %s (%s)", cols, glob, store.SQLString(path), f.opts)); err != nil {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d bytes, %.1f bytes/event\n", path, fi.Size(), float64(fi.Size())/float64(n))
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
