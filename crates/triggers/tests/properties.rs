//! Property tests of the cron, crontab and interval triggers against an independent model.
//!
//! The model below re-implements the field semantics from the documentation (APScheduler's
//! `CronTrigger` fields and Vixie crontab rules) without calling the library's parser or
//! matcher. Random valid expressions are rendered to text, built through the public API,
//! and every fire time is checked against the model and against a brute-force scan.
//! All zones used have a fixed UTC offset over 2000..2040, so wall-clock arithmetic equals
//! instant arithmetic and the DST policy does not come into play.
//!
//! The model and the generators are in `cron_field_model/`; invalid input is tested in
//! `invalid_input.rs`.

mod cron_field_model;

use std::time::Duration as StdDuration;

use apscheduler_triggers::{CronTrigger, IntervalTrigger, Trigger};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;
use proptest::prelude::*;

use cron_field_model::*;

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

/// The first whole second at or after `t`.
fn ceil_second(t: DateTime<Tz>) -> DateTime<Tz> {
    if t.nanosecond() == 0 {
        t
    } else {
        t.with_nanosecond(0).unwrap() + Duration::seconds(1)
    }
}

/// The first whole second strictly after `t`.
fn next_second(t: DateTime<Tz>) -> DateTime<Tz> {
    ceil_second(t + Duration::nanoseconds(1))
}

/// The model's first fire at or after `from` (a whole second) within the scan window.
fn model_first(model: &CronModel, from: DateTime<Tz>) -> Option<NaiveDateTime> {
    let from = from.naive_local();
    model.scan(from, from + Duration::days(SCAN_DAYS))
}

/// Checks that `got` is what the brute-force scan from `from` (a whole second) finds.
fn check_against_scan(
    model: &CronModel,
    tz: Tz,
    from: DateTime<Tz>,
    got: Option<DateTime<Tz>>,
) -> Result<(), TestCaseError> {
    let limit = from.naive_local() + Duration::days(SCAN_DAYS);
    let expected = model_first(model, from);
    match got {
        Some(f) => {
            prop_assert_eq!(f.timezone(), tz);
            prop_assert!(f >= from, "fire {} before {}", f, from);
            prop_assert!(model.matches(f.naive_local()), "fire {} does not match", f);
            if f.naive_local() < limit {
                prop_assert_eq!(expected, Some(f.naive_local()), "skipped a matching time");
            } else {
                prop_assert_eq!(expected, None, "skipped a matching time");
            }
        }
        None => prop_assert_eq!(expected, None, "exhausted, but the scan found a match"),
    }
    Ok(())
}

