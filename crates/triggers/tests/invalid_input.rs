//! Invalid cron, crontab and interval input is refused with an error naming the field:
//! fixed cases, out-of-range values in every expression form, and arbitrary text (which
//! must never panic nor make `next_fire_time` hang).

mod cron_field_model;

use std::time::{Duration as StdDuration, Instant};

use apscheduler_triggers::{AnyTrigger, CronTrigger, IntervalTrigger, Trigger, TriggerError};
use chrono::{DateTime, Duration, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;
use serde_json::json;

use cron_field_model::*;

// ---------------------------------------------------------------------------------------
// Invalid input.
// ---------------------------------------------------------------------------------------

fn utc_now() -> DateTime<Tz> {
    Tz::UTC.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn cron_field_error(field: &str, text: &str) -> Result<CronTrigger, TriggerError> {
    CronTrigger::builder().field(field, text)?.build()
}

fn assert_err_field<T: std::fmt::Debug>(result: Result<T, TriggerError>, field: &str, what: &str) {
    match result {
        Ok(t) => panic!("{what}: expected an error on '{field}', got {t:?}"),
        Err(e) => assert_eq!(e.field(), field, "{what}: wrong field in error {e}"),
    }
}

#[test]
fn invalid_cron_fields_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("minute", "60"),
        ("minute", "*/60"),
        ("minute", "-1"),
        ("minute", "1-"),
        ("minute", "1/2/3"),
        ("minute", "1,,2"),
        ("minute", ""),
        ("minute", " "),
        ("minute", "4294967296"),
        ("minute", "99999999999999999999"),
        ("minute", "1-3/3"),
        ("hour", "25"),
        ("hour", "24"),
        ("hour", "jan"),
        ("hour", "a-b-c"),
        ("day", "32"),
        ("day", "0"),
        ("day", "6th mon"),
        ("day", "0th mon"),
        ("day", "1st funday"),
        ("day", "lastday"),
        ("day", "last sunday"),
        ("day", "1st mon tue"),
        ("month", "13"),
        ("month", "0"),
        ("month", "foo"),
        ("month", "mon"),
        ("month", "jan-mar/2x"),
        ("month", "dec-jan"),
        ("week", "54"),
        ("week", "0"),
        ("day_of_week", "7"),
        ("day_of_week", "jan"),
        ("day_of_week", "funday"),
        ("day_of_week", "sun-mon"),
        ("day_of_week", "tue-thu/3"),
        ("second", "60"),
        ("year", "1969"),
        ("year", "10000"),
        ("year", "2005-2002"),
    ];
    for (field, text) in cases {
        assert_err_field(
            cron_field_error(field, text),
            field,
            &format!("{field}={text:?}"),
        );
    }
    // `*/0` and `5-2` in every field.
    for field in FIELD_NAMES {
        for text in ["*/0", "5-2", "2005-2002/0", "*/x", "?", "*-*", "1.5"] {
            assert_err_field(
                cron_field_error(field, text),
                field,
                &format!("{field}={text:?}"),
            );
        }
    }
    // An invalid field among valid ones is the one named.
    let err = CronTrigger::builder()
        .hour("9")
        .minute("70")
        .second("5")
        .build();
    assert_err_field(err, "minute", "minute=70 among valid fields");
}

#[test]
fn invalid_crontab_names_the_field() {
    let tz = Tz::UTC;
    for expr in [
        "",
        "   ",
        "* * * *",
        "0 0 9 * * mon-fri 2030 extra",
        "* * * * * * * *",
    ] {
        assert_err_field(CronTrigger::from_crontab(expr, tz), "crontab", expr);
    }
    let cases: &[(&str, &str)] = &[
        // Six fields are seconds first, seven add the year: a misplaced word names
        // the field it landed in.
        ("0 9 * * mon-fri extra", "month"),
        ("1st mon * * * *", "minute"),
        ("0 0 0 * * * 1969", "year"),
        ("60 * * * *", "minute"),
        ("*/0 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* 25 * * *", "hour"),
        ("* 5-2 * * *", "hour"),
        ("* * 0 * *", "day"),
        ("* * 32 * *", "day"),
        ("* * * 13 *", "month"),
        ("* * * foo *", "month"),
        ("* * * * 8", "day_of_week"),
        ("* * * * funday", "day_of_week"),
        ("* * * * mon-sun/2", "day_of_week"),
        ("* * * * 5-0/2", "day_of_week"),
        ("~ * * * *", "minute"),
    ];
    for (expr, field) in cases {
        assert_err_field(CronTrigger::from_crontab(expr, tz), field, expr);
    }
}

