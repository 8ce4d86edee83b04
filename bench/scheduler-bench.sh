#!/usr/bin/env bash
# Compares the scheduler of apscheduler-rs with APScheduler 3.11 and
# tokio-cron-scheduler on the scenarios of docs/PERFORMANCE.md, on this machine, in one run.
#
# Usage: bash bench/scheduler-bench.sh [--quick]
#
# 1. Creates a venv with APScheduler 3.11 under $HOME/.cache/aps-bench-venv (override
#    with APS_BENCH_VENV) unless one is already there (bench/trigger-bench.sh uses the
#    same one).
# 2. Builds `aps-bench` (crates/bench) in release mode.
# 3. Runs bench/apscheduler_scheduler.py (APScheduler), then `aps-bench`
#    (apscheduler-rs and tokio-cron-scheduler), one after the other: never at the same
#    time, nor during the build, since on a 2-core machine they would skew each other.
#    Every scenario of each runs in a fresh process.
# 4. Prints one Markdown table: scenario, apscheduler-rs, APScheduler,
#    tokio-cron-scheduler, ratio vs APScheduler, target, met?
#
# --quick runs every scenario shortened (a smoke test, not a measurement).
# Every scenario but idle runs several times (adds and burst 5, steady and every100 3),
# every run in a fresh process, and the median is reported (the range is in the notes).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
venv="${APS_BENCH_VENV:-$HOME/.cache/aps-bench-venv}"
py="$venv/bin/python"

quick=()
case "${1:-}" in
  "") ;;
  --quick) quick=(--quick) ;;
  *) echo "usage: bash bench/scheduler-bench.sh [--quick]" >&2; exit 2 ;;
esac

have_apscheduler() {
  [ -x "$py" ] && "$py" - <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("APScheduler").startswith("3.11.") else 1)
EOF
}

if ! have_apscheduler; then
  echo "== creating $venv with APScheduler 3.11" >&2
  [ -x "$py" ] || python3 -m venv "$venv"
  "$py" -m pip install --quiet --disable-pip-version-check 'apscheduler==3.11.*'
  have_apscheduler || { echo "APScheduler 3.11 is not importable from $venv" >&2; exit 1; }
fi

echo "== cargo build --release -p apscheduler-bench" >&2
cargo build --release -p apscheduler-bench >&2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Other work on the machine skews latency and throughput: report the load around the run.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "== APScheduler: bench/apscheduler_scheduler.py ${quick[*]:-}" >&2
"$py" bench/apscheduler_scheduler.py "${quick[@]}" >"$work/apscheduler.json"

echo "== apscheduler-rs and tokio-cron-scheduler: aps-bench ${quick[*]:-}" >&2
"$CARGO_TARGET_DIR/release/aps-bench" "${quick[@]}" --apscheduler "$work/apscheduler.json" \
  >"$work/table.md"

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "Machine: $(nproc) cores (${cpu:-unknown CPU}), $(uname -sr); $(rustc --version);" \
  "Python $("$py" -c 'import sys; print(sys.version.split()[0])')"
echo "Load average (1, 5, 15 min): $load_before before the run, $load_after after"
echo
cat "$work/table.md"
