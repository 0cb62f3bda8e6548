package kpi_test

// Engine-level checks of the sandbox and the limits (docs/SECURITY.md), on real DuckDB
// stores: every attack of issue 6 gets its own subtest asserting the specific error.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// secStore is a small store directory and an engine over it.
type secStore struct {
	dir string
	e   *kpi.Engine
}

func secEvents() []events.Event {
	return []events.Event{
		sent("m1", at(9, 0), "c1", withCampaign("spring"), withCountry("IT")),
		delivered("m1", at(9, 1)),
		read("m1", at(9, 5)),
		sent("m2", at(10, 0), "c2", withCampaign("Frühling ☀️"), withCountry("DE")),
		delivered("m2", at(10, 1)),
		received("in1", at(10, 30), "c2", withReplyTo("m2")),
	}
}

func newSecStore(t *testing.T, opts kpi.Options, batches ...[]events.Event) *secStore {
	t.Helper()
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	for _, b := range batches {
		_, err := w.Append(context.Background(), b, store.AppendOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	opts.Source = src
	if opts.Threads == 0 {
		opts.Threads = 2
	}
	if opts.MemoryLimitMB == 0 {
		opts.MemoryLimitMB = 256
	}
	e, err := kpi.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return &secStore{dir: dir, e: e}
}

func (s *secStore) run(ctx context.Context, js string, from, to time.Time, maxPoints int64) (data.Frames, error) {
	q, err := kpi.ParseQuery([]byte(js))
	if err != nil {
		return nil, err
	}
	return s.e.Run(ctx, kpi.Request{Query: q, From: from, To: to, Interval: time.Minute, MaxDataPoints: maxPoints})
}

func (s *secStore) sql(ctx context.Context, text string) (data.Frames, error) {
	b, _ := json.Marshal(map[string]string{"queryType": "sql", "rawSql": text})
	return s.run(ctx, string(b), at(0, 0), at(23, 0), 1000)
}

// scalar runs a raw SQL that returns one value and gives it as text.
func (s *secStore) scalar(t *testing.T, text string) string {
	t.Helper()
	frames, err := s.sql(context.Background(), text)
	require.NoError(t, err, text)
	require.Len(t, frames, 1)
	require.Equal(t, 1, frames[0].Rows(), text)
	v, _ := frames[0].Fields[0].ConcreteAt(0)
	return fmt.Sprint(v)
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, store.SegmentsDir, "*.parquet"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	return segs
}

const (
	refusedNotSelect = "only a read-only SELECT (or WITH … SELECT)"
	refusedFile      = "raw SQL can read only the store's own files"
)

func TestRawSQLSandbox(t *testing.T) {
	s := newSecStore(t, kpi.Options{}, secEvents())
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("top secret\n"), 0o644))
	seg := segments(t, s.dir)[0]

	cases := []struct {
		name    string
		sql     string
		wantErr string // substring of the error
		noFile  string // a file that must not exist afterwards
	}{
		{"read_csv outside the store", "SELECT * FROM read_csv('/etc/passwd')", refusedFile, ""},
		{"read_csv of a file next to the store", "SELECT * FROM read_csv('" + secret + "')", refusedFile, ""},
		{"read_text", "SELECT * FROM read_text('/etc/passwd')", refusedFile, ""},
		{"read_blob", "SELECT * FROM read_blob('/etc/hostname')", refusedFile, ""},
		{"read_json", "SELECT * FROM read_json_auto('/etc/passwd')", refusedFile, ""},
		{"parquet_metadata", "SELECT * FROM parquet_metadata('/etc/passwd')", refusedFile, ""},
		{"glob of the root", "SELECT * FROM glob('/*')", refusedFile, ""},
		{"glob of the store's marker", "SELECT * FROM glob('" + s.dir + "/*')", refusedFile, ""},
		{"store marker file", "SELECT * FROM read_text('" + filepath.Join(s.dir, store.MarkerFile) + "')", refusedFile, ""},
		{"path traversal out of segments", "SELECT * FROM read_text('" + s.dir + "/segments/../../../../etc/passwd')", refusedFile, ""},
		{"replacement scan of a path", "SELECT * FROM '/etc/passwd'", "does not exist", ""},
		{"http", "SELECT * FROM read_csv('https://example.com/x.csv')", refusedFile, ""},
		{"getenv", "SELECT getenv('HOME')", "getenv does not exist", ""},
		{"secrets directory", "SELECT * FROM duckdb_secrets()", refusedFile, ""},
		{"extension not autoloaded", "SELECT * FROM sqlite_scan('" + secret + "', 't')", "not in the catalog", ""},
		{"COPY TO", "COPY (SELECT 1) TO '" + filepath.Join(outside, "copy.csv") + "'", refusedNotSelect, filepath.Join(outside, "copy.csv")},
		{"COPY TO hidden by a comment", "/* SELECT */ COPY (SELECT 1) TO '" + filepath.Join(outside, "c2.csv") + "'", refusedNotSelect, filepath.Join(outside, "c2.csv")},
		{"COPY inside query()", "SELECT * FROM query('COPY (SELECT 1) TO ''" + filepath.Join(outside, "q.csv") + "''')", "Expected a single SELECT statement", filepath.Join(outside, "q.csv")},
		{"EXPORT DATABASE", "EXPORT DATABASE '" + filepath.Join(outside, "export") + "'", refusedNotSelect, filepath.Join(outside, "export")},
		{"ATTACH", "ATTACH '" + filepath.Join(outside, "x.duckdb") + "' AS x", refusedNotSelect, filepath.Join(outside, "x.duckdb")},
		{"DETACH", "DETACH memory", refusedNotSelect, ""},
		{"INSTALL", "INSTALL httpfs", refusedNotSelect, ""},
		{"LOAD", "LOAD httpfs", refusedNotSelect, ""},
		{"SET", "SET enable_external_access = true", refusedNotSelect, ""},
		{"SET GLOBAL", "SET GLOBAL threads = 1", refusedNotSelect, ""},
		{"RESET", "RESET memory_limit", refusedNotSelect, ""},
		{"PRAGMA", "PRAGMA threads = 1", refusedNotSelect, ""},
		{"PRAGMA read", "PRAGMA version", refusedNotSelect, ""},
		{"CALL", "CALL pragma_version()", refusedNotSelect, ""},
		{"CREATE TABLE", "CREATE TABLE x AS SELECT 1", refusedNotSelect, ""},
		{"DROP VIEW", "DROP VIEW events", refusedNotSelect, ""},
		{"DELETE", "DELETE FROM g1.ev", refusedNotSelect, ""},
		{"CHECKPOINT", "CHECKPOINT", refusedNotSelect, ""},
		{"USE", "USE g1", refusedNotSelect, ""},
		{"EXPLAIN ANALYZE", "EXPLAIN ANALYZE SELECT 1", refusedNotSelect, ""},
		{"two SELECTs", "SELECT 1; SELECT 2", "exactly one SELECT statement, got 2", ""},
		{"SELECT then CREATE", "SELECT 1; CREATE TABLE pwned AS SELECT 1", refusedNotSelect, ""},
		{"SELECT then COPY", "SELECT 1; COPY (SELECT 1) TO '" + filepath.Join(outside, "multi.csv") + "'", refusedNotSelect, filepath.Join(outside, "multi.csv")},
		{"parenthesis escape from the row-limit wrapper", "SELECT 1) ; COPY (SELECT 1) TO '" + filepath.Join(outside, "wrap.csv") + "'; (SELECT 1", "does not parse", filepath.Join(outside, "wrap.csv")},
		{"unknown macro", "SELECT $__nope", "unknown macro", ""},
		{"out of memory", "SELECT list(range) FROM range(200000000)", "memoryLimitMB", ""},
		{"a result too large for memory", "SELECT repeat('x', 1000000) AS big FROM range(100000)", "result is larger than 64 MB", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.sql(context.Background(), c.sql)
			require.Error(t, err)
			assert.ErrorIs(t, err, kpi.ErrBadQuery)
			assert.Contains(t, err.Error(), c.wantErr)
			if c.noFile != "" {
				assert.NoFileExists(t, c.noFile)
				assert.NoDirExists(t, c.noFile)
			}
		})
	}
	t.Run("SELECT then CREATE never creates the table", func(t *testing.T) {
		assert.Equal(t, "0", s.scalar(t, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pwned'"))
	})
	t.Run("nothing was written outside the store", func(t *testing.T) {
		entries, err := os.ReadDir(outside)
		require.NoError(t, err)
		require.Len(t, entries, 1)
		assert.Equal(t, "secret.txt", entries[0].Name())
	})

	// What a sandboxed SELECT may do.
	allowed := []struct{ name, sql string }{
		{"WITH … SELECT", "WITH x AS (SELECT count(*) AS n FROM events) SELECT n FROM x"},
		{"FROM-first", "FROM events SELECT count(*)"},
		{"keywords in strings and comments", "SELECT 'COPY; ATTACH ''/etc/passwd''' AS s -- ; DROP VIEW events"},
		{"block comment hides nothing", "SELECT /* ; INSTALL httpfs; */ 1 AS one"},
		{"trailing semicolon", "SELECT 1 AS one;"},
		{"trailing comment", "SELECT 1 AS one -- no newline"},
		{"query() of a SELECT", "SELECT * FROM query('SELECT 42 AS a')"},
		{"the store's own segments", "SELECT count(*) FROM read_parquet('" + s.dir + "/segments/*.parquet')"},
		{"one segment by name", "SELECT count(*) FROM read_parquet('" + seg + "')"},
		{"DESCRIBE", "DESCRIBE events"},
	}
	for _, c := range allowed {
		t.Run("allowed: "+c.name, func(t *testing.T) {
			frames, err := s.sql(context.Background(), c.sql)
			require.NoError(t, err)
			require.NotEmpty(t, frames)
		})
	}
}

func TestRawSQLReadsOnlyTheStoresFiles(t *testing.T) {
	s := newSecStore(t, kpi.Options{}, secEvents())
	// The store's own segments hold the same events as the view: readable.
	n := s.scalar(t, "SELECT count(*) FROM read_parquet('"+s.dir+"/segments/*.parquet')")
	assert.Equal(t, fmt.Sprint(len(secEvents())), n)

	// A Parquet file outside the store (here: another store) is not.
	other := newSecStore(t, kpi.Options{}, secEvents())
	_, err := s.sql(context.Background(), "SELECT count(*) FROM read_parquet('"+other.dir+"/segments/*.parquet')")
	require.Error(t, err)
	assert.Contains(t, err.Error(), refusedFile)

	t.Run("DuckDB store: only the database file, not its directory", func(t *testing.T) {
		dir := t.TempDir()
		dbPath := filepath.Join(dir, "events.duckdb")
		writeDuckDBStore(t, dbPath)
		neighbour := filepath.Join(dir, "grafana.db")
		require.NoError(t, os.WriteFile(neighbour, []byte("not yours"), 0o600))
		src, err := store.OpenSource(dbPath)
		require.NoError(t, err)
		e, err := kpi.New(kpi.Options{Source: src, Threads: 1, MemoryLimitMB: 128})
		require.NoError(t, err)
		defer e.Close()
		ds := &secStore{dir: dir, e: e}
		assert.Equal(t, "1", ds.scalar(t, "SELECT count(*) FROM events"))
		_, err = ds.sql(context.Background(), "SELECT * FROM read_blob('"+neighbour+"')")
		require.Error(t, err)
		assert.Contains(t, err.Error(), refusedFile)
	})

	t.Run("single Parquet file: only that file", func(t *testing.T) {
		dir := t.TempDir()
		pq := filepath.Join(dir, "events.parquet")
		writeParquet(t, pq, "SELECT 'e1' AS event_id, TIMESTAMPTZ '2024-03-04 09:00:00+00' AS ts, 'sent' AS type, 'm1' AS message_id")
		neighbour := filepath.Join(dir, "notes.txt")
		require.NoError(t, os.WriteFile(neighbour, []byte("private"), 0o600))
		src, err := store.OpenSource(pq)
		require.NoError(t, err)
		e, err := kpi.New(kpi.Options{Source: src, Threads: 1, MemoryLimitMB: 128})
		require.NoError(t, err)
		defer e.Close()
		ps := &secStore{dir: dir, e: e}
		assert.Equal(t, "1", ps.scalar(t, "SELECT count(*) FROM events"))
		_, err = ps.sql(context.Background(), "SELECT * FROM read_text('"+neighbour+"')")
		require.Error(t, err)
		assert.Contains(t, err.Error(), refusedFile)
	})
}

// writeParquet writes the result of a SELECT to a Parquet file with a separate DuckDB.
func writeParquet(t *testing.T, path, sel string) {
	t.Helper()
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("COPY (" + sel + ") TO " + store.SQLString(path) + " (FORMAT parquet)")
	require.NoError(t, err)
}

func writeDuckDBStore(t *testing.T, path string) {
	t.Helper()
	db, err := store.OpenDuckDB(path)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("CREATE TABLE events AS SELECT 'e1' AS event_id, TIMESTAMPTZ '2024-03-04 09:00:00+00' AS ts, 'sent' AS type, 'm1' AS message_id")
	require.NoError(t, err)
}

func TestSettingsLocked(t *testing.T) {
	s := newSecStore(t, kpi.Options{MemoryLimitMB: 300, Threads: 1}, secEvents())
	want := map[string]string{
		"enable_external_access":       "false",
		"lock_configuration":           "true",
		"autoload_known_extensions":    "false",
		"autoinstall_known_extensions": "false",
		"threads":                      "1",
		// DuckDB's default: only the increments' connection raises it (incrementSettings).
		"dynamic_or_filter_threshold": "50",
	}
	check := func(t *testing.T) {
		for name, v := range want {
			assert.Equal(t, v, s.scalar(t, "SELECT current_setting('"+name+"')::VARCHAR"), name)
		}
		assert.Contains(t, s.scalar(t, "SELECT current_setting('memory_limit')"), "MiB")
		dirs := s.scalar(t, "SELECT current_setting('allowed_directories')::VARCHAR")
		assert.Contains(t, dirs, filepath.Join(s.dir, store.SegmentsDir))
		assert.NotContains(t, dirs, ".tmp", "the temp directory is not readable")
		// Spilling only into the engine's private directory, capped at max(4 × memory_limit, 16 GiB)
		// (300 MB here). DuckDB lets queries read its own spill directory and database file
		// (derived from the same store's events), but nothing next to them. Each snapshot's
		// DuckDB instance spills into a directory of its own (spill-g<n>).
		tmp := s.scalar(t, "SELECT current_setting('temp_directory')::VARCHAR")
		assert.Regexp(t, `/blueticks-engine-[0-9]+-[0-9]+/spill-g[0-9]+$`, tmp)
		assert.Contains(t, s.scalar(t, "SELECT current_setting('max_temp_directory_size')::VARCHAR"), "16.0 GiB")
		_, err := s.sql(context.Background(), "SELECT * FROM glob("+store.SQLString(filepath.Join(filepath.Dir(filepath.Dir(tmp)), "*"))+")")
		assert.Error(t, err, "the folder around the engine's directory is not listable")
	}
	check(t)
	// Every way a SELECT could try to change a setting for later queries.
	for _, attempt := range []string{
		"SET enable_external_access = true",
		"SELECT 1; SET threads = 8",
		"SELECT * FROM query('SET threads = 8')",
		"SELECT * FROM query('RESET lock_configuration')",
		"SELECT set_config('threads', '8', false)",
	} {
		_, err := s.sql(context.Background(), attempt)
		assert.Error(t, err, attempt)
	}
	// A query that sets nothing cannot change the next one.
	_, err := s.sql(context.Background(), "SELECT setseed(0.5)")
	require.NoError(t, err)
	check(t)
	// The connection increments run on has its own, set before the lock (incrementSettings).
	v, err := kpi.IncrementSetting(s.e, "dynamic_or_filter_threshold")
	require.NoError(t, err)
	assert.Equal(t, "16384", v)
}

func TestRawSQLRowLimit(t *testing.T) {
	s := newSecStore(t, kpi.Options{MaxRows: 10}, secEvents())
	t.Run("cut at maxRows with a notice", func(t *testing.T) {
		frames, err := s.sql(context.Background(), "SELECT range AS n FROM range(100)")
		require.NoError(t, err)
		require.Len(t, frames, 1)
		assert.Equal(t, 10, frames[0].Rows())
		require.NotNil(t, frames[0].Meta)
		require.Len(t, frames[0].Meta.Notices, 1)
		assert.Equal(t, data.NoticeSeverityWarning, frames[0].Meta.Notices[0].Severity)
		assert.Contains(t, frames[0].Meta.Notices[0].Text, "truncated to the first 10 rows")
	})
	t.Run("exactly maxRows: no notice", func(t *testing.T) {
		frames, err := s.sql(context.Background(), "SELECT range AS n FROM range(10)")
		require.NoError(t, err)
		assert.Equal(t, 10, frames[0].Rows())
		if frames[0].Meta != nil {
			assert.Empty(t, frames[0].Meta.Notices)
		}
	})
	t.Run("a huge result is never materialised", func(t *testing.T) {
		start := time.Now()
		frames, err := s.sql(context.Background(), "SELECT range AS n, repeat('x', 1000) AS pad FROM range(10000000000)")
		require.NoError(t, err)
		assert.Equal(t, 10, frames[0].Rows())
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("order is kept", func(t *testing.T) {
		frames, err := s.sql(context.Background(), "SELECT range AS n FROM range(100) ORDER BY n DESC")
		require.NoError(t, err)
		v, _ := frames[0].Fields[0].ConcreteAt(0)
		assert.EqualValues(t, 99, v)
	})
	t.Run("a time series keeps the notice", func(t *testing.T) {
		frames, err := s.sql(context.Background(), "SELECT to_timestamp(range * 60) AS time, range AS v FROM range(100)")
		require.NoError(t, err)
		require.NotNil(t, frames[0].Meta)
		require.NotEmpty(t, frames[0].Meta.Notices)
		assert.Contains(t, frames[0].Meta.Notices[0].Text, "truncated")
	})
}

// heavy is a cross join DuckDB cannot shortcut: ~10^12 comparisons.
const heavy = "SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE (a.range * 7 + b.range) % 1000003 = 17"

func TestTimeoutInterruptsDuckDB(t *testing.T) {
	s := newSecStore(t, kpi.Options{}, secEvents())
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := s.sql(ctx, heavy)
		took := time.Since(start)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, took, 3*time.Second, "DuckDB was interrupted")
		t.Logf("1 s timeout returned after %v", took.Round(time.Millisecond))
	})
	t.Run("cancel mid-query", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		_, err := s.sql(ctx, heavy)
		took := time.Since(start)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Less(t, took, 2*time.Second)
		t.Logf("cancel after 300 ms returned after %v", took.Round(time.Millisecond))
	})
	t.Run("structured query under a deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		time.Sleep(time.Millisecond)
		_, err := s.run(ctx, `{"queryType":"table","metrics":["sent"]}`, at(0, 0), at(23, 0), 100)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("the next query answers", func(t *testing.T) {
		// Not a speed check: an uninterrupted `heavy` would hold DuckDB's threads for
		// many minutes, so 10 s still tells; 1 s failed on a loaded machine (1.4 s).
		start := time.Now()
		assert.Equal(t, "6", s.scalar(t, "SELECT count(*) FROM events"))
		assert.Less(t, time.Since(start), 10*time.Second)
	})
}

