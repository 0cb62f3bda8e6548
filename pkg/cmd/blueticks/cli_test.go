package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// cli runs the CLI in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	stdout, stderr = &out, &errb
	defer func() { stdout, stderr = os.Stdout, os.Stderr }()
	code := run(context.Background(), args)
	return code, out.String(), errb.String()
}

// cliProcessEnv makes the test binary run the CLI instead of the tests (cliProcess).
const cliProcessEnv = "BLUETICKS_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliProcessEnv) != "" {
		main() // exits; the arguments are the CLI's
	}
	// query keeps facts in the user's cache directory by default: keep this run's apart
	// from the machine's.
	tmp, err := os.MkdirTemp("", "blueticks-cli-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", tmp)
	os.Setenv("TMPDIR", tmp)
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// cliProcess runs the CLI in a child process (this test binary, running main) and returns
// its exit code and output. Unlike cli it sees what is written to the process's own
// stderr, as the SDK's logger does.
func cliProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), cliProcessEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	var exit *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func TestDemoImportQuery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	code, out, errs := cli(t, "demo", "--store", dir, "--events", "30000", "--days", "14", "--seed", "3")
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `wrote [0-9]+ events to `, out)

	code, out, errs = cli(t, "query", "--store", dir, "--from", "now-14d", "--to", "now",
		`{"queryType":"table","metrics":["sent","delivery_rate"],"groupBy":["business_number"]}`)
	require.Equal(t, 0, code, errs)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.GreaterOrEqual(t, len(lines), 4, out)
	assert.Contains(t, lines[0], "business_number")
	assert.Contains(t, lines[0], "delivery_rate")
	assert.Regexp(t, `[0-9]+\.[0-9]{2}%`, lines[2])

	// Import: valid rows land, rejected rows are reported with file and line, exit 1.
	f := filepath.Join(t.TempDir(), "crm.ndjson")
	require.NoError(t, os.WriteFile(f, []byte(
		`{"event_id":"crm-1","ts":"2026-03-01T10:00:00Z","type":"converted","contact_id":"c_1","value":50,"currency":"EUR"}`+"\n"+
			`{"event_id":"crm-2","ts":"2026-03-01T10:00:00Z","type":"converted","contact_id":"c_1","value":"fifty"}`+"\n"), 0o644))
	code, out, errs = cli(t, "import", "--store", dir, f)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "1 new events stored")
	assert.Contains(t, errs, "crm.ndjson:2: value \"fifty\" is not a number")
	assert.Contains(t, errs, "1 rows were rejected (the valid rows were stored)")

	segs, _ := store.ListSegments(dir)
	code, out, _ = cli(t, "import", "--store", dir, f)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "0 new events stored, 1 duplicates skipped")
	segs2, _ := store.ListSegments(dir)
	assert.Equal(t, len(segs), len(segs2), "importing again changes nothing")

	code, out, errs = cli(t, "query", "--store", dir, "--from", "2026-03-01", "--to", "2026-03-02", "--format", "csv",
		`{"queryType":"table","metrics":["conversions_total"]}`)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "conversions_total\n1\n", out)
}

func TestUserDuckDBAndParquetSources(t *testing.T) {
	dir := t.TempDir()
	db, err := store.OpenDuckDB(filepath.Join(dir, "crm.duckdb"))
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE events AS SELECT * FROM (VALUES
		('s1', TIMESTAMPTZ '2026-03-01 10:00:00+00', 'sent', 'm1', 'campaign', 'spring'),
		('s2', TIMESTAMPTZ '2026-03-01 10:05:00+00', 'sent', 'm2', 'campaign', 'spring'),
		('d1', TIMESTAMPTZ '2026-03-01 10:00:09+00', 'delivered', 'm1', NULL, NULL)
	) t(event_id, ts, type, message_id, sender, campaign)`)
	require.NoError(t, err)
	_, err = db.Exec(`COPY events TO '` + filepath.Join(dir, "events.parquet") + `' (FORMAT parquet)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	q := `{"queryType":"table","metrics":["sent","delivery_rate"],"groupBy":["campaign"]}`
	for _, src := range []string{filepath.Join(dir, "crm.duckdb"), filepath.Join(dir, "events.parquet"), filepath.Join(dir, "*.parquet")} {
		code, out, errs := cli(t, "query", "--store", src, "--from", "2026-03-01", "--to", "2026-03-02", "--format", "csv", q)
		require.Equal(t, 0, code, src+": "+errs)
		assert.Equal(t, "campaign,sent,delivery_rate\nspring,2,50.00%\n", out, src)
	}
}

func TestErrorsExitNonZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"demo"}, 1, "--store DIR is required"},
		{[]string{"import", "--store", t.TempDir()}, 1, "name at least one file"},
		{[]string{"import", "--store", t.TempDir(), "x.xlsx"}, 1, `unknown file type ".xlsx"`},
		{[]string{"query", "--store", "/nonexistent/store", `{"metrics":["sent"]}`}, 1, "does not exist"},
		{[]string{"query", `{"queryType":"table","metrics":["opens"]}`}, 1, `unknown metric "opens"`},
		{[]string{"query", "--from", "yesterday", `{"metrics":["sent"]}`}, 1, "--from:"},
		{[]string{"query"}, 1, "give exactly one query"},
		{[]string{"serve", "--store", t.TempDir(), "--flush-idle", "-1s"}, 1, "--flush-idle must be 0 or more"},
		// Every verb takes --log-level, in any case, and names a bad value and the good ones.
		{[]string{"demo", "--log-level", "ERROR"}, 1, "--store DIR is required"},
		{[]string{"demo", "--log-level", "loud"}, 1, `blueticks demo: invalid value "loud" for flag -log-level: use debug, info, warn or error`},
		{[]string{"import", "--log-level", "loud"}, 1, `blueticks import: invalid value "loud" for flag -log-level: use debug, info, warn or error`},
		{[]string{"query", "--log-level", "loud"}, 1, `blueticks query: invalid value "loud" for flag -log-level: use debug, info, warn or error`},
		{[]string{"serve", "--log-level", "loud"}, 1, `blueticks serve: invalid value "loud" for flag -log-level: use debug, info, warn or error`},
	} {
		code, _, errs := cli(t, tc.args...)
		assert.Equal(t, tc.code, code, tc.args)
		assert.Contains(t, errs, tc.want, tc.args)
	}
}

