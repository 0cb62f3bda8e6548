// Package plugin_test runs the built plugin binary through the go-plugin handshake, the way
// Grafana starts it, on the embedded demo store, and checks every metric in every shape it
// supports.
package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
	"github.com/blueticks/blueticks-whatsapp-datasource/tests/harness"
)

func query(refID, js string, from, to time.Time) backend.DataQuery {
	return backend.DataQuery{RefID: refID, JSON: json.RawMessage(js), TimeRange: backend.TimeRange{From: from, To: to},
		Interval: time.Hour, MaxDataPoints: 500}
}

// nonNull counts the non-null numeric values of a response.
func nonNull(frames data.Frames) int {
	n := 0
	for _, f := range frames {
		for _, fld := range f.Fields {
			if !fld.Type().Numeric() {
				continue
			}
			for i := 0; i < fld.Len(); i++ {
				if v, ok := fld.ConcreteAt(i); ok && v != nil {
					n++
				}
			}
		}
	}
	return n
}

func TestPluginBinaryOnDemoStore(t *testing.T) {
	c := harness.Plugin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("health", func(t *testing.T) {
		h, err := c.CheckHealth(ctx)
		require.NoError(t, err)
		assert.Equal(t, backend.HealthStatusOk, h.Status, h.Message)
		assert.Contains(t, h.Message, "embedded demo store")
		assert.Regexp(t, `holds [0-9]{6,} events from 20`, h.Message)
		assert.Contains(t, h.Message, "newest event")
	})

	now := time.Now().UTC()
	from := now.Add(-30 * 24 * time.Hour)

	t.Run("every metric in every shape", func(t *testing.T) {
		req := &backend.QueryDataRequest{}
		want := map[string]string{}
		for _, m := range kpi.Metrics {
			for _, shape := range m.Shapes() {
				ref := m.ID + "/" + shape
				var js string
				switch shape {
				case "ab":
					js = fmt.Sprintf(`{"queryType":"ab","metric":%q}`, m.ID)
				default:
					js = fmt.Sprintf(`{"queryType":%q,"metrics":[%q],"bucket":"1d"}`, shape, m.ID)
				}
				req.Queries = append(req.Queries, query(ref, js, from, now))
				want[ref] = m.ID
			}
		}
		resp, err := c.QueryData(ctx, req)
		require.NoError(t, err)
		for ref, id := range want {
			r, ok := resp.Responses[ref]
			require.True(t, ok, ref)
			if !assert.NoError(t, r.Error, ref) {
				continue
			}
			require.NotEmpty(t, r.Frames, ref)
			assert.Positive(t, nonNull(r.Frames), "%s has no values", ref)
			if strings.HasSuffix(ref, "/timeseries") {
				f := r.Frames[0]
				require.Equal(t, "time", f.Fields[0].Name, ref)
				require.Equal(t, id, f.Fields[1].Name, ref)
				assert.GreaterOrEqual(t, f.Rows(), 30, ref)
				m, _ := kpi.LookupMetric(id)
				assert.Equal(t, m.Unit(), f.Fields[1].Config.Unit, ref)
			}
		}
	})

	t.Run("shapes", func(t *testing.T) {
		req := &backend.QueryDataRequest{Queries: []backend.DataQuery{
			query("funnel", `{"queryType":"funnel","groupBy":["category"]}`, from, now),
			query("retention", `{"queryType":"retention","period":"week"}`, from, now),
			query("values", `{"queryType":"values","dimension":"business_number"}`, from, now),
			query("sql", `{"queryType":"sql","rawSql":"SELECT $__timeGroup(ts, '1d') AS time, count(*) AS events FROM events WHERE $__timeFilter(ts) GROUP BY 1 ORDER BY 1"}`, from, now),
			query("series", `{"queryType":"timeseries","metrics":["delivery_rate","sent"],"groupBy":["business_number"],"limit":2,"timezone":"Europe/Rome","bucket":"1d"}`, from, now),
			query("auto", `{"queryType":"timeseries","metrics":["sent"]}`, now.Add(-90*24*time.Hour), now),
		}}
		resp, err := c.QueryData(ctx, req)
		require.NoError(t, err)
		for ref, r := range resp.Responses {
			require.NoError(t, r.Error, ref)
		}
		funnel := resp.Responses["funnel"].Frames
		require.NotEmpty(t, funnel)
		for _, f := range funnel {
			prev := -1.0
			for i := 0; i < f.Rows(); i++ {
				v, _ := f.Fields[1].ConcreteAt(i)
				if prev >= 0 {
					assert.LessOrEqual(t, v.(float64), prev, "funnel stages never grow")
				}
				prev = v.(float64)
			}
		}
		vals := resp.Responses["values"].Frames[0]
		assert.Equal(t, 3, vals.Rows(), "the demo has three business numbers")
		sql := resp.Responses["sql"].Frames[0]
		assert.GreaterOrEqual(t, sql.Rows(), 30)
		assert.Contains(t, sql.Meta.ExecutedQueryString, "TIMESTAMPTZ")
		series := resp.Responses["series"].Frames
		assert.Len(t, series, 2, "limit keeps the top 2 numbers")
		for _, f := range series {
			assert.NotEmpty(t, f.Fields[1].Labels["business_number"])
		}
		auto := resp.Responses["auto"].Frames[0]
		assert.LessOrEqual(t, auto.Rows(), 500, "maxDataPoints bounds the buckets")
		assert.GreaterOrEqual(t, auto.Rows(), 90)
	})

	t.Run("a bad query fails alone", func(t *testing.T) {
		req := &backend.QueryDataRequest{Queries: []backend.DataQuery{
			query("good", `{"queryType":"table","metrics":["sent"]}`, from, now),
			query("unknown-metric", `{"queryType":"table","metrics":["opens"]}`, from, now),
			query("unknown-dim", `{"queryType":"table","metrics":["sent"],"groupBy":["city"]}`, from, now),
			query("unknown-shape", `{"queryType":"pie","metrics":["sent"]}`, from, now),
			query("malformed", `{"queryType":`, from, now),
			query("bad-sql", `{"queryType":"sql","rawSql":"DROP TABLE events"}`, from, now),
		}}
		resp, err := c.QueryData(ctx, req)
		require.NoError(t, err)
		assert.NoError(t, resp.Responses["good"].Error)
		assert.Positive(t, nonNull(resp.Responses["good"].Frames))
		for ref, want := range map[string]string{
			"unknown-metric": `unknown metric "opens" (allowed: abandoned,`,
			"unknown-dim":    `unknown groupBy dimension "city" (allowed: campaign,`,
			"unknown-shape":  `unknown queryType "pie" (allowed: timeseries, table,`,
			"malformed":      "not a JSON object",
			"bad-sql":        "only a read-only SELECT",
		} {
			r := resp.Responses[ref]
			require.Error(t, r.Error, ref)
			assert.Contains(t, r.Error.Error(), want, ref)
			assert.Equal(t, backend.StatusBadRequest, r.Status, ref)
			assert.Equal(t, backend.ErrorSourceDownstream, r.ErrorSource, ref)
		}
	})

	t.Run("resources", func(t *testing.T) {
		r, err := c.CallResource(ctx, "GET", "metrics")
		require.NoError(t, err)
		require.Equal(t, 200, r.Status)
		var metrics struct {
			Metrics []struct {
				ID, Area, Unit string
				Shapes         []string
			}
		}
		require.NoError(t, json.Unmarshal(r.Body, &metrics))
		assert.Len(t, metrics.Metrics, len(kpi.Metrics))

		r, err = c.CallResource(ctx, "GET", "values?dimension=campaign&q=SALE&limit=5")
		require.NoError(t, err)
		require.Equal(t, 200, r.Status, string(r.Body))
		var vals struct {
			Values []string
		}
		require.NoError(t, json.Unmarshal(r.Body, &vals))
		require.NotEmpty(t, vals.Values)
		for _, v := range vals.Values {
			assert.Contains(t, strings.ToLower(v), "sale")
		}

		r, err = c.CallResource(ctx, "GET", "values?dimension=city")
		require.NoError(t, err)
		assert.Equal(t, 400, r.Status)
		assert.Contains(t, string(r.Body), "unknown or missing dimension")

		r, err = c.CallResource(ctx, "POST", "metrics")
		require.NoError(t, err)
		assert.Equal(t, 405, r.Status)

		r, err = c.CallResource(ctx, "GET", "nope")
		require.NoError(t, err)
		assert.Equal(t, 404, r.Status)
	})
}

