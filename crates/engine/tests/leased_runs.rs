//! Leased runs (`EngineBuilder::leased_runs`), on an injected clock and one memory
//! store shared by the schedulers of a test: each fire time is a run the store starts
//! and ends; a retry waits in the store, also after a one-off job's trigger is done; a
//! scheduler that stalls past its lease never starts a run another took over; a dead
//! scheduler's runs that never started block no live fire time and are run by another.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{
    JobStore, ManualClock, NewRun, RetryPolicy, RunKey, RunOrigin, RunRules, RunState, RunStore,
};
use apscheduler_engine::{Engine, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryJobStore;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
use common::at;

/// Each run of the task `work`: (scheduler, job id, fire time, attempt).
type Ran = Arc<Mutex<Vec<(String, String, DateTime<Utc>, u32)>>>;

const LEASE: Duration = Duration::from_secs(5);

/// A scheduler `name` with leased runs on `store`; its task `work` fails the first
/// `failures` runs of each job (counted on this scheduler) and succeeds after.
fn scheduler(
    name: &str,
    clock: &Arc<ManualClock>,
    store: &Arc<MemoryJobStore>,
    failures: usize,
    ran: &Ran,
) -> Engine {
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store.clone())
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id(name)
        .lease(LEASE)
        .leased_runs(true)
        .build();
    let (seen, me) = (ran.clone(), name.to_owned());
    engine.register_task("work", move |ctx| {
        let mut seen = seen.lock().unwrap();
        let before = seen
            .iter()
            .filter(|r| r.0 == me && *r.1 == *ctx.job_id)
            .count();
        seen.push((
            me.clone(),
            ctx.job_id.to_string(),
            ctx.scheduled_run_time.with_timezone(&Utc),
            ctx.attempt,
        ));
        if before < failures {
            Err(format!("failure {}", before + 1).into())
        } else {
            Ok(json!(null))
        }
    });
    engine
}

fn store(clock: &Arc<ManualClock>) -> Arc<MemoryJobStore> {
    Arc::new(MemoryJobStore::new().with_clock(clock.clone()))
}

/// The job's runs in the store: (fire time, attempt, state name, holder).
async fn rows(
    store: &MemoryJobStore,
    job: &str,
) -> Vec<(DateTime<Utc>, u32, &'static str, String)> {
    let mut runs: Vec<_> = store
        .runs_of_job(job)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.key.fire_time,
                r.key.attempt,
                r.state.name(),
                r.holder.to_string(),
            )
        })
        .collect();
    runs.sort();
    runs
}

/// A job of `work` every `every` seconds from 10:00:00.
fn every(id: &str, every: u64) -> JobSpec {
    JobSpec::task("work")
        .id(id)
        .trigger_args("interval", json!({"seconds": every}))
        .next_run_time(Some(at(10, 0, 0).with_timezone(&chrono_tz::UTC)))
        .misfire_grace_time(Some(Duration::from_secs(30)))
}

#[tokio::test]
async fn each_fire_time_is_a_run_the_store_starts_and_ends() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    let a = scheduler("a", &clock, &store, 0, &ran);
    a.add_job(every("j", 10)).await.unwrap();
    a.start(false).await.unwrap();
    a.process_jobs().await;
    clock.set(at(10, 0, 10));
    a.process_jobs().await;
    a.process_jobs().await;
    assert_eq!(ran.lock().unwrap().len(), 2);
    assert_eq!(
        rows(&store, "j").await,
        [
            (at(10, 0, 0), 1, "ended", "a".to_owned()),
            (at(10, 0, 10), 1, "ended", "a".to_owned())
        ]
    );
    a.shutdown(true).await.unwrap();
}

