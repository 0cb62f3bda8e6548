// Package importer loads event files (NDJSON, CSV, Parquet in SPEC columns) into a store:
// every row validated, rejected rows reported with file, line and reason, valid rows kept,
// and importing the same file twice changes nothing.
package importer

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
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

// Options tune an import.
type Options struct {
	// Hasher pseudonymises a raw phone column (phone or wa_id) into contact_id. When nil,
	// the key is read from BLUETICKS_HASH_KEY the first time a file has such a column.
	Hasher *pseudo.Hasher
}

// Import reads the files into the store in order.
func Import(ctx context.Context, w *store.Writer, files []string) (Report, error) {
	return ImportWith(ctx, w, files, Options{})
}

// ImportWith is Import with options.
func ImportWith(ctx context.Context, w *store.Writer, files []string, opts Options) (Report, error) {
	var rep Report
	ph := &phones{h: opts.Hasher}
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
			err = decodeTextFile(f, format, ph, emit, reject)
		case Parquet:
			err = decodeParquet(ctx, f, ph, emit, reject)
		}
		if err != nil {
			return rep, err
		}
	}
	return rep, flush()
}

func decodeTextFile(path string, format Format, ph *phones, emit func(events.Event) error, reject func(events.Rejected)) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	if format == CSV {
		return decodeCSV(fh, path, ph, emit, reject)
	}
	return decodeNDJSON(fh, path, ph, emit, reject)
}

// decodeParquet reads a Parquet file's SPEC columns as text and validates each row like
// the text formats (line = row number, from 1).
func decodeParquet(ctx context.Context, path string, ph *phones, emit func(events.Event) error, reject func(events.Rejected)) error {
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
	hasPhone := false
	for _, c := range cols {
		if pseudo.IsPhoneColumn(c) {
			hasPhone = true
			if _, err := ph.hasher(); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
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
		if hasPhone {
			if err := pseudo.ReplacePhone(fields, ph.h); err != nil {
				reject(events.Rejected{File: path, Line: line, Reason: err.Error()})
				continue
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

// phones holds the pseudonymisation key, read from the environment only when a file has a
// phone column.
type phones struct {
	h   *pseudo.Hasher
	err error
	got bool
}

func (p *phones) hasher() (*pseudo.Hasher, error) {
	if p.h != nil || p.got {
		return p.h, p.err
	}
	p.got = true
	p.h, p.err = pseudo.New([]byte(os.Getenv(pseudo.KeyEnv)))
	if p.err != nil {
		p.err = fmt.Errorf("a phone column (phone or wa_id) is stored only as a keyed hash: %w", p.err)
	}
	return p.h, p.err
}

// decodeNDJSON is events.DecodeNDJSON plus phone pseudonymisation: a line with a phone or
// wa_id key has it hashed into contact_id before validation.
func decodeNDJSON(r io.Reader, file string, ph *phones, emit func(events.Event) error, reject func(events.Rejected)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), events.MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if hasPhoneKey(b) {
			var err error
			if b, err = pseudonymiseJSON(b, ph); err != nil {
				reject(events.Rejected{File: file, Line: line, Reason: err.Error()})
				continue
			}
		}
		e, err := events.DecodeJSONObject(b)
		if err != nil {
			reject(events.Rejected{File: file, Line: line, Reason: err.Error()})
			continue
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: line longer than %d bytes", file, line+1, events.MaxLineBytes)
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

func hasPhoneKey(b []byte) bool {
	for _, c := range pseudo.PhoneColumns {
		if bytes.Contains(b, []byte(`"`+c+`"`)) {
			return true
		}
	}
	return false
}

func pseudonymiseJSON(b []byte, ph *phones) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	f := map[string]string{}
	for _, c := range append([]string{"contact_id"}, pseudo.PhoneColumns...) {
		v, ok := m[c]
		if !ok || strings.TrimSpace(string(v)) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			s = strings.TrimSpace(string(v))
		}
		f[c] = s
	}
	if f["phone"] != "" || f["wa_id"] != "" {
		if _, err := ph.hasher(); err != nil {
			return nil, err
		}
	}
	if err := pseudo.ReplacePhone(f, ph.h); err != nil {
		return nil, err
	}
	for _, c := range pseudo.PhoneColumns {
		delete(m, c)
	}
	if id, ok := f["contact_id"]; ok {
		m["contact_id"], _ = json.Marshal(id)
	}
	return json.Marshal(m)
}

// decodeCSV hands a file without a phone column to events.DecodeCSV unchanged; a file
// with one is read here, its phone column hashed into contact_id row by row.
func decodeCSV(r io.Reader, file string, ph *phones, emit func(events.Event) error, reject func(events.Rejected)) error {
	br := bufio.NewReader(r)
	head, _ := br.Peek(64 * 1024)
	firstLine, _, _ := bytes.Cut(head, []byte("\n"))
	if hdr, err := csv.NewReader(bytes.NewReader(firstLine)).Read(); err != nil || !anyPhone(hdr) {
		return events.DecodeCSV(br, file, emit, reject)
	}
	if _, err := ph.hasher(); err != nil {
		return fmt.Errorf("%s:1: %w", file, err)
	}
	return events.ReadCSV(br, file, pseudo.IsPhoneColumn, func(line int, fields map[string]string) error {
		if err := pseudo.ReplacePhone(fields, ph.h); err != nil {
			reject(events.Rejected{File: file, Line: line, Reason: err.Error()})
			return nil
		}
		e, err := events.FromFields(fields)
		if err != nil {
			reject(events.Rejected{File: file, Line: line, Reason: err.Error()})
			return nil
		}
		return emit(e)
	}, reject)
}

func anyPhone(header []string) bool {
	for _, h := range header {
		if pseudo.IsPhoneColumn(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
			return true
		}
	}
	return false
}
