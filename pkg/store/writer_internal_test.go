package store

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// readRows reads every published segment's rows in arrival order (segment name, then row),
// each rendered as one comparable string with every column.
func readRows(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := ListSegments(dir)
	require.NoError(t, err)
	if len(segs) == 0 {
		return nil
	}
	db, err := OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT " + ColumnList() + " FROM read_parquet(" + ParquetList(segs) + ", filename = true, file_row_number = true) ORDER BY filename, file_row_number")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	vals := make([]any, len(events.Columns))
	for i := range vals {
		vals[i] = new(any)
	}
	for rows.Next() {
		require.NoError(t, rows.Scan(vals...))
		var b strings.Builder
		for i, v := range vals {
			x := *(v.(*any))
			switch y := x.(type) {
			case time.Time:
				x = y.UTC().Format(time.RFC3339Nano)
			case float64:
				x = fmt.Sprintf("%v|%x", y, math.Float64bits(y))
			}
			fmt.Fprintf(&b, "%s=%#v;", events.Columns[i].Name, x)
		}
		out = append(out, b.String())
	}
	require.NoError(t, rows.Err())
	return out
}

// tricky gives text the CSV route must carry unchanged.
func tricky(rng *rand.Rand) string {
	parts := []string{"a", "b", ",", `"`, `""`, " ", "  lead", "trail  ", "NULL", "null", "\\N", "é", "日本", "😀",
		"\t", ";", "'", "\\", "wamid.HBgL==", "0", "-1", "1e5", "true", strings.Repeat("x", 300)}
	n := rng.Intn(4)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(parts[rng.Intn(len(parts))])
	}
	return b.String()
}

func randomEvents(rng *rand.Rand, n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		e := &evs[i]
		e.EventID = fmt.Sprintf("id-%d-%s", rng.Intn(n), tricky(rng)) // some ids repeat
		e.TS = time.Unix(1700000000+rng.Int63n(1e8), rng.Int63n(1e9)).UTC()
		e.Type = events.Types[rng.Intn(len(events.Types))]
		for _, p := range []*string{&e.MessageID, &e.ReplyTo, &e.ConversationID, &e.ContactID, &e.BusinessNumber,
			&e.Sender, &e.AgentID, &e.Campaign, &e.Template, &e.Category, &e.Variant, &e.Segment, &e.Country,
			&e.MessageType, &e.Currency, &e.Step, &e.Quality, &e.PricingType} {
			if rng.Intn(3) > 0 {
				*p = tricky(rng)
			}
		}
		if rng.Intn(3) == 0 {
			c := int32(rng.Int63n(1<<32) - 1<<31)
			e.ErrorCode = &c
		}
		if rng.Intn(3) == 0 {
			vals := []float64{0, math.Copysign(0, -1), 0.1, 1.0 / 3, -2.5e-300, 1.7976931348623157e308, 5e-324, 123456789.123456789, float64(rng.Int63())}
			v := vals[rng.Intn(len(vals))]
			e.Value = &v
		}
	}
	return evs
}

// TestAppendCSVRouteMatchesAppender: the CSV staging route stores exactly what DuckDB's
// appender stores (every column, every row, in order, duplicates dropped the same way),
// for random events full of quotes, commas, spaces, "NULL", non-ASCII text, extreme
// numbers and sub-microsecond times.
func TestAppendCSVRouteMatchesAppender(t *testing.T) {
	ctx := context.Background()
	for seed := int64(1); seed <= 4; seed++ {
		evs := randomEvents(rand.New(rand.NewSource(seed)), 3000)
		stores := map[string]string{}
		for _, route := range []string{"csv", "appender"} {
			dir := t.TempDir()
			w, err := OpenWriter(dir)
			require.NoError(t, err)
			b := batch{chunks: [][]events.Event{evs[:1000], evs[1000:1001], nil, evs[1001:]}}
			b.markDuplicates()
			tmp := filepath.Join(dir, TmpDir, "x.parquet")
			var n int64
			if route == "csv" {
				n, err = w.copyViaCSV(ctx, &b, nil, tmp)
			} else {
				n, err = w.copyViaAppender(ctx, &b, nil, tmp)
			}
			require.NoError(t, err, route)
			_, err = publish(dir, tmp, "00000000000000000001-x.parquet")
			require.NoError(t, err)
			w.Close()
			assert.Equal(t, int64(len(readRows(t, dir))), n)
			stores[route] = dir
		}
		csvRows, appRows := readRows(t, stores["csv"]), readRows(t, stores["appender"])
		require.Equal(t, len(appRows), len(csvRows))
		for i := range appRows {
			require.Equal(t, appRows[i], csvRows[i], "seed %d row %d", seed, i)
		}
	}
}

