package kpi_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
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

// demoEvents are n events of the demo generator over the given days before end.
func demoEvents(t *testing.T, rng *rand.Rand, n, days int, end time.Time) []events.Event {
	var all []events.Event
	require.NoError(t, demo.Generate(demo.Config{Events: n, Days: days, Seed: rng.Int63(), End: end}, func(e *events.Event) error {
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

// eventFeed appends evs to the store w writes, in order, n at a time (n < 0: the rest).
func eventFeed(t *testing.T, w *store.Writer, evs []events.Event) func(n int) {
	return func(n int) {
		t.Helper()
		if n < 0 {
			n = len(evs)
		}
		require.LessOrEqual(t, n, len(evs), "only %d events left to append", len(evs))
		_, err := w.Append(context.Background(), evs[:n], store.AppendOptions{})
		require.NoError(t, err)
		evs = evs[n:]
	}
}

// requireMatchesFullBuild: an engine that builds src in full counts as many events as
// inc and answers the queries exactly as it does.
func requireMatchesFullBuild(t *testing.T, label string, src *store.Source, inc *kpi.Engine, queries []string, from, to time.Time) {
	t.Helper()
	full, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256, NoIncremental: true})
	require.NoError(t, err)
	defer full.Close()
	sf, err := full.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, sf.Events, kpi.SnapshotEvents(inc), label+": events")
	requireSameAnswers(t, label+": ", queries, from, to, full, inc)
}

// incrementalStore is an empty store directory, its writer, and an engine on it that
// applies every new segment as an increment (never a full build in between).
func incrementalStore(t *testing.T) (*store.Writer, *store.Source, *kpi.Engine) {
	t.Cleanup(kpi.SetMaxIncrementalShare(1e9))
	w, src := writableStore(t)
	inc, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 512, CheckEvery: time.Hour, NoChangeNotices: true}) // looks only on Refresh: no background look between a test's steps
	require.NoError(t, err)
	t.Cleanup(func() { inc.Close() })
	return w, src, inc
}

// writableStore is an empty store directory in t.TempDir(), its writer (closed at the
// end of the test) and its source.
func writableStore(t *testing.T) (*store.Writer, *store.Source) {
	t.Helper()
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	return w, src
}

// TestIncrementsMatchFullBuild feeds a store to an engine segment by segment (each new
// segment updates the snapshot in place) and requires every answer to equal a full build
// of the same store, after every few segments. The events are the demo generator's (late
// statuses, duplicates, replies, conversions, conversations) split at random points, plus
// random messy ones, including re-sent duplicates of earlier events.
func TestIncrementsMatchFullBuild(t *testing.T) {
	incrementsMatchFullBuild(t, 10)
}

// TestIncrementsMatchFullBuildLongSpan is TestIncrementsMatchFullBuild over 60 days, far
// more than the 14 days either side of a new event that an increment reads of its
// contacts' histories: late arrivals, replies to old messages, conversations that last
// weeks and first inbound messages arriving after later ones must all still be caught.
func TestIncrementsMatchFullBuildLongSpan(t *testing.T) {
	incrementsMatchFullBuild(t, 60)
}

func incrementsMatchFullBuild(t *testing.T, days int) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 12_000, days, end)
	// Statuses from webhooks carry the contact (recipient_id), the demo's do not: half of
	// them get their message's contact, so an increment meets both among a contact's
	// events.
	contactOf := map[string]string{}
	for _, e := range all {
		if e.Type == "sent" && e.MessageID != "" {
			contactOf[e.MessageID] = e.ContactID
		}
	}
	for i := range all {
		if e := &all[i]; (e.Type == "delivered" || e.Type == "read" || e.Type == "failed") && rng.Intn(2) == 0 {
			e.ContactID = contactOf[e.MessageID]
		}
	}
	// Dense messy events (all 40 contacts in every segment) and sparse ones: the sparse
	// ones' replies to other contacts' messages reach contacts no other new event touches.
	messy := append(messyEvents(rng, end.AddDate(0, 0, -days), days, 1000),
		messyEventsAmong(rng, end.AddDate(0, 0, -days), days, 1000, 200, 100)...)
	for i := range messy[1000:] {
		m := &messy[1000+i]
		m.EventID = "sparse-" + m.EventID
		m.MessageID = strings.Replace(m.MessageID, "mm-", "sm-", 1)
		m.ReplyTo = strings.Replace(m.ReplyTo, "mm-", "sm-", 1)
		m.ContactID = strings.Replace(m.ContactID, "mc-", "sc-", 1)
		m.ConversationID = strings.Replace(m.ConversationID, "mv-", "sv-", 1)
	}
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

	w, src, inc := incrementalStore(t)

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
		`{"queryType":"table","metrics":["failed","sent","delivered"],"groupBy":["error_code","template"],"limit":500}`,
	}
	from, to := end.AddDate(0, 0, -days-1), end.Add(time.Hour)
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
		uncovered, err := kpi.UncoveredKeyEvents(inc)
		require.NoError(t, err)
		require.Zero(t, uncovered, "step %d: events outside their keys' spans", step)
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

