//! The one engine behind every front-end: job API, main loop pass, events.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use apscheduler_core::event::{self, Event, EventMask, JobFailure};
use apscheduler_core::{
    Clock, Error, ErrorKind, Executor, Job, JobRelease, JobRun, JobStore, RunReporter, SubmitError,
    SystemClock, Task, TaskFn, TaskRegistry, Trigger,
};
use apscheduler_executor_thread::ThreadPoolExecutor;
use apscheduler_store_memory::MemoryJobStore;
use apscheduler_triggers::{AnyTrigger, DateTrigger};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::config::JobDefaults;
use crate::dispatch::{Dispatcher, ListenerFn, ListenerId};
use crate::spec::{JobChanges, JobSpec, TriggerSpec};
use crate::wake::WakeSignal;

/// The alias of the store and executor created when none is configured.
pub const DEFAULT_ALIAS: &str = "default";

/// How many due jobs one claim asks a store for.
const CLAIM_BATCH: usize = 1024;

/// Upper bound on overdue run times collected for one job in one pass; beyond it the
/// oldest are dropped (a 1-second job after a year of downtime must not allocate 31 M
/// entries).
const MAX_RUN_TIMES: usize = 10_000;

/// The scheduler's state (APScheduler's `STATE_STOPPED`, `STATE_RUNNING`, `STATE_PAUSED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerState {
    /// Not started, or shut down.
    Stopped,
    /// Processing jobs.
    Running,
    /// Started, but not processing jobs.
    Paused,
}

impl SchedulerState {
    /// `stopped`, `running` or `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerState::Stopped => "stopped",
            SchedulerState::Running => "running",
            SchedulerState::Paused => "paused",
        }
    }
}

/// A job built from a [`JobSpec`] and validated, not yet added (see
/// [`Engine::add_pending`] and [`Engine::add_prepared`]).
pub(crate) struct PreparedJob(Pending);

struct Pending {
    job: Job,
    jobstore: Arc<str>,
    replace_existing: bool,
    /// The job had no trigger: it runs once, at start.
    run_once: bool,
    /// `next_run_time` was given explicitly.
    explicit_next: bool,
    /// The id was made by [`new_job_id`].
    generated_id: bool,
}

/// The jobs added before `start`, in the order they were added, in fixed-size chunks:
/// adding one never moves the others (a growing `Vec` copies every pending job, and
/// touches twice their memory, each time it doubles).
#[derive(Default)]
struct PendingJobs {
    chunks: Vec<Vec<Pending>>,
}

/// Pending jobs per chunk (about 200 KiB).
const PENDING_CHUNK: usize = 1024;

impl PendingJobs {
    fn push(&mut self, p: Pending) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < chunk.capacity() => chunk.push(p),
            _ => {
                let mut chunk = Vec::with_capacity(PENDING_CHUNK);
                chunk.push(p);
                self.chunks.push(chunk);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.chunks.iter().flatten()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.chunks.iter_mut().flatten()
    }

    fn retain(&mut self, mut keep: impl FnMut(&Pending) -> bool) {
        for chunk in &mut self.chunks {
            chunk.retain(&mut keep);
        }
        self.chunks.retain(|c| !c.is_empty());
    }
}

impl IntoIterator for PendingJobs {
    type Item = Pending;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<Pending>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

/// What one main-loop pass looks up once instead of once per job: the executors by
/// alias (and which of them got runs to flush once the pass is stored), and `now` in
/// the last job's timezone.
#[derive(Default)]
struct PassLookups {
    /// Alias, executor, and whether runs were submitted to it since the last flush.
    executors: Vec<(Arc<str>, Arc<dyn Executor>, bool)>,
    now_in_zone: Option<DateTime<Tz>>,
}

impl PassLookups {
    /// The executor by `alias`, looked up in the engine on first use in this pass.
    fn get(&mut self, engine: &Engine, alias: &str) -> Option<Arc<dyn Executor>> {
        if let Some((_, e, _)) = self.executors.iter().find(|(a, _, _)| &**a == alias) {
            return Some(e.clone());
        }
        let executor = engine.executor(alias)?;
        self.executors.push((alias.into(), executor.clone(), false));
        Some(executor)
    }

    /// Marks `executor` as having runs to start at the next flush.
    fn add(&mut self, executor: &Arc<dyn Executor>) {
        if let Some(entry) = self
            .executors
            .iter_mut()
            .find(|(_, e, _)| Arc::ptr_eq(e, executor))
        {
            entry.2 = true;
        }
    }

    /// `now` in `tz` (converting costs a zone lookup; a pass's jobs mostly share a zone).
    fn now_in(&mut self, now: DateTime<Utc>, tz: Tz) -> DateTime<Tz> {
        match self.now_in_zone {
            Some(t) if t.timezone() == tz => t,
            _ => {
                let t = now.with_timezone(&tz);
                self.now_in_zone = Some(t);
                t
            }
        }
    }

    fn flush(&mut self) {
        for (_, executor, used) in &mut self.executors {
            if std::mem::take(used) {
                executor.flush();
            }
        }
    }
}

/// How many pending jobs have each 64-bit hash of their id: a new id whose hash is not
/// there is free without scanning the pending jobs, and growing the table re-hashes no
/// id string.
///
/// Ids made by [`new_job_id`] are unique by construction, so they cannot conflict with
/// each other, only with an explicit id equal to one of them. They are left out (one
/// table probe less per added job, the common case) until an explicit id shaped like
/// them is added; then they are counted from there on.
#[derive(Default)]
struct PendingIds {
    hasher: foldhash::fast::RandomState,
    counts: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    /// Whether generated ids are counted too.
    generated_counted: bool,
}

impl PendingIds {
    /// Whether the id of a pending job (made by [`new_job_id`] or not) is counted.
    fn counts_id(&self, generated: bool) -> bool {
        !generated || self.generated_counted
    }
    fn key(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }
    #[cfg(test)]
    fn may_contain(&self, key: u64) -> bool {
        self.counts.contains_key(&key)
    }
    fn insert(&mut self, key: u64) {
        *self.counts.entry(key).or_insert(0) += 1;
    }
    /// Counts `key` if no pending id has it yet and says so; a key already there is
    /// left as it is (one table probe for the common case of a fresh id).
    fn insert_new(&mut self, key: u64) -> bool {
        match self.counts.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(1);
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        }
    }
    fn remove(&mut self, key: u64) {
        if let Some(n) = self.counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key);
            }
        }
    }
    fn clear(&mut self) {
        self.counts.clear();
        self.generated_counted = false;
    }
}

/// Hashes a key that already is a hash (a `u64` from [`PendingIds::key`]) to itself.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

struct State {
    status: SchedulerState,
    stores: Vec<(Arc<str>, Arc<dyn JobStore>)>,
    executors: Vec<(Arc<str>, Arc<dyn Executor>)>,
    pending: PendingJobs,
    /// The ids in `pending`, so adding a pending job does not scan them all.
    pending_ids: PendingIds,
    defaults: JobDefaults,
    timezone: Tz,
    /// Consecutive failures per store, for retry backoff.
    store_failures: HashMap<Arc<str>, u32>,
}

pub(crate) struct Inner {
    scheduler_id: String,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Held while a pass processes a store and while the API changes jobs, so a claimed
    /// job is never overwritten by a concurrent modification (APScheduler's jobstores lock).
    jobs_lock: tokio::sync::Mutex<()>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) wake: WakeSignal,
    registry: RwLock<TaskRegistry>,
    lease: Duration,
    /// Releases a store refused (it was down): retried before the next claim, so a run
    /// that happened is never claimed and run again once the store is back.
    unreleased: Mutex<HashMap<Arc<str>, Vec<JobRelease>>>,
}

