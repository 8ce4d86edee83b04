//! [`AsyncScheduler`]: the main loop as a tokio task, and the job API of
//! [`SyncScheduler`] with the same names and arguments, async.

use super::handle::{display_job, status_of};
use super::*;

/// The async front-end (APScheduler's `AsyncIOScheduler`): runs the main loop as a tokio
/// task. Its job API has the names, arguments and results of the thread-based
/// front-ends' ([`SyncScheduler`]), async, with [`AsyncJobHandle`] in place of
/// [`JobHandle`]. Async tasks run on the same runtime.
#[derive(Debug, Clone)]
pub struct AsyncScheduler {
    pub(super) engine: Engine,
}

impl AsyncScheduler {
    /// A scheduler with the default configuration: the `default` memory store and the
    /// `default` async executor (APScheduler's `AsyncIOExecutor`).
    ///
    /// # Errors
    /// None today; a `Result` as every front-end's constructor returns.
    pub fn new() -> Result<Self, Error> {
        Self::from_builder(Engine::builder())
    }

    /// A scheduler over an engine built with [`Engine::builder`]; without a `default`
    /// executor, the async executor is used.
    ///
    /// # Errors
    /// None today; a `Result` as every front-end's constructor returns.
    pub fn from_builder(builder: EngineBuilder) -> Result<Self, Error> {
        let builder = if builder.has_executor(crate::engine::DEFAULT_ALIAS) {
            builder
        } else {
            builder.executor(
                crate::engine::DEFAULT_ALIAS,
                Arc::new(apscheduler_executor_async::AsyncExecutor::new(None)),
            )
        };
        Self::from_engine(builder.build())
    }

    /// A scheduler over an engine already built.
    ///
    /// # Errors
    /// None today; a `Result` as every front-end's constructor returns.
    pub fn from_engine(engine: Engine) -> Result<Self, Error> {
        Ok(AsyncScheduler { engine })
    }

    /// The engine underneath (advanced use: the job API with store aliases).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn handle(&self, job: Job) -> AsyncJobHandle {
        AsyncJobHandle {
            status: status_of(&self.engine, &job),
            scheduler: self.clone(),
            job,
        }
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
        handle.spawn(main_loop::run_as_task(self.engine.clone()));
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

    /// Registers a named sync task.
    pub fn register_task<F>(&self, name: &str, f: F)
    where
        F: Fn(&TaskContext) -> TaskResult + Send + Sync + 'static,
    {
        self.engine.register_task(name, f);
    }