/// A job with `coalesce` off, late by several fire times, runs them all in one
/// instance, in turn, as APScheduler does: the store starts the batch in one call
/// (past `max_instances` 1) and counts it as one instance.
#[tokio::test]
async fn a_late_batch_runs_in_one_instance() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    let a = scheduler("a", &clock, &store, 0, &ran);
    a.add_job(every("j", 1).coalesce(false).max_instances(1))
        .await
        .unwrap();
    a.start(false).await.unwrap();
    clock.set(at(10, 0, 3));
    a.process_jobs().await;
    a.process_jobs().await;
    let fires: Vec<DateTime<Utc>> = ran.lock().unwrap().iter().map(|r| r.2).collect();
    assert_eq!(
        fires,
        [at(10, 0, 0), at(10, 0, 1), at(10, 0, 2), at(10, 0, 3)],
        "every fire time of the batch ran, in order"
    );
    let runs = store.runs_of_job("j").await.unwrap();
    let outcomes: Vec<_> = runs.iter().map(|r| r.state).collect();
    assert!(
        runs.len() == 4
            && runs.iter().all(|r| matches!(
                r.state,
                RunState::Ended {
                    outcome: apscheduler_core::RunOutcome::Success,
                    ..
                }
            )),
        "each row ended a success: {outcomes:?}"
    );
    a.shutdown(true).await.unwrap();
}

#[tokio::test]
async fn a_one_off_jobs_retry_runs_after_its_trigger_is_done() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    let a = scheduler("a", &clock, &store, 1, &ran);
    let once = JobSpec::task("work")
        .id("once")
        .trigger_args("date", json!({"run_date": "2024-01-15T10:00:00Z"}))
        .retry(RetryPolicy::new(5, Duration::from_secs(30)));
    a.add_job(once).await.unwrap();
    a.start(false).await.unwrap();
    a.process_jobs().await;
    // The end of attempt 1 is written with its retry; the job, done with its trigger,
    // stays (paused) while the retry waits.
    a.process_jobs().await;
    assert_eq!(
        rows(&store, "once").await,
        [
            (at(10, 0, 0), 1, "ended", "a".to_owned()),
            (at(10, 0, 0), 2, "waiting", "a".to_owned())
        ]
    );
    assert!(store.lookup_job("once").await.unwrap().is_some());
    assert_eq!(a.pending_retries().len(), 1);
    clock.set(at(10, 0, 30));
    a.process_jobs().await;
    a.process_jobs().await;
    let attempts: Vec<u32> = ran.lock().unwrap().iter().map(|r| r.3).collect();
    assert_eq!(attempts, [1, 2]);
    // Its last run ended: the job is gone.
    assert!(store.lookup_job("once").await.unwrap().is_none());
    a.shutdown(true).await.unwrap();
}

#[tokio::test]
async fn a_scheduler_stalled_past_its_lease_never_starts_a_run_another_took_over() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    let a = scheduler("a", &clock, &store, 1, &ran);
    let b = scheduler("b", &clock, &store, 0, &ran);
    let spec = || every("j", 3600).retry(RetryPolicy::new(3, Duration::from_secs(30)));
    a.add_job(spec()).await.unwrap();
    a.start(false).await.unwrap();
    b.start(false).await.unwrap();
    // `a` runs attempt 1, which fails; its retry (due 10:00:30) waits, held by `a`.
    a.process_jobs().await;
    a.process_jobs().await;
    assert_eq!(a.pending_retries().len(), 1);
    // `a` stalls: no pass, no renewal. Past its lease, `b` takes the retry over...
    clock.set(at(10, 0, 6));
    b.process_jobs().await;
    assert_eq!(b.pending_retries().len(), 1);
    // ...and runs it when due.
    clock.set(at(10, 0, 30));
    b.process_jobs().await;
    b.process_jobs().await;
    // `a` wakes with the retry in its memory, due: it does not run it.
    a.process_jobs().await;
    a.process_jobs().await;
    let runs = ran.lock().unwrap().clone();
    assert_eq!(
        runs,
        [
            ("a".to_owned(), "j".to_owned(), at(10, 0, 0), 1),
            ("b".to_owned(), "j".to_owned(), at(10, 0, 0), 2)
        ]
    );
    assert!(a.pending_retries().is_empty());
    assert_eq!(
        rows(&store, "j").await,
        [
            (at(10, 0, 0), 1, "ended", "a".to_owned()),
            (at(10, 0, 0), 2, "ended", "b".to_owned())
        ]
    );
    // The takeover gave the retry a greater fence than any `a` held.
    let runs = store.runs_of_job("j").await.unwrap();
    let fence = |attempt: u32| {
        runs.iter()
            .find(|r| r.key.attempt == attempt)
            .unwrap()
            .fence
    };
    assert!(fence(2) > fence(1) + 1, "{runs:?}");
    a.shutdown(true).await.unwrap();
    b.shutdown(true).await.unwrap();
}

