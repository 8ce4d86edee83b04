#!/usr/bin/env bash
# The top of the hour through the release `aps` binary: JOBS (10,000) `[[jobs]]` all at
# `cron = "0 * * * *"` against the same jobs at `cron = "H * * * *"` (each job's minute
# hashed from its id), on one daemon with its default SQLite store and on three daemons
# sharing one PostgreSQL database. Figures: docs/PERFORMANCE.md, "10,000 hourly jobs at
# the top of the hour". Not part of CI.
#
# Usage: bash bench/hspread-bench.sh [CASE...]
#   CASE: sqlite-top sqlite-h postgres-top postgres-h (default: all four, in this order)
#   top  every job at `0 * * * *`; the TOP_SECONDS (60) after the hour are counted
#   h    every job at `H * * * *`; the H_MINUTES (10) after the hour are counted, real
#        minutes (the runs of the other minutes of the hour are not waited for)
#
# The hour comes within seconds: every process of a case (the daemons, the commands they
# start and, for PostgreSQL, the database server) runs under libfaketime with one offset
# in whole seconds ("+N", no rate: time runs at its real speed), chosen so that their
# clock reaches the top of an hour LEAD (60) real seconds after the case starts. The
# offset is the same for the server because PostgreSQL times the leases with its own
# clock (statement_timestamp()) and the store compares lease ends with the daemons' due
# times, so a private cluster is started under libfaketime for each case (initdb into
# the work directory; /usr/lib/postgresql/15/bin by default, PG_BIN to change). No faster
# faked clock (libfaketime's "x10"): the scheduler's timer is a timerfd set through raw
# system calls that libfaketime does not see, so its waits would keep their real length,
# and every lateness would be read on a clock ten times too fast.
#
# Each job runs `exec date +%s%N`: the process's own start, read with the same faked
# clock. From `aps jobs list --json` (before the hour) and `aps history --json` (after the
# window, once the daemons stopped), `aps-daemon-bench hour-spread` counts the fire
# times expected in the window, those that ran, ran twice, were missed or have no
# record; start lateness (history started_at - scheduled_at, and the command's own
# start - scheduled_at) p50 / p99; and the peak runs started in one second.
#
# Environment: JOBS (10000), TOP_SECONDS (60), H_MINUTES (10), LEAD (60), H_FORM (`hash`:
# `cron = "H * * * *"`, hashed from the job id; `hash-key`: `trigger = { type = "crontab",
# expr = "H * * * *", hash_key = ID }`, the same values with the key written out;
# `explicit`: job i at `M * * * *` with M = i mod 60, a spread written by hand),
# MISFIRE_GRACE (not set: the daemon's default, 1 s; else `[job_defaults]
# misfire_grace_time`, e.g. "10m"), APS_BIN and TOOL_BIN (release builds of `aps` and
# `aps-daemon-bench` to use instead of building them), WAIT_LOAD=1.0 (before each case,
# wait up to WAIT_LOAD_MAX s, default 1800, until the 1-minute load average is below
# it), KEEP=1 (keep the work directory).
# Needs: cargo, jq, libfaketime (Debian: apt-get install libfaketime; FAKETIME_LIB names
# the library elsewhere); for the PostgreSQL cases PostgreSQL 15's server binaries, psql,
# and root (the server runs as the user postgres).
# Exit status: 3 when a tool is missing, 1 when a case fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"

JOBS="${JOBS:-10000}"
TOP_SECONDS="${TOP_SECONDS:-60}"
H_MINUTES="${H_MINUTES:-10}"
LEAD="${LEAD:-60}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${PG_PORT:-5499}"
DAEMONS_ON_POSTGRES=3

all_cases=(sqlite-top sqlite-h postgres-top postgres-h)
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=("${all_cases[@]}")
for c in "${cases[@]}"; do
  case " ${all_cases[*]} " in *" $c "*) ;; *)
    echo "unknown case '$c' (cases: ${all_cases[*]})" >&2; exit 2 ;;
  esac