// TestAppendUnsafeTextTakesAppender: text with line breaks, NUL or invalid UTF-8 and
// infinite values go through the appender (the CSV route declines them).
func TestAppendUnsafeTextTakesAppender(t *testing.T) {
	ctx := context.Background()
	ts := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	inf := math.Inf(1)
	for i, e := range []events.Event{
		{EventID: "a\nb", TS: ts, Type: "received"},
		{EventID: "a", TS: ts, Type: "received", Step: "x\r\ny"},
		{EventID: "a", TS: ts, Type: "received", Campaign: "nul\x00"},
		{EventID: "a", TS: ts, Type: "converted", Value: &inf},
	} {
		dir := t.TempDir()
		w, err := OpenWriter(dir)
		require.NoError(t, err)
		b := batch{chunks: [][]events.Event{{e}}}
		_, err = w.copyViaCSV(ctx, &b, nil, filepath.Join(dir, TmpDir, "x.parquet"))
		assert.ErrorIs(t, err, errNotCSVSafe, "case %d", i)
		res, err := w.Append(ctx, []events.Event{e}, AppendOptions{})
		w.Close()
		require.NoError(t, err, "case %d", i)
		assert.Equal(t, 1, res.Written)
		rows := readRows(t, dir)
		require.Len(t, rows, 1)
	}
}

// TestAppendKeepsArrivalOrder: a large batch (DuckDB reads the staged CSV in parallel)
// keeps the given order, drops later repeats of an id, and with SkipExisting drops ids
// already stored, still in order.
func TestAppendKeepsArrivalOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	ts := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	const n = 300_000
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{EventID: fmt.Sprintf("e%07d", (i*7919)%n), TS: ts.Add(time.Duration(i) * time.Millisecond), Type: "received", ContactID: "c"}
	}
	evs[n-1].EventID = evs[0].EventID // a repeat: dropped
	res, err := w.Append(ctx, evs, AppendOptions{})
	require.NoError(t, err)
	assert.Equal(t, n-1, res.Written)
	assert.Equal(t, 1, res.Duplicates)
	ids := idsInOrder(t, dir)
	require.Len(t, ids, n-1)
	for i := 0; i < n-1; i++ {
		if ids[i] != evs[i].EventID {
			t.Fatalf("row %d: %s, want %s", i, ids[i], evs[i].EventID)
		}
	}

	// SkipExisting: half of a new batch is already stored.
	more := make([]events.Event, 0, 2000)
	for i := 0; i < 2000; i++ {
		id := fmt.Sprintf("new%05d", 2000-i)
		if i%2 == 0 {
			id = evs[i*37].EventID
		}
		more = append(more, events.Event{EventID: id, TS: ts, Type: "received", ContactID: "c"})
	}
	res, err = w.Append(ctx, more, AppendOptions{SkipExisting: true})
	require.NoError(t, err)
	assert.Equal(t, 1000, res.Written)
	assert.Equal(t, 1000, res.Duplicates)
	ids = idsInOrder(t, dir)[n-1:]
	var want []string
	for i := 1; i < 2000; i += 2 {
		want = append(want, more[i].EventID)
	}
	assert.Equal(t, want, ids)
}

