//! Recording run history: the scheduler's side of [`RunHistory`].
//!
//! The engine tells the [`Recorder`] what happens to each run (started, ended, missed,
//! skipped, could not run); the recorder turns it into whole [`RunRecord`]s and hands
//! them to a writer task, so no scheduler or executor thread ever waits for the
//! database. The writer batches what has queued up, retries a history that is down
//! (records wait in memory, an error is logged once per outage) and prunes by the
//! [`Retention`] at an interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::JobFailure;
use apscheduler_core::{
    Clock, Error, ErrorKind, JobRun, Retention, RunElsewhere, RunHistory, RunObserver, RunOutcome,
    RunProtocol, RunRecord,
};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::liveness::Liveness;
use crate::membership::{mixed_protocols, other_protocol, InterruptedHook, Member, Membership};

mod begin;
mod staged;
mod starts;
pub(crate) use starts::{is_fire_time, not_past, StartRefused};
mod waiting;
mod writer;

use writer::{write_loop, written_by, Counts};

/// How a scheduler records run history (see [`crate::EngineBuilder::run_history`]).
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// The node name written into each record (default: the scheduler id).
    pub node: Option<String>,
    /// How many bytes of output a record keeps: the last ones (default 4 KiB).
    pub output_cap: usize,
    /// What pruning keeps (default: 100 runs per job, no age limit).
    pub retention: Retention,
    /// How often the writer prunes (default: every minute).
    pub prune_interval: Duration,
    /// How often this scheduler writes its entry in the node registry kept beside the
    /// history, where the store keeps one (default: every second).
    pub heartbeat: Duration,
    /// How long a node may go without a heartbeat before other nodes take it for
    /// dead and record its running runs `interrupted` (default: 10 s). Keep it a few
    /// heartbeats long, and longer than the clock skew between nodes.
    pub node_timeout: Duration,
    /// Hold `max_instances` across the nodes sharing the history (default: on). A pass
    /// on a shared store reads the `running` records of the other nodes after its
    /// claim and counts them with its own instances: a job never runs more than
    /// `max_instances` at once anywhere. A run elsewhere counts until its end is
    /// written, or until its node has been silent (no heartbeat) for longer than one
    /// claim lease ([`crate::EngineBuilder::lease`]: a dead node's runs do not hold
    /// their jobs until it is reaped; a node stalled that long may run beside them), so a fire time blocked only by runs on other nodes waits for the ends
    /// of those runs (read again every 100 ms, for 1 s and within its misfire grace
    /// time: a read asked after that second must still find them) before it is
    /// skipped; it starts late by that wait. Off, it holds per
    /// node, as in APScheduler (a job may run on two nodes at once), and a pass costs
    /// one query less.
    pub cluster_max_instances: bool,
    /// Write each claimed run's start to the history, awaited, before the run starts
    /// (default: on; one write per pass that starts runs). A `running` record without
    /// a start then shows that its run never started: when its node dies after the
    /// release that made the fire time its own, the node that takes it for dead starts
    /// that fire time, once (see docs/cluster.md). The start is written only on a
    /// record still `running` ([`RunHistory::record_starts`]): a run whose record
    /// another node recorded `interrupted` meanwhile (it took this one for dead and
    /// starts the fire time itself) does not start here, and its record stays as that
    /// node wrote it. If the write fails, the runs are not started and are recorded
    /// `missed`, saying why. Off, a run's record gets its start time at the claim, a
    /// pass makes one write less, and a fire time released to a node that died before
    /// starting it is recorded `interrupted` and not run.
    pub record_starts: bool,
    /// What sees each record as it is made (metrics, notifications): see
    /// [`HistoryOptions::observe`].
    pub observers: Vec<Arc<dyn RunObserver>>,
}