// The SDK's logger, through which pkg/kpi writes a debug line per build step, writes
// warnings and errors only unless --log-level says otherwise.
func TestLogLevel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	code, _, errs := cli(t, "demo", "--store", dir, "--events", "3000", "--days", "7")
	require.Equal(t, 0, code, errs)
	query := []string{"query", "--store", dir, "--from", "now-8d", "--format", "csv"}
	q := `{"queryType":"table","metrics":["sent"]}`

	code, quiet, errs := cliProcess(t, slices.Concat(query, []string{q})...)
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `^sent\n[0-9]+\n$`, quiet)
	assert.Empty(t, errs, "by default stderr has no log lines below warn")

	// Not kept: this run builds the facts again, and building logs its steps at debug.
	code, out, errs := cliProcess(t, slices.Concat(query, []string{"--log-level", "debug", "--facts-dir", "none", q})...)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, quiet, out)
	assert.Contains(t, errs, `"@level":"debug","@message":"build step"`)

	code, out, errs = cliProcess(t, slices.Concat(query, []string{"--log-level", "loud", q})...)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, `blueticks query: invalid value "loud" for flag -log-level: use debug, info, warn or error`)
}

// query keeps the store's facts between runs (--facts-dir): the next run serves them and
// takes what the store gained meanwhile, instead of building them again.
func TestQueryKeepsFacts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	code, _, errs := cli(t, "demo", "--store", dir, "--events", "3000", "--days", "7")
	require.Equal(t, 0, code, errs)
	facts := filepath.Join(t.TempDir(), "facts")
	query := []string{"query", "--store", dir, "--from", "2020-01-01", "--to", "2030-01-01", "--format", "csv",
		"--facts-dir", facts, "--log-level", "info", `{"queryType":"table","metrics":["received"]}`}

	code, first, errs := cliProcess(t, query...)
	require.Equal(t, 0, code, errs)
	assert.NotContains(t, errs, "serving the kept facts")
	code, out, errs := cliProcess(t, query...)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, first, out)
	assert.Contains(t, errs, `"@message":"serving the kept facts"`)
	assert.NotContains(t, errs, "build process done", "not built again")

	f := filepath.Join(t.TempDir(), "one.ndjson")
	require.NoError(t, os.WriteFile(f, []byte(`{"event_id":"kept-1","ts":"2026-03-01T10:00:00Z","type":"received","contact_id":"c_kept","message_id":"in-kept"}`+"\n"), 0o644))
	code, _, errs = cli(t, "import", "--store", dir, f)
	require.Equal(t, 0, code, errs)
	code, out, errs = cliProcess(t, query...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, errs, `"@message":"serving the kept facts"`)
	assert.NotContains(t, errs, "build process done")
	n := func(csv string) int {
		v, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(csv, "received\n")))
		require.NoError(t, err, csv)
		return v
	}
	assert.Equal(t, n(first)+1, n(out), "the imported event is counted")
}

func TestParseTimeArg(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"now":                  now,
		"now-7d":               now.Add(-7 * 24 * time.Hour),
		"now-90m":              now.Add(-90 * time.Minute),
		"2026-03-01":           time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		"2026-03-01T10:00:00Z": time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
	} {
		got, err := ParseTimeArg(in, now)
		require.NoError(t, err, in)
		assert.True(t, want.Equal(got), in)
	}
}

// query takes DuckDB's memory limits as flags; a build that runs out of its limit names
// the flag that raises it, and a limit out of range names itself.
func TestQueryMemoryLimits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	code, _, errs := cli(t, "demo", "--store", dir, "--events", "20000", "--days", "7")
	require.Equal(t, 0, code, errs)
	query := []string{"query", "--store", dir, "--from", "2020-01-01", "--to", "2030-01-01", "--format", "csv", "--facts-dir", "none"}
	q := `{"queryType":"table","metrics":["sent","received"]}`

	code, want, errs := cliProcess(t, slices.Concat(query, []string{q})...)
	require.Equal(t, 0, code, errs)
	code, out, errs := cliProcess(t, slices.Concat(query, []string{"--memory-limit-mb", "64", "--build-memory-limit-mb", "128", q})...)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, want, out, "the same answer within smaller limits")

	code, out, errs = cliProcess(t, slices.Concat(query, []string{"--memory-limit-mb", "8", "--build-memory-limit-mb", "8", q})...)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, "blueticks query: building the facts ran out of memory within 8 MB: raise --build-memory-limit-mb above it")

	for _, bad := range [][]string{{"--memory-limit-mb", "0"}, {"--build-memory-limit-mb", "2000000"}} {
		code, out, errs = cliProcess(t, slices.Concat(query, bad, []string{q})...)
		assert.Equal(t, 1, code, bad)
		assert.Empty(t, out, bad)
		assert.Contains(t, errs, "blueticks query: "+bad[0]+" "+bad[1]+" is out of range (1 to 1048576)", bad)
	}
}
