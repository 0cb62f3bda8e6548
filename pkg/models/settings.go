// Package models holds the data source's typed settings, decoded and validated once when
// Grafana creates an instance.
package models

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
)

// Settings are a data source's jsonData plus its secrets.
type Settings struct {
	// StorePath names the store: a Blue Ticks store directory, a DuckDB file or Parquet
	// files. Empty means the embedded demo store.
	StorePath            string `json:"storePath"`
	QueryTimeoutSeconds  int    `json:"queryTimeoutSeconds"`
	MemoryLimitMB        int    `json:"memoryLimitMB"`
	BuildMemoryLimitMB   int    `json:"buildMemoryLimitMB"`
	Threads              int    `json:"threads"`
	MaxRows              int    `json:"maxRows"`
	MaxConcurrentQueries int    `json:"maxConcurrentQueries"`
	// DemoEvents sizes the embedded demo store (default 300000).
	DemoEvents int `json:"demoEvents"`
	// FactsDir is where the derived facts are kept across restarts of the plugin (kpi
	// Options.FactsDir): empty means DefaultFactsDir, "none" not to keep them.
	FactsDir string `json:"factsDir"`

	// Secrets never serialise.
	Secrets Secrets `json:"-"`
}

// Secrets come from secureJsonData. They never print: fmt shows "[redacted]", so a
// settings value logged or wrapped into an error by mistake does not leak them.
type Secrets struct {
	HashKey string
}

// String hides the secrets from %v and %s.
func (Secrets) String() string { return "[redacted]" }

// GoString hides the secrets from %#v.
func (Secrets) GoString() string { return "models.Secrets{[redacted]}" }

// Defaults and limits.
const (
	DefaultQueryTimeout       = 30
	DefaultMemoryLimitMB      = kpi.DefaultMemoryLimitMB      // while answering queries
	DefaultBuildMemoryLimitMB = kpi.DefaultBuildMemoryLimitMB // while building the facts in full
	DefaultMaxRows            = 100_000
	DefaultMaxConcurrent      = 4
	DefaultDemoEvents         = 300_000
	MaxQueryTimeout           = 600
	MaxMemoryLimitMB          = 1 << 20
	MaxRowsLimit              = 10_000_000
	MaxConcurrentLimit        = 64
	MaxDemoEvents             = 20_000_000
)

// FactsDirNone as factsDir: the facts are not kept across restarts.
const FactsDirNone = "none"

// KeptFactsDir is the kpi engine's FactsDir: "" when the facts are not kept.
func (s *Settings) KeptFactsDir() string {
	switch s.FactsDir {
	case FactsDirNone:
		return ""
	case "":
		exe, _ := os.Executable()
		return DefaultFactsDir(exe)
	}
	return s.FactsDir
}

// FactsDirEnv sets the default factsDir of every data source of a Grafana server: Grafana
// passes the [plugin.blueticks-whatsapp-datasource] section of its configuration to the
// plugin as GF_PLUGIN_<KEY>, so facts_dir there arrives here.
const FactsDirEnv = "GF_PLUGIN_FACTS_DIR"

// DefaultFactsDir is where the plugin whose executable is exe keeps facts when factsDir is
// empty: FactsDirEnv when set; else beside Grafana's plugins directory when the plugin is
// installed in one (<plugins>/<plugin>/<exe> gives <plugins>/../blueticks-facts, which is
// Grafana's data directory in its packages and images: /var/lib/grafana), as the
// packages run Grafana with a private /tmp that is emptied at every restart; else
// kpi.DefaultFactsDir() in the system's temporary directory.
func DefaultFactsDir(exe string) string {
	if dir := strings.TrimSpace(os.Getenv(FactsDirEnv)); dir != "" && filepath.IsAbs(dir) {
		return dir
	}
	if exe != "" {
		plugins := filepath.Dir(filepath.Dir(exe))
		if filepath.Base(plugins) == "plugins" {
			dir := filepath.Join(filepath.Dir(plugins), "blueticks-facts")
			if err := os.MkdirAll(dir, 0o700); err == nil {
				return dir
			}
		}
	}
	return kpi.DefaultFactsDir()
}

// QueryTimeout is the per-query time limit.
func (s *Settings) QueryTimeout() time.Duration {
	return time.Duration(s.QueryTimeoutSeconds) * time.Second
}

// Load decodes and validates the settings of one data source instance.
func Load(src backend.DataSourceInstanceSettings) (*Settings, error) {
	s := &Settings{}
	if len(strings.TrimSpace(string(src.JSONData))) > 0 {
		if err := json.Unmarshal(src.JSONData, s); err != nil {
			return nil, fmt.Errorf("data source settings (jsonData) are not valid: %w", err)
		}
	}
	s.StorePath = strings.TrimSpace(s.StorePath)
	s.FactsDir = strings.TrimSpace(s.FactsDir)
	if s.FactsDir != "" && s.FactsDir != FactsDirNone && !filepath.IsAbs(s.FactsDir) {
		return nil, fmt.Errorf("setting factsDir = %q is not an absolute path: name a directory such as /var/lib/grafana/blueticks-facts, leave it empty for the default, or set it to %q not to keep the facts", s.FactsDir, FactsDirNone)
	}
	s.Secrets.HashKey = src.DecryptedSecureJSONData["hashKey"]
	if err := s.applyDefaults(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Settings) applyDefaults() error {
	check := func(name string, v *int, def, max int) error {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 || *v > max:
			return fmt.Errorf("setting %s = %d is out of range (1 to %d)", name, *v, max)
		}
		return nil
	}
	for _, c := range []struct {
		name     string
		v        *int
		def, max int
	}{
		{"queryTimeoutSeconds", &s.QueryTimeoutSeconds, DefaultQueryTimeout, MaxQueryTimeout},
		{"memoryLimitMB", &s.MemoryLimitMB, DefaultMemoryLimitMB, MaxMemoryLimitMB},
		{"buildMemoryLimitMB", &s.BuildMemoryLimitMB, DefaultBuildMemoryLimitMB, MaxMemoryLimitMB},
		{"threads", &s.Threads, runtime.NumCPU(), 256},
		{"maxRows", &s.MaxRows, DefaultMaxRows, MaxRowsLimit},
		{"maxConcurrentQueries", &s.MaxConcurrentQueries, DefaultMaxConcurrent, MaxConcurrentLimit},
		{"demoEvents", &s.DemoEvents, DefaultDemoEvents, MaxDemoEvents},
	} {
		if err := check(c.name, c.v, c.def, c.max); err != nil {
			return err
		}
	}
	return nil
}