// oneIncrement writes first as a segment, builds an engine's facts from it, writes later
// as a second segment and applies it as an increment; full is a full build of both.
func oneIncrement(t *testing.T, first, later []events.Event) (inc, full *kpi.Engine) {
	t.Helper()
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	_, err := w.Append(ctx, first, store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, inc.Refresh(ctx))
	_, err = w.Append(ctx, later, store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, inc.Refresh(ctx))
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments)
	full, err = kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256, NoIncremental: true})
	require.NoError(t, err)
	t.Cleanup(func() { full.Close() })
	return inc, full
}

// TestIncrementCrossContactCredit: a conversion of contact X names a message sent to
// another contact (Y), and takes its credit by last touch from X's own campaign message.
// When a later segment touches only Y, the increment recomputes Y's messages and the
// events naming them, X's conversion among them, so it must also read X's messages; a
// full build is the reference.
func TestIncrementCrossContactCredit(t *testing.T) {
	t0 := time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC)
	val := 42.5
	first := []events.Event{
		{EventID: "s-y", TS: t0.Add(-24 * time.Hour), Type: "sent", MessageID: "m-y", ContactID: "y", Sender: "campaign", Campaign: "for-y"},
		{EventID: "s-x", TS: t0, Type: "sent", MessageID: "m-x", ContactID: "x", Sender: "campaign", Campaign: "for-x"},
		{EventID: "conv-x", TS: t0.Add(time.Hour), Type: "converted", ContactID: "x", MessageID: "m-y", Value: &val, Currency: "EUR"},
	}
	// Y writes: Y's messages (m-y) are recomputed, and with them X's conversion naming m-y.
	later := []events.Event{{EventID: "recv-y", TS: t0.Add(2 * time.Hour), Type: "received", ContactID: "y", MessageID: "in-y"}}

	inc, full := oneIncrement(t, first, later)
	ctx := context.Background()
	q := `{"queryType":"table","metrics":["conversions_total","revenue"],"groupBy":["campaign"]}`
	requireSameAnswers(t, "", []string{q}, t0.Add(-48*time.Hour), t0.Add(48*time.Hour), full, inc)
	// And the reference itself credits X's own campaign.
	res, err := full.Run(ctx, kpi.Request{Query: mustQuery(t, q), From: t0.Add(-48 * time.Hour), To: t0.Add(48 * time.Hour), Interval: time.Hour, MaxDataPoints: 100})
	require.NoError(t, err)
	require.Len(t, res, 1)
	campaigns, conversions := res[0].Fields[0], res[0].Fields[1]
	found := false
	for i := 0; i < campaigns.Len(); i++ {
		if c, ok := campaigns.ConcreteAt(i); ok && fmt.Sprint(c) == "for-x" {
			found = true
			v, ok := conversions.ConcreteAt(i)
			require.True(t, ok)
			require.EqualValues(t, 1, v, "conversions credited to for-x")
		}
	}
	require.True(t, found, "the conversion is credited to X's campaign: %v", res[0])
}

// TestIncrementReadsContactsOnlyWhereCreditCanMove: a new event opens its contact's weeks
// of events only when it can move last-touch credit (a campaign send, an event credited by
// last touch), and a message named by a new event opens its contact's only when it is a
// campaign message. Statuses carrying their contact, as the webhook receiver's do, then
// read only their message's events. Every case must still equal a full build.
func TestIncrementReadsContactsOnlyWhereCreditCanMove(t *testing.T) {
	t0 := time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC)
	h := time.Hour
	val := 9.5
	// Contact c: a campaign message (m-camp), a reply to it by last touch, a bot message
	// (m-bot) and their statuses.
	first := []events.Event{
		{EventID: "s-camp", TS: t0.Add(-48 * h), Type: "sent", MessageID: "m-camp", ContactID: "c", Sender: "campaign", Campaign: "spring"},
		{EventID: "d-camp", TS: t0.Add(-47 * h), Type: "delivered", MessageID: "m-camp"},
		{EventID: "r-1", TS: t0.Add(-46 * h), Type: "received", ContactID: "c", MessageID: "in-1"},
		{EventID: "o-1", TS: t0.Add(-30 * h), Type: "opted_in", ContactID: "c"},
		{EventID: "s-bot", TS: t0.Add(-2 * h), Type: "sent", MessageID: "m-bot", ContactID: "c", Sender: "bot"},
		{EventID: "d-bot", TS: t0.Add(-2*h + time.Minute), Type: "delivered", MessageID: "m-bot", ContactID: "c"},
	}
	cases := []struct {
		name string
		ev   events.Event
		read int64 // stored rows the increment reads
	}{
		// Only m-bot's own events: its sent and delivered rows (c's weeks: all 6).
		{"a status with its contact, of a bot message", events.Event{EventID: "rd-bot", TS: t0, Type: "read", MessageID: "m-bot", ContactID: "c"}, 2},
		// m-camp's contact around its send: every stored event of c, and m-camp's status.
		{"a status with its contact, of a campaign message", events.Event{EventID: "rd-camp", TS: t0, Type: "read", MessageID: "m-camp", ContactID: "c"}, 6},
		{"a click naming its message", events.Event{EventID: "k-1", TS: t0, Type: "clicked", ReplyTo: "m-camp", ContactID: "c"}, 6},
		// The new event's contact around it.
		{"a conversion by last touch", events.Event{EventID: "cv-1", TS: t0, Type: "converted", ContactID: "c", Value: &val, Currency: "EUR"}, 6},
		{"a reply by last touch", events.Event{EventID: "r-2", TS: t0, Type: "received", ContactID: "c", MessageID: "in-2"}, 6},
		{"a campaign send", events.Event{EventID: "s-2", TS: t0, Type: "sent", MessageID: "m-2", ContactID: "c", Sender: "campaign", Campaign: "summer"}, 6},
		// Nothing stored: neither names a stored message nor can move credit.
		{"a bot send", events.Event{EventID: "s-3", TS: t0, Type: "sent", MessageID: "m-3", ContactID: "c", Sender: "bot"}, 0},
		{"an opt-in", events.Event{EventID: "o-2", TS: t0, Type: "opted_in", ContactID: "c"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var read int64
			t.Cleanup(kpi.WatchIncrements(func(stmt string, n int64) {
				if strings.HasPrefix(stmt, "INSERT INTO temp.inc_sub ") {
					mu.Lock()
					read += n
					mu.Unlock()
				}
			}))
			inc, full := oneIncrement(t, first, []events.Event{c.ev})
			mu.Lock()
			require.Equal(t, c.read, read, "stored rows read")
			mu.Unlock()
			requireSameAnswers(t, c.name+": ", []string{
				`{"queryType":"table","metrics":["sent","delivered","read","clicks","reply_rate","conversions","revenue","conversions_total"],"groupBy":["campaign"]}`,
				`{"queryType":"table","metrics":["received","active_contacts","new_contacts","delivered"],"groupBy":["sender"]}`,
			}, t0.Add(-7*24*h), t0.Add(h), full, inc)
		})
	}
}

