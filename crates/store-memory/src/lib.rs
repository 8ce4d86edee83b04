//! # apscheduler-store-memory
//!
//! [`MemoryJobStore`]: the job store of APScheduler's `MemoryJobStore`, holding
//! [`Job`] values in process memory. Nothing is serialized, so jobs may run closures
//! ([`Task::Closure`](apscheduler_core::Task::Closure)) and use triggers that cannot be
//! persisted; everything is lost when the process exits.
//!
//! It stays fast with millions of jobs: jobs are kept in a hash table by id, and the
//! scheduled ones in an ordered index by next run time, so adding, updating, removing,
//! looking up, claiming due jobs and reading the next run time cost `O(log n)` (per job
//! claimed) — never a scan of the whole store. Only [`get_all_jobs`] walks (and sorts)
//! every job. The store adds about 80 bytes per job to the [`Job`] itself.
//!
//! Batches are cheaper than their jobs one by one: a claim detaches the due prefix of
//! the index in one split, and a release of a whole claim batch sweeps the lease index
//! once, so 10,000 jobs due at the same instant cost no per-key tree rebalancing.
//!
//! [`get_all_jobs`]: JobStore::get_all_jobs
//!
//! ## Usage
//! ```
//! use std::time::Duration;
//!
//! use apscheduler_core::chrono::{TimeZone, Utc};
//! use apscheduler_core::{no_args, no_kwargs, Job, JobRelease, JobStore, Task};
//! use apscheduler_store_memory::MemoryJobStore;
//! use apscheduler_triggers::AnyTrigger;
//!
//! let tz = apscheduler_core::chrono_tz::UTC;
//! let now = tz.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
//! let args = serde_json::json!({"seconds": 10});
//! let trigger = AnyTrigger::from_args("interval", &args, tz, now).unwrap().into_shared();
//! let job = Job {
//!     id: "tick".into(),
//!     name: "tick".into(),
//!     task: Task::Named("tick".into()),
//!     args: no_args(),
//!     kwargs: no_kwargs(),
//!     next_run_time: trigger.next_fire_time(None, &now),
//!     trigger,
//!     executor: "default".into(),
//!     misfire_grace_time: Some(Duration::from_secs(1)),
//!     coalesce: true,
//!     max_instances: 1,
//!     recover: false,
//!     policy: Default::default(),
//!     paused_reason: None,
//!     declaration: None,
//! };
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! runtime.block_on(async {
//!     let store = MemoryJobStore::new();
//!     store.add_job(job, false).await.unwrap();
//!
//!     let stored = store.lookup_job("tick").await.unwrap().unwrap();
//!     assert_eq!(stored.trigger.to_string(), "interval[0:00:10]");
//!     let first = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 10).unwrap();
//!     assert_eq!(store.get_next_run_time().await.unwrap(), Some(first));
//!
//!     // A scheduler claims the due jobs with a lease, runs them and releases them
//!     // with their next run time.
//!     let lease = Duration::from_secs(60);
//!     let due = store.acquire_due_jobs("scheduler-1", first, 100, lease).await.unwrap();
//!     assert_eq!(due.jobs.len(), 1);
//!     let mut job = due.jobs.into_iter().next().unwrap();
//!     job.next_run_time = job.trigger.next_fire_time(job.next_run_time.as_ref(), &now);
//!     store.release_jobs("scheduler-1", vec![JobRelease::Update(job)]).await.unwrap();
//!     let second = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 20).unwrap();
//!     assert_eq!(store.get_next_run_time().await.unwrap(), Some(second));
//! });
//! ```
//!
//! ## Behavior
//! [`MemoryJobStore`] follows the [`JobStore`] contract (claim with lease included) and
//! passes the `apscheduler-testkit` store conformance suite. Where the contract leaves
//! room, it does this:
//! - Ordering ("by next run time, then id") uses next run times truncated to the
//!   microsecond; whether a job is due compares the exact instant.
//! - [`get_next_run_time`](JobStore::get_next_run_time) takes no `now`, so it cannot
//!   tell whether a lease has expired. For a leased job it reports the instant the job
//!   becomes claimable again: the later of its next run time and the lease's expiry.
//!   Right after a claim that is the expiry, so the claimed run time itself is never
//!   reported while the lease is held, and a scheduler that dies holding a lease is
//!   noticed by the others when its lease runs out.
//! - [`add_job`](JobStore::add_job) with `replace_existing` and
//!   [`update_job`](JobStore::update_job) keep an existing lease: the job is still in
//!   the hands of the scheduler that claimed it.
//! - [`release_jobs`](JobStore::release_jobs) ignores releases for jobs that no longer
//!   exist (removed while claimed: they are not re-created) and for jobs now leased to
//!   another scheduler (the caller's lease expired and the job was claimed again: the
//!   new holder's claim wins).
//! - [`extend_leases`](JobStore::extend_leases) extends every lease the caller still
//!   holds and reports `LeaseLost`, naming the others, when some are not held (never
//!   claimed, claimed by another scheduler, expired at `now`, or the job is gone).
//! - [`add_jobs`](JobStore::add_jobs) is all or nothing: on a conflict (also between
//!   two jobs of the batch) nothing is added.
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod config;
mod history;
mod job_store;
mod runs;
mod state;
pub use config::{register, MemoryStoreConfig};

use std::fmt;
use std::sync::Arc;

use apscheduler_core::{Clock, SystemClock};

// Named by the crate documentation's links.
#[cfg(doc)]
use apscheduler_core::{Job, JobStore};
pub use history::MemoryRunHistory;
use parking_lot::Mutex;

use crate::state::{JobTable, State};

/// A job store that keeps jobs in memory (APScheduler's `MemoryJobStore`).
///
/// Not persistent: jobs may run closures, and are gone when the store is dropped.
/// Share it behind an `Arc`; every operation takes a short lock and completes without
/// awaiting anything.
///
/// See the [crate documentation](crate) for an example and the details of the lease
/// bookkeeping.
pub struct MemoryJobStore {
    state: Mutex<State>,
    history: Arc<MemoryRunHistory>,
    /// The store's clock, by which its runs' leases are judged.
    clock: Arc<dyn Clock>,
}

impl Default for MemoryJobStore {
    fn default() -> Self {
        MemoryJobStore {
            state: Mutex::default(),
            history: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MemoryJobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// This store, judging its runs' leases by `clock` (a
    /// [`ManualClock`](apscheduler_core::ManualClock) in tests) instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// An empty store with room for `capacity` jobs before its id table grows.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryJobStore {
            state: Mutex::new(State {
                jobs: JobTable::with_capacity(capacity),
                ..State::default()
            }),
            ..Self::default()
        }
    }

    /// How many jobs the store holds (paused and claimed ones included).
    pub fn len(&self) -> usize {
        self.state.lock().jobs.len()
    }

    /// Whether the store holds no job.
    pub fn is_empty(&self) -> bool {
        self.state.lock().jobs.is_empty()
    }
}

impl fmt::Debug for MemoryJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("MemoryJobStore")
            .field("jobs", &state.jobs.len())
            .field("claimed", &state.leases.len())
            .finish()
    }
}
