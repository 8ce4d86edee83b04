#!/usr/bin/env bash
# Runs the README's first command (`cargo run -p apscheduler-cli -- run --config
# examples/aps.toml`) on a copy of the sample config in a temporary directory, waits for
# the `heartbeat` job's runs to appear in the history (`aps history`), checks that the
# dashboard and the API answer on 127.0.0.1:8642 (its `[http]` table), stops the daemon
# with SIGTERM and checks that it exits 0. Fails after 60 s without runs.
#
# With APS_USE_TEST_BUILD=1 (CI) it runs the `aps` that the workspace's test build
# (scripts/test) has just built (target/debug/aps, the binary the daemon's tests ran)
# instead of building it again with apscheduler-cli's own features;
# scripts/check-features.sh checks that it compiles that way.
set -euo pipefail

cd "$(dirname "$0")/.."
aps="${CARGO_TARGET_DIR:-target}/debug/aps"
if [ "${APS_USE_TEST_BUILD:-}" = 1 ]; then
    [ -x "$aps" ] || { echo "APS_USE_TEST_BUILD=1 but $aps is missing: run scripts/test first" >&2; exit 1; }
else
    cargo build -q -p apscheduler-cli
fi
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
# The sample's [http] table: the dashboard and the API answer on loopback. Each body
# is saved before it is searched: `curl | grep -q` fails under pipefail whenever grep
# finds its match and exits before curl has written the whole page (curl: (23)).
http_ok=0
if curl -fsS http://127.0.0.1:8642/health >/dev/null \
    && curl -fsS -o "$work/dashboard.html" http://127.0.0.1:8642/ \
    && grep -q '<title>' "$work/dashboard.html" \
    && curl -fsS -o "$work/jobs.json" http://127.0.0.1:8642/api/jobs \
    && grep -q '"heartbeat"' "$work/jobs.json"; then
    http_ok=1
fi
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
if [ "$runs" -lt 2 ] || [ "$status" -ne 0 ] || [ "$http_ok" -ne 1 ]; then
    echo "--- FAILED: $runs heartbeat run(s) recorded, dashboard/API answered: $http_ok, daemon exit status $status; its log:" >&2
    cat "$work/daemon.log" >&2
    exit 1
fi
"$aps" jobs list --config "$work/aps.toml"
echo "--- ok: the sample daemon ran heartbeat $runs times, served its dashboard and API, and exited 0 on SIGTERM"
