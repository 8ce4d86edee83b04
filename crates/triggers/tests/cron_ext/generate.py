"""Writes tests/conformance/cron-ext.jsonl: crontab extensions (L, L-n, LW, nW, nL, d#n, ?,
6 and 7 fields) with fire times computed independently of the library.

Oracle: which wall-clock times match is computed twice and compared:
- by cronsim (PyPI `cronsim`, 2.8), for the forms it reads (L, LW, nL, d#n, 6 fields),
  iterated over naive wall-clock times;
- by the small matcher below, written from Quartz's rules, for every form (cronsim has no
  L-n, nW, ? or year field).
Where both apply they must agree (the script stops otherwise). The wall-clock times are then
turned into instants by the project's DST policy (tests/conformance/README.md): a time in a
spring-forward gap fires once, with the offset before the jump (Python's fold=0); in a
fall-back overlap it fires at its first occurrence only, or in both passes when the hour
field is `*` or `*/n`. The fire list is every such instant at or after `now`, in order.

Run: pip install cronsim==2.8 && python3 crates/triggers/tests/cron_ext/generate.py
"""

import calendar
import json
import os
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from cronsim import CronSim
from cronsim.cronsim import Field

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
OUT = os.path.join(ROOT, "tests", "conformance", "cron-ext.jsonl")

# (id, expr, timezone, now, count)
CASES = [
    # Day of month: L, L-n, LW, nW.
    ("cx-l-001", "0 12 L * *", "UTC", "2024-01-15T00:00:00+00:00", 6),
    ("cx-l-002", "0 12 L-3 * *", "UTC", "2024-01-15T00:00:00+00:00", 6),
    ("cx-l-003", "0 12 L-30 * *", "UTC", "2024-01-15T00:00:00+00:00", 4),
    ("cx-l-004", "0 18 LW * *", "UTC", "2024-01-01T00:00:00+00:00", 12),
    ("cx-w-001", "0 9 15W * *", "UTC", "2024-01-01T00:00:00+00:00", 12),
    ("cx-w-002", "0 9 1W * *", "UTC", "2024-01-01T00:00:00+00:00", 12),
    ("cx-w-003", "0 9 31W * *", "UTC", "2024-01-01T00:00:00+00:00", 8),
    ("cx-w-004", "0 9 1W,15W,L * *", "Europe/Berlin", "2024-05-20T00:00:00+02:00", 8),
    # Day of week: nL, d#n (0 and 7 = Sunday), names.
    ("cx-dow-001", "0 10 * * 5L", "UTC", "2024-01-01T00:00:00+00:00", 6),
    ("cx-dow-002", "0 10 * * 1#2", "UTC", "2024-01-01T00:00:00+00:00", 6),
    ("cx-dow-003", "0 10 * * 7#1,0L", "UTC", "2024-01-01T00:00:00+00:00", 8),
    ("cx-dow-004", "0 10 * * fri#5", "UTC", "2024-01-01T00:00:00+00:00", 4),
    ("cx-dow-005", "0 10 * * 1#2,3", "UTC", "2024-04-01T00:00:00+00:00", 6),
    # Both day fields restricted: a day matching either fires (as cron).
    ("cx-or-001", "0 12 L * 5L", "UTC", "2024-01-01T00:00:00+00:00", 8),
    ("cx-or-002", "0 12 15W * 1#1", "UTC", "2024-01-01T00:00:00+00:00", 8),
    # `?` reads as `*`, also for the either-rule.
    ("cx-q-001", "0 0 1 * ?", "UTC", "2024-01-20T00:00:00+00:00", 3),
    ("cx-q-002", "0 0 ? * 1", "UTC", "2024-01-20T00:00:00+00:00", 3),
    ("cx-q-003", "0 0 ? * 1#3", "UTC", "2024-01-20T00:00:00+00:00", 3),
    # Six fields: seconds first.
    ("cx-6f-001", "*/20 0 9 * * 1-5", "UTC", "2024-01-05T08:59:30+00:00", 6),
    ("cx-6f-002", "30 * * * * *", "UTC", "2024-01-01T00:00:45+00:00", 3),
    ("cx-6f-003", "15 45 23 L * *", "UTC", "2024-02-01T00:00:00+00:00", 3),
    # Seven fields: year last.
    ("cx-7f-001", "0 0 12 L-3 * ? 2030", "UTC", "2024-01-01T00:00:00+00:00", 14),
    ("cx-7f-002", "0 0 0 29 2 ? 2024-2032/4", "UTC", "2024-01-01T00:00:00+00:00", 5),
    # DST-change days: America/New_York (2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00).
    ("cx-dst-001", "30 2 * 3 0#2", "America/New_York", "2024-01-01T00:00:00-05:00", 3),
    ("cx-dst-002", "30 2 L-21 3 *", "America/New_York", "2024-01-01T00:00:00-05:00", 2),
    ("cx-dst-003", "30 1 * 11 0#1", "America/New_York", "2024-11-01T00:00:00-04:00", 3),
    ("cx-dst-004", "0 */30 * * 11 0#1", "America/New_York", "2024-11-03T00:00:00-04:00", 8),
    ("cx-dst-005", "0 30 2 ? 3 0#2 2024-2025", "America/New_York", "2024-01-01T00:00:00-05:00", 5),
    # Europe/Berlin (2024-03-31 02:00 -> 03:00, 2024-10-27 03:00 -> 02:00).
    ("cx-dst-006", "30 2 L 3 *", "Europe/Berlin", "2024-03-01T00:00:00+01:00", 2),
    ("cx-dst-007", "30 2 * 3 7L", "Europe/Berlin", "2024-03-01T00:00:00+01:00", 2),
    ("cx-dst-008", "30 2 * 10 0L", "Europe/Berlin", "2024-10-01T00:00:00+02:00", 2),
    ("cx-dst-009", "0 0,30 * * 10 0L", "Europe/Berlin", "2024-10-27T01:00:00+02:00", 8),
    ("cx-dst-010", "0 18 LW 3 *", "Europe/Berlin", "2024-03-01T00:00:00+01:00", 2),
    # Australia/Lord_Howe (2024-04-07 02:00 -> 01:30, 2024-10-06 02:00 -> 02:30).
    ("cx-dst-011", "15 2 * 10 0#1", "Australia/Lord_Howe", "2024-10-01T00:00:00+10:30", 2),
    ("cx-dst-012", "45 1 * 4 0#1", "Australia/Lord_Howe", "2024-04-01T00:00:00+11:00", 2),
    ("cx-dst-013", "0 */10 * * 10 0#1", "Australia/Lord_Howe", "2024-10-06T01:40:00+10:30", 6),
    # Pacific/Chatham (2024-04-07 03:45 -> 02:45, 2024-09-29 02:45 -> 03:45).
    ("cx-dst-014", "0 3 * 9 0L", "Pacific/Chatham", "2024-09-01T00:00:00+12:45", 2),
    ("cx-dst-015", "0 3 L-1 9 *", "Pacific/Chatham", "2024-09-01T00:00:00+12:45", 2),
    ("cx-dst-016", "15 3 * 4 0#1", "Pacific/Chatham", "2024-04-01T00:00:00+13:45", 2),
]

