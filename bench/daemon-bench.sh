#!/usr/bin/env bash
# The `aps` daemon measured through what users run: the release `aps` binary
# (`aps run --config FILE`, `aps jobs list`, `aps history`), side by side with Debian's
# cron where the comparison means something. Figures: docs/PERFORMANCE.md, "The aps
# daemon". Not part of CI.
#
# Usage: bash bench/daemon-bench.sh [PART...]     (default: all parts, in this order)
#   idle     CPU of an idle daemon (one job every hour) over IDLE_SECONDS (60), with the
#            default settings (a SQLite store is watched, polled once a minute) and with
#            poll_interval = "1h"; cron beside it
#   memory   VmRSS / VmHWM of `aps run` with 1,000 jobs after start settles; cron with
#            1,000 crontab lines beside it
#   burst    BURST_JOBS (100) jobs, each every 1 s, fire times spread over the second:
#            100 `date` commands a second for BURST_SECONDS (30); start lateness and
#            history completeness
#   manage   `aps jobs list` and `aps history --limit 100` on a store with MANAGE_JOBS
#            (10,000) jobs and MANAGE_ROWS (1,000,000) history rows, with hyperfine
#   cron     start lateness of a `* * * * *` job: cron and `aps run` at once, over
#            CRON_MINUTES (4) minute boundaries
# Environment: APS_BIN and TOOL_BIN name release builds of `aps` and `aps-daemon-bench`
# to use instead of building them; WAIT_LOAD=1.0 waits (up to WAIT_LOAD_MAX s, default 1800) before each part
# until the 1-minute load average is below it; KEEP=1 keeps the work directory.
# Needs: cargo, hyperfine, jq, cron (Debian's, run as root: it reads /etc/cron.d).
# Exit status: 3 when a tool is missing, 1 when a part fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aps-target}"

IDLE_SECONDS="${IDLE_SECONDS:-60}"
BURST_JOBS="${BURST_JOBS:-100}"
BURST_SECONDS="${BURST_SECONDS:-30}"
MANAGE_JOBS="${MANAGE_JOBS:-10000}"
MANAGE_ROWS="${MANAGE_ROWS:-1000000}"
MANAGE_RUNS="${MANAGE_RUNS:-10}"
CRON_MINUTES="${CRON_MINUTES:-4}"

all_parts=(idle memory burst manage cron)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=("${all_parts[@]}")
for p in "${parts[@]}"; do
  case " ${all_parts[*]} " in *" $p "*) ;; *)
    echo "unknown part '$p' (parts: ${all_parts[*]})" >&2; exit 2 ;;
  esac
done
wants() { case " ${parts[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# --- tools -----------------------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)"); }
need cargo "rustup"
need jq "apt-get install -y jq"
need getconf "libc-bin"
wants manage && need hyperfine "apt-get install -y hyperfine"
if wants idle || wants memory || wants cron; then
  need cron "apt-get install -y cron"
  [ "$(id -u)" = 0 ] || missing+=("root (cron reads /etc/cron.d)")
  [ -d /etc/cron.d ] || missing+=("/etc/cron.d")
