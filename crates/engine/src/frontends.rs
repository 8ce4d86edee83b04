//! The scheduler front-ends: thin drivers of the one [`Engine`] main loop.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apscheduler_core::{
    Error, ErrorKind, Event, EventMask, Executor, Job, JobStore, TaskContext, TaskResult, Trigger,
};
use serde_json::Value;

use crate::config::JobDefaults;
use crate::dispatch::ListenerId;
use crate::engine::{Engine, EngineBuilder, SchedulerState};
use crate::spec::{JobChanges, JobSpec};

/// Runs futures to completion for the synchronous API.
#[derive(Clone)]
struct Runner {
    rt: Arc<OwnedRuntime>,
}

/// The front-end's own runtime, which may be dropped anywhere: tokio forbids dropping a
/// runtime (which waits for its tasks) inside another runtime's context, the usual
/// place of a background scheduler in a web application, so there it winds down in
/// the background instead.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for OwnedRuntime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            }
        }
    }
}

impl Runner {
    fn new() -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aps-io")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("cannot start the scheduler's runtime: {e}"),
                )
            })?;
        Ok(Runner {
            rt: Arc::new(OwnedRuntime(Some(rt))),
        })
    }

    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        // Pinned in place: a job API future is a few hundred bytes, and handing it to
        // the runtime by value would copy it several times per call.
        let mut fut = std::pin::pin!(fut);
        // Most calls finish without waiting (a scheduler not started yet, the memory
        // store): one poll inside the runtime's context answers them without the cost
        // of a full `block_on` (or of a helper thread when called from async code).
        {
            let _context = self.rt.enter();
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from inside an async context: blocking this thread on another
            // runtime is not allowed, so drive the future from a helper thread.
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            self.rt.block_on(fut)
        }
    }
}

/// The synchronous job API shared by the thread-based front-ends
/// ([`BlockingScheduler`], [`BackgroundScheduler`], [`DrivenScheduler`]); they
/// dereference to it.
#[derive(Clone)]
pub struct SyncScheduler {
    engine: Engine,
    runner: Runner,
}

impl fmt::Debug for SyncScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncScheduler")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// A job plus the scheduler it lives in: APScheduler's `Job` methods.
#[derive(Clone)]
pub struct JobHandle {
    scheduler: SyncScheduler,
    job: Job,
    status: JobStatus,
}

/// Where a job stood when its [`JobHandle`] was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Added before `start`: it gets its first run time at start.
    Pending,
    /// Scheduled: it has a next run time.
    Scheduled,
    /// Paused: in its store without a next run time.
    Paused,
    /// Gone: its trigger had no fire time left when it was added, so it was removed at
    /// once (`EVENT_JOB_ADDED` then `EVENT_JOB_REMOVED`).
    Removed,
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.job.fmt(f)
    }
}

impl fmt::Display for JobHandle {
    /// As APScheduler prints a job: `name (trigger: ..., next run at: ...)`, or
    /// `pending`, `paused`, `removed` in place of the next run time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let job = &self.job;
        match self.status {
            JobStatus::Scheduled | JobStatus::Paused => job.fmt(f),
            JobStatus::Pending => write!(f, "{} (trigger: {}, pending)", job.name, job.trigger),
            JobStatus::Removed => write!(f, "{} (trigger: {}, removed)", job.name, job.trigger),
        }
    }
}

impl Deref for JobHandle {
    type Target = Job;
    fn deref(&self) -> &Job {
        &self.job
    }
}

