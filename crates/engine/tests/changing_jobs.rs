//! Changing jobs, under an injected clock: pause, resume, reschedule, modify, remove and
//! replace, before and after start, with the events they send and the run times they
//! leave.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event;
use apscheduler_core::ErrorKind;
use apscheduler_engine::{Engine, JobChanges, JobSpec};
use chrono::TimeZone;
use serde_json::json;

mod common;
mod harness;
use common::at;
use harness::Harness;

#[test]
fn paused_job_stays_paused_on_reschedule_and_replace() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    let spec = || {
        JobSpec::task("noop")
            .id("p")
            .trigger_args("interval", json!({"minutes": 5}))
    };
    h.run(h.engine.add_job(spec())).unwrap();
    h.run(h.engine.pause_job("p", None)).unwrap();
    let job = h
        .run(
            h.engine
                .reschedule_job("p", None, "cron", &json!({"minute": "*/15"})),
        )
        .unwrap()
        .unwrap();
    assert!(job.is_paused());
    assert_eq!(job.trigger.to_string(), "cron[minute='*/15']");
    let job = h
        .run(h.engine.add_job(spec().replace_existing(true)))
        .unwrap();
    assert!(job.is_paused(), "re-declaring a paused job keeps it paused");
    // On resume the current trigger (5-minute grid from 10:05) applies from now.
    h.clock.set(at(10, 6, 0));
    let job = h.run(h.engine.resume_job("p", None)).unwrap().unwrap();
    assert_eq!(job.next_run_time.unwrap(), at(10, 10, 0));
}

#[test]
fn resume_of_a_running_job_changes_nothing() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("r")
                .trigger_args("interval", json!({"minutes": 1})),
        ),
    )
    .unwrap();
    h.take();
    h.clock.set(at(10, 5, 30));
    let job = h.run(h.engine.resume_job("r", None)).unwrap().unwrap();
    assert_eq!(
        job.next_run_time.unwrap(),
        at(10, 1, 0),
        "overdue runs are kept"
    );
    assert!(h.take().is_empty(), "no event");
}

/// Changing a job before start is reported as APScheduler reports it: one
/// EVENT_JOB_MODIFIED per change, without a store alias (the job is in no store yet).
#[test]
fn changing_a_pending_job_is_reported_without_a_store() {
    let h = Harness::new();
    let stores = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = stores.clone();
    h.engine.add_listener(
        move |e| seen.lock().unwrap().push(e.jobstore().map(str::to_owned)),
        event::EVENT_JOB_MODIFIED,
    );
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("p")
                .trigger_args("interval", json!({"hours": 1})),
        ),
    )
    .unwrap();
    h.take();
    h.run(
        h.engine
            .modify_job("p", None, JobChanges::new().name("renamed")),
    )
    .unwrap();
    h.run(h.engine.pause_job("p", None)).unwrap();
    h.run(h.engine.resume_job("p", None)).unwrap();
    assert_eq!(
        h.take(),
        ["JOB_MODIFIED p", "JOB_MODIFIED p", "JOB_MODIFIED p"]
    );
    h.run(h.engine.start(false)).unwrap();
    assert_eq!(*stores.lock().unwrap(), [None, None, None]);
}

/// Removing a job before start is reported as APScheduler reports it: one
/// EVENT_JOB_REMOVED with the store the job was meant for; an unknown id is NotFound.
#[test]
fn removing_a_pending_job_is_reported() {
    let h = Harness::new();
    h.run(h.engine.add_job(JobSpec::task("noop").id("p")))
        .unwrap();
    h.take();
    h.run(h.engine.remove_job("p", None)).unwrap();
    assert_eq!(h.take(), ["JOB_REMOVED p"]);
    let err = h.run(h.engine.remove_job("p", None)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(h.take().is_empty());
}

#[test]
fn modify_changes_options_and_print_jobs_lists_them() {
    let h = Harness::new();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("j")
                .name("report")
                .trigger_args("interval", json!({"seconds": 10})),
        ),
    )
    .unwrap();
    assert_eq!(
        h.run(h.engine.format_jobs(None)).unwrap(),
        "Pending jobs:\n    report (trigger: interval[0:00:10], pending)\n"
    );
    h.run(h.engine.start(false)).unwrap();
    let job = h
        .run(h.engine.modify_job(
            "j",
            None,
            JobChanges::new().name("renamed").max_instances(3),
        ))
        .unwrap();
    assert_eq!((&*job.name, job.max_instances), ("renamed", 3));
    h.run(h.engine.pause_job("j", None)).unwrap();
    assert_eq!(
        h.run(h.engine.format_jobs(None)).unwrap(),
        "Jobstore default:\n    renamed (trigger: interval[0:00:10], paused)\n"
    );
    h.run(h.engine.resume_job("j", None)).unwrap();
    assert_eq!(
        h.run(h.engine.format_jobs(None)).unwrap(),
        "Jobstore default:\n    renamed (trigger: interval[0:00:10], next run at: 2024-01-15 10:00:10 UTC)\n"
    );
    h.run(h.engine.remove_all_jobs(None)).unwrap();
    assert!(h.take().contains(&"ALL_JOBS_REMOVED".to_owned()));
    assert_eq!(
        h.run(h.engine.format_jobs(None)).unwrap(),
        "Jobstore default:\n    No scheduled jobs\n"
    );
}

