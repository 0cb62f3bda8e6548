// Package security_test runs the built plugin binary the way Grafana does and attacks it
// as a hostile viewer with full access to the query and resource API (docs/SECURITY.md):
// every bad input gets its own specific error, the plugin keeps serving other queries and
// other data sources, timeouts and cancellations really stop DuckDB, alert rules keep a
// lane of their own, and the pseudonymisation key never shows in logs, errors or frames.
package security_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
	"github.com/blueticks/blueticks-whatsapp-datasource/tests/harness"
)

// secret is every data source's hashKey; it must never leave the plugin.
const secret = "hk-5e3b1f0c9a-never-print-me"

// syncBuffer collects the plugin's stderr and logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var nextID int64 = 100

// ds is one data source's settings, with the secret.
func ds(uid string, jsonData map[string]any) backend.DataSourceInstanceSettings {
	nextID++
	b, _ := json.Marshal(jsonData)
	return backend.DataSourceInstanceSettings{ID: nextID, UID: uid, Name: uid, JSONData: b,
		DecryptedSecureJSONData: map[string]string{"hashKey": secret}, Updated: time.Now()}
}

func demo(uid string, extra map[string]any) backend.DataSourceInstanceSettings {
	js := map[string]any{"storePath": "", "demoEvents": 3000}
	for k, v := range extra {
		js[k] = v
	}
	return ds(uid, js)
}

var (
	now  = time.Now().UTC().Truncate(time.Hour)
	from = now.Add(-7 * 24 * time.Hour)
)

func q(ref, js string) backend.DataQuery {
	return backend.DataQuery{RefID: ref, JSON: json.RawMessage(js), TimeRange: backend.TimeRange{From: from, To: now},
		Interval: time.Hour, MaxDataPoints: 500}
}

func sqlQuery(ref, text string) backend.DataQuery {
	b, _ := json.Marshal(map[string]string{"queryType": "sql", "rawSql": text})
	return q(ref, string(b))
}

// heavy is a cross join DuckDB cannot shortcut: far longer than any test's timeout.
const heavy = "SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE (a.range * 7 + b.range) % 1000003 = 17"

type plugin struct {
	*harness.Client
	logs *syncBuffer
}

func (p *plugin) query(t *testing.T, ctx context.Context, settings backend.DataSourceInstanceSettings, headers map[string]string, qs ...backend.DataQuery) *backend.QueryDataResponse {
	t.Helper()
	s := settings
	resp, err := p.QueryData(ctx, &backend.QueryDataRequest{
		PluginContext: backend.PluginContext{DataSourceInstanceSettings: &s}, Queries: qs, Headers: headers})
	require.NoError(t, err)
	return resp
}

func startPlugin(t *testing.T) *plugin {
	t.Helper()
	logs := &syncBuffer{}
	cmd := exec.Command(harness.Binary(t))
	c, err := harness.StartWith(&goplugin.ClientConfig{
		HandshakeConfig:  harness.Handshake,
		VersionedPlugins: harness.PluginSet(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		SyncStdout:       logs,
		SyncStderr:       logs,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}),
	}, demo("blueticks-demo", nil))
	require.NoError(t, err)
	t.Cleanup(c.Kill)
	return &plugin{Client: c, logs: logs}
}

