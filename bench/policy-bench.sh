#!/usr/bin/env bash
# What run policies cost: the `add` and `burst` rounds of the engine's `policy_bench`
# example, one process per round, alternating between a build of another commit
# (BASE, default policy only) and this checkout (default policy, then with a policy).
#
# Usage: bash bench/policy-bench.sh BASE_BINARY [ROUNDS]
#   BASE_BINARY: `policy_bench` built from the base commit (its `add`/`burst` only, see
#   docs/PERFORMANCE.md for how it is built). ROUNDS: default 7.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base="$1"
rounds="${2:-7}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"
cargo build --release -p apscheduler-engine --example policy_bench >&2
this="$CARGO_TARGET_DIR/release/examples/policy_bench"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((i = 0; i < rounds; i++)); do
  echo "base    $("$base")"
  echo "default $("$this" cost default)"
  echo "policy  $("$this" cost policy)"
done | tee /dev/stderr | awk '
  { add[$1] = add[$1] " " $3; burst[$1] = burst[$1] " " $5 }
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  END {
    print "| build | add 100,000 interval jobs before start: µs per add (median) | 10,000 date jobs due at once, one inline pass: ms (median) |"
    print "|---|---:|---:|"
    print "| base, default policy | " median(add["base"]) " | " median(burst["base"]) " |"
    print "| this, default policy | " median(add["default"]) " | " median(burst["default"]) " |"
    print "| this, with a policy | " median(add["policy"]) " | " median(burst["policy"]) " |"
  }'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