impl JobHandle {
    /// The job as it was when this handle was made.
    pub fn job(&self) -> &Job {
        &self.job
    }
    /// Where the job stood when this handle was made.
    pub fn status(&self) -> JobStatus {
        self.status
    }
    /// Changes the job's options.
    ///
    /// # Errors
    /// As [`Engine::modify_job`].
    pub fn modify(&self, changes: JobChanges) -> Result<JobHandle, Error> {
        self.scheduler.modify_job(&self.job.id, changes)
    }
    /// Gives the job a new trigger (by kind and arguments).
    ///
    /// # Errors
    /// As [`Engine::reschedule_job`].
    pub fn reschedule(&self, kind: &str, args: Value) -> Result<Option<JobHandle>, Error> {
        self.scheduler.reschedule_job(&self.job.id, kind, args)
    }
    /// Pauses the job.
    ///
    /// # Errors
    /// As [`Engine::pause_job`].
    pub fn pause(&self) -> Result<JobHandle, Error> {
        self.scheduler.pause_job(&self.job.id)
    }
    /// Resumes the job.
    ///
    /// # Errors
    /// As [`Engine::resume_job`].
    pub fn resume(&self) -> Result<Option<JobHandle>, Error> {
        self.scheduler.resume_job(&self.job.id)
    }
    /// Removes the job.
    ///
    /// # Errors
    /// As [`Engine::remove_job`].
    pub fn remove(&self) -> Result<(), Error> {
        self.scheduler.remove_job(&self.job.id)
    }
}

/// Builds the `scheduled_job` registration: the Rust form of APScheduler's decorator.
///
/// ```
/// use apscheduler_engine::BackgroundScheduler;
/// use serde_json::json;
///
/// let scheduler = BackgroundScheduler::new().unwrap();
/// // @scheduler.scheduled_job('cron', id='my_job_id', day='last sun')
/// // def some_decorated_task(): ...
/// scheduler
///     .scheduled_job("cron", json!({"day": "last sun"}))
///     .id("my_job_id")
///     .register("some_decorated_task", |_ctx| {
///         println!("I am printed at 00:00:00 on the last Sunday of every month!");
///         Ok(json!(null))
///     })
///     .unwrap();
/// ```
#[derive(Debug)]
pub struct ScheduledJob<'a> {
    scheduler: &'a SyncScheduler,
    spec: JobSpec,
}

impl ScheduledJob<'_> {
    /// Sets the job id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.spec = self.spec.id(id);
        self
    }
    /// Changes any other option of the job spec.
    pub fn with(mut self, f: impl FnOnce(JobSpec) -> JobSpec) -> Self {
        self.spec = f(self.spec);
        self
    }
    /// Registers `f` as the task `name` and adds the job running it.
    ///
    /// # Errors
    /// As [`Engine::add_job`].
    pub fn register<F>(self, name: &str, f: F) -> Result<JobHandle, Error>
    where
        F: Fn(&TaskContext) -> TaskResult + Send + Sync + 'static,
    {
        self.scheduler.register_task(name, f);
        let mut spec = self.spec;
        spec.task = apscheduler_core::Task::Named(name.into());
        self.scheduler.add_job(spec)
    }
}

impl SyncScheduler {
    fn with_engine(engine: Engine) -> Result<Self, Error> {
        Ok(SyncScheduler {
            engine,
            runner: Runner::new()?,
        })
    }

