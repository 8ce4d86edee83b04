//! The pool side: [`ProcessPoolExecutor`] here, its driver threads and their workers in
//! `driver.rs`, the failures of runs it could not complete in `failure.rs`.

use std::cell::Cell;
use std::env;
use std::fmt;
use std::mem;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use apscheduler_core::{
    admit, Error, ErrorKind, Executor, InstanceTracker, JobRun, RunReporter, SubmitError,
};

use crate::worker::WORKER_ENV;

mod driver;
mod failure;

use driver::Pool;

/// The `max_workers` of [`ProcessPoolExecutor::default`]: APScheduler's
/// `ProcessPoolExecutor(max_workers=10)`. Workers are started only as jobs need them.
pub const DEFAULT_MAX_WORKERS: usize = 10;

/// How long a new worker may take to greet the pool, by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a worker whose stdin was closed (or whose pipe broke) may take to exit
/// before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long a killing `shutdown(false)` waits for the killed workers to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The `tracing` target of this crate's log records.
const LOG_TARGET: &str = "apscheduler";

/// What the program must do for the pool to work; appended to start errors.
const HOOK_HINT: &str =
    "the program must call apscheduler_executor_process::worker_main(&registry) \
     (or run_worker_if_requested) at the top of main, before anything writes to stdout";

thread_local! {
    /// Set on the pool's driver threads (where reporter callbacks run).
    static IN_DRIVER: Cell<bool> = const { Cell::new(false) };
}

/// Runs named tasks in worker processes (APScheduler's `ProcessPoolExecutor`).
///
/// Workers are copies of the running program (`std::env::current_exe()`, or
/// [`with_program`](Self::with_program)) started in worker mode; see the
/// [crate documentation](crate) for the line `main` needs, the protocol and the fault
/// handling. Created stopped; [`Executor::start`] starts no process yet: each of up to
/// `max_workers` workers is started when a job needs it and then reused.
///
/// Dropping a running executor without shutting it down stops accepting work; the
/// queued runs still run and the workers then exit.
pub struct ProcessPoolExecutor {
    config: Config,
    tracker: Arc<InstanceTracker>,
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
struct Config {
    max_workers: usize,
    timeout: Option<Duration>,
    start_timeout: Duration,
    kill_on_shutdown: bool,
    program: Option<PathBuf>,
}

struct State {
    phase: Phase,
    /// Pools shut down without waiting, joined by a later `shutdown(true)`.
    detached: Vec<Arc<Pool>>,
}

enum Phase {
    Idle,
    Running(Arc<Pool>),
    Stopped,
}

impl Phase {
    /// As `Debug` shows it.
    fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running(_) => "running",
            Phase::Stopped => "stopped",
        }
    }
}

impl ProcessPoolExecutor {
    /// A pool of at most `max_workers` worker processes (`0` is treated as `1`), no
    /// timeout, and a `shutdown(false)` that lets running jobs finish.
    pub fn new(max_workers: usize) -> Self {
        ProcessPoolExecutor {
            config: Config {
                max_workers: max_workers.max(1),
                timeout: None,
                start_timeout: DEFAULT_START_TIMEOUT,
                kill_on_shutdown: false,
                program: None,
            },
            tracker: Arc::new(InstanceTracker::new()),
            state: Mutex::new(State {
                phase: Phase::Idle,
                detached: Vec::new(),
            }),
        }
    }

    /// Limits every run (each run time of a submission) to `timeout`, counted from
    /// when the run is handed to its worker: past it the worker is killed (`SIGKILL`),
    /// the run gets an `Err` outcome of kind [`TIMEOUT_KIND`], and a fresh worker takes
    /// the next job. Not in APScheduler.
    ///
    /// [`TIMEOUT_KIND`]: crate::TIMEOUT_KIND
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// Makes `shutdown(false)` kill the running workers instead of letting their jobs
    /// finish: their runs get an `Err` outcome of kind [`CANCELLED_KIND`], and
    /// `shutdown(false)` returns once the killed workers are reaped (a few
    /// milliseconds), so no worker process outlives it. Off by default, as in
    /// APScheduler (and as the executor contract's conformance suite expects).
    ///
    /// [`CANCELLED_KIND`]: crate::CANCELLED_KIND
    pub fn with_kill_on_shutdown(mut self, kill: bool) -> Self {
        self.config.kill_on_shutdown = kill;
        self
    }

    /// How long a new worker may take to start and greet the pool before it is killed
    /// and the run fails with kind [`WORKER_START_KIND`] (default
    /// [`DEFAULT_START_TIMEOUT`]).
    ///
    /// [`WORKER_START_KIND`]: crate::WORKER_START_KIND
    pub fn with_start_timeout(mut self, timeout: Duration) -> Self {
        self.config.start_timeout = timeout;
        self
    }

