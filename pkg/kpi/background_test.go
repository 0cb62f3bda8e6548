package kpi_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// copyStore makes a new store directory of a store directory's segments (linkSegments),
// a reference store for a full build to compare with.
func copyStore(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	require.NoError(t, linkSegments(segs, out))
	return out
}

func copySegment(t *testing.T, s store.Segment, storeDir string) {
	t.Helper()
	require.NoError(t, linkSegments([]store.Segment{s}, storeDir))
}

// TestIncrementsWhileFullBuildRuns: a full build (after retention rewrote segments, or
// after the snapshot grew by increments) runs in the background, for minutes to hours on
// a large store. Meanwhile the snapshot it replaces keeps serving and takes the segments
// that arrive, so their events are visible within seconds; then the build replaces it and
// takes the segments that arrived after its listing. Full builds of the same stores are
// the reference at every step.
func TestIncrementsWhileFullBuildRuns(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 7_000, 10, end)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	var last store.Segment
	appendN := func(n int) {
		t.Helper()
		_, err := w.Append(ctx, all[:n], store.AppendOptions{})
		require.NoError(t, err)
		all = all[n:]
		segs, err := store.ListSegments(src.Path)
		require.NoError(t, err)
		last = segs[len(segs)-1]
	}
	stats := func() kpi.Stats {
		t.Helper()
		st, err := inc.Stats(ctx)
		require.NoError(t, err)
		return st
	}
	queries := []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["received","blocked","new_contacts","conversations","resolution_time","response_time"],"groupBy":["agent_id"],"limit":500}`,
		`{"queryType":"timeseries","metrics":["sent","delivery_rate","block_rate"],"bucket":"1h"}`,
	}
	from, to := end.AddDate(0, 0, -11), end.Add(time.Hour)
	compareWith := func(label, dir string) {
		t.Helper()
		ref, err := store.OpenSource(dir)
		require.NoError(t, err)
		requireMatchesFullBuild(t, label, ref, inc, queries, from, to)
	}

	appendN(2500)
	appendN(1500)
	require.NoError(t, inc.Refresh(ctx))
	require.Equal(t, 0, stats().Increments)
	beforeRetention := copyStore(t, src.Path)

	// Retention rewrites the first segment without its first three days: a full build.
	release := kpi.HoldFullBuilds(nil)
	t.Cleanup(release)
	res, err := w.DropBefore(ctx, end.AddDate(0, 0, -7))
	require.NoError(t, err)
	require.Positive(t, res.Rewritten, "the first segment at least (late events put older times in later ones too)")
	require.NoError(t, kpi.Look(inc))
	require.True(t, kpi.FullBuildRunning(inc), "retention starts a full build")
	require.WithinDuration(t, time.Now(), stats().RebuildingSince, time.Minute)
	compareWith("while the build runs, before new events", beforeRetention)

	// New segments while it runs: increments of the snapshot it will replace, which still
	// holds the retention's events.
	appendN(300)
	copySegment(t, last, beforeRetention)
	require.NoError(t, kpi.Look(inc))
	appendN(200)
	copySegment(t, last, beforeRetention)
	require.NoError(t, kpi.Look(inc))
	require.True(t, kpi.FullBuildRunning(inc))
	require.Equal(t, 2, stats().Increments, "new segments are increments while the build runs")
	compareWith("while the build runs", beforeRetention)

	// The build ends and takes the two segments it did not list before it serves (no
	// look in between: the counts of a panel never go back).
	release()
	kpi.WaitFullBuild(inc)
	require.False(t, kpi.FullBuildRunning(inc))
	require.Equal(t, 1, stats().Increments, "one increment after the build")
	require.True(t, stats().RebuildingSince.IsZero())
	compareWith("after the build", src.Path)

	// Retention again, and once more while the build it starts runs: the build's own
	// listing is then out of date when it ends, so another one follows it.
	release = kpi.HoldFullBuilds(nil)
	t.Cleanup(release)
	beforeRetention = copyStore(t, src.Path)
	res, err = w.DropBefore(ctx, end.AddDate(0, 0, -6))
	require.NoError(t, err)
	require.Positive(t, res.Rewritten+res.Retired)
	require.NoError(t, kpi.Look(inc))
	require.True(t, kpi.FullBuildRunning(inc))
	appendN(200)
	copySegment(t, last, beforeRetention)
	require.NoError(t, kpi.Look(inc))
	res, err = w.DropBefore(ctx, end.AddDate(0, 0, -5))
	require.NoError(t, err)
	require.Positive(t, res.Rewritten+res.Retired)
	require.NoError(t, kpi.Look(inc))
	compareWith("while the build runs, after a second retention", beforeRetention)
	release()
	require.NoError(t, inc.Refresh(ctx))
	require.False(t, kpi.FullBuildRunning(inc))
	require.Equal(t, 0, stats().Increments, "a second full build")
	compareWith("after the second build", src.Path)

	// Growth past the increments' share: a full build; new segments meanwhile are
	// increments again.
	t.Cleanup(kpi.SetMaxIncrementalShare(0))
	release = kpi.HoldFullBuilds(nil)
	t.Cleanup(release)
	appendN(300)
	require.NoError(t, kpi.Look(inc))
	require.False(t, kpi.FullBuildRunning(inc))
	require.Equal(t, 1, stats().Increments, "the first growth is an increment")
	appendN(300)
	require.NoError(t, kpi.Look(inc))
	require.True(t, kpi.FullBuildRunning(inc), "more growth starts a full build")
	require.Equal(t, 1, stats().Increments)
	appendN(300)
	require.NoError(t, kpi.Look(inc))
	require.Equal(t, 2, stats().Increments, "an increment while the build runs")
	compareWith("while a build for growth runs", src.Path)
	release()
	require.NoError(t, inc.Refresh(ctx))
	require.False(t, kpi.FullBuildRunning(inc))
	compareWith("after the build for growth", src.Path)

	// Closing the data source while a build runs stops it.
	release = kpi.HoldFullBuilds(nil)
	t.Cleanup(release)
	appendN(100)
	require.NoError(t, kpi.Look(inc))
	require.True(t, kpi.FullBuildRunning(inc))
	require.NoError(t, inc.Close())
	require.False(t, kpi.FullBuildRunning(inc))
}

// TestFullBuildReadsSegmentsRetiredMeanwhile: compaction merges, and after its grace
// period deletes, segments a full build listed before the build reads them (a build of a
// large store reads for minutes, and a receiver under steady traffic merges every
// minute). The build still reads them and serves, instead of starting over.
func TestFullBuildReadsSegmentsRetiredMeanwhile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("segments are pinned through /proc/self/fd on Linux only")
	}
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 3_000, 10, end)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		_, err := w.Append(ctx, all[:200], store.AppendOptions{})
		require.NoError(t, err)
		all = all[200:]
	}
	require.NoError(t, inc.Refresh(ctx))
	t.Cleanup(kpi.SetMaxIncrementalShare(0))
	release := kpi.HoldFullBuilds(nil)
	t.Cleanup(release)
	for i := 0; i < 2; i++ { // an increment, then growth past the share
		_, err := w.Append(ctx, all[:200], store.AppendOptions{})
		require.NoError(t, err)
		all = all[200:]
		require.NoError(t, kpi.Look(inc))
	}
	require.True(t, kpi.FullBuildRunning(inc))
	listed, err := store.ListSegments(src.Path)
	require.NoError(t, err)

	res, err := w.Compact(ctx, store.CompactOptions{SmallBytes: 1 << 30, MinSegments: 3, RetiredGrace: time.Hour})
	require.NoError(t, err)
	require.Equal(t, len(listed), res.Merged)
	require.NoError(t, os.RemoveAll(filepath.Join(src.Path, store.RetiredDir)))
	require.NoError(t, os.Mkdir(filepath.Join(src.Path, store.RetiredDir), 0o755))
	for _, s := range listed {
		require.NoFileExists(t, s.Path)
	}

	release()
	kpi.WaitFullBuild(inc)
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.FullBuilds, "the build served, it did not start over")
	require.Equal(t, 1, st.Files, "and took the merge of what it read as a rename")
	require.Equal(t, 0, st.Increments)

	full, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256, NoIncremental: true})
	require.NoError(t, err)
	defer full.Close()
	require.NoError(t, inc.Refresh(ctx))
	st, err = inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.FullBuilds, "nothing more to build")
	requireSameAnswers(t, "", []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["received","blocked","new_contacts","conversations","resolution_time"],"groupBy":["agent_id"],"limit":500}`,
	}, end.AddDate(0, 0, -11), end.Add(time.Hour), full, inc)
}

