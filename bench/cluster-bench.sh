#!/usr/bin/env bash
# Several scheduler processes on one shared store, through the public API
# (crates/bench, aps-cluster-bench): 1, 2 and 3 processes, each a BackgroundScheduler
# with the thread executor, running JOBS interval jobs that all fire at the same
# instant of every second; then one scheduler pass (Engine::process_jobs) and, as the
# inner path, the store's claim alone, with 100,000 stored jobs and 64 due.
# APScheduler 3.x cannot share a job store between schedulers: there is no peer run.
#
# On PostgreSQL (a database of its own, created and dropped on APS_TEST_POSTGRES_URL's
# server, default postgres://root@127.0.0.1:5432/test) and Redis (database 14 of
# APS_TEST_REDIS_URL's server, default redis://127.0.0.1:6379/, flushed).
#
# Usage: bash bench/cluster-bench.sh [JOBS] [SECONDS]   (default 2000 jobs, 15 s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
jobs="${1:-2000}"
seconds="${2:-15}"
pg="${APS_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"
redis="${APS_TEST_REDIS_URL:-redis://127.0.0.1:6379/}"
cargo build --release -q -p apscheduler-bench --bin aps-cluster-bench >&2
bin="$CARGO_TARGET_DIR/release/aps-cluster-bench"

db="aps_cluster_bench_$$"
psql "$pg" -qc "CREATE DATABASE $db"
trap 'psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
echo "== PostgreSQL: $jobs jobs every second, ${seconds} s per node count" >&2
"$bin" "${pg%/*}/$db" "$jobs" "$seconds" 1,2,3

redis_db="$(printf '%s' "${redis%/}" | sed -E 's|/[0-9]+$||')/14"
redis-cli -u "$redis_db" FLUSHDB >/dev/null
echo "== Redis: $jobs jobs every second, ${seconds} s per node count" >&2
"$bin" "$redis_db" "$jobs" "$seconds" 1,2,3
redis-cli -u "$redis_db" FLUSHDB >/dev/null
