//! # apscheduler-executor-rayon
//!
//! [`RayonExecutor`] runs sync jobs on a [rayon](https://docs.rs/rayon) thread pool
//! sized to the machine's cores (or to `num_threads`). It implements
//! [`apscheduler_core::Executor`] with the same contract as the thread pool:
//!
//! - `submit` enforces `max_instances` per job id and reports
//!   [`RunReporter::submitted`] before the run can start; it never blocks.
//! - Each run time runs through core's task runner ([`run_sync_task`]) and is reported
//!   through [`report_each_run_time`]: an error keeps its kind, a panic becomes kind
//!   `panic`, and the pool keeps going. An async task is refused (kind `refused`).
//! - `shutdown(true)` stops accepting and waits until every accepted run has finished
//!   (queued ones are run, as the thread pool does). `shutdown(false)` stops accepting
//!   and returns at once: runs that have not started are reported cancelled (kind
//!   `cancelled`, one outcome per run time, then `finished`), running ones finish.
//!
//! ## When to pick it
//! - Over the **thread pool** (`threadpool`, 10 threads by default): for CPU-bound jobs.
//!   With one thread per core, ten due CPU-bound jobs queue instead of oversubscribing
//!   the cores, so each finishes sooner and the machine stays responsive. A job that
//!   waits on I/O holds a core's thread while it waits, so I/O-bound jobs belong on the
//!   thread pool or the async executor.
//! - Over the **process pool** (`processpool`): when the jobs are trusted in-process
//!   code. The process pool isolates each job in a worker process: a crash, an abort or
//!   a memory leak there does not take the scheduler down, and a job can be killed on
//!   time-out. A job on rayon shares the scheduler's process: a panic is caught, but an
//!   abort or a hang is not. In exchange it starts in microseconds and can run closures.
//!
//! ## Usage
//! ```
//! use std::sync::Arc;
//! use apscheduler_core::{Executor, JobFailure, JobRun, RunReporter, TaskFn};
//! use apscheduler_executor_rayon::RayonExecutor;
//!
//! struct Print;
//! impl RunReporter for Print {
//!     fn submitted(&self, _: &JobRun) {}
//!     fn outcome(&self, run: &JobRun, _: apscheduler_core::chrono::DateTime<apscheduler_core::chrono_tz::Tz>,
//!                result: Result<apscheduler_core::serde_json::Value, JobFailure>) {
//!         println!("{}: {result:?}", run.job_id);
//!     }
//!     fn finished(&self, _: &JobRun) {}
//! }
//!
//! let executor = RayonExecutor::new();
//! executor.start(Arc::new(Print)).unwrap();
//! let now = apscheduler_core::chrono::Utc::now().with_timezone(&apscheduler_core::chrono_tz::UTC);
//! executor
//!     .submit(JobRun {
//!         job_id: "sum".into(),
//!         jobstore: "default".into(),
//!         task_name: None,
//!         task: TaskFn::from_fn(|_ctx| Ok((1..=1_000u64).sum::<u64>().into())),
//!         args: Arc::new(vec![]),
//!         kwargs: Arc::new(Default::default()),
//!         run_times: vec![now],
//!         max_instances: 1,
//!         run_ids: Vec::new(),
//!         fences: Vec::new(),
//!         attempt: 1,
//!         cancel: Default::default(),
//!         policy: apscheduler_core::default_policy(),
//!     })
//!     .unwrap();
//! executor.shutdown(true); // prints "sum: Ok(Number(500500))"
//! ```
//!
//! ## Configuration
//! `type = "rayon"` with the optional option `num_threads` (default: the number of
//! cores), through the facade's `executor-rayon` feature.

mod config;
pub use config::{register, RayonConfig};

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use apscheduler_core::{
    admit, finish_run, report_each_run_time, report_failed, run_sync_task, Error, ErrorKind,
    Executor, InstanceTracker, JobFailure, JobRun, RunReporter, SubmitError,
};

/// The [`JobFailure::kind`] reported for runs dropped by `shutdown(false)` before they
/// started.
pub const CANCELLED_KIND: &str = "cancelled";

/// Runs sync jobs on a rayon thread pool (see the [crate documentation](crate)).
///
/// Created stopped; [`Executor::start`] builds the pool (threads named `aps-rayon-N`).
/// After [`Executor::shutdown`] it can be started again with a fresh pool.
pub struct RayonExecutor {
    num_threads: Option<usize>,
    tracker: Arc<InstanceTracker>,
    running: Mutex<Option<Running>>,
}