/// The chain f1 = next(None, now), f(k+1) = next(f(k), f(k)), checked fire by fire.
fn check_chain(
    model: &CronModel,
    trigger: &CronTrigger,
    tz: Tz,
    now: DateTime<Tz>,
    lag: i64,
) -> Result<(), TestCaseError> {
    let mut prev: Option<DateTime<Tz>> = None;
    for _ in 0..CHAIN {
        let (next, from) = match prev {
            None => (trigger.next_fire_time(None, &now), ceil_second(now)),
            Some(p) => (trigger.next_fire_time(Some(&p), &p), next_second(p)),
        };
        check_against_scan(model, tz, from, next)?;
        let Some(f) = next else { break };
        if let Some(p) = prev {
            prop_assert!(f > p, "not increasing: {} then {}", p, f);
            // Asked late (overdue), the trigger still gives the first fire after `p`.
            let late = p + Duration::seconds(lag);
            prop_assert_eq!(trigger.next_fire_time(Some(&p), &late), Some(f));
        } else {
            prop_assert!(f >= now);
        }
        prev = Some(f);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Properties of valid expressions.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Keyword-argument cron: every fire matches every field, fires strictly increase, and
    /// a brute-force scan finds nothing skipped before the first fire or between fires.
    #[test]
    fn cron_fires_match_and_skip_nothing(
        model in cron_model(),
        (tz, now) in zone_and_instant(),
        lag in 0i64..100_000,
    ) {
        let trigger = model.build(tz, None);
        prop_assert!(trigger.is_ok(), "valid expression refused: {:?}", trigger);
        check_chain(&model, &trigger.unwrap(), tz, now, lag)?;
    }

    /// The same for five-field crontab text with Vixie semantics.
    #[test]
    fn crontab_fires_match_and_skip_nothing(
        model in crontab_model(),
        (tz, now) in zone_and_instant(),
        lag in 0i64..100_000,
        spaces in prop::collection::vec(prop::sample::select(vec!["", " ", "  ", "\t"]), 6),
    ) {
        let text = model.crontab_text(&spaces.iter().enumerate().map(|(i, s)| {
            if (1..5).contains(&i) && s.is_empty() { " " } else { *s }
        }).collect::<Vec<_>>());
        let trigger = CronTrigger::from_crontab(&text, tz);
        prop_assert!(trigger.is_ok(), "valid crontab {:?} refused: {:?}", text, trigger);
        let trigger = trigger.unwrap();
        prop_assert_eq!(&trigger, &model.build(tz, None).unwrap());
        check_chain(&model, &trigger, tz, now, lag)?;
    }

    /// From any previous fire time, including one with a sub-second part (as jitter
    /// produces), the next fire is the first matching second strictly after it.
    #[test]
    fn next_after_any_previous_is_first_match_after_it(
        model in any_model(),
        (tz, prev) in zone_and_instant(),
    ) {
        let trigger = model.build(tz, None).unwrap();
        let next = trigger.next_fire_time(Some(&prev), &prev);
        check_against_scan(&model, tz, next_second(prev), next)?;
    }

    /// The same just before a fire: a previous time less than a second before a
    /// matching second `f` is followed by `f` itself.
    #[test]
    fn next_after_previous_just_before_a_fire_is_that_fire(
        model in any_model(),
        (tz, now) in zone_and_instant(),
        before_ns in prop_oneof![1i64..2_000, 1i64..1_000_000_000],
    ) {
        let trigger = model.build(tz, None).unwrap();
        if let Some(f) = trigger.next_fire_time(None, &now) {
            let prev = f - Duration::nanoseconds(before_ns);
            let next = trigger.next_fire_time(Some(&prev), &prev);
            check_against_scan(&model, tz, next_second(prev), next)?;
            prop_assert_eq!(next, Some(f));
        }
    }

    /// The pruned brute-force scan agrees with a plain second-by-second scan.
    #[test]
    fn model_scan_agrees_with_plain_scan(
        model in any_model(),
        (_tz, from) in zone_and_instant(),
        hours in 1i64..3,
    ) {
        let from = ceil_second(from).naive_local();
        let limit = from + Duration::hours(hours);
        prop_assert_eq!(model.scan(from, limit), model.scan_every_second(from, limit));
    }

    /// Cron and crontab with jitter J: each fire lies in [unjittered, unjittered + J],
    /// where unjittered is the first match strictly after the previous (jittered) fire.
    #[test]
    fn cron_jitter_stays_within_bounds(
        model in any_model(),
        (tz, now) in zone_and_instant(),
        jitter in prop_oneof![0.000_001f64..1.0, 1.0f64..600.0],
    ) {
        let trigger = model.build(tz, Some(jitter)).unwrap();
        let plain = model.build(tz, None).unwrap();
        let mut prev: Option<DateTime<Tz>> = None;
        for _ in 0..CHAIN {
            let (fire, unjittered, from) = match prev {
                None => (
                    trigger.next_fire_time(None, &now),
                    plain.next_fire_time(None, &now),
                    ceil_second(now),
                ),
                Some(p) => (
                    trigger.next_fire_time(Some(&p), &p),
                    plain.next_fire_time(Some(&p), &p),
                    next_second(p),
                ),
            };
            check_against_scan(&model, tz, from, unjittered)?;
            let (Some(fire), Some(unjittered)) = (fire, unjittered) else {
                prop_assert_eq!(fire, unjittered);
                break;
            };
            let delay = (fire - unjittered).num_nanoseconds().unwrap();
            prop_assert!(delay >= 0, "fire {} before unjittered {}", fire, unjittered);
            prop_assert!(delay as f64 <= jitter * 1e9 + 1.0, "fire {} > {} + {}", fire, unjittered, jitter);
            if let Some(p) = prev {
                prop_assert!(fire > p, "fire {} not after previous {}", fire, p);
            }
            prev = Some(fire);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Interval with jitter J: each fire lies in [grid point, grid point + J], where the
    /// grid point is the first `start + k·interval` after the previous (jittered) fire:
    /// jitter does not make the grid drift.
    #[test]
    fn interval_jitter_stays_within_bounds(
        (tz, start) in zone_and_instant(),
        interval_ms in prop_oneof![1i64..5_000, 1_000i64..200_000_000],
        now_offset_s in -864_000i64..8_640_000,
        jitter in prop_oneof![0.000_001f64..1.0, 1.0f64..7_200.0],
    ) {
        let interval = Duration::milliseconds(interval_ms);
        let trigger = IntervalTrigger::builder(interval)
            .start_date(start)
            .timezone(tz)
            .jitter(jitter)
            .build()
            .unwrap();
        let plain = IntervalTrigger::builder(interval).start_date(start).timezone(tz).build().unwrap();
        let now = start + Duration::seconds(now_offset_s);
        let step = interval.num_nanoseconds().unwrap() as i128;
        // The first grid point at or after `t` (strictly after, with `strict`).
        let grid = |t: DateTime<Tz>, strict: bool| {
            let diff = (t - start).num_nanoseconds().unwrap() as i128;
            let k = if diff < 0 || (diff == 0 && !strict) {
                0
            } else if strict {
                diff.div_euclid(step) + 1
            } else {
                (diff + step - 1).div_euclid(step)
            };
            start + Duration::nanoseconds((k * step) as i64)
        };
        let mut prev: Option<DateTime<Tz>> = None;
        for _ in 0..CHAIN {
            let (fire, unjittered, expected) = match prev {
                None => (
                    trigger.next_fire_time(None, &now),
                    plain.next_fire_time(None, &now),
                    grid(now, false),
                ),
                // Without jitter a previous fire time off the grid shifts it (prev +
                // interval); the jittered trigger keeps to its grid.
                Some(p) => (
                    trigger.next_fire_time(Some(&p), &p),
                    Some(grid(p, true)),
                    grid(p, true),
                ),
            };
            let (fire, unjittered) = (fire.unwrap(), unjittered.unwrap());
            prop_assert_eq!(unjittered, expected);
            let delay = (fire - unjittered).num_nanoseconds().unwrap();
            prop_assert!(delay >= 0, "fire {} before unjittered {}", fire, unjittered);
            prop_assert!(delay as f64 <= jitter * 1e9 + 1.0, "fire {} > {} + {}", fire, unjittered, jitter);
            if let Some(p) = prev {
                prop_assert!(fire > p, "fire {} not after previous {}", fire, p);
            }
            prev = Some(fire);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fixed examples that anchor the model.
// ---------------------------------------------------------------------------------------

#[test]
fn zones_used_have_a_fixed_offset() {
    use chrono::Offset;
    for name in FIXED_ZONES {
        let tz: Tz = name.parse().unwrap();
        let offsets: Vec<i32> = (2000..=2040)
            .flat_map(|y| [1, 7].map(|m| (y, m)))
            .map(|(y, m)| {
                tz.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .unwrap()
                    .offset()
                    .fix()
                    .local_minus_utc()
            })
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] == w[1]),
            "{name} changes offset"
        );
    }
}

#[test]
fn model_agrees_with_known_examples() {
    let style = Style {
        names: 1,
        case: 0,
        sep: 0,
    };
    // Crontab `0 9 1 * mon`: the 1st of the month or any Monday (Vixie OR).
    let f = |kind, pieces| Some(FieldExpr::new(kind, pieces, style, true));
    let model = CronModel::new(
        vec![
            None,
            f(Kind::Month, vec![Piece::Star]),
            f(Kind::Day, vec![Piece::Value(1)]),
            None,
            f(Kind::CronDow, vec![Piece::Value(1)]),
            f(Kind::Hour, vec![Piece::Value(9)]),
            f(Kind::Minute, vec![Piece::Value(0)]),
            None,
        ],
        true,
    );
    assert_eq!(
        model.crontab_text(&["", " ", " ", " ", " ", ""]),
        "0 9 1 * mon"
    );
    let start = NaiveDate::from_ymd_opt(2024, 6, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let fires: Vec<_> = std::iter::successors(model.scan(start, start + Duration::days(40)), |t| {
        model.scan(*t + Duration::seconds(1), start + Duration::days(40))
    })
    .take(3)
    .map(|t| t.to_string())
    .collect();
    assert_eq!(
        fires,
        [
            "2024-06-01 09:00:00",
            "2024-06-03 09:00:00",
            "2024-06-10 09:00:00"
        ]
    );
    let trigger = CronTrigger::from_crontab("0 9 1 * mon", Tz::UTC).unwrap();
    let now = Tz::UTC.from_utc_datetime(&start);
    let lib: Vec<_> = std::iter::successors(trigger.next_fire_time(None, &now), |p| {
        trigger.next_fire_time(Some(p), p)
    })
    .take(3)
    .map(|t| t.naive_local().to_string())
    .collect();
    assert_eq!(lib, fires);
    // Kwargs `day='last fri'`, `hour=0-3/2`: hours 0 and 2 of the last Friday, minute 0.
    let g = |kind, pieces| Some(FieldExpr::new(kind, pieces, style, false));
    let model = CronModel::new(
        vec![
            None,
            None,
            g(Kind::Day, vec![Piece::LastWeekday(4)]),
            None,
            None,
            g(Kind::Hour, vec![Piece::RangeStep(0, 3, 2)]),
            None,
            None,
        ],
        false,
    );
    let t = model.scan(start, start + Duration::days(40)).unwrap();
    assert_eq!(t.to_string(), "2024-06-28 00:00:00");
    let t = model
        .scan(t + Duration::seconds(1), start + Duration::days(40))
        .unwrap();
    assert_eq!(t.to_string(), "2024-06-28 02:00:00");
    let trigger = model.build(Tz::UTC, None).unwrap();
    assert_eq!(trigger.to_string(), "cron[day='last fri', hour='0-3/2']");
}

/// Every range of weekday names means the numeric range it stands for, in crontab text
/// (`sun` = 0, or 7 closing a range that starts after `sun`) and in the cron trigger's
/// `day_of_week` (`mon` = 0 ... `sun` = 6): the same days, or the same refusal. In
/// particular `sun-sun` is Sunday alone, never the whole week.
#[test]
fn every_weekday_name_range_means_its_numeric_range() {
    let tz: Tz = "UTC".parse().unwrap();
    let from = tz.with_ymd_and_hms(2024, 6, 2, 12, 0, 0).unwrap(); // a Sunday
    let days = |t: &CronTrigger| -> Vec<u32> {
        let mut out = Vec::new();
        let mut prev = None;
        let mut now = from;
        while let Some(next) = t.next_fire_time(prev.as_ref(), &now) {
            if next >= from + Duration::days(7) {
                break;
            }
            out.push(next.weekday().num_days_from_monday());
            now = next + Duration::seconds(1);
            prev = Some(next);
        }
        out.sort_unstable();
        out
    };
    for (a, first) in WEEKDAYS.iter().enumerate() {
        for (b, last) in WEEKDAYS.iter().enumerate() {
            let names = format!("{first}-{last}");
            // Crontab text.
            let na = (a as u32 + 1) % 7;
            let nb = if b == 6 {
                if a == 6 {
                    0
                } else {
                    7
                }
            } else {
                b as u32 + 1
            };
            let by_name = CronTrigger::from_crontab(&format!("0 0 * * {names}"), tz);
            let by_number = CronTrigger::from_crontab(&format!("0 0 * * {na}-{nb}"), tz);
            match (&by_name, &by_number) {
                (Ok(n), Ok(m)) => {
                    let expected = days(m);
                    assert_eq!(days(n), expected, "crontab '{names}' vs '{na}-{nb}'");
                    assert_eq!(expected.len(), (nb - na + 1).min(7) as usize, "'{na}-{nb}'");
                }
                (Err(_), Err(_)) => {}
                _ => panic!("crontab '{names}': {by_name:?}, but '{na}-{nb}': {by_number:?}"),
            }
            // The cron trigger's day_of_week field.
            let by_name = CronTrigger::builder()
                .day_of_week(names.as_str())
                .hour(0)
                .build();
            let by_number = CronTrigger::builder()
                .day_of_week(format!("{a}-{b}").as_str())
                .hour(0)
                .build();
            match (&by_name, &by_number) {
                (Ok(n), Ok(m)) => {
                    assert_eq!(days(n), days(m), "day_of_week '{names}' vs '{a}-{b}'");
                    assert_eq!(
                        days(n),
                        (a as u32..=b as u32).collect::<Vec<_>>(),
                        "'{names}'"
                    );
                }
                (Err(_), Err(_)) => assert!(a > b, "'{names}' refused"),
                _ => panic!("day_of_week '{names}': {by_name:?}, but '{a}-{b}': {by_number:?}"),
            }
        }
    }
}

/// Around a spring-forward gap the chain of fire times is complete and ordered: every
/// matching wall-clock time of the day fires once, a time inside the gap at its
/// pre-jump reading (after the jump), a real time after the gap at its own instant,
/// even when that comes before a moved gap time (Lord Howe's 30-minute gap with
/// `5-55/25`: 02:05 denotes 02:35, after the real 02:30).
#[test]
fn the_chain_around_a_dst_gap_is_complete_and_ordered() {
    let cases = [
        ("Australia/Lord_Howe", 2024, 10, 6),
        ("America/New_York", 2024, 3, 10),
        ("Europe/Helsinki", 2024, 3, 31),
    ];
    for (zone, y, mo, d) in cases {
        let tz: Tz = zone.parse().unwrap();
        for minutes in ["5-55/25", "*/7", "0,30", "10-40/10", "*"] {
            let expr = format!("{minutes} 0-5 * * *");
            let trigger = CronTrigger::from_crontab(&expr, tz).unwrap();
            let day = NaiveDate::from_ymd_opt(y, mo, d).unwrap();
            // Expected: every matching wall time from 00:00 to 05:59, resolved by the
            // policy, sorted.
            let mut expected: Vec<DateTime<Tz>> = Vec::new();
            for h in 0..6 {
                for m in 0..60 {
                    let hit = match minutes {
                        "5-55/25" => [5, 30, 55].contains(&m),
                        "*/7" => m % 7 == 0,
                        "0,30" => m == 0 || m == 30,
                        "10-40/10" => [10, 20, 30, 40].contains(&m),
                        _ => true,
                    };
                    if hit {
                        let wall = day.and_hms_opt(h, m, 0).unwrap();
                        expected.push(apscheduler_core::time::localize(tz, wall));
                    }
                }
            }
            expected.sort();
            expected.dedup();
            let from = apscheduler_core::time::localize(tz, day.and_hms_opt(0, 0, 0).unwrap());
            let end = apscheduler_core::time::localize(tz, day.and_hms_opt(6, 0, 0).unwrap());
            let mut got = Vec::new();
            let mut prev: Option<DateTime<Tz>> = None;
            let mut now = from;
            while let Some(next) = trigger.next_fire_time(prev.as_ref(), &now) {
                if next >= end {
                    break;
                }
                got.push(next);
                now = next + Duration::seconds(1);
                prev = Some(next);
            }
            assert_eq!(got, expected, "{zone} '{expr}'");
        }
    }
}

/// Without jitter the fire after a previous one is previous + interval, as in
/// APScheduler: an explicitly given next run time shifts the grid; without a previous
/// fire time (a resumed job) the trigger realigns to its start_date grid.
#[test]
fn an_off_grid_previous_fire_time_shifts_the_interval_grid() {
    let tz: Tz = "UTC".parse().unwrap();
    let start = tz.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let trigger = IntervalTrigger::builder(Duration::minutes(10))
        .start_date(start)
        .build()
        .unwrap();
    let explicit = tz.with_ymd_and_hms(2024, 1, 1, 0, 3, 0).unwrap();
    assert_eq!(
        trigger.next_fire_time(Some(&explicit), &explicit),
        Some(tz.with_ymd_and_hms(2024, 1, 1, 0, 13, 0).unwrap())
    );
    let now = tz.with_ymd_and_hms(2024, 1, 1, 0, 14, 0).unwrap();
    assert_eq!(
        trigger.next_fire_time(None, &now),
        Some(tz.with_ymd_and_hms(2024, 1, 1, 0, 20, 0).unwrap())
    );
}

/// An interval can be given as a `std::time::Duration` as well as a `chrono` one.
#[test]
fn an_interval_takes_a_std_duration_too() {
    let std_built = IntervalTrigger::builder(StdDuration::from_secs(7200))
        .build()
        .unwrap();
    let chrono_built = IntervalTrigger::builder(Duration::hours(2))
        .build()
        .unwrap();
    assert_eq!(std_built.interval(), chrono_built.interval());
    assert_eq!(std_built.to_string(), "interval[2:00:00]");
}
