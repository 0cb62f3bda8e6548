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
	"runtime"
	"strings"
	"sync"

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

// BatchSize is the number of events per segment written by `blueticks demo`.
const BatchSize = 500_000

// batchSize is the number of events per segment written by Import: half of BatchSize,
// because two batches are in memory at once (one decoded while the other is written).
// Tests lower it.
var batchSize = BatchSize / 2

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
//
// Text files are decoded by a pipeline: one goroutine splits the file into rows (NDJSON
// lines, CSV records), GOMAXPROCS workers validate chunks of rows in parallel, and the
// results are taken in file order, so events keep their order (first arrival wins) and
// rejected rows are reported in order. Each batch of 250 000 events is written as one
// segment in the background while the next batch is decoded.
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
	s := &sink{ctx: ctx, w: w, rep: &rep}
	for _, f := range files {
		format, _ := FormatOf(f)
		var err error
		switch format {
		case NDJSON, CSV:
			err = decodeTextFile(ctx, f, format, ph, s)
		case Parquet:
			err = decodeParquet(ctx, f, ph, s.emit, s.reject)
		}
		if err != nil {
			_ = s.wait()
			return rep, err
		}
	}
	return rep, s.flush(true)
}

// sink takes decoded events and rejected rows in file order, batches the events and
// writes each batch (one segment, ids already stored skipped) while the next is decoded.
type sink struct {
	ctx     context.Context
	w       *store.Writer
	rep     *Report
	batch   [][]events.Event
	n       int
	loose   []events.Event // events given one at a time (Parquet)
	writing chan appendDone
}

type appendDone struct {
	res store.AppendResult
	err error
}

// add takes a chunk of valid events (the sink keeps the slice).
func (s *sink) add(evs []events.Event) error {
	if len(evs) == 0 {
		return s.ctx.Err()
	}
	s.rep.Read += len(evs)
	s.batch = append(s.batch, evs)
	s.n += len(evs)
	if s.n >= batchSize {
		return s.flush(false)
	}
	return s.ctx.Err()
}

// emit takes one valid event.
func (s *sink) emit(e events.Event) error {
	s.rep.Read++
	if s.loose == nil {
		s.loose = make([]events.Event, 0, chunkRows)
	}
	s.loose = append(s.loose, e)
	if len(s.loose) == cap(s.loose) {
		s.batch = append(s.batch, s.loose)
		s.n += len(s.loose)
		s.loose = nil
		if s.n >= batchSize {
			return s.flush(false)
		}
	}
	return s.ctx.Err()
}

func (s *sink) reject(r events.Rejected) {
	s.rep.Read++
	s.rep.RejectedN++
	if len(s.rep.Rejected) < MaxRejectedKept {
		s.rep.Rejected = append(s.rep.Rejected, r)
	}
}

// flush starts writing the current batch once the previous one is written; final waits
// for it too.
func (s *sink) flush(final bool) error {
	if len(s.loose) > 0 {
		s.batch = append(s.batch, s.loose)
		s.n += len(s.loose)
		s.loose = nil
	}
	// One batch at a time: the next Append must see this one's segment (SkipExisting).
	if err := s.wait(); err != nil {
		return err
	}
	if s.n > 0 {
		chunks := s.batch
		s.batch, s.n = nil, 0
		done := make(chan appendDone, 1)
		go func() {
			res, err := s.w.AppendChunks(s.ctx, chunks, store.AppendOptions{SkipExisting: true})
			done <- appendDone{res, err}
		}()
		s.writing = done
	}
	if final {
		return s.wait()
	}
	return nil
}

// wait waits for the batch being written, if any, and counts it.
func (s *sink) wait() error {
	if s.writing == nil {
		return nil
	}
	d := <-s.writing
	s.writing = nil
	s.rep.Written += d.res.Written
	s.rep.Duplicates += d.res.Duplicates
	return d.err
}

