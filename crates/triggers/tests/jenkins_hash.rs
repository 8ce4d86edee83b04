//! Jenkins' `H` in crontab text: the values this library picks for a key equal Jenkins'.
//!
//! `jenkins_hash/vectors.jsonl` is the output of `jenkins_hash/JenkinsHash.java`, a small
//! Java program that computes the values with the JDK's own `MessageDigest` (MD5) and
//! `java.util.Random`, as Jenkins' `hudson.scheduler.Hash` and `BaseParser` do. Regenerate
//! it with `java crates/triggers/tests/jenkins_hash/JenkinsHash.java >
//! crates/triggers/tests/jenkins_hash/vectors.jsonl`.
//!
//! The library is checked from the outside: the fire times of each trigger over a window
//! show which minutes, hours, days, months and weekdays it runs on.

use std::collections::BTreeSet;

use apscheduler_core::Trigger;
use apscheduler_triggers::{AnyTrigger, CronTrigger};
use chrono::{DateTime, Datelike, TimeZone, Timelike};
use chrono_tz::Tz;
use serde_json::{json, Value};

const VECTORS: &str = include_str!("jenkins_hash/vectors.jsonl");

fn values(v: &Value, field: &str) -> BTreeSet<u32> {
    v[field]
        .as_array()
        .expect(field)
        .iter()
        .map(|n| n.as_u64().unwrap() as u32)
        // Jenkins' 7 is Sunday, as 0 is.
        .map(|n| if field == "day_of_week" { n % 7 } else { n })
        .collect()
}

/// The fire times from `from` up to (not including) `until`.
fn fires(trigger: &CronTrigger, from: DateTime<Tz>, until: DateTime<Tz>) -> Vec<DateTime<Tz>> {
    let mut out: Vec<DateTime<Tz>> = Vec::new();
    loop {
        let next = match out.last() {
            None => trigger.next_fire_time(None, &from),
            Some(p) => trigger.next_fire_time(Some(p), p),
        };
        match next {
            Some(t) if t < until => out.push(t),
            _ => return out,
        }
    }
}

#[test]
fn hashed_values_equal_jenkins() {
    let lines: Vec<Value> = VECTORS
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 72, "every key with every expression");
    for v in &lines {
        let key = v["key"].as_str().unwrap();
        let expr = v["expr"].as_str().unwrap();
        let what = format!("key {key:?}, {expr:?}");
        let trigger = CronTrigger::from_crontab_hashed(expr, Tz::UTC, key).expect(&what);
        let fields: Vec<&str> = expr.split(' ').collect();
        // A whole leap year when the day or month field picks days; else one week,
        // which holds every weekday.
        let whole_year = fields[2] != "*" || fields[3] != "*";
        let from = Tz::UTC.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let until = if whole_year {
            Tz::UTC.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
        } else {
            Tz::UTC.with_ymd_and_hms(2024, 1, 8, 0, 0, 0).unwrap()
        };
        let fires = fires(&trigger, from, until);
        assert!(!fires.is_empty(), "{what}: no fire");
        let seen = |f: fn(&DateTime<Tz>) -> u32| fires.iter().map(f).collect::<BTreeSet<u32>>();
        assert_eq!(seen(|t| t.minute()), values(v, "minute"), "{what}: minutes");
        assert_eq!(seen(|t| t.hour()), values(v, "hour"), "{what}: hours");
        if !whole_year {
            // A week holds every weekday the trigger runs on.
            assert_eq!(
                seen(|t| t.weekday().num_days_from_sunday()),
                values(v, "day_of_week"),
                "{what}: weekdays"
            );
        } else {
            assert_eq!(seen(|t| t.day()), values(v, "day"), "{what}: days");
            assert_eq!(seen(|t| t.month()), values(v, "month"), "{what}: months");
        }
        assert!(fires.iter().all(|t| t.second() == 0), "{what}: second 0");
    }
}

#[test]
fn the_key_is_kept_so_a_reload_picks_the_same_values() {
    let trigger = CronTrigger::from_crontab_hashed("H(0-29) 3 * * *", Tz::UTC, "backup").unwrap();
    let state = serde_json::to_value(AnyTrigger::from(trigger.clone())).unwrap();
    assert_eq!(state["hash_key"], json!("backup"), "{state}");
    let reloaded: AnyTrigger = serde_json::from_value(state).unwrap();
    let now = Tz::UTC.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    assert_eq!(
        reloaded.next_fire_time(None, &now),
        trigger.next_fire_time(None, &now)
    );
    // Another key, another minute (these two keys differ in Jenkins too: the vectors).
    let other = CronTrigger::from_crontab_hashed("H(0-29) 3 * * *", Tz::UTC, "job-42").unwrap();
    assert_ne!(
        other.next_fire_time(None, &now),
        trigger.next_fire_time(None, &now)
    );
    // Text without `H` keeps no key: its stored form is as before.
    let plain = CronTrigger::from_crontab_hashed("0 3 * * *", Tz::UTC, "backup").unwrap();
    let state = serde_json::to_value(AnyTrigger::from(plain)).unwrap();
    assert!(state.get("hash_key").is_none(), "{state}");
}

#[test]
fn the_args_take_a_hash_key() {
    let now = Tz::UTC.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    let by_args = AnyTrigger::from_args(
        "crontab",
        &json!({"expr": "H H * * *", "hash_key": "nightly-report"}),
        Tz::UTC,
        now,
    )
    .unwrap();
    let direct = CronTrigger::from_crontab_hashed("H H * * *", Tz::UTC, "nightly-report").unwrap();
    assert_eq!(by_args, AnyTrigger::from(direct));
    let e = AnyTrigger::from_args(
        "crontab",
        &json!({"expr": "H H * * *", "hash_key": 5}),
        Tz::UTC,
        now,
    )
    .unwrap_err();
    assert_eq!(e.field(), "hash_key");
}

#[test]
fn h_without_a_key_says_how_to_give_one() {
    let e = CronTrigger::from_crontab("H * * * *", Tz::UTC).unwrap_err();
    assert_eq!(e.field(), "minute");
    let text = e.to_string();
    assert!(
        text.contains("from_crontab_hashed") && text.contains("hash_key"),
        "{text}"
    );
}

#[test]
fn bad_h_forms_name_the_field_and_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("H(0-60) * * * *", "minute", "H(0-60)"),
        ("H(30-10) * * * *", "minute", "H(30-10)"),
        ("H/61 * * * *", "minute", "H/61"),
        ("H/0 * * * *", "minute", "H/0"),
        ("0 H(5 * * *", "hour", "H(5"),
        ("0 Hx * * *", "hour", "Hx"),
        ("0 0 H(0-5) * *", "day", "H(0-5)"),
        ("0 0 * H(1-13) *", "month", "H(1-13)"),
        ("0 0 * * H(0-8)", "day_of_week", "H(0-8)"),
        ("H 0 0 * * * *", "second", "H"),
        ("0 0 0 * * * H", "year", "H"),
    ];
    for (expr, field, value) in cases {
        let e = CronTrigger::from_crontab_hashed(expr, Tz::UTC, "k").unwrap_err();
        assert_eq!(e.field(), *field, "{expr}: {e}");
        assert!(e.to_string().contains(&format!("'{value}'")), "{expr}: {e}");
    }
}

#[test]
fn cronie_refuses_h() {
    assert!(CronTrigger::from_cronie("H * * * *", Tz::UTC).is_err());
}
