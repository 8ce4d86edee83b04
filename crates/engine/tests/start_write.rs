//! Runs start only once their start is written to the run history
//! (`HistoryOptions::record_starts` on), so that a node's death before a
//! start leaves a record that shows it: a start write the history refuses keeps its
//! runs from starting (recorded `missed`); one that finds the history unreachable is
//! tried again; a claimed record the history could not take at the claim is written
//! whole with its start; a node whose heartbeats went unconfirmed for half its node
//! time-out starts no fire time of a `recover` job it claims (another node may take it
//! for dead and start it again).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{RunHistory as _, RunOutcome, RunQuery};
use apscheduler_engine::{HistoryOptions, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};

mod common;
#[allow(dead_code)] // most faults are for other tests
mod faulty_store;
use common::{at, node_with_minutely_job, wait_for};
use faulty_store::Faulty;

/// The records of the job `job` at `t`.
async fn records_at(
    history: &MemoryRunHistory,
    t: DateTime<Utc>,
) -> Vec<apscheduler_core::RunRecord> {
    history
        .query_runs(&RunQuery {
            job_id: Some("job".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.scheduled_at == t)
        .collect()
}

/// A memory run history whose next write of run starts is refused (`fail`: a history
/// that rejects it, not one that is down), whose next `flaky` writes of run starts
/// fail as unreachable (a connection dropped, a server restarting), or, with
/// `fail_begin`, whose next write of claimed records fails (down at the claim, back
/// for the starts).
#[derive(Debug)]
struct StartsFail {
    inner: MemoryRunHistory,
    fail: std::sync::atomic::AtomicBool,
    flaky: AtomicUsize,
    fail_begin: std::sync::atomic::AtomicBool,
}

impl StartsFail {
    /// A history whose next start write is refused (`fail`), whose next `flaky` start
    /// writes find it unreachable, and whose next claim write fails (`fail_begin`).
    fn new(fail: bool, flaky: usize, fail_begin: bool) -> Arc<Self> {
        Arc::new(StartsFail {
            inner: MemoryRunHistory::new(),
            fail: std::sync::atomic::AtomicBool::new(fail),
            flaky: AtomicUsize::new(flaky),
            fail_begin: std::sync::atomic::AtomicBool::new(fail_begin),
        })
    }
}

#[apscheduler_core::async_trait]
impl apscheduler_core::RunHistory for StartsFail {
    async fn record_runs(
        &self,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<(), apscheduler_core::Error> {
        let begins = records
            .iter()
            .all(|r| r.outcome == RunOutcome::Running && r.started_at.is_none());
        if begins && self.fail_begin.swap(false, Ordering::SeqCst) {
            return Err(apscheduler_core::Error::new(
                apscheduler_core::ErrorKind::Unavailable,
                "connection reset",
            ));
        }
        self.inner.record_runs(records).await
    }
    async fn record_starts(
        &self,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<Vec<String>, apscheduler_core::Error> {
        if self.fail.swap(false, Ordering::SeqCst) {
            return Err(apscheduler_core::Error::new(
                apscheduler_core::ErrorKind::Other,
                "disk full",
            ));
        }
        let flaky = self
            .flaky
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if flaky {
            return Err(apscheduler_core::Error::new(
                apscheduler_core::ErrorKind::Unavailable,
                "connection reset",
            ));
        }
        self.inner.record_starts(records).await
    }
    async fn query_runs(
        &self,
        query: &RunQuery,
    ) -> Result<Vec<apscheduler_core::RunRecord>, apscheduler_core::Error> {
        self.inner.query_runs(query).await
    }
    async fn prune_job_runs(
        &self,
        job_id: &str,
        keep: usize,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_runs_before(before).await
    }
}

/// A run whose start cannot be written does not start (were this node to die, its
/// record without a start would have it started elsewhere): it is recorded `missed`,
/// saying why, and the job's next fire time runs as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_start_cannot_be_written_is_not_started_and_recorded_missed() {
    let history = StartsFail::new(true, 0, false);
    let (clock, engine, runs) = node_with_minutely_job(
        Faulty::new(false),
        history.clone(),
        HistoryOptions {
            record_starts: true,
            ..HistoryOptions::default()
        },
    )
    .await;
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    engine.flush_history(Duration::from_secs(5)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "started without its start written"
    );
    let records = history.query_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Missed, "{records:#?}");
    let message = records[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("its start could not be written to the run history (disk full)"),
        "{message}"
    );
    // The history answers again: the next fire time runs.
    clock.set(at(10, 1, 0));
    engine.process_jobs().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.shutdown(true).await.unwrap();
}

/// A memory run history whose node registry stops answering heartbeats while
/// `stalled` is set (the registry, or the path to it, stalled; the node is alive).
#[derive(Debug)]
struct SilentRegistry {
    inner: MemoryRunHistory,
    stalled: std::sync::atomic::AtomicBool,
}

#[apscheduler_core::async_trait]
impl apscheduler_core::NodeRegistry for SilentRegistry {
    async fn heartbeat(
        &self,
        node: &apscheduler_core::NodeInfo,
    ) -> Result<(), apscheduler_core::Error> {
        while self.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.nodes().unwrap().heartbeat(node).await
    }
    async fn list_nodes(&self) -> Result<Vec<apscheduler_core::NodeInfo>, apscheduler_core::Error> {
        self.inner.nodes().unwrap().list_nodes().await
    }
    async fn remove_node(&self, node: &str) -> Result<bool, apscheduler_core::Error> {
        self.inner.nodes().unwrap().remove_node(node).await
    }
}

#[apscheduler_core::async_trait]
impl apscheduler_core::RunHistory for SilentRegistry {
    async fn record_runs(
        &self,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<(), apscheduler_core::Error> {
        self.inner.record_runs(records).await
    }
    async fn record_starts(
        &self,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<Vec<String>, apscheduler_core::Error> {
        self.inner.record_starts(records).await
    }
    fn nodes(&self) -> Option<&dyn apscheduler_core::NodeRegistry> {
        Some(self)
    }
    async fn query_runs(
        &self,
        query: &RunQuery,
    ) -> Result<Vec<apscheduler_core::RunRecord>, apscheduler_core::Error> {
        self.inner.query_runs(query).await
    }
    async fn prune_job_runs(
        &self,
        job_id: &str,
        keep: usize,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_runs_before(before).await
    }
}

/// A node whose last confirmed heartbeat was sent half its node time-out ago or more
/// starts none of the fire times of `recover` jobs it claims (another node may take it
/// for dead and start them again): they are recorded `missed`, saying why. A job
/// without `recover` runs (a reaper would find its run started and leave it). Once
/// its heartbeats are confirmed again, the `recover` job runs its next fire time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_silent_for_half_its_node_timeout_starts_no_recover_run_it_claims() {
    let history = Arc::new(SilentRegistry {
        inner: MemoryRunHistory::new(),
        stalled: std::sync::atomic::AtomicBool::new(false),
    });
    let (clock, engine, runs) = node_with_minutely_job(
        Faulty::new(true),
        history.clone(),
        HistoryOptions {
            heartbeat: Duration::from_millis(50),
            node_timeout: Duration::from_millis(600),
            record_starts: true,
            ..HistoryOptions::default()
        },
    )
    .await;
    engine
        .add_job(
            JobSpec::task("work")
                .id("recovered")
                .recover(true)
                .trigger_args(
                    "interval",
                    serde_json::json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
                ),
        )
        .await
        .unwrap();
    wait_for("me/1's registry entry", async || {
        let nodes = history.inner.nodes().unwrap().list_nodes().await.unwrap();
        nodes.iter().any(|n| n.node == "me/1")
    })
    .await;
    // Heartbeats stop being confirmed for over half the node time-out (300 ms).
    history.stalled.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "only the job without recover runs"
    );
    history.stalled.store(false, Ordering::SeqCst);
    engine.flush_history(Duration::from_secs(5)).await;
    let records = records_at(&history.inner, at(10, 0, 0)).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Success, "{records:#?}");
    let records = history
        .inner
        .query_runs(&RunQuery {
            job_id: Some("recovered".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Missed, "{records:#?}");
    let message = records[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("this node's last confirmed heartbeat was sent")
            && message.contains("as the job asks for recovery (recover = true)"),
        "{message}"
    );
    // Heartbeats confirmed again (every 50 ms): both jobs run their next fire time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    clock.set(at(10, 1, 0));
    engine.process_jobs().await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    engine.shutdown(true).await.unwrap();
}

/// A claimed fire time whose `running` record could not be written at the claim (the
/// history down for that write) starts once its record is written whole, start
/// included, just before the run: the record is not left to the writer, which could
/// write it without its start after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_claim_could_not_write_is_written_with_its_start_and_the_run_starts() {
    let history = StartsFail::new(false, 0, true);
    let (clock, engine, runs) = node_with_minutely_job(
        Faulty::new(true),
        history.clone(),
        HistoryOptions {
            record_starts: true,
            ..HistoryOptions::default()
        },
    )
    .await;
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    assert!(
        !history.fail_begin.load(Ordering::SeqCst),
        "the claim's write was not tried"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.flush_history(Duration::from_secs(5)).await;
    let records = records_at(&history.inner, at(10, 0, 0)).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Success, "{records:#?}");
    assert!(records[0].started_at.is_some(), "{records:#?}");
    engine.shutdown(true).await.unwrap();
}

/// A start write that fails because the history cannot be reached (a dropped
/// connection, a server restarting) is tried again, and the run starts once it is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_write_that_finds_the_history_unreachable_is_tried_again() {
    let history = StartsFail::new(false, 2, false);
    let (clock, engine, runs) = node_with_minutely_job(
        Faulty::new(true),
        history.clone(),
        HistoryOptions {
            record_starts: true,
            ..HistoryOptions::default()
        },
    )
    .await;
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    assert_eq!(history.flaky.load(Ordering::SeqCst), 0, "not tried again");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.flush_history(Duration::from_secs(5)).await;
    let records = records_at(&history.inner, at(10, 0, 0)).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Success, "{records:#?}");
    engine.shutdown(true).await.unwrap();
}
