//! Engine behaviour under an injected clock: no sleeping, every step explicit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::{self, Event};
use apscheduler_core::{ErrorKind, ManualClock};
use apscheduler_engine::{
    Engine, InlineExecutor, JobChanges, JobDefaults, JobSpec, SchedulerState,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

mod common;
use common::at;

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    events: Arc<Mutex<Vec<Event>>>,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .executor("default", Arc::new(InlineExecutor::new()))
            .build();
        engine.register_task("noop", |_| Ok(json!("done")));
        engine.register_task("fail", |_| Err("boom".into()));
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        engine.add_listener(
            move |e| sink.lock().unwrap().push(e.clone()),
            event::EVENT_ALL,
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Harness {
            engine,
            clock,
            events,
            rt,
        }
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Event names since the last call (per job id where given).
    fn take(&self) -> Vec<String> {
        self.engine.flush_events();
        std::mem::take(&mut *self.events.lock().unwrap())
            .iter()
            .map(|e| match e.job_id() {
                Some(id) => format!("{} {id}", e.name().trim_start_matches("EVENT_")),
                None => e.name().trim_start_matches("EVENT_").to_owned(),
            })
            .collect()
    }

    fn process(&self, t: DateTime<Utc>) -> Option<Duration> {
        self.clock.set(t);
        self.run(self.engine.process_jobs())
    }
}

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
fn exhausted_trigger_at_add_is_added_then_removed() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    h.take();
    let args = json!({"seconds": 10, "start_date": "2024-01-01 00:00:00", "end_date": "2024-01-02 00:00:00"});
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("old")
                .trigger_args("interval", args),
        ),
    )
    .unwrap();
    assert_eq!(h.take(), ["JOB_ADDED old", "JOB_REMOVED old"]);
    assert!(h.run(h.engine.get_job("old", None)).unwrap().is_none());
}

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

#[test]
fn conflicting_id_is_an_error_and_replace_existing_replaces() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("dup")
                .trigger_args("interval", json!({"minutes": 1})),
        ),
    )
    .unwrap();
    let err = h
        .run(h.engine.add_job(JobSpec::task("noop").id("dup")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("dup"));
    let job = h
        .run(
            h.engine.add_job(
                JobSpec::task("noop")
                    .id("dup")
                    .name("v2")
                    .replace_existing(true)
                    .trigger_args("interval", json!({"minutes": 2})),
            ),
        )
        .unwrap();
    assert_eq!(&*job.name, "v2");
    assert_eq!(h.run(h.engine.get_jobs(None)).unwrap().len(), 1);
}