// TestIncrementEarlierFirstInbound: a contact's first inbound message arrives after its
// later ones, the last of them weeks after it. Every received row of the contact stores
// the first inbound time (new vs returning contacts), so the increment must rewrite them
// all, also those far outside the 14 days it reads around a new event.
func TestIncrementEarlierFirstInbound(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	first := []events.Event{
		{EventID: "r-10", TS: t0.Add(10 * day), Type: "received", ContactID: "late", MessageID: "in-10"},
		{EventID: "r-40", TS: t0.Add(40 * day), Type: "received", ContactID: "late", MessageID: "in-40"},
		{EventID: "r-55", TS: t0.Add(55 * day), Type: "received", ContactID: "late", MessageID: "in-55"},
		{EventID: "r-other", TS: t0.Add(30 * day), Type: "received", ContactID: "other", MessageID: "in-o"},
	}
	earlier := []events.Event{{EventID: "r-0", TS: t0, Type: "received", ContactID: "late", MessageID: "in-0"}}

	inc, full := oneIncrement(t, first, earlier)
	ctx := context.Background()
	// From day 5 on: "late" has been a contact since day 0, so it is returning, not new,
	// in every range that starts after that; "other" is new.
	q := `{"queryType":"table","metrics":["new_contacts","returning_contacts","received"]}`
	for _, from := range []time.Time{t0.Add(5 * day), t0.Add(20 * day), t0.Add(50 * day)} {
		requireSameAnswers(t, fmt.Sprintf("from %s: ", from.Format(time.DateOnly)), []string{q}, from, t0.Add(60*day), full, inc)
	}
	res, err := inc.Run(ctx, kpi.Request{Query: mustQuery(t, q), From: t0.Add(20 * day), To: t0.Add(60 * day), Interval: time.Hour, MaxDataPoints: 100})
	require.NoError(t, err)
	require.Len(t, res, 1)
	got := make([]any, 0, 3)
	for _, f := range res[0].Fields {
		v, _ := f.ConcreteAt(0)
		got = append(got, v)
	}
	require.EqualValues(t, []any{1.0, 1.0, 3.0}, got, "new (other), returning (late), received")
}

// TestIncrementOfUnrelatedEvents: new events that concern no stored event (a new contact,
// no message or conversation of the store) are an increment that reads no stored row.
func TestIncrementOfUnrelatedEvents(t *testing.T) {
	t0 := time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	_, err := w.Append(ctx, []events.Event{{EventID: "s-1", TS: t0, Type: "sent", MessageID: "m-1", ContactID: "a", Sender: "campaign", Campaign: "c"}}, store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, inc.Refresh(ctx))
	_, err = w.Append(ctx, []events.Event{{EventID: "b-1", TS: t0.Add(time.Hour), Type: "blocked", ContactID: "b"}}, store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, inc.Refresh(ctx))
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments, "applied in place")
	require.EqualValues(t, 2, st.Events)
	full, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256, NoIncremental: true})
	require.NoError(t, err)
	defer full.Close()
	requireSameAnswers(t, "", []string{`{"queryType":"table","metrics":["sent","blocked","block_rate"],"groupBy":["campaign"]}`},
		t0.Add(-time.Hour), t0.Add(2*time.Hour), full, inc)
}

