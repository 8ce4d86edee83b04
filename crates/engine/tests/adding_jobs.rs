//! Adding jobs, under an injected clock: ids that clash (stored, pending, generated),
//! replacement, batches, pending jobs added at start, and bad input refused.

use std::sync::Arc;

use apscheduler_core::{ErrorKind, ManualClock};
use apscheduler_engine::{Engine, InlineExecutor, JobDefaults, JobSpec, SchedulerState};
use serde_json::json;

mod common;
mod harness;
use common::at;
use harness::Harness;

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
fn build_job_builds_what_add_job_stores_and_stores_nothing() {
    let h = Harness::new();
    h.run(h.engine.start(false)).unwrap();
    h.take();
    let spec = || {
        JobSpec::task("noop")
            .id("built")
            .trigger_args("interval", json!({"minutes": 5}))
    };
    let built = h.engine.build_job(spec()).unwrap();
    assert_eq!(built.next_run_time.unwrap(), at(10, 5, 0));
    assert!(h.run(h.engine.get_job("built", None)).unwrap().is_none());
    assert!(h.take().is_empty(), "no event for a built job");
    let added = h.run(h.engine.add_job(spec())).unwrap();
    assert_eq!(added.next_run_time, built.next_run_time);
    assert_eq!(added.name, built.name);
    // The checks of add_job: an unknown task, a trigger with nothing left.
    let err = h
        .engine
        .build_job(JobSpec::task("missing").trigger_args("interval", json!({"minutes": 5})))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let args = json!({"seconds": 10, "start_date": "2024-01-01 00:00:00", "end_date": "2024-01-02 00:00:00"});
    let err = h
        .engine
        .build_job(JobSpec::task("noop").trigger_args("interval", args))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn a_declared_job_without_an_id_is_refused() {
    let h = Harness::new();
    let spec = || {
        JobSpec::task("noop")
            .trigger_args("interval", json!({"minutes": 5}))
            .declared(true)
    };
    // Before start (pending) and after: each start would otherwise add one more job.
    let err = h.run(h.engine.add_job(spec())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("'id'"), "{err}");
    h.run(h.engine.start(false)).unwrap();
    let err = h.run(h.engine.add_job(spec())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(h.run(h.engine.get_jobs(None)).unwrap().is_empty());
}