    /// Starts workers from `program` instead of `std::env::current_exe()`; it must
    /// call the worker hook with the same named tasks.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.config.program = Some(program.into());
        self
    }

    /// The maximum number of worker processes.
    pub fn max_workers(&self) -> usize {
        self.config.max_workers
    }

    /// The per-run timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.config.timeout
    }

    /// Whether the executor is started and accepting submissions.
    pub fn is_running(&self) -> bool {
        matches!(self.lock().phase, Phase::Running(_))
    }

    /// The process ids of the worker processes alive now (including those of a pool
    /// shut down without waiting whose jobs still run).
    pub fn worker_pids(&self) -> Vec<u32> {
        let state = self.lock();
        let mut pids = Vec::new();
        if let Phase::Running(pool) = &state.phase {
            pool.collect_pids(&mut pids);
        }
        for pool in &state.detached {
            pool.collect_pids(&mut pids);
        }
        pids
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ProcessPoolExecutor {
    /// A pool of [`DEFAULT_MAX_WORKERS`] (10) workers.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_WORKERS)
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock().phase.name();
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.config.max_workers)
            .field("timeout", &self.config.timeout)
            .field("kill_on_shutdown", &self.config.kill_on_shutdown)
            .field("state", &state)
            .field("instances", &self.tracker.total())
            .finish()
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Phase::Running(pool) = mem::replace(&mut state.phase, Phase::Stopped) {
            // The drivers run what is queued, then stop their workers and exit.
            let _ = pool.close(false);
        }
    }
}

impl Executor for ProcessPoolExecutor {
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error> {
        if env::var_os(WORKER_ENV).is_some() {
            // A worker whose `main` skipped the hook would otherwise start workers of
            // its own, and so on.
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "this process was started as a process-pool worker but became a \
                     scheduler: {HOOK_HINT}"
                ),
            ));
        }
        if self.config.program.is_none() {
            env::current_exe().map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    "cannot find the running program to start worker processes from",
                )
                .with_source(e)
            })?;
        }
        let mut state = self.lock();
        if matches!(state.phase, Phase::Running(_)) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "process pool executor is already running",
            ));
        }
        state.phase = Phase::Running(Arc::new(Pool::new(
            self.config.clone(),
            reporter,
            self.tracker.clone(),
        )));
        tracing::debug!(
            target: LOG_TARGET,
            max_workers = self.config.max_workers,
            "process pool executor started"
        );
        Ok(())
    }

    fn submit(&self, run: JobRun) -> Result<(), SubmitError> {
        let pool = match &self.lock().phase {
            Phase::Running(pool) => pool.clone(),
            Phase::Idle | Phase::Stopped => return Err(SubmitError::NotRunning),
        };
        if run.task_name.is_none() {
            return Err(SubmitError::Refused(Error::new(
                ErrorKind::Serialization,
                format!(
                    "job '{}' runs a closure, which a process pool cannot send to a worker \
                     process: register the task by name instead",
                    run.job_id
                ),
            )));
        }
        admit(&pool.tracker, &*pool.reporter, &run)?;
        if let Err(run) = Pool::enqueue(&pool, run) {
            // Shut down meanwhile: never lose an accepted submission silently.
            pool.cancel(run);
        }
        Ok(())
    }

    fn shutdown(&self, wait: bool) {
        let mut to_join = Vec::new();
        let (pool, kill) = {
            let mut state = self.lock();
            let pool = match mem::replace(&mut state.phase, Phase::Stopped) {
                Phase::Running(pool) => Some(pool),
                Phase::Idle | Phase::Stopped => None,
            };
            if let Some(pool) = &pool {
                if !wait {
                    state.detached.retain(|p| !p.all_exited());
                    state.detached.push(pool.clone());
                }
            }
            if wait {
                to_join.append(&mut state.detached);
            }
            (pool, !wait && self.config.kill_on_shutdown)
        };
        tracing::debug!(target: LOG_TARGET, wait, kill, "process pool executor shutting down");
        if let Some(pool) = &pool {
            for run in pool.close(!wait) {
                pool.cancel(run);
            }
            if kill {
                pool.kill_all();
                if !IN_DRIVER.with(Cell::get) {
                    pool.wait_exited(KILL_WAIT);
                }
            }
            if wait {
                to_join.push(pool.clone());
            }
        }
        for pool in to_join {
            pool.join();
        }
    }

    fn runs_in_process(&self) -> bool {
        false
    }

    fn instances(&self, job_id: &str) -> usize {
        self.tracker.count(job_id)
    }

    fn kind(&self) -> &'static str {
        "processpool"
    }
}
