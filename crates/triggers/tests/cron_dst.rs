//! `dst = "cron"`: cronie's DST rule, with fire times written by hand.
//!
//! The rule, from cronie's main loop (`src/cron.c`): cron wakes every minute and compares
//! the wall clock with the minute it expected. A "wildcard" job has a minute or hour field
//! starting with `*`; every other job is "fixed-time".
//! - Spring forward (the wall clock jumps ahead by more than five minutes): wildcard jobs
//!   run for the new wall minute only, so they skip the missing times; fixed-time jobs run
//!   for every skipped minute, all at the jump, and once (a queued job is not queued twice).
//! - Fall back (the wall clock goes back): until it has caught up with where it was, cron
//!   runs only wildcard jobs, so they run in both passes and fixed-time jobs only in the
//!   first.

use apscheduler_core::Trigger;
use apscheduler_triggers::{decode_trigger, AnyTrigger, CronTrigger, Dst};
use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::json;

/// The first `n` fires of the crontab trigger `expr` with `"dst": "cron"` after `now`.
fn fires(expr: &str, zone: &str, now: &str, n: usize) -> Vec<String> {
    let tz: Tz = zone.parse().unwrap();
    let now = DateTime::parse_from_rfc3339(now)
        .unwrap()
        .with_timezone(&tz);
    let trigger =
        AnyTrigger::from_args("crontab", &json!({"expr": expr, "dst": "cron"}), tz, now).unwrap();
    let mut out = Vec::new();
    let mut prev = None;
    while out.len() < n {
        let next = match prev {
            None => trigger.next_fire_time(None, &now),
            Some(p) => trigger.next_fire_time(Some(&p), &p),
        };
        let Some(t) = next else { break };
        out.push(t.to_rfc3339());
        prev = Some(t);
    }
    out
}

#[test]
fn new_york_spring_forward() {
    // 2024-03-10: 02:00 EST becomes 03:00 EDT (07:00 UTC); 02:00-02:59 do not exist.
    // Fixed-time 02:30: cron catches up the skipped minutes at the jump, 03:00 EDT.
    assert_eq!(
        fires(
            "30 2 * * *",
            "America/New_York",
            "2024-03-10T00:00:00-05:00",
            2
        ),
        ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]
    );
    // Wildcard (hour `*`) :30: 02:30 is skipped; 01:30 EST and 03:30 EDT run.
    assert_eq!(
        fires(
            "30 * * * *",
            "America/New_York",
            "2024-03-10T01:00:00-05:00",
            2
        ),
        ["2024-03-10T01:30:00-05:00", "2024-03-10T03:30:00-04:00"]
    );
}

#[test]
fn new_york_fall_back() {
    // 2024-11-03: 02:00 EDT becomes 01:00 EST (06:00 UTC); 01:00-01:59 happen twice.
    // Fixed-time 01:30: first pass only (EDT).
    assert_eq!(
        fires(
            "30 1 * * *",
            "America/New_York",
            "2024-11-03T00:00:00-04:00",
            2
        ),
        ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]
    );
    // Wildcard (minute `*`, hour fixed): both passes. The default policy would fire the
    // first pass only, since its hour field is not `*`.
    assert_eq!(
        fires(
            "*/30 1 * * *",
            "America/New_York",
            "2024-11-03T00:00:00-04:00",
            5
        ),
        [
            "2024-11-03T01:00:00-04:00",
            "2024-11-03T01:30:00-04:00",
            "2024-11-03T01:00:00-05:00",
            "2024-11-03T01:30:00-05:00",
            "2024-11-04T01:00:00-05:00",
        ]
    );
}

#[test]
fn berlin_spring_forward_and_fall_back() {
    // 2024-03-31: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    // Fixed-time 02:15 and 02:45: both caught up at the jump, run once, at 03:00 CEST.
    assert_eq!(
        fires(
            "15,45 2 * * *",
            "Europe/Berlin",
            "2024-03-31T00:00:00+01:00",
            3
        ),
        [
            "2024-03-31T03:00:00+02:00",
            "2024-04-01T02:15:00+02:00",
            "2024-04-01T02:45:00+02:00"
        ]
    );
    // Wildcard every 20 minutes: 02:00-02:40 are skipped; 03:00 CEST is the first minute
    // after the jump and runs.
    assert_eq!(
        fires(
            "*/20 * * * *",
            "Europe/Berlin",
            "2024-03-31T01:30:00+01:00",
            3
        ),
        [
            "2024-03-31T01:40:00+01:00",
            "2024-03-31T03:00:00+02:00",
            "2024-03-31T03:20:00+02:00"
        ]
    );
    // 2024-10-27: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:00-02:59 happen twice.
    // Fixed-time 02:30: once, CEST.
    assert_eq!(
        fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2024-10-27T00:00:00+02:00",
            2
        ),
        ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"]
    );
    // Wildcard (hour `*`) :30: both passes.
    assert_eq!(
        fires(
            "30 * * * *",
            "Europe/Berlin",
            "2024-10-27T02:00:00+02:00",
            3
        ),
        [
            "2024-10-27T02:30:00+02:00",
            "2024-10-27T02:30:00+01:00",
            "2024-10-27T03:30:00+01:00"
        ]
    );
}

