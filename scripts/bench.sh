#!/usr/bin/env bash
# Blue Ticks benchmark suite (docs/BENCHMARKS.md). Generates a demo store, loads the same
# events into a private PostgreSQL cluster on 127.0.0.1 (Debian's postgresql package), and
# runs the overview KPIs on the engine, on straightforward DuckDB SQL and on PostgreSQL,
# alternating, then the Go benchmarks. Everything lives under $BENCH_DIR (default
# /tmp/bt-bench); nothing is committed.
#
#   scripts/bench.sh                 # 10M events, 5 rounds
#   EVENTS=100000000 ROUNDS=3 scripts/bench.sh
#   SKIP_PG=1 scripts/bench.sh       # engine and DuckDB only
#
# Needs: go, and for PostgreSQL `apt-get install -y postgresql` (run as root: the cluster
# runs as the postgres user).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-10000000}
ROUNDS=${ROUNDS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/bt-bench}
PGPORT=${PGPORT:-54329}
MEMORY_MB=${MEMORY_MB:-0}
STORE="$BENCH_DIR/store-$EVENTS"
mkdir -p "$BENCH_DIR"

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%F)"

if [ ! -f "$STORE/blueticks.json" ]; then
  echo "== generating $EVENTS demo events into $STORE"
  go run ./pkg/cmd/blueticks demo --store "$STORE" --events "$EVENTS"
fi
du -sb "$STORE/segments"

PSQL=""
if [ -z "${SKIP_PG:-}" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PGDATA="$BENCH_DIR/pg"
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"; [ "$(id -u)" = 0 ] && chown postgres "$PGDATA" "$BENCH_DIR"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
    cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGDATA'
shared_buffers = 4GB
work_mem = 256MB
maintenance_work_mem = 1GB
effective_cache_size = 12GB
max_parallel_workers_per_gather = 2
CONF
  fi
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w status >/dev/null 2>&1 || as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w start
  trap 'as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null' EXIT
  PSQL="host=127.0.0.1 port=$PGPORT user=postgres dbname=bench"
  if ! psql "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" -Atc "SELECT 1 FROM pg_database WHERE datname='bench'" | grep -q 1; then
    echo "== exporting events (CSV for COPY, NDJSON for the size comparison)"
    go run ./scripts/bench/compare --store "$STORE" --export "$BENCH_DIR/events"
    [ "$(id -u)" = 0 ] && chown postgres "$BENCH_DIR/events.csv"
    psql "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" -qc "CREATE DATABASE bench"
    echo "== loading PostgreSQL"
    time psql "$PSQL" -q <<SQL
CREATE TABLE events (
  event_id text NOT NULL, ts timestamptz NOT NULL, type text NOT NULL, message_id text, reply_to text,
  conversation_id text, contact_id text, business_number text, sender text, agent_id text,
  campaign text, template text, category text, variant text, segment text, country text,
  message_type text, error_code integer, value double precision, currency text, step text,
  quality text, pricing_type text);
COPY events FROM '$BENCH_DIR/events.csv' WITH (FORMAT csv, HEADER true);
CREATE INDEX ON events (event_id);
CREATE INDEX ON events (type, ts);
CREATE INDEX ON events (message_id);
CREATE INDEX ON events (contact_id, ts);
VACUUM ANALYZE events;
SQL
    psql "$PSQL" -Atc "SELECT pg_size_pretty(pg_total_relation_size('events')), pg_total_relation_size('events')"
  fi
fi

echo "== engine vs raw DuckDB SQL vs PostgreSQL, alternating, $ROUNDS rounds (medians)"
go run ./scripts/bench/compare --store "$STORE" --rounds "$ROUNDS" --memory-mb "$MEMORY_MB" ${PSQL:+--psql "$PSQL"}

echo "== go benchmarks on the store"
BLUETICKS_BENCH_STORE="$STORE" BLUETICKS_BENCH_MEMORY_MB="$MEMORY_MB" \
  go test ./pkg/kpi/ -run '^$' -bench 'Overview|FactRebuild' -benchtime "${BENCHTIME:-20x}" -timeout 2h
