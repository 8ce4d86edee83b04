//! A node's view of the shared store: every call of the job store, the run history and
//! the node registry goes through [`exchange`], which applies the node's process state
//! and the store's faults around the memory store's own operation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, Acquired, Capabilities, ChangeListener, EndReply, EndedAndReleased, Error,
    ErrorKind, Held, Job, JobRelease, JobStore, NewRun, NodeInfo, NodeRegistry, Released,
    ReleasedRuns, Renewed, Run, RunElsewhere, RunEnd, RunHistory, RunOutcome, RunQuery, RunRecord,
    RunStore, StartReply, Swept,
};
use chrono::{DateTime, Utc};

use crate::world::{CallFault, NodeLink, Phase, World};
use crate::Sabotage;

/// Half the base round trip: each way of a call.
const HALF_RTT: Duration = Duration::from_micros(500);

/// How long a caller waits for a reply that never comes (a client's read time-out).
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a refused connection takes to report during a failover.
const REFUSED_AFTER: Duration = Duration::from_millis(50);

/// One call from `link` to the store: the request travels, the store applies `apply`
/// (or not), the reply travels back. A paused node's call waits for it to resume, a
/// crashed node's never goes on; a request that reaches the store while the node is
/// crashed is not applied.
async fn exchange<T, F, Fut>(world: &World, link: &NodeLink, op: &str, apply: F) -> Result<T, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    link.gate().await;
    world.take_pending(link, Phase::BeforeRequest, op);
    link.gate().await;
    let fault = world.draw(&link.name, op);
    let lost = |what: &str| {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "simulated store: {op} from {}: {what} (no reply within {REPLY_TIMEOUT:?})",
                link.name
            ),
        )
    };
    match fault {
        CallFault::Down => {
            tokio::time::sleep(REFUSED_AFTER).await;
            link.gate().await;
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "simulated store: {op} from {}: connection refused (failing over)",
                    link.name
                ),
            ));
        }
        CallFault::LostRequest => {
            tokio::time::sleep(REPLY_TIMEOUT).await;
            link.gate().await;
            return Err(lost("request lost"));
        }
        CallFault::Delay(delay) => tokio::time::sleep(HALF_RTT + delay).await,
        CallFault::LostReply => tokio::time::sleep(HALF_RTT).await,
    }
    link.gate().await;
    let result = apply().await;
    world.take_pending(link, Phase::AfterApply, op);
    if fault == CallFault::LostReply {
        world.trace(format!("{} {op} applied, reply lost", link.name));
        tokio::time::sleep(REPLY_TIMEOUT).await;
        link.gate().await;
        return Err(lost("reply lost"));
    }
    tokio::time::sleep(HALF_RTT).await;
    link.gate().await;
    result
}

/// The job store as node `link` reaches it: a store several schedulers share, whose
/// leases run on the callers' clocks (`store_clock` off), without change notifications.
#[derive(Debug, Clone)]
pub(crate) struct SimStore {
    pub(crate) world: Arc<World>,
    pub(crate) link: Arc<NodeLink>,
}

#[async_trait]
impl JobStore for SimStore {
    fn set_change_listener(&self, _listener: ChangeListener) {}

    fn runs(&self) -> Option<&dyn RunStore> {
        Some(self)
    }