func TestAbsurdRanges(t *testing.T) {
	s := newSecStore(t, kpi.Options{}, secEvents())
	y1 := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	y9999 := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	cases := []struct {
		name, query string
		from, to    time.Time
		wantErr     string // "" = a bounded answer
	}{
		{"timeseries auto bucket", `{"queryType":"timeseries","metrics":["sent"]}`, y1, y9999, "too long"},
		{"timeseries weekly", `{"queryType":"timeseries","metrics":["sent"],"bucket":"1w"}`, y1, y9999, "points over this time range"},
		{"timeseries minutes", `{"queryType":"timeseries","metrics":["sent"],"bucket":"1m"}`, y1, y9999, "points over this time range"},
		{"quality", `{"queryType":"timeseries","metrics":["quality_rating"]}`, y1, y9999, "too long"},
		{"table", `{"queryType":"table","metrics":["sent","delivery_rate"],"groupBy":["campaign"]}`, y1, y9999, ""},
		{"quality table", `{"queryType":"table","metrics":["quality_rating"]}`, y1, y9999, ""},
		{"funnel", `{"queryType":"funnel"}`, y1, y9999, ""},
		{"ab", `{"queryType":"ab","metric":"delivery_rate"}`, y1, y9999, ""},
		{"retention by day", `{"queryType":"retention","period":"day"}`, y1, y9999, ""},
		{"retention by month", `{"queryType":"retention","period":"month","timezone":"Pacific/Kiritimati"}`, y1, y9999, ""},
		{"sql with macros", `{"queryType":"sql","rawSql":"SELECT count(*) FROM events WHERE $__timeFilter(ts)"}`, y1, y9999, ""},
		{"before year 1", `{"queryType":"table","metrics":["sent"]}`, time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC), y9999, "years 1 to 9999"},
		{"after year 9999", `{"queryType":"table","metrics":["sent"]}`, y1, time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC), "years 1 to 9999"},
		{"empty range", `{"queryType":"table","metrics":["sent"]}`, y9999, y1, "time range is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			frames, err := s.run(ctx, c.query, c.from, c.to, 1000)
			assert.Less(t, time.Since(start), 5*time.Second)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, kpi.ErrBadQuery)
				assert.Contains(t, err.Error(), c.wantErr)
				return
			}
			require.NoError(t, err)
			cells := 0
			for _, f := range frames {
				cells += f.Rows() * len(f.Fields)
			}
			assert.Less(t, cells, 100_000, "bounded answer")
		})
	}
}