    /// The engine underneath (for the async API or advanced use).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn handle(&self, job: Job) -> JobHandle {
        // Before start (or after shutdown) the API returns the pending jobs.
        let status = if self.engine.state() == SchedulerState::Stopped {
            JobStatus::Pending
        } else if job.next_run_time.is_some() {
            JobStatus::Scheduled
        } else {
            JobStatus::Paused
        };
        JobHandle {
            scheduler: self.clone(),
            job,
            status,
        }
    }

    /// Registers a named task.
    pub fn register_task<F>(&self, name: &str, f: F)
    where
        F: Fn(&TaskContext) -> TaskResult + Send + Sync + 'static,
    {
        self.engine.register_task(name, f);
    }

    /// Adds a job (see [`Engine::add_job`]).
    ///
    /// # Errors
    /// As [`Engine::add_job`].
    pub fn add_job(&self, spec: JobSpec) -> Result<JobHandle, Error> {
        // Building the job and adding it before `start` need no runtime.
        let prepared = self.engine.prepare_job(spec)?;
        let job = match self.engine.add_pending(prepared)? {
            Ok(job) => return Ok(self.handle(job)),
            Err(prepared) => self.runner.block_on(self.engine.add_prepared(prepared))?,
        };
        let mut handle = self.handle(job);
        if handle.status == JobStatus::Paused
            && self
                .runner
                .block_on(self.engine.get_job(&handle.job.id, None))?
                .is_none()
        {
            handle.status = JobStatus::Removed;
        }
        Ok(handle)
    }

    /// Starts a `scheduled_job` registration (the decorator form).
    pub fn scheduled_job(&self, kind: &str, args: Value) -> ScheduledJob<'_> {
        ScheduledJob {
            scheduler: self,
            spec: JobSpec::task("").trigger_args(kind, args),
        }
    }

    /// Changes a job's options.
    ///
    /// # Errors
    /// As [`Engine::modify_job`].
    pub fn modify_job(&self, id: &str, changes: JobChanges) -> Result<JobHandle, Error> {
        let job = self
            .runner
            .block_on(self.engine.modify_job(id, None, changes))?;
        Ok(self.handle(job))
    }

    /// Gives a job a new trigger; returns `None` when the job was removed because the
    /// trigger has no fire time left.
    ///
    /// # Errors
    /// As [`Engine::reschedule_job`].
    pub fn reschedule_job(
        &self,
        id: &str,
        kind: &str,
        args: Value,
    ) -> Result<Option<JobHandle>, Error> {
        let job = self
            .runner
            .block_on(self.engine.reschedule_job(id, None, kind, &args))?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Gives a job a new, built trigger.
    ///
    /// # Errors
    /// As [`Engine::reschedule_job`].
    pub fn reschedule_job_with(
        &self,
        id: &str,
        trigger: Arc<dyn Trigger>,
    ) -> Result<Option<JobHandle>, Error> {
        let job = self
            .runner
            .block_on(self.engine.reschedule_job_with(id, None, trigger))?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Pauses a job.
    ///
    /// # Errors
    /// As [`Engine::pause_job`].
    pub fn pause_job(&self, id: &str) -> Result<JobHandle, Error> {
        let job = self.runner.block_on(self.engine.pause_job(id, None))?;
        Ok(self.handle(job))
    }

    /// Resumes a job.
    ///
    /// # Errors
    /// As [`Engine::resume_job`].
    pub fn resume_job(&self, id: &str) -> Result<Option<JobHandle>, Error> {
        let job = self.runner.block_on(self.engine.resume_job(id, None))?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Removes a job.
    ///
    /// # Errors
    /// As [`Engine::remove_job`].
    pub fn remove_job(&self, id: &str) -> Result<(), Error> {
        self.runner.block_on(self.engine.remove_job(id, None))
    }

    /// Removes every job (of one store, or all).
    ///
    /// # Errors
    /// Store errors.
    pub fn remove_all_jobs(&self, jobstore: Option<&str>) -> Result<(), Error> {
        self.runner.block_on(self.engine.remove_all_jobs(jobstore))
    }

    /// A job by id.
    ///
    /// # Errors
    /// Store errors.
    pub fn get_job(&self, id: &str) -> Result<Option<JobHandle>, Error> {
        let job = self.runner.block_on(self.engine.get_job(id, None))?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Every job (of one store, or all), ordered by next run time, paused last.
    ///
    /// # Errors
    /// Store errors.
    pub fn get_jobs(&self, jobstore: Option<&str>) -> Result<Vec<JobHandle>, Error> {
        let jobs = self.runner.block_on(self.engine.get_jobs(jobstore))?;
        Ok(jobs.into_iter().map(|j| self.handle(j)).collect())
    }

    /// APScheduler's `print_jobs`: prints the job list to standard output.
    ///
    /// # Errors
    /// Store errors.
    pub fn print_jobs(&self, jobstore: Option<&str>) -> Result<(), Error> {
        print!("{}", self.format_jobs(jobstore)?);
        Ok(())
    }

    /// What `print_jobs` prints.
    ///
    /// # Errors
    /// Store errors.
    pub fn format_jobs(&self, jobstore: Option<&str>) -> Result<String, Error> {
        self.runner.block_on(self.engine.format_jobs(jobstore))
    }

    /// Pauses job processing.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn pause(&self) -> Result<(), Error> {
        self.engine.pause()
    }

    /// Resumes job processing.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn resume(&self) -> Result<(), Error> {
        self.engine.resume()
    }

    /// Wakes the main loop.
    pub fn wakeup(&self) {
        self.engine.wakeup();
    }

    /// The scheduler's state.
    pub fn state(&self) -> SchedulerState {
        self.engine.state()
    }

    /// Whether the scheduler has been started and not shut down.
    pub fn running(&self) -> bool {
        self.engine.state() != SchedulerState::Stopped
    }

    /// Adds a job store.
    ///
    /// # Errors
    /// As [`Engine::add_jobstore`].
    pub fn add_jobstore(&self, store: Arc<dyn JobStore>, alias: &str) -> Result<(), Error> {
        self.runner.block_on(self.engine.add_jobstore(store, alias))
    }

    /// Removes a job store.
    ///
    /// # Errors
    /// As [`Engine::remove_jobstore`].
    pub fn remove_jobstore(&self, alias: &str) -> Result<(), Error> {
        self.runner
            .block_on(self.engine.remove_jobstore(alias, true))
    }

    /// Adds an executor.
    ///
    /// # Errors
    /// As [`Engine::add_executor`].
    pub fn add_executor(&self, executor: Arc<dyn Executor>, alias: &str) -> Result<(), Error> {
        self.engine.add_executor(executor, alias)
    }

    /// Removes an executor (waiting for its running jobs).
    ///
    /// # Errors
    /// As [`Engine::remove_executor`].
    pub fn remove_executor(&self, alias: &str) -> Result<(), Error> {
        self.engine.remove_executor(alias, true)
    }

    /// Adds a listener for the events in `mask`.
    pub fn add_listener<F>(&self, callback: F, mask: EventMask) -> ListenerId
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.engine.add_listener(callback, mask)
    }

    /// Removes a listener.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.engine.remove_listener(id)
    }

    /// Changes the timezone and job defaults before start.
    ///
    /// # Errors
    /// `InvalidState` once started.
    pub fn configure(
        &self,
        timezone: Option<chrono_tz::Tz>,
        defaults: Option<JobDefaults>,
    ) -> Result<(), Error> {
        self.engine.configure(timezone, defaults)
    }

    fn start_engine(&self, paused: bool) -> Result<(), Error> {
        self.runner.block_on(self.engine.start(paused))
    }

    /// Runs the main loop on this thread until shutdown.
    fn run_loop(&self) {
        let wake = self.engine.wake_signal();
        loop {
            if self.engine.state() == SchedulerState::Stopped {
                break;
            }
            let seen = wake.begin_pass();
            let next = self.runner.block_on(self.engine.run_pass());
            if self.engine.state() == SchedulerState::Stopped {
                break;
            }
            // Changes that cannot make the next pass earlier need not wake this thread.
            wake.arm(seen, next.map(|(_, at)| at));
            wake.wait(seen, next.map(|(wait, _)| wait));
        }
        wake.disarm();
    }

    fn shutdown_engine(&self, wait: bool) -> Result<(), Error> {
        self.runner.block_on(self.engine.shutdown(wait))
    }
}