impl HistoryOptions {
    /// Adds `observer`: it sees every record this scheduler makes, before it is
    /// written (see [`RunObserver`]).
    pub fn observe(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observers.push(observer);
        self
    }
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            node: None,
            output_cap: 4096,
            retention: Retention::default(),
            prune_interval: Duration::from_secs(60),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(10),
            cluster_max_instances: true,
            record_starts: true,
            observers: Vec::new(),
        }
    }
}

/// How long the history writer, woken by a record, waits for more before it writes.
const GATHER: Duration = Duration::from_millis(5);

/// How long a pass waits for the `running` records of the runs it starts (failed
/// writes tried again meanwhile).
const BEGIN_DEADLINE: Duration = Duration::from_secs(10);

/// How long a pass waits for the runs other nodes have in flight before it holds
/// `max_instances` on its own node only.
const RUNNING_ELSEWHERE_DEADLINE: Duration = Duration::from_secs(2);

/// The longest wait between attempts to reach a history that is down: a second, so
/// that the ends of runs held meanwhile are written soon after it returns (until then
/// other nodes count those runs as in flight, and skip their jobs' fire times).
const RETRY_CAP: Duration = Duration::from_secs(1);

/// A run whose `running` record is written and whose end is not.
struct InFlight {
    record: RunRecord,
    /// Started ([`Recorder::started`]: the first fire time of a submission once handed
    /// to its executor, the next ones as they begin). A claimed fire time that waits
    /// (for its release, or for room under `max_instances`) has not.
    started: bool,
    /// Its `running` record was written (awaited) by [`Recorder::begin`].
    written: bool,
}

impl InFlight {
    /// Its record once the scheduler shut down before its end: `interrupted` if it
    /// started, else `missed` (it never ran).
    fn ended_by_shutdown(self, now: DateTime<Utc>) -> RunRecord {
        let mut r = self.record;
        r.finished_at = Some(now);
        if self.started {
            r.outcome = RunOutcome::Interrupted;
            r.message = Some("the scheduler shut down before the run ended here".to_owned());
        } else {
            r.outcome = RunOutcome::Missed;
            r.started_at = None;
            r.message =
                Some("not started: the scheduler shut down before the run started here".to_owned());
        }
        r
    }
}

enum Msg {
    /// A record, and when it was queued (the writer's lag is measured from it).
    Record(RunRecord, tokio::time::Instant),
    Flush(oneshot::Sender<()>),
}

/// Turns what happens to runs into records and queues them for the writer.
pub(crate) struct Recorder {
    history: Arc<dyn RunHistory>,
    options: HistoryOptions,
    node: Arc<str>,
    clock: Arc<dyn Clock>,
    /// Runs started and not yet ended, by run id: their end rewrites the whole record.
    in_flight: Arc<Mutex<HashMap<Arc<str>, InFlight>>>,
    tx: Mutex<Option<mpsc::UnboundedSender<Msg>>>,
    /// The heartbeat task, while started.
    membership: Mutex<Option<Membership>>,
    /// The other nodes' heartbeats, as the heartbeat task last read them.
    liveness: Arc<Liveness>,
    /// The claim lease: a `running` record of a node silent longer than this does not
    /// count as an instance.
    lease: Duration,
    /// The claim partitions this node owns among the live nodes.
    ownership: crate::partition::Ownership,
    /// How many records were queued, and how many of them the writer wrote.
    counts: Arc<Counts>,
    /// How this node keeps its runs, as its registry entry says (set at start).
    protocol: Mutex<RunProtocol>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("history", &self.history)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new run id: a UUID v7, so ids sort by creation time.
pub(crate) fn new_run_id() -> Arc<str> {
    uuid::Uuid::now_v7().to_string().into()
}

impl Recorder {
    pub(crate) fn new(
        history: Arc<dyn RunHistory>,
        options: HistoryOptions,
        scheduler_id: &str,
        clock: Arc<dyn Clock>,
        lease: Duration,
    ) -> Self {
        let node = options.node.as_deref().unwrap_or(scheduler_id).into();
        Recorder {
            history,
            options,
            node,
            clock,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            tx: Mutex::new(None),
            membership: Mutex::new(None),
            liveness: Arc::default(),
            lease,
            ownership: crate::partition::Ownership::default(),
            counts: Arc::default(),
            protocol: Mutex::new(RunProtocol::HistoryRecords),
        }
    }

