package store

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// Writer publishes batches of events as new segments. It is safe for concurrent use; each
// Append writes one segment (or none when nothing is new).
type Writer struct {
	dir string
	db  *sql.DB
	mu  sync.Mutex
}

// AppendOptions tunes one Append.
type AppendOptions struct {
	// SkipExisting drops events whose event_id is already in the store before writing, so
	// importing the same file twice writes nothing the second time. Readers deduplicate
	// anyway; this keeps the store small.
	SkipExisting bool
}

// AppendResult says what one Append did.
type AppendResult struct {
	Written    int    // events in the new segment
	Duplicates int    // events dropped as duplicates (within the batch or already stored)
	Segment    string // path of the new segment, empty when nothing was written
}

// OpenWriter initialises the store layout in dir if needed and returns a writer.
func OpenWriter(dir string) (*Writer, error) {
	if err := Init(dir); err != nil {
		return nil, err
	}
	removeStaleTmp(filepath.Join(dir, TmpDir), time.Hour)
	db, err := OpenDuckDB("")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(createTableSQL("staging", true)); err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare staging table: %w", err)
	}
	return &Writer{dir: dir, db: db}, nil
}

// SetThreads bounds the threads DuckDB uses for this writer's segments (default: one per
// CPU). A receiver writes small segments in the background and keeps the other CPUs for
// requests.
func (w *Writer) SetThreads(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.db.Exec(fmt.Sprintf("SET threads = %d", max(1, n)))
	return err
}

// SetMemoryLimit bounds the memory of this writer's DuckDB (compaction and retention read
// many segments at once); beyond it DuckDB spills to spillDir, a directory private to the
// caller.
func (w *Writer) SetMemoryLimit(mb int, spillDir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.db.Exec(fmt.Sprintf("SET memory_limit = '%dMB'; SET temp_directory = %s", max(64, mb), SQLString(spillDir)))
	return err
}