    fn is_persistent(&self) -> bool {
        false
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.shared = true;
        caps.transactions = true;
        caps
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "add_job", || {
            store.add_job(job, replace_existing)
        })
        .await
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "add_jobs", || {
            store.add_jobs(jobs, replace_existing)
        })
        .await
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "update_job", || {
            store.update_job(job)
        })
        .await
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "remove_job", || {
            store.remove_job(id)
        })
        .await
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "remove_all_jobs", || {
            store.remove_all_jobs()
        })
        .await
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "lookup_job", || {
            store.lookup_job(id)
        })
        .await
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "get_all_jobs", || {
            store.get_all_jobs()
        })
        .await
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "next_run_time", || {
            store.get_next_run_time()
        })
        .await
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let (world, store) = (&self.world, &self.world.jobs);
        exchange(world, &self.link, "claim", || async move {
            let acquired = store
                .acquire_due_jobs(scheduler_id, now, limit, lease)
                .await?;
            let ids: Vec<&str> = acquired.jobs.iter().map(|j| &*j.id).collect();
            world.trace(format!("{scheduler_id} claimed {ids:?}"));
            Ok(acquired)
        })
        .await
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "extend", || {
            store.extend_leases(scheduler_id, ids, now, lease)
        })
        .await
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        let (world, store) = (&self.world, &self.world.jobs);
        exchange(world, &self.link, "release", || async move {
            let released = store.release_jobs(scheduler_id, releases).await?;
            world.trace(format!("{scheduler_id} release lost {:?}", released.lost));
            if world.sabotage == Some(Sabotage::ReleaseAlwaysApplied) {
                return Ok(Released::all());
            }
            Ok(released)
        })
        .await
    }
}

/// The run history and node registry as node `link` reaches them.
#[derive(Debug, Clone)]
pub(crate) struct SimHistory {
    pub(crate) world: Arc<World>,
    pub(crate) link: Arc<NodeLink>,
}

#[async_trait]
impl NodeRegistry for SimHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        let h = &self.world.history;
        exchange(&self.world, &self.link, "heartbeat", || h.heartbeat(node)).await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let h = &self.world.history;
        exchange(&self.world, &self.link, "list_nodes", || h.list_nodes()).await
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        let (world, h) = (&self.world, &self.world.history);
        exchange(world, &self.link, "remove_node", || async move {
            let removed = h.remove_node(node).await?;
            world.trace(format!("{} removed node {node}: {removed}", self.link.name));
            Ok(removed)
        })
        .await
    }
}

#[async_trait]
impl RunHistory for SimHistory {
    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        Some(self)
    }

    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        let (world, h) = (&self.world, &self.world.history);
        exchange(world, &self.link, "record_runs", || async move {
            for r in records {
                world.trace(format!(
                    "record {} {} {} {} by {}",
                    r.job_id, r.scheduled_at, r.outcome, r.node, self.link.name
                ));
            }
            if world.sabotage == Some(Sabotage::HistoryDropsMissed) {
                let kept: Vec<RunRecord> = records
                    .iter()
                    .filter(|r| r.outcome != RunOutcome::Missed)
                    .cloned()
                    .collect();
                return h.record_runs(&kept).await;
            }
            h.record_runs(records).await
        })
        .await
    }

    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        let (world, h) = (&self.world, &self.world.history);
        exchange(world, &self.link, "record_starts", || async move {
            let accepted = h.record_starts(records).await?;
            for r in records {
                let verdict = if accepted.contains(&r.run_id) {
                    "accepted"
                } else {
                    "refused"
                };
                world.trace(format!(
                    "start {} {} by {}: {verdict}",
                    r.job_id, r.scheduled_at, self.link.name
                ));
            }
            Ok(accepted)
        })
        .await
    }

    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        let h = &self.world.history;
        exchange(&self.world, &self.link, "query_runs", || {
            h.query_runs(query)
        })
        .await
    }

    async fn running_elsewhere(&self, node: &str) -> Result<Vec<RunElsewhere>, Error> {
        let h = &self.world.history;
        exchange(&self.world, &self.link, "running_elsewhere", || {
            h.running_elsewhere(node)
        })
        .await
    }

    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        let h = &self.world.history;
        exchange(&self.world, &self.link, "prune_job_runs", || {
            h.prune_job_runs(job_id, keep)
        })
        .await
    }

    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let h = &self.world.history;
        exchange(&self.world, &self.link, "prune_runs_before", || {
            h.prune_runs_before(before)
        })
        .await
    }

    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        let (world, h) = (&self.world, &self.world.history);
        exchange(world, &self.link, "interrupt_running", || async move {
            if world.sabotage == Some(Sabotage::InterruptNothing) {
                return Ok(Vec::new());
            }
            let mut changed = h.interrupt_running(node, now, message).await?;
            // The memory history hands them in its hash map's order, which differs
            // from run to run (run ids are random): in an order of what the run did,
            // a seed replays.
            changed.sort_by(|a, b| replay_order(a).cmp(&replay_order(b)));
            world.trace(format!(
                "{} interrupted {} runs of {node}",
                self.link.name,
                changed.len()
            ));
            Ok(changed)
        })
        .await
    }
}