#[test]
fn invalid_options_name_the_field() {
    let now = utc_now();
    let later = now + Duration::hours(1);
    let tz = Tz::UTC;
    let args = |kind: &str, args: serde_json::Value| AnyTrigger::from_args(kind, &args, tz, now);

    // Unknown timezone.
    assert_err_field(
        args("cron", json!({"timezone": "Mars/Olympus_Mons"})),
        "timezone",
        "tz",
    );
    assert_err_field(
        args(
            "crontab",
            json!({"expr": "* * * * *", "timezone": "Nowhere"}),
        ),
        "timezone",
        "tz",
    );
    assert_err_field(
        args("interval", json!({"seconds": 5, "timezone": "UTC+99"})),
        "timezone",
        "tz",
    );

    // End before start.
    assert_err_field(
        CronTrigger::builder()
            .hour("1")
            .start_date(later)
            .end_date(now)
            .build(),
        "end_date",
        "cron end < start",
    );
    assert_err_field(
        CronTrigger::from_crontab_with("* * * * *", tz, Some(later), Some(now), None),
        "end_date",
        "crontab end < start",
    );
    assert_err_field(
        IntervalTrigger::builder(Duration::seconds(5))
            .start_date(later)
            .end_date(now)
            .build(),
        "end_date",
        "interval end < start",
    );
    assert_err_field(
        args(
            "cron",
            json!({"hour": 1, "start_date": "2024-06-02", "end_date": "2024-06-01"}),
        ),
        "end_date",
        "cron args end < start",
    );

    // Zero and negative intervals.
    assert_err_field(
        IntervalTrigger::builder(Duration::zero()).build(),
        "interval",
        "zero",
    );
    assert_err_field(
        IntervalTrigger::builder(Duration::seconds(-5)).build(),
        "interval",
        "negative",
    );
    assert_err_field(args("interval", json!({})), "interval", "no length");
    assert_err_field(
        args("interval", json!({"seconds": 0})),
        "interval",
        "seconds=0",
    );
    assert_err_field(
        args("interval", json!({"hours": 1, "minutes": -60})),
        "interval",
        "1h-60m",
    );

    // Bad jitter.
    assert_err_field(
        CronTrigger::builder().jitter(-1.0).build(),
        "jitter",
        "negative jitter",
    );
    assert_err_field(
        CronTrigger::builder().jitter(f64::NAN).build(),
        "jitter",
        "NaN jitter",
    );
    assert_err_field(
        IntervalTrigger::builder(Duration::seconds(1))
            .jitter(f64::INFINITY)
            .build(),
        "jitter",
        "infinite jitter",
    );

    // Cron fields through keyword arguments.
    assert_err_field(
        args("cron", json!({"minute": 60})),
        "minute",
        "args minute=60",
    );
    assert_err_field(
        args("cron", json!({"hour": "25"})),
        "hour",
        "args hour='25'",
    );
    assert_err_field(args("cron", json!({"day": -1})), "day", "args day=-1");
    assert_err_field(
        args("cron", json!({"month": 1.5})),
        "month",
        "args month=1.5",
    );
    assert_err_field(
        args("cron", json!({"fortnight": 1})),
        "fortnight",
        "unknown argument",
    );
    assert_err_field(
        args("crontab", json!({"expr": "* * *"})),
        "crontab",
        "args crontab",
    );
}

/// Out-of-range numbers in any field, in any expression form, name the field.
fn out_of_range() -> impl Strategy<Value = (usize, String)> {
    (0usize..8, 0u8..5, 0u32..100_000, 0u32..100_000).prop_filter_map(
        "an out-of-range value",
        |(i, form, a, b)| {
            let (min, max) = kind_of(i, false).bounds();
            let bad = |v: u32| v < min || v > max;
            let text = match form {
                0 if bad(a) => a.to_string(),
                1 if bad(a) || bad(b) => format!("{}-{}", a.min(b), a.max(b)),
                2 if bad(a) => format!("{a}/1"),
                3 if a > max - min => format!("*/{a}"),
                4 if a > b => format!("{a}-{b}"),
                _ => return None,
            };
            Some((i, text))
        },
    )
}

