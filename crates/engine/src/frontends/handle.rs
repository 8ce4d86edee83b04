//! [`JobHandle`] (APScheduler's `Job` methods) and the decorator form, [`ScheduledJob`].

use super::*;

/// A job plus the scheduler it lives in: APScheduler's `Job` methods.
#[derive(Clone)]
pub struct JobHandle {
    pub(super) scheduler: SyncScheduler,
    pub(super) job: Job,
    pub(super) status: JobStatus,
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
        display_job(&self.job, self.status, f)
    }
}

/// How a job handle prints (every front-end's).
pub(super) fn display_job(job: &Job, status: JobStatus, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match status {
        JobStatus::Scheduled | JobStatus::Paused => fmt::Display::fmt(job, f),
        JobStatus::Pending => write!(f, "{} (trigger: {}, pending)", job.name, job.trigger),
        JobStatus::Removed => write!(f, "{} (trigger: {}, removed)", job.name, job.trigger),
    }
}

/// Where a job the API just returned stands: before start (or after shutdown) the API
/// returns pending jobs.
pub(super) fn status_of(engine: &Engine, job: &Job) -> JobStatus {
    if engine.state() == SchedulerState::Stopped {
        JobStatus::Pending
    } else if job.next_run_time.is_some() {
        JobStatus::Scheduled
    } else {
        JobStatus::Paused
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
    pub(super) scheduler: &'a SyncScheduler,
    pub(super) spec: JobSpec,
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
