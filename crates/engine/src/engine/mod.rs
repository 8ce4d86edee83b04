//! The one engine behind every front-end. The engine's state lives here; what it does
//! is split by responsibility:
//!
//! | module | holds |
//! |---|---|
//! | [`builder`] | [`EngineBuilder`] |
//! | [`lifecycle`] | start, shutdown, pause, resume |
//! | [`components`] | configuration; adding and removing stores and executors |
//! | [`add`] | adding a job (pending before start, stored after) |
//! | [`add_many`] | adding many jobs, one batch per store |
//! | [`pending`] | the jobs added before start, their ids, generated ids |
//! | [`jobs`] | the rest of the job API: find, modify, pause, remove, list |
//! | [`job_tables`] | what that API works on: the pending jobs before start, the stores after |
//! | [`pass`] | one pass of the main loop: claims, misfires, the runs it plans, next run times |
//! | [`claim`] | the claim of a pass: this node's own partitions first |
//! | [`calendar`] | a job's exclusion calendar; the fire times it excludes recorded `missed` |
//! | [`start`] | starting the runs a pass planned, or recording why not |
//! | [`durable_start`] | starts written to the run history before they happen (`record_starts`) |
//! | [`elsewhere`] | fire times waiting for other nodes' runs of their job to end |
//! | [`unreleased`] | releases a store did not apply or confirm, and their runs |
//! | [`catchup`] | the catch-up window: which overdue fire times still run |
//! | [`recovery`] | running again the interrupted runs of jobs that ask for it |
//! | [`retries`] | a retry's next attempt; without leased runs, waiting runs held or taken over |
//! | [`backfill`] | running a job's fire times of a range, at a limited rate |
//! | [`run_now`] | running a job once, now, outside its schedule |
//! | [`leased`] | leased runs: the runs kept by the store, each leased to one scheduler |
//! | [`leased_upkeep`] | writing leased runs' ends, renewing, sweeping, starting waiting runs |
//! | [`overlap`] | cancel_other / terminate_other: cancelling the runs in flight |
//! | [`streaks`] | failure streaks: pausing and notifying after N failures in a row |
//! | [`events`] | listeners, the executors' reporter, event emitters |

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use apscheduler_core::event::{self, Event, EventMask, JobFailure};
use apscheduler_core::{
    Clock, DeferredRun, Error, ErrorKind, Executor, Job, JobRelease, JobRun, JobStore, RunOutcome,
    RunReporter, SubmitError, SystemClock, Task, TaskFn, TaskRegistry, Trigger,
};
use apscheduler_executor_thread::ThreadPoolExecutor;
use apscheduler_store_memory::MemoryJobStore;
use apscheduler_triggers::{crontab_uses_hash, AnyTrigger, DateTrigger};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::config::JobDefaults;
use crate::dispatch::{Dispatcher, ListenerFn, ListenerId};
use crate::history::{new_run_id, Recorder};
use crate::spec::{JobChanges, JobSpec, TriggerSpec};
use crate::wake::WakeSignal;

mod add;
mod add_many;
mod backfill;
mod builder;
mod calendar;
mod catchup;
mod claim;
mod components;
mod declared;
mod durable_start;
mod elsewhere;
mod events;
mod job_tables;
mod jobs;
mod leased;
mod leased_upkeep;
mod lifecycle;
mod overlap;
mod pass;
mod pending;
mod recovery;
mod retries;
mod run_now;
mod start;
mod streaks;
mod unreleased;

pub use backfill::{
    BackfillReport, BackfillRequest, BACKFILL_HARD_MAX, BACKFILL_MAX_RATE, DEFAULT_BACKFILL_MAX,
    DEFAULT_BACKFILL_RATE,
};
pub use builder::EngineBuilder;
pub use calendar::{excluded_calendar, excluded_message, next_allowed_run_time, trigger_calendar};
use events::Reporter;
pub use overlap::cancelled_by;
pub(crate) use pending::PreparedJob;
use pending::{could_be_generated, new_job_id, Pending, PendingIds, PendingJobs};
pub use retries::PendingRun;
pub use streaks::failure_streak;

/// The alias of the store and executor created when none is configured.
pub const DEFAULT_ALIAS: &str = "default";

/// How long a claim on due jobs lasts by default ([`EngineBuilder::lease`]): the longest
/// a dead scheduler's claimed fire times wait before another scheduler takes them over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// The longest wait between retries of a failing job store.
const STORE_RETRY_CAP: Duration = Duration::from_secs(1);

/// How soon a scheduler looks again at a store whose leases run on its own clock when
/// the store reports a leased job due by ours but not yet by its own (its clock is
/// behind ours).
const LEASE_CLOCK_RETRY: Duration = Duration::from_millis(100);

/// How long shutdown waits for run records to reach the history.
const HISTORY_FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// How often, by default, a scheduler looks at a shared store that cannot notify
/// changes made by other processes ([`EngineBuilder::change_poll`]).
pub const DEFAULT_CHANGE_POLL: Duration = Duration::from_secs(1);

/// How long shutdown waits for a pass under way to finish.
const PASS_FINISH_WAIT: Duration = Duration::from_secs(5);

/// How many due jobs one claim asks a store for.
const CLAIM_BATCH: usize = 1024;