// removeStaleTmp deletes what writers that died left in tmp/ (half-written segments,
// CSV staging files). A live writer's files there are minutes old at most.
func removeStaleTmp(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Dir is the store directory.
func (w *Writer) Dir() string { return w.dir }

// Close releases the writer's DuckDB.
func (w *Writer) Close() error { return w.db.Close() }

// OpenDuckDB opens a DuckDB database (in memory for path "") with UTC as its time zone.
// The zone is set globally, so it holds on every connection, also after the configuration
// is locked.
func OpenDuckDB(path string) (*sql.DB, error) {
	connector, err := duckdb.NewConnector(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	if _, err := db.Exec("SET GLOBAL TimeZone = 'UTC'"); err != nil {
		db.Close()
		return nil, fmt.Errorf("open duckdb: set time zone: %w", err)
	}
	return db, nil
}

// createTableSQL gives the DDL of a table in SPEC columns, optionally with an arrival
// sequence column.
func createTableSQL(name string, withSeq bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE OR REPLACE TABLE %s (", name)
	for i, c := range events.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", c.Name, c.SQLType)
	}
	if withSeq {
		b.WriteString(", seq BIGINT")
	}
	b.WriteString(")")
	return b.String()
}

// ColumnList is the comma-separated SPEC column names in storage order.
func ColumnList() string {
	names := make([]string, len(events.Columns))
	for i, c := range events.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

func nullable(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

// EventRow is the appender row of an event (SPEC columns, then seq).
func EventRow(e *events.Event, seq int64) []driver.Value {
	var code, val driver.Value
	if e.ErrorCode != nil {
		code = *e.ErrorCode
	}
	if e.Value != nil {
		val = *e.Value
	}
	return []driver.Value{
		e.EventID, e.TS.UTC(), e.Type, nullable(e.MessageID), nullable(e.ReplyTo),
		nullable(e.ConversationID), nullable(e.ContactID), nullable(e.BusinessNumber),
		nullable(e.Sender), nullable(e.AgentID), nullable(e.Campaign), nullable(e.Template),
		nullable(e.Category), nullable(e.Variant), nullable(e.Segment), nullable(e.Country),
		nullable(e.MessageType), code, val, nullable(e.Currency), nullable(e.Step),
		nullable(e.Quality), nullable(e.PricingType), seq,
	}
}

// Append writes the events (already validated) as one new segment, in the given order,
// which is their arrival order. It returns once the segment is durable and published.
// Within the batch the first event of an id wins; with SkipExisting, ids already stored
// are dropped too.
func (w *Writer) Append(ctx context.Context, evs []events.Event, opts AppendOptions) (AppendResult, error) {
	return w.AppendChunks(ctx, [][]events.Event{evs}, opts)
}

// AppendChunks is Append of the chunks' events one after the other (as one segment),
// without copying them into one slice.
//
// The events reach DuckDB as a temporary CSV file in tmp/, written by Go and read by
// DuckDB's CSV reader in the statement that writes the Parquet segment: several times
// faster than DuckDB's row appender. A batch with text the CSV route cannot carry
// unchanged (invalid UTF-8, NUL, line breaks) or a non-finite value takes the appender.
func (w *Writer) AppendChunks(ctx context.Context, chunks [][]events.Event, opts AppendOptions) (AppendResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var res AppendResult
	b := batch{chunks: chunks}
	total := b.len()
	if total == 0 {
		return res, nil
	}
	b.markDuplicates()
	var filter func(src string) string
	if opts.SkipExisting {
		segs, err := ListSegments(w.dir)
		if err != nil {
			return res, err
		}
		if len(segs) > 0 {
			// The stored ids that are among the batch's, then the batch without them: the
			// join holds the batch's ids (at most one batch) and streams the store's. A
			// plain NOT IN over the stored ids held all of them (500 events into a
			// 100M-event store: 10 GB and 32 s; this way 93 MB and 7 s).
			filter = func(src string) string {
				return fmt.Sprintf(" WHERE event_id NOT IN (SELECT s.event_id FROM read_parquet(%s) AS s WHERE s.event_id IN (SELECT event_id FROM %s))",
					parquetList(segs), src)
			}
		}
	}
	name := newSegmentName(time.Now())
	tmp := filepath.Join(w.dir, TmpDir, name)
	n, err := w.copyViaCSV(ctx, &b, filter, tmp)
	if errors.Is(err, errNotCSVSafe) {
		n, err = w.copyViaAppender(ctx, &b, filter, tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return res, err
	}
	res.Duplicates = total - int(n)
	if n == 0 {
		os.Remove(tmp)
		return res, nil
	}
	final, err := publish(w.dir, tmp, name)
	if err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("publish segment: %w", err)
	}
	res.Written, res.Segment = int(n), final
	return res, nil
}

// batch is the events of one Append, in chunks, with the repeated ids marked.
type batch struct {
	chunks [][]events.Event
	dup    [][]bool // nil: no repeated id in the batch
}

func (b *batch) len() int {
	n := 0
	for _, c := range b.chunks {
		n += len(c)
	}
	return n
}

// markDuplicates marks every event whose id came earlier in the batch (first arrival
// wins).
func (b *batch) markDuplicates() {
	seen := make(map[string]struct{}, b.len())
	for ci, c := range b.chunks {
		for i := range c {
			id := c[i].EventID
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				continue
			}
			if b.dup == nil {
				b.dup = make([][]bool, len(b.chunks))
			}
			if b.dup[ci] == nil {
				b.dup[ci] = make([]bool, len(c))
			}
			b.dup[ci][i] = true
		}
	}
}

// each calls f with every event that is not a repeated id, in order.
func (b *batch) each(f func(e *events.Event) error) error {
	for ci, c := range b.chunks {
		var dup []bool
		if b.dup != nil {
			dup = b.dup[ci]
		}
		for i := range c {
			if dup != nil && dup[i] {
				continue
			}
			if err := f(&c[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// errNotCSVSafe: the batch holds text or a value the CSV route would not store exactly.
var errNotCSVSafe = errors.New("batch is not CSV-safe")

// csvColumns is the read_csv column list: SPEC columns with ts as Unix microseconds,
// then seq.
func csvColumns() string {
	var b strings.Builder
	b.WriteString("{")
	for i, c := range events.Columns {
		typ := c.SQLType
		if c.Name == "ts" {
			typ = "BIGINT"
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "'%s': '%s'", c.Name, typ)
	}
	b.WriteString(", 'seq': 'BIGINT'}")
	return b.String()
}

// appendCSVText appends s as a quoted CSV field (quotes doubled); nothing for "" (read
// as NULL, as the appender stores missing text). ok is false for text the CSV reader
// would not give back unchanged.
func appendCSVText(b []byte, s string) ([]byte, bool) {
	if s == "" {
		return b, true
	}
	b = append(b, '"')
	ascii := true
	for k := 0; k < len(s); k++ {
		c := s[k]
		switch {
		case c == '"':
			b = append(b, '"', '"')
			continue
		case c == 0 || c == '\n' || c == '\r':
			return b, false
		case c >= 0x80:
			ascii = false
		}
		b = append(b, c)
	}
	if !ascii && !utf8.ValidString(s) {
		return b, false
	}
	return append(b, '"'), true
}

// appendCSVRow appends an event as one CSV line: text quoted, missing values empty, ts in
// Unix microseconds (what the appender stores: DuckDB timestamps have microsecond
// precision), then seq.
func appendCSVRow(b []byte, e *events.Event, seq int) ([]byte, bool) {
	ok := true
	text := func(s string) {
		var good bool
		b, good = appendCSVText(b, s)
		ok = ok && good
	}
	text(e.EventID)
	b = append(b, ',')
	b = strconv.AppendInt(b, e.TS.UnixMicro(), 10)
	for _, s := range [...]string{e.Type, e.MessageID, e.ReplyTo, e.ConversationID, e.ContactID,
		e.BusinessNumber, e.Sender, e.AgentID, e.Campaign, e.Template, e.Category, e.Variant,
		e.Segment, e.Country, e.MessageType} {
		b = append(b, ',')
		text(s)
	}
	b = append(b, ',')
	if e.ErrorCode != nil {
		b = strconv.AppendInt(b, int64(*e.ErrorCode), 10)
	}
	b = append(b, ',')
	if e.Value != nil {
		if math.IsInf(*e.Value, 0) || math.IsNaN(*e.Value) {
			ok = false
		}
		b = strconv.AppendFloat(b, *e.Value, 'g', -1, 64)
	}
	for _, s := range [...]string{e.Currency, e.Step, e.Quality, e.PricingType} {
		b = append(b, ',')
		text(s)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(seq), 10)
	return append(b, '\n'), ok
}

// copyViaCSV writes the batch's events to a temporary CSV file and copies them, in order
// and minus those filter drops (it gives the WHERE clause over the batch's relation; nil:
// none), to the Parquet file out. It returns the rows written, or errNotCSVSafe.
func (w *Writer) copyViaCSV(ctx context.Context, b *batch, filter func(src string) string, out string) (int64, error) {
	csvPath := out + ".csv"
	defer os.Remove(csvPath)
	f, err := os.Create(csvPath)
	if err != nil {
		return 0, fmt.Errorf("stage events: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	line := make([]byte, 0, 1024)
	seq, longest := 0, 0
	err = b.each(func(e *events.Event) error {
		var ok bool
		line, ok = appendCSVRow(line[:0], e, seq)
		if !ok {
			return errNotCSVSafe
		}
		seq++
		longest = max(longest, len(line))
		_, err := bw.Write(line)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errNotCSVSafe) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("stage events: %w", err)
	}
	cols := make([]string, len(events.Columns))
	for i, c := range events.Columns {
		cols[i] = c.Name
		if c.Name == "ts" {
			cols[i] = "make_timestamp(ts)::TIMESTAMPTZ AS ts" // the session time zone is UTC
		}
	}
	// DuckDB sizes its read buffers from max_line_size (16 times it by default): a line
	// longer than its default (2 MiB) raises it, and the buffers are 4 lines each.
	maxLine := max(2<<20, longest+1024)
	lineSize := fmt.Sprintf(", max_line_size = %d, buffer_size = %d", maxLine, 4*maxLine)
	src := fmt.Sprintf("read_csv(%s, columns = %s, header = false, auto_detect = false, delim = ',', quote = '\"', escape = '\"'%s)",
		SQLString(csvPath), csvColumns(), lineSize)
	where, order := "", ""
	if filter != nil {
		where = filter(src)
		order = " ORDER BY seq" // the anti-join need not keep the scan's order
	}
	q := fmt.Sprintf("COPY (SELECT %s FROM %s%s%s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
		strings.Join(cols, ", "), src, where, order, SQLString(out))
	r, err := w.db.ExecContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("write segment: %w", err)
	}
	return r.RowsAffected()
}

// copyViaAppender stages the batch's events with DuckDB's appender and copies them, in
// order and minus those filter drops (as in copyViaCSV), to the Parquet file out. It
// returns the rows written.
func (w *Writer) copyViaAppender(ctx context.Context, b *batch, filter func(src string) string, out string) (int64, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "DELETE FROM staging"); err != nil {
		return 0, err
	}
	err = conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "staging")
		if err != nil {
			return err
		}
		seq := int64(0)
		err = b.each(func(e *events.Event) error {
			if err := app.AppendRow(EventRow(e, seq)...); err != nil {
				return fmt.Errorf("event %q: %w", e.EventID, err)
			}
			seq++
			return nil
		})
		if err != nil {
			app.Close()
			return err
		}
		return app.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("stage events: %w", err)
	}
	where := ""
	if filter != nil {
		where = filter("staging")
	}
	q := fmt.Sprintf("COPY (SELECT %s FROM staging%s ORDER BY seq) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
		ColumnList(), where, SQLString(out))
	r, err := conn.ExecContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("write segment: %w", err)
	}
	n, err := r.RowsAffected()
	if _, derr := conn.ExecContext(ctx, "DELETE FROM staging"); err == nil {
		err = derr
	}
	return n, err
}

// SQLString quotes s as a SQL string literal. Only for paths the operator configured and
// names this package made, never for a viewer's input.
func SQLString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func parquetList(segs []Segment) string {
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = SQLString(s.Path)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// ParquetList renders segment paths as a DuckDB list literal for read_parquet.
func ParquetList(segs []Segment) string { return parquetList(segs) }
