#!/usr/bin/env bash
# scripts/grafana/build-plugin.sh [--no-frontend]
#
# Builds the plugin into dist/: the backend (dist/gpx_blueticks_linux_amd64, through the
# Magefile when there is one, otherwise the same go build) and the frontend
# (npm ci when node_modules is missing or older than package-lock.json, then npm run build).
# --no-frontend (or BLUETICKS_NO_FRONTEND=1) skips the frontend: the headless Grafana of
# scripts/grafana/ has no web UI and only needs plugin.json and the backend binary.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FRONTEND=1
[[ ${1:-} == --no-frontend || ${BLUETICKS_NO_FRONTEND:-0} == 1 ]] && FRONTEND=0
say() { echo "build-plugin: $*" >&2; }
cd "$ROOT"

began=$(date +%s)
if [[ -f Magefile.go ]]; then
  say "backend: go run github.com/magefile/mage (default target)"
  go run github.com/magefile/mage >&2
else
  say "backend: no Magefile.go yet, plain go build ./pkg (cgo, linked for this machine)"
  mkdir -p dist
  CGO_ENABLED=1 go build -o dist/gpx_blueticks_linux_amd64 ./pkg >&2
fi
[[ -x dist/gpx_blueticks_linux_amd64 ]] || { say "dist/gpx_blueticks_linux_amd64 was not built"; exit 1; }
say "backend built in $(( $(date +%s) - began )) s"

if (( FRONTEND )); then
  began=$(date +%s)
  if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
    say "frontend: npm ci"
    npm ci --no-audit --no-fund >&2
  fi
  say "frontend: npm run build"
  npm run build >&2
  say "frontend built in $(( $(date +%s) - began )) s"
fi
[[ -f dist/plugin.json ]] || cp plugin.json dist/plugin.json
