package kpi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// TestSlicedSortMatchesOneSort builds the same store twice: once sorting each fact table
// at once and joining in one go, once in many time slices and hash partitions (as a store
// too large for memory is built), and requires the same answers and every fact and rollup
// table in time order.
func TestSlicedSortMatchesOneSort(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := append(demoEvents(t, rng, 8_000, 10, end), messyEvents(rng, end.AddDate(0, 0, -10), 10, 1000)...)
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	for len(all) > 0 { // several segments, so arrival order is not time order
		n := min(len(all), 500+rng.Intn(3000))
		_, err := w.Append(context.Background(), all[:n], store.AppendOptions{})
		require.NoError(t, err)
		all = all[n:]
	}
	require.NoError(t, w.Close())
	src, err := store.OpenSource(dir)
	require.NoError(t, err)

	one, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 512})
	require.NoError(t, err)
	defer one.Close()
	require.NoError(t, one.Refresh(context.Background()))

	restore := kpi.SetSortSliceRows(64) // from 4 (f_conv) to ~70 (f_evt) slices
	defer kpi.SetPartitions(3)()
	sliced, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 512})
	require.NoError(t, err)
	defer sliced.Close()
	require.NoError(t, sliced.Refresh(context.Background()))
	restore()

	// Every fact and rollup table is stored in time order.
	db := sliced.DB()
	rows, err := db.Query(`SELECT t.schema_name, t.table_name, c.column_name FROM duckdb_tables() AS t
		JOIN duckdb_columns() AS c ON c.table_oid = t.table_oid AND c.column_index = 1
		WHERE t.database_name = current_database() AND (t.table_name LIKE 'f\_%' ESCAPE '\' OR t.table_name LIKE 'r\_%' ESCAPE '\')`)
	require.NoError(t, err)
	type tbl struct{ schema, name, first string }
	var tables []tbl
	for rows.Next() {
		var x tbl
		require.NoError(t, rows.Scan(&x.schema, &x.name, &x.first))
		tables = append(tables, x)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	timeCol := map[string]string{"f_msg": "send_ts", "f_evt": "ts", "f_conv": "opened_ts", "f_turn": "start_ts"}
	checked := 0
	for _, x := range tables {
		col := timeCol[x.name]
		if x.name[:2] == "r_" {
			col = x.first // rollups: keyed by time first
		}
		if col == "" {
			continue
		}
		var n, back int64
		q := fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE prev > %[1]s) FROM (
			SELECT %[1]s, lag(%[1]s) OVER (ORDER BY rowid) AS prev FROM %[2]s.%[3]s)`, col, x.schema, x.name)
		if strings.HasSuffix(x.name, "_dims") {
			// The single-dimension levels' table: each level's rows together, in time order.
			q = fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE prev > %[1]s OR prev_level > level) FROM (
				SELECT %[1]s, level, lag(%[1]s) OVER (PARTITION BY level ORDER BY rowid) AS prev,
				       lag(level) OVER (ORDER BY rowid) AS prev_level FROM %[2]s.%[3]s)`, col, x.schema, x.name)
		}
		require.NoError(t, db.QueryRow(q).Scan(&n, &back), q)
		require.Zero(t, back, "%s: %d of %d rows out of time order", x.name, back, n)
		checked++
	}
	require.GreaterOrEqual(t, checked, 8, "fact and rollup tables checked")

	queries := []string{
		`{"queryType":"table","metrics":["sent","delivered","read","failed","clicks","conversions","revenue","cost","reply_rate"],"groupBy":["campaign","country"],"limit":500}`,
		`{"queryType":"table","metrics":["received","blocked","opted_out","deliveries","abandoned","csat_avg","active_contacts","new_contacts","churn_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["conversations","first_response_time","resolution_time","escalation_rate","response_time","unanswered_turns"],"groupBy":["agent_id"],"limit":500}`,
		`{"queryType":"timeseries","metrics":["sent","delivery_rate","block_rate","conversations","response_time"],"bucket":"1h"}`,
		`{"queryType":"timeseries","metrics":["sent","delivered","blocked"],"bucket":"15m"}`,
		`{"queryType":"funnel","groupBy":["variant"]}`,
	}
	from, to := end.AddDate(0, 0, -11), end.Add(time.Hour)
	requireSameAnswers(t, "", queries, from, to, one, sliced)
}

// A full build that outgrows buildMemoryLimitMB says so, and which setting to raise,
// instead of calling the store unreadable and quoting DuckDB's advice on SQL settings.
func TestBuildOutOfMemoryNamesTheSetting(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	_, err = w.Append(context.Background(), demoEvents(t, rng, 100_000, 10, end), store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	src, err := store.OpenSource(dir)
	require.NoError(t, err)

	e, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 4, BuildMemoryLimitMB: 4})
	require.NoError(t, err)
	defer e.Close()
	err = e.Refresh(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, kpi.ErrBuildMemory)
	assert.NotErrorIs(t, err, kpi.ErrStore)
	assert.Contains(t, err.Error(), "within 4 MB: raise buildMemoryLimitMB above it in the data source's settings")
	assert.Contains(t, err.Error(), "(Out of Memory Error: failed to allocate", "DuckDB's words, first line")
	assert.NotContains(t, err.Error(), "SET memory_limit", "DuckDB's advice names settings a user cannot set")
	var de *duckdb.Error
	assert.ErrorAs(t, err, &de, "DuckDB's error stays reachable")
}
