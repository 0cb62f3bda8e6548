package kpi_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/sqlmacro"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// FuzzParseQuery feeds arbitrary bytes to the query parser and renders the SQL of every
// query that parses (kpi.RenderForTest). It asserts: no panic; every error is a bad query;
// dimension and metric names come only from the catalog; the SQL text does not depend on
// the filter values (they are bind arguments, each one present); every statement parses
// as exactly one SELECT. In CI it runs over the seeds in testdata/fuzz/FuzzParseQuery;
// run it longer with
//
//	go test -fuzz FuzzParseQuery -fuzztime 10m ./pkg/kpi
func FuzzParseQuery(f *testing.F) {
	for _, seed := range []string{
		`{"queryType":"timeseries","metrics":["delivery_rate","read_rate"],"groupBy":["campaign"],"filters":[{"dimension":"country","op":"in","values":["IT","DE"]}],"bucket":"1h","limit":10,"timezone":"Europe/Rome"}`,
		`{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","op":"not_in","values":["'; DROP VIEW events; --"]}]}`,
		`{"queryType":"timeseries","metrics":["first_response_time"],"groupBy":["agent_id","day_of_week"],"filters":[{"dimension":"agent_id","values":["a\u0000b","$__all"]}],"timezone":"America/New_York"}`,
		`{"queryType":"values","dimension":"campaign","search":"%_\\"}`,
		`{"queryType":"sql","rawSql":"SELECT $__timeGroup(ts, '1d') AS time, count(*) FROM events WHERE $__timeFilter(ts) AND $__conditionalAll(campaign IN ($c), $c) GROUP BY 1"}`,
	} {
		f.Add([]byte(seed))
	}
	db, err := store.OpenDuckDB("")
	require.NoError(f, err)
	f.Cleanup(func() { db.Close() })
	from := time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, 30)

	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := kpi.ParseQuery(raw)
		if err != nil {
			require.ErrorIs(t, err, kpi.ErrBadQuery)
			return
		}
		for _, id := range q.Metrics {
			_, ok := kpi.LookupMetric(id)
			require.True(t, ok, "metric %q not in the catalog", id)
		}
		for _, d := range q.GroupBy {
			_, ok := kpi.LookupDimension(d)
			require.True(t, ok, "groupBy %q not in the catalog", d)
		}
		for _, fl := range q.Filters {
			_, ok := kpi.LookupDimension(fl.Dimension)
			require.True(t, ok, "filter dimension %q not in the catalog", fl.Dimension)
		}
		if q.QueryType == kpi.TypeSQL {
			_, _ = sqlmacro.Expand(q.RawSQL, sqlmacro.Context{From: from, To: to, Interval: time.Minute, Location: q.Location(),
				Bucket: func(w, c string) (string, error) { return c, nil }})
			return
		}
		got, err := kpi.RenderForTest(q, from, to, time.Minute, 1000)
		if err != nil {
			require.ErrorIs(t, err, kpi.ErrBadQuery)
			return
		}
		// The same query with every filter value replaced renders the same text.
		plain := *q
		plain.Filters = make([]kpi.Filter, len(q.Filters))
		for i, fl := range q.Filters {
			plain.Filters[i] = kpi.Filter{Dimension: fl.Dimension, Op: fl.Op, Values: make(kpi.StringArray, len(fl.Values))}
			for j, v := range fl.Values {
				plain.Filters[i].Values[j] = v
				if !allMarker(v) {
					plain.Filters[i].Values[j] = "v"
				}
			}
		}
		want, err := kpi.RenderForTest(&plain, from, to, time.Minute, 1000)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for i := range got {
			require.Equal(t, want[i].SQL, got[i].SQL, "the SQL text depends on a filter value")
			require.Len(t, got[i].Args, len(want[i].Args))
			require.Equal(t, countPlaceholders(got[i].SQL), len(got[i].Args), got[i].SQL)
			for _, fl := range q.Filters {
				for _, v := range effective(fl.Values) {
					require.Contains(t, got[i].Args, any(v), "filter value %q is not a bind argument", v)
				}
			}
			requireOneSelect(t, db, got[i].SQL)
		}
	})
}

func allMarker(v string) bool { return v == "$__all" || v == "__all" }

func effective(vals []string) []string {
	for _, v := range vals {
		if allMarker(v) {
			return nil
		}
	}
	return vals
}

// countPlaceholders counts ? outside string literals (the builder writes no ? elsewhere).
func countPlaceholders(sql string) int {
	return len(regexp.MustCompile(`\?`).FindAllString(stringLit.ReplaceAllString(sql, "''"), -1))
}

var stringLit = regexp.MustCompile(`'(?:[^']|'')*'`)

// requireOneSelect asks DuckDB's parser (nothing runs) that sql is exactly one SELECT.
func requireOneSelect(t *testing.T, db *sql.DB, text string) {
	t.Helper()
	var out string
	require.NoError(t, db.QueryRowContext(context.Background(), "SELECT CAST(json_serialize_sql(?::VARCHAR) AS VARCHAR)", text).Scan(&out))
	var parsed struct {
		Error      bool              `json:"error"`
		Message    string            `json:"error_message"`
		Statements []json.RawMessage `json:"statements"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &parsed))
	require.False(t, parsed.Error, "%s: %s", parsed.Message, text)
	require.Len(t, parsed.Statements, 1, text)
}
