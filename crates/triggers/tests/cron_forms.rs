//! Crontab text as cron reads it: the vectors of `tests/conformance/cron-forms.jsonl`
//! through the library, and through an independent model of cronie that produced them.
//!
//! The model is written from what cronie's `src/entry.c` and `src/cron.c` do, not from
//! this library: each field becomes a bit set (`*`, `*/s`, `n`, `a-b`, `a-b/s`, names,
//! lists; a step wider than the range keeps its first value; a weekday range `N-0`
//! without a step ends on Sunday; 0 and 7 are both Sunday), flags record which fields
//! start with `*`, and a simulation of cron's main loop wakes every real minute, compares
//! the wall clock with the minute it expected and runs jobs as cron does (wildcard jobs
//! for the new minute and fixed-time jobs for every skipped minute after a forward jump,
//! only wildcard jobs while the clock is behind after a backward jump).
//!
//! `APS_WRITE_CRON_FORMS=1 cargo test -p apscheduler-triggers --test cron_forms` rewrites
//! the vector file from the cases below with the model's fire times.

use apscheduler_triggers::evaluate_vector;
use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono::{Datelike, FixedOffset};
use chrono_tz::Tz;
use serde_json::{json, Value};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/conformance/cron-forms.jsonl"
);

// ---------------------------------------------------------------------------------------
// The model of cronie.
// ---------------------------------------------------------------------------------------

