#!/usr/bin/env python3
"""Times APScheduler 3.x ``CronTrigger.get_next_fire_time`` for the cases of
``crates/triggers/benches/next_fire.rs``, so the two can be compared.

Every case is asked for its first fire time after a fixed ``now``
(2024-01-01 00:00:00 in the trigger's zone), in UTC and America/New_York;
``a_minute_every_5_chained`` asks for the fire time after the previous one, as the
scheduler does after running a job. Case and zone ids match the criterion ids.

Each case is timed with ``timeit``: ``autorange`` picks a loop count that runs for at
least 0.2 s, and the median of several such repeats is reported in microseconds per
call.

Usage: python3 bench/apscheduler_triggers.py [--tsv] [--repeat N]
  --tsv   print ``case<TAB>zone id<TAB>zone<TAB>expression<TAB>us_per_call`` lines
          (read by bench/trigger-bench.sh)
"""

import argparse
import statistics
import sys
import timeit
from datetime import datetime, timedelta
from importlib.metadata import version
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

ZONES = [("UTC", "UTC"), ("America_New_York", "America/New_York")]

# (id, fields, whether the trigger fires at all after now)
CASES = [
    ("a_minute_every_5", {"minute": "*/5"}, True),
    ("b_day_last_sun", {"day": "last sun"}, True),
    ("c_month_day_3rd_fri_hour", {"month": "6-8,11-12", "day": "3rd fri", "hour": "0-3"}, True),
    ("d_feb_29_2030", {"year": "2030", "month": "2", "day": "29"}, False),
]


def measure(call, repeat):
    """Median microseconds per call of ``call`` over ``repeat`` autoranged runs."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6


def expression(trigger):
    """The fields of a trigger as APScheduler shows them: ``minute='*/5'``."""
    text = str(trigger)
    return text[text.index("[") + 1 : text.rindex("]")]


def cases():
    """Yields (case id, zone id, zone, expression, zero-argument call) per benchmark."""
    for case_id, fields, fires in CASES:
        for zone_id, zone_name in ZONES:
            tz = ZoneInfo(zone_name)
            trigger = CronTrigger(timezone=tz, **fields)
            now = datetime(2024, 1, 1, tzinfo=tz)
            first = trigger.get_next_fire_time(None, now)
            # Same answers as the Rust benchmark checks; (d) has no 29 February.
            assert (first is not None) == fires, (trigger, zone_name, first)
            call = lambda t=trigger, n=now: t.get_next_fire_time(None, n)  # noqa: E731
            yield case_id, zone_id, zone_name, expression(trigger), call

    case_id, fields, _ = CASES[0]
    for zone_id, zone_name in ZONES:
        tz = ZoneInfo(zone_name)
        trigger = CronTrigger(timezone=tz, **fields)
        prev = trigger.get_next_fire_time(None, datetime(2024, 1, 1, tzinfo=tz))
        assert trigger.get_next_fire_time(prev, prev) == prev + timedelta(minutes=5)
        yield (
            case_id + "_chained",
            zone_id,
            zone_name,
            expression(trigger) + " (chained)",
            lambda t=trigger, p=prev: t.get_next_fire_time(p, p),
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tsv", action="store_true", help="machine-readable output")
    parser.add_argument("--repeat", type=int, default=5, help="timeit repeats (median)")
    args = parser.parse_args()

    if not args.tsv:
        print(f"APScheduler {version('APScheduler')}, Python {sys.version.split()[0]}")
        print(f"{'expression':<58} {'zone':<18} {'us/call':>9}")
    for case_id, zone_id, zone_name, expr, call in cases():
        us = measure(call, args.repeat)
        if args.tsv:
            print(f"{case_id}\t{zone_id}\t{zone_name}\t{expr}\t{us:.3f}", flush=True)
        else:
            print(f"{expr:<58} {zone_name:<18} {us:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