func TestHostileViewer(t *testing.T) {
	p := startPlugin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	good := demo("good", nil)
	var seen []string // every error and frame the plugin sent, checked for the secret at the end
	record := func(resp *backend.QueryDataResponse) {
		for _, r := range resp.Responses {
			if r.Error != nil {
				seen = append(seen, r.Error.Error())
			}
			for _, f := range r.Frames {
				b, _ := json.Marshal(f)
				seen = append(seen, string(b))
			}
		}
	}

	t.Run("bad input: each query its own specific error, the good one answers", func(t *testing.T) {
		y1 := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
		y9999 := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
		absurd := q("absurd", `{"queryType":"timeseries","metrics":["sent"]}`)
		absurd.TimeRange = backend.TimeRange{From: y1, To: y9999}
		absurdTable := q("absurdTable", `{"queryType":"table","metrics":["sent"]}`)
		absurdTable.TimeRange = absurd.TimeRange
		mdp0 := q("mdp0", `{"queryType":"timeseries","metrics":["sent"]}`)
		mdp0.MaxDataPoints = 0
		mdpHuge := q("mdpHuge", `{"queryType":"timeseries","metrics":["sent"]}`)
		mdpHuge.MaxDataPoints = 1_000_000_000
		huge := make([]string, 1001)
		for i := range huge {
			huge[i] = fmt.Sprintf("%q", fmt.Sprint(i))
		}
		queries := []backend.DataQuery{
			q("good", `{"queryType":"table","metrics":["sent","delivery_rate"],"groupBy":["campaign"]}`),
			q("malformed", `{"queryType":"table",`),
			q("wrongType", `{"queryType":"table","metrics":"sent"}`),
			q("hugeArray", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","values":[`+strings.Join(huge, ",")+`]}]}`),
			absurd, absurdTable, mdp0, mdpHuge,
			q("badZone", `{"queryType":"timeseries","metrics":["sent"],"timezone":"Europe/Atlantis"}`),
			q("injection", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","values":["'; DROP VIEW events; --","Frühling ☀️","\u0000"]}]}`),
			q("unknownMetric", `{"queryType":"table","metrics":["sent; DROP VIEW events"]}`),
			sqlQuery("readCSV", "SELECT * FROM read_csv('/etc/passwd')"),
			sqlQuery("copy", "COPY (SELECT 1) TO '/tmp/blueticks-pwned.csv'"),
			sqlQuery("attach", "ATTACH '/tmp/blueticks-pwned.duckdb' AS x"),
			sqlQuery("install", "INSTALL httpfs"),
			sqlQuery("set", "SET enable_external_access = true"),
			sqlQuery("multi", "SELECT 1; CREATE TABLE pwned AS SELECT 1"),
			sqlQuery("locked", "SELECT current_setting('enable_external_access')::VARCHAR AS v, current_setting('lock_configuration')::VARCHAR AS l"),
		}
		resp := p.query(t, ctx, good, nil, queries...)
		record(resp)
		require.Len(t, resp.Responses, len(queries))
		for ref, want := range map[string]string{
			"malformed":     "not a JSON object",
			"wrongType":     "field metrics has the wrong type",
			"hugeArray":     "too many values (at most 1000)",
			"badZone":       "not an IANA time zone",
			"unknownMetric": "unknown metric",
			"readCSV":       "raw SQL can read only the store's own files",
			"copy":          "only a read-only SELECT",
			"attach":        "only a read-only SELECT",
			"install":       "only a read-only SELECT",
			"set":           "only a read-only SELECT",
			"multi":         "only a read-only SELECT",
		} {
			r := resp.Responses[ref]
			if assert.Error(t, r.Error, ref) {
				assert.Contains(t, r.Error.Error(), want, ref)
				assert.Equal(t, backend.StatusBadRequest, r.Status, ref)
				assert.Equal(t, backend.ErrorSourceDownstream, r.ErrorSource, ref)
			}
		}
		for _, ref := range []string{"good", "absurdTable", "mdp0", "mdpHuge", "injection", "locked"} {
			r := resp.Responses[ref]
			require.NoError(t, r.Error, ref)
			require.NotEmpty(t, r.Frames, ref)
		}
		// Year 1 to 9999 cannot reach the plugin intact: the SDK converts the protocol's
		// epoch milliseconds through nanoseconds (convert_from_protobuf.go), which wrap
		// outside 1678–2262. Whatever arrives gets a specific error or a bounded answer.
		if r := resp.Responses["absurd"]; r.Error != nil {
			assert.Equal(t, backend.StatusBadRequest, r.Status, r.Error.Error())
		} else {
			n, _ := r.Frames[0].RowLen()
			assert.LessOrEqual(t, n, 20_000)
		}
		for _, ref := range []string{"mdp0", "mdpHuge"} {
			n, _ := resp.Responses[ref].Frames[0].RowLen()
			assert.LessOrEqual(t, n, 20_000, ref)
		}
		sent, _ := resp.Responses["injection"].Frames[0].Fields[0].ConcreteAt(0)
		assert.EqualValues(t, 0.0, sent, "hostile filter values match nothing")
		locked := resp.Responses["locked"].Frames[0]
		v, _ := locked.Fields[0].ConcreteAt(0)
		l, _ := locked.Fields[1].ConcreteAt(0)
		assert.Equal(t, "false", v)
		assert.Equal(t, "true", l)
		assert.NoFileExists(t, "/tmp/blueticks-pwned.csv")
		assert.NoFileExists(t, "/tmp/blueticks-pwned.duckdb")

		after := p.query(t, ctx, good, nil, sqlQuery("count", "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'pwned'"))
		record(after)
		require.NoError(t, after.Responses["count"].Error)
		n, _ := after.Responses["count"].Frames[0].Fields[0].ConcreteAt(0)
		assert.EqualValues(t, 0, n, "SELECT 1; CREATE TABLE … never created the table")
	})

	t.Run("broken data sources fail alone", func(t *testing.T) {
		dir := t.TempDir()
		corrupt := filepath.Join(dir, "corrupt")
		require.NoError(t, store.Init(corrupt))
		require.NoError(t, os.MkdirAll(filepath.Join(corrupt, store.SegmentsDir), 0o755))
		bad := filepath.Join(corrupt, store.SegmentsDir, "x.parquet")
		require.NoError(t, os.WriteFile(bad, []byte("garbage, not parquet"), 0o644))
		notes := filepath.Join(dir, "notes.txt")
		require.NoError(t, os.WriteFile(notes, []byte("hello"), 0o644))
		fifo := filepath.Join(dir, "events.parquet")
		require.NoError(t, syscall.Mkfifo(fifo, 0o644))
		emptyStore := filepath.Join(dir, "empty")
		require.NoError(t, store.Init(emptyStore))

		cases := []struct {
			name     string
			settings backend.DataSourceInstanceSettings
			want     string
		}{
			{"corrupt segment", ds("corrupt", map[string]any{"storePath": corrupt}), "x.parquet"},
			{"missing path", ds("missing", map[string]any{"storePath": filepath.Join(dir, "nope")}), "does not exist"},
			{"file of the wrong kind", ds("notes", map[string]any{"storePath": notes}), "unknown kind of file"},
			{"a FIFO", ds("fifo", map[string]any{"storePath": fifo}), "is a p"},
			{"truncated DuckDB file", ds("duck", map[string]any{"storePath": writeGarbage(t, dir, "events.duckdb")}), "events.duckdb"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				qctx, qcancel := context.WithTimeout(ctx, 20*time.Second)
				defer qcancel()
				resp := p.query(t, qctx, c.settings, nil, q("A", `{"queryType":"table","metrics":["sent"]}`))
				record(resp)
				r := resp.Responses["A"]
				require.Error(t, r.Error)
				assert.Contains(t, r.Error.Error(), c.want)
				assert.Equal(t, backend.ErrorSourceDownstream, r.ErrorSource)

				p.Settings = c.settings
				h, err := p.CheckHealth(qctx)
				require.NoError(t, err)
				assert.Equal(t, backend.HealthStatusError, h.Status)
				assert.Contains(t, h.Message, c.want)
				seen = append(seen, h.Message, string(h.JSONDetails))

				// The good data source still answers.
				ok := p.query(t, qctx, good, nil, q("B", `{"queryType":"table","metrics":["sent"]}`))
				require.NoError(t, ok.Responses["B"].Error)
			})
		}
		t.Run("empty store answers zeros", func(t *testing.T) {
			resp := p.query(t, ctx, ds("empty", map[string]any{"storePath": emptyStore}), nil, q("A", `{"queryType":"table","metrics":["sent"]}`))
			require.NoError(t, resp.Responses["A"].Error)
		})
		t.Run("unreadable store directory", func(t *testing.T) {
			if os.Geteuid() == 0 {
				t.Log("running as root: chmod 000 does not stop root, so this check is skipped (the FIFO and wrong-kind cases above stand in)")
				return
			}
			locked := filepath.Join(dir, "locked")
			require.NoError(t, store.Init(locked))
			require.NoError(t, os.Chmod(locked, 0))
			defer os.Chmod(locked, 0o755)
			resp := p.query(t, ctx, ds("locked", map[string]any{"storePath": locked}), nil, q("A", `{"queryType":"table","metrics":["sent"]}`))
			require.Error(t, resp.Responses["A"].Error)
			assert.Contains(t, resp.Responses["A"].Error.Error(), "not readable")
		})
		t.Run("invalid settings", func(t *testing.T) {
			s := ds("badsettings", map[string]any{"queryTimeoutSeconds": -5})
			_, err := p.QueryData(ctx, &backend.QueryDataRequest{PluginContext: backend.PluginContext{DataSourceInstanceSettings: &s},
				Queries: []backend.DataQuery{q("A", `{"queryType":"table","metrics":["sent"]}`)}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "queryTimeoutSeconds = -5 is out of range")
			seen = append(seen, err.Error())
		})
	})

	// warmUp waits until a data source's first snapshot is built (its first queries may
	// time out while the build goes on under the engine's own context), so that what a
	// subtest times is not the build.
	warmUp := func(t *testing.T, s backend.DataSourceInstanceSettings) {
		t.Helper()
		require.Eventually(t, func() bool {
			r := p.query(t, ctx, s, nil, q("warm", `{"queryType":"table","metrics":["sent"]}`))
			return r.Responses["warm"].Error == nil
		}, 60*time.Second, 50*time.Millisecond, "the snapshot is built")
	}

	t.Run("timeout interrupts DuckDB and the next query answers", func(t *testing.T) {
		// One slot: the next query can only run once the interrupted one has really stopped.
		slow := demo("slow", map[string]any{"queryTimeoutSeconds": 1, "maxConcurrentQueries": 1})
		start := time.Now()
		resp := p.query(t, ctx, slow, nil, sqlQuery("heavy", heavy))
		took := time.Since(start)
		record(resp)
		r := resp.Responses["heavy"]
		require.Error(t, r.Error)
		assert.Equal(t, backend.StatusTimeout, r.Status)
		assert.Contains(t, r.Error.Error(), "timed out after 1s")
		// The first query also builds the snapshot; the timeout covers both.
		assert.Less(t, took, 4*time.Second)
		t.Logf("1 s queryTimeoutSeconds: answered StatusTimeout after %v", took.Round(time.Millisecond))
		// The build goes on under the engine's own context; once it is done, an interrupted
		// query must not hold up the next one (the build's own time is not what is timed).
		warmUp(t, slow)
		resp = p.query(t, ctx, slow, nil, sqlQuery("heavy", heavy))
		require.Error(t, resp.Responses["heavy"].Error)
		assert.Equal(t, backend.StatusTimeout, resp.Responses["heavy"].Status)
		start = time.Now()
		next := p.query(t, ctx, slow, nil, q("next", `{"queryType":"table","metrics":["sent"]}`))
		require.NoError(t, next.Responses["next"].Error)
		assert.Less(t, time.Since(start), time.Second)
		t.Logf("next query on the same data source answered in %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("Grafana's cancellation interrupts DuckDB", func(t *testing.T) {
		s := demo("cancel", map[string]any{"queryTimeoutSeconds": 60, "maxConcurrentQueries": 1})
		warmUp(t, s)
		cctx, ccancel := context.WithCancel(ctx)
		time.AfterFunc(500*time.Millisecond, ccancel)
		start := time.Now()
		_, err := p.QueryData(cctx, &backend.QueryDataRequest{PluginContext: backend.PluginContext{DataSourceInstanceSettings: &s},
			Queries: []backend.DataQuery{sqlQuery("heavy", heavy)}})
		require.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second)
		// With one slot, the next query can only run once the heavy one has really stopped.
		start = time.Now()
		next := p.query(t, ctx, s, nil, q("next", `{"queryType":"table","metrics":["sent"]}`))
		require.NoError(t, next.Responses["next"].Error)
		assert.Less(t, time.Since(start), 2*time.Second, "the cancelled query released its slot")
		t.Logf("after cancelling at 500 ms, the next query answered in %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("a heavy dashboard cannot starve alerting", func(t *testing.T) {
		s := demo("busy", map[string]any{"queryTimeoutSeconds": 3, "maxConcurrentQueries": 1})
		warmUp(t, s)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.query(t, ctx, s, nil, sqlQuery("heavy", heavy))
		}()
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		alert := p.query(t, ctx, s, map[string]string{"FromAlert": "true"}, q("rule", `{"queryType":"table","metrics":["block_rate","deliveries"]}`))
		tookAlert := time.Since(start)
		require.NoError(t, alert.Responses["rule"].Error)
		assert.Less(t, tookAlert, 1500*time.Millisecond, "the alert rule used its own slot")
		t.Logf("alert query answered in %v while a heavy dashboard query held the only slot", tookAlert.Round(time.Millisecond))
		wg.Wait()
	})

	t.Run("resources: huge search, bad limit", func(t *testing.T) {
		p.Settings = good
		r, err := p.CallResource(ctx, "GET", "values?dimension=campaign&q="+strings.Repeat("x", 5000))
		require.NoError(t, err)
		assert.Equal(t, 400, r.Status)
		assert.Contains(t, string(r.Body), "too long")
		r, err = p.CallResource(ctx, "GET", "values?dimension=campaign&q=%27%3B%20DROP%20VIEW%20events%3B--")
		require.NoError(t, err)
		assert.Equal(t, 200, r.Status)
		r, err = p.CallResource(ctx, "GET", "values?dimension=campaign&limit=1000000000")
		require.NoError(t, err)
		assert.Equal(t, 400, r.Status)
		seen = append(seen, string(r.Body))
	})

	t.Run("the secret never shows", func(t *testing.T) {
		p.Settings = good
		h, err := p.CheckHealth(ctx)
		require.NoError(t, err)
		seen = append(seen, h.Message, string(h.JSONDetails))
		for _, s := range seen {
			assert.NotContains(t, s, secret)
		}
		logs := p.logs.String()
		require.Contains(t, logs, "query answered", "the plugin's debug logs were captured")
		assert.NotContains(t, logs, secret, "the plugin's logs")
	})
}

func writeGarbage(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("SQLite format 3\x00 but truncated"), 0o644))
	return p
}