// TestFailedBuildStaysInTheHealthCheck: a full build in the background fails while the
// snapshot it would replace takes every new segment (so later looks find nothing to do).
// Its error stays in Stats (the health check) until a build succeeds; an error of one look
// goes with the next good look.
func TestFailedBuildStaysInTheHealthCheck(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 2_000, 5, end)
	w, _, inc := incrementalStore(t)
	ctx := context.Background()
	appendN := eventFeed(t, w, all)
	appendN(500)
	require.NoError(t, inc.Refresh(ctx))
	t.Cleanup(kpi.SetMaxIncrementalShare(0))
	appendN(200)
	require.NoError(t, kpi.Look(inc)) // an increment
	release := kpi.HoldFullBuilds(errors.New("disk on fire"))
	t.Cleanup(release)
	appendN(200)
	require.NoError(t, kpi.Look(inc)) // growth past the share: a build, held
	require.True(t, kpi.FullBuildRunning(inc))
	appendN(200)
	require.NoError(t, kpi.Look(inc)) // taken while the build runs: the snapshot is current
	release()
	kpi.WaitFullBuild(inc) // the build failed
	require.False(t, kpi.FullBuildRunning(inc))
	require.NoError(t, kpi.Look(inc)) // nothing new in the store: a good look
	_, err := inc.Stats(ctx)
	require.ErrorContains(t, err, "disk on fire")
	require.ErrorIs(t, err, kpi.ErrStore)

	appendN(200) // a good build follows
	require.NoError(t, inc.Refresh(ctx))
	st, err := inc.Stats(ctx)
	require.NoError(t, err, "a good build clears it")
	require.Equal(t, 2, st.FullBuilds)
}