#[tokio::test]
async fn a_dead_schedulers_unstarted_runs_block_no_fire_time_and_run_elsewhere() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    let b = scheduler("b", &clock, &store, 0, &ran);
    b.add_job(every("j", 1).next_run_time(Some(at(10, 0, 1).with_timezone(&chrono_tz::UTC))))
        .await
        .unwrap();
    b.start(false).await.unwrap();
    // A scheduler that died after its release created the run of 10:00:00, before it
    // started it; with the default grace (1 s), over long before its 5 s lease.
    let rules = RunRules {
        max_instances: 1,
        overlap: apscheduler_core::Overlap::Skip,
        grace_until: Some(at(10, 0, 1)),
        recover: false,
        batch: None,
    };
    let dead = store
        .insert_runs(
            "dead",
            vec![NewRun {
                key: RunKey::first("j", at(10, 0, 0)),
                state: RunState::Claimed,
                rules,
                origin: RunOrigin::Scheduled,
            }],
            LEASE,
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    // Its live fire times start (the dead one's claimed run is no instance)...
    for s in 1..=3 {
        clock.set(at(10, 0, s));
        b.process_jobs().await;
    }
    // ...and once its lease ran out, the dead one's run starts here, within its grace
    // counted from the takeover (it ends before the pass's own fire time asks to
    // start: both run).
    for s in 4..=7 {
        clock.set(at(10, 0, s));
        b.process_jobs().await;
    }
    let mut fire_times: Vec<DateTime<Utc>> = ran.lock().unwrap().iter().map(|r| r.2).collect();
    fire_times.sort();
    let expected: Vec<DateTime<Utc>> = (0..=7).map(|s| at(10, 0, s)).collect();
    assert_eq!(fire_times, expected);
    let taken = store
        .lookup_run(&RunKey::first("j", at(10, 0, 0)).id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.state.name(), &*taken.holder), ("ended", "b"));
    b.shutdown(true).await.unwrap();
}

