package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func walEvents(prefix string, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		v := float64(i) + 0.25
		code := int32(131026)
		out[i] = events.Event{EventID: fmt.Sprintf("%s-%d", prefix, i), TS: time.Date(2026, 3, 1, 10, 0, i, 123456789, time.UTC),
			Type: "converted", ContactID: "c_1", Campaign: `spring "sale", B`, Value: &v, Country: "IT"}
		if i%3 == 0 {
			out[i].ErrorCode = &code
			out[i].Step = "é日本"
		}
	}
	return out
}

// TestWALRoundTrip: records read back exactly (every column, sub-second times, numbers),
// and a torn or damaged tail is cut at the last good record.
func TestWALRoundTrip(t *testing.T) {
	a, b := walEvents("a", 5), walEvents("b", 3)
	var file bytes.Buffer
	file.Write(walMagic[:])
	file.Write(EncodeWALRecord(a))
	file.Write(EncodeWALRecord(nil))
	file.Write(EncodeWALRecord(b))
	good := file.Len()

	got, err := ReadWAL(bytes.NewReader(file.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, 3, got.Records)
	assert.Equal(t, append(append([]events.Event{}, a...), b...), got.Events)
	assert.Zero(t, got.Discarded)

	// A torn last record (the process died in the write): the earlier records count.
	rec := EncodeWALRecord(walEvents("c", 2))
	for _, cut := range []int{1, 7, 8, len(rec) - 1} {
		torn := append(bytes.Clone(file.Bytes()[:good]), rec[:cut]...)
		got, err := ReadWAL(bytes.NewReader(torn))
		require.NoError(t, err)
		assert.Len(t, got.Events, 8, "cut at %d", cut)
		assert.EqualValues(t, cut, got.Discarded)
	}
	// A flipped bit in the last record: its checksum fails, it is dropped.
	bad := append(bytes.Clone(file.Bytes()[:good]), rec...)
	bad[len(bad)-3] ^= 0x40
	got, err = ReadWAL(bytes.NewReader(bad))
	require.NoError(t, err)
	assert.Len(t, got.Events, 8)
	assert.EqualValues(t, len(rec), got.Discarded)
	// Empty file (created, nothing written) and a foreign file.
	got, err = ReadWAL(bytes.NewReader(nil))
	require.NoError(t, err)
	assert.Empty(t, got.Events)
	_, err = ReadWAL(bytes.NewReader([]byte("not a wal file at all")))
	assert.Error(t, err)
}

// TestReplaySkipsLiveWALs: a WAL file whose owner is alive (locked) is left alone; once
// the owner is gone its events are published and the file deleted; replaying again
// changes nothing.
func TestReplaySkipsLiveWALs(t *testing.T) {
	dir, w := walStore(t)
	ctx := context.Background()

	live, err := createWAL(dir)
	require.NoError(t, err)
	require.NoError(t, live.write(EncodeWALRecord(walEvents("live", 4))))
	res, err := ReplayWALs(ctx, w, quietLog)
	require.NoError(t, err)
	assert.Zero(t, res.Files, "a locked WAL belongs to a live receiver")
	assert.FileExists(t, live.path)

	require.NoError(t, live.close()) // the owner dies: its lock goes
	res, err = ReplayWALs(ctx, w, quietLog)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Files)
	assert.Equal(t, 4, res.Written)
	assert.NoFileExists(t, live.path)
	assert.Len(t, storedEvents(t, dir), 4)

	res, err = ReplayWALs(ctx, w, quietLog)
	require.NoError(t, err)
	assert.Zero(t, res.Files)
}

// TestConcurrentReplaysPublishOnce: several receivers starting at once on a store with
// WAL files of dead receivers: each file is replayed by exactly one of them.
func TestConcurrentReplaysPublishOnce(t *testing.T) {
	if !walSupported {
		t.Skip("no WAL on this OS")
	}
	dir := t.TempDir()
	require.NoError(t, store.Init(dir))
	const files, per = 12, 50
	for f := 0; f < files; f++ {
		wf, err := createWAL(dir)
		require.NoError(t, err)
		require.NoError(t, wf.write(EncodeWALRecord(walEvents(fmt.Sprintf("f%d", f), per))))
		require.NoError(t, wf.close())
	}
	var wg sync.WaitGroup
	results := make([]ReplayResult, 4)
	for r := range results {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			w, err := store.OpenWriter(dir)
			if !assert.NoError(t, err) {
				return
			}
			defer w.Close()
			results[r], err = ReplayWALs(context.Background(), w, quietLog)
			assert.NoError(t, err)
		}(r)
	}
	wg.Wait()
	total := 0
	for _, r := range results {
		total += r.Files
	}
	assert.Equal(t, files, total, "each WAL file replayed once")
	counts := storedIDCounts(t, dir)
	assert.Len(t, counts, files*per)
	for id, n := range counts {
		assert.Equal(t, 1, n, id)
	}
	left, _ := os.ReadDir(filepath.Join(dir, WALDir))
	assert.Empty(t, left)
}

