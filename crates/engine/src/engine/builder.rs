//! [`EngineBuilder`]: the engine's clock, timezone, defaults, stores and executors.

use super::*;

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
    change_poll: Option<Duration>,
    history: Option<(Arc<dyn apscheduler_core::RunHistory>, crate::HistoryOptions)>,
    leased_runs: Option<bool>,
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
            lease: DEFAULT_LEASE,
            change_poll: Some(DEFAULT_CHANGE_POLL),
            history: None,
            leased_runs: None,
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
    /// How long a claim on due jobs lasts before other schedulers may take them over
    /// (default [`DEFAULT_LEASE`], 5 s). A claim lasts one pass (milliseconds): the
    /// lease bounds how long the fire times a scheduler claimed wait when it dies
    /// mid-pass. A pass that outlasts it is safe (its release is not applied and its
    /// runs are not started: the scheduler that claimed the jobs since starts them).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// How often a scheduler on a shared store that cannot notify changes (MySQL/MariaDB,
    /// MongoDB without a change stream open:
    /// [`Capabilities::notifications`](apscheduler_core::Capabilities::notifications)
    /// false, asked at each pass) looks for jobs other processes added or changed,
    /// however far its next fire time is (default [`DEFAULT_CHANGE_POLL`], 1 s: a
    /// pause, resume or change made elsewhere takes effect within a second). `None`:
    /// only at its own passes (call `wakeup` yourself). Stores that notify (PostgreSQL,
    /// Redis, ZooKeeper, MongoDB with a change stream) and single-node stores are not
    /// polled.
    pub fn change_poll(mut self, every: Option<Duration>) -> Self {
        self.change_poll = every;
        self
    }
    /// Records every run (start, end, outcome, output), every missed or skipped fire
    /// time and every run that could not start into `history`, for example the one a
    /// store keeps beside its jobs (`store.run_history()`).
    pub fn run_history(
        mut self,
        history: Arc<dyn apscheduler_core::RunHistory>,
        options: crate::HistoryOptions,
    ) -> Self {
        self.history = Some((history, options));
        self
    }
    /// Keeps every run in the store of its job, as a row leased to this scheduler
    /// ([`RunStore`](apscheduler_core::RunStore)), for stores that keep runs (every
    /// store crate of this project): the store decides each start (misfire grace,
    /// `max_instances` over every scheduler sharing it, overlap), retries and buffered
    /// fire times wait there, and a scheduler that stops renewing its leases (dead,
    /// stalled, cut off) has its runs taken over by another, never started twice.
    /// Off: the runs are kept by each scheduler, and the cluster mechanisms of the run
    /// history apply (see docs/cluster.md).
    ///
    /// Default: on when every job store the scheduler starts with is persistent and
    /// keeps runs (PostgreSQL, MySQL/MariaDB, SQLite, Redis, MongoDB, ZooKeeper), off
    /// otherwise (the memory store), decided at the first start from the stores it has
    /// then; a store added later runs under that choice. The `aps` daemon sets it from
    /// `[scheduler] leased_runs` (default true). Schedulers sharing a store must agree:
    /// one of the other kind is refused at start while a node of one kind is live. A
    /// pass makes more round trips to the store with leased runs (docs/PERFORMANCE.md, "A
    /// store across the network", has both protocols' counts and lateness).
    pub fn leased_runs(mut self, on: bool) -> Self {
        self.leased_runs = Some(on);
        self
    }
    /// Builds the engine (stopped).
    pub fn build(self) -> Engine {
        let scheduler_id = self
            .scheduler_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let history = self.history.map(|(history, options)| {
            Arc::new(Recorder::new(
                history,
                options,
                &scheduler_id,
                self.clock.clone(),
                self.lease,
            ))
        });
        let engine = Engine {
            inner: Arc::new(Inner {
                scheduler_id,
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
                change_poll: self.change_poll,
                unreleased: Mutex::new(HashMap::new()),
                history,
                interrupted: Mutex::new(Vec::new()),
                waiting_elsewhere: Mutex::default(),
                retries: Mutex::default(),
                buffered: Arc::default(),
                cancellable: Arc::default(),
                streaks: Default::default(),
                runtime: Mutex::new(None),
                passes: Mutex::new(PassMarks::default()),
                // An explicit choice holds from now; the default waits for the stores
                // the first start has (see `leased_runs`).
                leased: match self.leased_runs {
                    Some(on) => OnceLock::from(on.then(leased::Leased::default)),
                    None => OnceLock::new(),
                },
            }),
        };
        leased::wake_on_written(&engine);
        engine
    }
}
