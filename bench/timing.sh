# Clock, load and CPU helpers the daemon benchmarks share (sourced, not run).
# WAIT_LOAD=N makes wait_load wait (up to WAIT_LOAD_MAX s, default 1800) for a load average below N.

tck="$(getconf CLK_TCK)"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
now_ns() { date +%s%N; }
sleep_until_ns() {
  local d=$(($1 - $(now_ns)))
  [ "$d" -le 0 ] || sleep "$(printf '%d.%09d' $((d / 1000000000)) $((d % 1000000000)))"
}
wait_load() {
  [ -n "${WAIT_LOAD:-}" ] || return 0
  local waited=0
  until awk -v max="$WAIT_LOAD" '{ exit !($1 < max) }' /proc/loadavg; do
    if [ "$waited" -ge "${WAIT_LOAD_MAX:-1800}" ]; then
      echo "   load still $(loadavg) after ${waited}s: measuring anyway" >&2; return 0
    fi
    sleep 15; waited=$((waited + 15))
  done
}
# utime+stime of a process, in ms (from /proc/PID/stat, in clock ticks).
cpu_ms() { awk -v tck="$tck" '{ sub(/.*\) /, ""); print ($12 + $13) * 1000 / tck }' "/proc/$1/stat"; }