fi
if [ ${#missing[@]} -gt 0 ]; then
  printf 'missing: %s\n' "${missing[@]}" >&2
  exit 3
fi
if pgrep -x cron >/dev/null; then
  echo "a cron is already running (pid $(pgrep -x cron | tr '\n' ' ')): stop it first; this script runs its own 'cron -f'" >&2
  exit 3
fi

if [ -n "${APS_BIN:-}" ] && [ -n "${TOOL_BIN:-}" ]; then
  aps="$APS_BIN"; tool="$TOOL_BIN"   # already built (release) binaries
else
  echo "== building the release aps and the bench helper" >&2
  # One build for both: separate builds unify features differently and relink twice.
  cargo build --release -q -p apscheduler-cli --bin aps -p apscheduler-bench --bin aps-daemon-bench >&2
  aps="$CARGO_TARGET_DIR/release/aps"
  tool="$CARGO_TARGET_DIR/release/aps-daemon-bench"
fi

work="$(mktemp -d /tmp/aps-daemon-bench.XXXXXX)"
chmod 755 "$work"
pids=()
cron_files=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for f in "${cron_files[@]}"; do rm -f "$f"; done
  rm -f /etc/cron.d/aps-bench-*
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

table="$work/table.md"
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" >>"$table"; }
# shellcheck source=bench/timing.sh
source bench/timing.sh
part_start() { wait_load; echo "== $1 (load $(loadavg))" >&2; echo "$1: load at start $(loadavg)" >>"$work/loads"; }
part_end() { echo "$1: load at end $(loadavg)" >>"$work/loads"; }

# The same, in ns, summed over the live threads (/proc/PID/task/*/schedstat).
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
# Context switches of all live threads: how often the process slept and woke.
ctxsw() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { s += $2 } END { print s + 0 }'
}
mem_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# "VmRSS / VmHWM (RssAnon anonymous + RssFile file-backed: mostly the binary's pages)", MB = 10^6 bytes.
mem_text() {
  local rss hwm anon file
  rss=$(mem_kb "$1" VmRSS); hwm=$(mem_kb "$1" VmHWM); anon=$(mem_kb "$1" RssAnon); file=$(mem_kb "$1" RssFile)
  awk -v r="$rss" -v h="$hwm" -v a="$anon" -v f="$file" -v t="$(ls /proc/"$1"/task | wc -l)" \
    'BEGIN { printf "%.1f MB / %.1f MB (%d / %d kB; anon %d kB + file %d kB; %d threads)", r * 1.024e-3, h * 1.024e-3, r, h, a, f, t }'
}

# Starts `aps run` on CONFIG (stderr to LOG) and waits for "aps daemon started".
start_aps() { # config log -> sets $aps_pid
  "$aps" run --config "$1" 2>"$2" &
  aps_pid=$!
  pids+=("$aps_pid")
  local waited=0
  until grep -qs "aps daemon started" "$2"; do
    if ! kill -0 "$aps_pid" 2>/dev/null || [ "$waited" -ge 6000 ]; then
      echo "aps run --config $1 did not start:" >&2; tail -20 "$2" >&2; exit 1
    fi
    sleep 0.05; waited=$((waited + 1))
  done
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Writes an /etc/cron.d file (cron needs it root-owned, 0644, its name without dots).
cron_d() { # name, lines on stdin
  local f="/etc/cron.d/aps-bench-$1"
  cat >"$f"
  chmod 0644 "$f"
  cron_files+=("$f")
}
start_cron() { # -> sets $cron_pid
  cron -f 2>"$work/cron-stderr.log" &
  cron_pid=$!
  pids+=("$cron_pid")
  sleep 1
  kill -0 "$cron_pid" 2>/dev/null || { echo "cron -f did not start:" >&2; cat "$work/cron-stderr.log" >&2; exit 1; }
}
stop_cron() { stop_pid "$cron_pid"; for f in "${cron_files[@]}"; do rm -f "$f"; done; cron_files=(); }

config_head() { # extra [scheduler] lines
  printf '[scheduler]\ntimezone = "UTC"\n%s\n' "${1:-}"
}

# --- idle ------------------------------------------------------------------------------
if wants idle; then
  part_start idle
  for v in poll1s poll1h; do
    mkdir -p "$work/idle-$v"
    { config_head "$([ $v = poll1h ] && echo 'poll_interval = "1h"')"
      printf '[[jobs]]\nid = "hourly"\ncommand = "true"\ninterval = "1h"\n'
    } >"$work/idle-$v/aps.toml"
  done
  # cron's job: once an hour, at a minute far from now.
  cron_d idle <<<"$((($(date +%-M) + 30) % 60)) * * * * root true"
  start_cron
  start_aps "$work/idle-poll1s/aps.toml" "$work/idle-poll1s/aps.log"; p1=$aps_pid
  start_aps "$work/idle-poll1h/aps.toml" "$work/idle-poll1h/aps.log"; p2=$aps_pid
  sleep 5
  declare -A c0 s0 x0
  for p in "$p1" "$p2" "$cron_pid"; do c0[$p]=$(cpu_ms "$p"); s0[$p]=$(sched_ns "$p"); x0[$p]=$(ctxsw "$p"); done
  t0=$(now_ns)
  sleep "$IDLE_SECONDS"
  t1=$(now_ns)
  for p in "$p1" "$p2" "$cron_pid"; do
    label=$([ "$p" = "$p1" ] && echo "aps run, default (file watch)" ||
      { [ "$p" = "$p2" ] && echo 'aps run, poll_interval = "1h"' || echo "cron -f"; })
    per_min=$(awk -v a="${c0[$p]}" -v b="$(cpu_ms "$p")" -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", (b - a) * 60e9 / t }')
    sched=$(awk -v a="${s0[$p]}" -v b="$(sched_ns "$p")" -v t=$((t1 - t0)) 'BEGIN { printf "%.1f", (b - a) / 1e6 * 60e9 / t }')
    wake=$(awk -v a="${x0[$p]}" -v b="$(ctxsw "$p")" -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", (b - a) * 60e9 / t }')
    row "idle: $label" "CPU ms per minute (utime+stime; schedstat)" "$per_min ms; $sched ms; $wake context switches/min" "no CPU between fires"
  done
  row "idle: aps run, 1 job (for the memory part)" "VmRSS / VmHWM after ${IDLE_SECONDS} s" "$(mem_text "$p1")" "-"
  stop_pid "$p1"; stop_pid "$p2"; stop_cron
  part_end idle
fi

# --- memory ----------------------------------------------------------------------------
if wants memory; then
  part_start memory
  mkdir -p "$work/mem"
  { config_head
    for i in $(seq -w 0 999); do printf '[[jobs]]\nid = "job-%s"\ncommand = "true"\ncron = "0 3 * * *"\n' "$i"; done
  } >"$work/mem/aps.toml"
  t0=$(now_ns)
  start_aps "$work/mem/aps.toml" "$work/mem/aps.log"
  started_ms=$((($(now_ns) - t0) / 1000000))
  sleep 10
  row "memory: aps run, 1,000 jobs (first start: ${started_ms} ms to \"started\")" "VmRSS / VmHWM 10 s after start" \
    "$(mem_text "$aps_pid")" "at most 20 MB"
  stop_pid "$aps_pid"
  # A second start on the same store: the jobs are there, unchanged.
  start_aps "$work/mem/aps.toml" "$work/mem/aps2.log"
  sleep 10
  row "memory: aps run, 1,000 jobs (restart, jobs already stored)" "VmRSS / VmHWM 10 s after start" \
    "$(mem_text "$aps_pid")" "at most 20 MB"
  stop_pid "$aps_pid"
  cron_d mem < <(for i in $(seq 1 1000); do echo "0 3 * * * root true"; done)
  start_cron
  sleep 10
  row "memory: cron -f, 1,000 crontab lines" "VmRSS / VmHWM 10 s after start" \
    "$(mem_text "$cron_pid")" "-"
  stop_cron
  part_end memory
fi

# --- burst: 100 commands a second ------------------------------------------------------
if wants burst; then
  part_start burst
  d="$work/burst"; mkdir -p "$d"
  spread=$((1000 / BURST_JOBS))
  { config_head
    printf '[history]\nmax_runs_per_job = 1000\n'
    for i in $(seq 0 $((BURST_JOBS - 1))); do
      printf '[[jobs]]\nid = "job-%03d"\ncommand = "exec date +%%s%%N"\ninterval = 1\nstart_date = "2020-01-01 00:00:00.%03d"\n' "$i" $((i * spread))
    done
  } >"$d/aps.toml"
  start_aps "$d/aps.toml" "$d/aps.log"
  # The window: whole seconds, from 3 s after start.
  from=$(( ($(now_ns) / 1000000000 + 4) * 1000000000 ))
  to=$((from + BURST_SECONDS * 1000000000))
  sleep_until_ns "$from"
  c0=$(cpu_ms "$aps_pid")
  sleep_until_ns "$to"
  c1=$(cpu_ms "$aps_pid")
  sleep 3
  stop_pid "$aps_pid"
  "$aps" history --config "$d/aps.toml" --json --limit 1000000 >"$d/history.json"
  "$tool" lateness "$from" "$to" "$BURST_JOBS" 1000 "$spread" <"$d/history.json" >"$d/lateness.json"
  jq . "$d/lateness.json" >&2
  l="$d/lateness.json"
  row "burst: $BURST_JOBS jobs every 1 s for ${BURST_SECONDS} s" "fire times / records / fires without a record / outcomes" \
    "$(jq -r '"\(.expected_fires) / \(.records) / \(.fires_without_record) / \(.outcomes | to_entries | map("\(.key) \(.value)") | join(", "))"' "$l")" "every fire recorded"
  row "burst: process start lateness (date +%s%N in the command − scheduled_at)" "p50 / p99 / max" \
    "$(jq -r '.process | "\(.p50_ms | . * 100 | round / 100) / \(.p99_ms | . * 100 | round / 100) / \(.max_ms | . * 100 | round / 100) ms (n \(.n))"' "$l")" "p99 at most 10 ms"
  row "burst: submit lateness (history started_at − scheduled_at)" "p50 / p99 / max" \
    "$(jq -r '.submitted | "\(.p50_ms | . * 100 | round / 100) / \(.p99_ms | . * 100 | round / 100) / \(.max_ms | . * 100 | round / 100) ms (n \(.n))"' "$l")" "-"
  row "burst: daemon CPU during the window" "CPU s per wall s (utime+stime)" \
    "$(awk -v a="$c0" -v b="$c1" -v s="$BURST_SECONDS" 'BEGIN { printf "%.2f", (b - a) / 1000 / s }')" "-"
  part_end burst
fi

# --- manage: 10,000 jobs, 1,000,000 history rows -------------------------------------
if wants manage; then
  part_start manage
  d="$work/manage"; mkdir -p "$d"
  { config_head
    for i in $(seq -w 0 $((MANAGE_JOBS - 1))); do printf '[[jobs]]\nid = "job-%s"\ncommand = "true"\ncron = "0 3 * * *"\n' "$i"; done
  } >"$d/aps.toml"
  t0=$(now_ns)
  start_aps "$d/aps.toml" "$d/aps.log"
  started_ms=$((($(now_ns) - t0) / 1000000))
  sleep 10
  row "manage: aps run, $MANAGE_JOBS jobs (first start)" "VmRSS / VmHWM 10 s after start" "$(mem_text "$aps_pid")" "-"
  stop_pid "$aps_pid"
  url="sqlite:$d/aps.db"
  "$tool" load-history "$url" "$MANAGE_ROWS" 1000 >"$d/load.json"
  row "manage: store setup" "first aps run with $MANAGE_JOBS jobs to \"started\"; rows loaded (record_runs, 1,000 a call)" \
    "${started_ms} ms; $(jq -r '"\(.rows) rows in \(.seconds * 10 | round / 10) s (\(.rows_per_s | round) rows/s)"' "$d/load.json"), db $(($(stat -c %s "$d/aps.db") / 1048576)) MiB" "-"
  check_rows=$("$aps" history --store "$url" --json --limit 100 | jq length)
  check_jobs=$("$aps" jobs list --store "$url" --json | jq length)
  [ "$check_rows" = 100 ] && [ "$check_jobs" = "$MANAGE_JOBS" ] ||
    { echo "store check failed: $check_jobs jobs, $check_rows rows" >&2; exit 1; }
  wait_load
  echo "manage: load before hyperfine $(loadavg)" >>"$work/loads"
  hyperfine -N --warmup 2 --runs "$MANAGE_RUNS" --export-json "$d/hyperfine.json" \
    "$aps --version" \
    "$aps jobs list --store $url" \
    "$aps jobs list --config $d/aps.toml" \
    "$aps jobs list --store $url --json" \
    "$aps history --limit 100 --store $url" \
    "$aps history --limit 100 --config $d/aps.toml" \
    "$aps history --limit 100 --store $url --json" >&2
  jq -r --arg aps "$aps" --arg d "$d" '.results[] |
    "| manage: `\(.command | sub($aps; "aps") | gsub($d; "DIR"))` | mean ± sd (min, max) of \(.times | length) runs | \(.mean * 1000 | round) ± \(.stddev * 1000 | round) ms (\(.min * 1000 | round), \(.max * 1000 | round)) | \(if (.command | test("jobs list|history")) then "under 200 ms" else "-" end) |"' \
    "$d/hyperfine.json" >>"$table"
  # Not a user path: where that time goes, on the store's own API.
  "$tool" inner-paths "$url" >"$d/inner.json"
  row "manage: inner path (store API, not a user call), median of 3" \
    "get_all_jobs / latest_runs of all / $MANAGE_JOBS per-job query_runs(limit 1) / one query_runs(limit 100)" \
    "$(jq -r '"\(.get_all_jobs_ms | round) ms / \(.latest_runs_ms | round) ms / \(.per_job_last_run_queries_ms | round) ms / \(.history_limit_100_ms * 100 | round / 100) ms"' "$d/inner.json")" "-"
  part_end manage
fi

# --- cron: lateness of a minute job, side by side ------------------------------------
if wants cron; then
  part_start cron
  d="$work/cron"; mkdir -p "$d"
  { config_head
    printf '[[jobs]]\nid = "minute"\ncommand = "date +%%s%%N >> %s/aps.log"\ncron = "* * * * *"\n' "$d"
  } >"$d/aps.toml"
  cron_d minute <<<"* * * * * root date +\%s\%N >> $d/cron.log"
  # Start both between :02 and :50 of a minute, so that the next boundary counts.
  while s=$(date +%-S); [ "$s" -lt 2 ] || [ "$s" -gt 50 ]; do sleep 1; done
  start_cron
  start_aps "$d/aps.toml" "$d/aps-daemon.log"
  end=$(( ($(now_ns) / 60000000000 + CRON_MINUTES) * 60000000000 + 5000000000 ))
  sleep_until_ns "$end"
  stop_pid "$aps_pid"; stop_cron
  for who in cron aps; do
    "$tool" minute-lateness "$d/$who.log" >"$d/$who.json"
    label=$([ $who = cron ] && echo "cron -f (Debian cron $(dpkg-query -W -f '${Version}' cron 2>/dev/null))" || echo "aps run")
    row "cron: $label, \`* * * * *\` running \`date +%s%N >> FILE\`" "start lateness after the minute: min / p50 / max (each)" \
      "$(jq -r '"\(.min_ms | round) / \(.p50_ms | round) / \(.max_ms | round) ms (\(.n) fires: \(.all_ms | map(. * 10 | round / 10 | tostring) | join(", ")))"' "$d/$who.json")" "-"
  done
  part_end cron
fi

# --- report ----------------------------------------------------------------------------
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $("$aps" --version)"
sed 's/^/load: /' "$work/loads"
echo
echo "| part | figure | value | target |"
echo "|---|---|---|---|"
cat "$table"
