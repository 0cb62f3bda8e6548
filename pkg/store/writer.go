package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
func (w *Writer) Append(ctx context.Context, evs []events.Event, opts AppendOptions) (AppendResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var res AppendResult
	if len(evs) == 0 {
		return res, nil
	}
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "DELETE FROM staging"); err != nil {
		return res, err
	}
	err = conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "staging")
		if err != nil {
			return err
		}
		for i := range evs {
			if err := app.AppendRow(EventRow(&evs[i], int64(i))...); err != nil {
				app.Close()
				return fmt.Errorf("event %q: %w", evs[i].EventID, err)
			}
		}
		return app.Close()
	})
	if err != nil {
		return res, fmt.Errorf("stage events: %w", err)
	}

	// First arrival wins within the batch; with SkipExisting, ids already stored are dropped.
	filter := ""
	if opts.SkipExisting {
		segs, err := ListSegments(w.dir)
		if err != nil {
			return res, err
		}
		if len(segs) > 0 {
			filter = fmt.Sprintf(" AND event_id NOT IN (SELECT event_id FROM read_parquet(%s))", parquetList(segs))
		}
	}
	selectSQL := fmt.Sprintf(`SELECT %s FROM staging WHERE true%s
		QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq) = 1 ORDER BY seq`, ColumnList(), filter)
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM ("+selectSQL+")").Scan(&n); err != nil {
		return res, fmt.Errorf("count new events: %w", err)
	}
	res.Duplicates = len(evs) - n
	if n == 0 {
		return res, nil
	}
	name := newSegmentName(time.Now())
	tmp := filepath.Join(w.dir, TmpDir, name)
	copySQL := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)", selectSQL, SQLString(tmp))
	if _, err := conn.ExecContext(ctx, copySQL); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("write segment: %w", err)
	}
	final, err := publish(w.dir, tmp, name)
	if err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("publish segment: %w", err)
	}
	res.Written, res.Segment = n, final
	return res, nil
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
