//! Jobs the thread-based loop runs on its own threads (Linux): the schedule must hold
//! while such a job runs, a wake-up must be served at once, and shutting down from such
//! a job must return. Real time, generous bounds. Each job is due a little after the
//! start: the first pass runs before the second loop thread waits, so its runs go to
//! the workers.
#![cfg(target_os = "linux")]

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use apscheduler_engine::{BackgroundScheduler, JobSpec, SchedulerState};
use chrono::Utc;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(10);

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

fn at_ms(scheduler: &BackgroundScheduler, ms: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(ms))
        .with_timezone(&scheduler.engine().timezone())
        .to_rfc3339()
}

/// A job of 1.5 s runs on a loop thread; a 100 ms job keeps its schedule meanwhile.
#[test]
fn a_long_job_on_the_loop_thread_does_not_hold_up_the_schedule() {
    let scheduler = BackgroundScheduler::new().unwrap();
    let ticks = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let t = ticks.clone();
    scheduler
        .add_job(
            JobSpec::closure(move |_| {
                t.lock().unwrap().push(Instant::now());
                Ok(json!(null))
            })
            .id("tick")
            .trigger_args(
                "interval",
                json!({"seconds": 0.1, "start_date": at_ms(&scheduler, 50)}),
            ),
        )
        .unwrap();
    let (tx, long) = mpsc::channel();
    scheduler
        .add_job(
            JobSpec::closure(move |_| {
                let start = Instant::now();
                std::thread::sleep(Duration::from_millis(1500));
                let _ = tx.send((thread_name(), start, Instant::now()));
                Ok(json!(null))
            })
            .id("long")
            .trigger_args("date", json!({"run_date": at_ms(&scheduler, 575)})),
        )
        .unwrap();
    scheduler.start(false).unwrap();
    let (thread, start, end) = long.recv_timeout(PATIENCE).expect("the long job ran");
    scheduler.shutdown(true).unwrap();
    assert!(
        thread.starts_with("aps-scheduler"),
        "the long job ran on {thread:?}, not on a loop thread: this test checks nothing"
    );
    let during = ticks
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t > start && **t < end)
        .count();
    // 15 are due while it runs; a loop held up by it would start none.
    assert!(
        during >= 10,
        "only {during} ticks while the long job ran on the loop thread"
    );
}

/// A job added while a loop thread runs a job starts at once, not when that job ends.
#[test]
fn a_wake_up_while_the_loop_thread_runs_a_job_is_served_at_once() {
    let scheduler = BackgroundScheduler::new().unwrap();
    let (started_tx, started) = mpsc::channel();
    scheduler
        .add_job(
            JobSpec::closure(move |_| {
                let _ = started_tx.send(thread_name());
                std::thread::sleep(Duration::from_secs(3));
                Ok(json!(null))
            })
            .trigger_args("date", json!({"run_date": at_ms(&scheduler, 300)})),
        )
        .unwrap();
    scheduler.start(false).unwrap();
    let thread = started
        .recv_timeout(PATIENCE)
        .expect("the long job started");
    assert!(
        thread.starts_with("aps-scheduler"),
        "the long job ran on {thread:?}, not on a loop thread: this test checks nothing"
    );
    let (ran_tx, ran) = mpsc::channel();
    let added = Instant::now();
    scheduler
        .add_job(JobSpec::closure(move |_| {
            let _ = ran_tx.send(Instant::now());
            Ok(json!(null))
        }))
        .unwrap();
    let ran_at = ran.recv_timeout(PATIENCE).expect("the added job ran");
    let waited = ran_at - added;
    assert!(
        waited < Duration::from_millis(1000),
        "the job added while a loop thread ran a 3 s job started after {waited:?}"
    );
    scheduler.shutdown(false).unwrap();
}

/// `shutdown(true)` called by a job running on a loop thread returns (it does not wait
/// for itself), and the scheduler stops.
#[test]
fn shutdown_from_a_job_on_the_loop_thread_returns() {
    let scheduler = Arc::new(BackgroundScheduler::new().unwrap());
    let me: Arc<OnceLock<Weak<BackgroundScheduler>>> = Arc::new(OnceLock::new());
    me.set(Arc::downgrade(&scheduler)).unwrap();
    let (tx, rx) = mpsc::channel();
    let m = me.clone();
    scheduler
        .add_job(
            JobSpec::closure(move |_| {
                let scheduler = m.get().and_then(Weak::upgrade).expect("scheduler alive");
                let result = scheduler.shutdown(true);
                let _ = tx.send((thread_name(), result.is_ok()));
                Ok(json!(null))
            })
            .trigger_args("date", json!({"run_date": at_ms(&scheduler, 300)})),
        )
        .unwrap();
    scheduler.start(false).unwrap();
    let (thread, ok) = rx.recv_timeout(PATIENCE).expect("shutdown returned");
    assert!(ok, "shutdown from the job failed");
    assert!(
        thread.starts_with("aps-scheduler"),
        "the job ran on {thread:?}, not on a loop thread: this test checks nothing"
    );
    assert_eq!(scheduler.state(), SchedulerState::Stopped);
}

