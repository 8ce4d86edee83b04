#!/usr/bin/env bash
# Runs the README's first command (`cargo run -p apscheduler-cli -- run --config
# examples/aps.toml`) on a copy of the sample config in a temporary directory, waits for
# the `heartbeat` job's runs to appear in the history (`aps history`), stops the daemon
# with SIGTERM and checks that it exits 0. Fails after 60 s without runs.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo build -q -p apscheduler-cli
aps="${CARGO_TARGET_DIR:-target}/debug/aps"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp examples/aps.toml "$work/aps.toml"

"$aps" run --config "$work/aps.toml" 2>"$work/daemon.log" &
daemon=$!
runs=0
for _ in $(seq 1 60); do
    sleep 1
    runs=$("$aps" history --config "$work/aps.toml" --job heartbeat --outcome success --json \
        | grep -c '"run_id"' || true)
    [ "$runs" -ge 2 ] && break
done
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
if [ "$runs" -lt 2 ] || [ "$status" -ne 0 ]; then
    echo "--- FAILED: $runs heartbeat run(s) recorded, daemon exit status $status; its log:" >&2
    cat "$work/daemon.log" >&2
    exit 1
fi
"$aps" jobs list --config "$work/aps.toml"
echo "--- ok: the sample daemon ran heartbeat $runs times and exited 0 on SIGTERM"