/// A scheduler like [`scheduler`] on a thread pool, whose task `work` holds the run of
/// the fire time 10:00:00 until `gate` opens and counts ends in `done`.
fn gated(
    name: &str,
    clock: &Arc<ManualClock>,
    store: &Arc<MemoryJobStore>,
    ran: &Ran,
    gate: &Arc<std::sync::atomic::AtomicBool>,
    done: &Arc<Mutex<usize>>,
) -> Engine {
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store.clone())
        .executor(
            "default",
            Arc::new(apscheduler_executor_thread::ThreadPoolExecutor::new(4)),
        )
        .scheduler_id(name)
        .lease(LEASE)
        .leased_runs(true)
        .build();
    let (seen, me, gate, done) = (ran.clone(), name.to_owned(), gate.clone(), done.clone());
    engine.register_task("work", move |ctx| {
        let fire = ctx.scheduled_run_time.with_timezone(&Utc);
        seen.lock()
            .unwrap()
            .push((me.clone(), ctx.job_id.to_string(), fire, ctx.attempt));
        while fire == at(10, 0, 0) && !gate.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        *done.lock().unwrap() += 1;
        Ok(json!(null))
    });
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_fire_time_of_a_stalled_scheduler_runs_once_on_the_one_that_took_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    // The run of 10:00:00 lasts until the test opens the gate; `done` counts ends.
    let gate = Arc::new(AtomicBool::new(false));
    let done = Arc::new(Mutex::new(0usize));
    let node = |name: &str| gated(name, &clock, &store, &ran, &gate, &done);
    let (a, b) = (node("a"), node("b"));
    a.add_job(
        every("j", 10)
            .misfire_grace_time(None)
            .overlap(apscheduler_core::Overlap::BufferOne),
    )
    .await
    .unwrap();
    a.start(false).await.unwrap();
    b.start(false).await.unwrap();
    a.process_jobs().await;
    common::wait_for("the long run's start", async || {
        ran.lock().unwrap().len() == 1
    })
    .await;
    // `a` renews its run's lease as its loop would (every third of a lease).
    for s in [4, 8] {
        clock.set(at(10, 0, s));
        a.process_jobs().await;
    }
    // `b` gets the fire time of 10:00:10: buffered behind `a`'s run, held by `b`.
    clock.set(at(10, 0, 10));
    b.process_jobs().await;
    assert_eq!(b.pending_retries().len(), 1);
    // `b` stalls. `a` renews its run and, past `b`'s lease, takes the buffered fire
    // time over; 10:00:20 finds the buffer full and is skipped.
    for s in [12, 16, 20] {
        clock.set(at(10, 0, s));
        a.process_jobs().await;
    }
    assert_eq!(a.pending_retries().len(), 1);
    gate.store(true, Ordering::Release);
    common::wait_for("the long run's end", async || *done.lock().unwrap() == 1).await;
    a.process_jobs().await;
    common::wait_for("the buffered run", async || *done.lock().unwrap() == 2).await;
    // `b` wakes with the buffered fire time in its memory: it does not run it.
    b.process_jobs().await;
    b.process_jobs().await;
    a.process_jobs().await;
    let mut runs = ran.lock().unwrap().clone();
    runs.sort();
    assert_eq!(
        runs,
        [
            ("a".to_owned(), "j".to_owned(), at(10, 0, 0), 1),
            ("a".to_owned(), "j".to_owned(), at(10, 0, 10), 1)
        ]
    );
    assert!(b.pending_retries().is_empty());
    a.shutdown(true).await.unwrap();
    b.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_now_is_a_run_the_store_counts_on_every_scheduler() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    let gate = Arc::new(AtomicBool::new(false));
    let done = Arc::new(Mutex::new(0usize));
    let node = |name: &str| gated(name, &clock, &store, &ran, &gate, &done);
    let (a, b) = (node("a"), node("b"));
    a.add_job(every("j", 3600)).await.unwrap();
    a.start(false).await.unwrap();
    b.start(false).await.unwrap();
    // The fire time of 10:00:00 runs on `a`, held until the gate opens.
    a.process_jobs().await;
    common::wait_for("the long run's start", async || {
        ran.lock().unwrap().len() == 1
    })
    .await;
    // `b` is asked to run the job now: the store counts `a`'s run (max_instances 1).
    clock.set(at(10, 0, 1));
    let refused = b.run_job_now("j", None, None).await.unwrap_err();
    assert_eq!(
        refused.kind(),
        apscheduler_core::ErrorKind::Conflict,
        "{refused}"
    );
    gate.store(true, Ordering::Release);
    common::wait_for("the long run's end", async || *done.lock().unwrap() == 1).await;
    a.process_jobs().await;
    // Room again: the run now starts, as a row of its own.
    clock.set(at(10, 0, 2));
    let id = b.run_job_now("j", None, None).await.unwrap().unwrap();
    common::wait_for("the run now", async || *done.lock().unwrap() == 2).await;
    b.process_jobs().await;
    let row = store.lookup_run(&id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.key.fire_time,
            row.origin,
            row.state.name(),
            &*row.holder
        ),
        (at(10, 0, 2), RunOrigin::RunNow, "ended", "b")
    );
    a.shutdown(true).await.unwrap();
    b.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_waits_for_runs_the_store_counts_on_every_scheduler() {
    use apscheduler_engine::BackfillRequest;
    use std::sync::atomic::{AtomicBool, Ordering};
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let ran = Ran::default();
    let gate = Arc::new(AtomicBool::new(false));
    let done = Arc::new(Mutex::new(0usize));
    let node = |name: &str| gated(name, &clock, &store, &ran, &gate, &done);
    let (a, b) = (node("a"), node("b"));
    // Every minute since 09:00, next at 10:00.
    let job = every("j", 60).trigger_args(
        "interval",
        json!({"seconds": 60, "start_date": at(9, 0, 0).to_rfc3339()}),
    );
    a.add_job(job).await.unwrap();
    a.start(false).await.unwrap();
    b.start(false).await.unwrap();
    // The fire time of 10:00:00 runs on `a`, held until the gate opens.
    a.process_jobs().await;
    common::wait_for("the long run's start", async || {
        ran.lock().unwrap().len() == 1
    })
    .await;
    // `b` backfills 09:58 and 09:59 meanwhile: the store counts `a`'s run
    // (max_instances 1, skip), so the first waits for it, buffered.
    let backfill = BackfillRequest {
        rerun_succeeded: true,
        rate_per_sec: 1000.0,
        ..BackfillRequest::new(at(9, 58, 0), at(10, 0, 0))
    };
    let report = b.backfill("j", &backfill).await.unwrap();
    assert_eq!(report.to_run, [at(9, 58, 0), at(9, 59, 0)]);
    common::wait_for("the backfill's first row waiting", async || {
        rows(&store, "j")
            .await
            .iter()
            .any(|r| r.0 == at(9, 58, 0) && r.2 == "waiting")
    })
    .await;
    assert_eq!(*done.lock().unwrap(), 0, "nothing ended yet");
    gate.store(true, Ordering::Release);
    common::wait_for("the long run's end", async || *done.lock().unwrap() >= 1).await;
    // Room again: `b`'s passes start the waiting rows in turn, once the last one's
    // end is in the store.
    common::wait_for("the backfill's runs", async || {
        a.process_jobs().await;
        b.process_jobs().await;
        *done.lock().unwrap() == 3
    })
    .await;
    a.process_jobs().await;
    b.process_jobs().await;
    let mut origins: Vec<_> = store
        .runs_of_job("j")
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.key.fire_time,
                r.key.rerun,
                r.origin,
                r.state,
                r.holder.to_string(),
            )
        })
        .map(|(t, rerun, origin, state, holder)| {
            let outcome = match state {
                RunState::Ended { outcome, .. } => outcome.to_string(),
                other => other.name().to_owned(),
            };
            (t, rerun, origin, outcome, holder)
        })
        .collect();
    origins.sort_by_key(|o| (o.0, o.1));
    let row = |t, rerun, origin, outcome: &str, holder: &str| {
        (t, rerun, origin, outcome.to_owned(), holder.to_owned())
    };
    assert_eq!(
        origins,
        [
            row(at(9, 58, 0), 0, RunOrigin::Backfill, "success", "b"),
            row(at(9, 59, 0), 0, RunOrigin::Backfill, "success", "b"),
            row(at(10, 0, 0), 0, RunOrigin::Scheduled, "success", "a"),
        ]
    );
    let mut runs: Vec<_> = ran
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.0.clone(), r.2))
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        [
            ("a".to_owned(), at(10, 0, 0)),
            ("b".to_owned(), at(9, 58, 0)),
            ("b".to_owned(), at(9, 59, 0)),
        ]
    );
    a.shutdown(true).await.unwrap();
    b.shutdown(true).await.unwrap();
}