macro_rules! sync_frontend {
    ($name:ident, $doc:literal $(, $field:ident : $ty:ty = $init:expr)*) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name {
            inner: SyncScheduler,
            $($field: $ty,)*
        }

        impl Deref for $name {
            type Target = SyncScheduler;
            fn deref(&self) -> &SyncScheduler {
                &self.inner
            }
        }

        impl $name {
            /// A scheduler with the default configuration: the `default` memory store,
            /// the `default` thread pool of 10 workers, the machine's timezone.
            ///
            /// # Errors
            /// The internal runtime cannot be started.
            pub fn new() -> Result<Self, Error> {
                Self::from_engine(Engine::builder().build())
            }

            /// A scheduler over an engine built with [`Engine::builder`].
            ///
            /// # Errors
            /// The internal runtime cannot be started.
            pub fn from_builder(builder: EngineBuilder) -> Result<Self, Error> {
                Self::from_engine(builder.build())
            }

            /// A scheduler over an existing engine.
            ///
            /// # Errors
            /// The internal runtime cannot be started.
            pub fn from_engine(engine: Engine) -> Result<Self, Error> {
                Ok($name {
                    inner: SyncScheduler::with_engine(engine)?,
                    $($field: $init,)*
                })
            }
        }
    };
}

sync_frontend!(
    BlockingScheduler,
    "Runs the main loop in the thread that calls `start`, which blocks until `shutdown` \
     (APScheduler's `BlockingScheduler`): for programs whose only job is scheduling."
);
sync_frontend!(
    BackgroundScheduler,
    "Runs the main loop in its own thread; `start` returns at once \
     (APScheduler's `BackgroundScheduler`).",
    thread: Mutex<Option<JoinHandle<()>>> = Mutex::new(None)
);