// chunkRows is the number of rows a decoding worker takes at a time.
const chunkRows = 4096

// rawRow is one row of a text file, not yet validated.
type rawRow struct {
	line int
	text []byte           // an NDJSON line (trimmed)
	cols []string         // a CSV record's columns (the header's, shared) ...
	rec  []string         // ... and its fields
	rej  *events.Rejected // a record the reader already rejected (malformed CSV)
}

// decodedChunk is a chunk's valid events and rejected rows, each in file order.
type decodedChunk struct {
	evs []events.Event
	rej []events.Rejected
}

type job struct {
	rows []rawRow
	out  chan decodedChunk
}

// decodeTextFile runs the decoding pipeline on an NDJSON or CSV file.
func decodeTextFile(ctx context.Context, path string, format Format, ph *phones, s *sink) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, 1<<20)

	// A CSV file with a phone column needs the key before anything is read.
	csvPhone := false
	if format == CSV {
		head, _ := br.Peek(64 * 1024)
		firstLine, _, _ := bytes.Cut(head, []byte("\n"))
		if hdr, err := csv.NewReader(bytes.NewReader(firstLine)).Read(); err == nil && anyPhone(hdr) {
			if _, err := ph.hasher(); err != nil {
				return fmt.Errorf("%s:1: %w", path, err)
			}
			csvPhone = true
		}
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(1, runtime.GOMAXPROCS(0))
	jobs := make(chan job, workers)
	order := make(chan chan decodedChunk, 4*workers)
	readErr := make(chan error, 1)

	// Reader: rows in chunks; each chunk's result channel goes to order in file order.
	go func() {
		defer close(order)
		defer close(jobs)
		rows := make([]rawRow, 0, chunkRows)
		send := func() error {
			if len(rows) == 0 {
				return nil
			}
			j := job{rows: rows, out: make(chan decodedChunk, 1)}
			select {
			case order <- j.out:
			case <-pctx.Done():
				return pctx.Err()
			}
			select {
			case jobs <- j:
			case <-pctx.Done():
				return pctx.Err()
			}
			rows = make([]rawRow, 0, chunkRows)
			return nil
		}
		add := func(r rawRow) error {
			rows = append(rows, r)
			if len(rows) == chunkRows {
				return send()
			}
			return nil
		}
		var err error
		if format == CSV {
			var extra func(string) bool
			if csvPhone {
				extra = pseudo.IsPhoneColumn
			}
			// Records go to the workers as they stand: the reader is one goroutine, and a
			// map per row cost it ~1 µs of the ~3 µs it spends per row.
			err = events.ReadCSVRecords(br, path, extra, func(line int, cols, rec []string) error {
				return add(rawRow{line: line, cols: cols, rec: rec})
			}, func(r events.Rejected) {
				if err := add(rawRow{line: r.Line, rej: &r}); err != nil {
					cancel()
				}
			})
		} else {
			err = readNDJSONLines(br, path, add)
		}
		if err == nil {
			err = send()
		}
		readErr <- err
	}()

	// Workers.
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &rowDecoder{file: path, ph: ph, csvPhone: csvPhone, m: make(map[string]string, 32)}
			for j := range jobs {
				j.out <- d.decode(j.rows)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	// In file order.
	for out := range order {
		var d decodedChunk
		select {
		case d = <-out:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, r := range d.rej {
			s.reject(r)
		}
		if err := s.add(d.evs); err != nil {
			return err
		}
	}
	if err := <-readErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// readNDJSONLines hands each non-blank line, trimmed, to add (the lines of a chunk share
// one buffer).
func readNDJSONLines(r io.Reader, file string, add func(rawRow) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), events.MaxLineBytes)
	line := 0
	arena := make([]byte, 0, 1<<20)
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(arena)+len(b) > cap(arena) {
			arena = make([]byte, 0, max(1<<20, len(b)))
		}
		start := len(arena)
		arena = append(arena, b...)
		if err := add(rawRow{line: line, text: arena[start:len(arena):len(arena)]}); err != nil {
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

// rowDecoder validates rows; one per worker.
type rowDecoder struct {
	file     string
	ph       *phones
	csvPhone bool
	m        map[string]string // reused for NDJSON lines and CSV rows with a phone column
	b        events.Builder    // reused for NDJSON lines
}

func (d *rowDecoder) decode(rows []rawRow) decodedChunk {
	out := decodedChunk{evs: make([]events.Event, 0, len(rows))}
	for i := range rows {
		r := &rows[i]
		if r.rej != nil {
			out.rej = append(out.rej, *r.rej)
			continue
		}
		var e events.Event
		var err error
		if r.rec != nil {
			e, err = d.csvRow(r.cols, r.rec)
		} else {
			e, err = d.jsonRow(r.text)
		}
		if err != nil {
			out.rej = append(out.rej, events.Rejected{File: d.file, Line: r.line, Reason: err.Error()})
			continue
		}
		out.evs = append(out.evs, e)
	}
	return out
}

func (d *rowDecoder) csvRow(cols, rec []string) (events.Event, error) {
	if !d.csvPhone {
		return events.FromRecord(cols, rec)
	}
	// A phone column is replaced by the contact's pseudonym, by column name.
	clear(d.m)
	for i, c := range cols {
		d.m[c] = rec[i]
	}
	if err := pseudo.ReplacePhone(d.m, d.ph.key()); err != nil {
		return events.Event{}, err
	}
	return events.FromFields(d.m)
}

// jsonRow decodes an NDJSON line: flat objects of strings, numbers and literals (nearly
// every line) in one pass here, anything else by events.DecodeJSONObject (which also
// words the errors). Both give the same event or the same rejection.
func (d *rowDecoder) jsonRow(b []byte) (events.Event, error) {
	// Most lines: known columns, each once, good values; straight into the event.
	d.b.Reset()
	if valid, taken := ScanFlatJSONInto(b, &d.b); taken {
		if !valid {
			return d.jsonRowGeneral(b)
		}
		return d.b.Event()
	}
	// A phone number, an unknown or repeated key, a bad value: as column → text.
	clear(d.m)
	if !scanFlatObject(b, d.m) {
		return d.jsonRowGeneral(b)
	}
	_, hasPhone := d.m["phone"]
	_, hasWaID := d.m["wa_id"]
	if hasPhone || hasWaID {
		// As pseudonymiseJSON: the key is needed only for a non-empty number.
		if d.m["phone"] != "" || d.m["wa_id"] != "" {
			if _, err := d.ph.hasher(); err != nil {
				return events.Event{}, err
			}
		}
		if err := pseudo.ReplacePhone(d.m, d.ph.key()); err != nil {
			return events.Event{}, err
		}
	}
	return events.FromFields(d.m)
}

func (d *rowDecoder) jsonRowGeneral(b []byte) (events.Event, error) {
	if hasPhoneKey(b) {
		var err error
		if b, err = pseudonymiseJSON(b, d.ph); err != nil {
			return events.Event{}, err
		}
	}
	return events.DecodeJSONObject(b)
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
			if err := pseudo.ReplacePhone(fields, ph.key()); err != nil {
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
// phone column. Safe for concurrent use (decoding workers).
type phones struct {
	mu  sync.Mutex
	h   *pseudo.Hasher
	err error
	got bool
}

func (p *phones) hasher() (*pseudo.Hasher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
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

// key is the hasher once hasher succeeded (nil before).
func (p *phones) key() *pseudo.Hasher {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h
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
	if err := pseudo.ReplacePhone(f, ph.key()); err != nil {
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

func anyPhone(header []string) bool {
	for _, h := range header {
		if pseudo.IsPhoneColumn(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
			return true
		}
	}
	return false
}