    /// How this node keeps its runs: said before [`prepare`](Self::prepare) at each
    /// start (the engine decides it at its first).
    pub(crate) fn set_protocol(&self, protocol: RunProtocol) {
        *lock(&self.protocol) = protocol;
    }

    /// How many records were queued so far: once [`written`](Self::written) reaches
    /// it, every one of them is written.
    pub(crate) fn queued(&self) -> u64 {
        self.counts
            .queued
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// How many of the queued records the writer wrote, in queue order.
    pub(crate) fn written(&self) -> u64 {
        self.counts
            .written
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Calls `hook` after each write of queued records.
    pub(crate) fn on_written(&self, hook: Arc<dyn Fn() + Send + Sync>) {
        *lock(&self.counts.on_written) = Some(hook);
    }

    /// How far behind the writer is: how long the records of its latest write waited
    /// from their queuing to their write, or, when longer, how long the oldest record
    /// not yet written has waited. Other nodes writing to the same store are about as
    /// far behind: a fire time waiting for their runs' ends to be written waits in
    /// proportion (see `engine::elsewhere`).
    pub(crate) fn write_lag(&self) -> Duration {
        self.counts.lag()
    }

    pub(crate) fn history(&self) -> &Arc<dyn RunHistory> {
        &self.history
    }

    /// The node name written into this scheduler's records.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// The claim partitions (of a store's `partitions`) this node owns among the nodes
    /// live in the registry it last read (see [`crate::partition`]); `None`: claim from
    /// every partition.
    pub(crate) fn owned_partitions(&self, partitions: u32) -> Option<Arc<[u32]>> {
        if partitions == 0 {
            return None;
        }
        let live = self.liveness.live(self.clock.now(), self.lease)?;
        self.ownership.owned(&self.node, live, partitions)
    }

    /// The runs other nodes have in flight, by their `running` records, less those of
    /// nodes silent for longer than one lease (see [`crate::liveness`]); `None`, with a
    /// warning, when the history cannot say in time (the pass then holds
    /// `max_instances` on this node only).
    pub(crate) async fn running_elsewhere(&self) -> Option<Vec<RunElsewhere>> {
        match self.read_running_elsewhere().await? {
            Ok(runs) => Some(runs),
            Err(error) => {
                apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, "cannot read the runs other nodes have in flight; max_instances holds on this node only for this pass: {error}");
                None
            }
        }
    }

    /// What [`running_elsewhere`](Self::running_elsewhere) reads, without its warning:
    /// `None` when `cluster_max_instances` is off, `Some(Err(why))` when the history
    /// cannot say in time.
    pub(crate) async fn read_running_elsewhere(&self) -> Option<Result<Vec<RunElsewhere>, String>> {
        if !self.options.cluster_max_instances {
            return None;
        }
        let read = tokio::time::timeout(
            RUNNING_ELSEWHERE_DEADLINE,
            self.history.running_elsewhere(&self.node),
        )
        .await;
        Some(match read {
            Ok(Ok(mut runs)) => {
                let now = self.clock.now();
                runs.retain(|r| !self.liveness.silent(&r.node, now, self.lease));
                Ok(runs)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {RUNNING_ELSEWHERE_DEADLINE:?}")),
        })
    }

    /// Prepares the history (an upgrade of its tables included), then refuses the
    /// start (`Conflict`) while a live node of another run protocol is registered. A
    /// registry that cannot be read now does not stop the start: the heartbeat task
    /// checks again at every heartbeat and logs a node it finds.
    pub(crate) async fn prepare(&self) -> Result<(), Error> {
        if let Err(e) = self.history.prepare().await {
            apscheduler_core::log_error!(target: "apscheduler", "run history could not be prepared (records will be retried): {e}");
        }
        let Some(nodes) = self.history.nodes() else {
            return Ok(());
        };
        let listed = match nodes.list_nodes().await {
            Ok(listed) => listed,
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, "cannot read the node registry at start (whether nodes of another run protocol share this store is checked again at every heartbeat): {e}");
                return Ok(());
            }
        };
        let now = self.clock.now();
        let protocol = lock(&self.protocol).clone();
        match other_protocol(
            &listed,
            &self.node,
            &protocol,
            now,
            self.options.node_timeout,
        ) {
            Some(other) => Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "cannot start: {}",
                    mixed_protocols(&self.node, &protocol, other)
                ),
            )),
            None => Ok(()),
        }
    }

    /// Starts the writer on the current runtime (after [`prepare`](Self::prepare)). With a node
    /// named in the options, runs that node left `running` (it died during them) are
    /// marked `interrupted` first. Records this node turns `interrupted` (those, and a
    /// dead node's) go to `interrupted`, for recovery.
    pub(crate) async fn start(&self, interrupted: InterruptedHook) {
        // With leased runs the store's sweep takes them, once their leases ran out.
        let protocol = lock(&self.protocol).clone();
        if protocol != RunProtocol::LeasedRuns && self.options.node.is_some() {
            match self
                .history
                .interrupt_running(
                    &self.node,
                    self.clock.now(),
                    "the scheduler stopped during the run (found at its next start)",
                )
                .await
            {
                Ok(found) if !found.is_empty() => {
                    apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, "{} run(s) left running by this node's previous life recorded as interrupted", found.len());
                    interrupted(found);
                }
                Ok(_) => {}
                Err(e) => {
                    apscheduler_core::log_error!(target: "apscheduler", "runs left running could not be marked interrupted: {e}")
                }
            }
        }
        let in_flight = self.in_flight.clone();
        *lock(&self.membership) = Membership::join(Member {
            history: self.history.clone(),
            clock: self.clock.clone(),
            node: self.node.clone(),
            heartbeat: self.options.heartbeat,
            node_timeout: self.options.node_timeout,
            running: Arc::new(move || lock(&in_flight).len()),
            interrupted,
            liveness: self.liveness.clone(),
            protocol: protocol.clone(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.tx) = Some(tx);
        tokio::spawn(write_loop(
            self.history.clone(),
            self.counts.clone(),
            rx,
            self.options.retention,
            self.options.prune_interval,
            protocol == RunProtocol::LeasedRuns,
        ));
    }

    /// Waits until every record queued so far is written (or `deadline` passes; what
    /// is left is logged as an error). Stops the writer when `stop`.
    pub(crate) async fn flush(&self, deadline: Duration, stop: bool) {
        if stop {
            // Runs whose `running` record is written and that never ended here (a pass
            // cut short by the shutdown, runs not waited for): nobody would end them
            // after this node left the registry. Those that never started are missed,
            // not interrupted.
            let now = self.clock.now();
            let left: Vec<RunRecord> = lock(&self.in_flight)
                .drain()
                .map(|(_, entry)| entry.ended_by_shutdown(now))
                .collect();
            if !left.is_empty() {
                let interrupted = left
                    .iter()
                    .filter(|r| r.outcome == RunOutcome::Interrupted)
                    .count();
                apscheduler_core::log_warn!(target: "apscheduler", node = %self.node, "{} run(s) not ended at shutdown: {interrupted} recorded as interrupted, {} never started recorded as missed", left.len(), left.len() - interrupted);
            }
            for r in left {
                self.send(r);
            }
        }
        let tx = if stop {
            lock(&self.tx).take()
        } else {
            lock(&self.tx).clone()
        };
        let written = match tx {
            None => true,
            Some(tx) => written_by(tx, deadline).await,
        };
        if !written {
            apscheduler_core::log_error!(target: "apscheduler", "run history: records not yet written after {deadline:?} (the history is unreachable); they are lost if the process exits now");
        }
        let membership = if stop {
            lock(&self.membership).take()
        } else {
            None
        };
        if let Some(membership) = membership {
            // With records unwritten, the entry stays: the other nodes take this one
            // for dead and record its runs left `running` as interrupted.
            let _ = tokio::time::timeout(deadline, membership.leave(written)).await;
        }
    }

    /// Whether every record queued so far is written within `deadline`.
    pub(crate) async fn queued_written(&self, deadline: Duration) -> bool {
        let tx = lock(&self.tx).clone();
        match tx {
            None => true,
            Some(tx) => written_by(tx, deadline).await,
        }
    }

    /// Tells the observers a job's failure streak changed (see `RunObserver::streak`).
    pub(crate) fn streak_changed(
        &self,
        change: apscheduler_core::StreakChange,
        job_id: &str,
        streak: u32,
        record: Option<&RunRecord>,
    ) {
        for observer in &self.options.observers {
            observer.streak(change, job_id, streak, record);
        }
    }

    fn observe(&self, record: &RunRecord) {
        for observer in &self.options.observers {
            observer.observe(record);
        }
    }

    fn send(&self, record: RunRecord) {
        self.observe(&record);
        let sent = match &*lock(&self.tx) {
            // Counted under the lock that orders the queue.
            Some(tx) => tx
                .send(Msg::Record(record, tokio::time::Instant::now()))
                .map(|()| {
                    self.counts
                        .queued
                        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                })
                .map_err(|e| match e.0 {
                    Msg::Record(r, _) => r,
                    Msg::Flush(_) => unreachable!("only records are sent here"),
                }),
            None => Err(record),
        };
        if let Err(record) = sent {
            apscheduler_core::log_error!(target: "apscheduler", job_id = %record.job_id, run_id = %record.run_id, outcome = %record.outcome, "run history is not running: record not written");
        }
    }

    fn blank(&self, run_id: &str, job_id: &str, scheduled_at: DateTime<Utc>) -> RunRecord {
        RunRecord::pending(run_id, job_id, scheduled_at, self.node.to_string())
    }

    /// Run `index` of `run` starts now. A run whose record [`begin`](Self::begin) wrote
    /// only has its start time set (its end writes the whole record).
    pub(crate) fn started(&self, run: &JobRun, index: usize) {
        let (Some(id), Some(t)) = (run.run_ids.get(index), run.run_times.get(index)) else {
            return;
        };
        let now = self.clock.now();
        if let Some(entry) = lock(&self.in_flight).get_mut(id) {
            entry.record.started_at = Some(now);
            entry.started = true;
            return;
        }
        let mut record = self.blank(id, &run.job_id, t.with_timezone(&Utc));
        record.started_at = Some(now);
        record.attempt = run.attempt;
        lock(&self.in_flight).insert(
            id.clone(),
            InFlight {
                record: record.clone(),
                started: true,
                written: false,
            },
        );
        self.send(record);
    }

    /// The run of `run_time` ended with `result`; `after` is appended to its message
    /// (the retry it gets).
    pub(crate) fn ended(
        &self,
        run: &JobRun,
        run_time: DateTime<Tz>,
        result: &Result<Value, JobFailure>,
        after: Option<&str>,
    ) {
        let Some(id) = run.run_id(run_time) else {
            return;
        };
        let now = self.clock.now();
        let mut record = lock(&self.in_flight)
            .remove(id)
            .map(|entry| entry.record)
            .unwrap_or_else(|| {
                let mut r = self.blank(id, &run.job_id, run_time.with_timezone(&Utc));
                r.started_at = Some(now);
                r.attempt = run.attempt;
                r
            });
        record.finished_at = Some(now);
        let note = record.message.take();
        finish_record(&mut record, result, self.options.output_cap);
        record.message = with_note(note, record.message.take());
        if let Some(after) = after {
            record.message = with_note(record.message.take(), Some(after.to_owned()));
        }
        self.send(record);
    }

    /// A fire time that did not run: missed (`outcome` `missed`) or could not be run
    /// (`error`), with the reason.
    pub(crate) fn not_run(
        &self,
        job_id: &str,
        scheduled_at: DateTime<Tz>,
        outcome: RunOutcome,
        message: String,
    ) {
        self.not_run_as(None, job_id, scheduled_at, outcome, message);
    }

    /// Whether `run_id`'s `running` record is still this node's to end (a shutdown's
    /// flush takes the ones left).
    pub(crate) fn holds(&self, run_id: &str) -> bool {
        lock(&self.in_flight).contains_key(run_id)
    }

    /// [`not_run`](Self::not_run) for a fire time that has a run id (its `running`
    /// record, written by [`begin`](Self::begin), is replaced).
    pub(crate) fn not_run_as(
        &self,
        run_id: Option<&Arc<str>>,
        job_id: &str,
        scheduled_at: DateTime<Tz>,
        outcome: RunOutcome,
        message: String,
    ) {
        let (id, begun) = match run_id {
            Some(id) => (id.clone(), lock(&self.in_flight).remove(id)),
            None => (new_run_id(), None),
        };
        let backfill = begun.as_ref().is_some_and(|r| r.record.backfill);
        // A retry keeps its attempt and due time.
        let (attempt, due_at) = begun
            .as_ref()
            .map_or((1, None), |r| (r.record.attempt, r.record.due_at));
        let note = begun.and_then(|r| r.record.message);
        let mut record = self.blank(&id, job_id, scheduled_at.with_timezone(&Utc));
        record.backfill = backfill;
        record.attempt = attempt;
        record.due_at = due_at;
        record.outcome = outcome;
        record.finished_at = Some(self.clock.now());
        record.message = with_note(note, Some(message));
        self.send(record);
    }
}

