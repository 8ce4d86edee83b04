#!/usr/bin/env bash
# Checks that the facade builds with no default features, with each backend feature
# alone (no defaults), and with all of them, so a feature that silently leans on another
# one (or on the defaults) is caught. Then that the examples and the `aps` daemon build
# as `cargo run -p apscheduler --example NAME` and `cargo run -p apscheduler-cli` build
# them, with their own package's features rather than the whole workspace's (CI runs the
# binaries of its workspace test build). `cargo check` only: type-checking is what
# differs. A check fails on any warning too: code that only some features use shows up
# as dead code in the builds without them.
#
# Usage: scripts/check-features.sh   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=crates/apscheduler/Cargo.toml
# Every feature of the facade but `default`, read from its [features] table.
mapfile -t features < <(awk '
    /^\[features\]/ { in_features = 1; next }
    /^\[/ { in_features = 0 }
    in_features && /^[a-z0-9_-]+[[:space:]]*=/ { sub(/[[:space:]]*=.*/, ""); if ($0 != "default") print }
' "$manifest")

check() { # label, cargo arguments...
    local label=$1; shift
    printf '  %-28s ' "$label"
    if ! out=$(cargo check -q --locked "$@" 2>&1); then
        echo FAILED; echo "$out" >&2; exit 1
    fi
    # With -q cargo still prints the compiler's warnings (replayed from its cache when
    # nothing is rebuilt), each starting a line with `warning:`.
    if grep -q '^warning' <<<"$out"; then
        echo "FAILED: warnings"; echo "$out" >&2; exit 1
    fi
    echo ok
}

check "no default features" -p apscheduler --no-default-features
for f in "${features[@]}"; do
    check "$f alone" -p apscheduler --no-default-features --features "$f"
done
check "all features" -p apscheduler --all-features
check "examples, as cargo run -p" -p apscheduler --examples
check "aps, as cargo run -p" -p apscheduler-cli --bins

# The SQL store without SQLite: a PostgreSQL-only build links no SQLite.
printf '  %-28s ' "store-sql-postgres: no SQLite"
if cargo tree -q --locked -p apscheduler --no-default-features --features store-sql-postgres \
    -e normal --prefix none | grep -q '^sqlx-sqlite '; then
    echo FAILED; echo "store-sql-postgres pulls in sqlx-sqlite" >&2; exit 1
fi
echo ok
