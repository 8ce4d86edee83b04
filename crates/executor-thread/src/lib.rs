//! # apscheduler-executor-thread
//!
//! [`ThreadPoolExecutor`], APScheduler's default executor: a fixed pool of OS worker
//! threads (`aps-worker-0`, `aps-worker-1`, ...) fed through one queue. It implements
//! [`apscheduler_core::Executor`]:
//!
//! - `submit` enforces `max_instances` per job id, reports
//!   [`RunReporter::submitted`], then queues the run; it never blocks on running jobs.
//! - A worker runs each run time of a [`JobRun`] in order through core's one task
//!   runner, [`run_sync_task`], and reports each through
//!   [`report_each_run_time`]: a task error
//!   becomes an `Err` [`JobFailure`] (kind `error`, or the kind of a
//!   [`TaskFailure`](apscheduler_core::TaskFailure), with the message and `source()`
//!   chain), a panic an `Err` of kind `panic` with the panic message, and the worker
//!   keeps going. An async task gets an `Err` outcome of kind `refused` (use an
//!   async executor).
//! - A submission wakes a sleeping worker only when no other worker is already being
//!   woken; a worker that takes a run and sees more queued wakes the next. A burst of
//!   10,000 due jobs thus costs the scheduler thread a handful of wake-ups, not one per
//!   run, and one job at a time still starts at once.
//! - `shutdown(true)` stops accepting, lets queued and running jobs finish and joins
//!   the workers. `shutdown(false)` stops accepting, reports every queued run that has
//!   not started as cancelled (one `Err` outcome of kind `cancelled` per run time, then
//!   `finished`), and returns at once; jobs already running finish in the background.
//!
//! Logging goes through [`tracing`] with target `apscheduler` at debug level (job start,
//! success and failure).
//!
//! ## Usage
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! use apscheduler_core::chrono::TimeZone;
//! use apscheduler_core::chrono_tz::Tz;
//! use apscheduler_core::serde_json::{json, Value};
//! use apscheduler_core::{
//!     no_kwargs, Executor, JobFailure, JobRun, RunReporter, TaskFn,
//! };
//! use apscheduler_executor_thread::ThreadPoolExecutor;
//!
//! /// Counts what the executor reports.
//! #[derive(Default)]
//! struct Counter {
//!     ok: AtomicUsize,
//!     failed: AtomicUsize,
//!     finished: AtomicUsize,
//! }
//!
//! impl RunReporter for Counter {
//!     fn submitted(&self, _run: &JobRun) {}
//!     fn outcome(
//!         &self,
//!         _run: &JobRun,
//!         _run_time: apscheduler_core::chrono::DateTime<Tz>,
//!         result: Result<Value, JobFailure>,
//!     ) {
//!         match result {
//!             Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
//!             Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
//!         };
//!     }
//!     fn finished(&self, _run: &JobRun) {
//!         self.finished.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let counter = Arc::new(Counter::default());
//! let executor = ThreadPoolExecutor::new(4);
//! executor.start(counter.clone()).unwrap();
//!
//! // Doubles its first argument; fails on anything that is not a number.
//! let double = TaskFn::from_fn(|ctx| {
//!     let n = ctx.arg(0).and_then(Value::as_i64).ok_or("not a number")?;
//!     Ok(json!(n * 2))
//! });
//! let at = Tz::UTC.with_ymd_and_hms(2024, 1, 1, 9, 0, 0).unwrap();
//! for (i, arg) in [json!(1), json!(2), json!("x")].into_iter().enumerate() {
//!     executor
//!         .submit(JobRun {
//!             job_id: format!("job-{i}").into(),
//!             jobstore: "default".into(),
//!             task_name: None,
//!             task: double.clone(),
//!             args: Arc::new(vec![arg]),
//!             kwargs: no_kwargs(),
//!             run_times: vec![at],
//!             max_instances: 1,
//!             run_ids: Vec::new(),
//!             fences: Vec::new(),
//!             attempt: 1,
//!             cancel: Default::default(),
//!             policy: apscheduler_core::default_policy(),
//!         })
//!         .unwrap();
//! }
//!
//! executor.shutdown(true); // waits for the three runs
//! assert_eq!(counter.ok.load(Ordering::Relaxed), 2);
//! assert_eq!(counter.failed.load(Ordering::Relaxed), 1);
//! assert_eq!(counter.finished.load(Ordering::Relaxed), 3);
//! ```
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod config;
pub use config::{register, ThreadPoolConfig};

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use apscheduler_core::{
    admit, finish_run, report_each_run_time, report_failed, run_sync_task, DeferredRun, Error,
    ErrorKind, Executor, InstanceTracker, JobFailure, JobRun, RunReporter, SubmitError,
};

