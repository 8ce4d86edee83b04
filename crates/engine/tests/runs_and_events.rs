//! Runs and their events, under an injected clock: a run-once job at start, misfires
//! and coalescing, task errors, the scheduler paused, and listeners' masks and panics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::event;
use apscheduler_engine::{JobSpec, SchedulerState};
use serde_json::json;

mod common;
mod harness;
use common::at;
use harness::Harness;

#[test]
fn run_once_job_added_long_before_start_runs_at_start() {
    let h = Harness::new();
    h.clock.set(at(8, 0, 0));
    h.run(h.engine.add_job(JobSpec::task("noop").id("once")))
        .unwrap();
    h.clock.set(at(10, 0, 0));
    h.run(h.engine.start(false)).unwrap();
    assert_eq!(h.take(), ["JOB_ADDED once", "SCHEDULER_STARTED"]);
    h.process(at(10, 0, 0));
    // The inline executor runs the job inside the submission, so its outcome comes
    // before the removal; REMOVED always follows SUBMITTED.
    assert_eq!(
        h.take(),
        [
            "JOB_SUBMITTED once",
            "JOB_EXECUTED once",
            "JOB_REMOVED once"
        ]
    );
}

#[test]
fn misfire_coalesce_and_errors() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    let start = json!({"minutes": 1, "start_date": "2024-01-15 10:01:00"});
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("merged")
                .trigger_args("interval", start.clone())
                .misfire_grace_time(None),
        ),
    )
    .unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("each")
                .coalesce(false)
                .trigger_args("interval", start.clone())
                .misfire_grace_time(None),
        ),
    )
    .unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("strict")
                .coalesce(false)
                .trigger_args("interval", start.clone())
                .misfire_grace_time(Some(Duration::from_secs(90))),
        ),
    )
    .unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("fail")
                .id("bad")
                .trigger_args("interval", start),
        ),
    )
    .unwrap();
    h.take();
    // Four runs overdue (10:01..10:04) at 10:04:30.
    let wait = h.process(at(10, 4, 30));
    assert_eq!(wait, Some(Duration::from_secs(30)));
    let events = h.take();
    let count = |what: &str| events.iter().filter(|e| *e == what).count();
    assert_eq!(count("JOB_EXECUTED merged"), 1);
    assert_eq!(count("JOB_EXECUTED each"), 4);
    // 10:01 and 10:02 are more than 90 s late; 10:03 and 10:04 run.
    assert_eq!(count("JOB_MISSED strict"), 2);
    assert_eq!(count("JOB_EXECUTED strict"), 2);
    // Default grace is 1 s: the coalesced run of `bad` is missed, not run.
    assert_eq!(count("JOB_MISSED bad"), 1);
    assert_eq!(count("JOB_ERROR bad"), 0);
    // Within grace, a failing task is an error event with its message.
    h.process(at(10, 5, 0));
    h.engine.flush_events();
    let errors: Vec<_> = h
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.exception().cloned())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "boom");
}

#[test]
fn scheduler_pause_keeps_times_and_start_paused() {
    let h = Harness::new();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("t")
                .trigger_args("interval", json!({"minutes": 1})),
        ),
    )
    .unwrap();
    h.run(h.engine.start(true)).unwrap();
    assert_eq!(h.engine.state(), SchedulerState::Paused);
    assert_eq!(h.process(at(10, 5, 0)), None);
    h.take();
    h.engine.resume().unwrap();
    assert_eq!(h.take(), ["SCHEDULER_RESUMED"]);
    h.process(at(10, 5, 0));
    assert!(h.take().contains(&"JOB_EXECUTED t".to_owned()));
}

#[test]
fn listener_masks_combine_and_a_panicking_listener_breaks_nothing() {
    let h = Harness::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    h.engine.add_listener(
        move |e| {
            assert!(e.code() == event::EVENT_JOB_EXECUTED || e.code() == event::EVENT_JOB_ERROR);
            s.fetch_add(1, Ordering::SeqCst);
        },
        event::EVENT_JOB_EXECUTED | event::EVENT_JOB_ERROR,
    );
    h.engine
        .add_listener(|_| panic!("listener bug"), event::EVENT_ALL);
    h.run(h.engine.start(false)).unwrap();
    h.run(h.engine.add_job(JobSpec::task("noop").id("a")))
        .unwrap();
    h.run(h.engine.add_job(JobSpec::task("fail").id("b")))
        .unwrap();
    h.process(at(10, 0, 0));
    h.engine.flush_events();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    h.run(h.engine.add_job(JobSpec::task("noop").id("c")))
        .unwrap();
    h.process(at(10, 0, 0));
    h.engine.flush_events();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "still delivering after a listener panicked"
    );
}
