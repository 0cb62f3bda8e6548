package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/importer"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/models"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

var errHelp = errors.New("help")

// stdout and stderr are variables so tests can capture them.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// newFlags returns a verb's flag set, holding the flags every verb takes: --log-level,
// which starts at logDefault.
func newFlags(name string, logDefault logLevel) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := logDefault
	fs.Var(&level, "log-level", "least severe `level` of the log lines written to stderr: debug, info, warn or error")
	return fs
}

// parseFlags parses a verb's flags and applies the shared ones: the SDK's logger, which
// pkg/kpi logs through (a debug line per build step), writes from --log-level up.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	log.DefaultLogger = log.NewWithLevel(flagLogLevel(fs).sdk())
	return nil
}

// logLevel is the value of --log-level.
type logLevel string

const (
	levelDebug logLevel = "debug"
	levelInfo  logLevel = "info"
	levelWarn  logLevel = "warn"
	levelError logLevel = "error"
)

func (l *logLevel) String() string { return string(*l) }

// Set takes a level's name in any case.
func (l *logLevel) Set(s string) error {
	switch v := logLevel(strings.ToLower(s)); v {
	case levelDebug, levelInfo, levelWarn, levelError:
		*l = v
		return nil
	}
	return errors.New("use debug, info, warn or error")
}

// sdk is the level for the plugin SDK's logger.
func (l logLevel) sdk() log.Level {
	return map[logLevel]log.Level{levelDebug: log.Debug, levelInfo: log.Info, levelWarn: log.Warn, levelError: log.Error}[l]
}

// slog is the level for a log/slog handler.
func (l logLevel) slog() slog.Level {
	return map[logLevel]slog.Level{levelDebug: slog.LevelDebug, levelInfo: slog.LevelInfo, levelWarn: slog.LevelWarn, levelError: slog.LevelError}[l]
}

// flagLogLevel is the --log-level of a flag set made by newFlags.
func flagLogLevel(fs *flag.FlagSet) logLevel {
	return *fs.Lookup("log-level").Value.(*logLevel)
}

// runDemo writes a demo store: blueticks demo --store DIR [--events N] [--days D] [--seed S].
func runDemo(ctx context.Context, args []string) error {
	fs := newFlags("demo", levelWarn)
	dir := fs.String("store", "", "store directory to write (created if missing)")
	n := fs.Int("events", 1_000_000, "approximate number of events")
	days := fs.Int("days", 90, "days of history, ending now")
	seed := fs.Int64("seed", 1, "random seed (same seed and end: same events)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--store DIR is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *n <= 0 || *days <= 0 {
		return errors.New("--events and --days must be positive")
	}
	w, err := store.OpenWriter(*dir)
	if err != nil {
		return err
	}
	defer w.Close()
	start := time.Now()
	batch := make([]events.Event, 0, importer.BatchSize)
	written := 0
	flush := func() error {
		res, err := w.Append(ctx, batch, store.AppendOptions{})
		written += res.Written
		batch = batch[:0]
		return err
	}
	err = demo.Generate(demo.Config{Events: *n, Days: *days, Seed: *seed, End: time.Now().UTC()}, func(e *events.Event) error {
		batch = append(batch, e.Clone()) // the generator reuses e after emit returns
		if len(batch) >= importer.BatchSize {
			return flush()
		}
		return ctx.Err()
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "wrote %d events to %s in %s (%.0f events/s)\n", written, *dir, el.Round(time.Millisecond), float64(written)/el.Seconds())
	return nil
}

// runImport loads files: blueticks import --store DIR FILE...
func runImport(ctx context.Context, args []string) error {
	fs := newFlags("import", levelWarn)
	dir := fs.String("store", "", "store directory (created if missing)")
	maxShown := fs.Int("show-rejected", 50, "how many rejected rows to print")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--store DIR is required")
	}
	if fs.NArg() == 0 {
		return errors.New("name at least one file to import (.ndjson, .jsonl, .csv, .parquet)")
	}
	w, err := store.OpenWriter(*dir)
	if err != nil {
		return err
	}
	defer w.Close()
	start := time.Now()
	rep, err := importer.Import(ctx, w, fs.Args())
	for i, r := range rep.Rejected {
		if i >= *maxShown {
			fmt.Fprintf(stderr, "... and %d more rejected rows\n", rep.RejectedN-*maxShown)
			break
		}
		fmt.Fprintf(stderr, "rejected %s\n", r)
	}
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "read %d rows: %d new events stored, %d duplicates skipped, %d rejected (%s, %.0f rows/s)\n",
		rep.Read, rep.Written, rep.Duplicates, rep.RejectedN, el.Round(time.Millisecond), float64(rep.Read)/el.Seconds())
	if rep.RejectedN > 0 {
		return fmt.Errorf("%d rows were rejected (the valid rows were stored)", rep.RejectedN)
	}
	return nil
}

