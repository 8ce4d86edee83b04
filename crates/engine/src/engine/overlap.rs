//! Overlap policies that act on the runs in flight.
//!
//! `cancel_other` and `terminate_other`: a fire time that finds runs of its job in flight
//! on this node asks them to stop (each run's [`CancelSignal`]), then starts once they
//! all ended. Cancellation is cooperative for library tasks (the task checks
//! `TaskContext::cancel`); a task that ignores it runs to its end, and the fire time
//! waits for it (logged). A daemon command gets SIGTERM, then SIGKILL after the grace
//! (`terminate_other`: SIGKILL at once). Runs on other nodes are not cancelled: the fire
//! time waits for them as `max_instances` across the cluster does (see `elsewhere`).
//!
//! `allow_all` lifts `max_instances` (see `plan_run`).

// tokio's Instant: the system monotonic clock, and a paused runtime's virtual one (the
// deterministic simulation, crates/sim).
use tokio::time::Instant;

use apscheduler_core::{CancelSignal, Overlap};

use super::pass::PassLookups;
use super::start::PlannedRun;
use super::unreleased::NotStartedReason;
use super::*;

/// How a cancelled run's message starts (the fire time and the policy follow).
pub(super) const CANCELLED_PREFIX: &str = "cancelled by the fire time of ";

/// Whether a run record's `message` says its run was cancelled by a newer fire time,
/// and under which policy (`cancel_other` or `terminate_other`).
pub fn cancelled_by(message: &str) -> Option<Overlap> {
    let rest = message.strip_prefix(CANCELLED_PREFIX)?;
    if rest.contains("(overlap = terminate_other)") {
        Some(Overlap::TerminateOther)
    } else if rest.contains("(overlap = cancel_other)") {
        Some(Overlap::CancelOther)
    } else {
        None
    }
}

/// How often a fire time waiting for cancelled runs looks whether the scheduler stopped.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// After this long, a fire time still waiting for cancelled runs says so in the log (a
/// task that ignores cancellation runs to its end).
const WAIT_WARNING: Duration = Duration::from_secs(30);

/// The cancellable runs in flight on this node, by job: the runs of jobs whose overlap
/// policy cancels, from submission to the executor's `finished`.
#[derive(Default)]
pub(super) struct Cancellable {
    runs: Mutex<HashMap<Arc<str>, Vec<CancelSignal>>>,
    ended: tokio::sync::Notify,
}

impl Cancellable {
    /// A run of `job_id` ended (or was not accepted): wakes the fire times waiting.
    pub(super) fn remove(&self, job_id: &str, signal: &CancelSignal) {
        {
            let mut runs = lock(&self.runs);
            if let Some(list) = runs.get_mut(job_id) {
                list.retain(|s| !s.same(signal));
                if list.is_empty() {
                    runs.remove(job_id);
                }
            }
        }
        self.ended.notify_waiters();
    }

    fn is_clear(&self, job_id: &str) -> bool {
        !lock(&self.runs).contains_key(job_id)
    }
}

/// A fire time that waited for cancelled runs when the scheduler stopped.
struct StoppedWhileWaiting;

impl NotStartedReason for StoppedWhileWaiting {
    fn message(&self) -> Option<String> {
        Some(
            "the scheduler shut down while the fire time waited for the runs it cancelled \
             (overlap = cancel_other / terminate_other) to end"
                .to_owned(),
        )
    }
}

impl Engine {
    /// The overlap gate of a run about to start. For a `cancel_other` / `terminate_other`
    /// job: with no run of the job in flight here, registers the run and returns it to
    /// start; otherwise asks those runs to stop, holds the run until they ended, and
    /// returns `None`. Other policies pass the run through.
    pub(super) fn overlap_gate(&self, alias: &Arc<str>, planned: PlannedRun) -> Option<PlannedRun> {
        let terminate = match planned.overlap {
            Overlap::CancelOther => false,
            Overlap::TerminateOther => true,
            _ => return Some(planned),
        };
        let run = &planned.run;
        let others = {
            let mut runs = lock(&self.inner.cancellable.runs);
            let list = runs.entry(run.job_id.clone()).or_default();
            if list.is_empty() {
                list.push(run.cancel.clone());
                return Some(planned);
            }
            list.clone()
        };
        let at = apscheduler_core::time::to_rfc3339(&run.run_times[0]);
        let reason = format!("{CANCELLED_PREFIX}{at} (overlap = {})", planned.overlap);
        for signal in &others {
            signal.cancel(reason.clone(), terminate);
        }
        if terminate {
            // Only a command (the daemon's) can be killed; a task on a thread cannot.
            tracing::info!(target: "apscheduler", job_id = %run.job_id, "terminate_other: a command's process group is killed at once; a library task is asked to stop, as under cancel_other");
        }
        tracing::info!(target: "apscheduler", job_id = %run.job_id, "Job \"{}\": asked {} run(s) in flight to stop (overlap = {}); the fire time of {at} starts once they ended", planned.name, others.len(), planned.overlap);
        let engine = self.clone();
        let alias = alias.clone();
        tokio::spawn(async move { engine.start_after_cancelled(alias, planned).await });
        None
    }