# Refused: (id, expr, why).
ERRORS = [
    ("cx-err-001", "0 0 32W * *", "day 32"),
    ("cx-err-002", "0 0 0W * *", "day 0"),
    ("cx-err-003", "0 0 0#2 * *", "# belongs in the day of week"),
    ("cx-err-004", "0 0 * * 8#1", "weekday 8"),
    ("cx-err-005", "0 0 * * 1#6", "a month has at most five of a weekday"),
    ("cx-err-006", "0 0 * * 1#0", "occurrence 0"),
    ("cx-err-007", "0 0 L-40 * *", "offset beyond a month"),
    ("cx-err-008", "0 0 * * L", "L alone belongs in the day of month"),
    ("cx-err-009", "0 0 5L * *", "nL belongs in the day of week"),
    ("cx-err-010", "0 0 * * 15W", "nW belongs in the day of month"),
    ("cx-err-011", "0 ? * * *", "? only in the day fields"),
    ("cx-err-012", "0 0 0 * * * 1969", "year before 1970"),
    ("cx-err-013", "0 0 0 0 * * * * ", "eight fields"),
    ("cx-err-014", "H * * * *", "H without a hash key"),
    ("cx-err-015", "0 0 LW-1 * *", "no such form"),
    ("cx-err-016", "0 0 L * * 2024", "six fields are seconds first: L is no second"),
]

DOW_NAMES = "sun mon tue wed thu fri sat".split()


def cron_weekday(d):
    """0 = Sunday."""
    return (d.weekday() + 1) % 7


def nearest_business_day(year, month, day):
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return None
    wd = cron_weekday(datetime(year, month, day))
    if wd == 6:  # Saturday
        return 3 if day == 1 else day - 1
    if wd == 0:  # Sunday
        return day - 2 if day == last else day + 1
    return day


def dow_value(text):
    text = text.lower()
    return DOW_NAMES.index(text) if text in DOW_NAMES else int(text)


def dom_matches(field, d):
    last = calendar.monthrange(d.year, d.month)[1]
    for piece in field.split(","):
        p = piece.upper()
        if p in ("*", "?"):
            return True
        if p == "L":
            ok = d.day == last
        elif p.startswith("L-"):
            ok = d.day == last - int(p[2:])
        elif p == "LW":
            ok = d.day == nearest_business_day(d.year, d.month, last)
        elif p.endswith("W"):
            ok = d.day == nearest_business_day(d.year, d.month, int(p[:-1]))
        else:
            ok = d.day in Field.DAY.parse(p)
        if ok:
            return True
    return False