func TestMaxDataPoints(t *testing.T) {
	s := newSecStore(t, kpi.Options{}, secEvents())
	for _, mdp := range []int64{0, -1, 1, 1_000_000_000} {
		t.Run(fmt.Sprint(mdp), func(t *testing.T) {
			frames, err := s.run(context.Background(), `{"queryType":"timeseries","metrics":["sent"]}`, base, base.AddDate(0, 0, 30), mdp)
			require.NoError(t, err)
			require.Len(t, frames, 1)
			n := frames[0].Rows()
			assert.LessOrEqual(t, n, kpi.MaxPoints)
			if mdp > 0 && mdp < kpi.MaxPoints {
				// The widest bucket (a week) still gives 5 points over 30 days.
				assert.LessOrEqual(t, n, 6)
			}
		})
	}
	t.Run("explicit bucket over the cap", func(t *testing.T) {
		_, err := s.run(context.Background(), `{"queryType":"timeseries","metrics":["sent"],"bucket":"1m"}`, base, base.AddDate(1, 0, 0), 1_000_000_000)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "at most 20000")
	})
}

func TestHugeInput(t *testing.T) {
	list := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, ",")
	}
	cases := []struct{ name, js, wantErr string }{
		{"1001 filter values", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","values":[` + list(1001, func(i int) string { return fmt.Sprintf("%q", fmt.Sprint(i)) }) + `]}]}`, "too many values"},
		{"1001 metrics", `{"queryType":"table","metrics":[` + list(1001, func(int) string { return `"sent"` }) + `]}`, "too many"},
		{"too many filter values in all", `{"queryType":"table","metrics":["sent"],"filters":[` + list(20, func(int) string {
			return `{"dimension":"campaign","values":[` + list(1000, func(i int) string { return fmt.Sprintf(`"v%d"`, i) }) + `]}`
		}) + `]}`, "filter values in all"},
		{"a huge filter value", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","values":["` + strings.Repeat("x", 100_000) + `"]}]}`, "too long"},
		{"a huge search", `{"queryType":"values","dimension":"campaign","search":"` + strings.Repeat("x", 100_000) + `"}`, "search is too long"},
		{"a huge rawSql", `{"queryType":"sql","rawSql":"SELECT ` + strings.Repeat("1+", 60_000) + `1"}`, "too long"},
		{"deep nesting", strings.Repeat(`{"a":`, 20_000) + "1" + strings.Repeat("}", 20_000), "not a JSON object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := kpi.ParseQuery([]byte(c.js))
			require.Error(t, err)
			assert.ErrorIs(t, err, kpi.ErrBadQuery)
			assert.Contains(t, err.Error(), c.wantErr)
		})
	}
}