/// The scheduler engine. Cheap to clone (shared).
///
/// Front-ends ([`crate::BlockingScheduler`], [`crate::BackgroundScheduler`],
/// [`crate::AsyncScheduler`], [`crate::DrivenScheduler`]) drive its main loop; they all
/// expose the same job API by delegating here.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("scheduler_id", &self.inner.scheduler_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The machine's local timezone, or UTC when it cannot be determined.
pub fn local_timezone() -> Tz {
    iana_time_zone::get_timezone()
        .ok()
        .and_then(|name| name.parse().ok())
        .unwrap_or(Tz::UTC)
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    clock: Arc<dyn Clock>,
    timezone: Option<Tz>,
    defaults: JobDefaults,
    stores: Vec<(Arc<str>, Arc<dyn JobStore>)>,
    executors: Vec<(Arc<str>, Arc<dyn Executor>)>,
    scheduler_id: Option<String>,
    lease: Duration,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            clock: Arc::new(SystemClock),
            timezone: None,
            defaults: JobDefaults::default(),
            stores: Vec::new(),
            executors: Vec::new(),
            scheduler_id: None,
            lease: Duration::from_secs(60),
        }
    }
}

impl EngineBuilder {
    /// The time source (inject a `ManualClock` in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// The default timezone of triggers (default: the machine's local zone).
    pub fn timezone(mut self, tz: Tz) -> Self {
        self.timezone = Some(tz);
        self
    }
    /// Job defaults.
    pub fn job_defaults(mut self, defaults: JobDefaults) -> Self {
        self.defaults = defaults;
        self
    }
    /// Adds a job store under `alias`.
    pub fn jobstore(mut self, alias: impl Into<String>, store: Arc<dyn JobStore>) -> Self {
        let alias: Arc<str> = alias.into().into();
        self.stores.retain(|(a, _)| *a != alias);
        self.stores.push((alias, store));
        self
    }
    /// Adds an executor under `alias`.
    pub fn executor(mut self, alias: impl Into<String>, executor: Arc<dyn Executor>) -> Self {
        let alias: Arc<str> = alias.into().into();
        self.executors.retain(|(a, _)| *a != alias);
        self.executors.push((alias, executor));
        self
    }
    /// Whether an executor is configured under `alias`.
    pub fn has_executor(&self, alias: &str) -> bool {
        self.executors.iter().any(|(a, _)| &**a == alias)
    }
    /// This scheduler's id in shared stores (default: a random UUID).
    pub fn scheduler_id(mut self, id: impl Into<String>) -> Self {
        self.scheduler_id = Some(id.into());
        self
    }
    /// How long a claim on due jobs lasts before other schedulers may take them over.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Builds the engine (stopped).
    pub fn build(self) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                scheduler_id: self
                    .scheduler_id
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                clock: self.clock,
                state: Mutex::new(State {
                    status: SchedulerState::Stopped,
                    stores: self.stores,
                    executors: self.executors,
                    pending: PendingJobs::default(),
                    pending_ids: PendingIds::default(),
                    defaults: self.defaults,
                    timezone: self.timezone.unwrap_or_else(local_timezone),
                    store_failures: HashMap::new(),
                }),
                jobs_lock: tokio::sync::Mutex::new(()),
                dispatcher: Arc::new(Dispatcher::new()),
                wake: WakeSignal::new(),
                registry: RwLock::new(TaskRegistry::new()),
                lease: self.lease,
                unreleased: Mutex::new(HashMap::new()),
            }),
        }
    }
}

/// Turns executor callbacks into events.
struct Reporter {
    /// The dispatcher alone, not the engine: workers report every run, and touching
    /// the engine's shared reference count from each of them costs more than the event.
    dispatcher: Arc<Dispatcher>,
}

impl RunReporter for Reporter {
    fn submitted(&self, run: &JobRun) {
        self.dispatcher
            .emit(event::EVENT_JOB_SUBMITTED, || Event::Submission {
                code: event::EVENT_JOB_SUBMITTED,
                job_id: run.job_id.clone(),
                jobstore: run.jobstore.clone(),
                scheduled_run_times: run.run_times.clone(),
            });
    }

    fn outcome(&self, run: &JobRun, run_time: DateTime<Tz>, result: Result<Value, JobFailure>) {
        match result {
            Ok(retval) => {
                tracing::info!(target: "apscheduler", job_id = %run.job_id, run_time = %run_time, "job executed successfully");
                self.dispatcher
                    .emit(event::EVENT_JOB_EXECUTED, || Event::Execution {
                        code: event::EVENT_JOB_EXECUTED,
                        job_id: run.job_id.clone(),
                        jobstore: run.jobstore.clone(),
                        scheduled_run_time: run_time,
                        retval: Some(retval),
                        exception: None,
                    });
            }
            Err(failure) => {
                apscheduler_core::log_error!(target: "apscheduler", job_id = %run.job_id, run_time = %run_time, "job raised an error: {failure}");
                self.dispatcher
                    .emit(event::EVENT_JOB_ERROR, || Event::Execution {
                        code: event::EVENT_JOB_ERROR,
                        job_id: run.job_id.clone(),
                        jobstore: run.jobstore.clone(),
                        scheduled_run_time: run_time,
                        retval: None,
                        exception: Some(failure),
                    });
            }
        }
    }

    fn finished(&self, _run: &JobRun) {}
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The current state.
    pub fn state(&self) -> SchedulerState {
        lock(&self.inner.state).status
    }

    /// The default timezone of triggers.
    pub fn timezone(&self) -> Tz {
        lock(&self.inner.state).timezone
    }

    /// This scheduler's id in shared stores.
    pub fn scheduler_id(&self) -> &str {
        &self.inner.scheduler_id
    }

    /// The current job defaults.
    pub fn job_defaults(&self) -> JobDefaults {
        lock(&self.inner.state).defaults
    }