func TestPluginBinaryMissingStore(t *testing.T) {
	c := harness.Plugin(t)
	c.Settings = harness.StoreSettings("/nonexistent/blueticks-store")
	ctx := context.Background()
	h, err := c.CheckHealth(ctx)
	require.NoError(t, err)
	assert.Equal(t, backend.HealthStatusError, h.Status)
	assert.Contains(t, h.Message, `store path "/nonexistent/blueticks-store" does not exist`)

	resp, err := c.QueryData(ctx, &backend.QueryDataRequest{Queries: []backend.DataQuery{
		query("A", `{"queryType":"table","metrics":["sent"]}`, time.Now().Add(-time.Hour), time.Now()),
	}})
	require.NoError(t, err)
	require.Error(t, resp.Responses["A"].Error)
	assert.Contains(t, resp.Responses["A"].Error.Error(), "does not exist")
}

// The plugin keeps a store's facts across restarts (factsDir): killed (as Grafana kills a
// plugin it stops, or the kernel does) right after new events were published, it starts
// again serving the kept facts, takes what the store gained, and answers exactly what a
// plugin that builds everything afresh answers.
func TestPluginBinaryKeepsFactsAcrossAKill(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	end := time.Now().UTC().Truncate(time.Hour)
	var all []events.Event
	require.NoError(t, demo.Generate(demo.Config{Events: 20_000, Days: 14, Seed: 7, End: end}, func(e *events.Event) error {
		all = append(all, e.Clone())
		return nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err = w.Append(ctx, all[:15_000], store.AppendOptions{})
	require.NoError(t, err)

	settings := func(factsDir string) backend.DataSourceInstanceSettings {
		s := harness.StoreSettings(dir)
		s.JSONData, _ = json.Marshal(map[string]any{"storePath": dir, "factsDir": factsDir})
		return s
	}
	type health struct {
		Events     int64 `json:"events"`
		FullBuilds int   `json:"fullBuilds"`
		Increments int   `json:"increments"`
	}
	healthOf := func(c *harness.Client) health {
		t.Helper()
		h, err := c.CheckHealth(ctx)
		require.NoError(t, err)
		require.Equal(t, backend.HealthStatusOk, h.Status, h.Message)
		var got health
		require.NoError(t, json.Unmarshal(h.JSONDetails, &got), string(h.JSONDetails))
		return got
	}
	req := &backend.QueryDataRequest{Queries: []backend.DataQuery{
		query("table", `{"queryType":"table","metrics":["sent","delivered","read","reply_rate","conversions","revenue"],"groupBy":["campaign"]}`, end.AddDate(0, 0, -15), end.Add(time.Hour)),
		query("series", `{"queryType":"timeseries","metrics":["delivery_rate","block_rate"],"bucket":"1d"}`, end.AddDate(0, 0, -15), end.Add(time.Hour)),
	}}
	answer := func(c *harness.Client) string {
		t.Helper()
		resp, err := c.QueryData(ctx, req)
		require.NoError(t, err)
		b, err := json.Marshal(map[string]any{"table": resp.Responses["table"].Frames, "series": resp.Responses["series"].Frames})
		require.NoError(t, err)
		for _, r := range resp.Responses {
			require.NoError(t, r.Error)
		}
		return string(b)
	}

	facts := filepath.Join(t.TempDir(), "facts")
	first := harness.Start(t, exec.Command(harness.Binary(t)), settings(facts))
	h := healthOf(first)
	require.Equal(t, 1, h.FullBuilds)
	answer(first)
	_, err = w.Append(ctx, all[15_000:], store.AppendOptions{})
	require.NoError(t, err)
	first.Kill()

	second := harness.Start(t, exec.Command(harness.Binary(t)), settings(facts))
	h = healthOf(second)
	assert.Equal(t, 0, h.FullBuilds, "served from the kept facts")
	assert.GreaterOrEqual(t, h.Increments, 1, "what the store gained is taken as an increment")
	got := answer(second)

	fresh := harness.Start(t, exec.Command(harness.Binary(t)), settings("none"))
	hf := healthOf(fresh)
	assert.Equal(t, 1, hf.FullBuilds)
	assert.Equal(t, hf.Events, h.Events)
	assert.Equal(t, answer(fresh), got, "the kept facts answer as a full build does")
}
