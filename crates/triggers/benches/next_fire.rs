//! Benchmarks of `CronTrigger::next_fire_time`: the trigger engine's hot path.
//!
//! Four cron expressions, each in UTC and in America/New_York, are asked for their
//! first fire time after a fixed `now` (2024-01-01 00:00:00 in the trigger's zone),
//! plus a chained call (`previous` = the last fire time) for the every-five-minutes
//! trigger. `bench/trigger-bench.sh` runs these next to APScheduler 3.11 and compares.
//!
//! Benchmark ids are `cron/<case>/<zone>`; the script reads the results from
//! `$CARGO_TARGET_DIR/criterion/cron/<case>/<zone>/new/estimates.json`.

use std::hint::black_box;
use std::time::Duration;

use apscheduler_triggers::{CronTrigger, Trigger};
use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use criterion::{BenchmarkId, Criterion};

/// The zones benchmarked: criterion id (no `/`, it becomes a directory) and zone.
const ZONES: [(&str, Tz); 2] = [
    ("UTC", Tz::UTC),
    ("America_New_York", Tz::America__New_York),
];

/// One benchmarked expression: criterion id and `(field, expression)` pairs.
struct Case {
    id: &'static str,
    fields: &'static [(&'static str, &'static str)],
    /// Whether the trigger has a fire time after `now` at all.
    fires: bool,
}

const CASES: [Case; 4] = [
    Case {
        id: "a_minute_every_5",
        fields: &[("minute", "*/5")],
        fires: true,
    },
    Case {
        id: "b_day_last_sun",
        fields: &[("day", "last sun")],
        fires: true,
    },
    Case {
        id: "c_month_day_3rd_fri_hour",
        fields: &[("month", "6-8,11-12"), ("day", "3rd fri"), ("hour", "0-3")],
        fires: true,
    },
    Case {
        id: "d_feb_29_2030",
        fields: &[("year", "2030"), ("month", "2"), ("day", "29")],
        fires: false,
    },
];

fn trigger(fields: &[(&str, &str)], tz: Tz) -> CronTrigger {
    fields
        .iter()
        .fold(CronTrigger::builder().timezone(tz), |b, (name, expr)| {
            b.field(name, expr).expect("known field")
        })
        .build()
        .expect("valid cron expression")
}

/// The fixed `now` of every benchmark: 2024-01-01 00:00:00 wall-clock time in `tz`.
fn now_in(tz: Tz) -> DateTime<Tz> {
    tz.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("midnight exists")
}

fn next_fire(c: &mut Criterion) {
    let mut group = c.benchmark_group("cron");
    for case in &CASES {
        for (zone_id, tz) in ZONES {
            let trigger = trigger(case.fields, tz);
            let now = now_in(tz);
            // Check the answer once, outside the timed loop.
            let first = trigger.next_fire_time(None, &now);
            assert_eq!(
                first.is_some(),
                case.fires,
                "{trigger} in {zone_id}: {first:?}"
            );
            group.bench_with_input(BenchmarkId::new(case.id, zone_id), &now, |b, now| {
                b.iter(|| black_box(&trigger).next_fire_time(None, black_box(now)))
            });
        }
    }

    // Chained: the scheduler asks for the fire time after the one just run.
    for (zone_id, tz) in ZONES {
        let trigger = trigger(CASES[0].fields, tz);
        let prev = trigger
            .next_fire_time(None, &now_in(tz))
            .expect("fires every five minutes");
        let next = trigger.next_fire_time(Some(&prev), &prev);
        assert_eq!(next, Some(prev + chrono::Duration::minutes(5)));
        group.bench_with_input(
            BenchmarkId::new("a_minute_every_5_chained", zone_id),
            &prev,
            |b, prev| b.iter(|| black_box(&trigger).next_fire_time(Some(prev), black_box(prev))),
        );
    }
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the whole bench (10 benchmarks) finishes in well under a minute.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

// `criterion_group!`/`criterion_main!` spelled out: the macros' generated `pub fn` has
// no doc comment and would trip the workspace's `missing_docs` lint.
fn main() {
    let mut criterion = config().configure_from_args();
    next_fire(&mut criterion);
    criterion.final_summary();
}
