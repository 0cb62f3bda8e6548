//go:build mage

// Magefile builds the backend into dist/. Run it with `go run github.com/magefile/mage`
// (no install needed); `mage -l` lists the targets.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"github.com/grafana/grafana-plugin-sdk-go/build"
	"github.com/magefile/mage/mg"
)

// crossCompilers are the C compilers used for other targets (DuckDB needs cgo); override
// with BLUETICKS_CC_<GOOS>_<GOARCH>.
var crossCompilers = map[string]string{
	"linux/arm64":   "aarch64-linux-gnu-gcc",
	"windows/amd64": "x86_64-w64-mingw32-gcc",
	"darwin/amd64":  "o64-clang",
	"darwin/arm64":  "oa64-clang",
}

func init() {
	// One callback switches cgo on for every build. Linux binaries are linked statically so
	// they run on the Alpine (musl) based Grafana image: DuckDB loads nothing at run time
	// when no extension is installed.
	_ = build.SetBeforeBuildCallback(func(cfg build.Config) (build.Config, error) {
		if cfg.Env == nil {
			cfg.Env = map[string]string{}
		}
		cfg.PluginJSONPath = "." // plugin.json lives at the top level
		cfg.EnableCGo = true
		cfg.Env["CGO_ENABLED"] = "1"
		if cfg.OS == "linux" {
			cfg.Env["CGO_LDFLAGS"] = "-static"
		}
		target := cfg.OS + "/" + cfg.Arch
		if cfg.OS != "" && target != runtime.GOOS+"/"+runtime.GOARCH {
			cc := os.Getenv("BLUETICKS_CC_" + cfg.OS + "_" + cfg.Arch)
			if cc == "" {
				cc = crossCompilers[target]
			}
			if cc == "" {
				return cfg, fmt.Errorf("no C cross-compiler known for %s (set BLUETICKS_CC_%s_%s)", target, cfg.OS, cfg.Arch)
			}
			if _, err := exec.LookPath(cc); err != nil {
				return cfg, fmt.Errorf("building for %s needs the C cross-compiler %s (DuckDB is a C++ library): %w", target, cc, err)
			}
			cfg.Env["CC"] = cc
		}
		return cfg, nil
	})
}

// Default builds the backend for this machine into dist/gpx_blueticks_<os>_<arch>.
var Default = Backend

// Backend builds the backend for this machine.
func Backend() error {
	return build.Build{}.Custom(runtime.GOOS, runtime.GOARCH)
}

// All builds every platform whose cross-compiler is installed, and says which were skipped.
func All() error {
	var built, skipped []string
	for _, t := range [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}} {
		if err := (build.Build{}).Custom(t[0], t[1]); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s/%s (%v)", t[0], t[1], err))
			continue
		}
		built = append(built, t[0]+"/"+t[1])
	}
	fmt.Println("built:", built)
	for _, s := range skipped {
		fmt.Println("skipped:", s)
	}
	if len(built) == 0 {
		return fmt.Errorf("nothing built")
	}
	return nil
}

// Test runs the Go tests.
func Test() error { return build.Test() }

// Clean removes dist/.
func Clean() error { return build.Clean() }

var _ = mg.Deps