/// Text made of cron tokens, to reach deep into the parser.
fn cron_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "*",
        "/",
        "-",
        ",",
        " ",
        "\t",
        "0",
        "1",
        "2",
        "5",
        "7",
        "9",
        "31",
        "53",
        "59",
        "60",
        "1970",
        "9999",
        "10000",
        "999999999",
        "4294967296",
        "1st",
        "2nd",
        "5th",
        "6th",
        "last",
        "mon",
        "sun",
        "Fri",
        "jan",
        "DEC",
        "foo",
        "L",
        "#",
        "?",
        "é",
        "\u{0}",
    ]);
    prop::collection::vec(token, 0..12).prop_map(|t| t.concat())
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![cron_soup(), "[ -~]{0,24}", any::<String>()]
}

/// Calls `next_fire_time` in a chain and fails when one call takes unreasonably long.
fn exercise(trigger: &dyn Trigger, now: DateTime<Tz>) -> Result<(), TestCaseError> {
    let mut prev: Option<DateTime<Tz>> = None;
    for _ in 0..4 {
        let started = Instant::now();
        let next = trigger.next_fire_time(prev.as_ref(), prev.as_ref().unwrap_or(&now));
        let took = started.elapsed();
        prop_assert!(
            took < StdDuration::from_secs(5),
            "{} took {:?}",
            trigger,
            took
        );
        match (next, prev) {
            (None, _) => break,
            (Some(n), Some(p)) => prop_assert!(n > p, "{}: {} after {}", trigger, n, p),
            (Some(n), None) => prop_assert!(n >= now, "{}: {} before now {}", trigger, n, now),
        }
        prev = next;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Out-of-range values are refused with the field's name.
    #[test]
    fn out_of_range_values_name_the_field((i, text) in out_of_range()) {
        let result = cron_field_error(FIELD_NAMES[i], &text);
        prop_assert!(result.is_err(), "{}={:?} accepted", FIELD_NAMES[i], text);
        let err = result.unwrap_err();
        prop_assert_eq!(err.field(), FIELD_NAMES[i]);
    }

    /// Arbitrary text in one cron field: never a panic; an error names that field; a
    /// trigger that builds answers in bounded time.
    #[test]
    fn arbitrary_text_in_one_field(
        i in 0usize..8,
        text in arbitrary_text(),
        (tz, now) in zone_and_instant(),
    ) {
        let built = CronTrigger::builder().timezone(tz).field(FIELD_NAMES[i], &text).unwrap().build();
        match built {
            Err(e) => prop_assert_eq!(e.field(), FIELD_NAMES[i]),
            Ok(t) => exercise(&t, now)?,
        }
    }

    /// Arbitrary text in several cron fields at once.
    #[test]
    fn arbitrary_text_in_all_fields(
        texts in prop::collection::vec(prop::option::weighted(0.5, cron_soup()), 8),
        (tz, now) in zone_and_instant(),
    ) {
        let mut b = CronTrigger::builder().timezone(tz);
        for (i, text) in texts.iter().enumerate() {
            if let Some(text) = text {
                b = b.field(FIELD_NAMES[i], text).unwrap();
            }
        }
        match b.build() {
            Err(e) => prop_assert!(FIELD_NAMES.contains(&e.field()), "error {} names no field", e),
            Ok(t) => exercise(&t, now)?,
        }
    }

    /// Arbitrary crontab text: never a panic; errors name `crontab` or a crontab field.
    #[test]
    fn arbitrary_crontab_text(
        text in prop_oneof![
            arbitrary_text(),
            prop::collection::vec(cron_soup(), 5).prop_map(|f| f.join(" ")),
        ],
        (tz, now) in zone_and_instant(),
    ) {
        match CronTrigger::from_crontab(&text, tz) {
            Err(e) => prop_assert!(
                ["crontab", "second", "minute", "hour", "day", "month", "day_of_week", "year"]
                    .contains(&e.field()),
                "error {} names no crontab field", e
            ),
            Ok(t) => exercise(&t, now)?,
        }
    }
}