func TestMalformedQueries(t *testing.T) {
	cases := []struct{ name, js, wantErr string }{
		{"empty", ``, "empty query"},
		{"not JSON", `{"queryType":`, "not a JSON object"},
		{"array", `[1,2]`, "not a JSON object"},
		{"wrong type: metrics", `{"queryType":"table","metrics":"sent"}`, "field metrics has the wrong type"},
		{"wrong type: limit", `{"queryType":"table","metrics":["sent"],"limit":"ten"}`, "field limit has the wrong type"},
		{"float limit", `{"queryType":"table","metrics":["sent"],"limit":1.5}`, "field limit has the wrong type"},
		{"huge limit", `{"queryType":"table","metrics":["sent"],"limit":1e300}`, "limit"},
		{"wrong type: filter values", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","values":[{"a":1}]}]}`, "values must be strings or numbers"},
		{"unknown field", `{"queryType":"table","metrics":["sent"],"sql":"DROP"}`, "unknown field sql"},
		{"unknown metric with quote", `{"queryType":"table","metrics":["sent'; DROP VIEW events; --"]}`, "unknown metric"},
		{"unknown dimension", `{"queryType":"table","metrics":["sent"],"groupBy":["campaign\"; --"]}`, "unknown groupBy dimension"},
		{"bad op", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","op":"like","values":["%"]}]}`, "unknown op"},
		{"bad bucket", `{"queryType":"timeseries","metrics":["sent"],"bucket":"7m"}`, "bucket"},
		{"bad time zone", `{"queryType":"timeseries","metrics":["sent"],"timezone":"Mars/Olympus"}`, "not an IANA time zone"},
		{"time zone with a quote", `{"queryType":"timeseries","metrics":["sent"],"timezone":"Europe/Rome'"}`, "not an IANA time zone"},
		{"time zone path", `{"queryType":"timeseries","metrics":["sent"],"timezone":"../../etc/passwd"}`, "not an IANA time zone"},
		{"time zone offset", `{"queryType":"timeseries","metrics":["sent"],"timezone":"+02:00"}`, "not an IANA time zone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := kpi.ParseQuery([]byte(c.js))
			require.Error(t, err)
			assert.ErrorIs(t, err, kpi.ErrBadQuery)
			assert.Contains(t, err.Error(), c.wantErr)
		})
	}
}

func TestHostileFilterValues(t *testing.T) {
	s := newSecStore(t, kpi.Options{}, secEvents())
	for _, v := range []string{
		"'; DROP VIEW events; --", `" OR 1=1 --`, "%", "_", `\`, "😀", "Frühling", "\u202e", "a\x00b",
		"$__timeFilter(ts)", "?", "$1", "'' OR ''='", strings.Repeat("ü", 1000),
	} {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			for _, shape := range []string{
				`{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","values":[%s]}]}`,
				`{"queryType":"timeseries","metrics":["sent"],"bucket":"1h","filters":[{"dimension":"country","values":[%s]}]}`,
				`{"queryType":"funnel","filters":[{"dimension":"campaign","values":[%s]}]}`,
				`{"queryType":"retention","filters":[{"dimension":"campaign","values":[%s]}]}`,
				`{"queryType":"values","dimension":"campaign","filters":[{"dimension":"campaign","values":[%s]}]}`,
				`{"queryType":"timeseries","metrics":["quality_rating"],"bucket":"1h","filters":[{"dimension":"business_number","values":[%s]}]}`,
			} {
				b, _ := json.Marshal(v)
				frames, err := s.run(context.Background(), fmt.Sprintf(shape, b), at(0, 0), at(23, 0), 1000)
				require.NoError(t, err, shape)
				for _, f := range frames {
					for _, fl := range f.Fields {
						if fl.Name != "messages" && fl.Name != "sent" {
							continue
						}
						for i := 0; i < fl.Len(); i++ {
							x, _ := fl.ConcreteAt(i)
							assert.EqualValues(t, 0.0, x, "no row matches %q", v)
						}
					}
				}
			}
			b, _ := json.Marshal(v)
			_, err := s.run(context.Background(), `{"queryType":"values","dimension":"campaign","search":`+string(b)+`}`, at(0, 0), at(23, 0), 1000)
			require.NoError(t, err)
		})
	}
	t.Run("the unicode value itself matches", func(t *testing.T) {
		frames, err := s.run(context.Background(), `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","values":["Frühling ☀️"]}]}`, at(0, 0), at(23, 0), 1000)
		require.NoError(t, err)
		v, _ := frames[0].Fields[0].ConcreteAt(0)
		assert.EqualValues(t, 1.0, v)
	})
	t.Run("the store is intact", func(t *testing.T) {
		assert.Equal(t, "6", s.scalar(t, "SELECT count(*) FROM events"))
	})
}

