#!/usr/bin/env bash
# Blue Ticks vs straightforward SQL (docs/BENCHMARKS.md), in one go:
#   1. a demo store of $EVENTS events (generated once, or $STORE),
#   2. the same events in a private PostgreSQL cluster on 127.0.0.1 (Debian's postgresql
#      package; loaded once per store, reused afterwards),
#   3. scripts/bench/compare: the overview dashboard's KPIs on the engine, on raw DuckDB
#      SQL and on PostgreSQL; answers checked equal, then timed rounds alternating between
#      the sides; a Markdown report (medians, ratios, machine, load average, date) printed
#      and saved as $BENCH_DIR/report-$EVENTS.md.
# Everything lives under $BENCH_DIR (default /tmp/bt-bench); nothing is committed.
#
#   scripts/bench.sh                                   # 10M events, 5 rounds
#   STORE=/tmp/bt10m scripts/bench.sh                  # an existing store
#   EVENTS=100000000 ROUNDS=3 SKIP_PG=1 scripts/bench.sh
#   ONLY=campaigns,block_rate ROUNDS=1 scripts/bench.sh
#   GO_BENCH=1 scripts/bench.sh                        # also the Go benchmarks (slow at 10M)
#   KEEP_PG=1 scripts/bench.sh                         # leave the cluster running afterwards
#   FACTS_DIR=/tmp/bt-bench/facts scripts/bench.sh     # keep the engine's facts for the next run
#   PREPARE_ONLY=1 scripts/bench.sh                    # generate and load, then stop
#   EVENTS=100000000 PG_TIMEOUT=10m scripts/bench.sh   # cap each PostgreSQL query at 10 min
#
# Settings: EVENTS (10000000), ROUNDS (5), DAYS (7: the dashboard's range), BENCH_DIR,
# STORE ($BENCH_DIR/store-$EVENTS), PGPORT (54329), MEMORY_MB (engine memory_limit, 0 =
# the engine's default, 128), RAW_MEMORY_MB (raw DuckDB memory_limit, default 8192), FACTS_DIR (keep
# the engine's facts there, as the plugin does: a later run opens them instead of a full
# build, ~30 min at 100M; `blueticks query --store $STORE --facts-dir $FACTS_DIR ...` builds
# them beforehand, e.g. while PostgreSQL loads), PREPARE_ONLY (generate the store and load
# PostgreSQL, then stop), PG_TIMEOUT (a Go duration, e.g. 10m: PostgreSQL's statement_timeout
# per query; a stopped query counts as that long and is reported as "> N"), SKIP_PG, ONLY,
# KEEP_CSV (keep the CSV used for COPY), KEEP_PG (do not stop a cluster this run started), NDJSON (also export NDJSON for the size table).
#
# Needs: go; for PostgreSQL `apt-get install -y postgresql` (when run as root the cluster
# runs as the postgres user). Disk, measured at 10M: store 32 B/event, raw DuckDB table
# 75 B/event, PostgreSQL table + indexes 354 B/event plus the CSV (188 B/event) while it
# loads: 10M events need ~6 GB, 100M ~60 GB (SKIP_PG: ~11 GB plus the engine's spill).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-10000000}
ROUNDS=${ROUNDS:-5}
DAYS=${DAYS:-7}
BENCH_DIR=${BENCH_DIR:-/tmp/bt-bench}
STORE=${STORE:-$BENCH_DIR/store-$EVENTS}
PGPORT=${PGPORT:-54329}
MEMORY_MB=${MEMORY_MB:-0}
RAW_MEMORY_MB=${RAW_MEMORY_MB:-8192}
mkdir -p "$BENCH_DIR/bin"
NOTES="$BENCH_DIR/notes-$EVENTS.md"
: > "$NOTES.run"

