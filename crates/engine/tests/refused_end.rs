//! A scheduler stalled past its lease while the attempt it ran failed: another took the
//! run over (`interrupted`, not retried unless `recover`), so the stalled one writes no
//! end and creates no retry, and says so, whether it learnt of the takeover before the
//! attempt ended or when the store refused its end.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::{ManualClock, RetryPolicy, RunStore};
use apscheduler_engine::{Engine, JobSpec};
use apscheduler_store_memory::MemoryJobStore;
use serde_json::json;

mod common;
use common::{at, logs};

type Gate = Arc<(Mutex<bool>, Condvar)>;

/// A scheduler whose task `work` waits on a worker thread until `gate` opens, then
/// fails.
fn scheduler(
    name: &str,
    clock: &Arc<ManualClock>,
    store: &Arc<MemoryJobStore>,
    gate: &Gate,
) -> Engine {
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store.clone())
        .scheduler_id(name)
        .lease(Duration::from_secs(5))
        .leased_runs(true)
        .build();
    let gate = gate.clone();
    engine.register_task("work", move |_| {
        let (open, changed) = &*gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
        Err("it failed".into())
    });
    engine
}

/// The lines logged about job `id` (its id or its runs' ids).
fn said_of(id: &str) -> Vec<String> {
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    let (job, run) = (format!("job_id={id} "), format!("{id}@"));
    logs.lines()
        .filter(|l| l.contains(&job) || l.contains(&run))
        .map(str::to_owned)
        .collect()
}

/// Two schedulers on one store; `a` starts attempt 1 of job `id` (retry 30 s later),
/// which waits at the gate, and stalls past its lease while `b` takes the run over.
async fn taken_over_while_running(id: &str) -> (Engine, Engine, Arc<MemoryJobStore>, Gate) {
    logs();
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = Arc::new(MemoryJobStore::new().with_clock(clock.clone()));
    let gate = Gate::default();
    let a = scheduler("a", &clock, &store, &gate);
    let b = scheduler("b", &clock, &store, &gate);
    a.add_job(
        JobSpec::task("work")
            .id(id)
            .trigger_args("interval", json!({"seconds": 3600}))
            .next_run_time(Some(at(10, 0, 0).with_timezone(&chrono_tz::UTC)))
            .misfire_grace_time(Some(Duration::from_secs(30)))
            .retry(RetryPolicy::new(3, Duration::from_secs(30))),
    )
    .await
    .unwrap();
    a.start(false).await.unwrap();
    b.start(false).await.unwrap();
    a.process_jobs().await;
    clock.set(at(10, 0, 6));
    b.process_jobs().await;
    (a, b, store, gate)
}

/// Opens the gate and waits until `a`'s attempt has ended and been reported.
async fn fail_the_attempt(a: &Engine, id: &str, gate: &Gate) {
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.instances(id) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(a.instances(id), 0, "the attempt did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learnt_before_the_attempt_ended_no_retry_is_scheduled() {
    let (a, b, store, gate) = taken_over_while_running("early").await;
    // `a` wakes while its attempt still runs: its renewal finds the run taken over.
    a.process_jobs().await;
    fail_the_attempt(&a, "early", &gate).await;
    a.process_jobs().await;
    let said = said_of("early");
    assert!(
        said.iter().any(|l| l.contains("not retried: this scheduler's lease on the run ran out during it")),
        "{said:#?}"
    );
    assert!(
        !said.iter().any(|l| l.contains("retry scheduled")),
        "{said:#?}"
    );
    let runs = store.runs_of_job("early").await.unwrap();
    assert!(runs.iter().all(|r| r.key.attempt == 1), "{runs:?}");
    a.shutdown(true).await.unwrap();
    b.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learnt_from_the_refused_end_the_retry_is_said_not_made() {
    let (a, b, store, gate) = taken_over_while_running("late").await;
    // The attempt ends while `a` still takes the run for its own; then `a` wakes.
    fail_the_attempt(&a, "late", &gate).await;
    a.process_jobs().await;
    a.process_jobs().await;
    let said = said_of("late");
    assert!(
        said.iter().any(|l| l.contains("retry scheduled")),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("was not written: its lease had run out")
                && l.contains("not retried (the retry was due 2024-01-15T10:00:36")),
        "{said:#?}"
    );
    let runs = store.runs_of_job("late").await.unwrap();
    assert!(runs.iter().all(|r| r.key.attempt == 1), "{runs:?}");
    a.shutdown(true).await.unwrap();
    b.shutdown(true).await.unwrap();
}
