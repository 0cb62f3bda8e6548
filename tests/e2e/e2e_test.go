//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// ---------------------------------------------------------------- the repository's files

type dashboard struct {
	file string
	json map[string]any
}

func str(v any) string            { s, _ := v.(string); return s }
func list(v any) []any            { l, _ := v.([]any); return l }
func obj(v any) map[string]any    { m, _ := v.(map[string]any); return m }
func (d dashboard) uid() string   { return str(d.json["uid"]) }
func (d dashboard) title() string { return str(d.json["title"]) }

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []dashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m), f)
		out = append(out, dashboard{file: filepath.Base(f), json: m})
	}
	return out
}

func panels(d dashboard) []map[string]any {
	var out []map[string]any
	for _, p := range list(d.json["panels"]) {
		out = append(out, obj(p))
		for _, inner := range list(obj(p)["panels"]) {
			out = append(out, obj(inner))
		}
	}
	return out
}

// ruleTitles are the titles of the provisioned alert rules, by uid.
func ruleTitles(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "provisioning/alerting/blueticks-alerts.yaml"))
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []struct{ UID, Title string } `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &f))
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.UID] = r.Title
		}
	}
	require.NotEmpty(t, out)
	return out
}

var varRef = regexp.MustCompile(`\$(\w+)|\[\[(\w+)(?::\w+)?\]\]|\$\{(\w+)(?:\.[^:}]+)?(?::[^}]+)?\}`)

func isVarRef(s string) bool {
	s = strings.TrimSpace(s)
	m := varRef.FindStringIndex(s)
	return m != nil && m[0] == 0 && m[1] == len(s)
}

// allSelected is the query the frontend sends with every variable set to All: filters on
// variables removed, the data source variable resolved to the provisioned data source.
func allSelected(t *testing.T, q map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range q {
		out[k] = v
	}
	if fl := list(q["filters"]); fl != nil {
		kept := []any{}
		for _, f := range fl {
			vals := list(obj(f)["values"])
			all := len(vals) > 0
			for _, v := range vals {
				all = all && isVarRef(str(v))
			}
			if !all {
				kept = append(kept, f)
			}
		}
		out["filters"] = kept
	}
	out["datasource"] = map[string]any{"type": pluginID, "uid": provisionedUID}
	raw, _ := json.Marshal(out)
	require.Empty(t, varRef.FindAllString(strings.ReplaceAll(string(raw), `"${datasource}"`, ""), -1), "variables left in %s", raw)
	return out
}

// ---------------------------------------------------------------- /api/ds/query answers

type dsResult struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
	Frames []struct {
		Schema struct {
			Name   string `json:"name"`
			Fields []struct {
				Name   string            `json:"name"`
				Type   string            `json:"type"`
				Labels map[string]string `json:"labels"`
			} `json:"fields"`
		} `json:"schema"`
		Data struct {
			Values [][]any `json:"values"`
		} `json:"data"`
	} `json:"frames"`
}

func (g *grafana) query(t *testing.T, from, to string, model map[string]any) (int, dsResult, string) {
	t.Helper()
	q := map[string]any{}
	for k, v := range model {
		q[k] = v
	}
	q["refId"] = "A"
	q["intervalMs"] = 60000
	q["maxDataPoints"] = 1000
	var resp struct {
		Results map[string]dsResult `json:"results"`
		Message string              `json:"message"`
	}
	code := g.do(t, http.MethodPost, "/api/ds/query", map[string]any{"from": from, "to": to, "queries": []any{q}}, &resp)
	return code, resp.Results["A"], resp.Message
}

// nonNull: some field other than the time axis has a non-null value.
func (r dsResult) nonNull() bool {
	for _, f := range r.Frames {
		for i, field := range f.Schema.Fields {
			if field.Type == "time" || i >= len(f.Data.Values) {
				continue
			}
			for _, v := range f.Data.Values[i] {
				if v != nil {
					return true
				}
			}
		}
	}
	return false
}

// ---------------------------------------------------------------- the demo

// TestDemo starts Grafana with the provisioning as shipped (the embedded demo store), with
// only the alert group's interval shortened to 10 s so every rule is evaluated quickly.
func TestDemo(t *testing.T) {
	g := startGrafana(t, "--alert-interval", "10s")
	started := time.Now()

	t.Run("data source health", func(t *testing.T) {
		var h struct{ Status, Message string }
		code := g.do(t, http.MethodGet, "/api/datasources/uid/"+provisionedUID+"/health", nil, &h)
		assert.Equal(t, http.StatusOK, code, "health: %s", h.Message)
		assert.Equal(t, "OK", h.Status, h.Message)
		t.Logf("health: %s", h.Message)
	})

	dashboards := loadDashboards(t)
	t.Run("dashboards provisioned", func(t *testing.T) {
		var found []struct{ UID, Title, FolderTitle string }
		deadline := time.Now().Add(30 * time.Second)
		for {
			g.do(t, http.MethodGet, "/api/search?type=dash-db&limit=5000", nil, &found)
			if len(found) >= len(dashboards) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		byUID := map[string]string{}
		for _, f := range found {
			byUID[f.UID] = f.FolderTitle
		}
		for _, d := range dashboards {
			folder, ok := byUID[d.uid()]
			if assert.True(t, ok, "%s (%s) not provisioned", d.file, d.uid()) {
				assert.Equal(t, "Blue Ticks", folder, "%s folder", d.uid())
			}
			var got struct {
				Dashboard map[string]any `json:"dashboard"`
				Meta      struct {
					// provisioned is false when the provider allows UI updates; the
					// external id is the provisioned file's name.
					ProvisionedExternalID string `json:"provisionedExternalId"`
				} `json:"meta"`
			}
			code := g.do(t, http.MethodGet, "/api/dashboards/uid/"+d.uid(), nil, &got)
			if assert.Equal(t, http.StatusOK, code, d.uid()) {
				assert.Equal(t, d.file, got.Meta.ProvisionedExternalID, "%s provisioned from its file", d.uid())
				assert.Equal(t, d.title(), got.Dashboard["title"])
				assert.Len(t, list(got.Dashboard["panels"]), len(list(d.json["panels"])), "%s panels", d.uid())
			}
		}
	})

	t.Run("every panel and variable query answers with data", func(t *testing.T) {
		n := 0
		for _, d := range dashboards {
			tm := obj(d.json["time"])
			from, to := str(tm["from"]), str(tm["to"])
			var models []struct {
				name  string
				model map[string]any
			}
			for _, v := range list(obj(d.json["templating"])["list"]) {
				vm := obj(v)
				if str(vm["type"]) == "query" {
					models = append(models, struct {
						name  string
						model map[string]any
					}{"variable " + str(vm["name"]), obj(vm["query"])})
				}
			}
			for _, p := range panels(d) {
				for _, tg := range list(p["targets"]) {
					models = append(models, struct {
						name  string
						model map[string]any
					}{fmt.Sprintf("panel %v %q", p["id"], str(p["title"])), obj(tg)})
				}
			}
			for _, m := range models {
				t.Run(d.file+" "+m.name, func(t *testing.T) {
					body := allSelected(t, m.model)
					code, res, msg := g.query(t, from, to, body)
					raw, _ := json.Marshal(body)
					require.Equal(t, http.StatusOK, code, "%s %s: %s", msg, res.Error, raw)
					require.Empty(t, res.Error, "%s", raw)
					require.NotEmpty(t, res.Frames, "no frames for %s", raw)
					assert.True(t, res.nonNull(), "only null values for %s", raw)
				})
				n++
			}
		}
		t.Logf("%d queries through /api/ds/query", n)
	})

	t.Run("every alert rule evaluates with health ok", func(t *testing.T) {
		titles := ruleTitles(t)
		var names []string
		for _, title := range titles {
			names = append(names, title)
		}
		sort.Strings(names)
		rules := g.waitRules(t, names, 2*time.Minute, func(r promRule) bool {
			return r.LastEvaluation.After(started)
		})
		for _, n := range names {
			r := rules[n]
			assert.Equal(t, "ok", r.Health, "%s: health %s, last error %q", n, r.Health, r.LastError)
			assert.Empty(t, r.LastError, n)
			t.Logf("%-40s health=%s state=%s instances=%d", n, r.Health, r.State, len(r.Alerts))
		}
	})
}

// ---------------------------------------------------------------- the rules on a crafted store

const (
	numberSpike   = "bn-e2e-spike"   // 300 deliveries, 15 blocks: 5 % -> block rate fires
	numberSteady  = "bn-e2e-steady"  // 300 deliveries, 2 blocks: 0.7 % -> normal
	numberTiny    = "bn-e2e-tiny"    // 4 deliveries, 2 blocks: 50 % but too few messages -> normal
	numberFailing = "bn-e2e-failing" // 250 sent, 60 failed with 131049, rated RED -> delivery drop, failure spike, quality RED
	failingCode   = "131049"
)

// writeStore writes an NDJSON file of SPEC rows placed in the last hour and imports it
// with the project's CLI into a new store.
func writeStore(t *testing.T, now time.Time) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "events.ndjson")
	f, err := os.Create(file)
	require.NoError(t, err)
	enc := json.NewEncoder(f)
	row := func(m map[string]any) { require.NoError(t, enc.Encode(m)) }
	ts := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339Nano) }
	for _, n := range []struct {
		number           string
		messages, blocks int
		failed           int
	}{{numberSpike, 300, 15, 0}, {numberSteady, 300, 2, 0}, {numberTiny, 4, 2, 0}, {numberFailing, 250, 0, 60}} {
		for i := 0; i < n.messages; i++ {
			msg := fmt.Sprintf("wamid.%s.%04d", n.number, i)
			contact := fmt.Sprintf("contact-%s-%04d", n.number, i)
			sentAt := -50*time.Minute + time.Duration(i)*5*time.Second // up to 25 minutes of sends
			row(map[string]any{"event_id": msg + ".sent", "ts": ts(sentAt), "type": "sent", "message_id": msg,
				"contact_id": contact, "business_number": n.number, "sender": "campaign", "campaign": "e2e_" + n.number,
				"template": "e2e_template", "category": "marketing", "country": "IT", "message_type": "template"})
			if i < n.failed {
				row(map[string]any{"event_id": msg + ".failed", "ts": ts(sentAt + 10*time.Second), "type": "failed",
					"message_id": msg, "error_code": 131049})
				continue
			}
			row(map[string]any{"event_id": msg + ".delivered", "ts": ts(sentAt + 10*time.Second), "type": "delivered", "message_id": msg})
			if i < n.blocks {
				row(map[string]any{"event_id": msg + ".blocked", "ts": ts(sentAt + 10*time.Minute), "type": "blocked",
					"contact_id": contact, "business_number": n.number})
			}
		}
	}
	for _, q := range []struct {
		at      time.Duration
		number  string
		quality string
	}{{-3 * time.Hour, numberFailing, "GREEN"}, {-20 * time.Minute, numberFailing, "RED"}, {-3 * time.Hour, numberSpike, "GREEN"}} {
		row(map[string]any{"event_id": fmt.Sprintf("quality.%s.%d", q.number, int(q.at.Seconds())), "ts": ts(q.at),
			"type": "quality_changed", "business_number": q.number, "quality": q.quality})
	}
	require.NoError(t, f.Close())

	store := filepath.Join(dir, "store")
	cmd := exec.Command("go", "run", "./pkg/cmd/blueticks", "import", "--store", store, file)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "blueticks import: %s", out)
	t.Logf("blueticks import: %s", strings.TrimSpace(string(out)))
	return store
}

func firing(state string) bool { return strings.HasPrefix(strings.ToLower(state), "alerting") }

// TestRulesFireOnACraftedStore runs the provisioned rules (a test copy: storePath on a
// crafted store, group interval 10 s, no pending period) and expects each rule to fire for
// exactly the instances that cross its threshold: the block rate rule for the number with
// 5 % blocks on 300 deliveries, not for 0.7 % on 300 nor for 50 % on 4 deliveries; the
// delivery drop, failure spike and quality rules for the failing number (its error code).
func TestRulesFireOnACraftedStore(t *testing.T) {
	store := writeStore(t, time.Now())
	g := startGrafana(t, "--store", store, "--alert-interval", "10s", "--alert-for", "0s")

	// The data source reads the crafted store.
	code, res, msg := g.query(t, "now-65m", "now-5m", map[string]any{
		"datasource": map[string]any{"type": pluginID, "uid": provisionedUID},
		"queryType":  "table", "metrics": []string{"block_rate"}, "groupBy": []string{"business_number"},
	})
	require.Equal(t, http.StatusOK, code, msg)
	require.Empty(t, res.Error)
	require.NotEmpty(t, res.Frames)
	t.Logf("block_rate by business_number over the rule's window: %v", res.Frames[0].Data.Values)

	titles := ruleTitles(t)
	want := map[string]struct {
		label  string
		firing []string
	}{
		"blueticks-block-rate":         {"business_number", []string{numberSpike}},
		"blueticks-delivery-rate-drop": {"business_number", []string{numberFailing}},
		"blueticks-failure-spike":      {"error_code", []string{failingCode}},
		"blueticks-quality-red":        {"business_number", []string{numberFailing}},
	}
	require.Len(t, titles, len(want), "a provisioned rule without an expectation here")
	var names []string
	for uid := range want {
		require.Contains(t, titles, uid)
		names = append(names, titles[uid])
	}
	rules := g.waitRules(t, names, 2*time.Minute, func(r promRule) bool {
		if r.Health == "error" {
			return true // stop waiting: the assertions below say why
		}
		for uid, w := range want {
			if titles[uid] != r.Name {
				continue
			}
			n := 0
			for _, a := range r.Alerts {
				if firing(a.State) && slices.Contains(w.firing, a.Labels[w.label]) {
					n++
				}
			}
			return n == len(w.firing)
		}
		return false
	})

	for uid, w := range want {
		r := rules[titles[uid]]
		t.Run(uid, func(t *testing.T) {
			assert.Equal(t, "ok", r.Health, "last error %q", r.LastError)
			assert.Equal(t, "firing", r.State)
			var got []string
			for _, a := range r.Alerts {
				t.Logf("%s: %s", fmtLabels(a.Labels), a.State)
				if firing(a.State) || strings.EqualFold(a.State, "pending") {
					got = append(got, a.Labels[w.label])
				}
				if !firing(a.State) {
					continue
				}
				// The annotations' templates render with the rule's values.
				summary, description := a.Annotations["summary"], a.Annotations["description"]
				t.Logf("  summary: %s", summary)
				t.Logf("  description: %s", description)
				assert.Contains(t, summary, a.Labels[w.label])
				for _, text := range []string{summary, description} {
					assert.NotEmpty(t, text)
					assert.NotContains(t, text, "error executing template")
					assert.NotContains(t, text, "<no value>", "a value missing in an annotation")
				}
			}
			sort.Strings(got)
			assert.Equal(t, w.firing, got, "%s instances firing", w.label)
		})
	}

	// The block rate rule's summary carries the rate and the number.
	for _, a := range rules[titles["blueticks-block-rate"]].Alerts {
		if a.Labels["business_number"] == numberSpike {
			assert.Equal(t, "Block rate 5% on business number "+numberSpike, a.Annotations["summary"])
			assert.Contains(t, a.Annotations["description"], "of the 300 messages delivered")
		}
	}
}

// TestFactsKeptAcrossAGrafanaRestart: the plugin keeps a store's facts beside Grafana's
// plugins directory, so after Grafana restarts the data source answers from them (no full
// build) with the same numbers.
func TestFactsKeptAcrossAGrafanaRestart(t *testing.T) {
	store := writeStore(t, time.Now())
	g := startGrafana(t, "--store", store)
	health := func() (status string, details map[string]any) {
		t.Helper()
		var h struct {
			Status, Message string
			Details         map[string]any `json:"details"`
		}
		code := g.do(t, http.MethodGet, "/api/datasources/uid/"+provisionedUID+"/health", nil, &h)
		require.Equal(t, http.StatusOK, code, "health: %s", h.Message)
		t.Logf("health: %s %v", h.Message, h.Details)
		return h.Status, h.Details
	}
	model := map[string]any{
		"datasource": map[string]any{"type": pluginID, "uid": provisionedUID},
		"queryType":  "table", "metrics": []string{"sent", "delivered", "blocked", "block_rate"}, "groupBy": []string{"business_number"},
	}
	answer := func() dsResult {
		t.Helper()
		code, res, msg := g.query(t, "now-3h", "now", model)
		require.Equal(t, http.StatusOK, code, msg)
		require.Empty(t, res.Error)
		require.True(t, res.nonNull(), "the crafted store has values in the last 3 hours")
		return res
	}

	status, details := health()
	require.Equal(t, "OK", status)
	assert.EqualValues(t, 1, details["fullBuilds"])
	before := answer()
	assert.DirExists(t, filepath.Join(g.dir, "blueticks-facts"), "kept beside the plugins directory")

	g.restart(t)
	status, details = health()
	require.Equal(t, "OK", status)
	assert.EqualValues(t, 0, details["fullBuilds"], "served from the kept facts")
	assert.Equal(t, before.Frames, answer().Frames)
}
