//go:build e2e

// Package e2e runs the plugin inside a real Grafana server (headless, built from the Go
// module proxy by scripts/grafana/get-grafana.sh) with the repository's provisioning, and
// checks through Grafana's HTTP API what a user would see: data source health, the
// provisioned dashboards, every panel query, and the alert rules. Run it with scripts/e2e.sh
// (it builds the plugin first); `go test ./...` skips it (build tag e2e).
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/tests/harness"
)

const (
	pluginID       = "blueticks-whatsapp-datasource"
	provisionedUID = "blueticks-demo"
)

// repoRoot is the module root (the harness finds it from its own source file).
func repoRoot(t *testing.T) string {
	t.Helper()
	return harness.RepoRoot()
}

// grafana is one running server.
type grafana struct {
	url  string
	dir  string
	http *http.Client
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startGrafana stages the plugin and a copy of provisioning/ (stage.sh, with stageArgs)
// in a temporary directory and starts Grafana on it; it is stopped when the test ends.
func startGrafana(t *testing.T, stageArgs ...string) *grafana {
	t.Helper()
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "dist", "gpx_blueticks_linux_amd64")); err != nil {
		t.Fatalf("dist/gpx_blueticks_linux_amd64 is missing: run scripts/e2e.sh, which builds the plugin first")
	}
	dir := t.TempDir()
	stage := exec.Command(filepath.Join(root, "scripts/grafana/stage.sh"), append([]string{dir}, stageArgs...)...)
	stage.Stderr = os.Stderr
	require.NoError(t, stage.Run(), "stage.sh")

	g := &grafana{dir: dir, http: &http.Client{Timeout: 3 * time.Minute}}
	g.run(t)
	t.Cleanup(func() {
		if t.Failed() {
			dumpLog(t, dir)
		}
		g.stop(t)
	})
	return g
}

// run starts Grafana on the staged directory (run-grafana.sh) and waits for it.
func (g *grafana) run(t *testing.T) {
	t.Helper()
	began := time.Now()
	run := exec.Command(filepath.Join(repoRoot(t), "scripts/grafana/run-grafana.sh"),
		filepath.Join(g.dir, "plugins"), filepath.Join(g.dir, "provisioning"), filepath.Join(g.dir, "data"), strconv.Itoa(freePort(t)))
	run.Stderr = os.Stderr
	out, err := run.Output()
	if err != nil {
		dumpLog(t, g.dir)
	}
	require.NoError(t, err, "run-grafana.sh")
	g.url = strings.TrimSpace(string(out))
	t.Logf("Grafana at %s after %s (including the cached Grafana build check)", g.url, time.Since(began).Round(time.Millisecond))
}

// restart stops Grafana (SIGTERM, as systemd does) and starts it again on the same data.
func (g *grafana) restart(t *testing.T) {
	t.Helper()
	g.stop(t)
	g.run(t)
}

func (g *grafana) stop(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(g.dir, "data", "grafana.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("Grafana pid %d did not stop in 10 s; killing it", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func dumpLog(t *testing.T, dir string) {
	raw, err := os.ReadFile(filepath.Join(dir, "data", "grafana.log"))
	if err != nil {
		return
	}
	lines := strings.Split(string(raw), "\n")
	var keep []string
	for _, l := range lines {
		if strings.Contains(l, "level=error") || (strings.Contains(l, "level=warn") && strings.Contains(l, "blueticks")) {
			keep = append(keep, l)
		}
	}
	if len(keep) > 60 {
		keep = keep[len(keep)-60:]
	}
	t.Logf("grafana.log (errors, warnings, plugin lines):\n%s", strings.Join(keep, "\n"))
}

// do sends a request with basic auth and decodes a JSON answer into out (when not nil).
func (g *grafana) do(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, g.url+path, rd)
	require.NoError(t, err)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := g.http.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, out), "%s %s answered %d: %s", method, path, resp.StatusCode, truncate(raw))
	}
	return resp.StatusCode
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// ---------------------------------------------------------------- alert rules API

type promRule struct {
	Name           string            `json:"name"`
	State          string            `json:"state"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	Labels         map[string]string `json:"labels"`
	Alerts         []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		State       string            `json:"state"`
	} `json:"alerts"`
}

func (g *grafana) rules(t *testing.T) map[string]promRule {
	t.Helper()
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Name  string     `json:"name"`
				File  string     `json:"file"`
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	code := g.do(t, http.MethodGet, "/api/prometheus/grafana/api/v1/rules", nil, &resp)
	require.Equal(t, http.StatusOK, code)
	out := map[string]promRule{}
	for _, gr := range resp.Data.Groups {
		for _, r := range gr.Rules {
			out[r.Name] = r
		}
	}
	return out
}

// waitRules polls the rules until cond holds for every rule named, or fails after timeout.
func (g *grafana) waitRules(t *testing.T, names []string, timeout time.Duration, cond func(promRule) bool) map[string]promRule {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rules := g.rules(t)
		ok := true
		for _, n := range names {
			r, found := rules[n]
			if !found || !cond(r) {
				ok = false
			}
		}
		if ok {
			return rules
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(rules, "", "  ")
			t.Fatalf("rules did not reach the expected state in %s:\n%s", timeout, b)
		}
		time.Sleep(2 * time.Second)
	}
}

func fmtLabels(l map[string]string) string { b, _ := json.Marshal(l); return string(b) }

var _ = fmt.Sprintf
