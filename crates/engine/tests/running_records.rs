//! A pass writes the `running` records of the fire times it claimed before the release
//! that makes them its own, and a write that fails is tried again first: a node killed
//! right after the release must leave a record of every fire time it released, not one
//! that waited in its memory for the history writer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, Error, ErrorKind, ManualClock, RunHistory, RunOutcome, RunQuery, RunRecord,
};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use serde_json::json;

mod common;
#[allow(dead_code)] // only the shared store is used here
mod faulty_store;
use common::at;
use faulty_store::Faulty;

/// A memory run history whose first `failing` writes fail as a dropped connection does.
#[derive(Debug)]
struct FailsFirst {
    inner: MemoryRunHistory,
    failing: AtomicUsize,
}

#[async_trait]
impl RunHistory for FailsFirst {
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        let left = self.failing.load(Ordering::SeqCst);
        if left > 0 {
            self.failing.store(left - 1, Ordering::SeqCst);
            return Err(Error::new(ErrorKind::Unavailable, "connection reset"));
        }
        self.inner.record_runs(records).await
    }
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        let left = self.failing.load(Ordering::SeqCst);
        if left > 0 {
            self.failing.store(left - 1, Ordering::SeqCst);
            return Err(Error::new(ErrorKind::Unavailable, "connection reset"));
        }
        self.inner.record_starts(records).await
    }
    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        self.inner.query_runs(query).await
    }
    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.prune_runs_before(before).await
    }
}

/// The first write of the `running` record fails, and so does the next one; the run
/// starts only once the record is in the history (its task looks there).
#[tokio::test]
async fn running_records_whose_write_fails_are_written_before_the_release() {
    let clock = Arc::new(ManualClock::new(at(9, 59, 59)));
    let history = Arc::new(FailsFirst {
        inner: MemoryRunHistory::new(),
        failing: AtomicUsize::new(0),
    });
    let store = Faulty::new(true);
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store.clone())
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/1")
        .run_history(history.clone(), HistoryOptions::default())
        .build();
    let saw_record = Arc::new(AtomicBool::new(false));
    let (seen, h) = (saw_record.clone(), history.clone());
    engine.register_task("work", move |_| {
        let running = h
            .inner
            .query_runs(&RunQuery {
                outcome: Some(RunOutcome::Running),
                ..RunQuery::default()
            })
            .now_or_never()
            .expect("the memory history answers at once")
            .unwrap();
        seen.store(running.iter().any(|r| r.job_id == "job"), Ordering::SeqCst);
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(JobSpec::task("work").id("job").trigger_args(
            "interval",
            json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
        ))
        .await
        .unwrap();
    history.failing.store(2, Ordering::SeqCst);
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    assert_eq!(store.releases.load(Ordering::SeqCst), 1, "one release");
    assert!(
        saw_record.load(Ordering::SeqCst),
        "the run started before its running record was in the history"
    );
    engine.flush_history(Duration::from_secs(5)).await;
    assert_eq!(
        history.failing.load(Ordering::SeqCst),
        0,
        "the writes did not fail"
    );
    let records = history
        .inner
        .query_runs(&RunQuery::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].outcome, RunOutcome::Success);
    engine.shutdown(true).await.unwrap();
}
