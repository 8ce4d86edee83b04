//! The executor interface: what runs jobs, and how outcomes come back.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::event::JobFailure;
use crate::task::TaskFn;
use crate::Error;

/// One submission of a job to an executor: the task and its arguments, and the run
/// times to run (several when overdue runs are not coalesced).
#[derive(Clone)]
pub struct JobRun {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The alias of the store the job lives in.
    pub jobstore: Arc<str>,
    /// The registered task name (`None` for a closure).
    pub task_name: Option<Arc<str>>,
    /// The task, resolved for in-process executors.
    pub task: TaskFn,
    /// Positional arguments.
    pub args: Arc<Vec<Value>>,
    /// Keyword arguments.
    pub kwargs: Arc<Map<String, Value>>,
    /// The scheduled run times, oldest first; each is run in turn.
    pub run_times: Vec<DateTime<Tz>>,
    /// How many submissions of this job may be in flight at once.
    pub max_instances: u32,
    /// The run history's id of each run time (same order), when the scheduler records
    /// history; empty otherwise.
    pub run_ids: Vec<Arc<str>>,
    /// The fence of each run time's run (same order), when the scheduler keeps leased
    /// runs ([`RunStore`](crate::RunStore)); empty otherwise. The task receives it as
    /// [`TaskContext::fence`](crate::TaskContext::fence).
    pub fences: Vec<u64>,
    /// Which attempt at its fire time this run is: 1 for a fire time's first run, 2 and
    /// up for the retries the job's policy asks for (a retry has one run time).
    pub attempt: u32,
    /// The run's cancellation signal (inert unless the job's overlap policy cancels
    /// runs); every run time's task sees it.
    pub cancel: crate::CancelSignal,
    /// The job's run policy, as it was when the run was planned (what its outcome
    /// means for the job's failure streak, and its retries).
    pub policy: Arc<crate::RunPolicy>,
}

impl fmt::Debug for JobRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobRun")
            .field("job_id", &self.job_id)
            .field("jobstore", &self.jobstore)
            .field("task_name", &self.task_name)
            .field("run_times", &self.run_times)
            .field("max_instances", &self.max_instances)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Receives what happens to submitted runs; the scheduler turns it into events.
///
/// # Behavior
/// For each accepted submission an executor calls `submitted` exactly once, before the
/// task can start; then `outcome` once per run time, in order; then `finished` once,
/// after the submission's instance is released.
pub trait RunReporter: Send + Sync {
    /// The submission was accepted.
    fn submitted(&self, run: &JobRun);
    /// One run time finished with the task's return value or failure.
    fn outcome(&self, run: &JobRun, run_time: DateTime<Tz>, result: Result<Value, JobFailure>);
    /// The whole submission is done.
    fn finished(&self, run: &JobRun);
}

/// Why a submission was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum SubmitError {
    /// `max_instances` submissions of this job are already in flight.
    MaxInstances,
    /// The executor is shut down or was never started.
    NotRunning,
    /// The executor cannot run this job (a closure sent to a worker process, ...).
    Refused(Error),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::MaxInstances => f.write_str("maximum number of running instances reached"),
            SubmitError::NotRunning => f.write_str("executor is not running"),
            SubmitError::Refused(e) => write!(f, "refused: {e}"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// A run handed out by [`Executor::take_deferred`]: [`run`](Self::run) runs it on the
/// calling thread exactly as a worker would (outcomes, `finished`, the `max_instances`
/// slot); dropped without running, it goes back to the executor's workers, so it is
/// never lost.
pub struct DeferredRun(Option<Box<dyn FnOnce(bool) + Send>>);

impl DeferredRun {
    /// Wraps `handle`, which is called once: with `true` to run the run on the calling
    /// thread, with `false` to give it back to the executor.
    pub fn new(handle: impl FnOnce(bool) + Send + 'static) -> Self {
        DeferredRun(Some(Box::new(handle)))
    }

    /// Runs it on this thread, returning once it has finished.
    pub fn run(mut self) {
        if let Some(handle) = self.0.take() {
            handle(true);
        }
    }
}

impl Drop for DeferredRun {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle(false);
        }
    }
}

impl fmt::Debug for DeferredRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredRun").finish_non_exhaustive()
    }
}

/// Runs jobs.
///
/// # Behavior
/// - `submit` enforces `max_instances` per job id: a submission that would exceed it is
///   refused with [`SubmitError::MaxInstances`] and nothing runs.
/// - Each run time of an accepted submission runs in turn; a task error or panic becomes
///   an `Err` outcome, and the executor keeps working.
/// - `shutdown(true)` waits for running jobs; `shutdown(false)` returns at once.
pub trait Executor: Send + Sync + fmt::Debug {
    /// Starts workers; outcomes go to `reporter`.
    ///
    /// # Errors
    /// Workers could not be started.
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error>;

    /// Submits a run (see the trait's `# Behavior`).
    ///
    /// # Errors
    /// [`SubmitError`].
    fn submit(&self, run: JobRun) -> Result<(), SubmitError>;

    /// Submits a run like [`Executor::submit`], but its start may wait until the next
    /// [`Executor::flush`]. The scheduler submits a pass's runs this way and flushes
    /// once the pass has stored its results, so waking workers neither interrupts
    /// the pass nor costs one wake-up per run. The default submits at once.
    ///
    /// # Errors
    /// [`SubmitError`].
    fn submit_deferred(&self, run: JobRun) -> Result<(), SubmitError> {
        self.submit(run)
    }

    /// Starts the runs given to [`Executor::submit_deferred`] that have not started.
    fn flush(&self) {}

    /// Takes one run given to [`Executor::submit_deferred`] that has not started, for
    /// the caller to run on its own thread ([`DeferredRun::run`]) instead of waking a
    /// worker: the scheduler's loop thread, already awake for the due time, runs it
    /// while a second loop thread keeps the schedule. `None` (the default) when the
    /// executor has no such run or cannot hand one out.
    fn take_deferred(&self) -> Option<DeferredRun> {
        None
    }

    /// Stops the executor, waiting for running jobs when `wait` is true.
    fn shutdown(&self, wait: bool);

    /// Whether tasks run inside this process (so closures are allowed).
    fn runs_in_process(&self) -> bool {
        true
    }

    /// How many submissions of `job_id` are in flight.
    fn instances(&self, job_id: &str) -> usize;

    /// A short kind name (`threadpool`, `processpool`, `async`, `inline`).
    fn kind(&self) -> &'static str;
}

/// Counts in-flight submissions per job, for executors to enforce `max_instances`.
#[derive(Debug, Default)]
pub struct InstanceTracker {
    counts: Mutex<HashMap<Arc<str>, usize, foldhash::fast::RandomState>>,
}

impl InstanceTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes an instance slot for `job_id` unless `max` are taken.
    pub fn try_acquire(&self, job_id: &Arc<str>, max: u32) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(job_id.clone()).or_insert(0);
        if *n >= max.max(1) as usize {
            if *n == 0 {
                counts.remove(job_id);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Gives a slot back.
    pub fn release(&self, job_id: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(job_id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(job_id);
            }
        }
    }

    /// Slots taken for `job_id`.
    pub fn count(&self, job_id: &str) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
            .copied()
            .unwrap_or(0)
    }

    /// Slots taken in total.
    pub fn total(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}
