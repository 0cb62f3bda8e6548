#!/usr/bin/env bash
# scripts/grafana/run-grafana.sh PLUGINS_DIR PROVISIONING_DIR DATA_DIR [PORT]
#
# Starts the headless Grafana built by get-grafana.sh in the background on 127.0.0.1:PORT
# (default 3000) and prints its URL on stdout once /api/health answers (progress on stderr).
# Basic auth admin:admin. Stop it with: kill "$(cat DATA_DIR/grafana.pid)"
# With GRAFANA_UI=1 it also serves Grafana's web UI (built once by get-grafana-ui.sh) and lets
# anonymous visitors in, so a browser needs no login.
#
#   PLUGINS_DIR       folder of plugin folders (plugin.json + gpx_* binary [+ module.js])
#   PROVISIONING_DIR  datasources/, dashboards/, alerting/ ... (dashboards providers need
#                     absolute paths)
#   DATA_DIR          grafana.ini, the sqlite database, grafana.log and grafana.pid
#
# Environment:
#   BLUETICKS_CACHE         build cache root (default $HOME/.cache/blueticks)
#   GRAFANA_UNSIGNED        unsigned plugin ids to allow (default: every id in PLUGINS_DIR/*/plugin.json)
#   GRAFANA_EXTRA_INI       a file appended to the generated grafana.ini
#   GRAFANA_START_TIMEOUT   seconds to wait for /api/health (default 120)
#   GRAFANA_UI=1            serve the web UI: --homepath is get-grafana-ui.sh's build
#   GRAFANA_UI_HOME         with GRAFANA_UI=1, use this already built home instead (a directory
#                           with conf/ and public/build/ of the same Grafana version)
#   GRAFANA_ANONYMOUS       with GRAFANA_UI=1, the org role of anonymous visitors: Admin
#                           (default), Editor, Viewer, or off (log in as admin:admin)
#   GF_<SECTION>_<KEY>      Grafana's own overrides
set -euo pipefail

usage="usage: run-grafana.sh PLUGINS_DIR PROVISIONING_DIR DATA_DIR [PORT]"
PLUGINS=${1:?$usage}
PROV=${2:?$usage}
DATA=${3:?$usage}
PORT=${4:-3000}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { echo "run-grafana: $*" >&2; }

BIN=$("$HERE/get-grafana.sh")
HOMEPATH=$(dirname "$(dirname "$BIN")")/src
ANONYMOUS=off
if [[ ${GRAFANA_UI:-0} == 1 ]]; then
  if [[ -n ${GRAFANA_UI_HOME:-} ]]; then
    HOMEPATH=$GRAFANA_UI_HOME
    [[ -f $HOMEPATH/public/views/index.html ]] || { say "GRAFANA_UI_HOME=$HOMEPATH has no public/views/index.html"; exit 1; }
  else
    HOMEPATH=$("$HERE/get-grafana-ui.sh")
  fi
  ANONYMOUS=${GRAFANA_ANONYMOUS:-Admin}
  case $ANONYMOUS in
    Admin | Editor | Viewer | off) ;;
    *) say "GRAFANA_ANONYMOUS is Admin, Editor, Viewer or off, not '$ANONYMOUS'"; exit 1 ;;
  esac
fi

mkdir -p "$PLUGINS" "$PROV" "$DATA"
PLUGINS=$(cd "$PLUGINS" && pwd)
PROV=$(cd "$PROV" && pwd)
DATA=$(cd "$DATA" && pwd)
# Grafana logs an error for each missing provisioning folder.
for sub in datasources dashboards alerting plugins notifiers access-control; do mkdir -p "$PROV/$sub"; done

if [[ -z ${GRAFANA_UNSIGNED:-} ]]; then
  GRAFANA_UNSIGNED=$(sed -n 's/^[[:space:]]*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$PLUGINS"/*/plugin.json 2> /dev/null \
    | sort -u | paste -sd, - || true)
fi

if [[ -f $DATA/grafana.pid ]] && kill -0 "$(cat "$DATA/grafana.pid")" 2> /dev/null; then
  say "a Grafana started with $DATA is still running (pid $(cat "$DATA/grafana.pid"))"
  exit 1
fi
if (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2> /dev/null; then
  say "127.0.0.1:$PORT is in use"
  exit 1
fi

cat > "$DATA/grafana.ini" << INI
app_mode = production
instance_name = blueticks
[paths]
data = $DATA
logs = $DATA/log
plugins = $PLUGINS
provisioning = $PROV
[server]
protocol = http
http_addr = 127.0.0.1
http_port = $PORT
root_url = http://127.0.0.1:$PORT/
[database]
type = sqlite3
[security]
admin_user = admin
admin_password = admin
disable_gravatar = true
[analytics]
reporting_enabled = false
check_for_updates = false
check_for_plugin_updates = false
feedback_links_enabled = false
[snapshots]
external_enabled = false
[news]
news_feed_enabled = false
[plugins]
allow_loading_unsigned_plugins = $GRAFANA_UNSIGNED
plugin_admin_enabled = false
[unified_alerting]
enabled = true
[alerting]
enabled = false
[live]
max_connections = 0
[log]
mode = console
level = info
INI
if [[ $ANONYMOUS != off ]]; then
  printf '[auth.anonymous]\nenabled = true\norg_name = Main Org.\norg_role = %s\n' "$ANONYMOUS" >> "$DATA/grafana.ini"
fi
if [[ -n ${GRAFANA_EXTRA_INI:-} ]]; then cat "$GRAFANA_EXTRA_INI" >> "$DATA/grafana.ini"; fi

began=$(date +%s%N)
start() {
  setsid "$BIN" server --homepath "$HOMEPATH" --config "$DATA/grafana.ini" > "$DATA/grafana.log" 2>&1 < /dev/null &
  echo $! > "$DATA/grafana.pid"
}
start

URL=http://127.0.0.1:$PORT
deadline=$(( $(date +%s) + ${GRAFANA_START_TIMEOUT:-120} ))
retried=
while (( $(date +%s) < deadline )); do
  if ! kill -0 "$(cat "$DATA/grafana.pid")" 2> /dev/null; then
    # Grafana 10.0 sometimes fails its very first start on a new database with
    # "failed to create default organization: UNIQUE constraint failed: org.id" (a race
    # in its own start-up, grafana/grafana#68644): start once more on a fresh database.
    if [[ -z $retried ]] && grep -q 'failed to create default organization' "$DATA/grafana.log"; then
      retried=1
      say "Grafana hit its default-organization start-up race; starting it once more on a fresh database"
      mv "$DATA/grafana.log" "$DATA/grafana.first-start.log"
      rm -f "$DATA/grafana.db"
      start
      continue
    fi
    say "Grafana exited; the end of $DATA/grafana.log:"
    tail -30 "$DATA/grafana.log" >&2
    exit 1
  fi
  if curl -fsS -m 2 "$URL/api/health" 2> /dev/null | grep -q '"database": *"ok"'; then
    say "up after $(( ($(date +%s%N) - began) / 1000000 )) ms (pid $(cat "$DATA/grafana.pid"), log $DATA/grafana.log, unsigned plugins allowed: ${GRAFANA_UNSIGNED:-none}, home $HOMEPATH, anonymous: $ANONYMOUS)"
    echo "$URL"
    exit 0
  fi
  sleep 0.2
done
say "no healthy answer from $URL/api/health in ${GRAFANA_START_TIMEOUT:-120} s; the end of $DATA/grafana.log:"
tail -30 "$DATA/grafana.log" >&2
kill "$(cat "$DATA/grafana.pid")" 2> /dev/null || true
exit 1
