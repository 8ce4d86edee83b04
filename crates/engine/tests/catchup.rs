//! The catch-up window under an injected clock, one test per row of the "Catch-up"
//! table in docs/scheduler.md: an every-10-minutes job whose scheduler was down from
//! 08:00 to 12:05 (25 fire times overdue: 08:00 ... 12:00). The rows of mode `all` and
//! `latest` hold with leased runs too (`*_with_leased_runs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
// Only its plain shared store is used here, none of its faults.
#[allow(dead_code)]
mod faulty_store;

use apscheduler_core::event::{Event, EVENT_JOB_MISSED};
use apscheduler_core::{
    Catchup, CatchupMode, ManualClock, RunHistory, RunOutcome, RunQuery, RunRecord,
};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::{MemoryJobStore, MemoryRunHistory};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    history: Arc<MemoryRunHistory>,
    rt: tokio::runtime::Runtime,
    ran: Arc<Mutex<Vec<DateTime<Utc>>>>,
    missed: Arc<AtomicUsize>,
}

impl Harness {
    /// A scheduler at 07:55 with the job added, then "down" until `back`, where one
    /// pass runs.
    fn after_downtime(spec: JobSpec, back: DateTime<Utc>) -> Self {
        Self::build(spec, back, false)
    }

    /// [`after_downtime`](Self::after_downtime), with leased runs when `leased`: the
    /// passes then go on (the clock still) until the caught-up runs, which wait in the
    /// store for each other, all ran.
    fn build(spec: JobSpec, back: DateTime<Utc>, leased: bool) -> Self {
        let clock = Arc::new(ManualClock::new(at(7, 55)));
        let history = Arc::new(MemoryRunHistory::new());
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            // The store decides starts and leases on its own clock: the injected one.
            .jobstore(
                "default",
                Arc::new(MemoryJobStore::new().with_clock(clock.clone())),
            )
            .executor("default", Arc::new(InlineExecutor::new()))
            .scheduler_id("node-1")
            .leased_runs(leased)
            .run_history(history.clone(), HistoryOptions::default())
            .build();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let seen = ran.clone();
        engine.register_task("work", move |ctx| {
            seen.lock()
                .unwrap()
                .push(ctx.scheduled_run_time.with_timezone(&Utc));
            Ok(json!(null))
        });
        let missed = Arc::new(AtomicUsize::new(0));
        let count = missed.clone();
        engine.add_listener(
            move |e: &Event| {
                if e.code() == EVENT_JOB_MISSED {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            },
            EVENT_JOB_MISSED,
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(engine.start(false)).unwrap();
        rt.block_on(
            engine.add_job(
                spec.id("job")
                    .trigger_args("cron", json!({"minute": "*/10"})),
            ),
        )
        .unwrap();
        let h = Harness {
            engine,
            clock,
            history,
            rt,
            ran,
            missed,
        };
        h.clock.set(back);
        h.rt.block_on(h.engine.process_jobs());
        if leased {
            // Each pass starts the next waiting run once the last one's end is written,
            // which waits for its history record.
            for _ in 0..60 {
                h.rt.block_on(async {
                    h.engine.flush_history(Duration::from_secs(5)).await;
                    h.engine.process_jobs().await;
                });
            }
        }
        h.engine.flush_events();
        h
    }

    fn ran(&self) -> Vec<DateTime<Utc>> {
        self.ran.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<RunRecord> {
        self.rt.block_on(async {
            self.engine.flush_history(Duration::from_secs(5)).await;
            let mut runs = self
                .history
                .query_runs(&RunQuery {
                    job_id: Some("job".into()),
                    limit: 1000,
                    ..RunQuery::default()
                })
                .await
                .unwrap();
            runs.sort_by_key(|r| r.scheduled_at);
            runs
        })
    }

    fn missed(&self) -> Vec<(DateTime<Utc>, String)> {
        self.records()
            .into_iter()
            .filter(|r| r.outcome == RunOutcome::Missed)
            .map(|r| (r.scheduled_at, r.message.unwrap_or_default()))
            .collect()
    }

    fn missed_events(&self) -> usize {
        self.missed.load(Ordering::SeqCst)
    }
}

fn catchup(window_secs: u64, mode: CatchupMode) -> Catchup {
    Catchup {
        window: Duration::from_secs(window_secs),
        mode,
    }
}

/// Every 10 minutes from `from` to `to` inclusive.
fn every_10(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut v = Vec::new();
    let mut t = from;
    while t <= to {
        v.push(t);
        t += chrono::Duration::minutes(10);
    }
    v
}

#[test]
fn without_catchup_overdue_fire_times_are_missed_as_before() {
    let h = Harness::after_downtime(JobSpec::task("work").coalesce(false), at(12, 5));
    assert!(h.ran().is_empty(), "{:?}", h.ran());
    let missed = h.missed();
    assert_eq!(missed.len(), 25);
    assert!(
        missed[0].1.contains("later than the misfire grace time"),
        "{missed:?}"
    );
    assert_eq!(h.missed_events(), 25);
}

#[test]
fn mode_none_is_the_behaviour_without_catchup() {
    let h = Harness::after_downtime(
        JobSpec::task("work")
            .coalesce(false)
            .catchup(catchup(3 * 3600, CatchupMode::None)),
        at(12, 5),
    );
    assert!(h.ran().is_empty());
    assert_eq!(h.missed().len(), 25);
    assert!(h.missed()[24].1.contains("misfire grace time"));
}

#[test]
fn mode_all_runs_each_fire_time_in_the_window_in_order_and_misses_the_older() {
    mode_all_runs_each_fire_time_in_the_window_in_order_and_misses_the_older_with(false);
}

#[test]
fn mode_all_runs_each_fire_time_in_the_window_in_order_and_misses_the_older_with_leased_runs() {
    mode_all_runs_each_fire_time_in_the_window_in_order_and_misses_the_older_with(true);
}

fn mode_all_runs_each_fire_time_in_the_window_in_order_and_misses_the_older_with(leased: bool) {
    let h = Harness::build(
        JobSpec::task("work")
            .coalesce(false)
            .catchup(catchup(3 * 3600, CatchupMode::All)),
        at(12, 5),
        leased,
    );
    // Within 3 h of 12:05: 09:10 ... 12:00 (18 fire times), in order.
    assert_eq!(h.ran(), every_10(at(9, 10), at(12, 0)));
    let missed = h.missed();
    assert_eq!(
        missed.iter().map(|m| m.0).collect::<Vec<_>>(),
        every_10(at(8, 0), at(9, 0))
    );
    assert!(
        missed
            .iter()
            .all(|m| m.1.contains("older than the catch-up window 3h")),
        "{missed:?}"
    );
    assert_eq!(h.missed_events(), 7);
    let success = h
        .records()
        .iter()
        .filter(|r| r.outcome == RunOutcome::Success)
        .count();
    assert_eq!(success, 18, "each caught-up fire time is its own run");
}

#[test]
fn mode_all_is_not_collapsed_by_coalesce() {
    let h = Harness::after_downtime(
        JobSpec::task("work")
            .coalesce(true)
            .catchup(catchup(3600, CatchupMode::All)),
        at(12, 5),
    );
    assert_eq!(h.ran(), every_10(at(11, 10), at(12, 0)));
    assert_eq!(h.missed().len(), 19);
}

#[test]
fn coalesce_still_collapses_fire_times_within_the_grace() {
    coalesce_still_collapses_fire_times_within_the_grace_with(false);
}

#[test]
fn coalesce_still_collapses_fire_times_within_the_grace_with_leased_runs() {
    coalesce_still_collapses_fire_times_within_the_grace_with(true);
}

fn coalesce_still_collapses_fire_times_within_the_grace_with(leased: bool) {
    // A 30-minute grace: 11:40, 11:50 and 12:00 are within it, and coalesce to 12:00;
    // 11:10 ... 11:30 are beyond it but inside the 1 h window, and run each.
    let h = Harness::build(
        JobSpec::task("work")
            .coalesce(true)
            .misfire_grace_time(Some(Duration::from_secs(30 * 60)))
            .catchup(catchup(3600, CatchupMode::All)),
        at(12, 5),
        leased,
    );
    assert_eq!(h.ran(), vec![at(11, 10), at(11, 20), at(11, 30), at(12, 0)]);
    // The coalesced ones are not recorded, as without catch-up.
    assert_eq!(h.missed().len(), 19);
}

#[test]
fn mode_latest_runs_only_the_most_recent_and_records_the_superseded() {
    mode_latest_runs_only_the_most_recent_and_records_the_superseded_with(false);
}

#[test]
fn mode_latest_runs_only_the_most_recent_and_records_the_superseded_with_leased_runs() {
    mode_latest_runs_only_the_most_recent_and_records_the_superseded_with(true);
}

fn mode_latest_runs_only_the_most_recent_and_records_the_superseded_with(leased: bool) {
    let h = Harness::build(
        JobSpec::task("work")
            .coalesce(false)
            .catchup(catchup(3600, CatchupMode::Latest)),
        at(12, 5),
        leased,
    );
    assert_eq!(h.ran(), vec![at(12, 0)]);
    let missed = h.missed();
    assert_eq!(missed.len(), 24);
    let (older, superseded): (Vec<_>, Vec<_>) = missed
        .iter()
        .partition(|m| m.1.contains("older than the catch-up window 1h"));
    assert_eq!(older.len(), 19, "{missed:?}");
    assert_eq!(
        superseded.iter().map(|m| m.0).collect::<Vec<_>>(),
        every_10(at(11, 10), at(11, 50))
    );
    assert!(superseded[0]
        .1
        .contains("superseded by the later run time 2026-12-01T12:00:00"));
    assert_eq!(h.missed_events(), 24);
}

#[test]
fn mode_latest_runs_the_latest_overdue_one_when_none_is_within_the_grace() {
    // Back at 12:09 with a 1 s grace: 12:00 is overdue too, and is the one that runs.
    let h = Harness::after_downtime(
        JobSpec::task("work").catchup(catchup(1800, CatchupMode::Latest)),
        at(12, 9),
    );
    assert_eq!(h.ran(), vec![at(12, 0)]);
    assert_eq!(h.missed().len(), 24);
}

#[test]
fn a_window_shorter_than_the_grace_changes_nothing() {
    // The grace (2 h) is the wider: catch-up only widens it, never narrows it.
    let h = Harness::after_downtime(
        JobSpec::task("work")
            .coalesce(false)
            .misfire_grace_time(Some(Duration::from_secs(2 * 3600)))
            .catchup(catchup(600, CatchupMode::All)),
        at(12, 5),
    );
    assert_eq!(h.ran(), every_10(at(10, 10), at(12, 0)));
    // 10:00 is late by 2h05m: beyond the grace.
    assert_eq!(h.missed().len(), 13);
    assert!(h.missed()[0]
        .1
        .contains("later than the misfire grace time"));
}

#[test]
fn without_a_grace_limit_everything_runs_and_catchup_changes_nothing() {
    let h = Harness::after_downtime(
        JobSpec::task("work")
            .coalesce(false)
            .misfire_grace_time(None)
            .catchup(catchup(600, CatchupMode::Latest)),
        at(12, 5),
    );
    assert_eq!(h.ran(), every_10(at(8, 0), at(12, 0)));
    assert!(h.missed().is_empty());
}

#[test]
fn a_pass_on_time_is_unaffected() {
    // No downtime: each fire time runs once, on time, whatever the mode.
    for mode in [CatchupMode::All, CatchupMode::Latest] {
        let h =
            Harness::after_downtime(JobSpec::task("work").catchup(catchup(3600, mode)), at(8, 0));
        h.clock.set(at(8, 10));
        h.rt.block_on(h.engine.process_jobs());
        assert_eq!(h.ran(), vec![at(8, 0), at(8, 10)], "{mode:?}");
        assert!(h.missed().is_empty());
    }
}

/// Two schedulers on one shared store and history: the one that claims the job after
/// the downtime runs the fire times in the window, once; the other runs none of them.
#[test]
fn in_a_cluster_the_claiming_node_catches_up_once() {
    let clock = Arc::new(ManualClock::new(at(7, 55)));
    let store = faulty_store::Faulty::new(true);
    let history = Arc::new(MemoryRunHistory::new());
    let ran = Arc::new(Mutex::new(Vec::new()));
    let node = |id: &str| {
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .jobstore("default", store.clone())
            .executor("default", Arc::new(InlineExecutor::new()))
            .scheduler_id(id)
            .run_history(history.clone(), HistoryOptions::default())
            .build();
        let seen = ran.clone();
        let node = id.to_owned();
        engine.register_task("work", move |ctx| {
            seen.lock()
                .unwrap()
                .push((node.clone(), ctx.scheduled_run_time.with_timezone(&Utc)));
            Ok(json!(null))
        });
        engine
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (one, two) = (node("node-1"), node("node-2"));
    rt.block_on(one.start(false)).unwrap();
    rt.block_on(two.start(false)).unwrap();
    rt.block_on(
        one.add_job(
            JobSpec::task("work")
                .id("job")
                .coalesce(false)
                .catchup(catchup(3600, CatchupMode::All))
                .trigger_args("cron", json!({"minute": "*/10"})),
        ),
    )
    .unwrap();
    clock.set(at(12, 5));
    rt.block_on(two.process_jobs());
    rt.block_on(one.process_jobs());
    rt.block_on(two.process_jobs());
    let ran = ran.lock().unwrap().clone();
    let expected: Vec<_> = every_10(at(11, 10), at(12, 0))
        .into_iter()
        .map(|t| ("node-2".to_owned(), t))
        .collect();
    assert_eq!(ran, expected);
    rt.block_on(one.flush_history(Duration::from_secs(5)));
    rt.block_on(two.flush_history(Duration::from_secs(5)));
    let records = rt
        .block_on(history.query_runs(&RunQuery {
            job_id: Some("job".into()),
            limit: 1000,
            ..RunQuery::default()
        }))
        .unwrap();
    let missed = records
        .iter()
        .filter(|r| r.outcome == RunOutcome::Missed)
        .count();
    assert_eq!(missed, 19, "each older fire time recorded once");
}