// TestIncrementsAcrossCompaction: compaction merges runs of a store's segments while an
// engine holds facts of them. The merged segment holds the same events, so the snapshot
// keeps them (no full build): it only takes the new file names, also while the merge's
// inputs are still listed beside it, and a merge of its last segments with new ones is
// applied as an increment. Appended segments keep arriving after the stored ones, so a
// repeated send keeps its first arrival's campaign. A full build is the reference.
func TestIncrementsAcrossCompaction(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 6_000, 10, end)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	dir := src.Path
	appendN := eventFeed(t, w, all)
	increments := func() int {
		t.Helper()
		require.NoError(t, inc.Refresh(ctx))
		st, err := inc.Stats(ctx)
		require.NoError(t, err)
		return st.Increments
	}
	queries := []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["received","blocked","new_contacts","conversations","resolution_time","response_time"],"groupBy":["agent_id"],"limit":500}`,
	}
	from, to := end.AddDate(0, 0, -11), end.Add(time.Hour)
	compare := func(label string) {
		t.Helper()
		full, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256, NoIncremental: true})
		require.NoError(t, err)
		defer full.Close()
		requireSameAnswers(t, label+": ", queries, from, to, full, inc)
	}
	segments := func() []store.Segment {
		t.Helper()
		segs, err := store.ListSegments(dir)
		require.NoError(t, err)
		return segs
	}
	move := func(name, fromDir, toDir string) {
		t.Helper()
		require.NoError(t, os.Rename(filepath.Join(dir, fromDir, name), filepath.Join(dir, toDir, name)))
	}

	// Four small segments, a big one, three small ones (the last sends message "dup-x").
	for i := 0; i < 4; i++ {
		appendN(40)
	}
	appendN(3000)
	big := segments()[4]
	appendN(40)
	appendN(40)
	x := events.Event{EventID: "dup-x-1", TS: end.Add(-48 * time.Hour), Type: "sent", MessageID: "dup-x", ContactID: "cx", Sender: "campaign", Campaign: "first-arrival"}
	_, err := w.Append(ctx, []events.Event{x}, store.AppendOptions{})
	require.NoError(t, err)
	require.Equal(t, 0, increments())
	appendN(40)
	require.Equal(t, 1, increments())

	// Merge the first four: the snapshot takes the new names.
	compact := store.CompactOptions{SmallBytes: big.Size - 1, MinSegments: 3, RetiredGrace: time.Hour}
	res, err := w.Compact(ctx, compact)
	require.NoError(t, err)
	require.Equal(t, 4, res.Merged)
	require.Equal(t, 1, increments(), "a merge is not a rebuild")
	compare("after the first merge")

	// Merge the four after the big one, and list one of them again as if not yet retired.
	res, err = w.Compact(ctx, compact)
	require.NoError(t, err)
	require.Equal(t, 4, res.Merged)
	retired, err := os.ReadDir(filepath.Join(dir, store.RetiredDir))
	require.NoError(t, err)
	var lingering string
	for _, r := range retired {
		lingering = r.Name() // the newest: the last input of this merge
	}
	move(lingering, store.RetiredDir, store.SegmentsDir)
	require.Len(t, segments(), 4)
	require.Equal(t, 1, increments(), "a merge with an input still listed is not a rebuild")
	compare("while an input is still listed")
	move(lingering, store.SegmentsDir, store.RetiredDir)

	// A later send of the same message (another event id) stays second in arrival order.
	x2 := x
	x2.EventID, x2.Campaign = "dup-x-2", "second-arrival"
	_, err = w.Append(ctx, []events.Event{x2}, store.AppendOptions{})
	require.NoError(t, err)
	require.Equal(t, 2, increments())
	compare("after a repeated send")
	res2, err := inc.Run(ctx, kpi.Request{Query: mustQuery(t, `{"queryType":"table","metrics":["sent"],"groupBy":["campaign"],"limit":500}`), From: from, To: to, Interval: time.Hour, MaxDataPoints: 100})
	require.NoError(t, err)
	var campaigns []string
	for i := 0; i < res2[0].Fields[0].Len(); i++ {
		if c, ok := res2[0].Fields[0].ConcreteAt(i); ok {
			campaigns = append(campaigns, fmt.Sprint(c))
		}
	}
	require.Contains(t, campaigns, "first-arrival")
	require.NotContains(t, campaigns, "second-arrival")

	// New segments, merged with the snapshot's last ones before the engine looks.
	appendN(40)
	appendN(40)
	appendN(40)
	res, err = w.Compact(ctx, compact)
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.Merged, 5)
	require.Equal(t, 3, increments(), "a merge of stored and new segments is an increment")
	compare("after a merge of stored and new segments")

	// A segment rewritten under its own name (never done by the store: segments are
	// immutable) is not taken for the one the snapshot holds.
	segs := segments()
	require.GreaterOrEqual(t, len(segs), 2)
	data, err := os.ReadFile(segs[1].Path)
	require.NoError(t, err)
	require.NotEqual(t, segs[0].Size, int64(len(data)))
	require.NoError(t, os.WriteFile(segs[0].Path, data, 0o644))
	require.Equal(t, 0, increments(), "a rewritten segment means a full build")
	compare("after a rewrite in place")
}

// outOfMemory is a real DuckDB out-of-memory error: an aggregate that cannot spill, in an
// instance with a 2 MB memory_limit.
func outOfMemory(t *testing.T) error {
	t.Helper()
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("SET memory_limit = '2MB'")
	require.NoError(t, err)
	var n int64
	err = db.QueryRow("SELECT len(list(range)) FROM range(10000000)").Scan(&n)
	var de *duckdb.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, duckdb.ErrorTypeOutOfMemory, de.Type, "%v", err)
	return err
}

// TestIncrementOutOfMemoryRetried: an increment that runs out of memoryLimitMB (queries
// beside it held part of it) is rolled back and tried again at the next look, not
// replaced by a full build, which takes minutes to hours on a large store; only when it
// fails maxIncrementMemoryRetries (3) looks in a row does a full build take the segments.
// Nothing of a rolled-back attempt shows in the answers, and the health check stays clear.
func TestIncrementOutOfMemoryRetried(t *testing.T) {
	oom := outOfMemory(t)
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 4_000, 6, end)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	appendN := eventFeed(t, w, all)
	var left atomic.Int32 // attempts still to fail, each at its first insert into a fact table
	var failed atomic.Int32
	t.Cleanup(kpi.FailIncrements(func(stmt string) error {
		if strings.HasPrefix(stmt, "INSERT INTO g") && left.Add(-1) >= 0 {
			failed.Add(1)
			return oom
		}
		return nil
	}))
	stats := func() kpi.Stats {
		t.Helper()
		st, err := inc.Stats(ctx)
		require.NoError(t, err, "the health check stays clear")
		return st
	}
	queries := []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"timeseries","metrics":["sent","delivery_rate","block_rate","conversations"],"bucket":"1h"}`,
	}
	compare := func(label string) {
		t.Helper()
		requireMatchesFullBuild(t, label, src, inc, queries, end.AddDate(0, 0, -7), end.Add(time.Hour))
	}

	appendN(2_000)
	require.NoError(t, inc.Refresh(ctx))
	before := kpi.SnapshotEvents(inc)
	builds := stats().FullBuilds

	// Two attempts run out of memory, the third fits.
	left.Store(2)
	appendN(1_000)
	for i := 1; i <= 2; i++ {
		require.NoError(t, kpi.Look(inc))
		require.EqualValues(t, i, failed.Load())
		require.False(t, kpi.FullBuildRunning(inc), "attempt %d: no full build", i)
		require.Equal(t, before, kpi.SnapshotEvents(inc), "attempt %d: rolled back", i)
	}
	require.NoError(t, kpi.Look(inc))
	require.EqualValues(t, 2, failed.Load())
	st := stats()
	require.Equal(t, builds, st.FullBuilds, "taken as an increment")
	require.Equal(t, 1, st.Increments)
	require.Greater(t, st.Events, before)
	compare("after two retries")

	// Every attempt runs out of memory: after three looks a full build takes the segment.
	failed.Store(0)
	left.Store(1000)
	before = kpi.SnapshotEvents(inc)
	appendN(-1) // the rest: the generator makes about as many events as asked
	for i := 1; i <= 3; i++ {
		require.NoError(t, kpi.Look(inc))
		require.False(t, kpi.FullBuildRunning(inc), "attempt %d: no full build", i)
		require.Equal(t, before, kpi.SnapshotEvents(inc))
	}
	require.NoError(t, kpi.Look(inc))
	require.EqualValues(t, 4, failed.Load())
	kpi.WaitFullBuild(inc)
	st = stats()
	require.Equal(t, builds+1, st.FullBuilds, "a full build after the fourth attempt")
	require.Equal(t, 0, st.Increments)
	compare("after the full build")
}