// TestCommitterCutsSegmentsFromWAL: acknowledged events are in the WAL at once and in a
// segment within the flush interval; the WAL file is deleted once they are.
func TestCommitterCutsSegmentsFromWAL(t *testing.T) {
	dir, w := walStore(t)
	c := NewCommitter(w, CommitOptions{FlushInterval: 300 * time.Millisecond, FlushIdle: -1}, quietLog, NewMetrics())
	defer c.Close()
	require.NoError(t, c.Submit(context.Background(), walEvents("x", 10), nil))
	wals, _ := filepath.Glob(filepath.Join(dir, WALDir, "*.wal"))
	require.Len(t, wals, 1)
	f, err := os.Open(wals[0])
	require.NoError(t, err)
	got, err := ReadWAL(f)
	f.Close()
	require.NoError(t, err)
	assert.Len(t, got.Events, 10, "durable in the WAL when Submit returns")
	assert.Equal(t, 10, c.Unflushed())

	deadline := time.Now().Add(5 * time.Second)
	for len(storedEvents(t, dir)) < 10 {
		require.True(t, time.Now().Before(deadline), "no segment within 5 s")
		time.Sleep(20 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		wals, _ := filepath.Glob(filepath.Join(dir, WALDir, "*.wal"))
		return len(wals) == 0 && c.Unflushed() == 0
	}, 5*time.Second, 10*time.Millisecond, "the WAL file is deleted after its segment is published")

	// FlushEvents cuts a segment without waiting for the interval.
	c2 := NewCommitter(w, CommitOptions{FlushInterval: time.Hour, FlushIdle: -1, FlushEvents: 5}, quietLog, NewMetrics())
	defer c2.Close()
	require.NoError(t, c2.Submit(context.Background(), walEvents("y", 6), nil))
	require.Eventually(t, func() bool { return len(storedEvents(t, dir)) == 16 }, 5*time.Second, 10*time.Millisecond)
}

// TestCommitterCutsIdleLog: a segment is cut once the log has been idle for FlushIdle,
// long before FlushInterval, and not while events keep arriving (each commit moves the
// idle deadline).
func TestCommitterCutsIdleLog(t *testing.T) {
	dir, w := walStore(t)
	const idle = 400 * time.Millisecond
	c := NewCommitter(w, CommitOptions{FlushInterval: time.Hour, FlushIdle: idle}, quietLog, NewMetrics())
	defer c.Close()
	// Steady traffic for 4 × FlushIdle, a commit every ~20 ms. A deadline that did not
	// move would cut at 0.4, 0.8, 1.2 s...; a moving one cuts nothing, or once if this
	// machine stalls for FlushIdle.
	sent := 0
	start := time.Now()
	for i := 0; time.Since(start) < 4*idle; i++ {
		require.NoError(t, c.Submit(context.Background(), walEvents(fmt.Sprintf("s%d-", i), 2), nil))
		sent += 2
		time.Sleep(20 * time.Millisecond)
	}
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(segs), 1, "segments cut while events kept arriving")
	// Then quiet: every event in a segment within seconds (FlushInterval is an hour).
	require.Eventually(t, func() bool { return len(storedEvents(t, dir)) == sent && c.Unflushed() == 0 },
		10*time.Second, 20*time.Millisecond)
}

// TestUnflushedBoundAnswersQueueFull: when segments are not cut (here: the bound is
// tiny), Submit fails with ErrQueueFull instead of holding ever more events in memory.
func TestUnflushedBoundAnswersQueueFull(t *testing.T) {
	_, w := walStore(t)
	c := NewCommitter(w, CommitOptions{FlushInterval: time.Hour, FlushIdle: -1, MaxUnflushedEvents: 10}, quietLog, NewMetrics())
	defer c.Close()
	require.NoError(t, c.Submit(context.Background(), walEvents("u", 8), nil))
	assert.ErrorIs(t, c.Submit(context.Background(), walEvents("v", 8), nil), ErrQueueFull)
	require.NoError(t, c.Flush(context.Background()))
	assert.NoError(t, c.Submit(context.Background(), walEvents("v", 8), nil))
}

// TestDirectSegmentsMode: without the WAL every commit is a published segment before the
// answer (the Windows mode).
func TestDirectSegmentsMode(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	c := NewCommitter(w, CommitOptions{DirectSegments: true}, quietLog, NewMetrics())
	defer c.Close()
	require.NoError(t, c.Submit(context.Background(), walEvents("d", 3), nil))
	assert.Len(t, storedEvents(t, dir), 3)
	_, err = os.Stat(filepath.Join(dir, WALDir))
	assert.True(t, os.IsNotExist(err), "no WAL directory")
}

// TestSpillDirsOfDeadReceiversRemoved: a receiver removes the spill directories of
// receivers that are gone and keeps those of live ones.
func TestSpillDirsOfDeadReceiversRemoved(t *testing.T) {
	if !walSupported {
		t.Skip("no flock on this OS")
	}
	t.Setenv("TMPDIR", t.TempDir())
	live, liveLock, err := newSpillDir()
	require.NoError(t, err)
	defer liveLock.Close()
	dead, deadLock, err := newSpillDir()
	require.NoError(t, err)
	require.NoError(t, deadLock.Close()) // its process died
	mine, mineLock, err := newSpillDir()
	require.NoError(t, err)
	defer mineLock.Close()
	assert.DirExists(t, live)
	assert.DirExists(t, mine)
	assert.NoDirExists(t, dead)
}

// walStore skips the test where the WAL is unsupported, else gives a new store directory
// and a writer on it (closed at the end of the test).
func walStore(t *testing.T) (string, *store.Writer) {
	t.Helper()
	if !walSupported {
		t.Skip("no WAL on this OS")
	}
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	return dir, w
}
