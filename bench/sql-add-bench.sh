#!/usr/bin/env bash
# Adding jobs to a running scheduler with a SQL store, through the public API, side by
# side with APScheduler 3.11 doing the same calls, in one run:
#   apscheduler-rs: BackgroundScheduler + SqlJobStore, `add_job` one after another, from
#                   8 threads at once, and one `add_jobs` of 10,000 (crates/bench,
#                   aps-sql-bench)
#   APScheduler:    BackgroundScheduler + SQLAlchemyJobStore, `add_job` one after
#                   another and from 8 threads (bench/apscheduler_sql_add.py)
# on SQLite (a file in a temporary folder) and PostgreSQL (APS_TEST_POSTGRES_URL,
# default postgres://root@127.0.0.1:5432/test).
#
# Usage: bash bench/sql-add-bench.sh [ADDS]   (default 500 adds per round)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
venv="${APS_BENCH_VENV:-$HOME/.cache/aps-bench-venv}"
py="$venv/bin/python"
adds="${1:-500}"
pg="${APS_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"

if ! "$py" -c 'import apscheduler, sqlalchemy, psycopg2' 2>/dev/null; then
  echo "== installing APScheduler 3.11, SQLAlchemy and psycopg2 into $venv" >&2
  [ -x "$py" ] || python3 -m venv "$venv"
  "$py" -m pip install --quiet --disable-pip-version-check 'apscheduler==3.11.*' sqlalchemy psycopg2-binary
fi
cargo build --release -q -p apscheduler-bench --bin aps-sql-bench >&2
bin="$CARGO_TARGET_DIR/release/aps-sql-bench"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

field() { "$py" -c 'import json,sys; d=json.loads(sys.stdin.read()); v=d.get(sys.argv[1]); print("-" if v is None else ("%.3f" % v if v < 1000 else "%.0f" % v))' "$1"; }
row() { # label, json
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$(field add_ms <<<"$2")" \
    "$(field add_concurrent_ms <<<"$2")" "$(field batch_jobs_per_s <<<"$2")" \
    "$(field inner_store_add_ms <<<"$2")"
}

echo "| run | add_job, ms (1 thread) | add_job, ms per add (8 threads) | add_jobs, jobs/s | inner path: store add_job, ms |"
echo "|---|---|---|---|---|"
row "apscheduler-rs, SQLite (WAL, synchronous NORMAL: the default)" \
  "$("$bin" "sqlite:///$work/rs-normal.db" "$adds" 8 10000 2>/dev/null)"
row "apscheduler-rs, SQLite (WAL, sqlite_sync_full)" \
  "$(APS_SQLITE_SYNC_FULL=1 "$bin" "sqlite:///$work/rs-full.db" "$adds" 8 10000 2>/dev/null)"
row "APScheduler 3.11, SQLite (SQLAlchemy's defaults)" \
  "$("$py" bench/apscheduler_sql_add.py "sqlite:///$work/py.db" "$adds" 8 2>/dev/null)"
row "apscheduler-rs, PostgreSQL" "$("$bin" "$pg" "$adds" 8 10000 2>/dev/null)"
row "APScheduler 3.11, PostgreSQL (psycopg2)" \
  "$("$py" bench/apscheduler_sql_add.py "${pg/postgres:/postgresql+psycopg2:}" "$adds" 8 2>/dev/null)"