    /// Records a held fire time the shutdown came before, unless the shutdown's
    /// history flush recorded it already (it ends the `running` records it holds).
    fn stopped_while_waiting(&self, alias: &Arc<str>, planned: PlannedRun) {
        let recorded = match (&self.inner.history, planned.run.run_ids.first()) {
            (Some(recorder), Some(id)) => !recorder.holds(id),
            _ => false,
        };
        if !recorded {
            self.not_started(alias, planned, &StoppedWhileWaiting);
        }
    }

    /// Waits until no cancellable run of the job is in flight here, then starts
    /// `planned` (through the gate again: a fire time that came meanwhile is cancelled
    /// in turn).
    async fn start_after_cancelled(&self, alias: Arc<str>, planned: PlannedRun) {
        let cancellable = &self.inner.cancellable;
        let job_id = planned.run.job_id.clone();
        let since = Instant::now();
        let mut warned = false;
        loop {
            let ended = cancellable.ended.notified();
            tokio::pin!(ended);
            // Registered before the check: an end between the check and the wait wakes it.
            ended.as_mut().enable();
            if cancellable.is_clear(&job_id) {
                break;
            }
            if self.state() == SchedulerState::Stopped {
                self.stopped_while_waiting(&alias, planned);
                return;
            }
            if !warned && since.elapsed() >= WAIT_WARNING {
                warned = true;
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job_id, "Job \"{}\": a cancelled run is still running after {}s (a task that ignores cancellation runs to its end); its next fire time waits for it", planned.name, WAIT_WARNING.as_secs());
            }
            let _ = tokio::time::timeout(STOP_CHECK, ended).await;
        }
        // Under the jobs lock, as a pass starts its runs (a shutdown takes it too).
        let _guard = self.inner.jobs_lock.lock().await;
        if self.state() == SchedulerState::Stopped {
            self.stopped_while_waiting(&alias, planned);
            return;
        }
        // A deferred submission starts at its executor's flush (this run's executor was
        // looked up by its pass, not by these lookups).
        let executor = planned.executor.clone();
        self.start_run(&alias, planned, &mut PassLookups::default(), &[]);
        executor.flush();
    }
}

/// The `max_instances` a run of `job` is held to: none under `allow_all`.
pub(super) fn max_instances(job: &Job) -> u32 {
    match job.policy.overlap {
        Overlap::AllowAll => u32::MAX,
        _ => job.max_instances,
    }
}

/// A run's cancellation signal: live for jobs whose overlap policy cancels runs, inert
/// (no allocation) otherwise.
pub(super) fn signal_for(job: &Job) -> CancelSignal {
    match job.policy.overlap {
        Overlap::CancelOther | Overlap::TerminateOther => CancelSignal::new(),
        _ => CancelSignal::default(),
    }
}

/// The outcome of a run, saying in its failure that it was cancelled and by which fire
/// time (what its history record and error event carry). A cancelled run that ended
/// well anyway (it finished before it looked) keeps its success.
pub(super) fn note_cancel(
    run: &JobRun,
    result: Result<Value, JobFailure>,
) -> Result<Value, JobFailure> {
    let Some(request) = run.cancel.request() else {
        return result;
    };
    match result {
        Ok(value) => {
            tracing::info!(target: "apscheduler", job_id = %run.job_id, "a run asked to stop ended well anyway ({})", request.reason);
            Ok(value)
        }
        Err(mut failure) => {
            failure.message = format!("{}: {}", request.reason, failure.message);
            Err(failure)
        }
    }
}