/// `shutdown(true)` from another thread waits for a job running on a loop thread;
/// `shutdown(false)` does not.
#[test]
fn shutdown_waits_for_a_job_on_the_loop_thread_only_when_asked() {
    for wait in [true, false] {
        let scheduler = BackgroundScheduler::new().unwrap();
        let (started_tx, started) = mpsc::channel();
        let ended = Arc::new(Mutex::new(None::<Instant>));
        let e = ended.clone();
        scheduler
            .add_job(
                JobSpec::closure(move |_| {
                    let _ = started_tx.send(thread_name());
                    std::thread::sleep(Duration::from_millis(800));
                    *e.lock().unwrap() = Some(Instant::now());
                    Ok(json!(null))
                })
                .trigger_args("date", json!({"run_date": at_ms(&scheduler, 300)})),
            )
            .unwrap();
        scheduler.start(false).unwrap();
        let thread = started.recv_timeout(PATIENCE).expect("the job started");
        assert!(thread.starts_with("aps-scheduler"), "ran on {thread:?}");
        scheduler.shutdown(wait).unwrap();
        let ended_before = ended.lock().unwrap().is_some();
        assert_eq!(
            ended_before,
            wait,
            "shutdown(wait={wait}) returned {} the job on the loop thread ended",
            if ended_before { "after" } else { "before" }
        );
    }
}

/// `lend_runs = false` in the thread pool's configuration keeps every job on its
/// workers.
#[test]
fn a_pool_configured_not_to_lend_keeps_its_jobs_on_its_workers() {
    use apscheduler_engine::{ComponentConfig, Engine, SchedulerConfig};
    let engine = Engine::builder().build();
    engine
        .configure_with(&SchedulerConfig::new().with_executor(
            "default",
            ComponentConfig::new("threadpool").option("lend_runs", false),
        ))
        .unwrap();
    let scheduler = BackgroundScheduler::from_engine(engine).unwrap();
    let (tx, rx) = mpsc::channel();
    scheduler
        .add_job(
            JobSpec::closure(move |_| {
                let _ = tx.send(thread_name());
                Ok(json!(null))
            })
            .trigger_args("date", json!({"run_date": at_ms(&scheduler, 300)})),
        )
        .unwrap();
    scheduler.start(false).unwrap();
    let thread = rx.recv_timeout(PATIENCE).expect("the job ran");
    scheduler.shutdown(true).unwrap();
    assert!(thread.starts_with("aps-worker-"), "ran on {thread:?}");
}

/// Jobs added while the loop threads are busy with passes (a 2 ms job keeps them busy)
/// each start at once: a wake-up that lands during a pass is never lost between the
/// two threads.
#[test]
fn jobs_added_during_passes_all_start_at_once() {
    let scheduler = BackgroundScheduler::new().unwrap();
    scheduler
        .add_job(
            JobSpec::closure(|_| Ok(json!(null)))
                .id("busy")
                .trigger_args(
                    "interval",
                    json!({"seconds": 0.002, "start_date": at_ms(&scheduler, 100)}),
                ),
        )
        .unwrap();
    scheduler.start(false).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    for i in 0..300 {
        let (tx, rx) = mpsc::channel();
        let added = Instant::now();
        scheduler
            .add_job(JobSpec::closure(move |_| {
                let _ = tx.send(Instant::now());
                Ok(json!(null))
            }))
            .unwrap();
        let ran = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("job {i} added during passes never ran"));
        slowest = slowest.max(ran - added);
        // Land the next add at a different point of the 2 ms cycle.
        std::thread::sleep(Duration::from_micros(300 + 137 * (i % 11)));
    }
    scheduler.shutdown(false).unwrap();
    // A lost wake-up waits for the next 2 ms pass at best and for ever at worst; a
    // generous bound for a loaded machine.
    assert!(
        slowest < Duration::from_millis(500),
        "a job added during passes started {slowest:?} after it was added"
    );
}