impl BlockingScheduler {
    /// Starts and runs the main loop on this thread until [`shutdown`](Self::shutdown)
    /// is called (from a job, a listener, a signal handler or another thread).
    ///
    /// # Errors
    /// As [`Engine::start`].
    pub fn start(&self, paused: bool) -> Result<(), Error> {
        self.inner.start_engine(paused)?;
        self.inner.run_loop();
        Ok(())
    }

    /// Stops the scheduler; `start` then returns.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn shutdown(&self, wait: bool) -> Result<(), Error> {
        self.inner.shutdown_engine(wait)
    }
}

impl BackgroundScheduler {
    /// Starts the scheduler in its own thread and returns.
    ///
    /// # Errors
    /// As [`Engine::start`]; the thread cannot be spawned.
    pub fn start(&self, paused: bool) -> Result<(), Error> {
        self.inner.start_engine(paused)?;
        let me = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name("aps-scheduler".into())
            .spawn(move || me.run_loop())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("cannot spawn the scheduler thread: {e}"),
                )
            })?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(())
    }

    /// Stops the scheduler and its thread; with `wait`, waits for running jobs.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn shutdown(&self, wait: bool) -> Result<(), Error> {
        self.inner.shutdown_engine(wait)?;
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        Ok(())
    }
}

/// Driven by a host event loop (the role of APScheduler's Tornado/Twisted/Qt/gevent
/// schedulers): the host asks for the next wake-up with
/// [`next_wakeup`](Self::next_wakeup) and calls [`run_due`](Self::run_due) when its timer
/// fires; [`set_wakeup_hook`](Self::set_wakeup_hook) tells it to re-arm the timer when
/// jobs change.
#[derive(Debug)]
pub struct DrivenScheduler {
    inner: SyncScheduler,
    next: Mutex<Option<Instant>>,
}

impl Deref for DrivenScheduler {
    type Target = SyncScheduler;
    fn deref(&self) -> &SyncScheduler {
        &self.inner
    }
}

impl DrivenScheduler {
    /// A scheduler with the default configuration.
    ///
    /// # Errors
    /// The internal runtime cannot be started.
    pub fn new() -> Result<Self, Error> {
        Self::from_engine(Engine::builder().build())
    }

    /// A scheduler over an engine built with [`Engine::builder`].
    ///
    /// # Errors
    /// The internal runtime cannot be started.
    pub fn from_builder(builder: EngineBuilder) -> Result<Self, Error> {
        Self::from_engine(builder.build())
    }

    /// A scheduler over an existing engine.
    ///
    /// # Errors
    /// The internal runtime cannot be started.
    pub fn from_engine(engine: Engine) -> Result<Self, Error> {
        Ok(DrivenScheduler {
            inner: SyncScheduler::with_engine(engine)?,
            next: Mutex::new(None),
        })
    }

