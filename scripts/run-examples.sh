#!/usr/bin/env bash
# Runs every example of the facade crate (the [[example]] entries of
# crates/apscheduler/Cargo.toml) with `cargo run -q -p apscheduler --example NAME` and
# fails if one fails or runs for more than 20 s.
#
# The 20 s limit applies to the example itself: `timeout` is cargo's runner for the
# example binary, so time spent by cargo (say, waiting for the lock of a target directory
# shared with another build) does not count. A second, outer `timeout` bounds the whole
# cargo command.
#
# Usage: scripts/run-examples.sh [NAME...]   (default: all examples)
# Environment: EXAMPLE_TIMEOUT (seconds per example, default 20), CARGO_TIMEOUT (seconds
# per cargo command, default 600); CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "$0")/.."
manifest=crates/apscheduler/Cargo.toml
limit="${EXAMPLE_TIMEOUT:-20}"
cargo_limit="${CARGO_TIMEOUT:-600}"
runner="target.'cfg(all())'.runner=['timeout', '--kill-after=5', '${limit}']"

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

# Build first, so that the time limit measures running, not compiling.
cargo build -q -p apscheduler --examples

failed=()
for name in "${names[@]}"; do
    echo "=== example $name"
    start=$(date +%s.%N)
    status=0
    timeout --kill-after=10 "$cargo_limit" \
        cargo run -q -p apscheduler --example "$name" --config "$runner" </dev/null || status=$?
    elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "--- FAILED: $name ran for more than ${limit} s (killed after ${elapsed} s)" >&2
        failed+=("$name (timeout)")
    elif [ "$status" -ne 0 ]; then
        echo "--- FAILED: $name exited with status $status after ${elapsed} s" >&2
        failed+=("$name (exit $status)")
    else
        echo "--- ok: $name (${elapsed} s)"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "${#failed[@]} of ${#names[@]} examples failed: ${failed[*]}" >&2
    exit 1
fi
echo "all ${#names[@]} examples passed"