say() { echo "== $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

say "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T UTC')"
say "building the blueticks CLI and the compare tool"
go build -o "$BENCH_DIR/bin/blueticks" ./pkg/cmd/blueticks
go build -o "$BENCH_DIR/bin/compare" ./scripts/bench/compare

if [ ! -f "$STORE/blueticks.json" ]; then
  say "generating $EVENTS demo events into $STORE"
  t=$(now)
  rm -rf "$STORE.partial"
  "$BENCH_DIR/bin/blueticks" demo --store "$STORE.partial" --events "$EVENTS"
  mv "$STORE.partial" "$STORE" # only a complete store gets the name
  echo "- demo store generated in $(since "$t") s" >> "$NOTES.run"
fi
STORE_BYTES=$(du -sb "$STORE/segments" | cut -f1)
FP=$("$BENCH_DIR/bin/compare" --store "$STORE" --fingerprint)
echo "- store: $STORE, $STORE_BYTES bytes of Parquet segments" >> "$NOTES.run"

PSQL=""
if [ -z "${SKIP_PG:-}" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$PGBIN" ] || { echo "PostgreSQL is not installed (apt-get install -y postgresql), or set SKIP_PG=1" >&2; exit 1; }
  PGDATA="$BENCH_DIR/pg"
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $PGDATA (127.0.0.1:$PGPORT)"
    mkdir -p "$PGDATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGDATA"
    chmod 700 "$PGDATA"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    # Sensible settings for a 2-core, 24 GiB analytics box; bulk load without WAL
    # (wal_level minimal: COPY into a table created in the same transaction skips WAL).
    cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGDATA'
shared_buffers = 4GB
work_mem = 256MB
maintenance_work_mem = 2GB
effective_cache_size = 12GB
random_page_cost = 1.1
max_parallel_workers_per_gather = 2
max_parallel_maintenance_workers = 2
wal_level = minimal
max_wal_senders = 0
max_wal_size = 16GB
checkpoint_timeout = 30min
timezone = 'UTC'
CONF
  fi
  STARTED_PG=""
  if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w start >/dev/null
    STARTED_PG=1
  fi
  if [ -n "$STARTED_PG" ] && [ -z "${KEEP_PG:-}" ]; then
    trap 'as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null' EXIT
  fi
  PGADMIN="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres"
  DB="bench_$EVENTS"
  PSQL="host=127.0.0.1 port=$PGPORT user=postgres dbname=$DB"
  have=$(psql "$PSQL" -XAtc "SELECT fingerprint FROM bench_meta" 2>/dev/null || true)
  if [ "$have" != "$FP" ]; then
    say "loading the store into PostgreSQL database $DB"
    psql "$PGADMIN" -Xqc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    CSV="$BENCH_DIR/events-$EVENTS"
    t=$(now)
    exported=$("$BENCH_DIR/bin/compare" --store "$STORE" --export "$CSV" ${NDJSON:+--ndjson})
    export_s=$(since "$t")
    echo "$exported" >&2
    chmod o+r "$CSV.csv"
    csv_bytes=$(stat -c %s "$CSV.csv")
    t=$(now)
    psql "$PSQL" -Xq -v ON_ERROR_STOP=1 <<SQL
BEGIN;
CREATE TABLE events (
  event_id text NOT NULL, ts timestamptz NOT NULL, type text NOT NULL, message_id text, reply_to text,
  conversation_id text, contact_id text, business_number text, sender text, agent_id text,
  campaign text, template text, category text, variant text, segment text, country text,
  message_type text, error_code integer, value double precision, currency text, step text,
  quality text, pricing_type text);
COPY events FROM '$CSV.csv' WITH (FORMAT csv, HEADER true);
COMMIT;
SQL
    copy_s=$(since "$t")
    # The table holds the events now: free the CSV's disk (~19 GB at 100M) before the indexes.
    [ -n "${KEEP_CSV:-}" ] || rm -f "$CSV.csv"
    t=$(now)
    # Indexes a user would add for these queries: time ranges per type, statuses of a
    # message, explicit replies, conversations, event ids, and the last-touch lookup
    # (latest campaign message to a contact before a time).
    psql "$PSQL" -Xq -v ON_ERROR_STOP=1 <<SQL
CREATE INDEX events_type_ts_idx ON events (type, ts);
CREATE INDEX events_message_id_idx ON events (message_id);
CREATE INDEX events_reply_to_idx ON events (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX events_conversation_idx ON events (conversation_id, type, ts) WHERE conversation_id IS NOT NULL;
CREATE INDEX events_event_id_idx ON events (event_id);
CREATE INDEX events_last_touch_idx ON events (contact_id, ts) WHERE type = 'sent' AND sender = 'campaign';
SQL
    index_s=$(since "$t")
    t=$(now)
    psql "$PSQL" -Xq -c "VACUUM (ANALYZE) events"
    vacuum_s=$(since "$t")
    psql "$PSQL" -Xq -c "CREATE TABLE bench_meta AS SELECT '$FP'::text AS fingerprint"
    sizes=$(psql "$PSQL" -XAt -F' ' -c "SELECT pg_relation_size('events'), pg_indexes_size('events'), pg_total_relation_size('events'), pg_database_size(current_database())")
    read -r heap idx total dbsize <<<"$sizes"
    rows=$(psql "$PSQL" -XAtc "SELECT count(*) FROM events")
    {
      echo "$exported" | grep -v '^store segments' | sed 's/^/export: /'
      echo "PostgreSQL load of $rows rows: CSV export ${export_s} s ($csv_bytes bytes), COPY ${copy_s} s, 6 indexes ${index_s} s, VACUUM ANALYZE ${vacuum_s} s"
      awk -v r="$rows" -v c="$copy_s" -v i="$index_s" -v v="$vacuum_s" 'BEGIN { printf "PostgreSQL load rate: COPY %.0f rows/s; COPY+indexes+analyze %.0f rows/s\n", r / c, r / (c + i + v) }'
      awk -v h="$heap" -v x="$idx" -v t="$total" -v d="$dbsize" -v r="$rows" 'BEGIN { printf "PostgreSQL size: table %.2f GB, indexes %.2f GB, total %.2f GB (%.0f B/event), database %.2f GB\n", h/1e9, x/1e9, t/1e9, t/r, d/1e9 }'
    } > "$BENCH_DIR/pg-load-$EVENTS.txt"
    cat "$BENCH_DIR/pg-load-$EVENTS.txt" >&2
  else
    say "reusing PostgreSQL database $DB"
  fi
  # PostgreSQL 15's Memoize node caches the last-touch LATERAL probe by (contact, time):
  # every key is new, and at 10M events it turned a 6.5 s join into 222 s. Off, as a DBA
  # would set it after one EXPLAIN ANALYZE.
  psql "$PGADMIN" -Xqc "ALTER DATABASE $DB SET enable_memoize = off"
  [ -f "$BENCH_DIR/pg-load-$EVENTS.txt" ] && sed 's/^/- /' "$BENCH_DIR/pg-load-$EVENTS.txt" >> "$NOTES.run"
  echo "- PostgreSQL settings: shared_buffers 4GB, work_mem 256MB, effective_cache_size 12GB, random_page_cost 1.1, 2 parallel workers per gather, JIT at its default (on), enable_memoize off (Memoize made the last-touch probes 34x slower); indexes: (type, ts), (message_id), (reply_to), (conversation_id, type, ts), (event_id), (contact_id, ts) WHERE type = 'sent' AND sender = 'campaign'" >> "$NOTES.run"
fi
mv "$NOTES.run" "$NOTES"
if [ -n "${PREPARE_ONLY:-}" ]; then
  say "prepared $STORE${PSQL:+ and PostgreSQL database $DB}; PREPARE_ONLY: not comparing"
  exit 0
fi

say "engine vs raw DuckDB SQL${PSQL:+ vs PostgreSQL}: answers checked, then $ROUNDS rounds"
REPORT="$BENCH_DIR/report-$EVENTS.md"
rc=0
"$BENCH_DIR/bin/compare" --store "$STORE" --rounds "$ROUNDS" --days "$DAYS" --memory-mb "$MEMORY_MB" \
  --raw-db "$BENCH_DIR/raw-$EVENTS.duckdb" --raw-memory-mb "$RAW_MEMORY_MB" --notes "$NOTES" \
  ${FACTS_DIR:+--facts-dir "$FACTS_DIR"} \
  ${ONLY:+--only "$ONLY"} ${PSQL:+--psql "$PSQL"} ${PG_TIMEOUT:+--pg-timeout "$PG_TIMEOUT"} > "$REPORT" || rc=$?
cat "$REPORT"
say "report saved as $REPORT"

if [ -n "${GO_BENCH:-}" ]; then
  say "go benchmarks on the store"
  BLUETICKS_BENCH_STORE="$STORE" BLUETICKS_BENCH_MEMORY_MB="$MEMORY_MB" \
    go test ./pkg/kpi/ -run '^$' -bench 'Overview|FactRebuild' -benchtime "${BENCHTIME:-5x}" -timeout 4h
fi
exit $rc
