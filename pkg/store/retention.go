package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RetentionResult says what DropBefore did.
type RetentionResult struct {
	Rewritten int   // segments rewritten without their old rows
	Retired   int   // segments retired because every row was old
	Dropped   int64 // rows deleted
	Skipped   bool  // another process holds the compaction lock
}

// DropBefore deletes the events with ts before cutoff (the retention setting). A segment
// with some old rows is rewritten without them and the rewrite is published, under a name
// that sorts in the original's place (its name plus a suffix, so first-arrival order is kept), before the
// original is retired; a segment with only old rows is retired. Readers therefore never
// see a half-written file and never miss a kept event. It takes the compaction lock, so it
// never runs at the same time as Compact in any process.
func (w *Writer) DropBefore(ctx context.Context, cutoff time.Time) (RetentionResult, error) {
	var res RetentionResult
	unlock, ok, err := TryLock(filepath.Join(w.dir, "compact.lock"))
	if err != nil {
		return res, err
	}
	if !ok {
		res.Skipped = true
		return res, nil
	}
	defer unlock()
	segs, err := ListSegments(w.dir)
	if err != nil {
		return res, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cut := cutoff.UTC()
	for _, s := range segs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var old, total int64
		q := fmt.Sprintf("SELECT count(*) FILTER (WHERE ts < ?), count(*) FROM read_parquet(%s)", SQLString(s.Path))
		if err := w.db.QueryRowContext(ctx, q, cut).Scan(&old, &total); err != nil {
			if _, statErr := os.Stat(s.Path); os.IsNotExist(statErr) {
				continue // retired by a compaction of another writer in this process
			}
			return res, fmt.Errorf("retention: read %s: %w", s.Name, err)
		}
		if old == 0 {
			continue
		}
		if old < total {
			// The rewrite carries no blueticks_compacted_from, even of a merge: readers would
			// take it for a rename of the merge's inputs, and it holds fewer events.
			name := rewriteName(s.Name, time.Now())
			tmp := filepath.Join(w.dir, TmpDir, name)
			copySQL := fmt.Sprintf(`COPY (SELECT %s FROM read_parquet(%s, file_row_number=true) WHERE ts >= ?
				ORDER BY file_row_number) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)`,
				ColumnList(), SQLString(s.Path), SQLString(tmp))
			if _, err := w.db.ExecContext(ctx, copySQL, cut); err != nil {
				os.Remove(tmp)
				return res, fmt.Errorf("retention: rewrite %s: %w", s.Name, err)
			}
			if _, err := publish(w.dir, tmp, name); err != nil {
				os.Remove(tmp)
				return res, fmt.Errorf("retention: publish: %w", err)
			}
			res.Rewritten++
		} else {
			res.Retired++
		}
		retired := filepath.Join(w.dir, RetiredDir, s.Name)
		if err := os.Rename(s.Path, retired); err != nil && !os.IsNotExist(err) {
			return res, fmt.Errorf("retention: retire %s: %w", s.Name, err)
		}
		now := time.Now()
		_ = os.Chtimes(retired, now, now)
		res.Dropped += old
	}
	return res, nil
}

// A retention rewrite is named <original>-r<12 hex digits>.parquet: it sorts right after
// the segment it replaces, and says which one that is (RetentionOriginal).
const rewriteMarker = "-r"

func rewriteName(original string, now time.Time) string {
	random := strings.TrimSuffix(newSegmentName(now)[21:], ".parquet") // the name's random part
	return strings.TrimSuffix(original, ".parquet") + rewriteMarker + random + ".parquet"
}

// RetentionMidway reports whether segs, a listing of the store, holds a retention rewrite
// beside the segment it replaces, the rewrite written less than retentionMidwayFor before
// now: DropBefore publishes a rewrite and then retires the original, so a listing taken
// between the two holds both, and a reader should list again instead of taking it for
// the store's state (a full build of it would find the original gone when it ends). A
// process killed between the two renames leaves both until the next DropBefore retires
// the original; past retentionMidwayFor readers take the listing as it is.
func RetentionMidway(segs []Segment, now time.Time) bool {
	listed := make(map[string]bool, len(segs))
	for _, s := range segs {
		listed[s.Name] = true
	}
	for _, s := range segs {
		if replaced, ok := rewriteOf(s.Name); !ok || !listed[replaced] {
			continue
		}
		if info, err := os.Stat(s.Path); err == nil && now.Sub(info.ModTime()) < retentionMidwayFor {
			return true
		}
	}
	return false
}

// retentionMidwayFor bounds how long a rewrite listed beside its original is taken for a
// DropBefore between its two renames (microseconds to a few fsyncs apart).
const retentionMidwayFor = 30 * time.Second

// RetentionOriginal gives the name of the segment that DropBefore's rewrites (of
// rewrites) named name replace, or name itself when it is not a rewrite.
func RetentionOriginal(name string) string {
	for {
		replaced, ok := rewriteOf(name)
		if !ok {
			return name
		}
		name = replaced
	}
}

// rewriteOf gives the name of the segment a rewrite named name replaces (one step), and
// whether name is a rewrite at all.
func rewriteOf(name string) (string, bool) {
	stem := strings.TrimSuffix(name, ".parquet")
	i := strings.LastIndex(stem, rewriteMarker)
	if i < 0 || !isHex12(stem[i+len(rewriteMarker):]) {
		return "", false
	}
	return stem[:i] + ".parquet", true
}

func isHex12(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
