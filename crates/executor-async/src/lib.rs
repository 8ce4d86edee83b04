//! # apscheduler-executor-async
//!
//! [`AsyncExecutor`] runs jobs on a tokio runtime (APScheduler's `AsyncIOExecutor`):
//! `async fn` tasks are spawned as tasks, plain functions go to the runtime's blocking
//! pool. An optional concurrency limit bounds how many runs are in flight at once.
//! Panics in a task become `EVENT_JOB_ERROR` outcomes; the runtime keeps working.
//!
//! ## Usage
//! ```
//! use std::sync::{Arc, Mutex};
//! use apscheduler_core::{Executor, JobRun, RunReporter, TaskFn, JobFailure};
//! use apscheduler_executor_async::AsyncExecutor;
//!
//! struct Print(Mutex<Vec<String>>);
//! impl RunReporter for Print {
//!     fn submitted(&self, _: &JobRun) {}
//!     fn outcome(&self, _: &JobRun, _: chrono::DateTime<chrono_tz::Tz>, r: Result<apscheduler_core::serde_json::Value, JobFailure>) {
//!         self.0.lock().unwrap().push(format!("{r:?}"));
//!     }
//!     fn finished(&self, _: &JobRun) {}
//! }
//!
//! let executor = AsyncExecutor::new(Some(4));
//! let reporter = Arc::new(Print(Mutex::new(Vec::new())));
//! executor.start(reporter.clone()).unwrap();
//! let task = TaskFn::from_async(|_ctx| async { Ok(serde_json::json!(42)) });
//! executor.submit(JobRun {
//!     job_id: "j".into(),
//!     jobstore: "default".into(),
//!     task_name: None,
//!     task,
//!     args: apscheduler_core::no_args(),
//!     kwargs: apscheduler_core::no_kwargs(),
//!     run_times: vec![chrono::Utc::now().with_timezone(&chrono_tz::UTC)],
//!     max_instances: 1,
//!     run_ids: Vec::new(),
//!     fences: Vec::new(),
//!     attempt: 1,
//!     cancel: Default::default(),
//!     policy: apscheduler_core::default_policy(),
//! }).unwrap();
//! executor.shutdown(true);
//! assert_eq!(reporter.0.lock().unwrap().as_slice(), ["Ok(Number(42))"]);
//! ```
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod config;
pub use config::{register, AsyncExecutorConfig};

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use apscheduler_core::{
    admit, caught_outcome, finish_run, report_outcome, run_sync_task, Error, ErrorKind, Executor,
    InstanceTracker, JobFailure, JobRun, RunReporter, SubmitError, TaskContext, TaskFn,
};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;

/// Runs jobs on a tokio runtime: the ambient one when started inside a runtime, else a
/// runtime of its own.
pub struct AsyncExecutor {
    limit: Option<usize>,
    state: Mutex<Option<Running>>,
    instances: Arc<InstanceTracker>,
    in_flight: Arc<(Mutex<usize>, Condvar)>,
    accepting: AtomicBool,
    submitted: AtomicUsize,
}

struct Running {
    handle: Handle,
    /// Present when the executor owns its runtime.
    own: Option<Runtime>,
    reporter: Arc<dyn RunReporter>,
    permits: Option<Arc<Semaphore>>,
}

impl fmt::Debug for AsyncExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncExecutor")
            .field("limit", &self.limit)
            .field("in_flight", &self.instances.total())
            .finish_non_exhaustive()
    }
}

impl Drop for AsyncExecutor {
    fn drop(&mut self) {
        // Dropping an owned runtime waits for its tasks, which tokio forbids inside
        // another runtime's context: there it winds down in the background.
        let running = self
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Running { own: Some(rt), .. }) = running {
            if Handle::try_current().is_ok() {
                rt.shutdown_background();
            }
        }
    }
}

impl Default for AsyncExecutor {
    fn default() -> Self {
        Self::new(None)
    }
}

impl AsyncExecutor {
    /// An executor running at most `limit` runs at once (`None`: no limit).
    pub fn new(limit: Option<usize>) -> Self {
        AsyncExecutor {
            limit,
            state: Mutex::new(None),
            instances: Arc::new(InstanceTracker::new()),
            in_flight: Arc::new((Mutex::new(0), Condvar::new())),
            accepting: AtomicBool::new(false),
            submitted: AtomicUsize::new(0),
        }
    }

