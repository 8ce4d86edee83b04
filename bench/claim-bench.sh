#!/usr/bin/env bash
# Partitioned claiming on PostgreSQL (crates/bench, aps-claim-bench): STORED jobs, a
# burst of BURST due at one instant, drained by 1, 3, 10 and 30 claimers (each its own
# store and connection, as a node has) with plain claims, then with claims preferring
# the partitions each owns by rendezvous hashing (what the engine does from four live
# nodes on). The store's claim and release only: no runs, no run history.
#
# In a database of its own, created and dropped on APS_TEST_POSTGRES_URL's server
# (default postgres://root@127.0.0.1:5432/test).
#
# Usage: bash bench/claim-bench.sh [STORED] [BURST] [CLAIMERS] [without-partition-index]
#        (default 100000 10000 1,3,10,30; the last: drop the partition index and run
#        plain claims only, to compare with a table without partitions)
# APS_BENCH_PROFILE=debug builds without optimizations (the claims run in PostgreSQL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
stored="${1:-100000}"
burst="${2:-10000}"
claimers="${3:-1,3,10,30}"
pg="${APS_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"
profile="${APS_BENCH_PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release -q -p apscheduler-bench --bin aps-claim-bench >&2
else
  cargo build -q -p apscheduler-bench --bin aps-claim-bench >&2
  profile=debug
fi
bin="$CARGO_TARGET_DIR/$profile/aps-claim-bench"

db="aps_claim_bench_$$"
psql "$pg" -qc "CREATE DATABASE $db"
trap 'psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
echo "== PostgreSQL: $stored stored, a burst of $burst due, claimers $claimers" >&2
"$bin" "${pg%/*}/$db" "$stored" "$burst" "$claimers" ${4:+"$4"}