/// The number of worker threads of [`ThreadPoolExecutor::default`] (APScheduler's
/// default `max_workers`).
pub const DEFAULT_MAX_WORKERS: usize = 10;

/// The `tracing` target of this crate's log records.
const LOG_TARGET: &str = "apscheduler";

/// The [`JobFailure::kind`] reported for queued runs dropped by `shutdown(false)`.
pub const CANCELLED_KIND: &str = "cancelled";

/// Runs jobs on a fixed pool of OS threads (APScheduler's `ThreadPoolExecutor`).
///
/// Created stopped; [`Executor::start`] spawns `max_workers` threads named
/// `aps-worker-N`. After [`Executor::shutdown`] it can be started again with a fresh
/// pool. Dropping a running executor without shutting it down stops accepting work;
/// the workers finish the queued runs in the background and exit.
///
/// See the [crate documentation](crate) for the exact behavior and an example.
pub struct ThreadPoolExecutor {
    max_workers: usize,
    /// Whether `take_deferred` hands runs out (see [`ThreadPoolExecutor::lend_runs`]).
    lends: bool,
    tracker: Arc<InstanceTracker>,
    state: Mutex<State>,
}

struct State {
    phase: Phase,
    /// Workers of pools shut down without waiting, joined by a later `shutdown(true)`.
    detached: Vec<JoinHandle<()>>,
}

enum Phase {
    /// Never started.
    Idle,
    /// Accepting submissions.
    Running {
        submitter: Submitter,
        pool: Arc<Pool>,
        workers: Vec<JoinHandle<()>>,
    },
    /// Shut down.
    Stopped,
}

/// What the workers of one started pool share.
struct Pool {
    queue: Queue,
    reporter: Arc<dyn RunReporter>,
    tracker: Arc<InstanceTracker>,
    /// Set by `shutdown(false)`: queued runs are reported cancelled instead of run.
    cancelled: AtomicBool,
    /// Runs handed out by `take_deferred` that have not finished: `shutdown(true)`
    /// waits for them as for the workers.
    taken: Mutex<usize>,
    taken_done: Condvar,
}

thread_local! {
    /// Whether this thread is running a run handed out by `take_deferred` (so a
    /// `shutdown(true)` from inside that job does not wait for itself).
    static RUNNING_TAKEN: Cell<bool> = const { Cell::new(false) };
}

impl ThreadPoolExecutor {
    /// An executor with `max_workers` worker threads (`0` is treated as `1`).
    pub fn new(max_workers: usize) -> Self {
        ThreadPoolExecutor {
            max_workers: max_workers.max(1),
            lends: true,
            tracker: Arc::new(InstanceTracker::new()),
            state: Mutex::new(State {
                phase: Phase::Idle,
                detached: Vec::new(),
            }),
        }
    }

    /// Whether the scheduler's loop thread may run this pool's jobs itself (default
    /// `true`): on Linux, the thread that wakes for a due run runs it instead of waking
    /// a worker (one wake-up a run instead of two), while a second loop thread keeps
    /// the schedule. `false` runs every job on the `aps-worker-N` threads, for jobs
    /// that rely on the thread they run on.
    #[must_use]
    pub fn lend_runs(mut self, lend: bool) -> Self {
        self.lends = lend;
        self
    }

    /// The number of worker threads.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Whether the executor is started and accepting submissions.
    pub fn is_running(&self) -> bool {
        matches!(self.lock().phase, Phase::Running { .. })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.lock().phase {
            Phase::Running { .. } => "running",
            Phase::Idle => "idle",
            Phase::Stopped => "stopped",
        };
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.max_workers)
            .field("state", &state)
            .field("instances", &self.tracker.total())
            .finish()
    }
}

impl Default for ThreadPoolExecutor {
    /// An executor with [`DEFAULT_MAX_WORKERS`] (10) worker threads.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_WORKERS)
    }
}

impl ThreadPoolExecutor {
    /// Queues a run after the `max_instances` check; wakes a worker now (`wake`) or
    /// leaves that to [`Executor::flush`].
    fn enqueue(&self, run: JobRun, wake: bool) -> Result<(), SubmitError> {
        // Hold the state lock only to take the pool; no user code runs under it.
        let pool = match &self.lock().phase {
            Phase::Running { pool, .. } => pool.clone(),
            Phase::Idle | Phase::Stopped => return Err(SubmitError::NotRunning),
        };
        admit(&pool.tracker, &*pool.reporter, &run)?;
        if let Err(run) = pool.queue.push(run, wake) {
            // Closed by a concurrent shutdown: never lose an accepted submission silently.
            pool.cancel(run);
        }
        Ok(())
    }
}

