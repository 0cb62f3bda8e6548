// Package importer loads event files (NDJSON, CSV, Parquet in SPEC columns) into a store:
// every row validated, rejected rows reported with file, line and reason, valid rows kept,
// and importing the same file twice changes nothing.
package importer

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// Report says what an import did.
type Report struct {
	Read       int               // rows read
	Written    int               // new events stored
	Duplicates int               // rows whose event was already stored or repeated
	Rejected   []events.Rejected // invalid rows (at most MaxRejectedKept kept; RejectedCount counts all)
	RejectedN  int
}

// MaxRejectedKept bounds the rejected rows kept in memory for the report.
const MaxRejectedKept = 10_000

// BatchSize is the number of events written per segment.
const BatchSize = 500_000

// Format is a file format, chosen by extension.
type Format string

const (
	NDJSON  Format = "ndjson"
	CSV     Format = "csv"
	Parquet Format = "parquet"
)

// FormatOf picks the format from the file name: .ndjson/.jsonl, .csv, .parquet.
func FormatOf(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ndjson", ".jsonl":
		return NDJSON, nil
	case ".csv":
		return CSV, nil
	case ".parquet":
		return Parquet, nil
	}
	return "", fmt.Errorf("%s: unknown file type %q (use .ndjson, .jsonl, .csv or .parquet)", path, filepath.Ext(path))
}

// Import reads the files into the store in order.
func Import(ctx context.Context, w *store.Writer, files []string) (Report, error) {
	var rep Report
	for _, f := range files {
		if _, err := FormatOf(f); err != nil {
			return rep, err
		}
		if _, err := os.Stat(f); err != nil {
			return rep, fmt.Errorf("%s: %w", f, err)
		}
	}
	batch := make([]events.Event, 0, 4096)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := w.Append(ctx, batch, store.AppendOptions{SkipExisting: true})
		if err != nil {
			return err
		}
		rep.Written += res.Written
		rep.Duplicates += res.Duplicates
		batch = batch[:0]
		return nil
	}
	emit := func(e events.Event) error {
		rep.Read++
		batch = append(batch, e)
		if len(batch) >= BatchSize {
			return flush()
		}
		return ctx.Err()
	}
	reject := func(r events.Rejected) {
		rep.Read++
		rep.RejectedN++
		if len(rep.Rejected) < MaxRejectedKept {
			rep.Rejected = append(rep.Rejected, r)
		}
	}
	for _, f := range files {
		format, _ := FormatOf(f)
		var err error
		switch format {
		case NDJSON, CSV:
			err = decodeTextFile(f, format, emit, reject)
		case Parquet:
			err = decodeParquet(ctx, f, emit, reject)
		}
		if err != nil {
			return rep, err
		}
	}
	return rep, flush()
}

func decodeTextFile(path string, format Format, emit func(events.Event) error, reject func(events.Rejected)) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	if format == CSV {
		return events.DecodeCSV(fh, path, emit, reject)
	}
	return events.DecodeNDJSON(fh, path, emit, reject)
}

// decodeParquet reads a Parquet file's SPEC columns as text and validates each row like
// the text formats (line = row number, from 1).
func decodeParquet(ctx context.Context, path string, emit func(events.Event) error, reject func(events.Rejected)) error {
	db, err := store.OpenDuckDB("")
	if err != nil {
		return err
	}
	defer db.Close()
	scan := "read_parquet(" + store.SQLString(path) + ")"
	rows, err := db.QueryContext(ctx, "DESCRIBE SELECT * FROM "+scan)
	if err != nil {
		return fmt.Errorf("%s: cannot read as Parquet: %w", path, err)
	}
	var cols []string
	for rows.Next() {
		var name, typ string
		var a, b, c, d sql.NullString
		if err := rows.Scan(&name, &typ, &a, &b, &c, &d); err != nil {
			rows.Close()
			return err
		}
		cols = append(cols, name)
	}
	rows.Close()
	known := map[string]bool{}
	for _, c := range events.Columns {
		known[c.Name] = true
	}
	for _, c := range cols {
		if !known[c] {
			return fmt.Errorf("%s: unknown column %q (the event model's columns are listed in docs/EVENTS.md)", path, c)
		}
	}
	exprs := make([]string, len(cols))
	for i, c := range cols {
		quoted := `"` + strings.ReplaceAll(c, `"`, `""`) + `"`
		if c == "ts" {
			// Timestamps as UTC text with zone, whatever their Parquet type.
			exprs[i] = fmt.Sprintf(`CASE WHEN typeof(%s) LIKE 'TIMESTAMP%%' THEN strftime(CAST(%s AS TIMESTAMPTZ), '%%Y-%%m-%%dT%%H:%%M:%%S.%%fZ') ELSE CAST(%s AS VARCHAR) END`, quoted, quoted, quoted)
			continue
		}
		exprs[i] = "CAST(" + quoted + " AS VARCHAR)"
	}
	rows, err = db.QueryContext(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+scan)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rows.Close()
	vals := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	line := 0
	for rows.Next() {
		line++
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("%s: row %d: %w", path, line, err)
		}
		fields := make(map[string]string, len(cols))
		for i, c := range cols {
			if vals[i].Valid {
				fields[c] = vals[i].String
			}
		}
		e, err := events.FromFields(fields)
		if err != nil {
			reject(events.Rejected{File: path, Line: line, Reason: err.Error()})
			continue
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	return rows.Err()
}