/// How many due jobs one claim asks a shared store for: small batches let the other
/// schedulers on the store claim the rest meanwhile, instead of the first one awake
/// taking every due job (a batch costs a claim and a release round trip).
const SHARED_CLAIM_BATCH: usize = 64;

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

/// The engine's shared state.
///
/// Lock order: `jobs_lock` (async, held across store calls) is taken first; under it, or
/// alone, at most one of the std locks `state`, `registry`, `unreleased` and
/// `interrupted` at a time, each held for a few statements and never across an
/// `.await`. Events are emitted and tasks resolved after `state` is released (the
/// dispatcher's and the executors' own locks come last).
pub(crate) struct Inner {
    scheduler_id: String,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Held while a pass processes a store and while the API changes jobs, so a claimed
    /// job is never overwritten by a concurrent modification (APScheduler's jobstores
    /// lock). Adding a job that replaces none skips it: nobody can claim or change a job
    /// before it is stored.
    jobs_lock: tokio::sync::Mutex<()>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) wake: WakeSignal,
    registry: RwLock<TaskRegistry>,
    lease: Duration,
    /// How often shared stores without change notifications are looked at.
    change_poll: Option<Duration>,
    /// Releases a store did not confirm (it was down, or the reply was lost), by store,
    /// with the runs they would start: retried before the next claim, so a run that
    /// happened is never claimed and run again once the store is back.
    unreleased: Mutex<HashMap<Arc<str>, unreleased::Unreleased>>,
    /// Records run history, when configured.
    history: Option<Arc<Recorder>>,
    /// Runs this node recorded `interrupted` (a dead node's, or its own previous
    /// life's), waiting for a pass to recover those of jobs that ask for it.
    interrupted: Mutex<Vec<apscheduler_core::RunRecord>>,
    /// Fire times waiting for other nodes' runs of their job to end (`max_instances`
    /// across the cluster), and whether a task is polling for them.
    waiting_elsewhere: Mutex<elsewhere::Waiting>,
    /// Retries and buffered fire times waiting to start.
    retries: Mutex<Vec<retries::WaitingRun>>,
    /// How many of them are buffered fire times.
    buffered: Arc<std::sync::atomic::AtomicUsize>,
    /// This node's runs of jobs whose overlap policy cancels runs in flight.
    cancellable: Arc<overlap::Cancellable>,
    /// Failure streaks counted on this node, and when it resumed jobs.
    streaks: streaks::Streaks,
    /// The runtime the last `start` ran on: where work that executors' threads hand
    /// over runs.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    /// When the main loop last finished a pass, and when it means to pass next.
    passes: Mutex<PassMarks>,
    /// The runs this scheduler holds in stores that keep them, with leased runs on
    /// ([`EngineBuilder::leased_runs`]): set when built with an explicit choice,
    /// else at the first start, from the stores it starts with.
    leased: OnceLock<Option<leased::Leased>>,
}

impl Inner {
    /// The runs this scheduler holds, with leased runs on (and decided).
    fn leased(&self) -> Option<&leased::Leased> {
        self.leased.get().and_then(Option::as_ref)
    }
}

/// The main loop's last pass and its next, for [`Engine::loop_health`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassMarks {
    /// When the last pass finished (engine clock); `None` before the first.
    pub last_pass_at: Option<DateTime<Utc>>,
    /// When the loop means to pass next (engine clock); `None`: only when woken (a
    /// change, a paused scheduler, nothing scheduled).
    pub next_pass_at: Option<DateTime<Utc>>,
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
        lock(&self.inner.state).defaults.clone()
    }

    /// The run history this scheduler records into, when configured
    /// ([`EngineBuilder::run_history`]).
    pub fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        self.inner.history.as_ref().map(|r| r.history().clone())
    }

    /// Waits (up to `deadline`) until every run record so far is written to the run
    /// history; returns at once without one.
    pub async fn flush_history(&self, deadline: Duration) {
        if let Some(recorder) = &self.inner.history {
            recorder.flush(deadline, false).await;
        }
    }

    /// When the main loop last finished a pass and when it means to pass next: a loop
    /// whose next pass is long overdue is stuck (a health check reads this).
    pub fn loop_health(&self) -> PassMarks {
        *lock(&self.inner.passes)
    }

    /// Notes a finished pass and the instant of the next (the main loop's turn).
    pub(crate) fn mark_pass(&self, next: Option<DateTime<Utc>>) {
        *lock(&self.inner.passes) = PassMarks {
            last_pass_at: Some(self.inner.clock.now()),
            next_pass_at: next,
        };
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

    /// Fails fast with `Unavailable` while the main loop finds `alias` down: a job API
    /// call then does not wait out the store's own time-out (seconds per call) for an
    /// answer already known. The loop's passes keep probing the store; the first one
    /// that reaches it ends this.
    fn fail_fast(&self, alias: &str) -> Result<(), Error> {
        let failures = lock(&self.inner.state)
            .store_failures
            .get(alias)
            .copied()
            .unwrap_or(0);
        if failures == 0 {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "job store '{alias}' is unavailable: the last {failures} attempt(s) to reach it \
                 failed; calls fail at once until the main loop reaches it again"
            ),
        ))
    }
}
