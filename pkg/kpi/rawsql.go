package kpi

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/data/sqlutil"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/sqlmacro"
)

// runSQL runs a viewer's raw SQL: macros expanded, then accepted only if DuckDB's own
// parser sees exactly one SELECT, then prepared (nothing runs at prepare time for a single
// statement) and executed under the query's context. The engine's DuckDB already refuses
// file access outside the store, extension loads and setting changes (lockDown).
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
	if err := e.checkReadOnly(ctx, text); err != nil {
		return nil, err
	}
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var frame *data.Frame
	err = conn.Raw(func(dc any) error {
		st, err := dc.(driver.ConnPrepareContext).PrepareContext(ctx, text)
		if err != nil {
			return BadQuery("%v", cleanDuckErr(err))
		}
		defer st.Close()
		typ, err := st.(*duckdb.Stmt).StatementType()
		if err != nil {
			return err
		}
		if typ != duckdb.STATEMENT_TYPE_SELECT {
			return BadQuery("only a read-only SELECT is allowed in raw SQL")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, text)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, BadQuery("%v", cleanDuckErr(err))
	}
	defer rows.Close()
	frame, err = sqlutil.FrameFromRows(rows, int64(e.opts.MaxRows), duckConverters...)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, BadQuery("%v", cleanDuckErr(err))
	}
	frame.Name = "sql"
	if frame.Meta == nil {
		frame.Meta = &data.FrameMeta{}
	}
	frame.Meta.ExecutedQueryString = text
	if ts := frame.TimeSeriesSchema(); ts.Type == data.TimeSeriesTypeLong {
		if wide, err := data.LongToWide(frame, nil); err == nil {
			wide.Meta = frame.Meta
			frame = wide
		}
	}
	return data.Frames{frame}, nil
}

// checkReadOnly asks DuckDB's parser (json_serialize_sql serialises SELECT statements only)
// whether the text is exactly one SELECT. Nothing is executed.
func (e *Engine) checkReadOnly(ctx context.Context, text string) error {
	var out string
	if err := e.db.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(?::VARCHAR) AS VARCHAR)", text).Scan(&out); err != nil {
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
