#!/usr/bin/env python3
"""Measures APScheduler 3.x's scheduler on the scenarios of ``aps-bench``
(crates/bench), so the two can be compared in one table.

Every scenario runs in a fresh Python process (this script with ``--child``), like
``aps-bench`` does, so memory and CPU readings see nothing of the other scenarios.
The scheduler is a ``BackgroundScheduler`` with the default ``MemoryJobStore`` and a
``ThreadPoolExecutor`` (20 workers for the burst, the default 10 otherwise); run dates
are computed from ``now``.

Lateness is the task's start minus its scheduled run time. APScheduler does not hand
the scheduled run time to the task, so ``apscheduler.executors.pool.run_job`` is
wrapped: the wrapper puts the run time in a thread-local before calling the original,
and the task reads it and the wall clock (``time.time_ns()``).

- add-before / add-running: ``add_job(noop, "interval", hours=1)`` in a loop (the time
  of the whole loop divided by the number of jobs); resident memory from
  ``/proc/self/statm`` before and after the adds to the running scheduler.
- burst: jobs with a ``date`` trigger all due at the same instant; the time from that
  instant until the last task returned, and how many ran.
- steady: 1,000 interval jobs of 1 s whose start dates are spread 1 ms apart over a
  second; lateness over 20 s and the process CPU time (``/proc/self/stat``) in that
  window.
- every100: one interval job of 0.1 s for 10 s; also ``time.sleep``'s overshoot of
  deadlines 20 ms apart.
- idle: 100,000 interval jobs of 1 week; process CPU time over 10 s.

Usage: python3 bench/apscheduler_scheduler.py [--quick] [--scenario NAME,...]
Prints a JSON array of reports (one per scenario) on standard output.
"""

import argparse
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from importlib.metadata import version

import apscheduler.executors.pool as pool_module
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

SCENARIOS = ["add-before", "add-running", "burst", "steady", "every100", "idle"]
CLK_TCK = 100
PAGE_SIZE = 4096
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def sizes(quick):
    """The same sizes as crates/bench/src/sizes.rs."""
    if quick:
        return dict(add_jobs=10_000, burst_jobs=1_000, burst_lead=2.0, steady_jobs=200,
                    steady_secs=1, every_secs=1, floor_samples=20, idle_jobs=10_000,
                    idle_secs=1)
    return dict(add_jobs=100_000, burst_jobs=10_000, burst_lead=5.0, steady_jobs=1_000,
                steady_secs=20, every_secs=10, floor_samples=250, idle_jobs=100_000,
                idle_secs=10)


# ------------------------------------------------------------------ measuring helpers

