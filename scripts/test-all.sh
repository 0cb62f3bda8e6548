#!/usr/bin/env bash
# scripts/test-all.sh: sets up and runs every test of Blue Ticks on a fresh machine with
# Debian, Go, Node and gcc (package registries only). CI runs exactly this (.ci/run).
#
#   1. backend build: the Magefile's static linux binary into dist/
#   2. frontend: npm ci, type-check, lint, jest, production build, plugin checks on dist/
#   3. Go: vet, then every Go test (KPI fixtures on real DuckDB files, the built binary over
#      the plugin protocol, the static binary in an empty root, every dashboard query)
#   4. end to end: a real Grafana server (built once from the Go module proxy) with the
#      built plugin and the provisioning: health, dashboards, panel queries, alert rules
#   5. the editors in a real browser: Grafana with its web UI (built once from the same
#      module with the npm registry) and Debian's Chromium (installed with apt-get when
#      missing) driven by Playwright: query, config and variable editors (docs/FRONTEND.md)
#
# BLUETICKS_SKIP_E2E=1 skips step 4 (it builds Grafana: ~5 minutes and ~4 GB cold).
# BLUETICKS_SKIP_BROWSER=1 skips step 5 (its Grafana UI build: ~3-4 minutes and ~3 GB of
# memory cold, then the test itself about a minute).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
step() { printf '\n== %s\n' "$*"; }

step "backend build (mage)"
go run github.com/magefile/mage 2>&1 | grep -v -e 'statically linked applications requires' -e 'in function' || true
test -x dist/gpx_blueticks_linux_amd64 || { echo "backend build failed: dist/gpx_blueticks_linux_amd64 missing"; exit 1; }

step "frontend"
npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm test
npm run build
npm run validate

step "go vet"
go vet ./pkg/... ./scripts/... ./tests/...

step "go test"
export BLUETICKS_PLUGIN_BINARY="$ROOT/dist/gpx_blueticks_linux_amd64"
export BLUETICKS_STATIC_BINARY="$ROOT/dist/gpx_blueticks_linux_amd64"
go test -count=1 -timeout 20m ./pkg/... ./scripts/... ./tests/...

if [[ ${BLUETICKS_SKIP_E2E:-0} != 1 ]]; then
  step "end to end in a real Grafana"
  "$ROOT/scripts/e2e.sh"
fi

if [[ ${BLUETICKS_SKIP_BROWSER:-0} != 1 ]]; then
  step "editors in a real browser (Grafana web UI, headless Chromium)"
  # dist/ was built above (backend, then frontend); the script does the rest
  BLUETICKS_BROWSER_NO_BUILD=1 "$ROOT/scripts/browser-e2e.sh"
fi