/// A record's message from the note its `running` record carried (a recovery's) and
/// what its end says: both, the note first.
fn with_note(note: Option<String>, message: Option<String>) -> Option<String> {
    match (note, message) {
        (Some(note), Some(message)) => Some(format!("{note}: {message}")),
        (note, message) => message.or(note),
    }
}

/// Completes `record` from a run's result: the outcome (`success`, or what the
/// failure's kind stands for, see [`outcome_of`]), the failure's message, and from the
/// task's value or failure detail the `exit_code`, `http_status` and the last
/// `output_cap` bytes of `output`.
pub fn finish_record(
    record: &mut RunRecord,
    result: &Result<Value, JobFailure>,
    output_cap: usize,
) {
    let detail = match result {
        Ok(value) => {
            record.outcome = RunOutcome::Success;
            Some(value)
        }
        Err(failure) => {
            record.outcome = outcome_of(&failure.kind);
            record.message = Some(failure.to_string());
            failure.detail.as_deref()
        }
    };
    let Some(detail) = detail else { return };
    record.exit_code = detail
        .get("exit_code")
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok());
    record.http_status = detail
        .get("http_status")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    if let Some(out) = detail.get("output").and_then(Value::as_str) {
        record.output = RunRecord::output_tail(out.as_bytes(), output_cap);
    }
}

/// The outcome a failure kind stands for: `timeout` and `interrupted` as named, kinds
/// meaning "could not run" (`spawn`, `unknown-task`, `executor`, `submit`, `refused`,
/// `worker`) as `error`, anything else (a task error, a panic, a non-zero exit) as
/// `failure`.
pub fn outcome_of(kind: &str) -> RunOutcome {
    match kind {
        "timeout" | "Timeout" => RunOutcome::Timeout,
        "interrupted" => RunOutcome::Interrupted,
        "spawn" | "unknown-task" | "executor" | "submit" | "refused" | "worker" => {
            RunOutcome::Error
        }
        _ => RunOutcome::Failure,
    }
}
