#!/usr/bin/env bash
# Several writers and several readers on one store, with no coordination but the store's
# own rules (docs/SCALING.md): unique segment names, publish by rename, the compaction lock.
#
#   1. builds the blueticks CLI and the plugin (dist/gpx_blueticks_linux_amd64, via mage);
#   2. starts two `blueticks serve` receivers on two 127.0.0.1 ports on one new store, each
#      compacting every 200 ms;
#   3. sends events to both at once ($CLIENTS concurrent clients, NDJSON batches), a quarter
#      of the batches to both receivers (the same event ids: readers must count them once)
#      and some twice to the same one (a client's retry), plus 60-day-old events;
#   4. starts a third receiver with --retention-days 30 while the other two keep writing
#      (it deletes the old events at start, under the compaction lock);
#   5. queries the store from two `blueticks query` processes at once and checks both answer
#      exactly the counts the generator knows, that the old events are gone and that every
#      event id sent is in the store;
#   6. runs tests/scaling (the same with two plugin processes driven over the plugin
#      protocol, as two Grafana replicas) unless SKIP_PLUGIN_TEST=1.
#
#   scripts/scaling-demo.sh
#   MESSAGES=100000 CLIENTS=8 KEEP=1 scripts/scaling-demo.sh
#
# Settings: MESSAGES (20000 messages, ~2.5 events each), CLIENTS (4), BATCH (500 events per
# request), WORK (a new /tmp directory), KEEP (keep WORK), SKIP_PLUGIN_TEST.
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${MESSAGES:-20000}
CLIENTS=${CLIENTS:-4}
BATCH=${BATCH:-500}
WORK=${WORK:-$(mktemp -d /tmp/bt-scaling.XXXXXX)}
STORE="$WORK/store"
mkdir -p "$WORK/batches" "$WORK/resp"

say() { echo "== $*" >&2; }
fail() { echo "FAIL: $*" >&2; exit 1; }
rnd() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export BLUETICKS_API_TOKEN BLUETICKS_HASH_KEY
BLUETICKS_API_TOKEN=$(rnd)
BLUETICKS_HASH_KEY=$(rnd)

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

say "building the blueticks CLI and the plugin (mage)"
go build -o "$WORK/blueticks" ./pkg/cmd/blueticks
go run github.com/magefile/mage > "$WORK/mage.log" 2>&1 || { cat "$WORK/mage.log" >&2; fail "mage"; }
PLUGIN="$PWD/dist/gpx_blueticks_linux_amd64"
[ -x "$PLUGIN" ] || fail "mage did not build $PLUGIN"
BT="$WORK/blueticks"

# start_receiver VAR NAME [flags...]: starts a receiver and sets VAR to its base URL once
# it listens (not in a subshell: the process must stay ours and its stdout not a pipe).
start_receiver() {
  local var=$1 name=$2; shift 2
  "$BT" serve --store "$STORE" --listen 127.0.0.1:0 --compact-every 200ms "$@" > /dev/null 2> "$WORK/$name.log" &
  PIDS+=($!)
  local addr=""
  for _ in $(seq 300); do
    addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$WORK/$name.log" | head -1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || fail "$name did not start: $(cat "$WORK/$name.log")"
  printf -v "$var" 'http://%s' "$addr"
}

metric() { # metric URL NAME [LABEL-MATCH]: sum of a Prometheus series
  curl -sS "$1/metrics" | awk -v n="$2" -v m="${3:-}" 'index($0, n) == 1 && (m == "" || index($0, m)) && substr($0, length(n) + 1, 1) ~ /[{ ]/ { s += $NF } END { printf "%d\n", s }'
}

say "two receivers on one new store: $STORE"
start_receiver A receiver-a
start_receiver B receiver-b
echo "   receiver A $A, receiver B $B" >&2