    /// Registers a named async task.
    pub fn register_async_task<F, Fut>(&self, name: &str, f: F)
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        self.engine.register_async_task(name, f);
    }

    /// Adds a job (see [`Engine::add_job`]).
    ///
    /// # Errors
    /// As [`Engine::add_job`].
    pub async fn add_job(&self, spec: JobSpec) -> Result<AsyncJobHandle, Error> {
        let job = self.engine.add_job(spec).await?;
        let mut handle = self.handle(job);
        if handle.status == JobStatus::Paused
            && self.engine.get_job(&handle.job.id, None).await?.is_none()
        {
            handle.status = JobStatus::Removed;
        }
        Ok(handle)
    }

    /// Adds several jobs, one write per store (see [`Engine::add_jobs`]).
    ///
    /// # Errors
    /// As [`Engine::add_jobs`].
    pub async fn add_jobs(&self, specs: Vec<JobSpec>) -> Result<Vec<AsyncJobHandle>, Error> {
        let jobs = self.engine.add_jobs(specs).await?;
        Ok(jobs.into_iter().map(|j| self.handle(j)).collect())
    }

    /// Starts a `scheduled_job` registration (the decorator form).
    pub fn scheduled_job(&self, kind: &str, args: Value) -> AsyncScheduledJob<'_> {
        AsyncScheduledJob {
            scheduler: self,
            spec: JobSpec::task("").trigger_args(kind, args),
        }
    }

    /// Changes a job's options.
    ///
    /// # Errors
    /// As [`Engine::modify_job`].
    pub async fn modify_job(&self, id: &str, changes: JobChanges) -> Result<AsyncJobHandle, Error> {
        let job = self.engine.modify_job(id, None, changes).await?;
        Ok(self.handle(job))
    }

    /// Gives a job a new trigger; returns `None` when the job was removed because the
    /// trigger has no fire time left.
    ///
    /// # Errors
    /// As [`Engine::reschedule_job`].
    pub async fn reschedule_job(
        &self,
        id: &str,
        kind: &str,
        args: Value,
    ) -> Result<Option<AsyncJobHandle>, Error> {
        let job = self.engine.reschedule_job(id, None, kind, &args).await?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Gives a job a new, built trigger.
    ///
    /// # Errors
    /// As [`Engine::reschedule_job`].
    pub async fn reschedule_job_with(
        &self,
        id: &str,
        trigger: Arc<dyn Trigger>,
    ) -> Result<Option<AsyncJobHandle>, Error> {
        let job = self.engine.reschedule_job_with(id, None, trigger).await?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Pauses a job.
    ///
    /// # Errors
    /// As [`Engine::pause_job`].
    pub async fn pause_job(&self, id: &str) -> Result<AsyncJobHandle, Error> {
        let job = self.engine.pause_job(id, None).await?;
        Ok(self.handle(job))
    }

    /// Resumes a job.
    ///
    /// # Errors
    /// As [`Engine::resume_job`].
    pub async fn resume_job(&self, id: &str) -> Result<Option<AsyncJobHandle>, Error> {
        let job = self.engine.resume_job(id, None).await?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Removes a job.
    ///
    /// # Errors
    /// As [`Engine::remove_job`].
    pub async fn remove_job(&self, id: &str) -> Result<(), Error> {
        self.engine.remove_job(id, None).await
    }

    /// Runs a job once, now, outside its schedule (its next run time stays); the run's
    /// id in the history, when one is recorded.
    ///
    /// # Errors
    /// As [`Engine::run_job_now`].
    pub async fn run_job_now(&self, id: &str) -> Result<Option<String>, Error> {
        self.engine.run_job_now(id, None, None).await
    }

    /// Runs a job's fire times of a range (see [`Engine::backfill`]).
    ///
    /// # Errors
    /// As [`Engine::backfill`].
    pub async fn backfill(
        &self,
        id: &str,
        request: &crate::BackfillRequest,
    ) -> Result<crate::BackfillReport, Error> {
        self.engine.backfill(id, request).await
    }

    /// Removes every job (of one store, or all).
    ///
    /// # Errors
    /// Store errors.
    pub async fn remove_all_jobs(&self, jobstore: Option<&str>) -> Result<(), Error> {
        self.engine.remove_all_jobs(jobstore).await
    }

    /// A job by id.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_job(&self, id: &str) -> Result<Option<AsyncJobHandle>, Error> {
        let job = self.engine.get_job(id, None).await?;
        Ok(job.map(|j| self.handle(j)))
    }

    /// Every job (of one store, or all), ordered by next run time, paused last.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_jobs(&self, jobstore: Option<&str>) -> Result<Vec<AsyncJobHandle>, Error> {
        let jobs = self.engine.get_jobs(jobstore).await?;
        Ok(jobs.into_iter().map(|j| self.handle(j)).collect())
    }

    /// APScheduler's `print_jobs`: prints the job list to standard output.
    ///
    /// # Errors
    /// Store errors.
    pub async fn print_jobs(&self, jobstore: Option<&str>) -> Result<(), Error> {
        print!("{}", self.format_jobs(jobstore).await?);
        Ok(())
    }

    /// What `print_jobs` prints.
    ///
    /// # Errors
    /// Store errors.
    pub async fn format_jobs(&self, jobstore: Option<&str>) -> Result<String, Error> {
        self.engine.format_jobs(jobstore).await
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
    pub async fn add_jobstore(&self, store: Arc<dyn JobStore>, alias: &str) -> Result<(), Error> {
        self.engine.add_jobstore(store, alias).await
    }

    /// Removes a job store.
    ///
    /// # Errors
    /// As [`Engine::remove_jobstore`].
    pub async fn remove_jobstore(&self, alias: &str) -> Result<(), Error> {
        self.engine.remove_jobstore(alias, true).await
    }

    /// Adds an executor.
    ///
    /// # Errors
    /// As [`Engine::add_executor`].
    pub fn add_executor(&self, executor: Arc<dyn Executor>, alias: &str) -> Result<(), Error> {
        self.engine.add_executor(executor, alias)
    }

    /// Removes an executor (waiting for its running jobs, off the async threads).
    ///
    /// # Errors
    /// As [`Engine::remove_executor`].
    pub async fn remove_executor(&self, alias: &str) -> Result<(), Error> {
        let (engine, alias) = (self.engine.clone(), alias.to_owned());
        tokio::task::spawn_blocking(move || engine.remove_executor(&alias, true))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("remove_executor failed: {e}")))?
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
}

