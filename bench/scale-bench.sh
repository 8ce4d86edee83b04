#!/usr/bin/env bash
# Claiming at scale: millions of stored schedules and 1 to 30 scheduler processes on one
# PostgreSQL or Redis, through the public API (crates/bench, aps-scale-bench).
#
# For each store size (PostgreSQL: 1,000,000 then 10,000,000 by default; Redis:
# 1,000,000) the schedules are loaded with Engine::add_jobs (interval jobs whose fire
# times lie in the year 2100), then, for each node count, that many node processes
# (each a BackgroundScheduler with the thread executor, whose job only notes its fire
# time and start) run a burst of 10,000 jobs due at one instant, 3 times, 20 s apart.
# Reported per run (one JSON line each, and a table): lateness p50/p99/max of each
# burst, runs started a second, fire times started twice (must be 0), runs by node,
# the store's claim and claim-to-release times as the nodes timed them, the database
# server's CPU and (PostgreSQL) what its backends waited on, (Redis) its commandstats.
#
# By default the servers are private, started by this script on spare loopback ports
# and removed at the end: PostgreSQL (Debian's initdb/pg_ctl, max_connections=400,
# shared_buffers=512MB, pg_stat_statements loaded, otherwise the defaults: fsync and
# synchronous_commit on) and
# Redis (no persistence). --pg-url / --redis-url use a server of yours instead (a
# database of yours for PostgreSQL: the script creates the table aps_scale in it and
# drops it at the end; a Redis database: keys under the prefix aps_scale., deleted).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    cat <<'EOF'
Usage: bash bench/scale-bench.sh [options]
  --pg-sizes N,N     stored schedules on PostgreSQL (default 1000000,10000000; none: skip)
  --redis-sizes N,N  stored schedules on Redis (default 1000000; none: skip)
  --nodes K,K        node processes per run (default 1,3,10,30)
  --burst N          jobs due at one instant (default 10000)
  --rounds R         bursts per run (default 3)
  --period S         seconds between bursts (default 20)
  --pg-url URL       use this PostgreSQL database instead of a private server
  --redis-url URL    use this Redis database instead of a private server
  --history M,M      the nodes' run history, each mode a run per node count: none (no
                     history, the default), plain (history; claims of the due head),
                     partitioned (history; from 4 live nodes each node prefers the
                     partitions it owns; PostgreSQL and a Redis Cluster only)
  --out FILE         JSON lines of the runs (default scale-bench-<time>.jsonl)
  -h, --help         this text
Needs: cargo, psql, jq; for the private servers Debian's postgresql (initdb, pg_ctl) and
redis-server. Disk: about 0.8 GB per million schedules on PostgreSQL.
EOF
}

pg_sizes=1000000,10000000
redis_sizes=1000000
nodes=1,3,10,30
burst=10000
rounds=3
period=20
pg_url=""
redis_url=""
history=none
out="scale-bench-$(date -u +%Y%m%dT%H%M%S).jsonl"
while [ $# -gt 0 ]; do
    case "$1" in
        --pg-sizes) pg_sizes="$2"; shift 2 ;;
        --redis-sizes) redis_sizes="$2"; shift 2 ;;
        --nodes) nodes="$2"; shift 2 ;;
        --burst) burst="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --period) period="$2"; shift 2 ;;
        --pg-url) pg_url="$2"; shift 2 ;;
        --redis-url) redis_url="$2"; shift 2 ;;
        --history) history="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ "$pg_sizes" = none ] && pg_sizes=""
[ "$redis_sizes" = none ] && redis_sizes=""

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
cargo build --release -q -p apscheduler-bench --bin aps-scale-bench >&2
bin="$CARGO_TARGET_DIR/release/aps-scale-bench"
table=aps_scale
work="$(mktemp -d "${TMPDIR:-/tmp}/aps-scale.XXXXXX")"
pg_pid=0
redis_pid=0
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)

