//! The scheduler over a store, the same check for every persistent store (feature
//! `scheduler`): engines on a manual clock, jobs run inline, so it is deterministic.
//!
//! [`check_scheduler_over_store`]: a job added through the scheduler runs at its fire
//! times, its next run time is kept in the store across a scheduler restart, fire times
//! missed while no scheduler ran follow the misfire rules, and two schedulers sharing
//! the store run each fire time once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::{self, Event};
use apscheduler_core::{Clock as _, JobStore, ManualClock};
use apscheduler_engine::{Engine, InlineExecutor, JobSpec};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

/// An engine over `store` on `clock`, running the task `count` inline, recording events.
pub(crate) fn engine(
    store: Arc<dyn JobStore>,
    clock: &Arc<ManualClock>,
    id: &str,
    runs: &Arc<AtomicUsize>,
    events: &Arc<Mutex<Vec<String>>>,
) -> Engine {
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .scheduler_id(id)
        .jobstore("default", store)
        .executor("default", Arc::new(InlineExecutor::new()))
        .build();
    let r = runs.clone();
    engine.register_task("count", move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    let e = events.clone();
    engine.add_listener(
        move |ev: &Event| {
            let name = ev.name().trim_start_matches("EVENT_").to_owned();
            e.lock().unwrap_or_else(|p| p.into_inner()).push(name);
        },
        event::EVENT_JOB_EXECUTED | event::EVENT_JOB_MISSED | event::EVENT_JOB_ERROR,
    );
    engine
}

/// The instant `seconds` after the checks' epoch.
pub(crate) fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .expect("a valid instant")
}

