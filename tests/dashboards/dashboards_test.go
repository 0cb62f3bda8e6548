// Package dashboards_test checks the prebuilt dashboards (dashboards/*.json) and the
// provisioning (provisioning/**): their structure, that every query is a valid query of the
// plugin's model, and that every panel target, variable query and alert rule query answers
// with data when sent to the real plugin binary on the embedded demo store.
package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/tests/harness"
)

const (
	pluginID       = "blueticks-whatsapp-datasource"
	provisionedUID = "blueticks-demo"
	datasourceVar  = "${datasource}"
	expressionUID  = "__expr__"
)

// ---------------------------------------------------------------- loading

// repoRoot is the module root (the harness finds it from its own source file).
func repoRoot(t *testing.T) string {
	t.Helper()
	return harness.RepoRoot()
}

type dashboard struct {
	file string // path relative to the repository
	json map[string]any
}

func (d dashboard) uid() string   { return str(d.json["uid"]) }
func (d dashboard) title() string { return str(d.json["title"]) }

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no dashboards/*.json")
	var out []dashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var m map[string]any
		rel, _ := filepath.Rel(root, f)
		require.NoError(t, json.Unmarshal(raw, &m), "%s is not valid JSON", rel)
		out = append(out, dashboard{file: rel, json: m})
	}
	return out
}

func loadYAML(t *testing.T, rel string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &m), "%s is not valid YAML", rel)
	return m
}

// provisioningFiles lists every file under provisioning/, relative to the repository.
func provisioningFiles(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	var out []string
	err := filepath.WalkDir(filepath.Join(root, "provisioning"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
		return nil
	})
	require.NoError(t, err)
	sort.Strings(out)
	return out
}

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any { l, _ := v.([]any); return l }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// panels flattens a dashboard's panels, including those inside collapsed rows.
func panels(d dashboard) []map[string]any {
	var out []map[string]any
	for _, p := range list(d.json["panels"]) {
		pm := obj(p)
		out = append(out, pm)
		for _, inner := range list(pm["panels"]) {
			out = append(out, obj(inner))
		}
	}
	return out
}

func variables(d dashboard) []map[string]any {
	var out []map[string]any
	for _, v := range list(obj(d.json["templating"])["list"]) {
		out = append(out, obj(v))
	}
	return out
}

// ---------------------------------------------------------------- variables as the frontend expands them

var varRef = regexp.MustCompile(`\$(\w+)|\[\[(\w+)(?::\w+)?\]\]|\$\{(\w+)(?:\.[^:}]+)?(?::[^}]+)?\}`)

// isVarRef reports whether s is exactly one template variable reference.
func isVarRef(s string) bool {
	m := varRef.FindStringIndex(strings.TrimSpace(s))
	return m != nil && m[0] == 0 && m[1] == len(strings.TrimSpace(s))
}

func varNames(s string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(s, -1) {
		for _, g := range m[1:] {
			if g != "" {
				out = append(out, g)
			}
		}
	}
	return out
}

// builtin values for Grafana's global variables, as the frontend would send them.
func builtins(rng time.Duration, interval time.Duration) map[string]string {
	return map[string]string{
		"__interval":      interval.String(),
		"__interval_ms":   strconv.FormatInt(interval.Milliseconds(), 10),
		"__rate_interval": interval.String(),
		"__range":         fmt.Sprintf("%ds", int(rng.Seconds())),
		"__range_s":       strconv.Itoa(int(rng.Seconds())),
		"__range_ms":      strconv.FormatInt(rng.Milliseconds(), 10),
		"__timezone":      "utc",
	}
}

// withAllSelected returns the query a panel sends when every dashboard variable is "All":
// a filter whose values are all variable references is removed (SPEC section 3), and
// Grafana's global variables take their values. It fails on a reference it cannot resolve.
func withAllSelected(t *testing.T, where string, q map[string]any, rng, interval time.Duration) map[string]any {
	t.Helper()
	return withSelection(t, where, q, nil, rng, interval)
}

// withSelection is withAllSelected where the variables named in sel are set to those values
// instead of All (a multi-value variable expands into the filter's values).
func withSelection(t *testing.T, where string, q map[string]any, sel map[string][]string, rng, interval time.Duration) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range q {
		out[k] = v
	}
	if fl := list(q["filters"]); fl != nil {
		kept := []any{}
		for _, f := range fl {
			fm := obj(f)
			var vals []any
			for _, v := range list(fm["values"]) {
				if !isVarRef(str(v)) {
					vals = append(vals, v)
					continue
				}
				for _, chosen := range sel[varNames(str(v))[0]] {
					vals = append(vals, chosen)
				}
			}
			if len(vals) == 0 {
				continue // All, or nothing chosen: no filter
			}
			nf := map[string]any{}
			for k, v := range fm {
				nf[k] = v
			}
			nf["values"] = vals
			kept = append(kept, nf)
		}
		out["filters"] = kept
	}
	delete(out, "datasource")
	raw, err := json.Marshal(out)
	require.NoError(t, err)
	text := string(raw)
	for name, val := range builtins(rng, interval) {
		text = strings.ReplaceAll(text, "${"+name+"}", val)
		text = strings.ReplaceAll(text, "$"+name, val)
	}
	left := varNames(text)
	require.Empty(t, left, "%s: variables left after setting every variable to All: %v in %s", where, left, text)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(text), &m))
	return m
}

// ---------------------------------------------------------------- structure

func TestDashboardsAreListedInPluginJSON(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "plugin.json"))
	require.NoError(t, err)
	var manifest struct {
		Includes []struct{ Type, Name, Path string } `json:"includes"`
	}
	require.NoError(t, json.Unmarshal(raw, &manifest))
	var included []string
	for _, inc := range manifest.Includes {
		if inc.Type == "dashboard" {
			included = append(included, filepath.FromSlash(inc.Path))
		}
	}
	var files []string
	for _, d := range loadDashboards(t) {
		files = append(files, d.file)
	}
	sort.Strings(included)
	assert.Equal(t, included, files, "plugin.json includes and dashboards/*.json differ")
}

func TestDashboardStructure(t *testing.T) {
	dashboards := loadDashboards(t)
	uids := map[string]string{}
	for _, d := range dashboards {
		t.Run(d.file, func(t *testing.T) {
			assert.NotEmpty(t, d.uid(), "uid")
			assert.LessOrEqual(t, len(d.uid()), 40, "uid longer than Grafana allows")
			assert.NotEmpty(t, d.title(), "title")
			assert.NotEmpty(t, str(d.json["description"]), "description")
			if other, dup := uids[d.uid()]; dup {
				t.Errorf("uid %s also used by %s", d.uid(), other)
			}
			uids[d.uid()] = d.file
			tm := obj(d.json["time"])
			assert.Contains(t, []string{"now-7d", "now-30d"}, str(tm["from"]), "time.from")
			assert.Equal(t, "now", str(tm["to"]), "time.to")
			assert.Contains(t, []string{"", "1m"}, str(d.json["refresh"]), "refresh off or 1m")

			ids := map[float64]bool{}
			for _, p := range panels(d) {
				id, _ := p["id"].(float64)
				assert.False(t, ids[id], "panel id %v used twice", id)
				ids[id] = true
			}
		})
	}
}

// TestDashboardLinks: every dashboard reaches every other one through its links (a
// "dashboards" link by tag, or a plain link to /d/UID).
func TestDashboardLinks(t *testing.T) {
	dashboards := loadDashboards(t)
	for _, d := range dashboards {
		t.Run(d.file, func(t *testing.T) {
			for _, other := range dashboards {
				if other.uid() == d.uid() {
					continue
				}
				assert.True(t, linksTo(d, other), "%s has no link to %s (%s)", d.file, other.file, other.uid())
			}
		})
	}
}

func linksTo(from, to dashboard) bool {
	toTags := map[string]bool{}
	for _, tg := range list(to.json["tags"]) {
		toTags[str(tg)] = true
	}
	for _, l := range list(from.json["links"]) {
		lm := obj(l)
		switch str(lm["type"]) {
		case "dashboards":
			tags := list(lm["tags"])
			ok := len(tags) > 0
			for _, tg := range tags {
				ok = ok && toTags[str(tg)]
			}
			if ok {
				return true
			}
		case "link":
			if strings.Contains(str(lm["url"]), "/d/"+to.uid()) {
				return true
			}
		}
	}
	return false
}

func TestPanelsUseTheDataSourceVariableAndValidQueries(t *testing.T) {
	for _, d := range loadDashboards(t) {
		defined := map[string]bool{}
		for _, v := range variables(d) {
			defined[str(v["name"])] = true
		}
		for _, p := range panels(d) {
			if str(p["type"]) == "row" {
				continue
			}
			name := fmt.Sprintf("%s/%v %s", d.file, p["id"], str(p["title"]))
			t.Run(name, func(t *testing.T) {
				assert.NotEmpty(t, str(p["title"]), "title")
				assert.NotEmpty(t, strings.TrimSpace(str(p["description"])), "description (how the KPI is defined)")
				assertOurDataSource(t, p["datasource"], "panel datasource")

				defaults := obj(obj(p["fieldConfig"])["defaults"])
				assert.NotEmpty(t, str(defaults["unit"]), "fieldConfig.defaults.unit")
				_, hasDecimals := defaults["decimals"]
				assert.True(t, hasDecimals, "fieldConfig.defaults.decimals")
				assert.NotEmpty(t, list(obj(defaults["thresholds"])["steps"]), "fieldConfig.defaults.thresholds")
				// Grafana matches reduceOptions.fields against display names: a field regex next
				// to a displayName shows "No data".
				if fields := str(obj(obj(p["options"])["reduceOptions"])["fields"]); fields != "" {
					assert.Empty(t, str(defaults["displayName"]), "reduceOptions.fields %q would be matched against the display name", fields)
				}
				// The state timeline shows threshold ranges ("< 1") instead of value mappings
				// when the colour mode is thresholds.
				if str(p["type"]) == "state-timeline" {
					assert.NotEqual(t, "thresholds", str(obj(defaults["color"])["mode"]), "state timeline colour mode")
					assert.NotEmpty(t, list(defaults["mappings"]), "state timeline value mappings")
				}

				targets := list(p["targets"])
				require.NotEmpty(t, targets, "no targets")
				for _, tg := range targets {
					tm := obj(tg)
					assertOurDataSource(t, tm["datasource"], "target datasource")
					assert.NotEmpty(t, str(tm["refId"]), "refId")
					raw, err := json.Marshal(tm)
					require.NoError(t, err)
					_, err = kpi.ParseQuery(raw)
					assert.NoError(t, err, "target %s does not parse: %s", str(tm["refId"]), raw)
					for _, v := range varNames(string(raw)) {
						if !strings.HasPrefix(v, "__") && v != "datasource" {
							assert.True(t, defined[v], "target uses $%s, which the dashboard does not define", v)
						}
					}
				}
			})
		}
	}
}

func assertOurDataSource(t *testing.T, ds any, what string) {
	t.Helper()
	m := obj(ds)
	if !assert.NotNil(t, m, "%s missing", what) {
		return
	}
	uid := str(m["uid"])
	assert.True(t, uid == datasourceVar || uid == provisionedUID, "%s uid %q: want %s or %s", what, uid, datasourceVar, provisionedUID)
	if typ, ok := m["type"]; ok {
		assert.Equal(t, pluginID, typ, "%s type", what)
	}
}

func TestVariablesAreValuesQueries(t *testing.T) {
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			vars := variables(d)
			require.NotEmpty(t, vars)
			var sawDatasource, sawQuery bool
			for _, v := range vars {
				switch str(v["type"]) {
				case "datasource":
					sawDatasource = true
					assert.Equal(t, "datasource", str(v["name"]), "the data source variable's name")
					assert.Equal(t, pluginID, str(v["query"]), "data source variable type")
				case "query":
					sawQuery = true
					name := str(v["name"])
					assertOurDataSource(t, v["datasource"], "variable "+name+" datasource")
					assert.Equal(t, true, v["multi"], "variable %s multi-value", name)
					assert.Equal(t, true, v["includeAll"], "variable %s includeAll", name)
					assert.NotEmpty(t, str(v["definition"]), "variable %s definition", name)
					q := obj(v["query"])
					require.NotNil(t, q, "variable %s: query must be the plugin's query object", name)
					assert.Equal(t, "values", str(q["queryType"]), "variable %s queryType", name)
					raw, _ := json.Marshal(q)
					parsed, err := kpi.ParseQuery(raw)
					if assert.NoError(t, err, "variable %s query %s", name, raw) {
						assert.NotEmpty(t, parsed.Dimension, "variable %s dimension", name)
					}
					for _, ref := range varNames(string(raw)) {
						assert.NotEqual(t, name, ref, "variable %s filters on itself", name)
					}
				default:
					t.Errorf("variable %s has type %s; want datasource or query", str(v["name"]), str(v["type"]))
				}
			}
			assert.True(t, sawDatasource, "no data source variable")
			assert.True(t, sawQuery, "no query variables")
		})
	}
}

// ---------------------------------------------------------------- provisioning

func TestProvisioningFilesParse(t *testing.T) {
	files := provisioningFiles(t)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			require.Contains(t, []string{".yaml", ".yml"}, filepath.Ext(f), "only YAML under provisioning/")
			m := loadYAML(t, f)
			assert.EqualValues(t, 1, m["apiVersion"], "apiVersion")
		})
	}
}

func TestProvisionedDataSource(t *testing.T) {
	m := loadYAML(t, "provisioning/datasources/blueticks.yaml")
	dss := list(m["datasources"])
	require.Len(t, dss, 1)
	ds := obj(dss[0])
	assert.Equal(t, "Blue Ticks (demo)", ds["name"])
	assert.Equal(t, provisionedUID, ds["uid"])
	assert.Equal(t, pluginID, ds["type"])
	assert.Equal(t, true, ds["isDefault"])
	jd := obj(ds["jsonData"])
	require.NotNil(t, jd)
	sp, ok := jd["storePath"]
	assert.True(t, ok, "jsonData.storePath")
	assert.Equal(t, "", sp, "storePath empty: the embedded demo store")
}

func TestProvisionedDashboards(t *testing.T) {
	m := loadYAML(t, "provisioning/dashboards/blueticks.yaml")
	providers := list(m["providers"])
	require.Len(t, providers, 1)
	p := obj(providers[0])
	assert.Equal(t, "file", p["type"])
	assert.NotEmpty(t, str(obj(p["options"])["path"]), "options.path")
}

type alertRule struct {
	group, folder string
	interval      string
	rule          map[string]any
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	m := loadYAML(t, "provisioning/alerting/blueticks-alerts.yaml")
	var out []alertRule
	for _, g := range list(m["groups"]) {
		gm := obj(g)
		for _, r := range list(gm["rules"]) {
			out = append(out, alertRule{group: str(gm["name"]), folder: str(gm["folder"]), interval: str(gm["interval"]), rule: obj(r)})
		}
	}
	require.NotEmpty(t, out, "no alert rules")
	return out
}

func TestAlertRules(t *testing.T) {
	panelsByDashboard := map[string]map[string]bool{}
	for _, d := range loadDashboards(t) {
		ids := map[string]bool{}
		for _, p := range panels(d) {
			ids[fmt.Sprint(p["id"])] = true
		}
		panelsByDashboard[d.uid()] = ids
	}
	uids := map[string]bool{}
	for _, ar := range alertRules(t) {
		r := ar.rule
		t.Run(str(r["uid"]), func(t *testing.T) {
			assert.Equal(t, "Blue Ticks", ar.folder, "folder")
			assert.Equal(t, "1m", ar.interval, "group interval")
			assert.NotEmpty(t, str(r["uid"]))
			assert.False(t, uids[str(r["uid"])], "uid used twice")
			uids[str(r["uid"])] = true
			assert.NotEmpty(t, str(r["title"]))
			assert.Equal(t, "OK", r["noDataState"])
			assert.Equal(t, "Error", r["execErrState"])
			pending, err := time.ParseDuration(str(r["for"]))
			if assert.NoError(t, err, "for") {
				assert.LessOrEqual(t, pending, time.Hour, "pending period")
			}
			ann := obj(r["annotations"])
			assert.NotEmpty(t, str(ann["summary"]), "summary annotation")
			assert.NotEmpty(t, str(ann["description"]), "description annotation")
			if dash := str(ann["__dashboardUid__"]); dash != "" {
				ids, ok := panelsByDashboard[dash]
				if assert.True(t, ok, "__dashboardUid__ %s is no dashboard", dash) {
					assert.True(t, ids[str(ann["__panelId__"])], "__panelId__ %s not in %s", ann["__panelId__"], dash)
				}
			}

			refs := map[string]bool{}
			var sawDS, sawExpr bool
			for _, q := range list(r["data"]) {
				qm := obj(q)
				ref := str(qm["refId"])
				refs[ref] = true
				model := obj(qm["model"])
				switch str(qm["datasourceUid"]) {
				case provisionedUID:
					sawDS = true
					rr := obj(qm["relativeTimeRange"])
					from, _ := rr["from"].(int)
					to, _ := rr["to"].(int)
					assert.Greater(t, to, 0, "%s: the window must end before now (relativeTimeRange.to > 0)", ref)
					assert.Greater(t, from, to, "%s: relativeTimeRange", ref)
					raw, _ := json.Marshal(model)
					parsed, err := kpi.ParseQuery(raw)
					if assert.NoError(t, err, "%s: %s", ref, raw) {
						assert.Contains(t, []string{"timeseries", "table"}, parsed.QueryType, "%s queryType", ref)
					}
					assert.Empty(t, varNames(string(raw)), "%s: alert queries cannot use dashboard variables", ref)
				case expressionUID:
					sawExpr = true
					assert.Contains(t, []string{"math", "reduce", "threshold", "classic_conditions", "resample"}, str(model["type"]), "%s expression type", ref)
				default:
					t.Errorf("%s: datasourceUid %q; want %s or %s", ref, qm["datasourceUid"], provisionedUID, expressionUID)
				}
			}
			assert.True(t, sawDS && sawExpr, "a rule needs plugin queries and expressions")
			assert.True(t, refs[str(r["condition"])], "condition %s is not a refId", r["condition"])
		})
	}
}

// ---------------------------------------------------------------- through the real plugin

// liveQuery is one query sent to the plugin.
type liveQuery struct {
	name     string
	model    map[string]any
	from, to time.Time
	// alert: numbers must be labelled by these dimensions.
	labels []string
}

func parseRelative(t *testing.T, s string, now time.Time) time.Time {
	t.Helper()
	if s == "now" {
		return now
	}
	require.True(t, strings.HasPrefix(s, "now-"), "time %q", s)
	spec := strings.TrimPrefix(s, "now-")
	if strings.HasSuffix(spec, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(spec, "d"))
		require.NoError(t, err)
		return now.Add(-time.Duration(n) * 24 * time.Hour)
	}
	d, err := time.ParseDuration(spec)
	require.NoError(t, err)
	return now.Add(-d)
}

// grafanaInterval is the interval Grafana's frontend computes for a panel: range / max
// data points, at least a minute for these dashboards.
func grafanaInterval(rng time.Duration, maxDataPoints int64) time.Duration {
	iv := rng / time.Duration(maxDataPoints)
	if iv < time.Minute {
		iv = time.Minute
	}
	return iv.Truncate(time.Second)
}

const maxDataPoints = 1000

func dashboardQueries(t *testing.T, now time.Time) []liveQuery {
	var out []liveQuery
	for _, d := range loadDashboards(t) {
		tm := obj(d.json["time"])
		from, to := parseRelative(t, str(tm["from"]), now), parseRelative(t, str(tm["to"]), now)
		iv := grafanaInterval(to.Sub(from), maxDataPoints)
		for _, v := range variables(d) {
			if str(v["type"]) != "query" {
				continue
			}
			where := fmt.Sprintf("%s variable %s", d.file, str(v["name"]))
			out = append(out, liveQuery{name: where, model: withAllSelected(t, where, obj(v["query"]), to.Sub(from), iv), from: from, to: to})
		}
		for _, p := range panels(d) {
			for _, tg := range list(p["targets"]) {
				tm := obj(tg)
				where := fmt.Sprintf("%s panel %v %q target %s", d.file, p["id"], str(p["title"]), str(tm["refId"]))
				out = append(out, liveQuery{name: where, model: withAllSelected(t, where, tm, to.Sub(from), iv), from: from, to: to})
			}
		}
	}
	return out
}

func alertQueries(t *testing.T, now time.Time) []liveQuery {
	var out []liveQuery
	for _, ar := range alertRules(t) {
		for _, q := range list(ar.rule["data"]) {
			qm := obj(q)
			if str(qm["datasourceUid"]) != provisionedUID {
				continue
			}
			rr := obj(qm["relativeTimeRange"])
			from, _ := rr["from"].(int)
			to, _ := rr["to"].(int)
			model := obj(qm["model"])
			var labels []string
			for _, g := range list(model["groupBy"]) {
				labels = append(labels, str(g))
			}
			out = append(out, liveQuery{
				name:   fmt.Sprintf("alert %s query %s", str(ar.rule["uid"]), str(qm["refId"])),
				model:  withAllSelected(t, "alert", model, time.Duration(from-to)*time.Second, time.Minute),
				from:   now.Add(-time.Duration(from) * time.Second),
				to:     now.Add(-time.Duration(to) * time.Second),
				labels: labels,
			})
		}
	}
	return out
}

func request(q liveQuery) *backend.QueryDataRequest {
	raw, _ := json.Marshal(q.model)
	rng := q.to.Sub(q.from)
	// The harness fills the plugin context with the provisioned demo data source's settings.
	return &backend.QueryDataRequest{
		Queries: []backend.DataQuery{{
			RefID:         "A",
			QueryType:     str(q.model["queryType"]),
			JSON:          raw,
			TimeRange:     backend.TimeRange{From: q.from, To: q.to},
			Interval:      grafanaInterval(rng, maxDataPoints),
			MaxDataPoints: maxDataPoints,
		}},
	}
}

// TestQueriesAnswerThroughThePlugin sends every panel target, variable query and alert
// rule query to the plugin binary (started the way Grafana starts it) on the demo store.
func TestQueriesAnswerThroughThePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the plugin binary")
	}
	now := time.Now().UTC().Truncate(time.Second)
	client := harness.Plugin(t)

	run := func(t *testing.T, q liveQuery) data.Frames {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		resp, err := client.QueryData(ctx, request(q))
		require.NoError(t, err)
		r, ok := resp.Responses["A"]
		require.True(t, ok, "no response for refId A")
		require.NoError(t, r.Error, "query %s", mustJSON(q.model))
		require.NotEmpty(t, r.Frames, "no frames for %s", mustJSON(q.model))
		return r.Frames
	}

	for _, q := range dashboardQueries(t, now) {
		t.Run(q.name, func(t *testing.T) {
			frames := run(t, q)
			assert.True(t, hasNonNullValue(frames), "no non-null value in any frame for %s", mustJSON(q.model))
		})
	}
	for _, q := range alertQueries(t, busyHour(now)) {
		t.Run(q.name, func(t *testing.T) {
			frames := run(t, q)
			assertAlertable(t, frames, q.labels)
		})
	}
}

// busyHour is the latest weekday noon (UTC) at or before now, where the alert rules' windows
// are evaluated. The demo store follows a business's day (pkg/demo: quiet nights and
// weekends), so a one-hour window ending at 5 a.m. on a Sunday may hold no delivery at
// all, and a rate rightly answers null there: with the wall clock's hour the test failed
// at night.
func busyHour(now time.Time) time.Time {
	t := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC)
	for t.After(now) || t.Weekday() == time.Saturday || t.Weekday() == time.Sunday {
		t = t.AddDate(0, 0, -1)
	}
	return t
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// hasNonNullValue: some field other than the time axis has a non-null value.
func hasNonNullValue(frames data.Frames) bool {
	for _, f := range frames {
		for _, field := range f.Fields {
			if field.Type().Time() {
				continue
			}
			for i := 0; i < field.Len(); i++ {
				if v, ok := field.ConcreteAt(i); ok && v != nil {
					return true
				}
			}
		}
	}
	return false
}

// assertAlertable checks what Grafana's alerting needs: numeric fields with at least one
// value, and each row/series identified by the grouping dimensions (a label on the field of
// a time series, or a string column of a table).
func assertAlertable(t *testing.T, frames data.Frames, dims []string) {
	t.Helper()
	var numeric, nonNull int
	for _, f := range frames {
		var strCols []string
		for _, field := range f.Fields {
			if field.Type() == data.FieldTypeString || field.Type() == data.FieldTypeNullableString {
				strCols = append(strCols, field.Name)
			}
		}
		for _, field := range f.Fields {
			if !field.Type().Numeric() {
				continue
			}
			numeric++
			for _, d := range dims {
				_, labelled := field.Labels[d]
				assert.True(t, labelled || slices.Contains(strCols, d),
					"numeric field %s of frame %q is not labelled by %s (labels %v, string columns %v)", field.Name, f.Name, d, field.Labels, strCols)
			}
			for i := 0; i < field.Len(); i++ {
				if v, ok := field.ConcreteAt(i); ok && v != nil {
					nonNull++
				}
			}
		}
		if f.TimeSeriesSchema().Type == data.TimeSeriesTypeNot {
			n := 0
			for _, field := range f.Fields {
				if field.Type().Numeric() {
					n++
				}
			}
			assert.Equal(t, 1, n, "a table for alerting needs exactly one numeric column (frame %q)", f.Name)
		}
	}
	assert.Positive(t, numeric, "no numeric field")
	assert.Positive(t, nonNull, "every value is null")
}

// ---------------------------------------------------------------- the panels the dashboards promise

// TestRequiredPanels: each KPI shape is shown with the panel that fits it (issue 3).
func TestRequiredPanels(t *testing.T) {
	type found struct{ dashboard, title string }
	var all []struct {
		d dashboard
		p map[string]any
	}
	for _, d := range loadDashboards(t) {
		for _, p := range panels(d) {
			all = append(all, struct {
				d dashboard
				p map[string]any
			}{d, p})
		}
	}
	first := func(p map[string]any) map[string]any { return obj(list(p["targets"])[0]) }
	strs := func(v any) []string {
		var out []string
		for _, x := range list(v) {
			out = append(out, str(x))
		}
		return out
	}
	cases := []struct {
		name  string
		match func(p map[string]any) bool
		check func(t *testing.T, p map[string]any)
	}{
		{"stat with sparkline and thresholds", func(p map[string]any) bool {
			return str(p["type"]) == "stat" && str(obj(p["options"])["graphMode"]) == "area"
		}, nil},
		{"funnel as bar gauge or bar chart", func(p map[string]any) bool {
			return (str(p["type"]) == "bargauge" || str(p["type"]) == "barchart") && str(first(p)["queryType"]) == "funnel"
		}, nil},
		{"peak hours: hour of day × weekday", func(p map[string]any) bool {
			g := strs(first(p)["groupBy"])
			return slices.Contains(g, "hour_of_day") && slices.Contains(g, "day_of_week")
		}, nil},
		{"retention cohort table", func(p map[string]any) bool {
			return str(p["type"]) == "table" && str(first(p)["queryType"]) == "retention"
		}, nil},
		{"A/B with intervals", func(p map[string]any) bool {
			return str(first(p)["queryType"]) == "ab"
		}, nil},
		{"agent leaderboard", func(p map[string]any) bool {
			return str(p["type"]) == "table" && slices.Contains(strs(first(p)["groupBy"]), "agent_id")
		}, nil},
		{"quality rating state timeline", func(p map[string]any) bool {
			return str(p["type"]) == "state-timeline" && slices.Contains(strs(first(p)["metrics"]), "quality_rating")
		}, func(t *testing.T, p map[string]any) {
			want := map[string][2]string{"0": {"GREEN", "green"}, "1": {"YELLOW", "yellow"}, "2": {"RED", "red"}}
			opts := obj(obj(list(obj(obj(p["fieldConfig"])["defaults"])["mappings"])[0])["options"])
			for k, w := range want {
				m := obj(opts[k])
				assert.Equal(t, w[0], m["text"], "mapping %s", k)
				assert.Equal(t, w[1], m["color"], "mapping %s colour", k)
			}
		}},
		{"failures by error code with the code's meaning", func(p map[string]any) bool {
			return str(p["type"]) == "table" && slices.Contains(strs(first(p)["groupBy"]), "error_code")
		}, func(t *testing.T, p map[string]any) {
			var mapped map[string]any
			for _, o := range list(obj(p["fieldConfig"])["overrides"]) {
				om := obj(o)
				if str(obj(om["matcher"])["options"]) != "error_code" {
					continue
				}
				for _, pr := range list(om["properties"]) {
					if str(obj(pr)["id"]) == "mappings" {
						mapped = obj(obj(list(obj(pr)["value"])[0])["options"])
					}
				}
			}
			for _, code := range []string{"131026", "131047", "131049", "131050", "130472", "131000", "131042", "131051", "131053", "131056", "470"} {
				assert.NotEmpty(t, str(obj(mapped[code])["text"]), "error code %s has no meaning mapped", code)
			}
		}},
		{"bar gauge breakdown", func(p map[string]any) bool { return str(p["type"]) == "bargauge" }, nil},
		{"bar chart breakdown", func(p map[string]any) bool { return str(p["type"]) == "barchart" }, nil},
		{"time series", func(p map[string]any) bool { return str(p["type"]) == "timeseries" }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hits []found
			for _, x := range all {
				if str(x.p["type"]) == "row" || len(list(x.p["targets"])) == 0 || !c.match(x.p) {
					continue
				}
				hits = append(hits, found{x.d.file, str(x.p["title"])})
				if c.check != nil {
					c.check(t, x.p)
				}
			}
			assert.NotEmpty(t, hits, "no panel is a %s", c.name)
		})
	}
}

// TestPanelsAcceptTheirFilters sets every variable of a dashboard to real values (the first
// two its values query returns) and sends every panel query again: each must be answered
// without error (possibly with no data), so every filter a panel carries is one its
// metrics can take. With All selected (the test above) no filter reaches the plugin.
func TestPanelsAcceptTheirFilters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the plugin binary")
	}
	now := time.Now().UTC().Truncate(time.Second)
	client := harness.Plugin(t)
	query := func(t *testing.T, model map[string]any, from, to time.Time) backend.DataResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		resp, err := client.QueryData(ctx, request(liveQuery{model: model, from: from, to: to}))
		require.NoError(t, err)
		return resp.Responses["A"]
	}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			tm := obj(d.json["time"])
			from, to := parseRelative(t, str(tm["from"]), now), parseRelative(t, str(tm["to"]), now)
			iv := grafanaInterval(to.Sub(from), maxDataPoints)
			sel := map[string][]string{}
			for _, v := range variables(d) {
				if str(v["type"]) != "query" {
					continue
				}
				r := query(t, withAllSelected(t, "variable", obj(v["query"]), to.Sub(from), iv), from, to)
				require.NoError(t, r.Error, "variable %s", str(v["name"]))
				for _, f := range r.Frames {
					for _, field := range f.Fields {
						for i := 0; i < field.Len() && len(sel[str(v["name"])]) < 2; i++ {
							if val, ok := field.ConcreteAt(i); ok {
								if s, _ := val.(string); s != "" {
									sel[str(v["name"])] = append(sel[str(v["name"])], s)
								}
							}
						}
					}
				}
				require.NotEmpty(t, sel[str(v["name"])], "variable %s has no values on the demo store", str(v["name"]))
			}
			t.Logf("selection: %v", sel)
			for _, p := range panels(d) {
				for _, tg := range list(p["targets"]) {
					where := fmt.Sprintf("panel %v %q", p["id"], str(p["title"]))
					model := withSelection(t, where, obj(tg), sel, to.Sub(from), iv)
					r := query(t, model, from, to)
					assert.NoError(t, r.Error, "%s: %s", where, mustJSON(model))
				}
			}
		})
	}
}
