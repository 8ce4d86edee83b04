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

mod cronie_model;
mod vector_file;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use cronie_model::{parse_entry, simulate};
use serde_json::{json, Value};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/conformance/cron-forms.jsonl"
);

// ---------------------------------------------------------------------------------------
// The cases (written to the vector file by the model).
// ---------------------------------------------------------------------------------------

/// `(id, expr, timezone, now, count, dst)`; every one is accepted by cron.
#[rustfmt::skip]
const ACCEPTED: &[(&str, &str, &str, &str, u64, bool)] = &[
    ("cf-step-001", "*/60 * * * *", "UTC", "2024-03-01T10:17:00+00:00", 4, false),
    ("cf-step-002", "0 */24 * * *", "UTC", "2024-03-01T10:17:00+00:00", 3, false),
    ("cf-step-003", "0-30/45 * * * *", "UTC", "2024-03-01T10:17:00+00:00", 3, false),
    ("cf-step-004", "5 0 */31 * *", "UTC", "2024-01-20T00:00:00+00:00", 4, false),
    ("cf-step-005", "0 0 1 */12 *", "UTC", "2024-11-01T00:00:00+00:00", 2, false),
    ("cf-step-006", "0 12 * * */7", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-step-007", "0 12 * * */8", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-step-008", "0 12 * * tue-thu/3", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-step-009", "10-20/15,40 * * * *", "UTC", "2024-03-01T10:17:00+00:00", 4, false),
    ("cf-step-010", "0 12 * * */2", "UTC", "2024-03-01T00:00:00+00:00", 5, false),
    ("cf-dow0-001", "0 9 * * sat-0", "UTC", "2024-03-01T00:00:00+00:00", 4, false),
    ("cf-dow0-002", "0 9 * * 5-0", "UTC", "2024-03-01T00:00:00+00:00", 4, false),
    ("cf-dow0-003", "0 9 * * 7-0", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-dow0-004", "0 9 * * Fri-SUN", "UTC", "2024-03-01T00:00:00+00:00", 4, false),
    ("cf-dow0-005", "0 9 * * 0,7", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-dow0-006", "0 9 13 * 5-0", "UTC", "2024-09-10T00:00:00+00:00", 4, false),
    ("cf-name-001", "0 0 1 JAN-mar,Oct *", "UTC", "2024-01-15T00:00:00+00:00", 4, false),
    ("cf-name-002", "0 0 * * MON,wEd", "UTC", "2024-03-01T00:00:00+00:00", 4, false),
    ("cf-name-003", "0 0 * feb-apr/2 sun", "UTC", "2024-01-01T00:00:00+00:00", 4, false),
    ("cf-num-001", "05 09 01 02 *", "UTC", "2024-01-01T00:00:00+00:00", 2, false),
    ("cf-num-002", " 0\t7  *  *\t* ", "UTC", "2024-03-01T00:00:00+00:00", 2, false),
    ("cf-or-001", "0 0 1,15 * fri", "UTC", "2024-03-01T00:00:00+00:00", 5, false),
    ("cf-or-002", "0 0 */10 * fri", "UTC", "2024-03-01T00:00:00+00:00", 5, false),
    ("cf-or-003", "0 0 1 * */3", "UTC", "2024-03-01T00:00:00+00:00", 5, false),
    ("cf-macro-001", "@yearly", "UTC", "2024-11-01T00:00:00+00:00", 2, false),
    ("cf-macro-002", "@annually", "UTC", "2024-11-01T00:00:00+00:00", 2, false),
    ("cf-macro-003", "@monthly", "UTC", "2024-03-01T00:00:01+00:00", 3, false),
    ("cf-macro-004", "@weekly", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-macro-005", "@daily", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-macro-006", "@midnight", "UTC", "2024-03-01T00:00:00+00:00", 3, false),
    ("cf-macro-007", "@hourly", "UTC", "2024-03-01T10:17:00+00:00", 3, false),
    ("cf-macro-008", "@daily", "Europe/Berlin", "2024-03-30T12:00:00+01:00", 3, true),
    // cronie's DST rule (`dst = "cron"`), spring forward and fall back.
    ("cf-dst-001", "30 2 * * *", "America/New_York", "2024-03-09T12:00:00-05:00", 3, true),
    ("cf-dst-002", "*/20 * * * *", "America/New_York", "2024-03-10T01:30:00-05:00", 4, true),
    ("cf-dst-003", "30 * * * *", "America/New_York", "2024-03-10T00:45:00-05:00", 3, true),
    ("cf-dst-004", "0,30 2,3 * * *", "America/New_York", "2024-03-10T00:00:00-05:00", 3, true),
    ("cf-dst-005", "30 1 * * *", "America/New_York", "2024-11-02T12:00:00-04:00", 3, true),
    ("cf-dst-006", "*/20 1 * * *", "America/New_York", "2024-11-03T00:30:00-04:00", 7, true),
    ("cf-dst-007", "30 * * * *", "America/New_York", "2024-11-03T00:45:00-04:00", 4, true),
    ("cf-dst-008", "30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00+01:00", 3, true),
    ("cf-dst-009", "30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00+02:00", 3, true),
    ("cf-dst-010", "*/15 2 * * *", "Europe/Berlin", "2024-10-27T01:50:00+02:00", 9, true),
    ("cf-dst-011", "15 2 * * *", "Australia/Lord_Howe", "2024-10-05T12:00:00+10:30", 3, true),
    ("cf-dst-012", "*/10 * * * *", "Australia/Lord_Howe", "2024-10-06T01:45:00+10:30", 4, true),
    ("cf-dst-013", "45 1 * * *", "Australia/Lord_Howe", "2024-04-06T12:00:00+11:00", 3, true),
    ("cf-dst-014", "*/15 1 * * *", "Australia/Lord_Howe", "2024-04-07T01:20:00+11:00", 7, true),
];

/// Refused: `(id, expr, why)`. "cron" = cron refuses it too; otherwise cron installs it
/// and the library refuses it on purpose (docs/triggers.md says why).
#[rustfmt::skip]
const REFUSED: &[(&str, &str, &str)] = &[
    ("cf-err-001", "@reboot", "not a time: a job with at_start = true"),
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
    ("cf-err-013", "~ * * * *", "random value drawn at each load: on purpose"),
    ("cf-err-014", "0 0 * * 5-0/2", "cron reads it as empty: on purpose"),
    ("cf-err-015", "0 0 * * mon-sun/2", "cron reads it as empty: on purpose"),
    ("cf-err-016", "30-10 * * * *", "cron reads it as empty: on purpose"),
    ("cf-err-017", "58-70/20 * * * *", "end beyond the field: on purpose"),
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
    vector_file::read("cron-forms.jsonl")
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
    let failures = vector_file::failures(&vectors);
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
