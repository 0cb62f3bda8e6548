#!/usr/bin/env bash
# scripts/e2e.sh [go test flags...]
#
# End-to-end tests: builds the plugin backend (scripts/grafana/build-plugin.sh --no-frontend;
# the headless Grafana serves no web UI), builds the headless Grafana once
# (scripts/grafana/get-grafana.sh, cached in ${BLUETICKS_CACHE:-$HOME/.cache/blueticks}), then
# runs the Go tests of tests/e2e (build tag e2e), which start Grafana on 127.0.0.1 with the
# plugin and the provisioning and check it through Grafana's HTTP API.
# E2E_FRONTEND=1 builds the frontend too.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ ${E2E_FRONTEND:-0} == 1 ]]; then
  scripts/grafana/build-plugin.sh
else
  scripts/grafana/build-plugin.sh --no-frontend
fi
began=$(date +%s)
scripts/grafana/get-grafana.sh > /dev/null
echo "e2e: Grafana ready after $(( $(date +%s) - began )) s" >&2
exec go test -tags e2e -count=1 -timeout 20m "$@" ./tests/e2e/