    /// "Now" from the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn now_tz(&self, tz: Tz) -> DateTime<Tz> {
        self.inner.clock.now().with_timezone(&tz)
    }

    /// Registers a named task (see [`TaskRegistry::register`]).
    pub fn register_task<F>(&self, name: impl Into<String>, f: F)
    where
        F: Fn(&apscheduler_core::TaskContext) -> apscheduler_core::TaskResult
            + Send
            + Sync
            + 'static,
    {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .register(name, f);
    }

    /// Registers an async named task.
    pub fn register_async_task<F, Fut>(&self, name: impl Into<String>, f: F)
    where
        F: Fn(apscheduler_core::TaskContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = apscheduler_core::TaskResult> + Send + 'static,
    {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .register_async(name, f);
    }

    /// Registers every task of `registry`.
    pub fn register_tasks(&self, registry: &TaskRegistry) {
        let mut mine = self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for name in registry.names() {
            if let Some(task) = registry.get(name) {
                mine.insert(name, task.clone());
            }
        }
    }

    fn resolve_task(&self, task: &Task) -> Option<TaskFn> {
        match task {
            Task::Closure(f) => Some(f.clone()),
            Task::Named(name) => self
                .inner
                .registry
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned(),
        }
    }

    // ----------------------------------------------------------------- listeners

    /// Calls `callback` for every event whose code is in `mask`
    /// (`EVENT_JOB_EXECUTED | EVENT_JOB_ERROR`). Listeners run on a dedicated thread in
    /// the order events happen; a panicking listener is logged and skipped.
    pub fn add_listener<F>(&self, callback: F, mask: EventMask) -> ListenerId
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        let callback: Arc<ListenerFn> = Arc::new(callback);
        self.inner.dispatcher.add(callback, mask)
    }

    /// Removes a listener; returns whether it was registered.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.inner.dispatcher.remove(id)
    }

    /// Waits until every event so far has reached the listeners.
    pub fn flush_events(&self) {
        self.inner.dispatcher.flush();
    }

    fn emit_job(&self, code: EventMask, job_id: &Arc<str>, jobstore: &Arc<str>) {
        self.inner.dispatcher.emit(code, || Event::Job {
            code,
            job_id: job_id.clone(),
            jobstore: jobstore.clone(),
        });
    }

    fn emit_scheduler(&self, code: EventMask, alias: Option<Arc<str>>) {
        self.inner
            .dispatcher
            .emit(code, || Event::Scheduler { code, alias });
    }

    fn emit_component(&self, code: EventMask, alias: &Arc<str>) {
        self.inner.dispatcher.emit(code, || Event::Component {
            code,
            alias: alias.clone(),
        });
    }

    /// Wakes the main loop so it recomputes its next wake-up.
    pub fn wakeup(&self) {
        self.inner.wake.wake();
    }

    pub(crate) fn wake_signal(&self) -> &WakeSignal {
        &self.inner.wake
    }

    // ----------------------------------------------------------------- configuration

    /// Changes the default timezone and job defaults; only while stopped.
    ///
    /// # Errors
    /// `InvalidState` once the scheduler is running.
    pub fn configure(
        &self,
        timezone: Option<Tz>,
        defaults: Option<JobDefaults>,
    ) -> Result<(), Error> {
        let mut st = lock(&self.inner.state);
        if st.status != SchedulerState::Stopped {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "cannot configure the scheduler while it is running",
            ));
        }
        if let Some(tz) = timezone {
            st.timezone = tz;
        }
        if let Some(d) = defaults {
            st.defaults = d;
        }
        Ok(())
    }

    /// Applies a whole configuration atomically while stopped (for
    /// `Engine::configure_with` in `config.rs`): components replace those with the same
    /// alias in place, others are appended.
    pub(crate) fn apply_configuration(
        &self,
        timezone: Option<Tz>,
        defaults: impl FnOnce(JobDefaults) -> JobDefaults,
        stores: Vec<(Arc<str>, Arc<dyn JobStore>)>,
        executors: Vec<(Arc<str>, Arc<dyn Executor>)>,
    ) -> Result<(), Error> {
        fn put<T: ?Sized>(list: &mut Vec<(Arc<str>, Arc<T>)>, alias: &Arc<str>, item: &Arc<T>) {
            match list.iter_mut().find(|(a, _)| a == alias) {
                Some(slot) => slot.1 = item.clone(),
                None => list.push((alias.clone(), item.clone())),
            }
        }
        {
            let mut st = lock(&self.inner.state);
            if st.status != SchedulerState::Stopped {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "cannot configure the scheduler while it is running",
                ));
            }
            if let Some(tz) = timezone {
                st.timezone = tz;
            }
            st.defaults = defaults(st.defaults);
            for (alias, store) in &stores {
                put(&mut st.stores, alias, store);
            }
            for (alias, executor) in &executors {
                put(&mut st.executors, alias, executor);
            }
        }
        for (alias, _) in &executors {
            self.emit_component(event::EVENT_EXECUTOR_ADDED, alias);
        }
        for (alias, _) in &stores {
            self.emit_component(event::EVENT_JOBSTORE_ADDED, alias);
        }
        Ok(())
    }

    fn stores(&self) -> Vec<(Arc<str>, Arc<dyn JobStore>)> {
        lock(&self.inner.state).stores.clone()
    }

    fn executor(&self, alias: &str) -> Option<Arc<dyn Executor>> {
        lock(&self.inner.state)
            .executors
            .iter()
            .find(|(a, _)| &**a == alias)
            .map(|(_, e)| e.clone())
    }

    fn reporter(&self) -> Arc<dyn RunReporter> {
        Arc::new(Reporter {
            dispatcher: self.inner.dispatcher.clone(),
        })
    }

    /// Adds a job store. When the scheduler runs, the store is started at once.
    ///
    /// # Errors
    /// `Conflict` when the alias is taken; the store's own start errors.
    pub async fn add_jobstore(&self, store: Arc<dyn JobStore>, alias: &str) -> Result<(), Error> {
        let alias: Arc<str> = alias.into();
        let running = {
            let st = lock(&self.inner.state);
            if st.stores.iter().any(|(a, _)| *a == alias) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("This scheduler already has a job store by the alias of {alias}"),
                ));
            }
            st.status != SchedulerState::Stopped
        };
        if running {
            store.start(&alias).await?;
        }
        lock(&self.inner.state).stores.push((alias.clone(), store));
        self.emit_component(event::EVENT_JOBSTORE_ADDED, &alias);
        if running {
            self.wakeup();
        }
        Ok(())
    }

    /// Removes a job store (shutting it down when `shutdown`).
    ///
    /// # Errors
    /// `NotFound` for an unknown alias.
    pub async fn remove_jobstore(&self, alias: &str, shutdown: bool) -> Result<(), Error> {
        let store = {
            let mut st = lock(&self.inner.state);
            let i = st
                .stores
                .iter()
                .position(|(a, _)| &**a == alias)
                .ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("No such job store: {alias}"))
                })?;
            st.stores.remove(i)
        };
        if shutdown {
            store.1.shutdown().await?;
        }
        self.emit_component(event::EVENT_JOBSTORE_REMOVED, &store.0);
        Ok(())
    }

    /// Adds an executor. When the scheduler runs, the executor is started at once.
    ///
    /// # Errors
    /// `Conflict` when the alias is taken; the executor's start errors.
    pub fn add_executor(&self, executor: Arc<dyn Executor>, alias: &str) -> Result<(), Error> {
        let alias: Arc<str> = alias.into();
        let running = {
            let st = lock(&self.inner.state);
            if st.executors.iter().any(|(a, _)| *a == alias) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("This scheduler already has an executor by the alias of {alias}"),
                ));
            }
            st.status != SchedulerState::Stopped
        };
        if running {
            executor.start(self.reporter())?;
        }
        lock(&self.inner.state)
            .executors
            .push((alias.clone(), executor));
        self.emit_component(event::EVENT_EXECUTOR_ADDED, &alias);
        Ok(())
    }

    /// Removes an executor (shutting it down, waiting for its jobs, when `shutdown`).
    ///
    /// # Errors
    /// `NotFound` for an unknown alias.
    pub fn remove_executor(&self, alias: &str, shutdown: bool) -> Result<(), Error> {
        let executor = {
            let mut st = lock(&self.inner.state);
            let i = st
                .executors
                .iter()
                .position(|(a, _)| &**a == alias)
                .ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("No such executor: {alias}"))
                })?;
            st.executors.remove(i)
        };
        if shutdown {
            executor.1.shutdown(true);
        }
        self.emit_component(event::EVENT_EXECUTOR_REMOVED, &executor.0);
        Ok(())
    }

    // ----------------------------------------------------------------- life cycle

    /// Starts the scheduler: starts executors and stores (creating the `default` memory
    /// store and thread pool when missing), adds pending jobs, and begins processing
    /// (or stays paused when `paused`).
    ///
    /// # Errors
    /// `InvalidState` when already running; a store or executor that fails to start.
    pub async fn start(&self, paused: bool) -> Result<(), Error> {
        let (stores, executors) = {
            let mut st = lock(&self.inner.state);
            if st.status != SchedulerState::Stopped {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "Scheduler is already running",
                ));
            }
            if !st.stores.iter().any(|(a, _)| &**a == DEFAULT_ALIAS) {
                st.stores
                    .push((DEFAULT_ALIAS.into(), Arc::new(MemoryJobStore::new())));
            }
            if !st.executors.iter().any(|(a, _)| &**a == DEFAULT_ALIAS) {
                st.executors
                    .push((DEFAULT_ALIAS.into(), Arc::new(ThreadPoolExecutor::new(10))));
            }
            (st.stores.clone(), st.executors.clone())
        };
        for (alias, executor) in &executors {
            executor.start(self.reporter()).map_err(|e| {
                Error::new(e.kind(), format!("executor '{alias}' failed to start: {e}"))
                    .with_source(e)
            })?;
        }
        for (alias, store) in &stores {
            match store.start(alias).await {
                Ok(()) => {}
                // A store that is down now is retried by the main loop with backoff, so
                // a scheduler can start while its database is restarting.
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "job store is unavailable at start; will retry: {e}");
                }
                Err(e) => {
                    return Err(Error::new(
                        e.kind(),
                        format!("job store '{alias}' failed to start: {e}"),
                    )
                    .with_source(e))
                }
            }
        }
        let pending = {
            let mut st = lock(&self.inner.state);
            st.status = if paused {
                SchedulerState::Paused
            } else {
                SchedulerState::Running
            };
            st.pending_ids.clear();
            std::mem::take(&mut st.pending)
        };
        {
            let _guard = self.inner.jobs_lock.lock().await;
            for p in pending {
                let id = p.job.id.clone();
                if let Err(e) = self.real_add(p, self.inner.clock.now()).await {
                    apscheduler_core::log_error!(target: "apscheduler", job_id = %id, "cannot add pending job: {e}");
                }
            }
        }
        tracing::info!(target: "apscheduler", "Scheduler started");
        self.emit_scheduler(event::EVENT_SCHEDULER_STARTED, None);
        self.wakeup();
        Ok(())
    }

    /// Shuts the scheduler down: stops processing, shuts executors down (waiting for
    /// running jobs when `wait`) and closes the stores.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub async fn shutdown(&self, wait: bool) -> Result<(), Error> {
        let (stores, executors) = {
            let mut st = lock(&self.inner.state);
            if st.status == SchedulerState::Stopped {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "Scheduler is not running",
                ));
            }
            st.status = SchedulerState::Stopped;
            (st.stores.clone(), st.executors.clone())
        };
        self.wakeup();
        for (_, executor) in &executors {
            executor.shutdown(wait);
        }
        for (alias, store) in &stores {
            if let Err(e) = store.shutdown().await {
                apscheduler_core::log_warn!(target: "apscheduler", "job store '{alias}' did not shut down cleanly: {e}");
            }
        }
        tracing::info!(target: "apscheduler", "Scheduler has been shut down");
        self.emit_scheduler(event::EVENT_SCHEDULER_SHUTDOWN, None);
        Ok(())
    }

    /// Pauses job processing (jobs keep their next run times).
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn pause(&self) -> Result<(), Error> {
        if self.switch_processing(SchedulerState::Paused)? {
            tracing::info!(target: "apscheduler", "Paused scheduler job processing");
            self.emit_scheduler(event::EVENT_SCHEDULER_PAUSED, None);
        }
        Ok(())
    }

    /// Moves a started scheduler to `to` (running or paused); returns whether it changed.
    fn switch_processing(&self, to: SchedulerState) -> Result<bool, Error> {
        let mut st = lock(&self.inner.state);
        if st.status == SchedulerState::Stopped {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "Scheduler is not running",
            ));
        }
        let changed = st.status != to;
        st.status = to;
        Ok(changed)
    }

    /// Resumes job processing.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn resume(&self) -> Result<(), Error> {
        if self.switch_processing(SchedulerState::Running)? {
            tracing::info!(target: "apscheduler", "Resumed scheduler job processing");
            self.emit_scheduler(event::EVENT_SCHEDULER_RESUMED, None);
            self.wakeup();
        }
        Ok(())
    }

    // ----------------------------------------------------------------- jobs

    /// Adds a job. Before `start` it is pending and gets its first run time at start.
    ///
    /// # Errors
    /// `InvalidInput` for a bad trigger or option (naming it); `NotFound` for an unknown
    /// job store, executor or task name; `Serialization` for a closure sent to a
    /// persistent store or to an out-of-process executor; `Conflict` for a taken id
    /// without `replace_existing`.
    pub async fn add_job(&self, spec: JobSpec) -> Result<Job, Error> {
        let pending = self.prepare_job(spec)?;
        match self.add_pending(pending)? {
            Ok(job) => Ok(job),
            Err(pending) => self.add_prepared(pending).await,
        }
    }

    /// Builds the job a spec describes (trigger, id, options), validated.
    pub(crate) fn prepare_job(&self, spec: JobSpec) -> Result<PreparedJob, Error> {
        let (tz, defaults, executor, jobstore) = {
            let st = lock(&self.inner.state);
            (
                st.timezone,
                st.defaults,
                shared_alias(&st.executors, spec.executor.as_deref()),
                shared_alias(&st.stores, spec.jobstore.as_deref()),
            )
        };
        let now = self.now_tz(tz);
        let run_once = matches!(spec.trigger, TriggerSpec::RunOnce);
        let trigger: Arc<dyn Trigger> = match &spec.trigger {
            TriggerSpec::RunOnce => Arc::new(DateTrigger::new(now)),
            TriggerSpec::Args { kind, args } => match spec.jitter {
                None => AnyTrigger::from_args(kind, args, tz, now)?.into_shared(),
                Some(j) => {
                    let mut args = args.clone();
                    match &mut args {
                        Value::Object(map) => {
                            map.insert("jitter".into(), serde_json::json!(j));
                        }
                        Value::Null => args = serde_json::json!({ "jitter": j }),
                        _ => {}
                    }
                    AnyTrigger::from_args(kind, &args, tz, now)?.into_shared()
                }
            },
            TriggerSpec::Built(t) => {
                if spec.jitter.is_some() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "invalid value for 'jitter': give jitter to the trigger itself when passing a built trigger",
                    ));
                }
                t.clone()
            }
        };
        let id: Arc<str> = match &spec.id {
            Some(id) if id.is_empty() => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "invalid value for 'id': '': a job id must not be empty",
                ))
            }
            Some(id) => id.as_str().into(),
            None => new_job_id(),
        };
        let name: Arc<str> = match (&spec.name, &spec.task) {
            (Some(n), _) => n.as_str().into(),
            (None, Task::Named(n)) => n.clone(),
            (None, Task::Closure(_)) => id.clone(),
        };
        let max_instances = spec.max_instances.unwrap_or(defaults.max_instances);
        if max_instances == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "invalid value for 'max_instances': 0: must be at least 1",
            ));
        }
        let job = Job {
            id,
            name,
            task: spec.task.clone(),
            args: if spec.args.is_empty() {
                apscheduler_core::no_args()
            } else {
                Arc::new(spec.args.clone())
            },
            kwargs: if spec.kwargs.is_empty() {
                apscheduler_core::no_kwargs()
            } else {
                Arc::new(spec.kwargs.clone())
            },
            trigger,
            executor,
            misfire_grace_time: spec
                .misfire_grace_time
                .unwrap_or(defaults.misfire_grace_time),
            coalesce: spec.coalesce.unwrap_or(defaults.coalesce),
            max_instances,
            next_run_time: spec.next_run_time.flatten(),
        };
        Ok(PreparedJob(Pending {
            job,
            jobstore,
            replace_existing: spec.replace_existing,
            run_once,
            explicit_next: spec.next_run_time.is_some(),
            generated_id: spec.id.is_none(),
        }))
    }

    /// Adds a prepared job to the pending jobs if the scheduler is not started (`Ok`),
    /// or gives it back for [`Engine::add_prepared`].
    pub(crate) fn add_pending(
        &self,
        prepared: PreparedJob,
    ) -> Result<Result<Job, PreparedJob>, Error> {
        let pending = prepared.0;
        let job = pending.job.clone();
        {
            // Checked again under the lock that guards the pending jobs: `start` may
            // have taken them since.
            if lock(&self.inner.state).status != SchedulerState::Stopped {
                return Ok(Err(PreparedJob(pending)));
            }
            self.check_job(&pending.job, &pending.jobstore, false)?;
            let mut st = lock(&self.inner.state);
            if st.status != SchedulerState::Stopped {
                return Ok(Err(PreparedJob(pending)));
            }
            let st = &mut *st;
            if !pending.generated_id
                && !st.pending_ids.generated_counted
                && could_be_generated(&job.id)
            {
                // This id might equal a generated one: count those from now on.
                for p in st.pending.iter().filter(|p| p.generated_id) {
                    let key = st.pending_ids.key(&p.job.id);
                    st.pending_ids.insert(key);
                }
                st.pending_ids.generated_counted = true;
            }
            let key = st.pending_ids.key(&job.id);
            if !st.pending_ids.counts_id(pending.generated_id) {
                // A generated id, unique by construction.
            } else if !st.pending_ids.insert_new(key) {
                if st.pending.iter().any(|p| p.job.id == job.id) {
                    if !pending.replace_existing {
                        return Err(Error::conflict(&job.id));
                    }
                    // Kept beside the earlier one, as APScheduler keeps its pending list:
                    // at start both are added in order (two EVENT_JOB_ADDED) and this
                    // one replaces the other.
                    st.pending_ids.insert(key);
                } else {
                    // Another id with the same hash: count this one too.
                    st.pending_ids.insert(key);
                }
            }
            st.pending.push(pending);
        }
        tracing::info!(target: "apscheduler", job_id = %job.id, "Adding job tentatively -- it will be properly scheduled when the scheduler starts");
        Ok(Ok(job))
    }

    /// Adds a prepared job to its store in a started scheduler.
    pub(crate) async fn add_prepared(&self, prepared: PreparedJob) -> Result<Job, Error> {
        let pending = prepared.0;
        let _guard = self.inner.jobs_lock.lock().await;
        // The time of adding is read under the lock, as APScheduler does.
        let added = self.real_add(pending, self.inner.clock.now()).await?;
        // Wakes the main loop unless it already wakes by the new job's run time.
        self.inner
            .wake
            .wake_for(added.next_run_time.map(|t| t.with_timezone(&Utc)));
        Ok(added)
    }

    /// Validates a job against the configured stores, executors and tasks; returns its
    /// store when there is one.
    fn check_job(
        &self,
        job: &Job,
        jobstore: &str,
        require_components: bool,
    ) -> Result<Option<Arc<dyn JobStore>>, Error> {
        // Both looked up under one lock.
        let (store, executor) = {
            let st = lock(&self.inner.state);
            (
                st.stores
                    .iter()
                    .find(|(a, _)| &**a == jobstore)
                    .map(|(_, s)| s.clone()),
                st.executors
                    .iter()
                    .find(|(a, _)| **a == *job.executor)
                    .map(|(_, e)| e.clone()),
            )
        };
        if require_components {
            if store.is_none() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("No such job store: {jobstore}"),
                ));
            }
            if executor.is_none() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("No such executor: {}", job.executor),
                ));
            }
        }
        if let Task::Closure(_) = job.task {
            if let Some(store) = &store {
                if store.is_persistent() {
                    return Err(Error::new(
                        ErrorKind::Serialization,
                        format!(
                            "job '{}' runs a closure, which job store '{jobstore}' would have to \
                             serialize: register the task by name instead",
                            job.id
                        ),
                    ));
                }
            }
            if let Some(executor) = &executor {
                if !executor.runs_in_process() {
                    return Err(Error::new(
                        ErrorKind::Serialization,
                        format!(
                            "job '{}' runs a closure, which executor '{}' would have to send to \
                             another process: register the task by name instead",
                            job.id, job.executor
                        ),
                    ));
                }
            }
        }
        if let Task::Named(name) = &job.task {
            if self.resolve_task(&job.task).is_none()
                && executor.as_ref().is_none_or(|e| e.runs_in_process())
            {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no task is registered under the name '{name}'"),
                ));
            }
        }
        Ok(store)
    }

    /// Stores a job while the scheduler runs (caller holds `jobs_lock`).
    async fn real_add(&self, p: Pending, now: DateTime<Utc>) -> Result<Job, Error> {
        let Pending {
            mut job,
            jobstore,
            replace_existing,
            run_once,
            explicit_next,
            generated_id: _,
        } = p;
        let store = self.check_job(&job, &jobstore, true)?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("No such job store: {jobstore}"),
            )
        })?;
        let now = now.with_timezone(&job.trigger.timezone());
        if run_once {
            // A job without a trigger runs once, now (at start for pending jobs).
            job.trigger = Arc::new(DateTrigger::new(now));
        }
        if !explicit_next {
            // Re-declaring a paused job (replace_existing) keeps it paused.
            let keep_paused = replace_existing
                && store
                    .lookup_job(&job.id)
                    .await?
                    .is_some_and(|existing| existing.is_paused());
            if keep_paused {
                job.next_run_time = None;
            } else {
                job.next_run_time = job.trigger.next_fire_time(None, &now);
                if job.next_run_time.is_none() {
                    // The trigger has nothing left: announce and drop the job at once.
                    if replace_existing && store.lookup_job(&job.id).await?.is_some() {
                        store.remove_job(&job.id).await?;
                    }
                    self.emit_job(event::EVENT_JOB_ADDED, &job.id, &jobstore);
                    self.emit_job(event::EVENT_JOB_REMOVED, &job.id, &jobstore);
                    return Ok(job);
                }
            }
        }
        store.add_job(job.clone(), replace_existing).await?;
        tracing::info!(target: "apscheduler", job_id = %job.id, jobstore = %jobstore, "Added job \"{}\" to job store \"{}\"", job.name, jobstore);
        self.emit_job(event::EVENT_JOB_ADDED, &job.id, &jobstore);
        Ok(job)
    }

    /// Finds a job and the alias of its store (`jobstore` = `None`: search every store).
    async fn find(
        &self,
        id: &str,
        jobstore: Option<&str>,
    ) -> Result<(Job, Arc<str>, Arc<dyn JobStore>), Error> {
        for (alias, store) in self.stores() {
            if jobstore.is_some_and(|j| j != &*alias) {
                continue;
            }
            if let Some(job) = store.lookup_job(id).await? {
                return Ok((job, alias, store));
            }
        }
        Err(Error::job_not_found(id))
    }

    /// Applies `f` to a pending job (before start).
    fn modify_pending(&self, id: &str, f: impl FnOnce(&mut Pending)) -> Option<Job> {
        let mut st = lock(&self.inner.state);
        let p = st.pending.iter_mut().find(|p| &*p.job.id == id)?;
        f(p);
        Some(p.job.clone())
    }

    /// Changes a job's options (`modify_job`).
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn modify_job(
        &self,
        id: &str,
        jobstore: Option<&str>,
        changes: JobChanges,
    ) -> Result<Job, Error> {
        if self.state() == SchedulerState::Stopped {
            return self
                .modify_pending(id, |p| {
                    apply_changes(&mut p.job, &changes);
                    if changes.next_run_time.is_some() {
                        p.explicit_next = true;
                    }
                })
                .ok_or_else(|| Error::job_not_found(id));
        }
        let _guard = self.inner.jobs_lock.lock().await;
        let (mut job, alias, store) = self.find(id, jobstore).await?;
        apply_changes(&mut job, &changes);
        store.update_job(job.clone()).await?;
        tracing::info!(target: "apscheduler", job_id = %job.id, "Modified job");
        self.emit_job(event::EVENT_JOB_MODIFIED, &job.id, &alias);
        self.wakeup();
        Ok(job)
    }

    /// Gives a job a new trigger and recomputes its next run time from now
    /// (`reschedule_job`). A paused job stays paused; the trigger applies on resume.
    /// A trigger with no fire time left removes the job.
    ///
    /// # Errors
    /// `NotFound` for an unknown job; `InvalidInput` for a bad trigger.
    pub async fn reschedule_job(
        &self,
        id: &str,
        jobstore: Option<&str>,
        kind: &str,
        args: &Value,
    ) -> Result<Option<Job>, Error> {
        let tz = self.timezone();
        let trigger = AnyTrigger::from_args(kind, args, tz, self.now_tz(tz))?.into_shared();
        self.reschedule_job_with(id, jobstore, trigger).await
    }

    /// [`reschedule_job`](Self::reschedule_job) with a built trigger.
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn reschedule_job_with(
        &self,
        id: &str,
        jobstore: Option<&str>,
        trigger: Arc<dyn Trigger>,
    ) -> Result<Option<Job>, Error> {
        if self.state() == SchedulerState::Stopped {
            return self
                .modify_pending(id, |p| {
                    p.job.trigger = trigger.clone();
                    p.run_once = false;
                })
                .map(Some)
                .ok_or_else(|| Error::job_not_found(id));
        }
        let _guard = self.inner.jobs_lock.lock().await;
        let (mut job, alias, store) = self.find(id, jobstore).await?;
        let paused = job.is_paused();
        job.trigger = trigger;
        self.store_rescheduled(job, &alias, &store, !paused).await
    }

    /// Stores a job whose schedule changed: with `recompute`, its next run time is
    /// computed from now and a trigger with nothing left removes the job (`None`).
    async fn store_rescheduled(
        &self,
        mut job: Job,
        alias: &Arc<str>,
        store: &Arc<dyn JobStore>,
        recompute: bool,
    ) -> Result<Option<Job>, Error> {
        if recompute {
            let now = self.now_tz(job.trigger.timezone());
            job.next_run_time = job.trigger.next_fire_time(None, &now);
            if job.next_run_time.is_none() {
                store.remove_job(&job.id).await?;
                self.emit_job(event::EVENT_JOB_REMOVED, &job.id, alias);
                return Ok(None);
            }
        }
        store.update_job(job.clone()).await?;
        self.emit_job(event::EVENT_JOB_MODIFIED, &job.id, alias);
        self.wakeup();
        Ok(Some(job))
    }

    /// Pauses a job (clears its next run time).
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn pause_job(&self, id: &str, jobstore: Option<&str>) -> Result<Job, Error> {
        self.modify_job(id, jobstore, JobChanges::new().next_run_time(None))
            .await
    }

    /// Resumes a paused job: its next run time is computed from now. A job that is not
    /// paused is left as it is. A trigger with no fire time left removes the job.
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn resume_job(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        if self.state() == SchedulerState::Stopped {
            return self
                .modify_pending(id, |p| {
                    if p.job.next_run_time.is_none() {
                        p.explicit_next = false;
                    }
                })
                .map(Some)
                .ok_or_else(|| Error::job_not_found(id));
        }
        let _guard = self.inner.jobs_lock.lock().await;
        let (job, alias, store) = self.find(id, jobstore).await?;
        if !job.is_paused() {
            return Ok(Some(job));
        }
        self.store_rescheduled(job, &alias, &store, true).await
    }

    /// Removes a job.
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn remove_job(&self, id: &str, jobstore: Option<&str>) -> Result<(), Error> {
        if self.state() == SchedulerState::Stopped {
            let mut st = lock(&self.inner.state);
            // The first pending job with this id (two may share it, the later one added
            // with replace_existing), as APScheduler removes from its pending list.
            let mut removed = None;
            st.pending.retain(|p| {
                let hit = removed.is_none()
                    && &*p.job.id == id
                    && jobstore.is_none_or(|a| *p.jobstore == *a);
                if hit {
                    removed = Some(p.generated_id);
                }
                !hit
            });
            return match removed {
                Some(generated) => {
                    if st.pending_ids.counts_id(generated) {
                        let key = st.pending_ids.key(id);
                        st.pending_ids.remove(key);
                    }
                    Ok(())
                }
                None => Err(Error::job_not_found(id)),
            };
        }
        let _guard = self.inner.jobs_lock.lock().await;
        let (job, alias, store) = self.find(id, jobstore).await?;
        store.remove_job(&job.id).await?;
        tracing::info!(target: "apscheduler", job_id = %job.id, "Removed job");
        self.emit_job(event::EVENT_JOB_REMOVED, &job.id, &alias);
        Ok(())
    }

    /// Removes every job (of one store, or of all).
    ///
    /// # Errors
    /// Store errors.
    pub async fn remove_all_jobs(&self, jobstore: Option<&str>) -> Result<(), Error> {
        {
            let mut st = lock(&self.inner.state);
            st.pending
                .retain(|p| jobstore.is_some_and(|j| j != &*p.jobstore));
            let State {
                pending,
                pending_ids,
                ..
            } = &mut *st;
            // Rebuilt from what is left: generated ids are counted only if they were.
            pending_ids.counts.clear();
            for p in pending.iter() {
                if pending_ids.counts_id(p.generated_id) {
                    let key = pending_ids.key(&p.job.id);
                    pending_ids.insert(key);
                }
            }
        }
        let _guard = self.inner.jobs_lock.lock().await;
        if self.state() != SchedulerState::Stopped {
            for (alias, store) in self.stores() {
                if jobstore.is_some_and(|j| j != &*alias) {
                    continue;
                }
                store.remove_all_jobs().await?;
            }
        }
        self.emit_scheduler(event::EVENT_ALL_JOBS_REMOVED, jobstore.map(Into::into));
        Ok(())
    }

    /// The job with this id.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_job(&self, id: &str, jobstore: Option<&str>) -> Result<Option<Job>, Error> {
        if self.state() == SchedulerState::Stopped {
            let st = lock(&self.inner.state);
            return Ok(st
                .pending
                .iter()
                .find(|p| &*p.job.id == id && jobstore.is_none_or(|j| j == &*p.jobstore))
                .map(|p| p.job.clone()));
        }
        match self.find(id, jobstore).await {
            Ok((job, _, _)) => Ok(Some(job)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every job with its store alias (pending jobs before start), ordered by next run
    /// time then id, paused last.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_jobs_with_store(
        &self,
        jobstore: Option<&str>,
    ) -> Result<Vec<(Job, Arc<str>)>, Error> {
        let mut jobs = Vec::new();
        {
            let st = lock(&self.inner.state);
            for p in st.pending.iter() {
                if jobstore.is_none_or(|j| j == &*p.jobstore) {
                    jobs.push((p.job.clone(), p.jobstore.clone()));
                }
            }
        }
        if self.state() != SchedulerState::Stopped {
            for (alias, store) in self.stores() {
                if jobstore.is_some_and(|j| j != &*alias) {
                    continue;
                }
                for job in store.get_all_jobs().await? {
                    jobs.push((job, alias.clone()));
                }
            }
        }
        jobs.sort_by(|(a, _), (b, _)| {
            (a.next_run_time.is_none(), a.next_run_time, &a.id).cmp(&(
                b.next_run_time.is_none(),
                b.next_run_time,
                &b.id,
            ))
        });
        Ok(jobs)
    }

    /// Every job (of one store, or of all).
    ///
    /// # Errors
    /// Store errors.
    pub async fn get_jobs(&self, jobstore: Option<&str>) -> Result<Vec<Job>, Error> {
        Ok(self
            .get_jobs_with_store(jobstore)
            .await?
            .into_iter()
            .map(|(j, _)| j)
            .collect())
    }

    /// APScheduler's `print_jobs` output, per store: each job with its trigger and next
    /// run time, or "paused"; pending jobs before start.
    ///
    /// # Errors
    /// Store errors.
    pub async fn format_jobs(&self, jobstore: Option<&str>) -> Result<String, Error> {
        let mut out = String::new();
        if self.state() == SchedulerState::Stopped {
            let st = lock(&self.inner.state);
            let _ = writeln!(out, "Pending jobs:");
            let pending: Vec<_> = st
                .pending
                .iter()
                .filter(|p| jobstore.is_none_or(|j| j == &*p.jobstore))
                .collect();
            if pending.is_empty() {
                let _ = writeln!(out, "    No pending jobs");
            }
            for p in pending {
                let _ = writeln!(
                    out,
                    "    {} (trigger: {}, pending)",
                    p.job.name, p.job.trigger
                );
            }
            return Ok(out);
        }
        for (alias, store) in self.stores() {
            if jobstore.is_some_and(|j| j != &*alias) {
                continue;
            }
            let _ = writeln!(out, "Jobstore {alias}:");
            let jobs = store.get_all_jobs().await?;
            if jobs.is_empty() {
                let _ = writeln!(out, "    No scheduled jobs");
            }
            for job in jobs {
                let _ = writeln!(out, "    {job}");
            }
        }
        Ok(out)
    }

    /// How many submissions of a job are in flight in its executor.
    pub fn instances(&self, job_id: &str) -> usize {
        lock(&self.inner.state)
            .executors
            .iter()
            .map(|(_, e)| e.instances(job_id))
            .sum()
    }

    // ----------------------------------------------------------------- the main loop

    /// One pass of the main loop (APScheduler's `_process_jobs`): claims due jobs from
    /// every store, applies misfire grace and coalescing, submits runs, stores next run
    /// times, removes finished jobs. Returns how long to wait before the next pass
    /// (`None`: until woken).
    pub async fn process_jobs(&self) -> Option<Duration> {
        self.run_pass().await.map(|(wait, _)| wait)
    }

    /// [`process_jobs`](Self::process_jobs), also returning the instant (engine clock)
    /// the wait leads to.
    pub(crate) async fn run_pass(&self) -> Option<(Duration, DateTime<Utc>)> {
        if self.state() != SchedulerState::Running {
            return None;
        }
        let now = self.inner.clock.now();
        let mut used = PassLookups::default();
        let mut next_wakeup: Option<DateTime<Utc>> = None;
        let mut earliest = |t: DateTime<Utc>| {
            if next_wakeup.is_none_or(|n| t < n) {
                next_wakeup = Some(t);
            }
        };
        for (alias, store) in self.stores() {
            match self.process_store(&alias, &store, now, &mut used).await {
                Ok(next) => {
                    lock(&self.inner.state).store_failures.remove(&alias);
                    if let Some(t) = next {
                        earliest(t);
                    }
                }
                Err(e) => {
                    let failures = {
                        let mut st = lock(&self.inner.state);
                        let n = st.store_failures.entry(alias.clone()).or_insert(0);
                        *n = n.saturating_add(1);
                        *n
                    };
                    // Exponential backoff: 0.5 s, 1 s, 2 s ... up to 30 s.
                    let delay = Duration::from_millis(500)
                        .saturating_mul(1u32 << failures.min(6).saturating_sub(1))
                        .min(Duration::from_secs(30));
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "error processing job store (retrying in {delay:?}): {e}");
                    earliest(now + chrono::Duration::from_std(delay).unwrap_or_default());
                }
            }
        }
        // The pass's runs start now that it is done: a worker woken earlier would
        // interrupt the pass (here the woken thread often takes this very core).
        used.flush();
        let wait = next_wakeup.map(|t| ((t - now).to_std().unwrap_or(Duration::ZERO), t));
        if let Some((w, _)) = wait {
            tracing::debug!(target: "apscheduler", "Next wakeup is due in {:.6} seconds", w.as_secs_f64());
        } else {
            tracing::debug!(target: "apscheduler", "No jobs; waiting until a job is added");
        }
        wait
    }

    async fn process_store(
        &self,
        alias: &Arc<str>,
        store: &Arc<dyn JobStore>,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let _guard = self.inner.jobs_lock.lock().await;
        let left_over = lock(&self.inner.unreleased).remove(alias);
        if let Some(left_over) = left_over {
            if let Err(e) = store
                .release_jobs(&self.inner.scheduler_id, left_over.clone())
                .await
            {
                lock(&self.inner.unreleased).insert(alias.clone(), left_over);
                return Err(e);
            }
        }
        loop {
            let acquired = store
                .acquire_due_jobs(&self.inner.scheduler_id, now, CLAIM_BATCH, self.inner.lease)
                .await?;
            for corrupt in &acquired.corrupt {
                apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, job_id = %corrupt.id, "stored job cannot be read and was set aside: {}", corrupt.error);
                let id: Arc<str> = corrupt.id.as_str().into();
                let failure = JobFailure::new("corrupt", corrupt.error.clone());
                self.inner
                    .dispatcher
                    .emit(event::EVENT_JOB_ERROR, || Event::Execution {
                        code: event::EVENT_JOB_ERROR,
                        job_id: id,
                        jobstore: alias.clone(),
                        scheduled_run_time: now.with_timezone(&Tz::UTC),
                        retval: None,
                        exception: Some(failure),
                    });
            }
            let claimed = acquired.jobs.len();
            let mut releases = Vec::with_capacity(claimed);
            let mut removed = Vec::with_capacity(claimed);
            for job in acquired.jobs {
                if let Some(release) = self.process_job(alias, job, now, &mut removed, used) {
                    releases.push(release);
                }
            }
            // Keep a copy until the store has taken it (a clone is a few Arc increments
            // per job).
            let released = store
                .release_jobs(&self.inner.scheduler_id, releases.clone())
                .await;
            if claimed == CLAIM_BATCH {
                // More batches follow: start this one's runs meanwhile.
                used.flush();
            }
            if let Err(e) = released {
                lock(&self.inner.unreleased)
                    .entry(alias.clone())
                    .or_default()
                    .extend(releases);
                return Err(e);
            }
            for id in removed {
                self.emit_job(event::EVENT_JOB_REMOVED, &id, alias);
            }
            if claimed < CLAIM_BATCH {
                break;
            }
        }
        store.get_next_run_time().await
    }

    /// Decides one claimed job's runs and its next state.
    fn process_job(
        &self,
        alias: &Arc<str>,
        mut job: Job,
        now: DateTime<Utc>,
        removed: &mut Vec<Arc<str>>,
        used: &mut PassLookups,
    ) -> Option<JobRelease> {
        let now_tz = used.now_in(now, job.trigger.timezone());
        // The run times due, and the trigger's next fire time after the last of them.
        let (mut due, next) = run_times(&job, &now_tz);
        let Some(last) = due.last().copied() else {
            return Some(JobRelease::Update(job));
        };
        if job.coalesce && due.len() > 1 {
            due.clear();
            due.push(last);
        }
        // Misfire decision before submission: late by strictly more than the grace.
        let missed = |t: &DateTime<Tz>| {
            job.misfire_grace_time.is_some_and(|grace| {
                (now - t.with_timezone(&Utc))
                    .to_std()
                    .is_ok_and(|late| late > grace)
            })
        };
        if due.iter().any(missed) {
            for &t in due.iter().filter(|t| missed(t)) {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "Run time of job \"{}\" was missed by {}", job.name, apscheduler_core::time::timedelta(now - t.with_timezone(&Utc)));
                self.inner
                    .dispatcher
                    .emit(event::EVENT_JOB_MISSED, || Event::Execution {
                        code: event::EVENT_JOB_MISSED,
                        job_id: job.id.clone(),
                        jobstore: alias.clone(),
                        scheduled_run_time: t,
                        retval: None,
                        exception: None,
                    });
            }
            due.retain(|t| !missed(t));
        }
        if !due.is_empty() {
            self.submit(alias, &job, due, used);
        }
        job.next_run_time = next;
        if job.next_run_time.is_some() {
            Some(JobRelease::Update(job))
        } else {
            removed.push(job.id.clone());
            Some(JobRelease::Remove(job.id))
        }
    }

    fn submit(&self, alias: &Arc<str>, job: &Job, due: Vec<DateTime<Tz>>, used: &mut PassLookups) {
        let fail_all = |failure: JobFailure, due: &[DateTime<Tz>]| {
            for &t in due {
                let failure = failure.clone();
                self.inner
                    .dispatcher
                    .emit(event::EVENT_JOB_ERROR, || Event::Execution {
                        code: event::EVENT_JOB_ERROR,
                        job_id: job.id.clone(),
                        jobstore: alias.clone(),
                        scheduled_run_time: t,
                        retval: None,
                        exception: Some(failure),
                    });
            }
        };
        let Some(executor) = used.get(self, &job.executor) else {
            apscheduler_core::log_error!(target: "apscheduler", job_id = %job.id, "Executor lookup failed: no executor '{}'", job.executor);
            fail_all(
                JobFailure::new(
                    "executor",
                    format!("no executor by the alias of '{}'", job.executor),
                ),
                &due,
            );
            return;
        };
        let resolved = match (self.resolve_task(&job.task), &job.task) {
            (Some(task), _) => Some(task),
            // A worker process finds the task by name in its own registry; the parent
            // need not have it.
            (None, Task::Named(name)) if !executor.runs_in_process() => {
                let name = name.clone();
                Some(TaskFn::from_fn(move |_| {
                    Err(format!("task '{name}' runs only in a worker process").into())
                }))
            }
            (None, _) => None,
        };
        let Some(task) = resolved else {
            apscheduler_core::log_error!(target: "apscheduler", job_id = %job.id, "no task registered under the name '{}'", job.task);
            fail_all(
                JobFailure::new(
                    "unknown-task",
                    format!("no task is registered under the name '{}'", job.task),
                ),
                &due,
            );
            return;
        };
        let run = JobRun {
            job_id: job.id.clone(),
            jobstore: alias.clone(),
            task_name: job.task.name().map(Into::into),
            task,
            args: job.args.clone(),
            kwargs: job.kwargs.clone(),
            run_times: due,
            max_instances: job.max_instances,
        };
        // The run times again for the events of a failed submission, without copying
        // the usual single run time into a new vector on every submission.
        let first = run.run_times[0];
        let kept = (run.run_times.len() > 1).then(|| run.run_times.clone());
        let submitted = executor.submit_deferred(run);
        used.add(&executor);
        match submitted {
            Ok(()) => {
                tracing::debug!(target: "apscheduler", job_id = %job.id, "Running job \"{}\"", job.name);
            }
            Err(SubmitError::MaxInstances) => {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "Execution of job \"{}\" skipped: maximum number of running instances reached ({})", job.name, job.max_instances);
                self.inner
                    .dispatcher
                    .emit(event::EVENT_JOB_MAX_INSTANCES, || Event::Submission {
                        code: event::EVENT_JOB_MAX_INSTANCES,
                        job_id: job.id.clone(),
                        jobstore: alias.clone(),
                        scheduled_run_times: kept.unwrap_or_else(|| vec![first]),
                    });
            }
            Err(e) => {
                apscheduler_core::log_error!(target: "apscheduler", job_id = %job.id, "Error submitting job \"{}\" to executor '{}': {e}", job.name, job.executor);
                let run_times = kept.unwrap_or_else(|| vec![first]);
                fail_all(JobFailure::new("submit", e.to_string()), &run_times);
            }
        }
    }
}