func TestNaNAndInfStayValidJSON(t *testing.T) {
	s := newSecStore(t, kpi.Options{}, secEvents())
	frames, err := s.sql(context.Background(), "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, '-inf'::DOUBLE AS j, 1e308 * 10 AS o")
	require.NoError(t, err)
	b, err := json.Marshal(frames[0])
	require.NoError(t, err)
	assert.True(t, json.Valid(b), string(b))

	// A user's Parquet store with NaN and Inf money values.
	dir := t.TempDir()
	pq := filepath.Join(dir, "events.parquet")
	writeParquet(t, pq, `SELECT * FROM (VALUES
		('e1', TIMESTAMPTZ '2024-03-04 09:00:00+00', 'converted', 'c1', 'nan'::DOUBLE, 'spring'),
		('e2', TIMESTAMPTZ '2024-03-04 10:00:00+00', 'converted', 'c2', 'inf'::DOUBLE, 'spring'),
		('e3', TIMESTAMPTZ '2024-03-04 11:00:00+00', 'converted', 'c3', '-inf'::DOUBLE, 'autumn')
	) t(event_id, ts, type, contact_id, value, campaign)`)
	src, err := store.OpenSource(pq)
	require.NoError(t, err)
	e, err := kpi.New(kpi.Options{Source: src, Threads: 1, MemoryLimitMB: 128})
	require.NoError(t, err)
	defer e.Close()
	ps := &secStore{dir: dir, e: e}
	for _, js := range []string{
		`{"queryType":"table","metrics":["revenue","conversions_total"],"groupBy":["campaign"]}`,
		`{"queryType":"timeseries","metrics":["revenue"],"bucket":"1h","groupBy":["campaign"]}`,
	} {
		frames, err := ps.run(context.Background(), js, at(0, 0), at(23, 0), 1000)
		require.NoError(t, err, js)
		for _, f := range frames {
			b, err := json.Marshal(f)
			require.NoError(t, err)
			assert.True(t, json.Valid(b), string(b))
		}
	}
}