    /// Starts the scheduler; the host loop then calls [`run_due`](Self::run_due).
    ///
    /// # Errors
    /// As [`Engine::start`].
    pub fn start(&self, paused: bool) -> Result<(), Error> {
        self.inner.start_engine(paused)
    }

    /// Runs every due job now and returns how long until the next call is needed
    /// (`None`: not before the wake-up hook fires).
    pub fn run_due(&self) -> Option<Duration> {
        let wait = self.inner.runner.block_on(self.inner.engine.process_jobs());
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = wait.map(|w| Instant::now() + w);
        wait
    }

    /// When `run_due` should be called next, as computed by the last `run_due`.
    pub fn next_wakeup(&self) -> Option<Instant> {
        *self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called whenever the schedule changes (job added, modified, resumed ...): the host
    /// should call `run_due` soon (it recomputes the next wake-up). Called from the
    /// thread that changed the schedule.
    pub fn set_wakeup_hook<F>(&self, hook: F)
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.inner
            .engine
            .wake_signal()
            .set_hook(Some(Arc::new(hook)));
    }

    /// Stops the scheduler.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn shutdown(&self, wait: bool) -> Result<(), Error> {
        self.inner.engine.wake_signal().set_hook(None);
        self.inner.shutdown_engine(wait)
    }
}

/// The async front-end (APScheduler's `AsyncIOScheduler`): runs the main loop as a tokio
/// task; every method is async. Async tasks run on the same runtime.
#[derive(Debug, Clone)]
pub struct AsyncScheduler {
    engine: Engine,
}

impl AsyncScheduler {
    /// A scheduler with the default configuration: the `default` memory store and the
    /// `default` async executor (APScheduler's `AsyncIOExecutor`).
    pub fn new() -> Self {
        Self::from_builder(Engine::builder())
    }

    /// A scheduler over an engine built with [`Engine::builder`]; without a `default`
    /// executor, the async executor is used.
    pub fn from_builder(builder: EngineBuilder) -> Self {
        let builder = if builder.has_executor(crate::engine::DEFAULT_ALIAS) {
            builder
        } else {
            builder.executor(
                crate::engine::DEFAULT_ALIAS,
                Arc::new(apscheduler_executor_async::AsyncExecutor::new(None)),
            )
        };
        AsyncScheduler {
            engine: builder.build(),
        }
    }

    /// The engine: every job method (`add_job`, `modify_job`, ...) is there, async.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts the scheduler and spawns its main loop on the current tokio runtime.
    ///
    /// # Errors
    /// As [`Engine::start`]; `InvalidState` outside a tokio runtime.
    pub async fn start(&self, paused: bool) -> Result<(), Error> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidState,
                "AsyncScheduler::start needs a tokio runtime",
            )
        })?;
        self.engine.start(paused).await?;
        let engine = self.engine.clone();
        handle.spawn(async move {
            loop {
                if engine.state() == SchedulerState::Stopped {
                    break;
                }
                let wait = engine.process_jobs().await;
                if engine.state() == SchedulerState::Stopped {
                    break;
                }
                let signal = engine.wake_signal();
                match wait {
                    Some(w) => {
                        tokio::select! {
                            _ = tokio::time::sleep(w) => {}
                            _ = signal.notified() => {}
                        }
                    }
                    None => signal.notified().await,
                }
            }
        });
        Ok(())
    }

    /// Stops the scheduler.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub async fn shutdown(&self, wait: bool) -> Result<(), Error> {
        // Executors block while they wait for running jobs; do that off the async
        // threads so jobs on this runtime can finish meanwhile.
        let engine = self.engine.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(engine.shutdown(wait)))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("shutdown failed: {e}")))?
    }

    /// Adds a job.
    ///
    /// # Errors
    /// As [`Engine::add_job`].
    pub async fn add_job(&self, spec: JobSpec) -> Result<Job, Error> {
        self.engine.add_job(spec).await
    }
}

impl Default for AsyncScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for AsyncScheduler {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}
