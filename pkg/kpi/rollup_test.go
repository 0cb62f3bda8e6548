package kpi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// messyEvents are random events the demo generator never writes: missing dimensions,
// replies to other contacts' messages, statuses of unknown messages, odd seconds; among 40
// contacts and 30 conversations.
func messyEvents(rng *rand.Rand, start time.Time, days, n int) []events.Event {
	return messyEventsAmong(rng, start, days, n, 40, 30)
}

// messyEventsAmong is messyEvents among the given numbers of contacts and conversations.
func messyEventsAmong(rng *rand.Rand, start time.Time, days, n, contacts, conversations int) []events.Event {
	pick := func(vals ...string) string { return vals[rng.Intn(len(vals))] }
	types := []string{"sent", "sent", "sent", "delivered", "read", "failed", "received", "clicked", "converted",
		"blocked", "opted_out", "reported", "conversation_opened", "resolved", "escalated", "abandoned", "csat", "nps"}
	out := make([]events.Event, 0, n)
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(rng.Int63n(int64(days) * int64(24*time.Hour))))
		e := events.Event{EventID: fmt.Sprintf("messy-%d", i), TS: ts, Type: types[rng.Intn(len(types))]}
		msg := fmt.Sprintf("mm-%d", rng.Intn(n/3+1))
		contact := fmt.Sprintf("mc-%d", rng.Intn(contacts))
		switch e.Type {
		case "sent":
			e.MessageID, e.ContactID = msg, contact
			e.Sender = pick("campaign", "campaign", "agent", "bot")
			if rng.Intn(3) > 0 {
				e.Campaign = pick("c1", "c2", "")
			}
			e.Country = pick("IT", "DE", "")
			e.BusinessNumber = pick("b1", "b2")
			e.ConversationID = fmt.Sprintf("mv-%d", rng.Intn(conversations))
			if e.Sender == "agent" {
				e.AgentID = pick("a1", "a2")
			}
			v := float64(rng.Intn(1000)) / 1000
			e.Value, e.Currency = &v, "EUR"
		case "delivered", "read":
			e.MessageID = msg
			if rng.Intn(2) == 0 { // as from webhooks, though not always its message's contact
				e.ContactID = contact
			}
		case "failed":
			e.MessageID = msg
			code := int32(pick2(rng, 131026, 131047))
			e.ErrorCode = &code
		case "received", "clicked", "blocked", "opted_out", "reported":
			e.ContactID = contact
			if e.Type == "received" {
				e.MessageID = "in-" + e.EventID
				e.ConversationID = fmt.Sprintf("mv-%d", rng.Intn(conversations))
			}
			if rng.Intn(4) == 0 {
				e.ReplyTo = msg // maybe another contact's message
			}
			if e.Type == "clicked" && e.ReplyTo == "" && rng.Intn(3) == 0 {
				e.MessageID = msg // names a message but is credited by last touch
			}
		case "converted":
			e.ContactID = contact
			if rng.Intn(3) == 0 {
				e.MessageID = msg
			}
			v := float64(rng.Intn(10000)) / 100
			e.Value, e.Currency = &v, "EUR"
		case "conversation_opened", "resolved", "escalated", "abandoned":
			e.ConversationID = fmt.Sprintf("mv-%d", rng.Intn(conversations))
			e.ContactID = contact
			e.Sender = pick("bot", "agent", "customer")
			if e.Sender == "agent" {
				e.AgentID = pick("a1", "a2")
			}
			if e.Type == "abandoned" {
				e.Step = pick("s1", "s2")
			}
		case "csat", "nps":
			e.ContactID = contact
			e.ConversationID = fmt.Sprintf("mv-%d", rng.Intn(conversations))
			v := float64(1 + rng.Intn(5))
			if e.Type == "nps" {
				v = float64(rng.Intn(11))
			}
			e.Value = &v
		}
		if e.Validate() == nil {
			out = append(out, e)
		}
	}
	return out
}

func pick2(rng *rand.Rand, a, b int) int {
	if rng.Intn(2) == 0 {
		return a
	}
	return b
}

