#!/usr/bin/env bash
# What writing each run's start to the run history before it starts costs
# (`HistoryOptions::record_starts`), through the public API (crates/bench,
# aps-start-bench): a scheduler pass claiming, recording, releasing and starting 64 due
# jobs on PostgreSQL with its run history, the setting off and on, alternately.
#
# On a database of its own, created and dropped on APS_TEST_POSTGRES_URL's server
# (default postgres://root@127.0.0.1:5432/test).
#
# Usage: bash bench/start-bench.sh [PASSES]   (passes per round, default 15; 4 rounds)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
passes="${1:-15}"
pg="${APS_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"
cargo build --release -q -p apscheduler-bench --bin aps-start-bench >&2
bin="$CARGO_TARGET_DIR/release/aps-start-bench"

db="aps_start_bench_$$"
psql "$pg" -qc "CREATE DATABASE $db"
trap 'psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
"$bin" "${pg%/*}/$db" "$passes"
