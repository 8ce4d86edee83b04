#!/usr/bin/env python3
"""Runs test binaries again and again on a busy machine, to find the tests that fail
now and then.

Each test binary of the workspace (a crate's unit tests, each file under `tests/`) runs
RUNS times in a row through `cargo test -p CRATE --lib|--bin|--test NAME`, while
`stress-ng --cpu N` keeps N cores busy beside it. Prints one Markdown table row per
binary (binary, runs, failures) as it goes, and keeps the output of every failed run in
the log folder. Run it with the servers up and their URLs exported
(`source .ci/services.sh`), with CI=true so that no backend test skips.

Usage:
  scripts/stress.py [--runs 20] [--load 2] [--logs DIR] [--max-seconds S] [FILTER...]

FILTER: substrings of `crate/target` (for example `cli/cluster_waiting`, `engine/`);
none means every binary. --max-seconds stops starting runs of a binary once its runs
so far took that long (0: no limit); the row then says how many ran.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def binaries():
    """(crate, cargo target arguments, label) of every test binary in the workspace."""
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--locked"]
        )
    )
    found = []
    for package in meta["packages"]:
        crate = package["name"]
        short = crate.removeprefix("apscheduler-") if crate != "apscheduler" else crate
        for target in package["targets"]:
            kinds = target["kind"]
            if "test" in kinds:
                found.append((crate, ["--test", target["name"]], f"{short}/{target['name']}"))
            elif "lib" in kinds and target.get("test", True):
                found.append((crate, ["--lib"], f"{short}/lib"))
            elif "bin" in kinds and target.get("test", True):
                found.append((crate, ["--bin", target["name"]], f"{short}/bin {target['name']}"))
    return sorted(found, key=lambda b: b[2])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=2, help="stress-ng CPU workers")
    parser.add_argument("--logs", default="stress-logs")
    parser.add_argument("--max-seconds", type=float, default=0)
    parser.add_argument("filters", nargs="*")
    args = parser.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    os.makedirs(args.logs, exist_ok=True)
    chosen = [b for b in binaries() if not args.filters or any(f in b[2] for f in args.filters)]
    if not chosen:
        sys.exit("no test binary matches " + " ".join(args.filters))
    for crate, target, _ in chosen:
        subprocess.run(
            ["cargo", "test", "--locked", "-q", "-p", crate, *target, "--no-run"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    load = None
    if args.load > 0:
        load = subprocess.Popen(
            ["stress-ng", "--cpu", str(args.load), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print("| test binary | runs | failures | seconds per run |")
    print("|---|---|---|---|")
    total_failures = 0
    try:
        for crate, target, label in chosen:
            failures, runs, spent = 0, 0, 0.0
            while runs < args.runs and (args.max_seconds <= 0 or spent < args.max_seconds):
                started = time.monotonic()
                run = subprocess.run(
                    ["cargo", "test", "--locked", "-q", "-p", crate, *target],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                spent += time.monotonic() - started
                runs += 1
                if run.returncode != 0:
                    failures += 1
                    log = os.path.join(args.logs, f"{label.replace('/', '_').replace(' ', '_')}-{runs}.log")
                    with open(log, "wb") as f:
                        f.write(run.stdout)
            total_failures += failures
            print(f"| {label} | {runs} | {failures} | {spent / runs:.1f} |", flush=True)
    finally:
        if load:
            load.terminate()
            load.wait()
    sys.exit(1 if total_failures else 0)


if __name__ == "__main__":
    main()
