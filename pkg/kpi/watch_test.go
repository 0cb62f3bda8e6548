package kpi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// TestNewSegmentsAppliedWithoutQueries: once the first snapshot exists, the engine applies
// new segments in the background, so the next query (an alert rule's, a minute later)
// answers with them instead of starting the update then.
func TestNewSegmentsAppliedWithoutQueries(t *testing.T) {
	w, src := watchedStore(t)
	var err error
	e, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 128, CheckEvery: 200 * time.Millisecond})
	require.NoError(t, err)
	defer e.Close()
	require.Equal(t, int64(-1), kpi.SnapshotEvents(e), "no build before the first query")
	require.NoError(t, e.Refresh(context.Background()))
	require.Equal(t, int64(5), kpi.SnapshotEvents(e))

	_, err = w.Append(context.Background(), sentBatch("m2", 3), store.AppendOptions{})
	require.NoError(t, err)
	deadline := time.Now().Add(15 * time.Second)
	for kpi.SnapshotEvents(e) != 8 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, int64(8), kpi.SnapshotEvents(e), "the new segment was not applied in the background")
	st, err := e.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments)
}

// TestNewSegmentLookedAtWhenItLands: a segment published into a store directory is applied
// when it lands, not at the next CheckEvery (here an hour, so only the notice can start
// the look; Stats below reads the snapshot without looking).
func TestNewSegmentLookedAtWhenItLands(t *testing.T) {
	w, src := watchedStore(t)
	var err error
	e, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 128, CheckEvery: time.Hour})
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Refresh(context.Background()))
	require.Equal(t, int64(5), kpi.SnapshotEvents(e))

	for round, want := range []int64{8, 10} {
		_, err = w.Append(context.Background(), sentBatch(fmt.Sprintf("m%d", round+2), int(want-kpi.SnapshotEvents(e))), store.AppendOptions{})
		require.NoError(t, err)
		deadline := time.Now().Add(30 * time.Second)
		for kpi.SnapshotEvents(e) != want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		require.Equal(t, want, kpi.SnapshotEvents(e), "round %d: the segment that landed was not applied", round)
	}
}

// watchedStore is a store with one segment of 5 sent messages ("m1a".."m1e"), and its writer.
func watchedStore(t *testing.T) (*store.Writer, *store.Source) {
	t.Helper()
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	_, err = w.Append(context.Background(), sentBatch("m1", 5), store.AppendOptions{})
	require.NoError(t, err)
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	return w, src
}

// sentBatch is n sent messages of contact c1, named prefix and a letter.
func sentBatch(prefix string, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		out[i] = sent(prefix+string(rune('a'+i)), day(0, 9, i), "c1")
	}
	return out
}
