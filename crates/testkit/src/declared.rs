//! Declared jobs over a store (feature `scheduler`): the same check for every
//! persistent store. Replicas of a program restart on a manual clock, each declaring
//! its jobs at start ([`JobSpec::declared`]); jobs run inline, so it is deterministic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use apscheduler_core::{JobStore, ManualClock};
use apscheduler_engine::{Engine, JobChanges, JobSpec};
use chrono::{DateTime, Utc};

use crate::scheduler::t;
use serde_json::json;

const CHECK: &str = "check_declared_jobs";

/// The program's declaration: a job every 30 s, and one whose options or trigger the
/// caller varies.
fn declaration(max_instances: u32, every: u64) -> Vec<JobSpec> {
    vec![
        JobSpec::task("count")
            .id("every30")
            .trigger_args("interval", json!({"seconds": 30}))
            .declared(true),
        JobSpec::task("count")
            .id("varied")
            .trigger_args("interval", json!({"seconds": every}))
            .max_instances(max_instances)
            .declared(true),
    ]
}

/// One replica: an engine over a new store on the shared namespace, its jobs declared
/// before start (as a program does), started.
async fn replica(
    store: Arc<dyn JobStore>,
    clock: &Arc<ManualClock>,
    name: &str,
    runs: &Arc<AtomicUsize>,
    jobs: Vec<JobSpec>,
) -> Engine {
    let engine = crate::scheduler::engine(store, clock, name, runs, &Arc::default());
    engine.add_jobs(jobs).await.expect("declare the jobs");
    engine
        .start(false)
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: replica {name} does not start: {e}"));
    engine
}

async fn next_of(engine: &Engine, id: &str) -> Option<DateTime<Utc>> {
    engine
        .get_job(id, None)
        .await
        .expect("get_job")
        .unwrap_or_else(|| panic!("{CHECK}: job {id} is gone"))
        .next_run_time
        .map(|t| t.with_timezone(&Utc))
}

/// The `varied` job's `max_instances` and next run time.
async fn varied(engine: &Engine) -> (u32, Option<DateTime<Utc>>) {
    let job = engine
        .get_job("varied", None)
        .await
        .expect("get_job")
        .unwrap_or_else(|| panic!("{CHECK}: job varied is gone"));
    (
        job.max_instances,
        job.next_run_time.map(|t| t.with_timezone(&Utc)),
    )
}

/// Runs the declared-jobs check over the stores `make` returns (each call: a new store
/// on the same, empty namespace, as a restarted process would open it).
///
/// 1. A program restarted every 20 s, faster than its 30 s job's interval, declares
///    the job at each start: the job keeps its schedule (next run time 30 s, then
///    60 s) and runs at 30 s and 60 s; without the rule each start would have moved
///    it to start + 30 s and it would never run.
/// 2. Two replicas declaring the same jobs at once start without a conflict and leave
///    one job each, with its schedule.
/// 3. A declaration whose options changed (`max_instances`) updates the stored job in
///    place: its next run time is kept.
/// 4. A declaration whose trigger changed gives the job its new trigger: its next run
///    time counts from the start that declared it.
/// 5. A job paused by hand stays paused when declared again; one changed by hand
///    (`modify_job`) is set back to the declaration; declaring both again while the
///    scheduler runs keeps them.
///
/// # Panics
/// On a broken expectation.
pub async fn check_declared_jobs<F>(make: F)
where
    F: Fn() -> Arc<dyn JobStore>,
{
    let clock = Arc::new(ManualClock::new(t(0)));
    let runs = Arc::new(AtomicUsize::new(0));

    // 1. Restarts every 20 s, faster than the 30 s interval; the fire times between
    // them run on the replica that is up.
    let mut current = replica(make(), &clock, "r0", &runs, declaration(1, 30)).await;
    assert_eq!(next_of(&current, "every30").await, Some(t(30)), "{CHECK}");
    for (at, restart, next) in [
        (20, true, 30),
        (30, false, 60),
        (40, true, 60),
        (60, false, 90),
        (80, true, 90),
    ] {
        clock.set(t(at));
        if restart {
            current.shutdown(true).await.expect("shutdown");
            current = replica(make(), &clock, &format!("r{at}"), &runs, declaration(1, 30)).await;
        } else {
            current.process_jobs().await;
        }
        assert_eq!(
            next_of(&current, "every30").await,
            Some(t(next)),
            "{CHECK}: at {at} s (restart: {restart}) the declared job keeps its schedule"
        );
    }
    current.shutdown(true).await.expect("shutdown");
    // every30 and varied (also every 30 s) each ran at 30 s and 60 s.
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "{CHECK}: both jobs ran at 30 s and 60 s across the restarts"
    );

    // 2. Two replicas declaring at once.
    let (a, b) = tokio::join!(
        replica(make(), &clock, "a", &runs, declaration(1, 30)),
        replica(make(), &clock, "b", &runs, declaration(1, 30)),
    );
    let jobs = a.get_jobs(None).await.expect("get_jobs");
    assert_eq!(jobs.len(), 2, "{CHECK}: one job per declaration: {jobs:?}");
    assert_eq!(next_of(&b, "every30").await, Some(t(90)), "{CHECK}");
    for engine in [a, b] {
        engine.shutdown(true).await.expect("shutdown");
    }

    // 3. Options changed, trigger not: updated in place.
    clock.set(t(85));
    let changed = replica(make(), &clock, "c", &runs, declaration(3, 30)).await;
    assert_eq!(
        varied(&changed).await,
        (3, Some(t(90))),
        "{CHECK}: new options, the schedule kept"
    );
    changed.shutdown(true).await.expect("shutdown");

    // 4. Trigger changed: its next run time counts from this start.
    let retimed = replica(make(), &clock, "d", &runs, declaration(3, 45)).await;
    assert_eq!(
        next_of(&retimed, "varied").await,
        Some(t(85 + 45)),
        "{CHECK}: a new trigger starts from the declaring start"
    );
    assert_eq!(next_of(&retimed, "every30").await, Some(t(90)), "{CHECK}");

    // 5. Paused and changed by hand.
    retimed.pause_job("every30", None).await.expect("pause_job");
    retimed
        .modify_job("varied", None, JobChanges::new().max_instances(7))
        .await
        .expect("modify_job");
    retimed.shutdown(true).await.expect("shutdown");
    let again = replica(make(), &clock, "e", &runs, declaration(3, 45)).await;
    assert_eq!(
        next_of(&again, "every30").await,
        None,
        "{CHECK}: paused by hand, still paused"
    );
    assert_eq!(
        varied(&again).await,
        (3, Some(t(130))),
        "{CHECK}: changed by hand, set back to the declaration with its schedule"
    );
    // Declared again while the scheduler runs: the same rule.
    for spec in declaration(3, 45) {
        again.add_job(spec).await.expect("declare a running job");
    }
    assert_eq!(
        (
            next_of(&again, "every30").await,
            next_of(&again, "varied").await
        ),
        (None, Some(t(130))),
        "{CHECK}: declared after start, kept"
    );
    again.shutdown(true).await.expect("shutdown");
}