def cpu_seconds():
    """User + system CPU time of the whole process, from /proc/self/stat."""
    with open("/proc/self/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def to_ns(dt):
    """Exact nanoseconds since the epoch of an aware datetime."""
    return (dt - EPOCH) // timedelta(microseconds=1) * 1000


def percentile(sorted_values, p):
    """Nearest-rank percentile, as aps-bench computes it."""
    if not sorted_values:
        return None
    rank = -(-p * len(sorted_values) // 100)  # ceil
    rank = min(max(int(rank), 1), len(sorted_values))
    return sorted_values[rank - 1]


def sorted_ms(ns_values):
    return sorted(v / 1e6 for v in ns_values)


def r3(x):
    return None if x is None else round(x, 3)


def sleep_until(t):
    delay = (t - datetime.now(timezone.utc)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def next_whole_second(lead):
    at = datetime.now(timezone.utc) + timedelta(seconds=lead)
    return at.replace(microsecond=0) + timedelta(seconds=1)


def sleep_floor(samples, period):
    start = time.monotonic()
    over = []
    for k in range(1, samples + 1):
        deadline = start + period * k
        now = time.monotonic()
        if deadline > now:
            time.sleep(deadline - now)
        over.append(max(0.0, time.monotonic() - deadline) * 1e3)
    over.sort()
    return percentile(over, 50), percentile(over, 99), over[-1]


# ------------------------------------------------------------------ lateness recording

_current = threading.local()
_original_run_job = pool_module.run_job


def _run_job(job, jobstore_alias, run_times, logger_name):
    _current.scheduled_ns = to_ns(run_times[0])
    return _original_run_job(job, jobstore_alias, run_times, logger_name)


pool_module.run_job = _run_job


class Samples:
    """Lateness and end times of runs scheduled before ``until_ns``."""

    def __init__(self, expected, until_ns=None):
        self.late = []
        self.end = []
        self.expected = expected
        self.until_ns = until_ns
        self.lock = threading.Lock()
        self.done = threading.Event()

    def task(self):
        start = time.time_ns()
        scheduled = _current.scheduled_ns
        if self.until_ns is None or scheduled < self.until_ns:
            with self.lock:
                self.late.append(start - scheduled)
                self.end.append(time.time_ns())
                if len(self.late) == self.expected:
                    self.done.set()


def noop():
    pass


def add_interval_jobs(sched, n, **interval):
    started = time.perf_counter()
    for _ in range(n):
        sched.add_job(noop, "interval", **interval)
    return (time.perf_counter() - started) * 1e6 / n


# ------------------------------------------------------------------ scenarios

def add_before(s):
    sched = BackgroundScheduler()
    per_add = add_interval_jobs(sched, s["add_jobs"], hours=1)
    return {"add_before_start_us": per_add}, [f"{s['add_jobs']} interval jobs added before start"]


def add_running(s):
    sched = BackgroundScheduler()
    sched.start()
    time.sleep(0.1)
    rss0 = rss_bytes()
    per_add = add_interval_jobs(sched, s["add_jobs"], hours=1)
    rss1 = rss_bytes()
    sched.shutdown(wait=False)
    return (
        {"add_running_us": per_add, "mem_per_job_bytes": (rss1 - rss0) / s["add_jobs"]},
        [f"RSS {rss0 / 1048576:.1f} MiB -> {rss1 / 1048576:.1f} MiB for {s['add_jobs']} jobs"],
    )


def burst(s):
    n = s["burst_jobs"]
    sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(20)})
    sched.start()
    due = datetime.now(timezone.utc) + timedelta(seconds=s["burst_lead"])
    samples = Samples(n)
    for _ in range(n):
        sched.add_job(samples.task, "date", run_date=due)
    notes = []
    if datetime.now(timezone.utc) >= due:
        notes.append("adding the jobs took longer than the lead: the burst started early")
    samples.done.wait(s["burst_lead"] + 30)
    time.sleep(0.5)  # runs skipped as misfires never call the task
    sched.shutdown(wait=True)
    late = sorted_ms(samples.late)
    ran = len(late)
    notes.append(f"{ran} of {n} jobs ran")
    return (
        {
            "burst_ran": ran,
            "burst_total_ms": (max(samples.end) - to_ns(due)) / 1e6 if ran else None,
            "burst_p50_ms": percentile(late, 50),
            "burst_p99_ms": percentile(late, 99),
        },
        notes,
    )


def steady(s):
    n, window = s["steady_jobs"], s["steady_secs"]
    sched = BackgroundScheduler()
    sched.start()
    t0 = next_whole_second(0.5 if n < 1000 else 1.0)
    t1 = t0 + timedelta(seconds=window)
    samples = Samples(n * window, to_ns(t1))
    step = timedelta(microseconds=1_000_000 // n)
    for i in range(n):
        sched.add_job(samples.task, "interval", seconds=1, start_date=t0 + step * i)
    notes = []
    if datetime.now(timezone.utc) >= t0:
        notes.append("adding the jobs took longer than the lead")
    sleep_until(t0)
    cpu0, w0 = cpu_seconds(), time.monotonic()
    sleep_until(t1)
    cpu1, elapsed = cpu_seconds(), time.monotonic() - w0
    samples.done.wait(2)
    sched.shutdown(wait=True)
    late = sorted_ms(samples.late)
    notes.append(f"{len(late)} runs in {window} s ({n * window} expected)")
    return (
        {
            "steady_p50_ms": percentile(late, 50),
            "steady_p99_ms": percentile(late, 99),
            "steady_cpu_pct": (cpu1 - cpu0) * 100 / elapsed,
        },
        notes,
    )


def every100(s):
    sched = BackgroundScheduler()
    sched.start()
    t0 = next_whole_second(0.3)
    t1 = t0 + timedelta(seconds=s["every_secs"])
    expected = s["every_secs"] * 10
    samples = Samples(expected, to_ns(t1))
    sched.add_job(samples.task, "interval", seconds=0.1, start_date=t0)
    sleep_until(t1)
    samples.done.wait(2)
    sched.shutdown(wait=True)
    late = sorted_ms(samples.late)
    f50, f99, fmax = sleep_floor(s["floor_samples"], 0.02)
    return (
        {
            "every100_p50_ms": percentile(late, 50),
            "every100_p99_ms": percentile(late, 99),
            "every100_max_ms": late[-1] if late else None,
            "sleep_floor_p50_ms": f50,
            "sleep_floor_p99_ms": f99,
        },
        [
            f"{len(late)} runs ({expected} expected); time.sleep floor from "
            f"{s['floor_samples']} sleeps to deadlines 20 ms apart, max {fmax:.3f} ms"
        ],
    )


def idle(s):
    sched = BackgroundScheduler()
    sched.start()
    for _ in range(s["idle_jobs"]):
        sched.add_job(noop, "interval", weeks=1)
    time.sleep(0.5)
    cpu0, w0 = cpu_seconds(), time.monotonic()
    time.sleep(s["idle_secs"])
    cpu, elapsed = cpu_seconds() - cpu0, time.monotonic() - w0
    sched.shutdown(wait=False)
    return (
        {"idle_cpu_ms": cpu * 1e3, "idle_cpu_pct": cpu * 100 / elapsed},
        [f"{s['idle_jobs']} jobs, CPU over {s['idle_secs']} s"],
    )


RUNNERS = {
    "add-before": add_before,
    "add-running": add_running,
    "burst": burst,
    "steady": steady,
    "every100": every100,
    "idle": idle,
}


# Runs per scenario by default; the median of each metric is reported, as aps-bench
# does for apscheduler-rs and tokio-cron-scheduler (this machine's speed drifts).
DEFAULT_RUNS = {"add-before": 5, "add-running": 5, "burst": 5, "steady": 3, "every100": 3}


def merge(runs):
    """One report from several runs of a scenario: the median of each metric."""
    if len(runs) == 1:
        return runs[0]
    merged = dict(runs[0])
    merged["metrics"] = {}
    for key, value in runs[0]["metrics"].items():
        values = sorted(r["metrics"][key] for r in runs
                        if isinstance(r["metrics"].get(key), (int, float)))
        if len(values) == len(runs):
            merged["metrics"][key] = r3(float(values[(len(values) - 1) // 2]))
            merged["notes"] = merged["notes"] + [
                f"{key}: median of {len(runs)} runs, range {values[0]}-{values[-1]}"]
        else:
            merged["metrics"][key] = value
    return merged


def child(scenario, quick):
    metrics, notes = RUNNERS[scenario](sizes(quick))
    metrics = {k: (r3(v) if isinstance(v, float) else v) for k, v in metrics.items()}
    print(json.dumps({"impl": "apscheduler", "scenario": scenario, "metrics": metrics,
                      "notes": notes}))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shortened sizes")
    parser.add_argument("--scenario", default=",".join(SCENARIOS),
                        help="comma-separated scenarios (default: all)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each scenario but idle, median reported (default 5 "
                             "for the adds and the burst, 3 for steady and every100, 1 "
                             "with --quick)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.quick)
        return
    reports = []
    for scenario in args.scenario.split(","):
        if scenario not in RUNNERS:
            sys.exit(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
        print(f"== apscheduler {scenario}", file=sys.stderr)
        cmd = [sys.executable, __file__, "--child", scenario] + (["--quick"] if args.quick else [])
        default = DEFAULT_RUNS.get(scenario, 1)
        repeat = 1 if default == 1 else (
            args.repeat if args.repeat is not None else (1 if args.quick else default))
        runs = []
        for _ in range(repeat):
            out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        report = merge(runs)
        if not reports:
            py = sys.version.split()[0]
            report["notes"].insert(0, f"APScheduler {version('APScheduler')}, Python {py}")
        reports.append(report)
    print(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