func idsInOrder(t *testing.T, dir string) []string {
	segs, err := ListSegments(dir)
	require.NoError(t, err)
	db, err := OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT event_id FROM read_parquet(" + ParquetList(segs) + ", filename = true, file_row_number = true) ORDER BY filename, file_row_number")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

// TestOpenWriterRemovesStaleTmp: files a dead writer left in tmp/ go when a writer opens
// the store; recent ones (a live writer's) stay.
func TestOpenWriterRemovesStaleTmp(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Init(dir))
	stale := filepath.Join(dir, TmpDir, "00000000000000000001-dead.parquet.csv")
	fresh := filepath.Join(dir, TmpDir, "00000000000000000002-live.parquet")
	require.NoError(t, os.WriteFile(stale, []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(fresh, []byte("x"), 0o644))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))
	w, err := OpenWriter(dir)
	require.NoError(t, err)
	w.Close()
	assert.NoFileExists(t, stale)
	assert.FileExists(t, fresh)
}

// TestAppendLongTextCSV: an event with text longer than DuckDB's default CSV line size
// still goes through the CSV route, and a writer with little memory (the receiver's
// maintenance writer) still writes segments.
func TestAppendLongTextCSV(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.SetMemoryLimit(64, t.TempDir()))
	long := strings.Repeat(`ab"c`, 1<<20) // 4 MiB, quotes doubled in the CSV
	ts := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	res, err := w.Append(context.Background(), []events.Event{
		{EventID: "long", TS: ts, Type: "abandoned", ConversationID: "c", Step: long},
		{EventID: "short", TS: ts, Type: "blocked", ContactID: "c"},
	}, AppendOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Written)
	require.Len(t, readRows(t, dir), 2)
	db, err := OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	segs, err := ListSegments(dir)
	require.NoError(t, err)
	var step string
	require.NoError(t, db.QueryRow("SELECT step FROM read_parquet("+ParquetList(segs)+") WHERE event_id = 'long'").Scan(&step))
	assert.True(t, step == long, "the long text is stored whole")
}

// Skipping stored events holds the batch's ids, not the store's: a few events appended
// to a store of 2M stored ids fit a memory limit the stored ids would outgrow (a NOT IN
// over them held them all: 10 GB for a 100M-event store).
func TestSkipExistingHoldsTheBatchNotTheStore(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	// 2M stored ids, written straight as one segment (only event_id is read to skip).
	seg := filepath.Join(dir, SegmentsDir, newSegmentName(time.Now()))
	_, err = w.db.Exec(fmt.Sprintf(`COPY (SELECT 'stored-' || range AS event_id FROM range(2000000)) TO %s (FORMAT parquet)`, SQLString(seg)))
	require.NoError(t, err)
	// No spilling, and less memory than a hash table of the stored ids takes.
	for _, s := range []string{"SET temp_directory = ''", "SET memory_limit = '48MB'", "SET threads = 2"} {
		_, err = w.db.Exec(s)
		require.NoError(t, err)
	}
	ts := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	batch := []events.Event{
		{EventID: "stored-17", TS: ts, Type: "received", ContactID: "a"},
		{EventID: "new-1", TS: ts, Type: "received", ContactID: "a"},
		{EventID: "stored-1999999", TS: ts, Type: "received", ContactID: "b"},
		{EventID: "new-2", TS: ts, Type: "received", ContactID: "b"},
	}
	res, err := w.Append(context.Background(), batch, AppendOptions{SkipExisting: true})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Written)
	assert.Equal(t, 2, res.Duplicates)
	var ids string
	require.NoError(t, w.db.QueryRow(fmt.Sprintf(`SELECT string_agg(event_id, ',' ORDER BY file_row_number) FROM read_parquet(%s, file_row_number = true)`,
		SQLString(res.Segment))).Scan(&ids))
	assert.Equal(t, "new-1,new-2", ids, "the new segment holds the new events, in order")
}