#[test]
fn lord_howe_half_hour_shifts() {
    // 2024-10-06: 02:00 +10:30 becomes 02:30 +11:00 (15:30 UTC the day before); 02:00-02:29
    // do not exist. Fixed-time 02:10: at the jump, 02:30 +11:00.
    assert_eq!(
        fires(
            "10 2 * * *",
            "Australia/Lord_Howe",
            "2024-10-06T00:00:00+10:30",
            2
        ),
        ["2024-10-06T02:30:00+11:00", "2024-10-07T02:10:00+11:00"]
    );
    // Wildcard every 15 minutes: 02:00 and 02:15 skipped, 02:30 runs (the new minute).
    assert_eq!(
        fires(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2024-10-06T01:40:00+10:30",
            3
        ),
        [
            "2024-10-06T01:45:00+10:30",
            "2024-10-06T02:30:00+11:00",
            "2024-10-06T02:45:00+11:00"
        ]
    );
    // 2024-04-07: 02:00 +11:00 becomes 01:30 +10:30; 01:30-01:59 happen twice.
    // Fixed-time 01:40: once, +11:00.
    assert_eq!(
        fires(
            "40 1 * * *",
            "Australia/Lord_Howe",
            "2024-04-07T00:00:00+11:00",
            2
        ),
        ["2024-04-07T01:40:00+11:00", "2024-04-08T01:40:00+10:30"]
    );
    // Wildcard (hour `*`) :40: both passes, then 02:40 +10:30.
    assert_eq!(
        fires(
            "40 * * * *",
            "Australia/Lord_Howe",
            "2024-04-07T01:00:00+11:00",
            3
        ),
        [
            "2024-04-07T01:40:00+11:00",
            "2024-04-07T01:40:00+10:30",
            "2024-04-07T02:40:00+10:30"
        ]
    );
}

/// The default policy is unchanged without the argument: 02:30 on the spring-forward day
/// fires at the instant it denotes with the old offset, 03:30 EDT, not at the jump.
#[test]
fn the_default_policy_is_unchanged() {
    let tz: Tz = "America/New_York".parse().unwrap();
    let now = DateTime::parse_from_rfc3339("2024-03-10T00:00:00-05:00")
        .unwrap()
        .with_timezone(&tz);
    for args in [
        json!({"expr": "30 2 * * *"}),
        json!({"expr": "30 2 * * *", "dst": "default"}),
    ] {
        let t = AnyTrigger::from_args("crontab", &args, tz, now).unwrap();
        let next = t.next_fire_time(None, &now).unwrap();
        assert_eq!(next.to_rfc3339(), "2024-03-10T03:30:00-04:00", "{args}");
    }
}

/// The policy is stored with the trigger, so a node that decodes it fires the same times;
/// the builder and `with_dst` give the same trigger as the argument.
#[test]
fn the_policy_round_trips_and_every_constructor_sets_it() {
    let tz: Tz = "America/New_York".parse().unwrap();
    let now = DateTime::parse_from_rfc3339("2024-03-10T00:00:00-05:00")
        .unwrap()
        .with_timezone(&tz);
    let from_args = AnyTrigger::from_args(
        "crontab",
        &json!({"expr": "30 2 * * *", "dst": "cron"}),
        tz,
        now,
    )
    .unwrap();
    let state = from_args.to_state().unwrap();
    assert_eq!(state["dst"], "cron", "{state}");
    let decoded = decode_trigger(&state).unwrap();
    let jump = "2024-03-10T03:00:00-04:00";
    assert_eq!(
        decoded.next_fire_time(None, &now).unwrap().to_rfc3339(),
        jump
    );
    assert!(decoded.to_string().contains("dst='cron'"), "{decoded}");

    let with = CronTrigger::from_crontab("30 2 * * *", tz)
        .unwrap()
        .with_dst(Dst::Cron);
    assert_eq!(with.dst(), Dst::Cron);
    assert_eq!(with.next_fire_time(None, &now).unwrap().to_rfc3339(), jump);

    // The keyword cron trigger takes it too.
    let built = CronTrigger::builder()
        .hour(2)
        .minute(30)
        .timezone(tz)
        .dst(Dst::Cron)
        .build()
        .unwrap();
    assert_eq!(built.next_fire_time(None, &now).unwrap().to_rfc3339(), jump);
    let kw = AnyTrigger::from_args(
        "cron",
        &json!({"hour": 2, "minute": 30, "dst": "cron"}),
        tz,
        now,
    )
    .unwrap();
    assert_eq!(kw.next_fire_time(None, &now).unwrap().to_rfc3339(), jump);

    // Without the policy the stored form has no `dst` key (triggers stored before it
    // existed compare equal).
    let plain = AnyTrigger::from_args("crontab", &json!({"expr": "30 2 * * *"}), tz, now).unwrap();
    assert!(plain.to_state().unwrap().get("dst").is_none());
}

#[test]
fn an_unknown_policy_names_the_argument() {
    let now = DateTime::parse_from_rfc3339("2024-03-10T00:00:00+00:00")
        .unwrap()
        .with_timezone(&Tz::UTC);
    for (args, says) in [
        (json!({"expr": "0 0 * * *", "dst": "vixie"}), "vixie"),
        (json!({"expr": "0 0 * * *", "dst": 1}), "dst"),
    ] {
        let Err(e) = AnyTrigger::from_args("crontab", &args, Tz::UTC, now) else {
            panic!("{args} accepted")
        };
        assert_eq!(e.field(), "dst", "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}
