//! A claimed run whose record another node ended before this node wrote its start
//! (this node was taken for dead, its unstarted record recorded `interrupted`, and
//! the other node starts the fire time) does not start here: the start write is
//! refused, the record stays as the other node wrote it, and `EVENT_JOB_MISSED` says
//! the fire time was not run here.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::event::{Event, EVENT_JOB_MISSED};
use apscheduler_core::{async_trait, Error, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_engine::HistoryOptions;
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};

mod common;
#[allow(dead_code)] // only the shared store is used here
mod faulty_store;
use common::{at, node_with_minutely_job, wait_for};
use faulty_store::Faulty;

/// What the reaper writes on the records it interrupts.
const REAPED: &str = "node me/1 stopped sending heartbeats (taken for dead by node other/1)";

/// A memory run history where, while `reap` is set, another node takes this one for
/// dead just before its start write arrives: its `running` records become
/// `interrupted` first.
#[derive(Debug)]
struct ReapedBeforeStart {
    inner: MemoryRunHistory,
    reap: AtomicBool,
}

#[async_trait]
impl RunHistory for ReapedBeforeStart {
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        self.inner.record_runs(records).await
    }
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        if self.reap.swap(false, Ordering::SeqCst) {
            let now = records[0].started_at.unwrap_or_else(Utc::now);
            self.inner.interrupt_running("me/1", now, REAPED).await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_record_was_interrupted_before_its_start_is_not_started() {
    let history = Arc::new(ReapedBeforeStart {
        inner: MemoryRunHistory::new(),
        reap: AtomicBool::new(true),
    });
    // The default options: starts are written before the runs start.
    let (clock, engine, runs) = node_with_minutely_job(
        Faulty::new(true),
        history.clone(),
        HistoryOptions::default(),
    )
    .await;
    let missed = Arc::new(AtomicUsize::new(0));
    let seen = missed.clone();
    engine.add_listener(
        move |e: &Event| {
            if e.code() == EVENT_JOB_MISSED {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        },
        EVENT_JOB_MISSED,
    );
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    engine.flush_history(Duration::from_secs(5)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "started after it was reaped"
    );
    // Listeners are called on the dispatcher's thread.
    wait_for("EVENT_JOB_MISSED", async || {
        missed.load(Ordering::SeqCst) == 1
    })
    .await;
    let records = history
        .inner
        .query_runs(&RunQuery::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, RunOutcome::Interrupted, "{record:#?}");
    assert_eq!(record.message.as_deref(), Some(REAPED), "{record:#?}");
    assert_eq!(record.started_at, None, "{record:#?}");
    // The node is not taken for dead again: the next fire time runs here.
    clock.set(at(10, 1, 0));
    engine.process_jobs().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.shutdown(true).await.unwrap();
}
