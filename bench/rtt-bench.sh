#!/usr/bin/env bash
# Start lateness with the store a network hop away: 20 jobs due each second for 10 s,
# an `AsyncScheduler` reaching PostgreSQL, MySQL/MariaDB and Redis through a loopback
# TCP proxy (crates/testkit/src/proxy.rs) that delays each direction by 25 ms (+50 ms
# round-trip time), without and with run history. Prints p50 / p99 / max per case and
# fails when a p99 is over 300 ms.
#
# The servers: APS_TEST_POSTGRES_URL, APS_TEST_MYSQL_URL, APS_TEST_REDIS_URL (as
# `source .ci/services.sh` sets them). One case at a time, on an otherwise idle machine.
#
# Usage: bash bench/rtt-bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
for crate in apscheduler-store-sql apscheduler-store-redis; do
  cargo test --release -q -p "$crate" --test round_trips -- --ignored --nocapture --test-threads 1
done