done
wants_postgres() { case " ${cases[*]} " in *" postgres-"*) return 0 ;; esac; return 1; }

# --- tools -----------------------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)"); }
need cargo "rustup"
need jq "apt-get install -y jq"
# libfaketime, preloaded straight into each process (not through the `faketime` wrapper,
# which would stand between this script and the daemon: signals and CPU times are the
# daemon's own this way). The multi-threading variant: the daemons run threads.
FAKETIME_LIB="${FAKETIME_LIB:-/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1}"
[ -f "$FAKETIME_LIB" ] || missing+=("$FAKETIME_LIB (apt-get install -y libfaketime, or FAKETIME_LIB=...)")
if wants_postgres; then
  [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] || missing+=("$PG_BIN/postgres and initdb (apt-get install -y postgresql-15)")
  need psql "apt-get install -y postgresql-client"
  need pg_isready "apt-get install -y postgresql-client"
  need runuser "util-linux"
  [ "$(id -u)" = 0 ] || missing+=("root (the private PostgreSQL server runs as the user postgres)")
  id postgres >/dev/null 2>&1 || missing+=("a user named postgres")
fi
if [ ${#missing[@]} -gt 0 ]; then
  printf 'missing: %s\n' "${missing[@]}" >&2
  exit 3
fi

if [ -n "${APS_BIN:-}" ] && [ -n "${TOOL_BIN:-}" ]; then
  aps="$APS_BIN"; tool="$TOOL_BIN"
else
  echo "== building the release aps and the bench helper" >&2
  cargo build --release -q -p apscheduler-cli --bin aps -p apscheduler-bench --bin aps-daemon-bench >&2
  aps="$CARGO_TARGET_DIR/release/aps"
  tool="$CARGO_TARGET_DIR/release/aps-daemon-bench"
fi

work="$(mktemp -d /tmp/aps-hspread-bench.XXXXXX)"
chmod 755 "$work"
pids=()
pg_data="$work/pg/data"
pg_stop() {
  [ -f "$pg_data/postmaster.pid" ] || return 0
  local pid; pid=$(head -1 "$pg_data/postmaster.pid")
  kill -INT "$pid" 2>/dev/null || true   # fast shutdown
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pg_stop
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# shellcheck source=bench/timing.sh
source bench/timing.sh
utc() { date -u -d "@$1" '+%Y-%m-%dT%H:%M:%SZ'; }

# Starts `aps run` on CONFIG under the case's faked clock and waits for "aps daemon
# started". The jobs' commands inherit the clock (LD_PRELOAD and FAKETIME).
start_aps() { # config log -> appends to $daemons
  LD_PRELOAD="$FAKETIME_LIB" FAKETIME="+$offset" "$aps" run --config "$1" 2>"$2" &
  local pid=$!
  pids+=("$pid"); daemons+=("$pid")
  local waited=0
  until grep -qs "aps daemon started" "$2"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 6000 ]; then
      echo "aps run --config $1 did not start:" >&2; tail -20 "$2" >&2; exit 1
    fi
    sleep 0.05; waited=$((waited + 1))
  done
}

# A private PostgreSQL 15 cluster: created once, started under each case's clock.
pg_url="postgres://postgres@127.0.0.1:$PG_PORT/aps"
pg_start() {
  if [ ! -d "$pg_data" ]; then
    mkdir -p "$work/pg"; chown postgres "$work/pg"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 >"$work/pg/initdb.log"
  fi
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    echo "port $PG_PORT is taken (PG_PORT=... to choose another)" >&2; exit 1
  fi
  runuser -u postgres -- env LD_PRELOAD="$FAKETIME_LIB" FAKETIME="+$offset" "$PG_BIN/postgres" -D "$pg_data" -p "$PG_PORT" \
    -k "$work/pg" -c listen_addresses=127.0.0.1 >>"$work/pg/server.log" 2>&1 &
  local waited=0
  until pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; do
    [ "$waited" -lt 120 ] || { echo "the private PostgreSQL did not start:" >&2; tail -20 "$work/pg/server.log" >&2; exit 1; }
    sleep 0.25; waited=$((waited + 1))
  done
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS aps" -c "CREATE DATABASE aps"
  # The server's clock must be the daemons'.
  local server skew
  server=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
  skew=$((server - ($(now_ns) / 1000000 + offset * 1000)))
  echo "   PostgreSQL's clock: $(utc $((server / 1000))) (offset +${offset} s; off by ${skew#-} ms)" >&2
  [ "${skew#-}" -lt 2000 ] || { echo "the PostgreSQL server does not run on the faked clock" >&2; exit 1; }
}

config() { # form store-url node -> a config on stdout
  local form=$1
  printf '[scheduler]\ntimezone = "UTC"\n'
  [ -z "$3" ] || printf 'node = "%s"\n' "$3"
  [ -z "$2" ] || printf '[store]\nurl = "%s"\n' "$2"
  [ -z "${MISFIRE_GRACE:-}" ] || printf '[job_defaults]\nmisfire_grace_time = "%s"\n' "$MISFIRE_GRACE"
  local i
  for i in $(seq 0 $((JOBS - 1))); do
    printf '[[jobs]]\nid = "job-%05d"\ncommand = "exec date +%%s%%N"\n' "$i"
    case $form-${H_FORM:-hash} in
      top-*) echo 'cron = "0 * * * *"' ;;
      h-hash) echo 'cron = "H * * * *"' ;;
      h-hash-key) printf 'trigger = { type = "crontab", expr = "H * * * *", hash_key = "job-%05d" }\n' "$i" ;;
      h-explicit) printf 'cron = "%d * * * *"\n' $((i % 60)) ;;
      *) echo "H_FORM: unknown value '$H_FORM' (hash, hash-key, explicit)" >&2; exit 2 ;;
    esac
  done
}

