package kpi_test

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// seededRand is a random source with a fresh seed, logged so a failure can be replayed.
func seededRand(t *testing.T) *rand.Rand {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewSource(seed))
}

// demoEvents are n events of the demo generator over the 10 days before end.
func demoEvents(t *testing.T, rng *rand.Rand, n int, end time.Time) []events.Event {
	var all []events.Event
	require.NoError(t, demo.Generate(demo.Config{Events: n, Days: 10, Seed: rng.Int63(), End: end}, func(e *events.Event) error {
		all = append(all, e.Clone())
		return nil
	}))
	return all
}

// requireSameAnswers runs each query on both engines over [from, to) and requires the
// same frames (label prefixes the query in a failure).
func requireSameAnswers(t *testing.T, label string, queries []string, from, to time.Time, want, got *kpi.Engine) {
	t.Helper()
	for _, q := range queries {
		req := kpi.Request{Query: mustQuery(t, q), From: from, To: to, Interval: time.Hour, MaxDataPoints: 2000}
		w, err := want.Run(context.Background(), req)
		require.NoError(t, err, q)
		g, err := got.Run(context.Background(), req)
		require.NoError(t, err, q)
		requireSameFrames(t, label+q, w, g)
	}
}

// TestIncrementsMatchFullBuild feeds a store to an engine segment by segment (each new
// segment updates the snapshot in place) and requires every answer to equal a full build
// of the same store, after every few segments. The events are the demo generator's (late
// statuses, duplicates, replies, conversions, conversations) split at random points, plus
// random messy ones, including re-sent duplicates of earlier events.
func TestIncrementsMatchFullBuild(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 12_000, end)
	messy := messyEvents(rng, end.AddDate(0, 0, -10), 10, 1500)
	for _, m := range messy { // spread through the arrivals
		i := rng.Intn(len(all))
		all = append(all[:i], append([]events.Event{m}, all[i:]...)...)
	}
	for i := 0; i < 40; i++ { // duplicates of earlier events arriving later, some changed
		j := rng.Intn(len(all) / 2)
		d := all[j]
		if rng.Intn(2) == 0 {
			d.Campaign = "changed"
		}
		k := j + rng.Intn(len(all)-j)
		all = append(all[:k], append([]events.Event{d}, all[k:]...)...)
	}

	defer kpi.SetMaxIncrementalShare(1e9)() // never a full build in between
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	inc, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 512, CheckEvery: time.Nanosecond})
	require.NoError(t, err)
	defer inc.Close()

	queries := []string{
		`{"queryType":"table","metrics":["sent","delivered","read","failed","clicks","conversions","revenue","cost","reply_rate"],"groupBy":["campaign","country"],"limit":500}`,
		`{"queryType":"table","metrics":["received","blocked","opted_out","reported","deliveries","conversions_total","abandoned","csat_avg","nps","active_contacts","new_contacts","returning_contacts","churn_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["conversations","first_response_time","first_response_time_p50","resolution_time","escalation_rate","self_resolution_rate","abandonment_rate"],"groupBy":["agent_id"],"limit":500}`,
		`{"queryType":"table","metrics":["response_time","unanswered_turns"],"groupBy":["agent_id","sender"],"limit":500}`,
		`{"queryType":"timeseries","metrics":["sent","delivery_rate","block_rate","conversations","response_time"],"bucket":"1h"}`,
		`{"queryType":"timeseries","metrics":["new_contacts","received"],"bucket":"1d","timezone":"Europe/Rome"}`,
		`{"queryType":"funnel","groupBy":["variant"]}`,
		`{"queryType":"timeseries","metrics":["sent","delivered","blocked","conversations"],"bucket":"15m"}`,
		`{"queryType":"table","metrics":["quality_rating"],"groupBy":["business_number"]}`,
	}
	from, to := end.AddDate(0, 0, -11), end.Add(time.Hour)
	compare := func(step int) {
		full, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 512, NoIncremental: true})
		require.NoError(t, err)
		defer full.Close()
		require.NoError(t, inc.Refresh(context.Background()))
		si, err := inc.Stats(context.Background())
		require.NoError(t, err)
		sf, err := full.Stats(context.Background())
		require.NoError(t, err)
		require.Equal(t, sf.Events, si.Events, "step %d: events", step)
		require.Equal(t, sf.Version, si.Version, "step %d: version", step)
		require.Equal(t, step-1, si.Increments, "step %d: every segment after the first is an increment", step)
		requireSameAnswers(t, fmt.Sprintf("step %d: ", step), queries, from, to, full, inc)
	}
	step := 0
	for len(all) > 0 {
		n := min(len(all), 1+rng.Intn(1600))
		_, err := w.Append(context.Background(), all[:n], store.AppendOptions{})
		require.NoError(t, err)
		all = all[n:]
		step++
		require.NoError(t, inc.Refresh(context.Background()))
		if step%5 == 0 || len(all) == 0 {
			compare(step)
		}
	}
	st, err := inc.Stats(context.Background())
	require.NoError(t, err)
	t.Logf("%d segments, %d events", st.Files, st.Events)
	require.Greater(t, step, 6)
}