impl Executor for ThreadPoolExecutor {
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error> {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Running { .. }) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "thread pool executor is already running",
            ));
        }
        let pool = Arc::new(Pool {
            queue: Queue::default(),
            reporter,
            tracker: self.tracker.clone(),
            cancelled: AtomicBool::new(false),
            taken: Mutex::new(0),
            taken_done: Condvar::new(),
        });
        let submitter = Submitter(pool.clone());
        let mut workers = Vec::with_capacity(self.max_workers);
        for i in 0..self.max_workers {
            let worker_pool = pool.clone();
            let spawned = thread::Builder::new()
                .name(format!("aps-worker-{i}"))
                .spawn(move || worker_pool.work());
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    // Close the queue so the threads already started exit.
                    drop(submitter);
                    for handle in workers {
                        let _ = handle.join();
                    }
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("could not start worker thread aps-worker-{i}"),
                    )
                    .with_source(e));
                }
            }
        }
        tracing::debug!(
            target: LOG_TARGET,
            max_workers = self.max_workers,
            "thread pool executor started"
        );
        state.phase = Phase::Running {
            submitter,
            pool,
            workers,
        };
        Ok(())
    }

    fn submit(&self, run: JobRun) -> Result<(), SubmitError> {
        self.enqueue(run, true)
    }

    fn submit_deferred(&self, run: JobRun) -> Result<(), SubmitError> {
        self.enqueue(run, false)
    }

    fn flush(&self) {
        let pool = match &self.lock().phase {
            Phase::Running { pool, .. } => pool.clone(),
            Phase::Idle | Phase::Stopped => return,
        };
        pool.queue.wake();
    }

    /// Hands out the run queued last, if any (the newest pass's): the caller runs it
    /// on its own thread, and `shutdown(true)` waits for it as for a worker's.
    fn take_deferred(&self) -> Option<DeferredRun> {
        if !self.lends {
            return None;
        }
        let pool = match &self.lock().phase {
            Phase::Running { pool, .. } => pool.clone(),
            Phase::Idle | Phase::Stopped => return None,
        };
        let run = pool.queue.take_last()?;
        *pool.lock_taken() += 1;
        Some(DeferredRun::new(move |here| {
            if here {
                pool.run_taken(run);
            } else {
                pool.end_taken();
                if let Err(run) = pool.queue.push(run, true) {
                    pool.cancel(run);
                }
            }
        }))
    }

    fn shutdown(&self, wait: bool) {
        let mut to_join = Vec::new();
        let mut to_drain = None;
        let mut to_await = None;
        {
            let mut state = self.lock();
            if let Phase::Running {
                submitter,
                pool,
                workers,
            } = mem::replace(&mut state.phase, Phase::Stopped)
            {
                // Closing the queue lets the workers exit once it is empty.
                drop(submitter);
                if wait {
                    to_join = workers;
                    to_await = Some(pool);
                } else {
                    pool.cancelled.store(true, Ordering::SeqCst);
                    state.detached.retain(|h| !h.is_finished());
                    state.detached.extend(workers);
                    to_drain = Some(pool);
                }
            }
            if wait {
                to_join.append(&mut state.detached);
            }
        }
        tracing::debug!(target: LOG_TARGET, wait, "thread pool executor shutting down");
        if let Some(pool) = to_drain {
            for run in pool.queue.drain() {
                pool.cancel(run);
            }
        }
        let me = thread::current().id();
        for handle in to_join {
            if handle.thread().id() == me {
                // shutdown(true) from inside a job: this thread exits once the job
                // returns; joining it here would deadlock.
                continue;
            }
            let _ = handle.join();
        }
        if let Some(pool) = to_await {
            pool.await_taken();
        }
    }

    fn instances(&self, job_id: &str) -> usize {
        self.tracker.count(job_id)
    }

    fn kind(&self) -> &'static str {
        "threadpool"
    }
}

/// Closes the pool's queue when dropped (by `shutdown`, or with the executor): the
/// workers then finish what is queued and exit.
struct Submitter(Arc<Pool>);

impl Drop for Submitter {
    fn drop(&mut self) {
        self.0.queue.close();
    }
}

