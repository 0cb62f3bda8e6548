#!/usr/bin/env bash
# scripts/grafana/get-grafana-ui.sh [CACHE_DIR]
#
# Builds the web UI (Grafana's own frontend bundle, public/build) for the Grafana server that
# get-grafana.sh builds, from the same Go module, with Yarn and the npm registry. Prints the
# resulting home directory (use it as --homepath; run-grafana.sh does with GRAFANA_UI=1) on
# stdout; progress goes to stderr. A second call with the same cache returns at once.
#
#   CACHE_DIR   default ${BLUETICKS_CACHE:-$HOME/.cache/blueticks}/grafana (as get-grafana.sh)
#
# Writes CACHE_DIR/ui (the home: conf/, public/ with build/ and vendor/; ~170 MB),
# CACHE_DIR/yarn (Yarn's package mirror, ~340 MB, so a rebuild downloads nothing) and the
# logs CACHE_DIR/ui-install.log, CACHE_DIR/ui-build.log. Nothing here is ever committed.
# Cold: about 4-5 minutes on 2 cores (3 min of downloads, 1-2 min of webpack) and ~3 GB of
# memory; needs node >= 18 and npm configured for a registry (the only network used).
#
# Environment:
#   GRAFANA_UI_HEAP_MB   node heap for webpack (default 6144)
#   GRAFANA_UI_KEEP_DEPS=1  keep Yarn's install and webpack's cache in CACHE_DIR/ui (~0.9 GB)
#
# How this differs from Grafana's release build, and why:
#   - Go module zips leave out every vendor/ directory, so public/vendor is recreated:
#     flot 0.8.3 from npm (package jquery.flot, checksum below) and this project's stand-ins
#     in scripts/grafana/ui-vendor/ for the files neither has (see its README).
#   - package.json takes xlsx from cdn.sheetjs.com; it is replaced by xlsx 0.18.5 from npm
#     (the newest there, same API for what Grafana uses).
#   - webpack runs without source maps, and Yarn's PnP ESM loader is registered through
#     module.register() instead of --experimental-loader: with the flag, Node 20 runs the CJS
#     webpack-cli through its ESM translator, whose require() has no .cache/.extensions, and
#     webpack-cli (rechoir) and postcss-loader (import-fresh) break.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${1:-${BLUETICKS_CACHE:-$HOME/.cache/blueticks}/grafana}
FLOT=jquery.flot@0.8.3
FLOT_SHA256=4db38df8d092a4355741441aa9a3a3b09558e308d6dc3d929e2f103bbfd8475b
YARN=.yarn/releases/yarn-3.4.1.cjs
# the UI belongs to one server build and to this recipe: get-grafana.sh's version and a
# checksum of this script and the stand-ins make the stamp, so changing either rebuilds
MODVER=$(sed -n 's/^GRAFANA_MODVER=//p' "$HERE/get-grafana.sh")
RECIPE=$({ cat "${BASH_SOURCE[0]}"; find "$HERE/ui-vendor" -type f -print0 | LC_ALL=C sort -z | xargs -0 cat; } | sha256sum | cut -c1-12)

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
UI=$CACHE/ui
DONE=$UI/.done-$MODVER-$RECIPE
say() { echo "get-grafana-ui: $*" >&2; }

if [[ -f $DONE && -f $UI/public/views/index.html && -d $UI/public/build ]]; then
  echo "$UI"
  exit 0
fi
began=$(date +%s)

"$HERE/get-grafana.sh" "$CACHE" > /dev/null
SRC=$CACHE/src
[[ -f $SRC/package.json && -f $SRC/$YARN ]] || { say "$SRC has no package.json or $YARN: is get-grafana.sh's build complete?"; exit 1; }
command -v node > /dev/null && command -v npm > /dev/null || { say "node and npm are required"; exit 1; }
REGISTRY=$(npm config get registry 2> /dev/null)
[[ -n $REGISTRY ]] || { say "npm has no registry configured (npm config get registry)"; exit 1; }
# the logs stay in the cache; the registry URL (it may carry a token) is kept out of them
hide_registry() { awk -v r="${REGISTRY%/}" '{ while ((i = index($0, r)) > 0) $0 = substr($0, 1, i - 1) "<registry>" substr($0, i + length(r)); print }'; }

W=$CACHE/ui.new
say "copying $SRC to $W"
rm -rf "$W"
cp -a "$SRC" "$W"
cd "$W"

say "package.json: xlsx from npm instead of cdn.sheetjs.com"
sed -i 's|"xlsx": "https://cdn.sheetjs.com/[^"]*"|"xlsx": "0.18.5"|' package.json
grep -q '"xlsx": "0.18.5"' package.json || { say "the xlsx dependency in package.json was not where expected"; exit 1; }