say "generating $MESSAGES messages of events (and 300 events 60 days old)"
NOW=$(date +%s)
# The same rules as tests/scaling: every message sent; 9 in 10 delivered (the 10th failed),
# a third of the delivered read; 1 in 7 answered (a reply credits its message: delivered
# even without a status); 1 in 40 contacts blocks. Expected counts follow SPEC.
awk -v n="$MESSAGES" -v now="$NOW" -v dir="$WORK" 'BEGIN {
  base = now - 36 * 3600
  for (i = 0; i < n; i++) {
    t = base + int(i * 86400 / n); mid = "wamid.demo-" i; c = sprintf("c_%05d", i % 7000)
    printf "{\"event_id\":\"sent-%d\",\"ts\":\"%d\",\"type\":\"sent\",\"message_id\":\"%s\",\"contact_id\":\"%s\",\"sender\":\"campaign\",\"campaign\":\"camp-%d\"}\n", i, t, mid, c, i % 5 > dir "/recent.ndjson"
    sent++
    if (i % 10 != 0) {
      printf "{\"event_id\":\"dlv-%d\",\"ts\":\"%d\",\"type\":\"delivered\",\"message_id\":\"%s\"}\n", i, t + 4, mid > dir "/recent.ndjson"
      if (i % 3 == 0) { printf "{\"event_id\":\"read-%d\",\"ts\":\"%d\",\"type\":\"read\",\"message_id\":\"%s\"}\n", i, t + 90, mid > dir "/recent.ndjson"; rd++ }
    } else {
      printf "{\"event_id\":\"fail-%d\",\"ts\":\"%d\",\"type\":\"failed\",\"message_id\":\"%s\",\"error_code\":131026}\n", i, t + 3, mid > dir "/recent.ndjson"; fl++
    }
    if (i % 7 == 0) {
      printf "{\"event_id\":\"in-%d\",\"ts\":\"%d\",\"type\":\"received\",\"message_id\":\"wamid.in-%d\",\"reply_to\":\"%s\",\"contact_id\":\"%s\",\"sender\":\"customer\"}\n", i, t + 300, i, mid, c > dir "/recent.ndjson"; rc++
    }
    if (i % 10 != 0 || i % 7 == 0) dl++
    if (i % 40 == 0) { printf "{\"event_id\":\"blk-%d\",\"ts\":\"%d\",\"type\":\"blocked\",\"contact_id\":\"%s\"}\n", i, t + 1200, c > dir "/recent.ndjson"; bl++ }
  }
  for (i = 0; i < 300; i++)
    printf "{\"event_id\":\"old-%d\",\"ts\":\"%d\",\"type\":\"sent\",\"message_id\":\"wamid.old-%d\",\"contact_id\":\"c_old\",\"sender\":\"campaign\",\"campaign\":\"old\"}\n", i, now - 60 * 86400 + i * 60, i > dir "/old.ndjson"
  printf "sent,delivered,read,failed,received,blocked\n%d,%d,%d,%d,%d,%d\n", sent, dl, rd, fl, rc, bl > dir "/expected.csv"
}'
RECENT=$(wc -l < "$WORK/recent.ndjson")
echo "   $RECENT events in the query range; expected: $(tail -1 "$WORK/expected.csv") (sent,delivered,read,failed,received,blocked)" >&2

# Batches: the events shuffled (statuses may arrive before their sent), cut into BATCH
# lines; phase 1 is the old events and the first third, phase 2 the rest.
shuf "$WORK/recent.ndjson" > "$WORK/shuffled.ndjson"
third=$((RECENT / 3))
{ cat "$WORK/old.ndjson"; head -n "$third" "$WORK/shuffled.ndjson"; } | split -l "$BATCH" -d -a 5 - "$WORK/batches/p1-"
tail -n +"$((third + 1))" "$WORK/shuffled.ndjson" | split -l "$BATCH" -d -a 5 - "$WORK/batches/p2-"

# plan PHASE: "file url" lines; batch k to A or B in turn, every 4th also to the other
# receiver, every 20th twice to the same one.
plan() {
  local k=0 f first other
  for f in "$WORK"/batches/"$1"-*; do
    if [ $((k % 2)) = 0 ]; then first=$A other=$B; else first=$B other=$A; fi
    echo "$f $first"
    [ $((k % 4)) = 1 ] && echo "$f $other"
    [ $((k % 20)) = 3 ] && echo "$f $first"
    k=$((k + 1))
  done | shuf
}

send_one() { # send_one FILE URL: POST, retrying on 429/503 as a client should
  local file=$1 url=$2 code out
  out="$WORK/resp/$(basename "$file").$RANDOM$RANDOM"
  for _ in $(seq 50); do
    code=$(curl -sS --max-time 30 -o "$out" -w '%{http_code}' -H "Authorization: Bearer $BLUETICKS_API_TOKEN" \
      -H 'Content-Type: application/x-ndjson' --data-binary @"$file" "$url/v1/events") || code=000
    case $code in
      200) grep -q '"rejected_count":0' "$out" || { echo "rejected rows: $(cat "$out")" >&2; return 1; }
           sleep "${PAUSE:-0}"; return 0 ;;
      429|503) sleep 0.2 ;;
      *) echo "$url answered $code: $(cat "$out" 2>/dev/null)" >&2; return 1 ;;
    esac
  done
  return 1
}
export -f send_one
export WORK

send_phase() { # send_phase PHASE [PAUSE]: every request of the phase, CLIENTS at a time
  local t0 n ev
  t0=$(date +%s.%N)
  plan "$1" > "$WORK/plan-$1"
  PAUSE=${2:-0} xargs -P "$CLIENTS" -n 2 bash -c 'send_one "$0" "$1"' < "$WORK/plan-$1" || fail "a request was not acknowledged"
  n=$(wc -l < "$WORK/plan-$1")
  ev=$(cut -d' ' -f1 "$WORK/plan-$1" | xargs cat | wc -l)
  awk -v t0="$t0" -v t1="$(date +%s.%N)" -v n="$n" -v ev="$ev" -v c="$CLIENTS" -v ph="$1" -v p="${2:-0}" \
    'BEGIN { printf "   %s: %d requests (%d events with the duplicates) acknowledged, %d clients, %.2f s: %.0f events/s into the two receivers%s\n", ph, n, ev, c, t1 - t0, ev / (t1 - t0), (p > 0 ? " (paced: " p " s pause per request)" : "") }' >&2
}

