//! An independent model of cronie, written from what its `src/entry.c` (reading a line
//! into bit sets and flags) and `src/cron.c` (the main loop, with its handling of clock
//! jumps) do. Used by `cron_forms.rs`; it does not call the library.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// One crontab entry as cron holds it: bit sets per field and the `*` flags.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    /// Bits 0..=7, 0 and 7 both Sunday.
    dow: u64,
    min_star: bool,
    hr_star: bool,
    dom_star: bool,
    dow_star: bool,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DOW_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A number or (where the field has names) a three-letter name, case-insensitive.
fn number(text: &str, low: u32, names: &[&str]) -> Option<u32> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32 + low)
}

/// cron's list of ranges for one field, or `None` where cron refuses the line.
fn field_bits(text: &str, low: u32, high: u32, names: &[&str], is_dow: bool) -> Option<u64> {
    let mut bits = 0u64;
    for piece in text.split(',') {
        let (body, step) = match piece.split_once('/') {
            Some((b, s)) => (b, Some(number(s, 0, &[])?)),
            None => (piece, None),
        };
        if step == Some(0) {
            return None;
        }
        let (first, last) = if body == "*" {
            (low, high)
        } else if let Some((a, b)) = body.split_once('-') {
            let (a, b) = (number(a, low, names)?, number(b, low, names)?);
            // The Sunday rule applies only when no step follows.
            if is_dow && step.is_none() && a > b && b == 0 {
                (a, 7)
            } else {
                (a, b)
            }
        } else {
            // A step after a single number is refused by cronie.
            if step.is_some() {
                return None;
            }
            let n = number(body, low, names)?;
            (n, n)
        };
        let mut v = first;
        while v <= last {
            if v < low || v > high {
                return None;
            }
            bits |= 1 << v;
            v += step.unwrap_or(1);
        }
    }
    Some(bits)
}

/// Reads crontab time text as cronie does (`None`: cron refuses it).
pub(crate) fn parse_entry(expr: &str) -> Option<Entry> {
    let expanded = match expr.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        t if t.starts_with('@') => return None,
        t => t,
    };
    let f: Vec<&str> = expanded.split_whitespace().collect();
    if f.len() != 5 {
        return None;
    }
    let mut dow = field_bits(f[4], 0, 7, &DOW_NAMES, true)?;
    if dow & 0x81 != 0 {
        dow |= 0x81;
    }
    Some(Entry {
        minute: field_bits(f[0], 0, 59, &[], false)?,
        hour: field_bits(f[1], 0, 23, &[], false)?,
        dom: field_bits(f[2], 1, 31, &[], false)?,
        month: field_bits(f[3], 1, 12, &MONTH_NAMES, false)?,
        dow,
        min_star: f[0].starts_with('*'),
        hr_star: f[1].starts_with('*'),
        dom_star: f[2].starts_with('*'),
        dow_star: f[4].starts_with('*'),
    })
}

impl Entry {
    /// cron's test "is the wall-clock minute `wall` now?".
    fn matches(&self, wall: NaiveDateTime) -> bool {
        let bit = |set: u64, v: u32| set & (1 << v) != 0;
        let dom = bit(self.dom, wall.day());
        let dow = bit(self.dow, wall.weekday().num_days_from_sunday());
        bit(self.minute, wall.minute())
            && bit(self.hour, wall.hour())
            && bit(self.month, wall.month())
            && if self.dom_star || self.dow_star {
                dom && dow
            } else {
                dom || dow
            }
    }

    fn wild(&self) -> bool {
        self.min_star || self.hr_star
    }
}

/// The wall clock at `t` in `tz`, in whole minutes since the epoch (cron's `clockTime`).
fn wall_minutes(tz: Tz, t: DateTime<Utc>) -> i64 {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    (t.timestamp() + i64::from(offset.local_minus_utc())).div_euclid(60)
}

fn wall_time(minutes: i64) -> NaiveDateTime {
    DateTime::from_timestamp(minutes * 60, 0)
        .expect("in range")
        .naive_utc()
}

/// The instants at which cron, started in the minute before `now` with the zone `tz`,
/// runs `entry`: at most `count`, within 800 days.
pub(crate) fn simulate(
    entry: &Entry,
    tz: Tz,
    now: DateTime<Utc>,
    count: usize,
) -> Vec<DateTime<Utc>> {
    let first_tick = {
        let s = now.timestamp();
        DateTime::from_timestamp(s + (60 - s.rem_euclid(60)) % 60, 0).expect("in range")
    };
    let mut virtual_time = wall_minutes(tz, first_tick - Duration::minutes(1));
    let mut fires = Vec::new();
    let mut t = first_tick;
    let end = first_tick + Duration::days(800);
    while fires.len() < count && t < end {
        let running = wall_minutes(tz, t);
        let diff = running - virtual_time;
        let run = |v: i64, wild: bool, fixed: bool| {
            entry.matches(wall_time(v)) && if entry.wild() { wild } else { fixed }
        };
        let fire = if diff == 1 || !(-180..=180).contains(&diff) {
            virtual_time = running;
            run(running, true, true)
        } else if diff > 5 {
            // A forward jump (DST begins): wildcard jobs for this minute, fixed-time jobs
            // for every minute skipped up to and including this one.
            let wild_now = run(running, true, false);
            let fixed = (virtual_time + 1..=running).any(|v| run(v, false, true));
            virtual_time = running;
            wild_now || fixed
        } else if diff > 0 {
            let any = (virtual_time + 1..=running).any(|v| run(v, true, true));
            virtual_time = running;
            any
        } else {
            // The clock went back (DST ends): wildcard jobs only, virtual time waits.
            run(running, true, false)
        };
        if fire {
            fires.push(t);
        }
        t += Duration::minutes(1);
    }
    fires
}
