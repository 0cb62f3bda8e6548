package store_test

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
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

func ev(id string, minute int) events.Event {
	return events.Event{EventID: id, TS: time.Date(2026, 3, 1, 10, minute, 0, 0, time.UTC), Type: "received", ContactID: "c1"}
}

// idsIn reads the event ids of every published segment, in arrival order.
func idsIn(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	if len(segs) == 0 {
		return nil
	}
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT event_id FROM read_parquet(" + store.ParquetList(segs) + ", filename=true, file_row_number=true) ORDER BY filename, file_row_number")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

func TestAppendPublishesOneDurableSegment(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	ctx := context.Background()

	res, err := w.Append(ctx, []events.Event{ev("a", 1), ev("b", 2), ev("a", 3)}, store.AppendOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Written)
	assert.Equal(t, 1, res.Duplicates, "the second a in the batch is a duplicate")
	assert.FileExists(t, res.Segment)
	assert.True(t, store.IsStore(dir))
	assert.Equal(t, []string{"a", "b"}, idsIn(t, dir))
	tmp, _ := os.ReadDir(filepath.Join(dir, store.TmpDir))
	assert.Empty(t, tmp, "nothing is left half-written")

	// SkipExisting: already stored ids are dropped; nothing new, no segment.
	res, err = w.Append(ctx, []events.Event{ev("a", 1), ev("b", 2)}, store.AppendOptions{SkipExisting: true})
	require.NoError(t, err)
	assert.Equal(t, 0, res.Written)
	assert.Equal(t, 2, res.Duplicates)
	assert.Empty(t, res.Segment)
	segs, _ := store.ListSegments(dir)
	assert.Len(t, segs, 1)

	res, err = w.Append(ctx, []events.Event{ev("b", 2), ev("c", 4)}, store.AppendOptions{SkipExisting: true})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Written)
	assert.Equal(t, []string{"a", "b", "c"}, idsIn(t, dir))
}

func TestCompactMergesKeepsOrderAndRetires(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	ctx := context.Background()
	want := []string{}
	for i := 0; i < 5; i++ {
		id := string(rune('a' + i))
		// every segment repeats the previous id: compaction drops the later copy
		batch := []events.Event{ev(id, i)}
		if i > 0 {
			batch = append(batch, ev(string(rune('a'+i-1)), i))
		}
		_, err := w.Append(ctx, batch, store.AppendOptions{})
		require.NoError(t, err)
		want = append(want, id)
	}
	inputs, _ := store.ListSegments(dir)
	require.Len(t, inputs, 5)
	res, err := w.Compact(ctx, store.CompactOptions{MinSegments: 3})
	require.NoError(t, err)
	assert.Equal(t, 5, res.Merged)
	segs, _ := store.ListSegments(dir)
	require.Len(t, segs, 1)
	// The merged segment names its inputs in order (readers holding facts of them map it).
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	retiredInput := store.Segment{Name: inputs[0].Name, Path: filepath.Join(dir, store.RetiredDir, inputs[0].Name)}
	from, err := store.CompactedFrom(ctx, db, []store.Segment{segs[0], retiredInput})
	require.NoError(t, err)
	wantFrom := make([]string, len(inputs))
	for i, s := range inputs {
		wantFrom[i] = s.Name
	}
	assert.Equal(t, map[string][]string{segs[0].Name: wantFrom}, from, "a segment the writer wrote merges nothing")
	// Read by another path (as a full build reads pinned segments), it keeps its name.
	link := filepath.Join(t.TempDir(), "other-path.parquet")
	require.NoError(t, os.Symlink(segs[0].Path, link))
	from, err = store.CompactedFrom(ctx, db, []store.Segment{{Name: segs[0].Name, Path: link}})
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{segs[0].Name: wantFrom}, from)
	assert.Equal(t, want, idsIn(t, dir))
	retired, _ := os.ReadDir(filepath.Join(dir, store.RetiredDir))
	assert.Len(t, retired, 5, "inputs wait in retired/ for readers that listed them")

	// Retired files go after their grace period.
	res, err = w.Compact(ctx, store.CompactOptions{MinSegments: 3, RetiredGrace: time.Nanosecond})
	require.NoError(t, err)
	assert.Equal(t, 5, res.Removed)
	assert.Equal(t, 0, res.Merged, "one segment: nothing to merge")

	// A run stops growing at MaxMergeBytes (once it has MinSegments).
	for i := 0; i < 4; i++ {
		_, err := w.Append(ctx, []events.Event{ev(fmt.Sprintf("m%d", i), i)}, store.AppendOptions{})
		require.NoError(t, err)
	}
	segs, _ = store.ListSegments(dir)
	require.Len(t, segs, 5)
	res, err = w.Compact(ctx, store.CompactOptions{SmallBytes: 1 << 20, MinSegments: 2, MaxMergeBytes: segs[0].Size + 1, RetiredGrace: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Merged, "the merged segment and the next one")
	segs, _ = store.ListSegments(dir)
	require.Len(t, segs, 4)
}

func TestOpenSourceKindsAndErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := store.OpenSource(filepath.Join(dir, "missing"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not exist")

	_, err = store.OpenSource(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "neither a Blue Ticks store")

	require.NoError(t, store.Init(dir))
	s, err := store.OpenSource(dir)
	require.NoError(t, err)
	assert.Equal(t, store.KindDir, s.Kind)

	f := filepath.Join(t.TempDir(), "events.duckdb")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o644))
	s, err = store.OpenSource(f)
	require.NoError(t, err)
	assert.Equal(t, store.KindDuckDB, s.Kind)

	txt := filepath.Join(t.TempDir(), "events.txt")
	require.NoError(t, os.WriteFile(txt, []byte("x"), 0o644))
	_, err = store.OpenSource(txt)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown kind of file")

	_, err = store.OpenSource(filepath.Join(dir, "*.nothing"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "matches no files")
}

func TestVersionChangesWithSegments(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	segs, _ := store.ListSegments(dir)
	v0 := store.Version(segs, "store")
	_, err = w.Append(context.Background(), []events.Event{ev("a", 1)}, store.AppendOptions{})
	require.NoError(t, err)
	segs, _ = store.ListSegments(dir)
	assert.NotEqual(t, v0, store.Version(segs, "store"))
}

// TestIsSegmentGone: the errors DuckDB gives for a retired segment (a listed path that is
// gone, a glob that matches nothing) count as gone; other read errors do not, so a reader
// does not retry a broken file forever.
func TestIsSegmentGone(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	_, err = w.Append(context.Background(), []events.Event{ev("a", 1)}, store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	require.Len(t, segs, 1)
	broken := filepath.Join(dir, "broken.parquet")
	require.NoError(t, os.WriteFile(broken, []byte("not parquet"), 0o644))

	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	read := func(path string) error {
		var n int
		return db.QueryRow("SELECT count(*) FROM read_parquet(['" + path + "'])").Scan(&n)
	}
	require.NoError(t, read(segs[0].Path))
	require.NoError(t, os.Remove(segs[0].Path))

	assert.True(t, store.IsSegmentGone(read(segs[0].Path)), "a listed path that is gone")
	assert.True(t, store.IsSegmentGone(read(filepath.Join(dir, "segments", "*.parquet"))), "a glob that matches nothing")
	assert.False(t, store.IsSegmentGone(read(broken)), "a broken file is not a retired one")
	_, err = db.Exec("SELECT * FROM no_such_table")
	require.Error(t, err)
	assert.False(t, store.IsSegmentGone(err), "a catalog error (%v) is not a retired segment", err)
	assert.False(t, store.IsSegmentGone(nil))
}
