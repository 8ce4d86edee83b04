//! How long a fire time blocked only by another node's run waits for that run's end
//! to be written (`max_instances` across the nodes sharing a history, without leased
//! runs): a second while the history keeps up, twice this node's write lag when the
//! history falls behind (the other node's end is as late as this node's records), and
//! through reads that do not answer. Real time (the wait is for writes), with margins
//! of half a second or more either side.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, Error, ErrorKind, ManualClock, NodeRegistry, RunElsewhere, RunHistory, RunOutcome,
    RunQuery, RunRecord,
};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
// Only its plain shared store is used here, none of its faults.
#[allow(dead_code)]
mod faulty_store;
use common::{at, logs, running, wait_for};
use faulty_store::Faulty;

/// A shared history as one node sees it: its writes take `write_delay` (a store
/// falling behind), and its reads of the other nodes' runs fail while `reads_fail`.
#[derive(Debug)]
struct Lagging {
    inner: Arc<MemoryRunHistory>,
    write_delay: Duration,
    reads_fail: AtomicBool,
}

#[async_trait]
impl RunHistory for Lagging {
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        tokio::time::sleep(self.write_delay).await;
        self.inner.record_runs(records).await
    }

    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        tokio::time::sleep(self.write_delay).await;
        self.inner.record_starts(records).await
    }

    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        self.inner.nodes()
    }

    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        self.inner.query_runs(query).await
    }

    async fn running_elsewhere(&self, node: &str) -> Result<Vec<RunElsewhere>, Error> {
        if self.reads_fail.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unavailable, "the read times out"));
        }
        self.inner.running_elsewhere(node).await
    }

    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }

    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.prune_runs_before(before).await
    }
}

/// Node `me/1` on `history`, whose job `job` (every minute from 10:00:00,
/// `max_instances` 1, 30 s grace) is due at the clock's 10:00:00 while `other/2` has a
/// run of it in flight in `shared`; returns the node and the count of its runs.
async fn blocked_elsewhere(
    shared: &Arc<MemoryRunHistory>,
    history: Arc<Lagging>,
) -> (Engine, Arc<AtomicUsize>) {
    shared
        .record_runs(&[running("r-other", "job", "other/2")])
        .await
        .unwrap();
    let options = HistoryOptions {
        cluster_max_instances: true,
        ..HistoryOptions::default()
    };
    let engine = Engine::builder()
        .clock(Arc::new(ManualClock::new(at(10, 0, 0))))
        .timezone(chrono_tz::UTC)
        // A store that says it is shared by several schedulers (a memory store, as is,
        // says it serves one: `max_instances` would hold per node).
        .jobstore("default", Faulty::new(true))
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/1")
        .run_history(history, options)
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    engine.register_task("count", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(
            JobSpec::task("count")
                .id("job")
                .trigger_args(
                    "interval",
                    json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
                )
                .max_instances(1)
                .misfire_grace_time(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    (engine, runs)
}

/// other/2's run of 09:59:00, ended.
fn other_run_ended() -> RunRecord {
    let mut ended = running("r-other", "job", "other/2");
    ended.outcome = RunOutcome::Success;
    ended.finished_at = Some(at(9, 59, 30));
    ended
}

/// Waits until `me/1` ran the fire time 10:00:00 and recorded it `success` (never
/// `missed`), then shuts `engine` down.
async fn starts_and_succeeds(engine: Engine, shared: &MemoryRunHistory, runs: &AtomicUsize) {
    wait_for("the fire time's start", async || {
        runs.load(Ordering::SeqCst) == 1
    })
    .await;
    engine.shutdown(true).await.unwrap();
    let records: Vec<RunRecord> = shared
        .query_runs(&RunQuery {
            job_id: Some("job".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.node == "me/1" && r.scheduled_at == at(10, 0, 0))
        .collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Success, "{records:#?}");
}

/// Every write of this node's history takes 1.5 s, so its records wait that long: the
/// fire time waits up to 3 s for other/2's end, which comes 1.5 s into the wait (after
/// the 1 s a history that keeps up is given, when the fire time was once skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_falling_behind_lengthens_the_wait_for_an_end_elsewhere() {
    let shared = Arc::new(MemoryRunHistory::new());
    let history = Arc::new(Lagging {
        inner: shared.clone(),
        write_delay: Duration::from_millis(1500),
        reads_fail: AtomicBool::new(false),
    });
    let (engine, runs) = blocked_elsewhere(&shared, history).await;
    // The pass writes the fire time's `running` record (1.5 s) before it releases the
    // job, and returns once the fire time waits.
    engine.process_jobs().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "started beside other/2's run"
    );
    shared.record_runs(&[other_run_ended()]).await.unwrap();
    starts_and_succeeds(engine, &shared, &runs).await;
}

/// The reads of the other nodes' runs fail for 1.5 s of the wait: a read that does
/// not answer does not end it (the fire time was once skipped on its claim's stale
/// count); the first that answers after other/2's end starts it. The failing reads
/// are logged once, not at every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_fail_do_not_end_the_wait_for_an_end_elsewhere() {
    let logs = logs();
    let shared = Arc::new(MemoryRunHistory::new());
    let history = Arc::new(Lagging {
        inner: shared.clone(),
        write_delay: Duration::ZERO,
        reads_fail: AtomicBool::new(false),
    });
    let (engine, runs) = blocked_elsewhere(&shared, history.clone()).await;
    engine.process_jobs().await;
    history.reads_fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "started beside other/2's run"
    );
    shared.record_runs(&[other_run_ended()]).await.unwrap();
    history.reads_fail.store(false, Ordering::SeqCst);
    starts_and_succeeds(engine, &shared, &runs).await;
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let said = logged
        .matches("the fire times waiting for their ends keep waiting")
        .count();
    assert_eq!(said, 1, "{logged}");
}
