package kpi

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/data/sqlutil"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/sqlmacro"
)

// runSQL runs a viewer's raw SQL: macros expanded, then accepted only if DuckDB's own
// parser sees exactly one SELECT (nothing is executed by that check), then run inside
// sqlWrapper with the text as a bind parameter: DuckDB's query() table function parses it
// again and accepts a single SELECT only, so the viewer's text is never pasted into SQL. The engine's DuckDB
// already refuses file access outside the store, extension loads and setting changes
// (lockDown).
func (e *Engine) runSQL(ctx context.Context, g *generation, r Request) (data.Frames, error) {
	q := r.Query
	loc := q.Location()
	text, err := sqlmacro.Expand(q.RawSQL, sqlmacro.Context{
		From: r.From, To: r.To, Interval: r.Interval, Location: loc,
		Bucket: func(width, column string) (string, error) {
			b, err := ParseBucket(width)
			if err != nil {
				return "", err
			}
			return bucketStart(b, column, loc), nil
		},
	})
	if err != nil {
		return nil, BadQuery("%v", err)
	}
	if err := checkReadOnly(ctx, g.db, text); err != nil {
		return nil, err
	}
	maxRows := e.opts.MaxRows
	rows, err := g.db.QueryContext(ctx, fmt.Sprintf(sqlWrapper, e.resultBytes(), e.resultBytes()>>20, maxRows+1), text)
	if err != nil {
		return nil, e.sqlError(ctx, err)
	}
	defer rows.Close()
	frame, err := sqlutil.FrameFromRows(rows, int64(maxRows+1), duckConverters...)
	if err != nil {
		return nil, e.sqlError(ctx, err)
	}
	frame.Name = "sql"
	if frame.Meta == nil {
		frame.Meta = &data.FrameMeta{}
	}
	frame.Meta.ExecutedQueryString = text
	frame.Meta.Notices = nil // the SDK's "limited" notice also shows when nothing was cut
	if frame.Rows() > maxRows {
		frame.DeleteRow(maxRows)
		frame.AppendNotices(data.Notice{Severity: data.NoticeSeverityWarning,
			Text: fmt.Sprintf("Result truncated to the first %d rows (the data source's maxRows): aggregate, or add a LIMIT or a narrower time filter.", maxRows)})
	}
	if ts := frame.TimeSeriesSchema(); ts.Type == data.TimeSeriesTypeLong {
		if wide, err := data.LongToWide(frame, nil); err == nil {
			wide.Meta = frame.Meta
			frame = wide
		}
	}
	return data.Frames{frame}, nil
}

// sqlWrapper bounds what DuckDB materialises for a raw SQL (duckdb-go reads materialised
// results, and memory_limit does not cover them): at most maxRows+1 rows (the LIMIT), and
// at most resultBytes of row text (a streaming running sum that fails the query as soon as
// it is crossed). Without it, SELECT repeat('x', 1000000) FROM range(100000) made DuckDB
// hold 100 GB and the process was killed.
const sqlWrapper = `SELECT * EXCLUDE (__bt_bytes) FROM (
	SELECT __bt_row.*, sum(strlen(CAST(__bt_row AS VARCHAR))) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __bt_bytes
	FROM query(?) __bt_row
) WHERE CASE WHEN __bt_bytes > %d THEN error('result is larger than %d MB: aggregate, or select fewer or shorter columns') ELSE true END
LIMIT %d`

// resultBytes is the most row text a raw SQL result may hold: a quarter of memoryLimitMB.
func (e *Engine) resultBytes() int64 { return int64(e.opts.MemoryLimitMB) << 20 / 4 }

// sqlError turns an error of a viewer's raw SQL into one they can act on: the context's
// error when it was cancelled or timed out, a bad query otherwise.
func (e *Engine) sqlError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := cleanDuckErr(err)
	switch {
	case strings.Contains(msg, "result is larger than"):
		return BadQuery("%s (a quarter of the data source's memoryLimitMB)", strings.TrimPrefix(msg, "Invalid Input Error: "))
	case strings.HasPrefix(msg, "Permission Error"):
		return BadQuery("raw SQL can read only the store's own files (the view events, or read_parquet of the store's segments): %s", msg)
	case strings.HasPrefix(msg, "Out of Memory Error"):
		if i := strings.Index(msg, "\n"); i > 0 {
			msg = msg[:i]
		}
		return BadQuery("%s: the query needs more than the data source's memoryLimitMB (%d MB); aggregate more or narrow the time range", msg, e.opts.MemoryLimitMB)
	}
	return BadQuery("%s", msg)
}

// checkReadOnly asks DuckDB's parser (json_serialize_sql serialises SELECT statements only)
// whether the text is exactly one SELECT. Nothing is executed.
func checkReadOnly(ctx context.Context, db *sql.DB, text string) error {
	var out string
	if err := db.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(?::VARCHAR) AS VARCHAR)", text).Scan(&out); err != nil {
		return fmt.Errorf("check raw SQL: %w", err)
	}
	var parsed struct {
		Error      bool              `json:"error"`
		ErrorType  string            `json:"error_type"`
		ErrorMsg   string            `json:"error_message"`
		Statements []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		return fmt.Errorf("check raw SQL: %w", err)
	}
	if parsed.Error {
		if strings.Contains(parsed.ErrorMsg, "Only SELECT") || parsed.ErrorType == "not implemented" {
			return BadQuery("only a read-only SELECT (or WITH … SELECT) over the view events is allowed in raw SQL")
		}
		return BadQuery("raw SQL does not parse: %s", parsed.ErrorMsg)
	}
	if len(parsed.Statements) != 1 {
		return BadQuery("raw SQL must be exactly one SELECT statement, got %d statements", len(parsed.Statements))
	}
	return nil
}

func cleanDuckErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n\nLINE"); i > 0 {
		return strings.TrimSpace(s[:i])
	}
	return strings.TrimSpace(s)
}

// duckConverters turn DuckDB types that sqlutil does not know into frame values.
var duckConverters = []sqlutil.Converter{
	{
		Name: "hugeint", InputScanType: reflect.TypeOf(&big.Int{}), InputTypeName: "HUGEINT",
		FrameConverter: sqlutil.FrameConverter{FieldType: data.FieldTypeNullableFloat64,
			ConverterFunc: func(in any) (any, error) {
				v, ok := in.(**big.Int)
				if !ok || v == nil || *v == nil {
					return (*float64)(nil), nil
				}
				f, _ := new(big.Float).SetInt(*v).Float64()
				return &f, nil
			}},
	},
	{
		Name: "decimal", InputScanType: reflect.TypeOf(sql.NullFloat64{}), InputTypeRegex: decimalRe,
		FrameConverter: sqlutil.FrameConverter{FieldType: data.FieldTypeNullableFloat64,
			ConverterFunc: func(in any) (any, error) {
				v := in.(*sql.NullFloat64)
				if !v.Valid {
					return (*float64)(nil), nil
				}
				f := v.Float64
				return &f, nil
			}},
	},
}

var decimalRe = regexp.MustCompile(`^DECIMAL`)
