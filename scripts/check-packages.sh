#!/usr/bin/env bash
# Checks that every published crate packages and compiles from its package alone.
#
# 1. `cargo package --workspace --no-verify` makes the .crate files in dependency order,
#    each against a local registry of those made before it (no network), so a missing
#    version, an unpublishable dependency or bad metadata fails here.
# 2. The .crate files are unpacked into one scratch workspace whose members depend on each
#    other through `[patch.crates-io]`, and `cargo check` compiles them there: a file a
#    crate needs but does not ship (an include_str! of a path outside it, a missing
#    module) fails here. One check of all the packages together, with the lock file's
#    versions, instead of cargo's per-package verify build: the same files compiled once,
#    not every crate's dependency tree again with its own feature set (that took 11 CPU
#    minutes here).
#
# Usage: scripts/check-packages.sh   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"

cargo package --workspace --exclude apscheduler-bench --exclude apscheduler-sim --no-verify --locked --allow-dirty -q
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
members=()
patches=()
for crate in "$target"/package/*.crate; do
    name=$(basename "$crate" .crate)
    # Only this workspace's packages at this version (older .crate files may linger).
    pkg=${name%-*}
    version=${name##*-}
    [ "$(cargo metadata --no-deps --format-version 1 --locked -q \
        | python3 -c "import json,sys; print(any(p['name']=='$pkg' and p['version']=='$version' for p in json.load(sys.stdin)['packages']))")" = True ] || continue
    tar -xzf "$crate" -C "$scratch"
    members+=("\"$name\"")
    patches+=("$pkg = { path = \"$name\" }")
done
[ "${#members[@]}" -gt 0 ] || { echo "no packages were made" >&2; exit 1; }
{
    echo "[workspace]"
    echo "resolver = \"2\""
    echo "members = [$(IFS=,; echo "${members[*]}")]"
    echo
    echo "[patch.crates-io]"
    printf '%s\n' "${patches[@]}"
} > "$scratch/Cargo.toml"
# Unpacked files keep their packaged modification times, which can be older than the
# last check's build of the same crates in this target directory: cargo would then take
# that build for fresh and check today's packages against yesterday's code. Touched, they
# are newer than any earlier build.
find "$scratch" -type f -exec touch {} +
# The workspace's lock file pins every registry dependency to the version CI tests.
cp Cargo.lock "$scratch/Cargo.lock"
(cd "$scratch" && cargo check --workspace --offline -q)
echo "${#members[@]} packages made and compiled from their .crate files: ${members[*]//\"/}"