spare_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cleanup() {
    if [ -n "$pg_url" ] && [ -n "$pg_sizes" ]; then
        psql "$pg_url" -qc "DROP TABLE IF EXISTS $table, ${table}_schema, ${table}_runs, ${table}_nodes, ${table}_waiters" >/dev/null 2>&1 || true
    fi
    if [ "$pg_pid" != 0 ]; then
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [ -n "$redis_url" ] && [ -n "$redis_sizes" ]; then
        redis-cli -u "$redis_url" --scan --pattern "$table.*" | xargs -r -n 1000 redis-cli -u "$redis_url" DEL >/dev/null 2>&1 || true
    fi
    if [ "$redis_pid" != 0 ]; then kill "$redis_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# A private PostgreSQL; its postmaster's pid is what the CPU figures count (with its children).
start_postgres() {
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -x "$pg_bin/initdb" ] || { echo "initdb not found (Debian package postgresql); or pass --pg-url" >&2; exit 1; }
    mkdir -p "$work/pg"
    [ "$(id -u)" = 0 ] && chown -R postgres "$work"
    "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust >/dev/null
    local port; port="$(spare_port)"
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
        -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=512MB -c shared_preload_libraries=pg_stat_statements" start >/dev/null
    pg_pid="$(head -n 1 "$work/pg/postmaster.pid")"
    pg_url="postgres://postgres@127.0.0.1:$port/postgres"
    psql "$pg_url" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
}

start_redis() {
    local port; port="$(spare_port)"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
        --logfile "$work/redis.log" &
    redis_pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
    redis_url="redis://127.0.0.1:$port/0"
}

# Runs one node count in each history mode; appends the JSON lines to $out and prints
# a table row each.
run_nodes() { # url name stored k server_pid
    local mode
    for mode in ${history//,/ }; do
        APS_SCALE_HISTORY="$mode" run_mode "$@"
    done
}

run_mode() { # url name stored k server_pid (APS_SCALE_HISTORY set)
    local line
    line="$("$bin" run "$1" "$2" "$4" "$burst" "$rounds" "$period" "$5")"
    jq -c --argjson stored "$3" '. + {stored: $stored}' <<<"$line" >>"$out"
    jq -r --argjson stored "$3" '
        [ .store, $stored, .nodes, .history,
          ([.report.bursts[].late_p99_ms | round] | map(tostring) | join("/")),
          ([.report.bursts[].runs_per_s | round] | map(tostring) | join("/")),
          .report.started_twice,
          (.report.claims.claim_p50_ms * 10 | round / 10), (.report.claims.claim_p99_ms * 10 | round / 10),
          (.report.claims.batch_p50_ms * 10 | round / 10), .report.claims.empty,
          (.server_cpu_s * 1000 / .observed_s | round / 10),
          (.nodes_cpu_s * 1000 / .observed_s | round / 10), .load_before ] | @tsv' <<<"$line"
}

header() {
    printf 'store\tstored\tnodes\thistory\tp99 ms per burst\truns/s per burst\ttwice\tclaim p50\tclaim p99\tbatch p50\tempty claims\tserver CPU %%\tnodes CPU %%\tload\n'
}

stored=0
if [ -n "$pg_sizes" ]; then
    [ -z "$pg_url" ] && start_postgres
    echo "== PostgreSQL ($pg_url), results in $out" >&2
    header
    for size in ${pg_sizes//,/ }; do
        "$bin" load "$pg_url" "$table" "$stored" "$size" >&2
        stored="$size"
        psql "$pg_url" -qc "VACUUM ANALYZE $table" >&2
        psql "$pg_url" -Atc "SELECT 'table with indexes: ' || pg_size_pretty(pg_total_relation_size('$table'))" >&2
        for k in ${nodes//,/ }; do
            run_nodes "$pg_url" "$table" "$stored" "$k" "$pg_pid"
        done
    done
fi
if [ -n "$redis_sizes" ]; then
    [ -z "$redis_url" ] && start_redis
    echo "== Redis ($redis_url), results in $out" >&2
    header
    stored=0
    for size in ${redis_sizes//,/ }; do
        "$bin" load "$redis_url" "$table" "$stored" "$size" >&2
        stored="$size"
        redis-cli -u "$redis_url" INFO memory | grep -E '^used_memory_human' >&2
        for k in ${nodes//,/ }; do
            run_nodes "$redis_url" "$table" "$stored" "$k" "$redis_pid"
        done
    done
fi