/// One crontab entry as cron holds it: bit sets per field and the `*` flags.
#[derive(Debug, Clone)]
struct Entry {
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
fn parse_entry(expr: &str) -> Option<Entry> {
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
fn simulate(entry: &Entry, tz: Tz, now: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
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

// ---------------------------------------------------------------------------------------
// The cases (written to the vector file by the model).
// ---------------------------------------------------------------------------------------

/// `(id, expr, timezone, now, count, dst)`; every one is accepted by cron.
const ACCEPTED: &[(&str, &str, &str, &str, u64, bool)] = &[
    (
        "cf-step-001",
        "*/60 * * * *",
        "UTC",
        "2024-03-01T10:17:00+00:00",
        4,
        false,
    ),
    (
        "cf-step-002",
        "0 */24 * * *",
        "UTC",
        "2024-03-01T10:17:00+00:00",
        3,
        false,
    ),
    (
        "cf-step-003",
        "0-30/45 * * * *",
        "UTC",
        "2024-03-01T10:17:00+00:00",
        3,
        false,
    ),
    (
        "cf-step-004",
        "5 0 */31 * *",
        "UTC",
        "2024-01-20T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-step-005",
        "0 0 1 */12 *",
        "UTC",
        "2024-11-01T00:00:00+00:00",
        2,
        false,
    ),
    (
        "cf-step-006",
        "0 12 * * */7",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-step-007",
        "0 12 * * */8",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-step-008",
        "0 12 * * tue-thu/3",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-step-009",
        "10-20/15,40 * * * *",
        "UTC",
        "2024-03-01T10:17:00+00:00",
        4,
        false,
    ),
    (
        "cf-step-010",
        "0 12 * * */2",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        5,
        false,
    ),
    (
        "cf-dow0-001",
        "0 9 * * sat-0",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-dow0-002",
        "0 9 * * 5-0",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-dow0-003",
        "0 9 * * 7-0",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-dow0-004",
        "0 9 * * Fri-SUN",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-dow0-005",
        "0 9 * * 0,7",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-dow0-006",
        "0 9 13 * 5-0",
        "UTC",
        "2024-09-10T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-name-001",
        "0 0 1 JAN-mar,Oct *",
        "UTC",
        "2024-01-15T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-name-002",
        "0 0 * * MON,wEd",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-name-003",
        "0 0 * feb-apr/2 sun",
        "UTC",
        "2024-01-01T00:00:00+00:00",
        4,
        false,
    ),
    (
        "cf-num-001",
        "05 09 01 02 *",
        "UTC",
        "2024-01-01T00:00:00+00:00",
        2,
        false,
    ),
    (
        "cf-num-002",
        " 0\t7  *  *\t* ",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        2,
        false,
    ),
    (
        "cf-or-001",
        "0 0 1,15 * fri",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        5,
        false,
    ),
    (
        "cf-or-002",
        "0 0 */10 * fri",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        5,
        false,
    ),
    (
        "cf-or-003",
        "0 0 1 * */3",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        5,
        false,
    ),
    (
        "cf-macro-001",
        "@yearly",
        "UTC",
        "2024-11-01T00:00:00+00:00",
        2,
        false,
    ),
    (
        "cf-macro-002",
        "@annually",
        "UTC",
        "2024-11-01T00:00:00+00:00",
        2,
        false,
    ),
    (
        "cf-macro-003",
        "@monthly",
        "UTC",
        "2024-03-01T00:00:01+00:00",
        3,
        false,
    ),
    (
        "cf-macro-004",
        "@weekly",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-macro-005",
        "@daily",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-macro-006",
        "@midnight",
        "UTC",
        "2024-03-01T00:00:00+00:00",
        3,
        false,
    ),
    (
        "cf-macro-007",
        "@hourly",
        "UTC",
        "2024-03-01T10:17:00+00:00",
        3,
        false,
    ),
    (
        "cf-macro-008",
        "@daily",
        "Europe/Berlin",
        "2024-03-30T12:00:00+01:00",
        3,
        true,
    ),
    // cronie's DST rule (`dst = "cron"`), spring forward and fall back.
    (
        "cf-dst-001",
        "30 2 * * *",
        "America/New_York",
        "2024-03-09T12:00:00-05:00",
        3,
        true,
    ),
    (
        "cf-dst-002",
        "*/20 * * * *",
        "America/New_York",
        "2024-03-10T01:30:00-05:00",
        4,
        true,
    ),
    (
        "cf-dst-003",
        "30 * * * *",
        "America/New_York",
        "2024-03-10T00:45:00-05:00",
        3,
        true,
    ),
    (
        "cf-dst-004",
        "0,30 2,3 * * *",
        "America/New_York",
        "2024-03-10T00:00:00-05:00",
        3,
        true,
    ),
    (
        "cf-dst-005",
        "30 1 * * *",
        "America/New_York",
        "2024-11-02T12:00:00-04:00",
        3,
        true,
    ),
    (
        "cf-dst-006",
        "*/20 1 * * *",
        "America/New_York",
        "2024-11-03T00:30:00-04:00",
        7,
        true,
    ),
    (
        "cf-dst-007",
        "30 * * * *",
        "America/New_York",
        "2024-11-03T00:45:00-04:00",
        4,
        true,
    ),
    (
        "cf-dst-008",
        "30 2 * * *",
        "Europe/Berlin",
        "2024-03-30T12:00:00+01:00",
        3,
        true,
    ),
    (
        "cf-dst-009",
        "30 2 * * *",
        "Europe/Berlin",
        "2024-10-26T12:00:00+02:00",
        3,
        true,
    ),
    (
        "cf-dst-010",
        "*/15 2 * * *",
        "Europe/Berlin",
        "2024-10-27T01:50:00+02:00",
        9,
        true,
    ),
    (
        "cf-dst-011",
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2024-10-05T12:00:00+10:30",
        3,
        true,
    ),
    (
        "cf-dst-012",
        "*/10 * * * *",
        "Australia/Lord_Howe",
        "2024-10-06T01:45:00+10:30",
        4,
        true,
    ),
    (
        "cf-dst-013",
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2024-04-06T12:00:00+11:00",
        3,
        true,
    ),
    (
        "cf-dst-014",
        "*/15 1 * * *",
        "Australia/Lord_Howe",
        "2024-04-07T01:20:00+11:00",
        7,
        true,
    ),
];

/// Refused: `(id, expr, why)`. "cron" = cron refuses it too; otherwise cron installs it
/// and the library refuses it on purpose (docs/triggers.md says why).
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "cf-err-001",
        "@reboot",
        "not a time: a job with at_start = true",
    ),
    ("cf-err-002", "@Daily", "cron"),
    ("cf-err-003", "@every 5m", "cron"),
    ("cf-err-005", "60 * * * *", "cron"),
    ("cf-err-006", "0 0 * * 8", "cron"),
    ("cf-err-007", "0 0 * * sunday", "cron"),
    ("cf-err-008", "0 0 * january *", "cron"),
    ("cf-err-009", "*/0 * * * *", "cron"),
    ("cf-err-010", "1,,2 * * * *", "cron"),
    ("cf-err-011", "0 0 * * mon-fri/0", "cron"),
    ("cf-err-012", "0 mon * * *", "cron"),
    (
        "cf-err-013",
        "~ * * * *",
        "random value drawn at each load: on purpose",
    ),
    (
        "cf-err-014",
        "0 0 * * 5-0/2",
        "cron reads it as empty: on purpose",
    ),
    (
        "cf-err-015",
        "0 0 * * mon-sun/2",
        "cron reads it as empty: on purpose",
    ),
    (
        "cf-err-016",
        "30-10 * * * *",
        "cron reads it as empty: on purpose",
    ),
    (
        "cf-err-017",
        "58-70/20 * * * *",
        "end beyond the field: on purpose",
    ),
];

fn model_fires(expr: &str, tz: Tz, now: DateTime<FixedOffset>, count: u64) -> Vec<String> {
    let entry = parse_entry(expr).unwrap_or_else(|| panic!("the model refuses {expr:?}"));
    simulate(&entry, tz, now.with_timezone(&Utc), count as usize)
        .iter()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
        .collect()
}

fn build_vectors() -> Vec<Value> {
    let mut out = Vec::new();
    for &(id, expr, zone, now, count, dst) in ACCEPTED {
        let tz: Tz = zone.parse().unwrap();
        let now_t = DateTime::parse_from_rfc3339(now).unwrap();
        let mut args = json!({ "expr": expr });
        if dst {
            args["dst"] = json!("cron");
        }
        out.push(json!({
            "id": id, "trigger": "crontab", "args": args, "timezone": zone, "now": now,
            "count": count, "fires": model_fires(expr, tz, now_t, count),
            "oracle": "cronie-model", "version": "tests/cron_forms.rs",
        }));
    }
    for &(id, expr, why) in REFUSED {
        out.push(json!({
            "id": id, "trigger": "crontab", "args": {"expr": expr}, "timezone": "UTC",
            "now": "2024-01-01T00:00:00+00:00", "error": true, "why": why,
            "oracle": "cronie-model", "version": "tests/cron_forms.rs",
        }));
    }
    out
}

fn read_vectors() -> Vec<Value> {
    std::fs::read_to_string(FILE)
        .expect("read cron-forms.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// The vector file is exactly what the model computes from the cases above.
#[test]
fn the_vector_file_is_the_models_output() {
    let built = build_vectors();
    if std::env::var_os("APS_WRITE_CRON_FORMS").is_some() {
        let text: String = built.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(FILE, text).expect("write cron-forms.jsonl");
    }
    assert_eq!(read_vectors(), built);
}

/// The model agrees with cron on what it refuses (the "cron" ones) and accepts the ones
/// the library refuses on purpose, so those really are choices.
#[test]
fn the_model_refuses_what_cron_refuses() {
    for &(id, expr, why) in REFUSED {
        let cron_refuses = why == "cron";
        let random = expr.contains('~') || expr.starts_with("@reboot");
        if random {
            continue;
        }
        assert_eq!(parse_entry(expr).is_none(), cron_refuses, "{id}: {expr}");
    }
}

/// Every vector through the library: the same instants and offsets, or an error.
#[test]
fn every_cron_form_vector_passes() {
    let vectors = read_vectors();
    assert!(vectors.len() >= 60, "expected the full set");
    let mut failures = Vec::new();
    for v in &vectors {
        let id = v["id"].as_str().unwrap();
        let result = evaluate_vector(v);
        if v.get("error").and_then(Value::as_bool) == Some(true) {
            if let Ok(f) = result {
                failures.push(format!("{id}: expected an error, got {} fires", f.len()));
            }
            continue;
        }
        let expected: Vec<_> = v["fires"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| DateTime::parse_from_rfc3339(f.as_str().unwrap()).unwrap())
            .collect();
        match result {
            Err(e) => failures.push(format!("{id}: unexpected error {e}")),
            Ok(fires) => {
                let got: Vec<_> = fires.iter().map(|t| t.fixed_offset()).collect();
                let same = got.len() == expected.len()
                    && got
                        .iter()
                        .zip(&expected)
                        .all(|(a, b)| a == b && a.offset() == b.offset());
                if !same {
                    failures.push(format!(
                        "{id}: {}\n   expected {:?}\n   got      {:?}",
                        v["args"],
                        expected.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
                        got.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `@reboot` is refused with a message that says what to write instead; an unknown macro
/// lists the ones cron knows.
#[test]
fn reboot_and_unknown_macros_say_what_to_do() {
    use apscheduler_triggers::CronTrigger;
    let e = CronTrigger::from_crontab("@reboot", Tz::UTC).unwrap_err();
    assert_eq!(e.field(), "crontab");
    assert!(e.to_string().contains("at_start = true"), "{e}");
    let e = CronTrigger::from_crontab("@Daily", Tz::UTC).unwrap_err();
    assert!(e.to_string().contains("@daily"), "{e}");
    let e = CronTrigger::from_crontab("0 0 * * 5-0/2", Tz::UTC).unwrap_err();
    assert_eq!(e.field(), "day_of_week");
    assert!(e.to_string().contains("5-7/2"), "{e}");
}
