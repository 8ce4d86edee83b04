//! A `BackgroundScheduler` with a `processpool` executor: named tasks run in worker
//! processes, closures are refused at `add_job`, a crashing job is an
//! `EVENT_JOB_ERROR` and the scheduler keeps going.
//!
//! Workers re-execute this binary, so it has its own `main` (`harness = false`).

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::event::{EVENT_JOB_ERROR, EVENT_JOB_EXECUTED};
use apscheduler_core::serde_json::json;
use apscheduler_core::{ErrorKind, Event, TaskRegistry};
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use apscheduler_executor_process::{ProcessPoolExecutor, SIGNAL_KIND};
use common::{child_pids, eventually, ABORT, PID};

/// Collects job outcome events.
#[derive(Default)]
struct Events {
    list: Mutex<Vec<Event>>,
    changed: Condvar,
}

impl Events {
    /// Waits for the first outcome event of `job_id`.
    fn wait_for(&self, job_id: &str) -> Event {
        self.wait_for_nth(job_id, 1)
    }

    /// Waits until `job_id` has `n` outcome events and returns the `n`th.
    fn wait_for_nth(&self, job_id: &str, n: usize) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut list = self.list.lock().unwrap();
        loop {
            if let Some(event) = list
                .iter()
                .filter(|e| e.job_id() == Some(job_id))
                .nth(n - 1)
            {
                return event.clone();
            }
            let now = Instant::now();
            assert!(now < deadline, "no event {n} for {job_id}: {list:#?}");
            list = self.changed.wait_timeout(list, deadline - now).unwrap().0;
        }
    }
}

fn scheduler(registry: &TaskRegistry) -> (BackgroundScheduler, Arc<Events>) {
    let scheduler = BackgroundScheduler::from_builder(
        Engine::builder().executor("processpool", Arc::new(ProcessPoolExecutor::new(2))),
    )
    .expect("a scheduler");
    scheduler.engine().register_tasks(registry);
    let events = Arc::new(Events::default());
    let sink = events.clone();
    scheduler.add_listener(
        move |event| {
            sink.list.lock().unwrap().push(event.clone());
            sink.changed.notify_all();
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );
    (scheduler, events)
}

fn named_task_runs_in_a_worker_process(registry: &TaskRegistry) {
    let (scheduler, events) = scheduler(registry);
    scheduler.start(false).unwrap();
    scheduler
        .add_job(JobSpec::task(PID).executor("processpool").id("whoami"))
        .unwrap();
    let event = events.wait_for("whoami");
    assert_eq!(event.code(), EVENT_JOB_EXECUTED, "{event:?}");
    let pid = event.retval().and_then(|v| v.as_u64()).expect("a pid") as u32;
    assert_ne!(
        pid,
        std::process::id(),
        "the job ran in the scheduler's process"
    );
    assert!(
        child_pids().contains(&pid),
        "{pid} is a worker of this process"
    );

    // The same task on the default (thread pool) executor runs in this process.
    scheduler.add_job(JobSpec::task(PID).id("here")).unwrap();
    let event = events.wait_for("here");
    assert_eq!(event.retval(), Some(&json!(std::process::id())));

    // An interval job keeps running in the pool's (reused) workers.
    scheduler
        .add_job(
            JobSpec::task(PID)
                .executor("processpool")
                .trigger_args("interval", json!({"seconds": 0.05}))
                .id("repeat"),
        )
        .unwrap();
    let third = events.wait_for_nth("repeat", 3);
    assert_eq!(third.code(), EVENT_JOB_EXECUTED, "{third:?}");
    scheduler.shutdown(true).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || child_pids().is_empty()),
        "workers left after shutdown: {:?}",
        child_pids()
    );
}

fn closure_job_is_refused_for_the_process_pool(registry: &TaskRegistry) {
    let (scheduler, _events) = scheduler(registry);
    let closure = || {
        JobSpec::closure(|_| Ok(json!("never")))
            .executor("processpool")
            .id("closure")
    };
    // Refused while pending (before start) ...
    let err = scheduler.add_job(closure()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(
        err.to_string().contains("register the task by name"),
        "{err}"
    );
    // ... and once running.
    scheduler.start(false).unwrap();
    let err = scheduler.add_job(closure()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(
        err.to_string().contains("another process"),
        "the error says why: {err}"
    );
    assert!(scheduler.get_job("closure").unwrap().is_none());
    scheduler.shutdown(true).unwrap();
}

fn crashing_job_is_a_job_error_and_the_scheduler_goes_on(registry: &TaskRegistry) {
    let (scheduler, events) = scheduler(registry);
    scheduler.start(false).unwrap();
    scheduler
        .add_job(JobSpec::task(ABORT).executor("processpool").id("crash"))
        .unwrap();
    let event = events.wait_for("crash");
    assert_eq!(event.code(), EVENT_JOB_ERROR, "{event:?}");
    let failure = event.exception().expect("a failure");
    assert_eq!(failure.kind, SIGNAL_KIND, "{failure:?}");
    assert!(failure.message.contains("SIGABRT"), "{failure:?}");

    scheduler
        .add_job(JobSpec::task(PID).executor("processpool").id("after"))
        .unwrap();
    assert_eq!(events.wait_for("after").code(), EVENT_JOB_EXECUTED);
    scheduler.shutdown(false).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || child_pids().is_empty()),
        "workers left after shutdown(false): {:?}",
        child_pids()
    );
}

fn main() {
    apscheduler_executor_process::worker_main(&common::registry());

    let mut runner = common::Runner::new();
    runner.run("named_task_runs_in_a_worker_process", || {
        named_task_runs_in_a_worker_process(&common::registry());
    });
    runner.run("closure_job_is_refused_for_the_process_pool", || {
        closure_job_is_refused_for_the_process_pool(&common::registry());
    });
    runner.run(
        "crashing_job_is_a_job_error_and_the_scheduler_goes_on",
        || {
            crashing_job_is_a_job_error_and_the_scheduler_goes_on(&common::registry());
        },
    );
    runner.finish();
}
