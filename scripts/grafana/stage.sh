#!/usr/bin/env bash
# scripts/grafana/stage.sh OUT_DIR [--store PATH] [--alert-interval DUR] [--alert-for DUR]
#
# Lays out what Grafana loads, from the repository's dist/ and provisioning/:
#   OUT_DIR/plugins/blueticks-whatsapp-datasource/   a copy of dist/ (plugin.json, backend binary, module.js)
#   OUT_DIR/provisioning/                             a copy of provisioning/ where the dashboards
#                                                     provider points at the repository's dashboards/
# Options for tests: --store PATH sets the data source's storePath (default: the embedded demo);
# --alert-interval and --alert-for replace the alert group's interval and every rule's pending
# period (for example 10s and 0s, so a rule fires within seconds).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${1:?usage: stage.sh OUT_DIR [--store PATH] [--alert-interval DUR] [--alert-for DUR]}
shift
STORE="" INTERVAL="" FOR=""
while (( $# )); do
  case $1 in
    --store) STORE=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --alert-interval) INTERVAL=$2; shift 2 ;;
    --alert-for) FOR=$2; shift 2 ;;
    *) echo "stage: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -f $ROOT/dist/gpx_blueticks_linux_amd64 ]] || { echo "stage: $ROOT/dist has no backend binary; run scripts/grafana/build-plugin.sh" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
P=$OUT/plugins/blueticks-whatsapp-datasource
rm -rf "$P" "$OUT/provisioning"
mkdir -p "$P"
cp -r "$ROOT/dist/." "$P/"
[[ -f $P/plugin.json ]] || cp "$ROOT/plugin.json" "$P/plugin.json"
chmod +x "$P"/gpx_blueticks_* 2> /dev/null || true

cp -r "$ROOT/provisioning" "$OUT/provisioning"
sed -i "s|^\([[:space:]]*path:\).*|\1 $ROOT/dashboards|" "$OUT/provisioning/dashboards/blueticks.yaml"
if [[ -n $STORE ]]; then
  sed -i "s|^\([[:space:]]*storePath:\).*|\1 \"$STORE\"|" "$OUT/provisioning/datasources/blueticks.yaml"
fi
for f in "$OUT"/provisioning/alerting/*.yaml; do
  [[ -n $INTERVAL ]] && sed -i "s|^\([[:space:]]*interval:\).*|\1 $INTERVAL|" "$f"
  [[ -n $FOR ]] && sed -i "s|^\([[:space:]]*for:\).*|\1 $FOR|" "$f"
done
echo "$OUT"
