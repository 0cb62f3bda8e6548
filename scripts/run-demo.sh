#!/usr/bin/env bash
# scripts/run-demo.sh [--no-frontend] [--no-build] [--stop]
#
# The Blue Ticks demo without Docker: builds the plugin (backend through the Magefile,
# frontend with npm), builds a headless Grafana from the Go module proxy once
# (scripts/grafana/get-grafana.sh, cached), starts it on 127.0.0.1 with the plugin, the
# provisioned "Blue Ticks (demo)" data source on the embedded demo store, the six
# dashboards and the alert rules, waits for health, and prints the URL and the dashboards.
# With a Docker engine, `docker compose up` (docker-compose.yaml) does the same with the
# official Grafana image and its web UI.
#
# Environment:
#   BLUETICKS_CACHE     cache root (default $HOME/.cache/blueticks): Grafana build, demo run dir
#   BLUETICKS_DEMO_DIR  where the plugins, provisioning and Grafana data go (default $BLUETICKS_CACHE/demo)
#   PORT                Grafana's port on 127.0.0.1 (default 3000)
#   BLUETICKS_STORE     a store path to use instead of the embedded demo store
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${BLUETICKS_CACHE:-$HOME/.cache/blueticks}
RUN=${BLUETICKS_DEMO_DIR:-$CACHE/demo}
PORT=${PORT:-3000}
BUILD=1 FRONTEND_FLAG=""
say() { echo "run-demo: $*" >&2; }

for arg in "$@"; do
  case $arg in
    --no-frontend) FRONTEND_FLAG=--no-frontend ;;
    --no-build) BUILD=0 ;;
    --stop)
      if [[ -f $RUN/data/grafana.pid ]] && kill -0 "$(cat "$RUN/data/grafana.pid")" 2> /dev/null; then
        kill "$(cat "$RUN/data/grafana.pid")" && say "stopped Grafana (pid $(cat "$RUN/data/grafana.pid"))"
      else
        say "no demo Grafana running from $RUN"
      fi
      exit 0 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) say "unknown option $arg"; exit 2 ;;
  esac
done

if [[ -f $RUN/data/grafana.pid ]] && kill -0 "$(cat "$RUN/data/grafana.pid")" 2> /dev/null; then
  say "stopping the previous demo Grafana (pid $(cat "$RUN/data/grafana.pid"))"
  kill "$(cat "$RUN/data/grafana.pid")"
  for _ in $(seq 1 50); do kill -0 "$(cat "$RUN/data/grafana.pid")" 2> /dev/null || break; sleep 0.2; done
fi

export BLUETICKS_CACHE=$CACHE
(( BUILD )) && "$ROOT/scripts/grafana/build-plugin.sh" $FRONTEND_FLAG
"$ROOT/scripts/grafana/get-grafana.sh" > /dev/null

stage_args=()
[[ -n ${BLUETICKS_STORE:-} ]] && stage_args+=(--store "$BLUETICKS_STORE")
"$ROOT/scripts/grafana/stage.sh" "$RUN" "${stage_args[@]}" > /dev/null
rm -rf "$RUN/data"
URL=$("$ROOT/scripts/grafana/run-grafana.sh" "$RUN/plugins" "$RUN/provisioning" "$RUN/data" "$PORT")

# The dashboards as Grafana provisioned them (waits for the file provider's first scan).
auth=(-u admin:admin -fsS -m 5)
dashboards=""
for _ in $(seq 1 50); do
  dashboards=$(curl "${auth[@]}" "$URL/api/search?type=dash-db&tag=blueticks" 2> /dev/null \
    | jq -r '.[] | "\(.title)\t\(.url)"' 2> /dev/null || true)
  [[ $(grep -c . <<< "$dashboards") -ge 6 ]] && break
  sleep 0.2
done
health=$(curl -u admin:admin -fsS -m 120 "$URL/api/datasources/uid/blueticks-demo/health" 2> /dev/null | jq -r '"\(.status): \(.message)"' 2> /dev/null || echo "no answer")

echo
echo "Grafana $URL  (admin / admin; headless: HTTP API only, no web UI)"
echo "Data source \"Blue Ticks (demo)\" health: $health"
echo "Dashboards:"
if [[ -n $dashboards ]]; then
  while IFS=$'\t' read -r title path; do printf '  %-28s %s%s\n' "$title" "$URL" "$path"; done <<< "$dashboards"
else
  echo "  (none provisioned yet; see $RUN/data/grafana.log)"
fi
echo "Alert rules: $URL/api/prometheus/grafana/api/v1/rules"
echo "Log: $RUN/data/grafana.log    Stop: scripts/run-demo.sh --stop"