// TestLookWaitsOutRetentionMidway: a look that lists retention's rewrite beside the
// segment it replaces (between DropBefore's publishing the one and retiring the other; a
// look started by the rewrite's landing comes right then) leaves the snapshot as it is
// instead of building that listing in full; once the original is retired, retention's
// full build runs as before.
func TestLookWaitsOutRetentionMidway(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 1_000, 5, end)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	appendN := eventFeed(t, w, all)
	appendN(500)
	appendN(300)
	require.NoError(t, inc.Refresh(ctx))
	before, err := inc.Stats(ctx)
	require.NoError(t, err)
	segs, err := store.ListSegments(src.Path)
	require.NoError(t, err)
	require.Len(t, segs, 2)
	first := segs[0]
	body, err := os.ReadFile(first.Path)
	require.NoError(t, err)
	rewrite := filepath.Join(src.Path, store.SegmentsDir, strings.TrimSuffix(first.Name, ".parquet")+"-r0123456789ab.parquet")
	require.NoError(t, os.WriteFile(rewrite, body, 0o644))

	require.NoError(t, kpi.Look(inc))
	require.False(t, kpi.FullBuildRunning(inc), "no full build of a listing retention is halfway through")
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, before.Version, st.Version)
	require.Equal(t, before.FullBuilds, st.FullBuilds)

	require.NoError(t, os.Rename(first.Path, filepath.Join(src.Path, store.RetiredDir, first.Name)))
	require.NoError(t, inc.Refresh(ctx))
	st, err = inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, before.FullBuilds+1, st.FullBuilds, "the rewrite: a full build, as after retention")
	require.Equal(t, before.Events, st.Events, "the rewrite holds the same events")
}