fn take(events: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *events.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Runs the scheduler over the stores `make` returns (each call: a new store on the
/// same, empty namespace, as a restarted process would open it).
///
/// 1. A scheduler adds an interval job (every 10 s, misfire grace 1 s, coalesce off)
///    and runs it at 10 s and 20 s.
/// 2. It shuts down; nothing runs until 50.5 s; a second scheduler on a new store over
///    the same namespace finds the job with its next run time (30 s) and reports the
///    fire times missed past the grace time (30, 40) and runs the one within it (50).
/// 3. Two schedulers share the store: at 60 s both process; the fire time runs once.
///
/// # Panics
/// On a broken expectation.
pub async fn check_scheduler_over_store<F>(make: F)
where
    F: Fn() -> Arc<dyn JobStore>,
{
    const CHECK: &str = "check_scheduler_over_store";
    let clock = Arc::new(ManualClock::new(t(0)));
    let runs = Arc::new(AtomicUsize::new(0));
    let events = Arc::new(Mutex::new(Vec::new()));

    let first = engine(make(), &clock, "first", &runs, &events);
    first.start(false).await.expect("start the first scheduler");
    first
        .add_job(
            JobSpec::task("count")
                .id("every10")
                .trigger_args("interval", json!({"seconds": 10}))
                .misfire_grace_time(Some(Duration::from_secs(1)))
                .coalesce(false),
        )
        .await
        .expect("add_job");
    for at in [10, 20] {
        clock.set(t(at));
        first.process_jobs().await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "{CHECK}: runs at 10 s and 20 s"
    );
    // Listeners run on the dispatcher's thread: wait for it before reading.
    first.flush_events();
    assert_eq!(take(&events), ["JOB_EXECUTED", "JOB_EXECUTED"], "{CHECK}");
    first.shutdown(true).await.expect("shutdown");

    // Downtime: nothing runs from 20 s to 50.5 s.
    clock.set(t(50) + chrono::Duration::milliseconds(500));
    let second = engine(make(), &clock, "second", &runs, &events);
    second
        .start(false)
        .await
        .expect("start the second scheduler");
    let stored = second
        .get_job("every10", None)
        .await
        .expect("get_job")
        .expect("the job outlived its scheduler");
    assert_eq!(
        stored.next_run_time.map(|t| t.with_timezone(&Utc)),
        Some(t(30)),
        "{CHECK}: the next run time is kept"
    );
    second.process_jobs().await;
    second.flush_events();
    assert_eq!(
        take(&events),
        ["JOB_MISSED", "JOB_MISSED", "JOB_EXECUTED"],
        "{CHECK}: 30 s and 40 s missed past the 1 s grace, 50 s run 0.5 s late"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3, "{CHECK}");

    // Two schedulers share the store: each fire time runs once.
    let third = engine(make(), &clock, "third", &runs, &events);
    third.start(false).await.expect("start the third scheduler");
    clock.set(t(60));
    let (a, b) = tokio::join!(second.process_jobs(), third.process_jobs());
    let _ = (a, b);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "{CHECK}: the 60 s fire time ran once between two schedulers: {:?}",
        take(&events)
    );
    second.remove_all_jobs(None).await.expect("remove_all_jobs");
    second.shutdown(true).await.expect("shutdown");
    third.shutdown(true).await.expect("shutdown");
}

/// A fire time started: the job, the fire time, the node.
type Started = (String, DateTime<Utc>, &'static str);

/// Two schedulers on one store whose clocks disagree by 5 s (one runs ahead: it sees
/// the other's 5 s leases expire the moment they are taken, and claims those jobs
/// while the other is still in its pass) start each fire time exactly once. Both
/// process at once, step after step, on manual clocks; the one ahead joins after 6 s
/// (until then the on-time one runs every fire time; as the one ahead joins, both
/// claim the same fire times). `make` as for [`check_scheduler_over_store`].
/// Returns how many runs each made (ahead, on time).
///
/// # Panics
/// When a (job, fire time) starts twice; when one due on the on-time clock at the end
/// never started (so the total falls short); when either scheduler ran nothing.
pub async fn check_clock_skew<F>(make: F) -> (usize, usize)
where
    F: Fn() -> Arc<dyn JobStore>,
{
    const JOBS: usize = 20;
    /// Steps of 250 ms: 15 s.
    const STEPS: usize = 60;
    /// The steps before the scheduler ahead joins: it joins in the step where the
    /// on-time clock reaches 6 s, so both claim the jobs' 6 s fire times at once, the
    /// on-time one's 5 s leases ending at the time of the one ahead.
    const ALONE: usize = 23;
    let skew = chrono::Duration::seconds(5);
    let on_time = Arc::new(ManualClock::new(t(0)));
    let ahead = Arc::new(ManualClock::new(t(0) + skew));
    let started: Arc<Mutex<Vec<Started>>> = Arc::default();
    let node = |clock: &Arc<ManualClock>, name: &'static str| {
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .scheduler_id(name)
            .lease(apscheduler_engine::DEFAULT_LEASE)
            .jobstore("default", make())
            .executor("default", Arc::new(InlineExecutor::new()))
            .build();
        let s = started.clone();
        engine.register_task("note", move |ctx| {
            let at = ctx.scheduled_run_time.with_timezone(&Utc);
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((ctx.job_id.to_string(), at, name));
            Ok(json!(null))
        });
        engine
    };
    let a = node(&on_time, "on-time");
    let b = node(&ahead, "ahead");
    a.start(false).await.expect("start the on-time scheduler");
    b.start(false).await.expect("start the scheduler ahead");
    for i in 0..JOBS {
        a.add_job(
            JobSpec::task("note")
                .id(format!("skew-{i:02}"))
                .trigger_args(
                    "interval",
                    json!({"seconds": 1, "start_date": "2023-11-14T22:13:20Z"}),
                )
                .misfire_grace_time(None)
                .coalesce(false)
                // In a step both nodes process at once, each may have a run of the job
                // in flight (the one ahead a batch, counted as one): with room for two,
                // no fire time is skipped at `max_instances` and every one must start.
                .max_instances(2),
        )
        .await
        .expect("add a job");
    }
    for step in 0..STEPS {
        for clock in [&on_time, &ahead] {
            clock.set(clock.now() + chrono::Duration::milliseconds(250));
        }
        if step < ALONE {
            a.process_jobs().await;
        } else {
            let (_, _) = tokio::join!(a.process_jobs(), b.process_jobs());
        }
    }
    a.shutdown(true).await.expect("shut down");
    b.shutdown(true).await.expect("shut down");
    let started = std::mem::take(&mut *started.lock().unwrap_or_else(|p| p.into_inner()));
    let mut seen = std::collections::HashMap::new();
    for (job, at, by) in &started {
        if let Some(first) = seen.insert((job.clone(), *at), *by) {
            panic!("check_clock_skew: {job} at {at} started by {first} and by {by}");
        }
    }
    // Every fire time due on the on-time clock at the end (0 s to 15 s, 16 a job) has
    // started: the one ahead started some of those after, which it may also have.
    let end = on_time.now();
    let mut missing = Vec::new();
    for i in 0..JOBS {
        let job = format!("skew-{i:02}");
        let mut at = t(0);
        while at <= end {
            if !seen.contains_key(&(job.clone(), at)) {
                missing.push(format!("{job} at {at}"));
            }
            at += chrono::Duration::seconds(1);
        }
    }
    assert!(
        missing.is_empty(),
        "check_clock_skew: {} fire times never started (first: {:?}); {} started",
        missing.len(),
        missing.first(),
        started.len()
    );
    let by = |n: &str| started.iter().filter(|(_, _, by)| *by == n).count();
    let (ahead_runs, on_time_runs) = (by("ahead"), by("on-time"));
    assert!(
        ahead_runs > 0 && on_time_runs > 0,
        "check_clock_skew: runs ahead {ahead_runs}, on time {on_time_runs}: both should run"
    );
    (ahead_runs, on_time_runs)
}