say "public/vendor: $FLOT from npm, stand-ins from scripts/grafana/ui-vendor"
V=$W/public/vendor
mkdir -p "$V"
cp -r "$HERE/ui-vendor/." "$V/"
rm -f "$V/README.md"
for name in stackpercent fillbelow dashes; do cp "$V/flot/jquery.flot.noop.js" "$V/flot/jquery.flot.$name.js"; done
rm "$V/flot/jquery.flot.noop.js"
printf '{ "name": "vendor", "version": "0.0.0", "private": true }\n' > "$V/package.json"
PACK=$(mktemp -d)
( cd "$PACK" && npm pack --silent "$FLOT" > /dev/null 2>&1 ) || { say "npm pack $FLOT failed"; exit 1; }
TGZ=$(ls "$PACK"/*.tgz)
echo "$FLOT_SHA256  $TGZ" | sha256sum --check --quiet - || { say "$FLOT does not have the pinned checksum"; exit 1; }
tar -xzf "$TGZ" -C "$PACK"
for f in jquery.flot jquery.flot.selection jquery.flot.time jquery.flot.stack jquery.flot.crosshair; do
  cp "$PACK/package/$f.js" "$V/flot/$f.js"
done
rm -rf "$PACK"

# Yarn 3 (the release Grafana ships in .yarn/releases), Plug'n'Play; the registry is handed
# over in the environment, never written to a file; no telemetry, no browser or binary
# downloads from postinstall scripts, no git hooks.
export YARN_NPM_REGISTRY_SERVER=$REGISTRY
export YARN_GLOBAL_FOLDER=$CACHE/yarn YARN_ENABLE_GLOBAL_CACHE=0
export YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_PROGRESS_BARS=0 YARN_ENABLE_INLINE_BUILDS=1
export YARN_ENABLE_IMMUTABLE_INSTALLS=0 YARN_CHECKSUM_BEHAVIOR=update
export CYPRESS_INSTALL_BINARY=0 PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 HUSKY=0 NX_DAEMON=false
t=$(date +%s)
say "yarn install (log $CACHE/ui-install.log; about 3 minutes with an empty mirror, seconds with a full one)"
if ! node "$YARN" install 2>&1 | hide_registry > "$CACHE/ui-install.log"; then
  say "yarn install failed; the end of $CACHE/ui-install.log:"; tail -30 "$CACHE/ui-install.log" >&2; exit 1
fi
say "yarn install took $(( $(date +%s) - t )) s"

t=$(date +%s)
say "webpack production build (log $CACHE/ui-build.log; 1-2 minutes, ~3 GB of memory)"
cat > .pnp-esm.cjs << 'JS'
// Preloaded after .pnp.cjs: lets ESM-only packages resolve through Plug'n'Play without running
// webpack-cli (CommonJS) through Node's ESM loader (see get-grafana-ui.sh).
const { register } = require('node:module');
const { pathToFileURL } = require('node:url');
register(pathToFileURL(require('node:path').join(__dirname, '.pnp.loader.mjs')).href);
JS
WEBPACK=$(node "$YARN" bin webpack)
if ! NODE_ENV=production \
  NODE_OPTIONS="--require $W/.pnp.cjs --require $W/.pnp-esm.cjs --max-old-space-size=${GRAFANA_UI_HEAP_MB:-6144}" \
  node "$WEBPACK" --config scripts/webpack/webpack.prod.js --no-devtool 2>&1 | hide_registry > "$CACHE/ui-build.log"; then
  say "webpack failed; the end of $CACHE/ui-build.log:"; tail -40 "$CACHE/ui-build.log" >&2; exit 1
fi
compgen -G "public/build/app.*.js" > /dev/null && [[ -f public/views/index.html ]] \
  || { say "webpack wrote no public/build/app.*.js or public/views/index.html"; exit 1; }
say "webpack took $(( $(date +%s) - t )) s"

if [[ ${GRAFANA_UI_KEEP_DEPS:-0} != 1 ]]; then
  # only conf/ and public/ are served; the install (~0.9 GB) is rebuilt from the mirror if needed
  rm -rf .yarn/cache .yarn/unplugged .yarn/.cache .yarn/__virtual__ .yarn/install-state.gz \
    node_modules .pnp.cjs .pnp.loader.mjs .pnp-esm.cjs
fi

cd "$CACHE"
rm -rf "$UI"
mv "$W" "$UI"
touch "$DONE"
say "built the web UI in $(( $(date +%s) - began )) s"
echo "$UI"