// runQuery prints KPIs: blueticks query --store DIR --from T --to T 'QUERY-JSON'.
func runQuery(ctx context.Context, args []string) error {
	fs := newFlags("query", levelWarn)
	dir := fs.String("store", "", "store path (a store directory, a .duckdb file or .parquet files); empty: the embedded demo store")
	fromS := fs.String("from", "now-7d", "start of the time range")
	toS := fs.String("to", "now", "end of the time range")
	format := fs.String("format", "table", "output: table, json or csv")
	maxPoints := fs.Int64("max-points", 1000, "most buckets per series when the query has no bucket")
	factsDir := fs.String("facts-dir", "", "where the store's derived facts are kept between runs, so the next query on it does not build them again (default: "+cliFactsDir()+"); none: not kept")
	memMB := fs.Int("memory-limit-mb", kpi.DefaultMemoryLimitMB, "DuckDB's memory limit while answering and adding new events to kept facts, in MB (the data source's memoryLimitMB)")
	buildMB := fs.Int("build-memory-limit-mb", kpi.DefaultBuildMemoryLimitMB, "DuckDB's memory limit while building the facts in full, in MB, at least --memory-limit-mb (the data source's buildMemoryLimitMB)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"memory-limit-mb", *memMB}, {"build-memory-limit-mb", *buildMB}} {
		if f.v < 1 || f.v > models.MaxMemoryLimitMB {
			return fmt.Errorf("--%s %d is out of range (1 to %d)", f.name, f.v, models.MaxMemoryLimitMB)
		}
	}
	if fs.NArg() != 1 {
		return errors.New(`give exactly one query as JSON, e.g. '{"queryType":"table","metrics":["delivery_rate"],"groupBy":["campaign"]}'`)
	}
	now := time.Now().UTC()
	from, err := ParseTimeArg(*fromS, now)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to, err := ParseTimeArg(*toS, now)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	q, err := kpi.ParseQuery([]byte(fs.Arg(0)))
	if err != nil {
		return err
	}
	opts := kpi.Options{Demo: demo.Config{Events: 300_000, Days: 90, Seed: 1}, MemoryLimitMB: *memMB, BuildMemoryLimitMB: *buildMB,
		BuildMemorySetting: "--build-memory-limit-mb"}
	switch *factsDir {
	case "":
		opts.FactsDir = cliFactsDir()
	case "none":
	default:
		opts.FactsDir = *factsDir
	}
	if *dir != "" {
		src, err := store.OpenSource(*dir)
		if err != nil {
			return err
		}
		opts.Source = src
	}
	e, err := kpi.New(opts)
	if err != nil {
		return err
	}
	defer e.Close()
	if opts.Source != nil {
		// A one-off query answers the store as it is now: when kept facts need a full
		// build (the store lost segments since), wait for it rather than answer from them.
		if err := e.Refresh(ctx); err != nil {
			return err
		}
		if _, err := e.Stats(ctx); err != nil {
			return err
		}
	}
	frames, err := e.Run(ctx, kpi.Request{Query: q, From: from, To: to, Interval: time.Minute, MaxDataPoints: *maxPoints})
	if err != nil {
		return err
	}
	return printFrames(stdout, frames, *format)
}

// cliFactsDir is where query keeps facts by default: the user's cache directory
// ($XDG_CACHE_HOME or ~/.cache: blueticks/facts), else the system's temporary directory.
func cliFactsDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "blueticks", "facts")
	}
	return kpi.DefaultFactsDir()
}

var relTime = regexp.MustCompile(`^now(?:-([0-9]+)([mhdw]))?$`)

// ParseTimeArg reads now, now-7d, an RFC 3339 time or a date.
func ParseTimeArg(s string, now time.Time) (time.Time, error) {
	if m := relTime.FindStringSubmatch(strings.TrimSpace(s)); m != nil {
		if m[1] == "" {
			return now, nil
		}
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
		return now.Add(-time.Duration(n) * unit), nil
	}
	return events.ParseTime(s)
}

func printFrames(w io.Writer, frames data.Frames, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(frames)
	case "csv":
		cw := csv.NewWriter(w)
		for _, f := range frames {
			header := make([]string, len(f.Fields))
			for i, fld := range f.Fields {
				header[i] = fieldTitle(fld)
			}
			_ = cw.Write(header)
			for r := 0; r < f.Rows(); r++ {
				rec := make([]string, len(f.Fields))
				for i, fld := range f.Fields {
					rec[i] = cellText(fld, r)
				}
				_ = cw.Write(rec)
			}
		}
		cw.Flush()
		return cw.Error()
	case "table":
		for _, f := range frames {
			printTable(w, f)
		}
		return nil
	}
	return fmt.Errorf("unknown --format %q (use table, json or csv)", format)
}

func fieldTitle(f *data.Field) string {
	if len(f.Labels) > 0 {
		return f.Name + " " + f.Labels.String()
	}
	return f.Name
}

func cellText(f *data.Field, row int) string {
	v, ok := f.ConcreteAt(row)
	if !ok {
		return "null"
	}
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04")
	case float64:
		unit := ""
		if f.Config != nil {
			unit = f.Config.Unit
		}
		if unit == "percentunit" {
			return strconv.FormatFloat(x*100, 'f', 2, 64) + "%"
		}
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', 3, 64)
	}
	return fmt.Sprint(v)
}

// printTable prints a frame as an aligned text table.
func printTable(w io.Writer, f *data.Frame) {
	cols := len(f.Fields)
	cells := make([][]string, f.Rows()+1)
	cells[0] = make([]string, cols)
	for i, fld := range f.Fields {
		cells[0][i] = fieldTitle(fld)
	}
	for r := 0; r < f.Rows(); r++ {
		cells[r+1] = make([]string, cols)
		for i, fld := range f.Fields {
			cells[r+1][i] = cellText(fld, r)
		}
	}
	widths := make([]int, cols)
	for _, row := range cells {
		for i, c := range row {
			if len(c) > widths[i] {
				widths[i] = len(c)
			}
		}
	}
	for ri, row := range cells {
		for i, c := range row {
			if i > 0 {
				fmt.Fprint(w, "  ")
			}
			fmt.Fprintf(w, "%-*s", widths[i], c)
		}
		fmt.Fprintln(w)
		if ri == 0 {
			for i := range row {
				if i > 0 {
					fmt.Fprint(w, "  ")
				}
				fmt.Fprint(w, strings.Repeat("-", widths[i]))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
}