// An increment that ran out of memoryLimitMB is tried again on an instance opened with
// twice the limit (it may need more by itself: seen at 100M events with 128 MB), which
// goes back to the limit once that increment is served.
func TestIncrementRetriedWithTwiceTheMemory(t *testing.T) {
	oom := outOfMemory(t)
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	appendN := eventFeed(t, w, demoEvents(t, rng, 4_000, 6, end)) // about as many as asked
	memoryLimit := func() string {
		t.Helper()
		var v string
		require.NoError(t, inc.DB().QueryRowContext(ctx, "SELECT current_setting('memory_limit')").Scan(&v))
		return v
	}
	appendN(2_000)
	require.NoError(t, inc.Refresh(ctx))
	limit := memoryLimit()
	first := inc.DB()

	var left atomic.Int32
	var seen atomic.Value // the memory limit of the instance an attempt runs on
	t.Cleanup(kpi.FailIncrements(func(stmt string) error {
		if !strings.HasPrefix(stmt, "INSERT INTO g") {
			return nil
		}
		var v string
		if err := inc.DB().QueryRowContext(ctx, "SELECT current_setting('memory_limit')").Scan(&v); err == nil {
			seen.Store(v)
		}
		if left.Add(-1) >= 0 {
			return oom
		}
		return nil
	}))
	before := kpi.SnapshotEvents(inc)
	left.Store(1)
	appendN(-1)
	require.NoError(t, kpi.Look(inc))
	require.Equal(t, limit, seen.Load(), "the first attempt runs within the limit")
	require.Equal(t, before, kpi.SnapshotEvents(inc), "rolled back")
	require.NoError(t, kpi.Look(inc))
	roomy := seen.Load().(string)
	require.NotEqual(t, limit, roomy, "the retry runs with more memory")
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments, "the retry is served")
	require.Equal(t, 1, st.FullBuilds, "no full build but the first")
	require.Equal(t, limit, memoryLimit(), "back to the limit once served")
	require.NotSame(t, first, inc.DB())
	requireMatchesFullBuild(t, "retried with more memory", src, inc, []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"timeseries","metrics":["sent","delivery_rate","block_rate","conversations"],"bucket":"1h"}`,
	}, end.AddDate(0, 0, -7), end.Add(time.Hour))
}

// TestSpanRuns: the time runs an increment scans for its keys cover every span, are
// disjoint and ordered, join spans less than an hour apart and number at most
// MaxSpanRuns however many spans come.
func TestSpanRuns(t *testing.T) {
	at := func(h float64) time.Time {
		return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h * float64(time.Hour)))
	}
	span := func(a, b float64) [2]time.Time { return [2]time.Time{at(a), at(b)} }
	require.Empty(t, kpi.SpanRuns(nil))
	require.Equal(t, [][2]time.Time{span(0, 5), span(10, 11)},
		kpi.SpanRuns([][2]time.Time{span(10, 11), span(3, 5), span(0, 2), span(1, 1.5), span(2.5, 3)}),
		"overlapping spans and gaps under an hour join; two hours apart stay apart")

	rng := seededRand(t)
	var spans [][2]time.Time
	for i := 0; i < 500; i++ {
		a := rng.Float64() * 2000
		spans = append(spans, span(a, a+rng.Float64()*3))
	}
	runs := kpi.SpanRuns(slices.Clone(spans))
	require.LessOrEqual(t, len(runs), kpi.MaxSpanRuns)
	for i, r := range runs {
		require.False(t, r[1].Before(r[0]), "run %d ends before it starts", i)
		if i > 0 {
			require.True(t, r[0].After(runs[i-1][1]), "run %d overlaps the one before", i)
		}
	}
	for _, s := range spans {
		require.True(t, slices.ContainsFunc(runs, func(r [2]time.Time) bool { return !s[0].Before(r[0]) && !s[1].After(r[1]) }),
			"span %v is in no run", s)
	}
}

// TestMemoryByTag: what the log of an increment out of memory says holds DuckDB's
// memory names the tag and its size in MB.
func TestMemoryByTag(t *testing.T) {
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1) // an in-memory database is per connection
	_, err = db.Exec("CREATE TABLE t AS SELECT range AS x FROM range(4000000)")
	require.NoError(t, err)
	got := kpi.MemoryByTag(db)
	m := regexp.MustCompile(`IN_MEMORY_TABLE (\d+)/0`).FindStringSubmatch(got)
	require.NotNil(t, m, "no in-memory table in %q", got)
	mb, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	require.GreaterOrEqual(t, mb, 30, "4M BIGINTs take ~31 MB: %q", got)
}

// TestIncrementFitsSmallMemory: late statuses of messages sent all over a month make an
// increment scan many separate time runs for the messages' events (keySpanRuns) and read
// stored rows in many row-id runs (readRuns). Each IN (SELECT ...) is a hash join
// holding ~4 MB however few keys it has, and a statement builds all its joins before it
// probes any: with a key filter in each time run, pass 2 held two joins per run and ran
// out of a 128 MB memory_limit at 100M events; 32 read runs in one statement need as
// much. Here both ran out of 64 MB. The increment must fit 64 MB and give the full
// build's answers.
func TestIncrementFitsSmallMemory(t *testing.T) {
	t.Cleanup(kpi.SetMaxIncrementalShare(1e9))
	// Read runs in units of 32 rows: the read of stored rows takes as many runs as it may.
	t.Cleanup(kpi.SetReadRunRows(32))
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 20_000, 30, end)
	// Hold back one read status per message, for messages sent at least two hours apart.
	// (Not the generator's duplicates: each held-back status is one new event.)
	sent, ids := map[string]time.Time{}, map[string]int{}
	for _, ev := range all {
		if ev.Type == "sent" {
			sent[ev.MessageID] = ev.TS
		}
		ids[ev.EventID]++
	}
	var base, late []events.Event
	var last time.Time
	for _, ev := range all {
		if s, ok := sent[ev.MessageID]; ok && ev.Type == "read" && ids[ev.EventID] == 1 && s.Sub(last) >= 2*time.Hour {
			late, last = append(late, ev), s
			continue
		}
		base = append(base, ev)
	}
	require.Greater(t, len(late), 3*kpi.MaxSpanRuns, "late statuses spread over the month")

	w, src := writableStore(t)
	const limitMB = 64
	inc, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: limitMB, CheckEvery: time.Hour, NoChangeNotices: true})
	require.NoError(t, err)
	t.Cleanup(func() { inc.Close() })
	ctx := context.Background()
	eventFeed(t, w, base)(-1)
	require.NoError(t, inc.Refresh(ctx))
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	builds, before := st.FullBuilds, kpi.SnapshotEvents(inc)

	eventFeed(t, w, late)(-1)
	require.NoError(t, kpi.Look(inc))
	require.Equal(t, before+int64(len(late)), kpi.SnapshotEvents(inc), "taken at the first look, within %d MB", limitMB)
	st, err = inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, builds, st.FullBuilds, "as an increment")
	require.Equal(t, 1, st.Increments)
	requireMatchesFullBuild(t, "late statuses", src, inc, []string{
		`{"queryType":"table","metrics":["sent","delivered","read","read_rate","clicks","conversions"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"timeseries","metrics":["read","read_rate"],"bucket":"1d"}`,
	}, end.AddDate(0, 0, -31), end.Add(time.Hour))
}

// An increment's recomputed facts wait in an in-memory database, not in the facts file:
// there they were written to the file's write-ahead log and dropped again (half of what
// an increment logged at 10M events), bringing DuckDB's checkpoints twice as often.
func TestIncrementScratchStaysInMemory(t *testing.T) {
	t.Cleanup(kpi.SetMaxIncrementalShare(1e9))
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 4_000, 10, end)
	w, src := writableStore(t)
	inc, err := kpi.New(kpi.Options{Source: src, Threads: 2, CheckEvery: time.Hour, NoChangeNotices: true})
	require.NoError(t, err)
	t.Cleanup(func() { inc.Close() })
	ctx := context.Background()
	feed := eventFeed(t, w, all)
	feed(len(all) - 300)
	require.NoError(t, inc.Refresh(ctx))
	before := kpi.SnapshotEvents(inc)

	// Where the scratch schema is once the facts are recomputed: at the first statement of
	// the increment's transaction, which adds the new events.
	var schemas []string
	db := inc.DB()
	stop := kpi.FailIncrements(func(stmt string) error {
		if !strings.HasPrefix(stmt, "INSERT INTO g") || !strings.Contains(stmt, ".ev SELECT") {
			return nil
		}
		rows, err := db.QueryContext(ctx, `SELECT database_name || '.' || schema_name FROM duckdb_schemas()
			WHERE ends_with(schema_name, '_inc') ORDER BY 1`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			schemas = append(schemas, s)
		}
		return rows.Err()
	})
	defer stop()
	feed(-1)
	require.NoError(t, kpi.Look(inc))
	require.Greater(t, kpi.SnapshotEvents(inc), before, "the increment took the new events")
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments)
	require.Equal(t, []string{"bt_increment.g1_inc"}, schemas)
}

// The duplicate check finds stored copies of new events by 32 bits of their id's hash,
// then confirms them by the id: a new event whose hash half matches a stored event's
// is counted all the same.
func TestIncrementTellsIdHashCollisionsApart(t *testing.T) {
	t.Cleanup(kpi.SetMaxIncrementalShare(1e9))
	// Two ids with the same 32-bit hash, found with DuckDB's own hash().
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	var pair []any
	err = db.QueryRow(`SELECT list('wamid.collide' || i ORDER BY i)[1:2] FROM range(400000) AS t(i)
		GROUP BY CAST(hash('wamid.collide' || i) >> 32 AS UINTEGER) HAVING count(*) > 1 ORDER BY 1 LIMIT 1`).Scan(&pair)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.Len(t, pair, 2)
	stored, fresh := pair[0].(string), pair[1].(string)

	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	all := demoEvents(t, rng, 3_000, 10, end)
	split := len(all) - 200
	ids := map[string]int{}
	for _, ev := range all {
		ids[ev.EventID]++
	}
	rename := func(from, to int, id string) {
		for i := from; i < to; i++ {
			if ids[all[i].EventID] == 1 {
				all[i].EventID = id
				return
			}
		}
		t.Fatal("no event with an id of its own")
	}
	rename(0, split, stored)
	rename(split, len(all), fresh)
	distinct := map[string]bool{}
	for _, ev := range all {
		distinct[ev.EventID] = true
	}

	w, src := writableStore(t)
	inc, err := kpi.New(kpi.Options{Source: src, Threads: 2, CheckEvery: time.Hour, NoChangeNotices: true})
	require.NoError(t, err)
	t.Cleanup(func() { inc.Close() })
	feed := eventFeed(t, w, all)
	feed(split)
	require.NoError(t, inc.Refresh(context.Background()))
	feed(-1)
	require.NoError(t, kpi.Look(inc))
	st, err := inc.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments)
	require.Equal(t, int64(len(distinct)), kpi.SnapshotEvents(inc), "every distinct id counted once, %s as well as %s", fresh, stored)
}

// An increment keeps no copy of the stored "all" rollup rows of its changed hours in a
// table: a table's every column takes its own blocks, and DuckDB frees a dropped
// temporary table's blocks only at COMMIT, so the copies (four facts, up to 31 columns
// each) stayed in memory for the rest of the increment (docs/BENCHMARKS.md, twenty-fourth
// session). The one table it keeps per fact holds the recomputed rows (inc_rall), in
// place of the unchanged ones it no longer appends. What DuckDB counts for in-memory
// tables grows across the rollups' statements by those tables and the rows they append
// only, and the answers still equal a full build.
func TestIncrementKeepsNoCopyOfTheRollups(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	appendN := eventFeed(t, w, demoEvents(t, rng, 4_000, 6, end)) // about as many as asked
	appendN(2_000)
	require.NoError(t, inc.Refresh(ctx))
	db := inc.DB()
	inMemory := func() (int64, error) {
		var b int64
		err := db.QueryRowContext(ctx, `SELECT memory_usage_bytes + temporary_storage_bytes FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'`).Scan(&b)
		return b, err
	}
	var first, last atomic.Int64
	t.Cleanup(kpi.FailIncrements(func(stmt string) error {
		at := &last
		switch {
		case strings.HasPrefix(stmt, "CREATE OR REPLACE TEMP TABLE inc_rall AS FROM g1.r_msg_all"):
			at = &first
		case stmt != "COMMIT":
			return nil
		}
		b, err := inMemory()
		at.Store(b)
		return err
	}))
	before := kpi.SnapshotEvents(inc)
	appendN(-1)
	require.NoError(t, kpi.Look(inc))
	require.Greater(t, kpi.SnapshotEvents(inc), before, "the increment took the new events")
	require.Positive(t, first.Load(), "measured before the rollups")
	grew := last.Load() - first.Load()
	t.Logf("in-memory tables: %.1f MB before the rollups' statements, %+.1f MB at COMMIT", float64(first.Load())/(1<<20), float64(grew)/(1<<20))
	// Measured with DuckDB 1.5 on this test's stores: +18.1-18.5 MB. Here nearly every
	// recomputed row is new, so it is appended as well as kept in inc_rall: ~3 MB more
	// than appending every recomputed row without inc_rall (+14.7-15.6 MB). The copies of
	// the stored rows cost ~5.5 MB (+20.3-21.2 MB, without inc_rall).
	require.Less(t, grew, int64(20<<20)+(1<<19), "the rollups' statements keep no copies of the stored rows")
	requireMatchesFullBuild(t, "an increment without the copies", src, inc, []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["conversations","block_rate"],"groupBy":["template"],"limit":500}`,
	}, end.AddDate(0, 0, -7), end.Add(time.Hour))
}

// An increment rewrites only the fact and rollup rows that changed: it deletes exactly the
// stored rows that are gone and appends exactly the rows that are new, while the other
// rows of the hours it recomputes come back as they were and stay where they are.
func TestIncrementRewritesOnlyChangedRows(t *testing.T) {
	rng, end := seededRand(t), time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC)
	w, src, inc := incrementalStore(t)
	ctx := context.Background()
	evs := demoEvents(t, rng, 6_000, 6, end)
	appendN := eventFeed(t, w, evs)
	appendN(len(evs) - 150)
	require.NoError(t, inc.Refresh(ctx))
	tables := []string{"f_msg", "f_evt", "f_conv", "f_turn", "r_msg_all", "r_evt_all", "r_conv_all", "r_turn_all"}
	// rows are a table's rows as JSON, each with its count.
	rows := func(table string) map[string]int {
		out := map[string]int{}
		r, err := inc.DB().QueryContext(ctx, fmt.Sprintf("SELECT CAST(to_json(x) AS VARCHAR) FROM g1.%s AS x", table))
		require.NoError(t, err)
		defer r.Close()
		for r.Next() {
			var s string
			require.NoError(t, r.Scan(&s))
			out[s]++
		}
		require.NoError(t, r.Err())
		return out
	}
	// missing counts the rows of a not in b, as multisets.
	missing := func(a, b map[string]int) (n int) {
		for k, c := range a {
			n += max(c-b[k], 0)
		}
		return n
	}
	before := map[string]map[string]int{}
	for _, tb := range tables {
		before[tb] = rows(tb)
	}
	var mu sync.Mutex
	deleted, appended, recomputed := map[string]int64{}, map[string]int64{}, map[string]int64{}
	var into string // the rollup table whose recomputed rows are being made
	t.Cleanup(kpi.WatchIncrements(func(stmt string, n int64) {
		mu.Lock()
		defer mu.Unlock()
		f := strings.Fields(stmt)
		switch {
		case strings.HasPrefix(stmt, "CREATE OR REPLACE TEMP TABLE inc_rall AS FROM g1."):
			into = strings.TrimPrefix(f[8], "g1.")
		case strings.HasPrefix(stmt, "INSERT INTO temp.inc_rall "):
			recomputed[into] += n
		case strings.HasPrefix(stmt, "DELETE FROM g1."):
			deleted[strings.TrimPrefix(f[2], "g1.")] += n
		case strings.HasPrefix(stmt, "INSERT INTO g1."):
			appended[strings.TrimPrefix(f[2], "g1.")] += n
		}
	}))
	appendN(-1)
	require.NoError(t, kpi.Look(inc))
	st, err := inc.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Increments, "the new events came as an increment")
	var rewritten, kept int64
	for _, tb := range tables {
		after := rows(tb)
		gone, added := missing(before[tb], after), missing(after, before[tb])
		t.Logf("%-10s %6d rows: %4d deleted (%d gone), %4d appended (%d new), %d recomputed", tb, len(after), deleted[tb], gone, appended[tb], added, recomputed[tb])
		require.EqualValues(t, gone, deleted[tb], "%s: the increment deleted exactly the rows that are gone", tb)
		require.EqualValues(t, added, appended[tb], "%s: the increment appended exactly the rows that are new", tb)
		if strings.HasPrefix(tb, "r_") {
			rewritten += appended[tb]
			kept += recomputed[tb] - appended[tb]
		}
	}
	// Without rows that came back as they were, rewriting everything would pass too.
	require.Positive(t, rewritten, "the new events changed rollup rows")
	require.Positive(t, kept, "some recomputed rollup rows came back as they were")
	requireMatchesFullBuild(t, "an increment rewriting only what changed", src, inc, []string{
		`{"queryType":"table","metrics":["sent","delivered","read","clicks","conversions","revenue","reply_rate"],"groupBy":["campaign"],"limit":500}`,
		`{"queryType":"table","metrics":["conversations","block_rate","first_response_time"],"groupBy":["template"],"limit":500}`,
	}, end.AddDate(0, 0, -7), end.Add(time.Hour))
}
