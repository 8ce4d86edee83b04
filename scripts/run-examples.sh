#!/usr/bin/env bash
# Runs every example of the facade crate (the [[example]] entries of
# crates/apscheduler/Cargo.toml) and fails if one fails or runs for more than 20 s.
#
# The examples are built first, as `cargo run -q -p apscheduler --example NAME` builds
# them (`cargo build -p apscheduler --examples`), then each binary is run under
# `timeout`: the limit measures running, not compiling. With APS_USE_TEST_BUILD=1 (CI)
# nothing is built: the workspace's test build (scripts/test) has just built every
# example, with the workspace's features, and those binaries are run (building them
# again with the facade's own features would compile most dependencies a second time;
# scripts/check-features.sh checks that the examples compile that way).
#
# Usage: scripts/run-examples.sh [NAME...]   (default: all examples)
# The `replicas` example runs as two replicas on PostgreSQL through scripts/run-replicas.sh
# (APS_TEST_POSTGRES_URL; without it, skipped, except under CI=true).
# Environment: EXAMPLE_TIMEOUT (seconds per example, default 20), EXAMPLE_JOBS (examples
# run at once, default 4), CARGO_TIMEOUT (seconds for the build, default 600),
# APS_USE_TEST_BUILD; CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "$0")/.."
manifest=crates/apscheduler/Cargo.toml
limit="${EXAMPLE_TIMEOUT:-20}"
cargo_limit="${CARGO_TIMEOUT:-600}"
jobs="${EXAMPLE_JOBS:-4}"
examples="${CARGO_TARGET_DIR:-target}/debug/examples"

if [ "$#" -gt 0 ]; then
    names=("$@")
else
    # The name = "..." line that follows each [[example]] header.
    mapfile -t names < <(awk '
        /^\[\[example\]\]/ { in_example = 1; next }
        /^\[/ { in_example = 0 }
        in_example && /^name[[:space:]]*=/ {
            gsub(/^name[[:space:]]*=[[:space:]]*"|"[[:space:]]*$/, "")
            print
            in_example = 0
        }' "$manifest")
fi
if [ "${#names[@]}" -eq 0 ]; then
    echo "no examples found in $manifest" >&2
    exit 1
fi

if [ "${APS_USE_TEST_BUILD:-}" = 1 ]; then
    for name in "${names[@]}"; do
        [ -x "$examples/$name" ] || {
            echo "APS_USE_TEST_BUILD=1 but $examples/$name is missing: run scripts/test first" >&2
            exit 1
        }
    done
else
    timeout --kill-after=10 "$cargo_limit" cargo build -q -p apscheduler --examples
fi

# The examples spend their time waiting for their jobs' fire times, not computing:
# EXAMPLE_JOBS of them run at once, each with its output kept apart and shown in turn.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run_one() { # name: output in $work/NAME.out, verdict (ok/timeout/exit N) and seconds in $work/NAME.verdict
    local name=$1 start status=0 elapsed verdict=ok
    start=$(date +%s.%N)
    local run=("$examples/$name") seconds=$limit
    # Two replicas on PostgreSQL, checked (scripts/run-replicas.sh): 8 s of running, and
    # two starts and stops.
    if [ "$name" = replicas ]; then
        run=(bash scripts/run-replicas.sh "$examples/$name") seconds=$((limit + 20))
    fi
    timeout --kill-after=5 "$seconds" "${run[@]}" </dev/null >"$work/$name.out" 2>&1 || status=$?
    elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        verdict=timeout
    elif [ "$status" -ne 0 ]; then
        verdict="exit $status"
    fi
    echo "$verdict|$elapsed" >"$work/$name.verdict"
}
running=0
for name in "${names[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$name" &
    running=$((running + 1))
done
wait

failed=()
for name in "${names[@]}"; do
    echo "=== example $name"
    cat "$work/$name.out"
    IFS='|' read -r verdict elapsed <"$work/$name.verdict"
    case "$verdict" in
        ok) echo "--- ok: $name (${elapsed} s)" ;;
        timeout)
            echo "--- FAILED: $name ran for too long (killed after ${elapsed} s)" >&2
            failed+=("$name (timeout)") ;;
        *)
            echo "--- FAILED: $name exited with status ${verdict#exit } after ${elapsed} s" >&2
            failed+=("$name ($verdict)") ;;
    esac
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "${#failed[@]} of ${#names[@]} examples failed: ${failed[*]}" >&2
    exit 1
fi
echo "all ${#names[@]} examples passed"