/// `add_jobs`: pending before start; after start one batch per store, the events of
/// `add_job` in the order of the specs, a spec that is refused adds nothing, and an id
/// taken in the store refuses the whole batch.
#[test]
fn add_jobs_adds_in_order_in_one_batch() {
    let h = Harness::new();
    let every = |id: &str| {
        JobSpec::task("noop")
            .id(id)
            .trigger_args("interval", json!({"hours": 1}))
    };
    let pending = h
        .run(h.engine.add_jobs(vec![every("a"), every("b")]))
        .unwrap();
    assert_eq!(pending.len(), 2);
    h.run(h.engine.start(false)).unwrap();
    h.take();
    let spent = JobSpec::task("noop")
        .id("spent")
        .trigger_args(
            "interval",
            json!({"seconds": 10, "start_date": "2000-01-01 00:00:00", "end_date": "2000-01-02 00:00:00"}),
        );
    let added = h
        .run(h.engine.add_jobs(vec![every("c"), spent, every("d")]))
        .unwrap();
    assert_eq!(
        added.iter().map(|j| &*j.id).collect::<Vec<_>>(),
        ["c", "spent", "d"]
    );
    assert_eq!(
        h.take(),
        [
            "JOB_ADDED c",
            "JOB_ADDED spent",
            "JOB_REMOVED spent",
            "JOB_ADDED d"
        ]
    );
    let err = h
        .run(
            h.engine
                .add_jobs(vec![every("e"), JobSpec::task("no such task")]),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = h
        .run(h.engine.add_jobs(vec![every("f"), every("c")]))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(h.take().is_empty(), "nothing announced");
    let ids: Vec<String> = h
        .run(h.engine.get_jobs(None))
        .unwrap()
        .iter()
        .map(|j| j.id.to_string())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d"], "neither e nor f was added");
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
fn pending_jobs_conflict_by_id_generated_or_not() {
    let h = Harness::new();
    let add = |spec: JobSpec| h.run(h.engine.add_job(spec));
    let generated = add(JobSpec::task("noop")).unwrap();
    let named = add(JobSpec::task("noop").id("named")).unwrap();
    for _ in 0..100 {
        add(JobSpec::task("noop")).unwrap();
    }
    // An explicit id equal to a generated one is a conflict, and replaces it when asked.
    let err = add(JobSpec::task("noop").id(&*generated.id)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    add(JobSpec::task("noop")
        .id(&*generated.id)
        .name("v2")
        .replace_existing(true))
    .unwrap();
    let err = add(JobSpec::task("noop").id("named")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // Generated ids added after that are checked too; removing frees an id.
    let later = add(JobSpec::task("noop")).unwrap();
    assert_eq!(
        add(JobSpec::task("noop").id(&*later.id))
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    h.run(h.engine.remove_job(&later.id, None)).unwrap();
    add(JobSpec::task("noop").id(&*later.id)).unwrap();
    h.run(h.engine.remove_job(&named.id, None)).unwrap();
    add(JobSpec::task("noop").id("named")).unwrap();
    // Before start the replacement waits beside the job it replaces, as in APScheduler's
    // pending list; at start it replaces it.
    let jobs = h.run(h.engine.get_jobs(None)).unwrap();
    assert_eq!(jobs.len(), 104);
    assert_eq!(jobs.iter().filter(|j| j.id == generated.id).count(), 2);
    h.run(h.engine.start(false)).unwrap();
    let jobs = h.run(h.engine.get_jobs(None)).unwrap();
    assert_eq!(jobs.len(), 103);
    assert_eq!(jobs.iter().filter(|j| j.id == generated.id).count(), 1);
    assert!(jobs
        .iter()
        .any(|j| j.id == generated.id && &*j.name == "v2"));
}

#[test]
fn bad_input_is_a_typed_error_naming_the_field() {
    let h = Harness::new();
    let err = h
        .run(
            h.engine
                .add_job(JobSpec::task("noop").trigger_args("cron", json!({"minute": 60}))),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("minute") && err.to_string().contains("60"));
    let err = h.run(h.engine.add_job(JobSpec::task("nope"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("nope"));
    let err = h
        .run(h.engine.add_job(JobSpec::task("noop").max_instances(0)))
        .unwrap_err();
    assert!(err.to_string().contains("max_instances"));
    h.run(h.engine.start(false)).unwrap();
    let err = h
        .run(h.engine.add_job(JobSpec::task("noop").executor("missing")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"));
    let err = h.run(h.engine.remove_job("ghost", None)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = h
        .engine
        .configure(None, Some(JobDefaults::default()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    let err = h.run(h.engine.start(false)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
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

/// Two jobs with the same id added before start, the second with replace_existing: at
/// start both are added in order (two EVENT_JOB_ADDED) and the second is kept.
#[test]
fn two_pending_jobs_with_one_id_are_both_added_in_order() {
    let h = Harness::new();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("dup")
                .name("first")
                .trigger_args("interval", json!({"minutes": 5})),
        ),
    )
    .unwrap();
    h.run(
        h.engine.add_job(
            JobSpec::task("noop")
                .id("dup")
                .name("second")
                .trigger_args("interval", json!({"minutes": 7}))
                .replace_existing(true),
        ),
    )
    .unwrap();
    h.run(h.engine.start(false)).unwrap();
    let added: Vec<String> = h
        .take()
        .into_iter()
        .filter(|e| e.starts_with("JOB_ADDED"))
        .collect();
    assert_eq!(added, ["JOB_ADDED dup", "JOB_ADDED dup"]);
    let job = h.run(h.engine.get_job("dup", None)).unwrap().unwrap();
    assert_eq!(&*job.name, "second");
}

/// A pending job whose id is taken in its store stops `start` with `Conflict` naming
/// the ids (APScheduler's ConflictingIdError); the scheduler stays stopped with its
/// pending jobs, and starts once the clash is resolved.
#[test]
fn start_refuses_pending_jobs_that_clash_with_stored_ones() {
    let store = Arc::new(apscheduler_store_memory::MemoryJobStore::new());
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store.clone())
        .executor("default", Arc::new(InlineExecutor::new()))
        .build();
    engine.register_task("noop", |_| Ok(json!(null)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = |id: &str| {
        JobSpec::task("noop")
            .id(id)
            .trigger_args("interval", json!({"minutes": 5}))
    };
    // A first life stores 'a' and 'b'.
    rt.block_on(engine.add_job(spec("a"))).unwrap();
    rt.block_on(engine.add_job(spec("b"))).unwrap();
    rt.block_on(engine.start(false)).unwrap();
    rt.block_on(engine.shutdown(true)).unwrap();
    // A second declares them again without replace_existing, and a new one.
    rt.block_on(engine.add_job(spec("a"))).unwrap();
    rt.block_on(engine.add_job(spec("b"))).unwrap();
    rt.block_on(engine.add_job(spec("c"))).unwrap();
    let err = rt.block_on(engine.start(false)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("'a', 'b'"), "{err}");
    assert_eq!(engine.state(), SchedulerState::Stopped);
    assert!(
        rt.block_on(apscheduler_core::JobStore::lookup_job(&*store, "c"))
            .unwrap()
            .is_none(),
        "nothing was added: all or nothing"
    );
    // Resolved: 'a' and 'b' replace the stored ones.
    rt.block_on(engine.remove_job("a", None)).unwrap();
    rt.block_on(engine.remove_job("b", None)).unwrap();
    rt.block_on(engine.add_job(spec("a").replace_existing(true)))
        .unwrap();
    rt.block_on(engine.add_job(spec("b").replace_existing(true)))
        .unwrap();
    rt.block_on(engine.start(false)).unwrap();
    assert_eq!(rt.block_on(engine.get_jobs(None)).unwrap().len(), 3);
    rt.block_on(engine.shutdown(true)).unwrap();
}