    /// How many submissions were accepted since start.
    pub fn submitted_count(&self) -> usize {
        self.submitted.load(Ordering::Relaxed)
    }
}

async fn run_one(
    task: &TaskFn,
    ctx: TaskContext,
) -> Result<apscheduler_core::serde_json::Value, JobFailure> {
    match task {
        TaskFn::Async(f) => {
            let fut = f(ctx);
            // Spawned so a panic is caught by the runtime and reported, not propagated.
            match tokio::spawn(fut).await {
                Ok(result) => caught_outcome(Ok(result)),
                Err(join) if join.is_panic() => caught_outcome(Err(join.into_panic())),
                Err(_) => Err(JobFailure::new("cancelled", "the run was cancelled")),
            }
        }
        TaskFn::Sync(_) => {
            let task = task.clone();
            match tokio::task::spawn_blocking(move || run_sync_task(&task, &ctx)).await {
                Ok(result) => result,
                Err(join) if join.is_panic() => caught_outcome(Err(join.into_panic())),
                Err(_) => Err(JobFailure::new("cancelled", "the run was cancelled")),
            }
        }
    }
}

impl Executor for AsyncExecutor {
    fn start(&self, reporter: Arc<dyn RunReporter>) -> Result<(), Error> {
        let (handle, own) = match Handle::try_current() {
            Ok(h) => (h, None),
            Err(_) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("aps-async")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Other,
                            format!("cannot start a tokio runtime: {e}"),
                        )
                    })?;
                (rt.handle().clone(), Some(rt))
            }
        };
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
            handle,
            own,
            reporter,
            permits: self.limit.map(|n| Arc::new(Semaphore::new(n.max(1)))),
        });
        self.accepting.store(true, Ordering::Release);
        Ok(())
    }

    fn submit(&self, run: JobRun) -> Result<(), SubmitError> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(SubmitError::NotRunning);
        }
        let (handle, reporter, permits) = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let Some(r) = st.as_ref() else {
                return Err(SubmitError::NotRunning);
            };
            (r.handle.clone(), r.reporter.clone(), r.permits.clone())
        };
        admit(&self.instances, &*reporter, &run)?;
        self.submitted.fetch_add(1, Ordering::Relaxed);
        *self.in_flight.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let instances = self.instances.clone();
        let in_flight = self.in_flight.clone();
        handle.spawn(async move {
            let _permit = match &permits {
                Some(p) => p.clone().acquire_owned().await.ok(),
                None => None,
            };
            for &run_time in &run.run_times {
                let result = run_one(&run.task, run.context(run_time)).await;
                report_outcome(&*reporter, &run, run_time, result);
            }
            finish_run(&*reporter, &run, &instances);
            let (count, cond) = &*in_flight;
            *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            cond.notify_all();
        });
        Ok(())
    }

    fn shutdown(&self, wait: bool) {
        self.accepting.store(false, Ordering::Release);
        if wait {
            let (count, cond) = &*self.in_flight;
            let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
            while *n > 0 {
                n = cond.wait(n).unwrap_or_else(|e| e.into_inner());
            }
        }
        let running = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(Running { own: Some(rt), .. }) = running {
            // Runs still in flight finish in the background and are reported; the runtime
            // goes away after them. (Dropping a runtime inside an async context panics,
            // hence `shutdown_background` on a thread of its own.)
            let in_flight = self.in_flight.clone();
            let spawned = std::thread::Builder::new()
                .name("aps-async-shutdown".into())
                .spawn(move || {
                    let (count, cond) = &*in_flight;
                    let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
                    while *n > 0 {
                        n = cond.wait(n).unwrap_or_else(|e| e.into_inner());
                    }
                    drop(n);
                    rt.shutdown_background();
                });
            if let Err(e) = spawned {
                apscheduler_core::log_warn!(target: "apscheduler", "cannot wait for async runs in the background: {e}");
            }
        }
    }

    fn instances(&self, job_id: &str) -> usize {
        self.instances.count(job_id)
    }

    fn kind(&self) -> &'static str {
        "async"
    }
}
