package kpi

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
)

// Building the facts of a large store within memory_limit and the spill cap. DuckDB runs
// joins, aggregates, windows and sorts out of core, but an ORDER BY spills every row it
// sorts, uncompressed and in row format (~250-500 bytes per fact row), and the engine caps
// its temporary files (spillLimitMB). So a statement ending in "ORDER BY <time column>"
// whose result would outgrow the cap is run in two parts: the unsorted result first, then
// sorted copies of consecutive time slices, each within the cap, appended in order. The
// table is then in time order as if sorted at once (ties may differ; no query depends on
// them). Below the cap (10M events and more) it is one sort, as before.

// Joins with a big build side (tens of millions of message rows with their string
// dimensions) need more memory than an external hash join can work in at 100M events. A
// statement marks them with {part:<key expression>} conditions: it then runs in hash
// partitions (a "grace" hash join spelled out), each condition becoming
// hash(<key>) % n = i, the first partition creating the table and the others appending.
// Rows meeting on equal keys fall in the same partition, so the union of the partitions
// is the statement's result; hash(NULL) is a value, so NULL keys land in one partition.
var partMarker = regexp.MustCompile(`\{part:([^}]*)\}`)

// partitioned gives stmt for partition i of n (n 1: the whole result).
func partitioned(stmt string, i, n int) string {
	if n <= 1 {
		return partMarker.ReplaceAllString(stmt, "true")
	}
	return partMarker.ReplaceAllString(stmt, fmt.Sprintf("(hash($1) %% %d = %d)", n, i))
}

// partitionRows is how many events one partition of a partitioned step covers per MB of
// the build's memory limit (10M events at 1 GB: one partition up to 10M events).
const partitionRows = 10_000

// partitions is the number of partitions for a store of events events.
func (e *Engine) partitions(events int64) int {
	if forcedPartitions > 0 {
		return forcedPartitions
	}
	per := int64(partitionRows * e.opts.BuildMemoryLimitMB)
	return int(max(1, (events+per-1)/per))
}

// forcedPartitions, when set (tests), replaces the number of partitions.
var forcedPartitions = 0

// execPartitioned runs a CREATE TABLE <name> AS <select> statement in n partitions.
func execPartitioned(ctx context.Context, conn *sql.Conn, stmt string, n int) error {
	if n <= 1 || !partMarker.MatchString(stmt) {
		_, err := conn.ExecContext(ctx, partitioned(stmt, 0, 1))
		return err
	}
	m := createAs.FindStringSubmatch(stmt)
	if m == nil {
		return fmt.Errorf("partitioned statement is not CREATE TABLE ... AS: %.60s", stmt)
	}
	for i := 0; i < n; i++ {
		s := partitioned(stmt, i, n)
		if i > 0 {
			s = fmt.Sprintf("INSERT INTO %s %s", m[1], partitioned(m[2], i, n))
		}
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// createAs matches "CREATE TABLE <name> AS <select>".
var createAs = regexp.MustCompile(`(?s)^\s*CREATE TABLE (\S+) AS\s(.*)$`)

// position matches an ORDER BY by output position ("ORDER BY 1").
var position = regexp.MustCompile(`^\d+$`)

// orderedCreate matches "CREATE TABLE <name> AS <select> ORDER BY <col>".
var orderedCreate = regexp.MustCompile(`(?s)^\s*CREATE TABLE (\S+) AS\s(.*)\sORDER BY ([\w.]+)\s*$`)

// sortRowBytes is what one fact row costs a sort's spill, generously (a wide fact row with
// its strings).
const sortRowBytes = 512

// sortSliceRows, when set (tests), replaces the rows per slice derived from the spill cap.
var sortSliceRows = 0

// sliceRows is how many rows one sorted slice may hold: half the spill cap's worth.
func (e *Engine) sliceRows() int64 {
	if sortSliceRows > 0 {
		return int64(sortSliceRows)
	}
	return int64(spillLimitMB(e.opts.BuildMemoryLimitMB)) << 20 / 2 / sortRowBytes
}

// buildStep runs one statement of a full build of a store of events events, in parts
// partitions (for the statements marked with {part:...}), logging what it took.
func (e *Engine) buildStep(ctx context.Context, conn *sql.Conn, stmt string, events int64, parts int) error {
	start := time.Now()
	m := orderedCreate.FindStringSubmatch(stmt)
	name := strings.Fields(stmt)[2]
	if !partMarker.MatchString(stmt) {
		parts = 1
	}
	// A fact table has at most two rows per event (f_evt: events plus deliveries): when
	// that fits one sorted slice, the statement runs as written, in one go.
	if m != nil && parts == 1 && 2*events <= e.sliceRows() {
		m = nil
	}
	if m == nil {
		if err := execPartitioned(ctx, conn, stmt, parts); err != nil {
			return err
		}
		log.DefaultLogger.Debug("build step", "table", name, "partitions", parts, "took", time.Since(start))
		return nil
	}
	table, body, col := m[1], m[2], m[3]
	if i := strings.LastIndex(col, "."); i >= 0 {
		col = col[i+1:] // "t.start_ts": the output column is start_ts
	}
	if position.MatchString(col) {
		// ORDER BY 1: the first output column.
		var first string
		if err := conn.QueryRowContext(ctx, "SELECT column_name FROM (DESCRIBE "+body+") LIMIT 1").Scan(&first); err != nil {
			return err
		}
		col = first
	}
	// The unsorted copy goes to the build's scratch database: dropped from the facts
	// file, it would leave as many free blocks there.
	unsorted := scratchDB + ".main." + strings.ReplaceAll(table, ".", "_") + "__unsorted"
	if err := execPartitioned(ctx, conn, fmt.Sprintf("CREATE TABLE %s AS %s", unsorted, body), parts); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+unsorted) //nolint:errcheck
	var rows int64
	var lo, hi sql.NullTime
	if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*), min(%[1]s), max(%[1]s) FROM %[2]s", col, unsorted)).Scan(&rows, &lo, &hi); err != nil {
		return err
	}
	slices := 1
	if per := e.sliceRows(); rows > per && lo.Valid && hi.Valid && hi.Time.After(lo.Time) {
		slices = int((rows + per - 1) / per)
	}
	if slices == 1 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s ORDER BY %s", table, unsorted, col)); err != nil {
			return err
		}
	} else {
		// Equal time widths: events spread over time, and a skewed slice only sorts longer.
		width := hi.Time.Sub(lo.Time) / time.Duration(slices)
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s WHERE false", table, unsorted)); err != nil {
			return err
		}
		for i := 0; i < slices; i++ {
			cond := fmt.Sprintf("%s >= ?", col)
			args := []any{lo.Time.Add(time.Duration(i) * width)}
			if i == 0 {
				cond, args = "true", nil
			}
			if i < slices-1 {
				cond += fmt.Sprintf(" AND %s < ?", col)
				args = append(args, lo.Time.Add(time.Duration(i+1)*width))
			}
			q := fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE %s IS NOT NULL AND %s ORDER BY %s", table, unsorted, col, cond, col)
			if _, err := conn.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		// Rows without a time sort last, as ORDER BY puts NULLs.
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE %s IS NULL", table, unsorted, col)); err != nil {
			return err
		}
	}
	log.DefaultLogger.Debug("build step", "table", table, "rows", rows, "partitions", parts, "sorted slices", slices, "took", time.Since(start))
	return nil
}
