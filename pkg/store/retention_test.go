package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

func retentionEvents(prefix string, ts ...time.Time) []events.Event {
	out := make([]events.Event, len(ts))
	for i, t := range ts {
		out[i] = events.Event{EventID: fmt.Sprintf("%s-%d", prefix, i), TS: t, Type: events.TypeBlocked, ContactID: "c"}
	}
	return out
}

func idsInStore(t *testing.T, w *Writer) []string {
	segs, err := ListSegments(w.Dir())
	require.NoError(t, err)
	if len(segs) == 0 {
		return nil
	}
	rows, err := w.db.Query(fmt.Sprintf(`SELECT event_id FROM read_parquet(%s, filename=true, file_row_number=true)
		ORDER BY filename, file_row_number`, parquetList(segs)))
	require.NoError(t, err)
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	return ids
}

func TestDropBefore(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	old, recent := now.AddDate(0, 0, -40), now.AddDate(0, 0, -1)
	_, err = w.Append(ctx, retentionEvents("allold", old, old), AppendOptions{})
	require.NoError(t, err)
	_, err = w.Append(ctx, retentionEvents("mixed", recent, old, recent), AppendOptions{})
	require.NoError(t, err)
	_, err = w.Append(ctx, retentionEvents("new", recent), AppendOptions{})
	require.NoError(t, err)
	before, _ := ListSegments(dir)
	require.Len(t, before, 3)

	res, err := w.DropBefore(ctx, now.AddDate(0, 0, -30))
	require.NoError(t, err)
	assert.Equal(t, RetentionResult{Rewritten: 1, Retired: 1, Dropped: 3}, res)
	assert.Equal(t, []string{"mixed-0", "mixed-2", "new-0"}, idsInStore(t, w), "kept rows keep their arrival order")

	after, _ := ListSegments(dir)
	require.Len(t, after, 2)
	assert.Greater(t, after[0].Name, before[0].Name, "the rewrite sorts in the original's place")
	assert.Less(t, after[0].Name, before[2].Name)
	assert.Equal(t, before[1].Name, RetentionOriginal(after[0].Name), "the rewrite names the segment it replaces")
	assert.Equal(t, before[2].Name, RetentionOriginal(after[1].Name), "a plain segment is its own original")
	retired, _ := filepath.Glob(filepath.Join(dir, RetiredDir, "*.parquet"))
	assert.Len(t, retired, 2, "replaced segments wait in retired/ for readers that listed them")
	tmp, _ := os.ReadDir(filepath.Join(dir, TmpDir))
	assert.Empty(t, tmp)

	again, err := w.DropBefore(ctx, now.AddDate(0, 0, -30))
	require.NoError(t, err)
	assert.Equal(t, RetentionResult{}, again, "nothing more to do")
}

func TestDropBeforeSkipsWhileCompacting(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	unlock, ok, err := TryLock(filepath.Join(dir, "compact.lock"))
	require.NoError(t, err)
	require.True(t, ok)
	defer unlock()
	res, err := w.DropBefore(context.Background(), time.Now())
	require.NoError(t, err)
	assert.True(t, res.Skipped)
}

func TestRetentionOriginal(t *testing.T) {
	t0 := time.Now()
	plain := newSegmentName(t0)
	once := rewriteName(plain, time.Now())
	twice := rewriteName(once, time.Now())
	merged := "00000000000000000001-c0ffee0ffee0.parquet" // compaction's names carry no -r part
	for name, want := range map[string]string{
		plain:                           plain,
		once:                            plain,
		twice:                           plain,
		merged:                          merged,
		rewriteName(merged, time.Now()): merged,
		"x-rnothex00000.parquet":        "x-rnothex00000.parquet",
		"x-r0123.parquet":               "x-r0123.parquet",
		"-r0123456789ab.parquet":        ".parquet",
	} {
		assert.Equal(t, want, RetentionOriginal(name), name)
	}
	// In the original's place: after the segments before it, before the ones after it.
	assert.Greater(t, once, newSegmentName(t0.Add(-time.Nanosecond)))
	assert.Less(t, once, newSegmentName(t0.Add(time.Nanosecond)))
}

// A listing taken between DropBefore's two renames holds a rewrite beside its original:
// RetentionMidway says so while the rewrite is recent, and not once either is alone.
func TestRetentionMidway(t *testing.T) {
	dir := t.TempDir()
	seg := func(name string) Segment {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte("x"), 0o600))
		return Segment{Path: path, Name: name, Size: 1}
	}
	now := time.Now()
	before := seg(newSegmentName(now.Add(-time.Hour)))
	orig := seg(newSegmentName(now))
	after := seg(newSegmentName(now.Add(time.Second)))
	rewrite := seg(rewriteName(orig.Name, now))
	again := seg(rewriteName(rewrite.Name, now))

	assert.False(t, RetentionMidway([]Segment{before, orig, after}, now), "no rewrite")
	assert.True(t, RetentionMidway([]Segment{before, orig, rewrite, after}, now), "published, original not yet retired")
	assert.False(t, RetentionMidway([]Segment{before, rewrite, after}, now), "original retired")
	assert.True(t, RetentionMidway([]Segment{before, rewrite, again, after}, now), "a rewrite of a rewrite")
	assert.False(t, RetentionMidway([]Segment{before, orig, again, after}, now), "a rewrite whose own original is gone")
	assert.False(t, RetentionMidway([]Segment{before, orig, rewrite, after}, now.Add(time.Minute)),
		"left by a process killed between the renames: taken as it is after a while")
}
