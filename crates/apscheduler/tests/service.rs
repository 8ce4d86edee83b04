//! An `AsyncScheduler` as a service's part (`AsyncScheduler::connect`,
//! `JobSpec::declare`, `run_until_signal`): on the store a URL names, with that store's
//! run history, stopped by SIGTERM only once its running job ended (a signal again meanwhile changes nothing); declared again by the
//! next start, its job keeps its schedule.

use std::sync::Arc;
use std::time::Duration;

use apscheduler::core::{RunOutcome, RunQuery};
use apscheduler::prelude::*;
use tokio::sync::Notify;

// Each test runs in a process of its own under cargo-nextest (scripts/test), so the
// SIGTERM this one sends itself reaches no other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_scheduler_stops_on_sigterm_once_its_running_job_ended() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("jobs.sqlite").display());
    let scheduler = AsyncScheduler::connect(&url).unwrap();
    let started = Arc::new(Notify::new());
    let notify = started.clone();
    scheduler.register_async_task("slow", move |_ctx| {
        let notify = notify.clone();
        async move {
            notify.notify_one();
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok(json!("done"))
        }
    });
    let declaration = || JobSpec::declare("slow", "interval", json!({"seconds": 2}));
    scheduler.add_job(declaration()).await.unwrap();
    let service = tokio::spawn({
        let scheduler = scheduler.clone();
        async move { scheduler.run_until_signal().await }
    });
    tokio::time::timeout(Duration::from_secs(20), started.notified())
        .await
        .expect("the job's first fire time started within 20 s");
    // Twice, the second while it waits for the run (an impatient operator): the run
    // still ends first.
    for signal in ["-TERM", "-INT"] {
        let kill = std::process::Command::new("kill")
            .args([signal, &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(20), service)
        .await
        .expect("run_until_signal returned within 20 s of SIGTERM")
        .unwrap()
        .unwrap();
    assert!(!scheduler.running());

    // The run the signal came during ended before the scheduler stopped, and the store's
    // run history (attached by `connect`) has its record.
    let store = apscheduler::stores::open(&url).unwrap();
    let history = store
        .run_history()
        .expect("the SQL store keeps a run history");
    let query = RunQuery {
        job_id: Some("slow".to_owned()),
        ..RunQuery::default()
    };
    let runs = history.query_runs(&query).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].outcome, RunOutcome::Success, "{runs:?}");
    assert!(runs[0].finished_at.is_some(), "{runs:?}");

    // The next start (a restart, or another replica) declares the job again: it is kept
    // as stored, its schedule goes on.
    // (Started paused, so that the jobs are the store's, not pending ones.)
    let next = AsyncScheduler::connect(&url).unwrap();
    next.register_async_task("slow", |_ctx| async { Ok(json!(null)) });
    next.start(true).await.unwrap();
    let stored = next.get_job("slow").await.unwrap().expect("stored");
    let declared = next.add_job(declaration()).await.unwrap();
    assert_eq!(declared.job().next_run_time, stored.job().next_run_time);
    assert_eq!(declared.job().id.as_ref(), "slow");
    next.shutdown(false).await.unwrap();
}

#[test]
fn connect_refuses_a_url_no_linked_store_opens_without_repeating_it() {
    let err = AsyncScheduler::connect("nosuch://user:secret@host/x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(text.contains("unknown store URL scheme 'nosuch'"), "{text}");
    assert!(text.contains("postgres"), "the known schemes: {text}");
    assert!(!text.contains("secret"), "{text}");
    let err = AsyncScheduler::connect("jobs.sqlite").unwrap_err();
    assert!(err.to_string().contains("has no scheme"), "{err}");
}
