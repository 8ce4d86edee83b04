#!/usr/bin/env bash
# Compares next-fire-time computation of apscheduler-rs's CronTrigger with
# APScheduler 3.11's, on the cases of crates/triggers/benches/next_fire.rs.
#
# Usage: bash bench/trigger-bench.sh
#
# 1. Creates a venv with APScheduler 3.11 under $HOME/.cache/aps-bench-venv (override
#    with APS_BENCH_VENV) unless one is already there.
# 2. Times APScheduler with bench/apscheduler_triggers.py (timeit, median of 5).
# 3. Runs `cargo bench -p apscheduler-triggers --bench next_fire` (criterion).
# 4. Prints one Markdown table: expression, zone, apscheduler-rs ns/call (criterion's
#    median estimate), APScheduler µs/call, ratio (APScheduler time / apscheduler-rs
#    time), and whether the target is met (a-c and chained a: <= 500 ns,
#    d: <= 1000 ns).
#
# The two benchmarks run one after the other, never at the same time: on a 2-core
# machine running them together would skew both.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
venv="${APS_BENCH_VENV:-$HOME/.cache/aps-bench-venv}"
py="$venv/bin/python"

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

# Other processes skew the numbers: the load average is shown next to the table.
load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== APScheduler: bench/apscheduler_triggers.py" >&2
"$py" bench/apscheduler_triggers.py --tsv | tee "$work/apscheduler.tsv" >&2

# Results older than this stamp are from an earlier run: refuse them below.
touch "$work/stamp"
echo "== apscheduler-rs: cargo bench -p apscheduler-triggers --bench next_fire" >&2
cargo bench -p apscheduler-triggers --bench next_fire >&2

# CARGO_TARGET_DIR is always set above, and it overrides any target-dir in cargo config.
target_dir="$CARGO_TARGET_DIR"

load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
machine="$(nproc) cores, load average $load_before before, $load_after after"

echo >&2
"$py" - "$work/apscheduler.tsv" "$target_dir/criterion/cron" "$work/stamp" "$machine" <<'EOF'
import json
import os
import sys
from importlib.metadata import version

tsv, criterion_dir, stamp, machine = sys.argv[1:]
since = os.path.getmtime(stamp)

# Targets, in ns per call. The chained call is (a) as the scheduler
# makes it after each run, so it is held to (a)'s target.
TARGETS = {
    "a_minute_every_5": 500,
    "a_minute_every_5_chained": 500,
    "b_day_last_sun": 500,
    "c_month_day_3rd_fri_hour": 500,
    "d_feb_29_2030": 1000,
}

rows = []
missed = 0
with open(tsv, encoding="utf-8") as f:
    for line in f:
        case, zone_id, zone, expr, py_us = line.rstrip("\n").split("\t")
        path = os.path.join(criterion_dir, case, zone_id, "new", "estimates.json")
        if not os.path.exists(path) or os.path.getmtime(path) < since:
            sys.exit(f"no fresh criterion result for {case}/{zone_id}: {path}")
        with open(path, encoding="utf-8") as e:
            rs_ns = json.load(e)["median"]["point_estimate"]
        ratio = float(py_us) * 1000 / rs_ns
        target = TARGETS.get(case)
        if target is None:
            verdict = "-"
        elif rs_ns <= target:
            verdict = f"<= {target} ns: met"
        else:
            verdict = f"<= {target} ns: MISSED"
            missed += 1
        rows.append((f"`{expr}`", zone, f"{rs_ns:.0f}", f"{float(py_us):.2f}",
                     f"{ratio:.0f}x", verdict))

header = ("expression", "zone", "apscheduler-rs ns/call", "APScheduler µs/call",
          "ratio", "target")
print(f"apscheduler-rs vs APScheduler {version('APScheduler')}: "
      "next_fire_time(None, now), now = 2024-01-01 00:00:00 in the zone; "
      "(chained): next_fire_time(Some(prev), prev), prev = the first fire time")
print()
print("| " + " | ".join(header) + " |")
print("|" + "|".join(["---"] * 2 + ["---:"] * 3 + ["---"]) + "|")
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
print("ratio = APScheduler time / apscheduler-rs time per call")
print(f"machine: {machine}")
if missed:
    print(f"{missed} target(s) MISSED")
EOF