def dow_matches(field, d):
    last = calendar.monthrange(d.year, d.month)[1]
    wd = cron_weekday(d)
    for piece in field.split(","):
        p = piece.upper()
        if p in ("*", "?"):
            return True
        if "#" in p:
            w, n = p.split("#")
            ok = dow_value(w) % 7 == wd and (d.day - 1) // 7 + 1 == int(n)
        elif p.endswith("L"):
            ok = dow_value(p[:-1]) % 7 == wd and d.day + 7 > last
        else:
            ok = wd in {v % 7 for v in Field.DOW.parse(p)}
        if ok:
            return True
    return False


def split(expr):
    parts = expr.split()
    if len(parts) == 5:
        return ["0"] + parts + ["*"]
    if len(parts) == 6:
        return parts + ["*"]
    return parts


def years(field):
    if field == "*":
        return None
    out = set()
    for piece in field.split(","):
        step = 1
        if "/" in piece:
            piece, s = piece.split("/")
            step = int(s)
        a, _, b = piece.partition("-")
        out.update(range(int(a), int(b or a) + 1, step))
    return out


def own_naive(expr, start, until):
    """Matching wall-clock times in [start, until), by the matcher above."""
    sec, minute, hour, dom, month, dow, year = split(expr)
    secs = sorted(Field.SECOND.parse(sec))
    mins = sorted(Field.MINUTE.parse(minute))
    hours = sorted(Field.HOUR.parse(hour))
    months = Field.MONTH.parse(month.upper())
    ys = years(year)
    day_and = dom.startswith(("*", "?")) or dow.startswith(("*", "?"))
    d = datetime(start.year, start.month, start.day)
    while d < until:
        if d.month in months and (ys is None or d.year in ys):
            a, b = dom_matches(dom, d), dow_matches(dow, d)
            if (a and b) if day_and else (a or b):
                for h in hours:
                    for m in mins:
                        for s in secs:
                            t = d.replace(hour=h, minute=m, second=s)
                            if start <= t < until:
                                yield t
        d += timedelta(days=1)


def cronsim_reads(expr):
    parts = expr.split()
    if len(parts) > 6 or "?" in expr:
        return False
    dom = parts[-3].upper()
    return all(
        p in ("L", "LW") or not any(c in p for c in "LW") for p in dom.split(",")
    )


def cronsim_naive(expr, start, until):
    it = CronSim(expr.upper(), start - timedelta(seconds=1))
    for t in it:
        if t >= until:
            return
        if t >= start:
            yield t


def instants(expr, tzname, now, count):
    tz = ZoneInfo(tzname)
    hour_field = split(expr)[2]
    both_passes = hour_field.startswith("*") and "," not in hour_field
    local_now = now.astimezone(tz).replace(tzinfo=None)
    start = local_now - timedelta(days=1)
    # Long enough for the sparsest case (leap days, a year field).
    horizon = 366 * 10
    until = start + timedelta(days=horizon)
    naive = list(own_naive(expr, start, until))
    if cronsim_reads(expr):
        other = list(cronsim_naive(expr, start, until))
        assert naive == other, (expr, naive[:5], other[:5])
    out = set()
    later = 0
    for t in naive:
        first = t.replace(tzinfo=tz, fold=0)
        second = t.replace(tzinfo=tz, fold=1)
        u1 = first.astimezone(timezone.utc)
        u2 = second.astimezone(timezone.utc)
        out.add(u1)
        overlap = u1 != u2 and u1.astimezone(tz).replace(tzinfo=None) == t
        if overlap and both_passes:
            out.add(u2)
        later += u1 >= now
        # Wall-clock order and instant order differ by at most a DST shift: far enough.
        if later > count + 200:
            break
    fires = sorted(u for u in out if u >= now)[:count]
    return [f.astimezone(tz).isoformat() for f in fires]


def main():
    lines = []
    for id_, expr, tzname, now, count in CASES:
        now_dt = datetime.fromisoformat(now)
        fires = instants(expr, tzname, now_dt, count)
        oracle = "cronsim+quartz-rules" if cronsim_reads(expr) else "quartz-rules"
        lines.append({"id": id_, "trigger": "crontab", "args": {"expr": expr},
                      "timezone": tzname, "now": now, "count": count, "fires": fires,
                      "oracle": oracle, "version": "crates/triggers/tests/cron_ext/generate.py"})
    for id_, expr, why in ERRORS:
        lines.append({"id": id_, "trigger": "crontab", "args": {"expr": expr},
                      "timezone": "UTC", "now": "2024-01-01T00:00:00+00:00", "error": True,
                      "why": why, "version": "crates/triggers/tests/cron_ext/generate.py"})
    with open(OUT, "w") as f:
        for line in lines:
            f.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {len(lines)} vectors to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
