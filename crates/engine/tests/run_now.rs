//! `run_job_now`: one run now through the job's executor, recorded like any run, with
//! the schedule left alone; refused for an unknown job, a scheduler not running, and a
//! job already at `max_instances`.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{ErrorKind, RunHistory, RunOutcome, RunQuery};
use apscheduler_engine::{AsyncScheduler, Engine, HistoryOptions, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_run_now_is_recorded_and_leaves_the_schedule_alone() {
    let history = Arc::new(MemoryRunHistory::new());
    let scheduler = AsyncScheduler::from_builder(
        Engine::builder().run_history(history.clone(), HistoryOptions::default()),
    )
    .unwrap();
    // The task blocks until told to finish, so a second run meets max_instances.
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    scheduler.register_task("slow", move |_ctx| {
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        Ok(json!("done"))
    });
    scheduler.start(false).await.unwrap();
    let job = scheduler
        .add_job(
            JobSpec::task("slow")
                .id("hourly")
                .trigger_args("interval", json!({"hours": 1})),
        )
        .await
        .unwrap();
    let next = job.job().next_run_time;

    let unknown = scheduler.run_job_now("nope").await.unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);

    let run_id = scheduler
        .run_job_now("hourly")
        .await
        .unwrap()
        .expect("a run id");
    let busy = scheduler.run_job_now("hourly").await.unwrap_err();
    assert_eq!(busy.kind(), ErrorKind::Conflict, "{busy}");
    assert!(busy.to_string().contains("max_instances = 1"), "{busy}");
    release.send(()).unwrap();

    let mut record = None;
    for _ in 0..200 {
        scheduler
            .engine()
            .flush_history(Duration::from_secs(5))
            .await;
        let runs = history
            .query_runs(&RunQuery {
                job_id: Some("hourly".into()),
                ..RunQuery::default()
            })
            .await
            .unwrap();
        record = runs
            .into_iter()
            .find(|r| r.run_id == run_id && r.outcome != RunOutcome::Running);
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let record = record.expect("the run's record");
    assert_eq!(record.outcome, RunOutcome::Success);
    let after = scheduler.get_job("hourly").await.unwrap().unwrap();
    assert_eq!(after.job().next_run_time, next, "the schedule is untouched");

    scheduler.pause().unwrap();
    let paused = scheduler.run_job_now("hourly").await.unwrap_err();
    assert_eq!(paused.kind(), ErrorKind::InvalidState, "{paused}");
    scheduler.shutdown(true).await.unwrap();
}
