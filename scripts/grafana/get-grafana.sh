#!/usr/bin/env bash
# scripts/grafana/get-grafana.sh [CACHE_DIR]
#
# Builds a headless Grafana server (HTTP API, plugin loader, provisioning, unified
# alerting; no web UI bundle) from the Go module proxy, for run-demo.sh and the e2e tests,
# because no Docker engine is available everywhere. Prints the binary's path on stdout;
# progress goes to stderr. A second call with the same cache returns at once.
#
#   CACHE_DIR   default ${BLUETICKS_CACHE:-$HOME/.cache/blueticks}/grafana
#
# Writes CACHE_DIR/src (a writable copy of the grafana module: use it as --homepath, it
# holds conf/defaults.ini and public/), CACHE_DIR/bin/grafana and CACHE_DIR/bin/wire.
# Nothing here is ever committed to the repository.
#
# The pinned version is the newest one the module proxy serves: Grafana main of
# 2023-06-09 (10.0 development line). Its go.mod pins google/wire v0.5.0, whose
# golang.org/x/tools crashes on current Go, so wire v0.7.0 is built against x/tools v0.52.0
# to generate pkg/server/wire_gen.go (it is not in the module zip). Cold build: a few
# minutes and a few GB of Go build cache; needs gcc (sqlite is cgo).
set -euo pipefail

GRAFANA_MODULE=github.com/grafana/grafana
GRAFANA_MODVER=v1.9.2-0.20230609164553-81d85ce8028d
GRAFANA_VERSION=10.0.0-preview
GRAFANA_COMMIT=81d85ce8028d
WIRE_VERSION=v0.7.0
XTOOLS_VERSION=v0.52.0

CACHE=${1:-${BLUETICKS_CACHE:-$HOME/.cache/blueticks}/grafana}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
BIN=$CACHE/bin/grafana
DONE=$CACHE/.done-$GRAFANA_MODVER

say() { echo "get-grafana: $*" >&2; }

if [[ -x $BIN && -f $DONE && -f $CACHE/src/conf/defaults.ini ]]; then
  echo "$BIN"
  exit 0
fi
command -v go > /dev/null || { say "go is required"; exit 1; }
command -v gcc > /dev/null || { say "gcc is required (cgo for sqlite)"; exit 1; }

# Outside any module: the download and build must not touch the caller's go.mod.
export GOFLAGS=-mod=mod CGO_ENABLED=1 GO111MODULE=on
cd "$CACHE"
began=$(date +%s)

say "fetching $GRAFANA_MODULE@$GRAFANA_MODVER from the module proxy"
go mod download "$GRAFANA_MODULE@$GRAFANA_MODVER" >&2
MODDIR=$(go env GOMODCACHE)/$GRAFANA_MODULE@$GRAFANA_MODVER
[[ -f $MODDIR/go.mod ]] || { say "$MODDIR has no go.mod"; exit 1; }

say "making a writable copy in $CACHE/src.new"
rm -rf "$CACHE/src.new"
cp -r "$MODDIR" "$CACHE/src.new"
chmod -R u+w "$CACHE/src.new"

mkdir -p "$CACHE/bin"
if [[ ! -x $CACHE/bin/wire ]]; then
  say "building github.com/google/wire $WIRE_VERSION with golang.org/x/tools $XTOOLS_VERSION"
  rm -rf "$CACHE/wire-build"
  mkdir -p "$CACHE/wire-build"
  (
    cd "$CACHE/wire-build"
    printf 'module blueticks.local/wirebuild\n\ngo 1.22\n' > go.mod
    go get "github.com/google/wire/cmd/wire@$WIRE_VERSION" "golang.org/x/tools@$XTOOLS_VERSION" >&2
    go build -o "$CACHE/bin/wire" github.com/google/wire/cmd/wire >&2
  )
  rm -rf "$CACHE/wire-build"
fi

say "generating pkg/server/wire_gen.go"
( cd "$CACHE/src.new" && "$CACHE/bin/wire" gen -tags oss ./pkg/server >&2 )

say "building ./pkg/cmd/grafana (cgo)"
( cd "$CACHE/src.new" && go build \
    -ldflags "-X main.version=$GRAFANA_VERSION -X main.commit=$GRAFANA_COMMIT -X main.buildBranch=main" \
    -o "$CACHE/bin/grafana.new" ./pkg/cmd/grafana >&2 )

rm -rf "$CACHE/src"
mv "$CACHE/src.new" "$CACHE/src"
mv "$CACHE/bin/grafana.new" "$BIN"
rm -f "$CACHE"/.done-*
touch "$DONE"
say "built Grafana $GRAFANA_VERSION in $(( $(date +%s) - began )) s"
echo "$BIN"