/// What orders records the same way at every replay of a seed: all but the run id
/// (random), in the order a record's life fills them.
fn replay_order(r: &RunRecord) -> impl Ord + '_ {
    (
        (r.scheduled_at, &r.job_id, r.attempt),
        (r.started_at, r.due_at, r.backfill),
        (&r.message, &r.node),
    )
}

/// The run contract as node `link` reaches it: the memory store's, through the same
/// faults as every other call (its leases on the true virtual time).
#[async_trait]
impl RunStore for SimStore {
    async fn release_with_runs(
        &self,
        holder: &str,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<ReleasedRuns, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "release_with_runs", || {
            store.release_with_runs(holder, releases, lease)
        })
        .await
    }

    async fn end_and_release(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<EndedAndReleased, Error> {
        let (world, store) = (&self.world, &self.world.jobs);
        exchange(world, &self.link, "end_and_release", || async move {
            let ids: Vec<_> = ends.iter().map(|e| e.run.id.clone()).collect();
            let step = store.end_and_release(holder, ends, releases, lease).await?;
            for (id, reply) in ids.iter().zip(&step.ended) {
                world.trace(format!("end {id} by {holder}: {reply:?}"));
            }
            Ok(step)
        })
        .await
    }

    async fn insert_runs(
        &self,
        holder: &str,
        runs: Vec<NewRun>,
        lease: Duration,
    ) -> Result<Vec<Run>, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "insert_runs", || {
            store.insert_runs(holder, runs, lease)
        })
        .await
    }

    async fn start_runs(
        &self,
        holder: &str,
        runs: &[Held],
        at: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<StartReply>, Error> {
        let (world, store) = (&self.world, &self.world.jobs);
        exchange(world, &self.link, "start_runs", || async move {
            let replies = store.start_runs(holder, runs, at, lease).await?;
            for (run, reply) in runs.iter().zip(&replies) {
                world.trace(format!("start {} by {holder}: {reply:?}", run.id));
            }
            Ok(replies)
        })
        .await
    }

    async fn renew_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Renewed, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "renew_runs", || {
            store.renew_runs(holder, runs, lease)
        })
        .await
    }

    async fn end_runs(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        lease: Duration,
    ) -> Result<Vec<EndReply>, Error> {
        let (world, store) = (&self.world, &self.world.jobs);
        exchange(world, &self.link, "end_runs", || async move {
            let ids: Vec<_> = ends.iter().map(|e| e.run.id.clone()).collect();
            let replies = store.end_runs(holder, ends, lease).await?;
            for (id, reply) in ids.iter().zip(&replies) {
                world.trace(format!("end {id} by {holder}: {reply:?}"));
            }
            Ok(replies)
        })
        .await
    }

    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "sweep_runs", || {
            store.sweep_runs(sweeper, lease, limit)
        })
        .await
    }

    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "lookup_run", || {
            store.lookup_run(id)
        })
        .await
    }

    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "runs_of_job", || {
            store.runs_of_job(job_id)
        })
        .await
    }

    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        let store = &self.world.jobs;
        exchange(&self.world, &self.link, "prune_runs", || {
            store.prune_runs(before)
        })
        .await
    }
}