/// The runs waiting for a worker.
///
/// Waking a sleeping thread costs several microseconds on both sides, so wake-ups are
/// rationed: a push wakes a sleeper only if none is already being woken (`waking`),
/// and a worker that takes a run while more are queued wakes the next one. Every
/// queued run still has a worker on its way as long as any sleeps.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    runs: VecDeque<JobRun>,
    /// Workers blocked on `ready`.
    sleeping: usize,
    /// Of those, how many were notified and have not woken yet.
    waking: usize,
    /// No more pushes; workers exit once `runs` is empty.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a run (waking a worker if `wake`); gives it back if the queue is closed.
    // The run comes back by value only when the queue is closed; boxing it would cost an
    // allocation on every submission.
    #[allow(clippy::result_large_err)]
    fn push(&self, run: JobRun, wake: bool) -> Result<(), JobRun> {
        let mut state = self.lock();
        if state.closed {
            return Err(run);
        }
        state.runs.push_back(run);
        let wake = wake && Self::claim_wake(&mut state);
        drop(state);
        self.notify(wake);
        Ok(())
    }

    /// Wakes a worker for the queued runs, unless one is on its way.
    fn wake(&self) {
        let wake = Self::claim_wake(&mut self.lock());
        self.notify(wake);
    }

    /// Whether to notify a sleeping worker (runs wait and no worker is on its way);
    /// counts the notification. The caller notifies after unlocking, so the woken
    /// worker does not block at once on the lock its waker still holds.
    fn claim_wake(state: &mut QueueState) -> bool {
        let wake = state.waking == 0 && state.sleeping > 0 && !state.runs.is_empty();
        if wake {
            state.waking += 1;
        }
        wake
    }

    fn notify(&self, wake: bool) {
        if wake {
            self.ready.notify_one();
        }
    }

    /// The next run, waiting for one; `None` once the queue is closed and empty.
    fn pop(&self) -> Option<JobRun> {
        let mut state = self.lock();
        loop {
            if let Some(run) = state.runs.pop_front() {
                // More left: hand the wake-up on to the next sleeper.
                let wake = Self::claim_wake(&mut state);
                drop(state);
                self.notify(wake);
                return Some(run);
            }
            if state.closed {
                return None;
            }
            state.sleeping += 1;
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.sleeping -= 1;
            // A spurious wake-up may take the count of a notified worker still
            // asleep: then at worst one extra notification follows, never a missed one.
            state.waking = state.waking.saturating_sub(1);
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Takes the run queued last.
    fn take_last(&self) -> Option<JobRun> {
        self.lock().runs.pop_back()
    }

    /// Takes every queued run.
    fn drain(&self) -> VecDeque<JobRun> {
        mem::take(&mut self.lock().runs)
    }
}

impl Pool {
    /// A worker's loop: runs queued submissions until the queue is closed and empty.
    fn work(&self) {
        while let Some(run) = self.queue.pop() {
            self.start(run);
        }
    }

    /// Runs a run that has not started, or reports it cancelled after `shutdown(false)`.
    fn start(&self, run: JobRun) {
        if self.cancelled.load(Ordering::SeqCst) {
            self.cancel(run);
        } else {
            self.execute(run);
        }
    }

    /// Runs every run time of `run`, reporting each outcome, then releases the slot
    /// and reports `finished`.
    fn execute(&self, run: JobRun) {
        report_each_run_time(&*self.reporter, &run, |run_time| {
            run_sync_task(&run.task, &run.context(run_time))
        });
        finish_run(&*self.reporter, &run, &self.tracker);
    }

    fn lock_taken(&self) -> MutexGuard<'_, usize> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a run handed out by `take_deferred` on this thread, as a worker would.
    fn run_taken(&self, run: JobRun) {
        /// Ends the run's count even if a reporter panics through it.
        struct Taken<'a>(&'a Pool);
        impl Drop for Taken<'_> {
            fn drop(&mut self) {
                RUNNING_TAKEN.with(|t| t.set(false));
                self.0.end_taken();
            }
        }
        let _taken = Taken(self);
        RUNNING_TAKEN.with(|t| t.set(true));
        self.start(run);
    }

    fn end_taken(&self) {
        let mut taken = self.lock_taken();
        *taken = taken.saturating_sub(1);
        drop(taken);
        self.taken_done.notify_all();
    }

    /// Waits until every handed-out run has finished, except one this thread runs.
    fn await_taken(&self) {
        let mine = usize::from(RUNNING_TAKEN.with(Cell::get));
        let mut taken = self.lock_taken();
        while *taken > mine {
            taken = self
                .taken_done
                .wait(taken)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Reports a run that will not start: one `cancelled` outcome per run time, then
    /// `finished`.
    fn cancel(&self, run: JobRun) {
        tracing::debug!(target: LOG_TARGET, job_id = %run.job_id, "job cancelled by shutdown");
        let failure = JobFailure::new(
            CANCELLED_KIND,
            "the executor was shut down before the job started",
        );
        report_failed(&*self.reporter, &run, &failure);
        finish_run(&*self.reporter, &run, &self.tracker);
    }
}