query() { # query FROM TO: the counts as CSV (header and one row)
  "$BT" query --store "$STORE" --from "$1" --to "$2" --format csv \
    '{"queryType":"table","metrics":["sent","delivered","read","failed","received","blocked"]}'
}
FROM=$(date -u -d "@$((NOW - 30 * 86400))" +%FT%TZ)
TO=$(date -u -d "@$((NOW + 3600))" +%FT%TZ)
OLD_FROM=$(date -u -d "@$((NOW - 90 * 86400))" +%FT%TZ)

say "phase 1: old events and a third of the rest, to both receivers, as fast as they take them"
send_phase p1
# Acknowledged means durable; in a published segment (visible to every reader) within
# about a second. Wait for it before retention starts, so retention has something to do.
t0=$(date +%s)
until [ "$(query "$OLD_FROM" "$FROM" | tail -1 | cut -d, -f1)" = 300 ]; do
  [ $(($(date +%s) - t0)) -lt 30 ] || fail "phase 1 not visible after 30 s"
  sleep 0.5
done

say "phase 2: a third receiver runs retention (30 days) at start while A and B take the rest, paced over ~6 s so compaction runs beside them"
start_receiver C receiver-c --retention-days 30
p2=$(plan p2 | wc -l)
send_phase p2 "$(awk -v n="$p2" -v c="$CLIENTS" 'BEGIN { printf "%.3f", 6 * c / n }')"

t0=$(date +%s)
until [ "$(metric "$C" blueticks_ingest_retention_dropped_events_total)" -ge 300 ]; do
  [ $(($(date +%s) - t0)) -lt 30 ] || fail "retention did not drop the old events within 30 s"
  sleep 0.2
done

say "two blueticks query processes at once"
t0=$(date +%s)
while :; do
  query "$FROM" "$TO" > "$WORK/q1.csv" & q1=$!
  query "$FROM" "$TO" > "$WORK/q2.csv" & q2=$!
  wait "$q1" && wait "$q2" || fail "blueticks query failed"
  cmp -s "$WORK/q1.csv" "$WORK/expected.csv" && cmp -s "$WORK/q2.csv" "$WORK/expected.csv" && break
  [ $(($(date +%s) - t0)) -lt 30 ] || fail "answers $(tail -1 "$WORK/q1.csv") and $(tail -1 "$WORK/q2.csv"), expected $(tail -1 "$WORK/expected.csv")"
  sleep 0.5
done
echo "   both answer $(tail -1 "$WORK/q1.csv") = expected" >&2
old=$(query "$OLD_FROM" "$FROM" | tail -1 | cut -d, -f1)
[ "$old" = 0 ] || fail "$old old events left after retention"
echo "   old events left: 0" >&2

say "the store: every event id sent is there once for readers"
go run ./scripts/bench/compare --store "$STORE" --export "$WORK/export" > /dev/null
sent_ids=$(sed -n 's/.*"event_id":"\([^"]*\)".*/\1/p' "$WORK/recent.ndjson" | sort -u | wc -l)
stored_ids=$(tail -n +2 "$WORK/export.csv" | cut -d, -f1 | sort -u | wc -l)
stored_rows=$(($(wc -l < "$WORK/export.csv") - 1))
missing=$(comm -23 <(sed -n 's/.*"event_id":"\([^"]*\)".*/\1/p' "$WORK/recent.ndjson" | sort -u) <(tail -n +2 "$WORK/export.csv" | cut -d, -f1 | sort -u) | wc -l)
[ "$missing" = 0 ] || fail "$missing acknowledged events are not in the store"
[ "$stored_ids" = "$sent_ids" ] || fail "$stored_ids distinct ids stored, $sent_ids sent"
segs=$(ls "$STORE/segments" | wc -l)
retired=$(ls "$STORE/retired" | wc -l)
bytes=$(du -sb "$STORE/segments" | cut -f1)
echo "   $sent_ids ids sent, all stored; $stored_rows rows ($((stored_rows - stored_ids)) duplicate rows left for readers to drop); $segs segments, $retired retired; $bytes bytes" >&2
for r in A B C; do
  url=${!r}
  echo "   receiver $r: $(metric "$url" blueticks_ingest_written_events_total) events written, compactions merged $(metric "$url" blueticks_ingest_compactions_total 'result="merged"'), skipped (lock held by another) $(metric "$url" blueticks_ingest_compactions_total 'result="skipped"'), retention dropped $(metric "$url" blueticks_ingest_retention_dropped_events_total) rows" >&2
done

if [ -z "${SKIP_PLUGIN_TEST:-}" ]; then
  say "tests/scaling: the same with two plugin processes over the plugin protocol"
  BLUETICKS_PLUGIN_BINARY="$PLUGIN" BLUETICKS_CLI_BINARY="$BT" \
    go test ./tests/scaling/ -run TestTwoReceiversTwoPluginsOneStore -count=1 -v 2>&1 | grep -E 'scaling_test.go|Error|expected|actual|^(--- |ok|FAIL|PASS)' >&2
fi
say "OK: two receivers and a retention run wrote one store; every reader answered exactly"
