//! [`MemoryRunHistory`]: run records in process memory (lost at exit).

use std::collections::{BTreeMap, HashMap};

use apscheduler_core::{
    async_trait, Error, NodeInfo, NodeRegistry, RunHistory, RunOutcome, RunQuery, RunRecord,
};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;

/// Run history kept in memory: the reference implementation of [`RunHistory`], for
/// tests and for schedulers that want history without a database.
///
/// ```
/// use apscheduler_core::{RunHistory, RunOutcome, RunQuery, RunRecord};
/// use apscheduler_store_memory::MemoryRunHistory;
///
/// let history = MemoryRunHistory::new();
/// let at = "2026-01-01T00:00:00Z".parse().unwrap();
/// let record = RunRecord {
///     run_id: "r1".into(), job_id: "backup".into(), scheduled_at: at,
///     started_at: Some(at), finished_at: Some(at), outcome: RunOutcome::Success,
///     exit_code: Some(0), http_status: None, output: "done".into(), message: None,
///     node: "host-1".into(),
///     attempt: 1,
///     backfill: false,
///     due_at: None,
/// };
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// runtime.block_on(async {
///     history.record_runs(&[record.clone()]).await.unwrap();
///     let found = history.query_runs(&RunQuery::default()).await.unwrap();
///     assert_eq!(found, vec![record]);
/// });
/// ```
#[derive(Debug, Default)]
pub struct MemoryRunHistory {
    runs: Mutex<HashMap<String, RunRecord>>,
    nodes: Mutex<BTreeMap<String, NodeInfo>>,
}

impl MemoryRunHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Newest first: by scheduled time, then run id, both descending.
fn newest_first(a: &RunRecord, b: &RunRecord) -> std::cmp::Ordering {
    (b.scheduled_at, &b.run_id).cmp(&(a.scheduled_at, &a.run_id))
}

/// Writes `record`'s start into `runs` as [`RunHistory::record_starts`] says; whether
/// its run may start.
fn start_on(runs: &mut HashMap<String, RunRecord>, record: &RunRecord) -> bool {
    match runs.get_mut(&record.run_id) {
        None => {
            runs.insert(record.run_id.clone(), record.clone());
            true
        }
        Some(stored) if stored.outcome == RunOutcome::Running => {
            if stored.started_at.is_none() {
                stored.started_at = record.started_at;
            }
            true
        }
        Some(_) => false,
    }
}

#[async_trait]
impl NodeRegistry for MemoryRunHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        self.nodes.lock().insert(node.node.clone(), node.clone());
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        Ok(self.nodes.lock().values().cloned().collect())
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        Ok(self.nodes.lock().remove(node).is_some())
    }
}

#[async_trait]
impl RunHistory for MemoryRunHistory {
    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        Some(self)
    }

    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        let mut runs = self.runs.lock();
        for r in records {
            runs.insert(r.run_id.clone(), r.clone());
        }
        Ok(())
    }

    /// Under one lock, as [`interrupt_running`](RunHistory::interrupt_running) is.
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        let mut runs = self.runs.lock();
        Ok(records
            .iter()
            .filter(|r| start_on(&mut runs, r))
            .map(|r| r.run_id.clone())
            .collect())
    }

    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        let mut found: Vec<RunRecord> = self
            .runs
            .lock()
            .values()
            .filter(|r| query.matches(r))
            .cloned()
            .collect();
        found.sort_by(newest_first);
        found.truncate(query.limit);
        Ok(found)
    }

    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        let mut runs = self.runs.lock();
        let mut ended: Vec<&RunRecord> = runs
            .values()
            .filter(|r| r.job_id == job_id && r.outcome != RunOutcome::Running)
            .collect();
        ended.sort_by(|a, b| newest_first(a, b));
        let doomed: Vec<String> = ended.iter().skip(keep).map(|r| r.run_id.clone()).collect();
        for id in &doomed {
            runs.remove(id);
        }
        Ok(doomed.len() as u64)
    }

    /// Under one lock: of nodes reaping the same dead node at once, each record goes to
    /// one of them (the one that recovers its run).
    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        let mut runs = self.runs.lock();
        let mut changed = Vec::new();
        for r in runs.values_mut() {
            if r.node == node && r.outcome == RunOutcome::Running {
                r.outcome = RunOutcome::Interrupted;
                r.finished_at = Some(now);
                r.message = Some(message.to_owned());
                changed.push(r.clone());
            }
        }
        Ok(changed)
    }

    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let mut runs = self.runs.lock();
        let len = runs.len();
        runs.retain(|_, r| r.outcome == RunOutcome::Running || r.scheduled_at >= before);
        Ok((len - runs.len()) as u64)
    }
}
