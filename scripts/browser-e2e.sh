#!/usr/bin/env bash
# scripts/browser-e2e.sh [playwright test flags...]
#
# The editors in a real browser: builds the plugin (backend and frontend), builds Grafana's
# web UI once (scripts/grafana/get-grafana-ui.sh, cached in ${BLUETICKS_CACHE:-$HOME/.cache/blueticks}),
# starts Grafana with the UI on a free 127.0.0.1 port with a fresh data directory, the plugin
# and the provisioning, and runs tests/browser (Playwright driving Debian's Chromium, headless)
# against it. Grafana is stopped however the test ends. Flags go to `playwright test`
# (for example --grep config).
#
# Environment:
#   CHROMIUM_PATH               the Chromium to drive (default /usr/bin/chromium; when that is
#                               missing, Debian's chromium package is installed with apt-get,
#                               through sudo when not root)
#   BLUETICKS_BROWSER_NO_BUILD=1  use dist/ as it is (test-all.sh has just built it)
#   BLUETICKS_BROWSER_OUT       where failure screenshots and traces go (default: a new temp dir)
#   GRAFANA_UI_HOME             an already built Grafana UI home to use instead of building one
#   BLUETICKS_CACHE             cache root (Grafana server and UI builds)
#
# Browsers are never downloaded from Playwright's site: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 and
# the Chromium above is handed to Playwright as its executable.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { echo "browser-e2e: $*" >&2; }
fail() { say "$*"; exit 1; }
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
began=$(date +%s)

# 1. Chromium: Debian's package, installed when missing
CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  [[ -z ${CHROMIUM_PATH:-} ]] || fail "CHROMIUM_PATH=$CHROMIUM is not an executable"
  say "$CHROMIUM is missing: installing Debian's chromium package (apt-get)"
  SUDO=()
  if (( EUID != 0 )); then
    command -v sudo > /dev/null && sudo -n true 2> /dev/null \
      || fail "Chromium is missing and this user can neither install it (not root, no passwordless sudo). Install it with 'sudo apt-get install -y chromium', set CHROMIUM_PATH, or skip this test with BLUETICKS_SKIP_BROWSER=1."
    SUDO=(sudo -n)
  fi
  if ! { "${SUDO[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q chromium; } >&2; then
    fail "apt-get could not install chromium (no Debian mirror reachable?). Install it by hand, set CHROMIUM_PATH, or skip this test with BLUETICKS_SKIP_BROWSER=1."
  fi
  [[ -x $CHROMIUM ]] || fail "apt-get installed chromium but $CHROMIUM is still missing"
fi
export CHROMIUM_PATH=$CHROMIUM
say "Chromium: $("$CHROMIUM" --version 2> /dev/null || echo "$CHROMIUM")"

# 2. the plugin and the test's npm packages
if [[ ${BLUETICKS_BROWSER_NO_BUILD:-0} != 1 ]]; then
  scripts/grafana/build-plugin.sh
fi
[[ -f dist/module.js && -x dist/gpx_blueticks_linux_amd64 ]] \
  || fail "dist/ lacks module.js or the backend binary: run scripts/grafana/build-plugin.sh"
if [[ ! -f node_modules/@playwright/test/package.json ]]; then
  say "npm ci (node_modules has no @playwright/test)"
  npm ci --no-audit --no-fund >&2
fi

# 3. Grafana with its web UI
if [[ -n ${GRAFANA_UI_HOME:-} ]]; then
  UI_HOME=$GRAFANA_UI_HOME
else
  t=$(date +%s)
  UI_HOME=$(scripts/grafana/get-grafana-ui.sh)
  say "Grafana UI ready after $(( $(date +%s) - t )) s ($UI_HOME)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/blueticks-browser.XXXXXX")
OUT=${BLUETICKS_BROWSER_OUT:-$WORK/results}
status=1
cleanup() {
  if [[ -f $WORK/data/grafana.pid ]]; then
    pid=$(cat "$WORK/data/grafana.pid")
    kill "$pid" 2> /dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2> /dev/null || true
  fi
  if (( status == 0 )); then
    rm -rf "$WORK"
  else
    say "kept $WORK: Grafana's log is $WORK/data/grafana.log; screenshots and traces of failed tests are in $OUT"
  fi
}
trap cleanup EXIT

scripts/grafana/stage.sh "$WORK" > /dev/null
PORT=$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
URL=$(GRAFANA_UI=1 GRAFANA_UI_HOME=$UI_HOME GRAFANA_ANONYMOUS=Admin \
  scripts/grafana/run-grafana.sh "$WORK/plugins" "$WORK/provisioning" "$WORK/data" "$PORT")

# 4. the test
say "running tests/browser against $URL"
t=$(date +%s)
set +e
GRAFANA_URL=$URL BLUETICKS_BROWSER_OUT=$OUT npx --no-install playwright test -c tests/browser/playwright.config.ts "$@"
status=$?
set -e
say "tests took $(( $(date +%s) - t )) s; $(( $(date +%s) - began )) s in all"
exit $status
