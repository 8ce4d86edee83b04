#!/usr/bin/env bash
# Runs examples/replicas.rs as two replicas on one PostgreSQL database, with its
# demonstration job (a fire time every second, each run printing it), stops both with
# SIGTERM and checks what the README says of it: no fire time ran twice, none between
# the first and the last was lost, and each replica stopped cleanly on the signal.
#
# Usage: scripts/run-replicas.sh [BINARY]   (default: builds and runs the example)
# Environment: APS_TEST_POSTGRES_URL (a database of that server, `aps_replicas_example`,
# is created afresh for the run; `source .ci/services.sh postgres` starts one);
# REPLICAS_SECONDS (how long both run, default 8). Without a server it skips, except
# under CI=true, where that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

url=${APS_TEST_POSTGRES_URL:-}
if [ -z "$url" ]; then
    if [ "${CI:-}" = true ]; then
        echo "FAILED: run-replicas.sh needs PostgreSQL: APS_TEST_POSTGRES_URL is not set" >&2
        exit 1
    fi
    echo "SKIPPED replicas: no PostgreSQL (set APS_TEST_POSTGRES_URL; scripts/test postgres starts one)"
    exit 0
fi
if [ "$#" -gt 0 ]; then
    bin=$1
else
    cargo build -q -p apscheduler --example replicas
    bin="${CARGO_TARGET_DIR:-target}/debug/examples/replicas"
fi

# A database of its own, so that the jobs of earlier runs and of tests are not there.
db=aps_replicas_example
PGOPTIONS='--client-min-messages=warning' psql -q -v ON_ERROR_STOP=1 "$url" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
base=${url%%\?*}
query=${url#"$base"}
demo_url="${base%/*}/$db$query"

work=$(mktemp -d)
pids=()
trap 'kill -KILL "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
for r in a b; do
    # Its log (tracing's, to stdout) and the ticks in one file.
    DATABASE_URL=$demo_url REPLICAS_DEMO=1 RUST_LOG=info "$bin" >"$work/$r.out" 2>&1 &
    pids+=($!)
done
sleep "${REPLICAS_SECONDS:-8}"
kill -TERM "${pids[@]}"

failed=0
fail() { echo "FAILED: $*" >&2; failed=1; }
for i in 0 1; do
    r=$([ "$i" = 0 ] && echo a || echo b)
    status=0
    # Ten seconds at most for a replica to stop; one still running then is a failure.
    for _ in $(seq 100); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
        fail "replica $r still ran 10 s after SIGTERM"
        kill -KILL "${pids[$i]}"
    fi
    wait "${pids[$i]}" || status=$?
    echo "--- replica $r (exit status $status): $(grep -c '^tick ' "$work/$r.out" || true) ticks"
    grep -E 'received|ERROR|WARN' "$work/$r.out" | sed 's/^/    /' || true
    [ "$status" = 0 ] || { fail "replica $r exited with status $status"; cat "$work/$r.out" >&2; }
    grep -q 'SIGTERM received' "$work/$r.out" || fail "replica $r did not log that SIGTERM stopped it"
done

sort "$work"/a.out "$work"/b.out | grep '^tick ' | sed 's/^tick //' >"$work/ticks"
twice=$(uniq -d "$work/ticks")
[ -z "$twice" ] || fail "fire times run twice: $twice"
count=$(uniq "$work/ticks" | wc -l)
[ "$count" -ge 3 ] || fail "only $count fire times ran in ${REPLICAS_SECONDS:-8} s"
# Every second from the first fire time to the last, once.
if [ "$count" -gt 0 ]; then
    first=$(date -d "$(head -n 1 "$work/ticks")" +%s)
    last=$(date -d "$(tail -n 1 "$work/ticks")" +%s)
    [ $((last - first + 1)) = "$count" ] ||
        fail "$((last - first + 1 - count)) fire times lost between the first and the last"
fi
[ "$failed" = 0 ] || exit 1
echo "two replicas ran $count fire times, each once"
