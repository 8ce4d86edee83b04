#!/usr/bin/env bash
# Runs every example of the facade crate (the [[example]] entries of
# crates/apscheduler/Cargo.toml) and fails if one fails or runs for more than 20 s.
#
# The examples are built first, as `cargo run -q -p apscheduler --example NAME` builds
# them (`cargo build -p apscheduler --examples`), then each binary is run under
# `timeout`: the limit measures running, not compiling. With APS_USE_TEST_BUILD=1 (CI)
# nothing is built: `cargo test --workspace` has just built every example, with the
# workspace's features, and those binaries are run (building them again with the
# facade's own features would compile most dependencies a second time;
# scripts/check-features.sh checks that the examples compile that way).
#
# Usage: scripts/run-examples.sh [NAME...]   (default: all examples)
# Environment: EXAMPLE_TIMEOUT (seconds per example, default 20), CARGO_TIMEOUT (seconds
# for the build, default 600), APS_USE_TEST_BUILD; CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "$0")/.."
manifest=crates/apscheduler/Cargo.toml
limit="${EXAMPLE_TIMEOUT:-20}"
cargo_limit="${CARGO_TIMEOUT:-600}"
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
            echo "APS_USE_TEST_BUILD=1 but $examples/$name is missing: run cargo test --workspace first" >&2
            exit 1
        }
    done
else
    timeout --kill-after=10 "$cargo_limit" cargo build -q -p apscheduler --examples
fi

failed=()
for name in "${names[@]}"; do
    echo "=== example $name"
    start=$(date +%s.%N)
    status=0
    timeout --kill-after=5 "$limit" "$examples/$name" </dev/null || status=$?
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
