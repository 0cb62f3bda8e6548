package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CompactOptions tunes Compact.
type CompactOptions struct {
	// SmallBytes: segments smaller than this are merged (default 6 MiB). It is above what a
	// receiver cuts at most (--flush-events, 100 000–150 000 events, ~3–5 MB) and below
	// what the demo generator and imports write (250 000–500 000 events, ~8–16 MB), which
	// read as fast as merged segments and stay as written: rewriting a large imported
	// store took one CPU for tens of minutes, beside queries.
	SmallBytes int64
	// MinSegments: merge only when at least this many small segments are in a row (default 8).
	MinSegments int
	// MaxMergeBytes: a run stops growing once it holds this many bytes (default 128 MiB,
	// or 4 × SmallBytes if that is more), so one pass never rewrites a whole store of small
	// segments at once.
	MaxMergeBytes int64
	// RetiredGrace: how long replaced segments stay in retired/ for readers that listed
	// them before they moved (default 5 minutes).
	RetiredGrace time.Duration
}

func (o *CompactOptions) defaults() {
	if o.SmallBytes <= 0 {
		o.SmallBytes = 6 << 20
	}
	if o.MinSegments <= 1 {
		o.MinSegments = 8
	}
	if o.MaxMergeBytes <= 0 {
		o.MaxMergeBytes = max(128<<20, 4*o.SmallBytes)
	}
	if o.RetiredGrace <= 0 {
		o.RetiredGrace = 5 * time.Minute
	}
}

// CompactResult says what Compact did.
type CompactResult struct {
	Merged  int    // segments merged
	Output  string // the new segment
	Removed int    // retired segments deleted after their grace period
	Skipped bool   // another process holds the compaction lock
}

// Compact merges runs of small segments into one segment each. The merged segment is
// published before its inputs are retired, so a reader sees every event at every moment
// (duplicates in between are removed by the readers' deduplication). Only one process
// compacts a store at a time (an exclusive lock on compact.lock).
func (w *Writer) Compact(ctx context.Context, opts CompactOptions) (CompactResult, error) {
	opts.defaults()
	var res CompactResult
	unlock, ok, err := TryLock(filepath.Join(w.dir, "compact.lock"))
	if err != nil {
		return res, err
	}
	if !ok {
		res.Skipped = true
		return res, nil
	}
	defer unlock()
	res.Removed = removeRetired(w.dir, opts.RetiredGrace)

	segs, err := ListSegments(w.dir)
	if err != nil {
		return res, err
	}
	// The first run of at least MinSegments consecutive small segments, oldest first, up
	// to MaxMergeBytes.
	var run []Segment
	var runBytes int64
	for _, s := range segs {
		if s.Size < opts.SmallBytes {
			run = append(run, s)
			runBytes += s.Size
			if len(run) >= opts.MinSegments && runBytes >= opts.MaxMergeBytes {
				break
			}
			continue
		}
		if len(run) >= opts.MinSegments {
			break
		}
		run, runBytes = run[:0], 0
	}
	if len(run) < opts.MinSegments {
		return res, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	first := strings.TrimSuffix(run[0].Name, ".parquet")
	name := first + "-c" + strings.TrimSuffix(newSegmentName(time.Now())[21:], ".parquet") + ".parquet"
	tmp := filepath.Join(w.dir, TmpDir, name)
	q := fmt.Sprintf(`COPY (SELECT %s FROM read_parquet(%s, filename=true, file_row_number=true)
		QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY filename, file_row_number) = 1
		ORDER BY filename, file_row_number) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880,
		KV_METADATA {%s: %s})`,
		ColumnList(), parquetList(run), SQLString(tmp), CompactedFromKey, SQLString(strings.Join(names(run), ",")))
	if _, err := w.db.ExecContext(ctx, q); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("compact: %w", err)
	}
	out, err := publish(w.dir, tmp, name)
	if err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("compact: publish: %w", err)
	}
	for _, s := range run {
		retired := filepath.Join(w.dir, RetiredDir, s.Name)
		if err := os.Rename(s.Path, retired); err != nil && !os.IsNotExist(err) {
			return res, fmt.Errorf("compact: retire %s: %w", s.Name, err)
		}
		now := time.Now()
		_ = os.Chtimes(retired, now, now) // the grace period starts at retirement
	}
	res.Merged, res.Output = len(run), out
	return res, nil
}

// CompactedFromKey is the Parquet key-value metadata key of a merged segment: the names
// of the segments it replaces, in arrival order, comma-separated. Readers that hold facts
// derived from those segments (the data source's snapshot) use it to tell a merge, which
// changes no event, from a rewrite.
const CompactedFromKey = "blueticks_compacted_from"

func names(segs []Segment) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.Name
	}
	return out
}

// CompactedFrom returns, for each of segs that is the output of Compact, the names of
// the segments it merges, in arrival order, keyed by its name; plain segments are left
// out. It reads the files' footers only. db is any DuckDB connection.
func CompactedFrom(ctx context.Context, db interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, segs []Segment) (map[string][]string, error) {
	out := map[string][]string{}
	if len(segs) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT file_name, decode(value) FROM parquet_kv_metadata(%s) WHERE decode(key) = %s`,
		parquetList(segs), SQLString(CompactedFromKey)))
	if err != nil {
		return nil, fmt.Errorf("read segment metadata: %w", err)
	}
	defer rows.Close()
	names := make(map[string]string, len(segs)) // a segment may be read by another path (kpi's pinSegments)
	for _, s := range segs {
		names[s.Path] = s.Name
	}
	for rows.Next() {
		var file, v string
		if err := rows.Scan(&file, &v); err != nil {
			return nil, fmt.Errorf("read segment metadata: %w", err)
		}
		name, ok := names[file]
		if !ok {
			name = filepath.Base(file)
		}
		out[name] = strings.Split(v, ",")
	}
	return out, rows.Err()
}

func removeRetired(dir string, grace time.Duration) int {
	entries, err := os.ReadDir(filepath.Join(dir, RetiredDir))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		// Compaction stamps mtime at retirement, so mtime is the retirement time.
		if time.Since(info.ModTime()) > grace {
			if os.Remove(filepath.Join(dir, RetiredDir, e.Name())) == nil {
				n++
			}
		}
	}
	return n
}