func TestEmptyAndBrokenStores(t *testing.T) {
	t.Run("empty store", func(t *testing.T) {
		s := newSecStore(t, kpi.Options{})
		st, err := s.e.Stats(context.Background())
		require.NoError(t, err)
		assert.Zero(t, st.Events)
		frames, err := s.run(context.Background(), `{"queryType":"timeseries","metrics":["sent","delivery_rate"],"bucket":"1h"}`, at(0, 0), at(3, 0), 100)
		require.NoError(t, err)
		require.Len(t, frames, 1)
		assert.Equal(t, 3, frames[0].Rows())
		assert.Equal(t, "0", s.scalar(t, "SELECT count(*) FROM events"))
	})

	garbage := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, store.SegmentsDir, "zz-garbage.parquet")
		require.NoError(t, os.WriteFile(p, []byte("this is not parquet at all, just garbage bytes"), 0o644))
		return p
	}
	truncated := func(t *testing.T, dir string) string {
		segs := segments(t, dir)
		b, err := os.ReadFile(segs[0])
		require.NoError(t, err)
		p := filepath.Join(dir, store.SegmentsDir, "zz-truncated.parquet")
		require.NoError(t, os.WriteFile(p, b[:len(b)/2], 0o644))
		return p
	}
	for name, corrupt := range map[string]func(*testing.T, string) string{"garbage segment": garbage, "truncated segment": truncated} {
		t.Run(name+" before the first snapshot", func(t *testing.T) {
			s := newSecStore(t, kpi.Options{}, secEvents())
			bad := corrupt(t, s.dir)
			_, err := s.e.Stats(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), filepath.Base(bad), "the error names the file")
			_, err = s.run(context.Background(), `{"queryType":"table","metrics":["sent"]}`, at(0, 0), at(23, 0), 100)
			require.Error(t, err)
			assert.Contains(t, err.Error(), filepath.Base(bad))
		})
		t.Run(name+" after a good snapshot", func(t *testing.T) {
			s := newSecStore(t, kpi.Options{CheckEvery: time.Millisecond}, secEvents())
			require.NoError(t, s.e.Refresh(context.Background()))
			bad := corrupt(t, s.dir)
			// Refresh waits for a look at the store (the watcher's may be running): a fixed
			// sleep raced with it on a loaded machine.
			require.NoError(t, s.e.Refresh(context.Background()))
			// Queries keep reading the last good snapshot …
			frames, err := s.run(context.Background(), `{"queryType":"table","metrics":["sent"]}`, at(0, 0), at(23, 0), 100)
			require.NoError(t, err)
			v, _ := frames[0].Fields[0].ConcreteAt(0)
			assert.EqualValues(t, 2.0, v)
			// … and the health check says which file is broken.
			_, err = s.e.Stats(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), filepath.Base(bad))
			// Once the file is removed, all is well again.
			require.NoError(t, os.Remove(bad))
			require.NoError(t, s.e.Refresh(context.Background()))
			_, err = s.e.Stats(context.Background())
			require.NoError(t, err)
		})
	}
	t.Run("DuckDB store that is not a database", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "events.duckdb")
		require.NoError(t, os.WriteFile(p, []byte("garbage"), 0o644))
		src, err := store.OpenSource(p)
		require.NoError(t, err)
		e, err := kpi.New(kpi.Options{Source: src, Threads: 1, MemoryLimitMB: 128})
		require.NoError(t, err)
		defer e.Close()
		_, err = e.Stats(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), p)
	})
}
