#!/usr/bin/env bash
# CPU per run at 1,000 jobs a second, against the bare cost of one timed wake-up, in
# the same run (docs/PERFORMANCE.md, "CPU at 1,000 jobs/s, where it goes").
#
# Usage: bash bench/cpu-per-run.sh [ROUNDS] [BASELINE_BINARY]
#   ROUNDS: default 5 (about 25 s a round, 45 s with a baseline).
#   BASELINE_BINARY: `aps-bench` built from another commit (see below).
#
# Each round runs, one after the other (never at once, on a 2-core machine):
# 1. bench/wake-cost.c: a C thread sleeping to 2,000 deadlines 1 ms apart
#    (clock_nanosleep), its CPU time per wake-up;
# 2. `aps-bench child rs steady`: 1,000 interval jobs of 1 s spread 1 ms apart on a
#    `BackgroundScheduler` (default memory store and thread pool, the public API), the
#    process's CPU time over 20 s divided by the 20,000 runs.
# It prints both per round, their ratio, and the median ratio.
#
# With BASELINE_BINARY (or APS_BENCH_BASELINE=/path/to/another/aps-bench), a build of
# an earlier commit (e.g. from `git worktree add` and its own target directory), each
# round also runs that binary's steady scenario, before this one's in odd rounds and
# after it in even ones (so that drift on a shared machine touches both alike), and
# prints its figures beside them, with the median and range of each build's µs per run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
rounds="${1:-5}"
cargo build --release -q -p apscheduler-bench
gcc -O2 -o "$CARGO_TARGET_DIR/wake-cost" bench/wake-cost.c
bench="$CARGO_TARGET_DIR/release/aps-bench"

baseline="${2:-${APS_BENCH_BASELINE:-}}"

# µs of CPU per run and p99 lateness of one steady run of the aps-bench binary $1.
steady() {
    local line pct p99
    line=$("$1" child rs steady | tail -n 1)
    pct=$(sed -E 's/.*"steady_cpu_pct":([0-9.]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.*"steady_p99_ms":([0-9.]+).*/\1/' <<<"$line")
    # % of a core at 1,000 runs a second = µs per run / 10.
    awk -v p="$pct" -v l="$p99" 'BEGIN { printf "%.1f %s\n", p * 10, l }'
}

median() {
    sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

span() {
    sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'
}

ratios=()
base_ratios=()
runs=()
base_runs=()
if [[ -n "$baseline" ]]; then
    printf '| round | bare wake-up, µs CPU | scheduler, µs CPU per run | ratio | p99 lateness, ms | baseline, µs CPU per run | baseline ratio | baseline p99, ms |\n'
    printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
else
    printf '| round | bare wake-up, µs CPU | scheduler, µs CPU per run | ratio | p99 lateness, ms |\n'
    printf '|---:|---:|---:|---:|---:|\n'
fi
for round in $(seq 1 "$rounds"); do
    wake=$("$CARGO_TARGET_DIR/wake-cost" | sed -E 's/.*wake-up: ([0-9.]+) us.*/\1/')
    if [[ -n "$baseline" ]] && ((round % 2 == 1)); then
        read -r base_run base_p99 < <(steady "$baseline")
    fi
    read -r per_run p99 < <(steady "$bench")
    ratio=$(awk -v r="$per_run" -v w="$wake" 'BEGIN { printf "%.2f", r / w }')
    ratios+=("$ratio")
    runs+=("$per_run")
    if [[ -n "$baseline" ]]; then
        if ((round % 2 == 0)); then
            read -r base_run base_p99 < <(steady "$baseline")
        fi
        base_runs+=("$base_run")
        base_ratio=$(awk -v r="$base_run" -v w="$wake" 'BEGIN { printf "%.2f", r / w }')
        base_ratios+=("$base_ratio")
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$round" "$wake" "$per_run" "$ratio" "$p99" "$base_run" "$base_ratio" "$base_p99"
    else
        printf '| %s | %s | %s | %s | %s |\n' "$round" "$wake" "$per_run" "$ratio" "$p99"
    fi
done
printf '\nmedian ratio: %s (target: at most 1.5)\n' "$(printf '%s\n' "${ratios[@]}" | median)"
if [[ -n "$baseline" ]]; then
    printf 'baseline median ratio: %s\n' "$(printf '%s\n' "${base_ratios[@]}" | median)"
    printf 'µs CPU per run, median (range): this %s (%s), baseline %s (%s)\n' \
        "$(printf '%s\n' "${runs[@]}" | median)" "$(printf '%s\n' "${runs[@]}" | span)" \
        "$(printf '%s\n' "${base_runs[@]}" | median)" "$(printf '%s\n' "${base_runs[@]}" | span)"
fi