/// One started pool.
struct Running {
    pool: Arc<rayon::ThreadPool>,
    shared: Arc<Shared>,
}

/// What the pool's jobs share with the executor.
struct Shared {
    reporter: Arc<dyn RunReporter>,
    tracker: Arc<InstanceTracker>,
    /// Set by `shutdown(false)`: runs that have not started are reported cancelled.
    cancelled: AtomicBool,
    /// Accepted submissions not yet finished, and its change signal.
    in_flight: Mutex<usize>,
    drained: Condvar,
}

impl RayonExecutor {
    /// An executor whose pool has one thread per core.
    pub fn new() -> Self {
        RayonExecutor {
            num_threads: None,
            tracker: Arc::new(InstanceTracker::new()),
            running: Mutex::new(None),
        }
    }

    /// An executor whose pool has `num_threads` threads (`0` is treated as `1`).
    pub fn with_threads(num_threads: usize) -> Self {
        RayonExecutor {
            num_threads: Some(num_threads.max(1)),
            ..Self::new()
        }
    }

    /// The configured number of threads (`None`: one per core).
    pub fn num_threads(&self) -> Option<usize> {
        self.num_threads
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for RayonExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RayonExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let threads = self.lock().as_ref().map(|r| r.pool.current_num_threads());
        f.debug_struct("RayonExecutor")
            .field("num_threads", &self.num_threads)
            .field("running_threads", &threads)
            .field("instances", &self.tracker.total())
            .finish()
    }
}

impl Shared {
    fn run(&self, run: JobRun) {
        if self.cancelled.load(Ordering::SeqCst) {
            tracing::debug!(target: "apscheduler", job_id = %run.job_id, "job cancelled by shutdown");
            let failure = JobFailure::new(
                CANCELLED_KIND,
                "the executor was shut down before the job started",
            );
            report_failed(&*self.reporter, &run, &failure);
        } else {
            report_each_run_time(&*self.reporter, &run, |run_time| {
                run_sync_task(&run.task, &run.context(run_time))
            });
        }
        finish_run(&*self.reporter, &run, &self.tracker);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *in_flight -= 1;
        self.drained.notify_all();
    }
}

impl Executor for RayonExecutor {
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error> {
        let mut running = self.lock();
        if running.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "rayon executor is already running",
            ));
        }
        let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("aps-rayon-{i}"));
        if let Some(n) = self.num_threads {
            builder = builder.num_threads(n);
        }
        let pool = builder.build().map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("cannot start the rayon pool: {e}"),
            )
        })?;
        *running = Some(Running {
            pool: Arc::new(pool),
            shared: Arc::new(Shared {
                reporter,
                tracker: self.tracker.clone(),
                cancelled: AtomicBool::new(false),
                in_flight: Mutex::new(0),
                drained: Condvar::new(),
            }),
        });
        Ok(())
    }

    fn submit(&self, run: JobRun) -> Result<(), SubmitError> {
        // The lock is held until the run is spawned, so a concurrent shutdown either
        // sees it in flight or refuses it; no user code runs under it but `submitted`.
        let running = self.lock();
        let Some(Running { pool, shared }) = running.as_ref() else {
            return Err(SubmitError::NotRunning);
        };
        admit(&self.tracker, &*shared.reporter, &run)?;
        *shared.in_flight.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let shared = shared.clone();
        pool.spawn(move || shared.run(run));
        Ok(())
    }

    fn shutdown(&self, wait: bool) {
        let Some(Running { pool, shared }) = self.lock().take() else {
            return;
        };
        tracing::debug!(target: "apscheduler", wait, "rayon executor shutting down");
        if !wait {
            shared.cancelled.store(true, Ordering::SeqCst);
            return;
        }
        if pool.current_thread_index().is_some() {
            // shutdown(true) from inside a job: waiting for that job would deadlock.
            return;
        }
        let mut in_flight = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *in_flight > 0 {
            in_flight = shared
                .drained
                .wait(in_flight)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn instances(&self, job_id: &str) -> usize {
        self.tracker.count(job_id)
    }

    fn kind(&self) -> &'static str {
        "rayon"
    }
}