results="$work/results.md"
minutes_table="$work/minutes.md"
: >"$minutes_table"

run_case() { # store form
  local store=$1 form=$2 name="$1-$2" d="$work/$1-$2"
  mkdir -p "$d"
  wait_load
  local load0; load0=$(loadavg)
  # The offset: the faked clock reaches the top of an hour LEAD s from now.
  local top_real=$(($(date +%s) + LEAD))
  offset=$(((3600 - top_real % 3600) % 3600))
  local hour=$((top_real + offset))
  local window=$([ "$form" = top ] && echo "$TOP_SECONDS" || echo $((H_MINUTES * 60)))
  echo "== $name: $JOBS jobs, the hour $(utc "$hour") (faked, +${offset} s) in ${LEAD} s, ${window} s counted (load $load0)" >&2
  daemons=()
  local configs=()
  if [ "$store" = sqlite ]; then
    config "$form" "" "" >"$d/aps.toml"
    configs=("$d/aps.toml")
  else
    pg_start
    for n in $(seq 1 "$DAEMONS_ON_POSTGRES"); do
      config "$form" "$pg_url" "hspread-$n" >"$d/aps-$n.toml"
      configs+=("$d/aps-$n.toml")
    done
  fi
  local t0 t1 n=0
  t0=$(now_ns)
  for c in "${configs[@]}"; do n=$((n + 1)); start_aps "$c" "$d/daemon-$n.log"; done
  t1=$(now_ns)
  "$aps" jobs list --config "${configs[0]}" --json >"$d/jobs.json"
  local left=$(((top_real * 1000000000 - $(now_ns)) / 1000000))
  echo "   started in $(((t1 - t0) / 1000000)) ms; $(jq length "$d/jobs.json") jobs listed; ${left} ms before the hour" >&2
  [ "$left" -ge 2000 ] || { echo "the daemons were not ready 2 s before the hour: raise LEAD (now $LEAD)" >&2; exit 1; }
  sleep_until_ns $(((top_real - 1) * 1000000000))
  local c0=() c1=() p
  for p in "${daemons[@]}"; do c0+=("$(cpu_ms "$p")"); done
  sleep_until_ns $(((top_real + window) * 1000000000))
  for p in "${daemons[@]}"; do c1+=("$(cpu_ms "$p")"); done
  local load1; load1=$(loadavg)
  for p in "${daemons[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${daemons[@]}"; do wait "$p" 2>/dev/null || true; done
  "$aps" history --config "${configs[0]}" --json --limit 1000000 --since "$(utc "$hour")" >"$d/history.json"
  [ "$store" = sqlite ] || pg_stop
  "$tool" hour-spread "$((hour * 1000000000))" "$window" "$d/jobs.json" <"$d/history.json" >"$d/spread.json"
  jq -c '{jobs, jobs_due_outside_the_hour, jobs_per_minute_of_the_hour: (.jobs_per_minute_of_the_hour | del(.all)),
          records, records_not_expected, outcomes, started_by_node, all}' "$d/spread.json" >&2
  local cpu
  cpu=$(for i in "${!c0[@]}"; do awk -v a="${c0[$i]}" -v b="${c1[$i]}" 'BEGIN { printf "%.1f ", (b - a) / 1000 }'; done)
  local label="$([ "$store" = sqlite ] && echo "1 daemon, SQLite" || echo "$DAEMONS_ON_POSTGRES daemons, PostgreSQL"), \`$([ "$form" = top ] && echo "0" || echo "H") * * * *\`"
  jq -r --arg cfg "$label" --arg cpu "$cpu" --arg window "$window" '
    def ms: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
    .all as $a |
    "| \($cfg) | \(.jobs) | \($window) s | \($a.expected) | \($a.ran) | \($a.twice) | \($a.missed) | \($a.no_record) | \($a.submitted.p50_ms | ms) / \($a.submitted.p99_ms | ms) | \($a.process.p50_ms | ms) / \($a.process.p99_ms | ms) | \($a.peak_started_per_s) | \($cpu)|"' \
    "$d/spread.json" >>"$results"
  {
    echo "$label, per minute after the hour:"
    echo
    echo "| minute | expected | ran | twice | missed | lateness p50 / p99, ms | process start p50 / p99, ms | peak runs/s |"
    echo "|---|---|---|---|---|---|---|---|"
    jq -r 'def ms: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
      .minutes[] | "| \(.minute) | \(.expected) | \(.ran) | \(.twice) | \(.missed) | \(.submitted.p50_ms | ms) / \(.submitted.p99_ms | ms) | \(.process.p50_ms | ms) / \(.process.p99_ms | ms) | \(.peak_started_per_s) |"' "$d/spread.json"
    echo
    echo "jobs per minute of the hour (min / p50 / max): $(jq -r '.jobs_per_minute_of_the_hour | "\(.min) / \(.p50) / \(.max)"' "$d/spread.json"); runs by node: $(jq -r '.started_by_node | to_entries | map("\(.value)") | join(" / ")' "$d/spread.json")"
    echo
  } >>"$minutes_table"
  echo "$name: load $load0 at start, $load1 at the window's end" >>"$work/loads"
}

for c in "${cases[@]}"; do run_case "${c%%-*}" "${c#*-}"; done

# --- report ----------------------------------------------------------------------------
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $("$aps" --version), libfaketime $(dpkg-query -W -f '${Version}' libfaketime 2>/dev/null || echo "($FAKETIME_LIB)")"
sed 's/^/load: /' "$work/loads"
echo
echo "| configuration | jobs | window | fire times in it | ran | twice | missed | no record | lateness p50 / p99, ms | process start p50 / p99, ms | peak runs/s | daemon CPU in the window, s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
cat "$results"
echo
cat "$minutes_table"
