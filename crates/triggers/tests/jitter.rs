//! Jitter really spreads the fire times: for every kind of trigger that takes one, many
//! draws from the same previous fire time land at many distinct delays after the plain
//! (unjittered) fire time, across the whole `[0, jitter]` range.
//!
//! The triggers draw from the thread's RNG (not seedable from outside), so the bounds are
//! statistical, chosen so that a correct trigger fails with a probability far below
//! 1e-9 (see [`check_spread`]).

use apscheduler_triggers::{AnyTrigger, Trigger};
use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// Draws per trigger.
const DRAWS: usize = 200;

/// The jitter, in seconds.
const JITTER: f64 = 10.0;

/// At least this many draws above `JITTER / 4`, and as many below `3 * JITTER / 4`.
///
/// A uniform draw lands above a quarter of the range with probability 0.75: in 200
/// draws, 150 on average with a standard deviation of 6.1. Fewer than 100 is over
/// 8 standard deviations away; the binomial tail is below 1e-14 (and the same for the
/// other side).
const MIN_PAST_QUARTER: usize = 100;

fn now() -> DateTime<Tz> {
    chrono_tz::UTC
        .with_ymd_and_hms(2030, 3, 4, 5, 6, 7)
        .unwrap()
}

/// `kind` built from `args`, with `jitter` added to them when given.
fn build(kind: &str, args: &Value, jitter: Option<f64>) -> AnyTrigger {
    let mut args = args.clone();
    if let Some(j) = jitter {
        args["jitter"] = json!(j);
    }
    AnyTrigger::from_args(kind, &args, chrono_tz::UTC, now()).unwrap()
}

/// Draws `DRAWS` next fire times after the same previous one, from the jittered
/// trigger; checks each lies within the jitter of the plain one, that nearly all are
/// distinct, and that they cover both ends of the range.
fn check_spread(kind: &str, args: Value) {
    let plain = build(kind, &args, None);
    let jittered = build(kind, &args, Some(JITTER));
    let first = plain
        .next_fire_time(None, &now())
        .expect("a first fire time");
    let unjittered = plain
        .next_fire_time(Some(&first), &first)
        .expect("a second fire time");
    let delays: Vec<i64> = (0..DRAWS)
        .map(|_| {
            let fire = jittered
                .next_fire_time(Some(&first), &first)
                .expect("a jittered fire time");
            (fire - unjittered).num_nanoseconds().unwrap()
        })
        .collect();
    let jitter_ns = (JITTER * 1e9) as i64;
    for d in &delays {
        assert!(
            (0..=jitter_ns).contains(d),
            "{kind}: a delay of {d} ns outside [0, {JITTER} s]"
        );
    }
    let mut distinct = delays.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // Nanosecond delays drawn from 10 s: two alike is a one-in-a-million event per run.
    assert!(
        distinct.len() >= DRAWS - 5,
        "{kind}: only {} distinct delays in {DRAWS} draws: {distinct:?}",
        distinct.len()
    );
    let past_quarter = delays.iter().filter(|d| **d > jitter_ns / 4).count();
    let before_three_quarters = delays.iter().filter(|d| **d < jitter_ns * 3 / 4).count();
    assert!(
        past_quarter >= MIN_PAST_QUARTER,
        "{kind}: only {past_quarter} of {DRAWS} delays above a quarter of the jitter"
    );
    assert!(
        before_three_quarters >= MIN_PAST_QUARTER,
        "{kind}: only {before_three_quarters} of {DRAWS} delays below three quarters of \
         the jitter"
    );
}

#[test]
fn interval_jitter_spreads_over_its_range() {
    check_spread("interval", json!({"minutes": 5}));
}

#[test]
fn cron_jitter_spreads_over_its_range() {
    check_spread("cron", json!({"minute": "*/5"}));
}

#[test]
fn crontab_jitter_spreads_over_its_range() {
    check_spread("crontab", json!({"expr": "*/5 * * * *"}));
}

#[test]
fn calendarinterval_jitter_spreads_over_its_range() {
    check_spread("calendarinterval", json!({"days": 1, "hour": 9}));
}

#[test]
fn and_jitter_spreads_over_its_range() {
    check_spread(
        "and",
        json!({"triggers": [
            {"trigger": "cron", "args": {"minute": "*/5"}},
            {"trigger": "cron", "args": {"second": "0"}},
        ]}),
    );
}

#[test]
fn or_jitter_spreads_over_its_range() {
    check_spread(
        "or",
        json!({"triggers": [
            {"trigger": "cron", "args": {"minute": "*/5"}},
            {"trigger": "cron", "args": {"minute": "*/7"}},
        ]}),
    );
}
