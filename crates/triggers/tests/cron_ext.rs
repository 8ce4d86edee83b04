//! Crontab extensions (`L`, `L-n`, `LW`, `nW`, `nL`, `d#n`, `?`, six and seven fields):
//! the vectors of `tests/conformance/cron-ext.jsonl`, whose fire times come from
//! `cron_ext/generate.py` (cronsim and a matcher written from Quartz's rules, which agree
//! wherever both read the form, then the project's DST policy), not from this library.
//! Also: the errors name the field and the value; cronie's reader refuses every extension.

mod vector_file;

use apscheduler_triggers::CronTrigger;
use chrono_tz::Tz;
use serde_json::Value;

fn read_vectors() -> Vec<Value> {
    vector_file::read("cron-ext.jsonl")
}

#[test]
fn every_extension_vector_passes() {
    let vectors = read_vectors();
    assert!(vectors.len() >= 55, "expected the full set");
    let failures = vector_file::failures(&vectors);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_the_field_and_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("0 0 32W * *", "day", "32W"),
        ("0 0 0#2 * *", "day", "0#2"),
        ("0 0 * * 8#1", "day_of_week", "8#1"),
        ("0 0 * * 1#6", "day_of_week", "1#6"),
        ("0 0 L-40 * *", "day", "L-40"),
        ("0 0 * * L", "day_of_week", "L"),
        ("0 0 5L * *", "day", "5L"),
        ("0 0 * * 15W", "day_of_week", "15W"),
        ("0 ? * * *", "hour", "?"),
        ("0 0 0 * * * 1969", "year", "1969"),
        ("0 0 1W,LW-1 * *", "day", "LW-1"),
        ("* * * *", "crontab", "* * * *"),
        ("0 0 0 1 1 * 2024 x", "crontab", "0 0 0 1 1 * 2024 x"),
    ];
    for (expr, field, value) in cases {
        let e = CronTrigger::from_crontab(expr, Tz::UTC).unwrap_err();
        assert_eq!(e.field(), *field, "{expr}: {e}");
        assert!(
            e.to_string().contains(&format!("'{value}'")),
            "{expr}: the message names '{value}': {e}"
        );
    }
}

#[test]
fn extensions_normalize_and_persist() {
    let t = CronTrigger::from_crontab("0 0 12 l-3,lw,15w * fri#2,5l 2030", Tz::UTC).unwrap();
    assert_eq!(
        t.to_string(),
        "cron[year='2030', month='*', day='L-3,LW,15W', day_of_week='fri#2,5L', \
         hour='12', minute='0', second='0']"
    );
    let state = serde_json::to_value(&t).unwrap();
    let back: CronTrigger = serde_json::from_value(state).unwrap();
    assert_eq!(back, t);
}

/// cronie refuses every extension (or reads it otherwise): its reader, the one the crontab
/// importer uses, refuses them all while `from_crontab` takes them.
#[test]
fn cronie_reader_refuses_every_extension() {
    for expr in [
        "0 0 L * *",
        "0 0 L-3 * *",
        "0 0 LW * *",
        "0 0 15W * *",
        "0 0 * * 5L",
        "0 0 * * 1#2",
        "0 0 ? * 1",
        "0 0 1 * ?",
        "0 0 0 * * *",
        "0 0 0 * * * 2030",
    ] {
        assert!(CronTrigger::from_crontab(expr, Tz::UTC).is_ok(), "{expr}");
        assert!(CronTrigger::from_cronie(expr, Tz::UTC).is_err(), "{expr}");
    }
    // Plain cron text reads the same through both.
    for expr in ["0 9 * * mon-fri", "*/15 2 1,15 * 0", "@daily"] {
        assert_eq!(
            CronTrigger::from_crontab(expr, Tz::UTC).unwrap(),
            CronTrigger::from_cronie(expr, Tz::UTC).unwrap(),
            "{expr}"
        );
    }
}

/// Every day form, every month of 2000-2039, against a brute-force model written from the
/// definitions (not from the library's arithmetic): `nW` is the Monday-to-Friday day of the
/// month nearest the `n`th, `LW` the last such day, `L-n` the day `n` before the last,
/// `dL` the weekday whose next week is in another month, `d#n` the weekday whose
/// occurrence count is `n`.
#[test]
fn every_month_of_forty_years_matches_a_brute_force_model() {
    use apscheduler_core::Trigger;
    use chrono::{Datelike, NaiveDate, TimeZone, Weekday};

    fn days_of(year: i32, month: u32) -> Vec<NaiveDate> {
        (1..=31)
            .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
            .collect()
    }
    let workday = |d: &NaiveDate| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
    // Cron numbering: 0 = Sunday.
    let cron_wd = |d: &NaiveDate| d.weekday().num_days_from_sunday();

    let mut exprs: Vec<String> = Vec::new();
    exprs.extend((1..=31).map(|n| format!("{n}W")));
    exprs.extend((0..=30).map(|n| format!("L-{n}")));
    exprs.push("LW".into());
    let model = |expr: &str, year: i32, month: u32| -> Vec<NaiveDate> {
        let days = days_of(year, month);
        let last = days.len() as i64;
        if let Some(n) = expr.strip_suffix('W') {
            let target = if n == "L" {
                last
            } else {
                n.parse::<i64>().unwrap()
            };
            if target > last {
                return vec![];
            }
            let best = days
                .iter()
                .filter(|d| workday(d))
                .min_by_key(|d| (i64::from(d.day()) - target).abs())
                .copied();
            return best.into_iter().collect();
        }
        if let Some(n) = expr.strip_prefix("L-") {
            let day = last - n.parse::<i64>().unwrap();
            return days
                .into_iter()
                .filter(|d| i64::from(d.day()) == day)
                .collect();
        }
        if let Some(w) = expr.strip_suffix('L') {
            let w: u32 = w.parse().unwrap();
            return days
                .into_iter()
                .filter(|d| cron_wd(d) == w % 7 && i64::from(d.day()) + 7 > last)
                .collect();
        }
        let (w, n) = expr.split_once('#').unwrap();
        let (w, n): (u32, u32) = (w.parse().unwrap(), n.parse().unwrap());
        days.into_iter()
            .filter(|d| cron_wd(d) == w % 7 && (d.day() - 1) / 7 + 1 == n)
            .collect()
    };
    let mut weekday_exprs: Vec<String> = (0..=7).map(|w| format!("{w}L")).collect();
    weekday_exprs.extend((0..=7).flat_map(|w| (1..=5).map(move |n| format!("{w}#{n}"))));

    let start = Tz::UTC.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let end = Tz::UTC.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap();
    let all = exprs
        .iter()
        .map(|e| (e.clone(), format!("0 0 {e} * *")))
        .chain(
            weekday_exprs
                .iter()
                .map(|e| (e.clone(), format!("0 0 * * {e}"))),
        );
    for (expr, text) in all {
        let trigger = CronTrigger::from_crontab(&text, Tz::UTC).unwrap();
        let mut got = Vec::new();
        let mut next = trigger.next_fire_time(None, &start);
        while let Some(t) = next.filter(|t| *t < end) {
            got.push(t.date_naive());
            next = trigger.next_fire_time(Some(&t), &t);
        }
        let want: Vec<NaiveDate> = (2000..2040)
            .flat_map(|y| (1..=12).map(move |m| (y, m)))
            .flat_map(|(y, m)| model(&expr, y, m))
            .collect();
        assert_eq!(got, want, "{text}");
    }
}