/// The alias `name` (default: [`DEFAULT_ALIAS`]) as an `Arc`, shared with the configured
/// component of that alias when there is one, so jobs do not each allocate a copy.
fn shared_alias<T: ?Sized>(components: &[(Arc<str>, Arc<T>)], name: Option<&str>) -> Arc<str> {
    static DEFAULT: OnceLock<Arc<str>> = OnceLock::new();
    let name = name.unwrap_or(DEFAULT_ALIAS);
    match components.iter().find(|(alias, _)| &**alias == name) {
        Some((alias, _)) => alias.clone(),
        None if name == DEFAULT_ALIAS => DEFAULT.get_or_init(|| DEFAULT_ALIAS.into()).clone(),
        None => name.into(),
    }
}

/// A random job id in the form of APScheduler's `uuid4().hex` (a version 4 UUID, 32
/// lowercase hex digits).
///
/// The bits come from a keyed bijection of a per-thread counter, the key drawn from the
/// operating system once per thread: ids are unique within a thread by construction,
/// and across threads as unlikely to collide as random UUIDs, while adding a job makes
/// no system call.
fn new_job_id() -> Arc<str> {
    /// SplitMix64's finalizer: a bijection of `u64` that mixes every bit.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    thread_local! {
        static KEY: (u64, u64) = {
            let k = uuid::Uuid::new_v4().as_u128();
            ((k >> 64) as u64, k as u64)
        };
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let c = COUNTER.with(|n| {
        let c = n.get();
        n.set(c.wrapping_add(1));
        c
    });
    let (k0, k1) = KEY.with(|k| *k);
    let hi = u128::from(mix(k0 ^ c));
    let lo = u128::from(mix(k1 ^ c.rotate_left(32)));
    let uuid = uuid::Builder::from_random_bytes(((hi << 64) | lo).to_be_bytes()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    Arc::from(&*uuid.simple().encode_lower(&mut buf))
}

/// Whether `id` has the shape of an id made by [`new_job_id`]: 32 lowercase hex digits
/// of a version-4, RFC 4122 variant UUID.
fn could_be_generated(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 32
        && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && b[12] == b'4'
        && matches!(b[16], b'8' | b'9' | b'a' | b'b')
}

/// Every scheduled run time of `job` up to `now`, oldest first (bounded), and the
/// trigger's next fire time after the last of them (`job.next_run_time` when none is
/// due).
fn run_times(job: &Job, now: &DateTime<Tz>) -> (Vec<DateTime<Tz>>, Option<DateTime<Tz>>) {
    // Usually one run time: a one-element allocation (it is freed by a worker thread).
    let mut times = Vec::with_capacity(1);
    let mut next = job.next_run_time;
    while let Some(t) = next {
        if t > *now {
            break;
        }
        if times.len() == MAX_RUN_TIMES {
            times.remove(0);
        }
        times.push(t);
        next = job.trigger.next_fire_time(Some(&t), now);
        if next.is_some_and(|n| n <= t) {
            // A trigger must move forward; stop rather than loop.
            break;
        }
    }
    (times, next)
}

fn apply_changes(job: &mut Job, c: &JobChanges) {
    if let Some(n) = &c.name {
        job.name = n.as_str().into();
    }
    if let Some(a) = &c.args {
        job.args = Arc::new(a.clone());
    }
    if let Some(k) = &c.kwargs {
        job.kwargs = Arc::new(k.clone());
    }
    if let Some(e) = &c.executor {
        job.executor = e.as_str().into();
    }
    if let Some(g) = c.misfire_grace_time {
        job.misfire_grace_time = g;
    }
    if let Some(co) = c.coalesce {
        job.coalesce = co;
    }
    if let Some(m) = c.max_instances {
        job.max_instances = m.max(1);
    }
    if let Some(n) = c.next_run_time {
        job.next_run_time = n;
    }
    if let Some(t) = &c.trigger {
        job.trigger = t.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_job_ids_are_distinct_uuid4_hex() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = new_job_id();
            let uuid = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(&*id, uuid.simple().to_string());
            assert!(could_be_generated(&id), "{id}");
            assert!(seen.insert(id));
        }
        assert!(!could_be_generated("dup"));
        assert!(!could_be_generated("0123456789AB4DEF8123456789ABCDEF"));
        assert!(!could_be_generated("0123456789ab3def8123456789abcdef"));
        assert!(!could_be_generated("0123456789ab4def7123456789abcdef"));
        let other = std::thread::spawn(new_job_id).join().unwrap();
        assert!(!seen.contains(&other));
    }

    #[test]
    fn pending_ids_count_each_id() {
        let mut ids = PendingIds::default();
        let (a, b) = (ids.key("a"), ids.key("b"));
        assert!(!ids.may_contain(a));
        ids.insert(a);
        ids.insert(a);
        ids.remove(a);
        assert!(ids.may_contain(a));
        ids.remove(a);
        assert!(!ids.may_contain(a));
        assert!(ids.insert_new(b));
        assert!(!ids.insert_new(b));
        ids.remove(b);
        assert!(!ids.may_contain(b));
        ids.insert(b);
        ids.clear();
        assert!(!ids.may_contain(b));
    }
}
