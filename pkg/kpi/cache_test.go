package kpi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

func framesJSON(t *testing.T, fs data.Frames) string {
	t.Helper()
	var parts []json.RawMessage
	for _, f := range fs {
		b, err := json.Marshal(f)
		require.NoError(t, err)
		parts = append(parts, b)
	}
	b, err := json.Marshal(parts)
	require.NoError(t, err)
	return string(b)
}

// A repeated query is answered from the cache with the same frames; changing the frames
// returned does not change the cached answer; a new segment is seen at once after Refresh.
func TestResultCacheNeverStale(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Append(ctx, []events.Event{
		sent("m1", at(1, 0), "c1", withCampaign("a")),
		delivered("m1", at(1, 1)),
	}, store.AppendOptions{})
	require.NoError(t, err)
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	e, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256, CheckEvery: time.Hour, NoChangeNotices: true})
	require.NoError(t, err)
	defer e.Close()

	q, err := kpi.ParseQuery([]byte(`{"queryType":"table","metrics":["sent","delivery_rate"],"groupBy":["campaign"]}`))
	require.NoError(t, err)
	req := kpi.Request{Query: q, From: at(0, 0), To: at(23, 0), Interval: time.Minute, MaxDataPoints: 100}
	first, err := e.Run(ctx, req)
	require.NoError(t, err)
	want := framesJSON(t, first)
	first[0].RefID = "A" // the plugin does this to every answer
	first[0].Name = "changed"
	again, err := e.Run(ctx, req)
	require.NoError(t, err)
	require.Equal(t, want, framesJSON(t, again))

	_, err = w.Append(ctx, []events.Event{
		sent("m2", at(2, 0), "c2", withCampaign("a")),
	}, store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, e.Refresh(ctx))
	after, err := e.Run(ctx, req)
	require.NoError(t, err)
	require.NotEqual(t, want, framesJSON(t, after))
	rows := tableRows(t, after)
	require.Equal(t, 2.0, rows["a"]["sent"])
	require.Equal(t, 0.5, rows["a"]["delivery_rate"])
}

func tableRows(t *testing.T, fs data.Frames) map[string]map[string]float64 {
	t.Helper()
	require.Len(t, fs, 1)
	f := fs[0]
	out := map[string]map[string]float64{}
	for i := 0; i < f.Rows(); i++ {
		key := fmt.Sprint(f.Fields[0].At(i))
		if p, ok := f.Fields[0].At(i).(*string); ok && p != nil {
			key = *p
		}
		out[key] = map[string]float64{}
		for _, fl := range f.Fields[1:] {
			if v, ok := fl.ConcreteAt(i); ok {
				out[key][fl.Name] = v.(float64)
			}
		}
	}
	return out
}

// Randomised: every answer of a cached engine equals the answer of a second engine that
// asks the same queries in another order (so a key that confused two requests would
// show), over a demo store with randomised queries, ranges, buckets and zones.
func TestResultCacheEquivalentRandomised(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	end := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, writeDemoStore(dir, 20_000, end))
	open := func() *kpi.Engine {
		src, err := store.OpenSource(dir)
		require.NoError(t, err)
		e, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256, CheckEvery: time.Hour, NoChangeNotices: true})
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		return e
	}
	a, b := open(), open()

	rng := rand.New(rand.NewSource(7))
	metrics := []string{"sent", "delivered", "delivery_rate", "read_rate", "click_rate", "conversion_rate", "revenue", "block_rate", "conversations", "csat_avg"}
	dims := []string{"", "campaign", "country", "category"}
	types := []string{"timeseries", "table"}
	zones := []string{"UTC", "Europe/Rome"}
	buckets := []string{"", "1h", "1d"}
	var reqs []kpi.Request
	for i := 0; i < 40; i++ {
		m := metrics[rng.Intn(len(metrics))]
		js := fmt.Sprintf(`{"queryType":%q,"metrics":[%q],"timezone":%q`, types[rng.Intn(2)], m, zones[rng.Intn(2)])
		if d := dims[rng.Intn(len(dims))]; d != "" {
			js += fmt.Sprintf(`,"groupBy":[%q]`, d)
		}
		if bk := buckets[rng.Intn(len(buckets))]; bk != "" {
			js += fmt.Sprintf(`,"bucket":%q`, bk)
		}
		if rng.Intn(3) == 0 {
			js += `,"filters":[{"dimension":"country","op":"in","values":["IT","DE"]}]`
		}
		js += "}"
		q, err := kpi.ParseQuery([]byte(js))
		require.NoError(t, err, js)
		to := end.Add(-time.Duration(rng.Intn(72)) * time.Hour)
		from := to.Add(-time.Duration(1+rng.Intn(14*24)) * time.Hour)
		reqs = append(reqs, kpi.Request{Query: q, From: from, To: to, Interval: time.Minute, MaxDataPoints: int64(50 + rng.Intn(500))})
		// The same query over a range one second longer: a different answer key.
		reqs = append(reqs, kpi.Request{Query: q, From: from.Add(-time.Second), To: to, Interval: time.Minute, MaxDataPoints: reqs[len(reqs)-1].MaxDataPoints})
	}
	got := map[int]string{}
	for round := 0; round < 2; round++ {
		for i, r := range reqs {
			fs, err := a.Run(ctx, r)
			require.NoError(t, err)
			s := framesJSON(t, fs)
			if round == 1 {
				require.Equal(t, got[i], s, "request %d answered differently from the cache", i)
			}
			got[i] = s
		}
	}
	for i := len(reqs) - 1; i >= 0; i-- {
		fs, err := b.Run(ctx, reqs[i])
		require.NoError(t, err)
		require.Equal(t, got[i], framesJSON(t, fs), "request %d: cached engine and second engine differ", i)
	}
}