// TestRollupsMatchFacts runs random queries on random stores twice, from the rollups and
// from the facts, and requires the same frames, to the last bit.
func TestRollupsMatchFacts(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	end := time.Date(2026, 3, 30, 13, 17, 0, 0, time.UTC) // a week past Europe's DST change
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	var batch []events.Event
	require.NoError(t, demo.Generate(demo.Config{Events: 30_000, Days: 20, Seed: rng.Int63(), End: end}, func(e *events.Event) error {
		batch = append(batch, e.Clone())
		return nil
	}))
	batch = append(batch, messyEvents(rng, end.AddDate(0, 0, -20), 20, 3000)...)
	rng.Shuffle(len(batch)/10, func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	for len(batch) > 0 {
		n := min(len(batch), 1+rng.Intn(12000))
		_, err := w.Append(context.Background(), batch[:n], store.AppendOptions{})
		require.NoError(t, err)
		batch = batch[n:]
	}
	require.NoError(t, w.Close())
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	open := func(noRollups bool) *kpi.Engine {
		e, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 512, NoRollups: noRollups})
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		return e
	}
	fast, slow := open(false), open(true)

	// Filter values that occur.
	values := map[string][]string{}
	for _, d := range []string{"campaign", "country", "business_number", "sender", "agent_id", "template", "segment", "category", "error_code", "variant"} {
		frames, err := slow.Run(context.Background(), kpi.Request{Query: mustQuery(t, fmt.Sprintf(`{"queryType":"values","dimension":%q}`, d))})
		require.NoError(t, err)
		f := frames[0]
		for i := 0; i < f.Rows(); i++ {
			switch v := f.Fields[0].At(i).(type) {
			case string:
				values[d] = append(values[d], v)
			case *string:
				if v != nil {
					values[d] = append(values[d], *v)
				}
			}
		}
	}
	var metricIDs []string
	for _, m := range kpi.Metrics {
		if m.Fact != kpi.FactQuality {
			metricIDs = append(metricIDs, m.ID)
		}
	}
	dims := kpi.DimensionIDs()
	zones := []string{"UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata", "Australia/Adelaide", "Asia/Kathmandu"}
	buckets := []string{"", "1h", "3h", "1d", "1w", "15m", "6h"}

	rolled, total := 0, 0
	for i := 0; i < 250; i++ {
		q := map[string]any{}
		shape := []string{"timeseries", "table", "funnel"}[rng.Intn(3)]
		q["queryType"] = shape
		if shape != "funnel" {
			var ms []string
			for n := 1 + rng.Intn(4); len(ms) < n; {
				ms = append(ms, metricIDs[rng.Intn(len(metricIDs))])
			}
			q["metrics"] = ms
		}
		var gb []string
		for n := rng.Intn(3); len(gb) < n; {
			d := dims[rng.Intn(len(dims))]
			if !contains(gb, d) {
				gb = append(gb, d)
			}
		}
		q["groupBy"] = gb
		var filters []map[string]any
		for n := rng.Intn(3); len(filters) < n; {
			keys := make([]string, 0, len(values))
			for k := range values {
				keys = append(keys, k)
			}
			d := keys[rng.Intn(len(keys))]
			if len(values[d]) == 0 {
				continue
			}
			vals := []string{values[d][rng.Intn(len(values[d]))]}
			if rng.Intn(3) == 0 {
				vals = append(vals, values[d][rng.Intn(len(values[d]))])
			}
			op := "in"
			if rng.Intn(4) == 0 {
				op = "not_in"
			}
			filters = append(filters, map[string]any{"dimension": d, "op": op, "values": vals})
		}
		q["filters"] = filters
		q["timezone"] = zones[rng.Intn(len(zones))]
		if shape == "timeseries" {
			q["bucket"] = buckets[rng.Intn(len(buckets))]
		}
		q["limit"] = 500
		raw, _ := json.Marshal(q)
		query, err := kpi.ParseQuery(raw)
		if err != nil {
			if i < 3 {
				t.Logf("skip %s: %v", raw, err)
			}
			continue // an invalid random combination: the parser says so
		}
		to := end.Add(-time.Duration(rng.Int63n(int64(5 * 24 * time.Hour))))
		from := to.Add(-time.Duration(rng.Int63n(int64(15*24*time.Hour))) - time.Hour)
		if rng.Intn(3) == 0 {
			from, to = from.Truncate(time.Hour), to.Truncate(time.Hour)
		}
		req := kpi.Request{Query: query, From: from, To: to, Interval: time.Minute, MaxDataPoints: 2000}
		want, errSlow := slow.Run(context.Background(), req)
		got, errFast := fast.Run(context.Background(), req)
		if errSlow != nil {
			require.Error(t, errFast, "%s: the facts fail (%v), the rollups answer", raw, errSlow)
			continue
		}
		require.NoError(t, errFast, "%s", raw)
		total++
		used := false
		for _, f := range got {
			if f.Meta != nil && strings.Contains(f.Meta.ExecutedQueryString, ".r_") {
				used = true
			}
		}
		if used {
			rolled++
		}
		requireSameFrames(t, string(raw)+fmt.Sprintf(" from %s to %s", from.Format(time.RFC3339), to.Format(time.RFC3339)), want, got)
	}
	t.Logf("%d queries compared, %d answered from rollups", total, rolled)
	require.Greater(t, total, 150, "too few valid random queries")
	require.Greater(t, rolled, total/3, "rollups answered too few queries")
}

func mustQuery(t *testing.T, s string) *kpi.Query {
	q, err := kpi.ParseQuery([]byte(s))
	require.NoError(t, err)
	return q
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func requireSameFrames(t *testing.T, what string, want, got data.Frames) {
	t.Helper()
	require.Equal(t, len(want), len(got), "%s: frame count", what)
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, len(w.Fields), len(g.Fields), "%s: fields of frame %d", what, i)
		require.Equal(t, w.Rows(), g.Rows(), "%s: rows of frame %d", what, i)
		for j, wf := range w.Fields {
			gf := g.Fields[j]
			require.Equal(t, wf.Name, gf.Name, what)
			require.Equal(t, wf.Labels, gf.Labels, "%s: labels of %s", what, wf.Name)
			for r := 0; r < wf.Len(); r++ {
				a, b := wf.At(r), gf.At(r)
				fa, okA := a.(*float64)
				fb, okB := b.(*float64)
				if okA && okB {
					if fa == nil || fb == nil {
						require.True(t, fa == nil && fb == nil, "%s: %s row %d: facts %v, rollups %v", what, wf.Name, r, ptr(fa), ptr(fb))
						continue
					}
					require.Equal(t, *fa, *fb, "%s: %s row %d", what, wf.Name, r)
					continue
				}
				require.Equal(t, a, b, "%s: %s row %d", what, wf.Name, r)
			}
		}
	}
}

func ptr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
