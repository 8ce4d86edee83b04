//! [`SyncScheduler`]: the synchronous job API of the thread-based front-ends.

use super::handle::status_of;
use super::relay::Relay;
use super::*;

/// The synchronous job API shared by the thread-based front-ends
/// ([`BlockingScheduler`], [`BackgroundScheduler`], [`DrivenScheduler`]); they
/// dereference to it.
#[derive(Clone)]
pub struct SyncScheduler {
    pub(super) engine: Engine,
    pub(super) runner: Runner,
    /// The loop threads' relay while the loop runs on threads.
    pub(super) relay: Arc<Mutex<Option<Arc<Relay>>>>,
}

impl fmt::Debug for SyncScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncScheduler")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl SyncScheduler {
    pub(super) fn with_engine(engine: Engine) -> Result<Self, Error> {
        Ok(SyncScheduler {
            engine,
            runner: Runner::new()?,
            relay: Arc::default(),
        })
    }

    /// The engine underneath (for the async API or advanced use).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(super) fn handle(&self, job: Job) -> JobHandle {
        JobHandle {
            status: status_of(&self.engine, &job),
            scheduler: self.clone(),
            job,
        }
    }

    /// Registers a named task.
    pub fn register_task<F>(&self, name: &str, f: F)
    where
        F: Fn(&TaskContext) -> TaskResult + Send + Sync + 'static,
    {
        self.engine.register_task(name, f);
    }

    /// Registers a named async task (run by an async executor).
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

    /// Adds several jobs, one write per store (see [`Engine::add_jobs`]).
    ///
    /// # Errors
    /// As [`Engine::add_jobs`].
    pub fn add_jobs(&self, specs: Vec<JobSpec>) -> Result<Vec<JobHandle>, Error> {
        let jobs = self.runner.block_on(self.engine.add_jobs(specs))?;
        Ok(jobs.into_iter().map(|j| self.handle(j)).collect())
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

    /// Runs a job once, now, outside its schedule (its next run time stays); the run's
    /// id in the history, when one is recorded.
    ///
    /// # Errors
    /// As [`Engine::run_job_now`].
    pub fn run_job_now(&self, id: &str) -> Result<Option<String>, Error> {
        self.runner
            .block_on(self.engine.run_job_now(id, None, None))
    }

    /// Runs a job's fire times of a range (see [`Engine::backfill`]); the runs start
    /// on the scheduler's runtime after this returns.
    ///
    /// # Errors
    /// As [`Engine::backfill`].
    pub fn backfill(
        &self,
        id: &str,
        request: &crate::BackfillRequest,
    ) -> Result<crate::BackfillReport, Error> {
        self.runner.block_on(self.engine.backfill(id, request))
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

    pub(super) fn start_engine(&self, paused: bool) -> Result<(), Error> {
        self.runner.block_on(self.engine.start(paused))
    }

    /// Runs the main loop on this thread until shutdown.
    pub(super) fn run_loop(&self) {
        let relay = Relay::new();
        *self.relay.lock().unwrap_or_else(|e| e.into_inner()) = relay.clone();
        main_loop::run_on_thread(&self.engine, &self.runner, relay);
    }

    /// Whether `thread` (a loop thread) is running a job.
    pub(super) fn runs_job_on(&self, thread: std::thread::ThreadId) -> bool {
        self.relay
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|relay| relay.runs_job_on(thread))
    }

    pub(super) fn shutdown_engine(&self, wait: bool) -> Result<(), Error> {
        self.runner.block_on(self.engine.shutdown(wait))
    }
}