/// A job plus the [`AsyncScheduler`] it lives in: [`JobHandle`]'s methods, async.
#[derive(Clone)]
pub struct AsyncJobHandle {
    scheduler: AsyncScheduler,
    job: Job,
    status: JobStatus,
}

impl fmt::Debug for AsyncJobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.job.fmt(f)
    }
}

impl fmt::Display for AsyncJobHandle {
    /// As [`JobHandle`] displays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        display_job(&self.job, self.status, f)
    }
}

impl Deref for AsyncJobHandle {
    type Target = Job;
    fn deref(&self) -> &Job {
        &self.job
    }
}

impl AsyncJobHandle {
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
    pub async fn modify(&self, changes: JobChanges) -> Result<AsyncJobHandle, Error> {
        self.scheduler.modify_job(&self.job.id, changes).await
    }
    /// Gives the job a new trigger (by kind and arguments).
    ///
    /// # Errors
    /// As [`Engine::reschedule_job`].
    pub async fn reschedule(
        &self,
        kind: &str,
        args: Value,
    ) -> Result<Option<AsyncJobHandle>, Error> {
        self.scheduler
            .reschedule_job(&self.job.id, kind, args)
            .await
    }
    /// Pauses the job.
    ///
    /// # Errors
    /// As [`Engine::pause_job`].
    pub async fn pause(&self) -> Result<AsyncJobHandle, Error> {
        self.scheduler.pause_job(&self.job.id).await
    }
    /// Resumes the job.
    ///
    /// # Errors
    /// As [`Engine::resume_job`].
    pub async fn resume(&self) -> Result<Option<AsyncJobHandle>, Error> {
        self.scheduler.resume_job(&self.job.id).await
    }
    /// Removes the job.
    ///
    /// # Errors
    /// As [`Engine::remove_job`].
    pub async fn remove(&self) -> Result<(), Error> {
        self.scheduler.remove_job(&self.job.id).await
    }
}

/// [`ScheduledJob`](super::ScheduledJob) for the [`AsyncScheduler`]: the decorator form, registered async.
#[derive(Debug)]
pub struct AsyncScheduledJob<'a> {
    scheduler: &'a AsyncScheduler,
    spec: JobSpec,
}

impl AsyncScheduledJob<'_> {
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
    /// Registers `f` as the async task `name` and adds the job running it.
    ///
    /// # Errors
    /// As [`Engine::add_job`].
    pub async fn register<F, Fut>(self, name: &str, f: F) -> Result<AsyncJobHandle, Error>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        self.scheduler.register_async_task(name, f);
        let mut spec = self.spec;
        spec.task = apscheduler_core::Task::Named(name.into());
        self.scheduler.add_job(spec).await
    }
}