#[test]
fn modify_to_an_earlier_time_wakes_the_loop() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("w")
                .trigger_args("interval", json!({"hours": 1})),
        ),
    )
    .unwrap();
    assert_eq!(h.process(at(10, 0, 0)), Some(Duration::from_secs(3600)));
    let soon = chrono_tz::UTC
        .with_ymd_and_hms(2024, 1, 15, 10, 0, 5)
        .unwrap();
    h.run(
        h.engine
            .modify_job("w", None, JobChanges::new().next_run_time(Some(soon))),
    )
    .unwrap();
    assert_eq!(h.process(at(10, 0, 0)), Some(Duration::from_secs(5)));
}

/// An explicitly given next run time shifts an interval job's grid, as in APScheduler:
/// the run after it is that time plus the interval. Pausing and resuming realigns to the
/// trigger's own grid.
#[test]
fn an_explicit_next_run_time_shifts_the_interval_grid() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    let utc = chrono_tz::UTC;
    // Grid from 10:00 every 10 minutes; first run given as 10:03.
    let first = utc.with_ymd_and_hms(2024, 1, 15, 10, 3, 0).unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("i")
                .trigger_args(
                    "interval",
                    json!({"minutes": 10, "start_date": "2024-01-15 10:00:00"}),
                )
                .next_run_time(Some(first)),
        ),
    )
    .unwrap();
    h.process(at(10, 3, 0));
    let job = h.run(h.engine.get_job("i", None)).unwrap().unwrap();
    assert_eq!(job.next_run_time.unwrap(), at(10, 13, 0), "after add_job");

    // modify_job(next_run_time=...) shifts it again.
    let moved = utc.with_ymd_and_hms(2024, 1, 15, 10, 17, 0).unwrap();
    h.run(
        h.engine
            .modify_job("i", None, JobChanges::new().next_run_time(Some(moved))),
    )
    .unwrap();
    h.process(at(10, 17, 0));
    let job = h.run(h.engine.get_job("i", None)).unwrap().unwrap();
    assert_eq!(
        job.next_run_time.unwrap(),
        at(10, 27, 0),
        "after modify_job"
    );

    // Pause and resume: back on the start_date grid.
    h.run(h.engine.pause_job("i", None)).unwrap();
    h.clock.set(at(10, 31, 0));
    let job = h.run(h.engine.resume_job("i", None)).unwrap().unwrap();
    assert_eq!(job.next_run_time.unwrap(), at(10, 40, 0), "after resume");
}

/// `add_job(replace_existing=True)` on a job with a run in flight keeps that run counted
/// against max_instances: the replacement's run is skipped with EVENT_JOB_MAX_INSTANCES
/// until the old run completes.
#[test]
fn a_replaced_job_keeps_its_running_instance_counted() {
    let h = Harness::new();
    // A thread pool, so a run can stay in flight while the loop goes on.
    let engine = Engine::builder()
        .clock(h.clock.clone())
        .timezone(chrono_tz::UTC)
        .executor(
            "default",
            Arc::new(apscheduler_executor_thread::ThreadPoolExecutor::new(4)),
        )
        .build();
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let (g, s) = (gate.clone(), started.clone());
    engine.register_task("slow", move |_| {
        s.fetch_add(1, Ordering::SeqCst);
        let (open, cv) = &*g;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        Ok(json!(null))
    });
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = events.clone();
    engine.add_listener(
        move |e| {
            if let Some(id) = e.job_id() {
                sink.lock().unwrap().push(format!("{} {id}", e.name()));
            }
        },
        event::EVENT_ALL,
    );
    let spec = || {
        JobSpec::task("slow")
            .id("r")
            .trigger_args("interval", json!({"minutes": 1}))
            .replace_existing(true)
    };
    h.run(engine.start(false)).unwrap();
    h.run(engine.add_job(spec())).unwrap();
    h.clock.set(at(10, 1, 0));
    h.run(engine.process_jobs());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while started.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Replace the job while its run is in flight; its next run is due.
    h.run(engine.add_job(spec())).unwrap();
    h.clock.set(at(10, 2, 0));
    h.run(engine.process_jobs());
    engine.flush_events();
    let seen = events.lock().unwrap().clone();
    assert!(
        seen.iter().any(|e| e == "EVENT_JOB_MAX_INSTANCES r"),
        "the replacement's run must be skipped while the old one runs: {seen:?}"
    );
    assert_eq!(started.load(Ordering::SeqCst), 1, "no second run in flight");
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();
    h.run(engine.shutdown(true)).unwrap();
}
