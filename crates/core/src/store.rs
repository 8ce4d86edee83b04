//! The job store interface: where jobs live between runs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{Error, Job};

/// What to do with a claimed job once the scheduler has processed it.
#[derive(Debug, Clone)]
pub enum JobRelease {
    /// Store this new state of the job (usually a new `next_run_time`) and drop the lease.
    Update(Job),
    /// The job is finished (its trigger is exhausted): remove it.
    Remove(Arc<str>),
}

/// What a store calls when its jobs change from elsewhere (another process added, changed
/// or removed one), so that a sleeping scheduler plans again. Cheap and non-blocking: it
/// only wakes the scheduler's main loop.
pub type ChangeListener = Arc<dyn Fn() + Send + Sync>;

/// The change-notification state of a store with a channel (PostgreSQL `LISTEN`, Redis
/// pub/sub): the token its own notifications carry (so that it ignores them), the
/// scheduler's listener, and how to stop the listening task while it runs.
pub struct ChangeChannel {
    token: Arc<str>,
    listener: std::sync::Mutex<Option<ChangeListener>>,
    stop: std::sync::Mutex<Option<StopListening>>,
}

/// Stops a listening task (and waits for it, where the store needs that).
pub type StopListening = Box<dyn FnOnce() -> crate::BoxFuture<()> + Send>;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ChangeChannel {
    /// A channel state whose notifications carry `token` (unique per store instance).
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        ChangeChannel {
            token: token.into(),
            listener: std::sync::Mutex::new(None),
            stop: std::sync::Mutex::new(None),
        }
    }

    /// The token this store's notifications carry.
    pub fn token(&self) -> &Arc<str> {
        &self.token
    }

    /// Keeps the scheduler's listener ([`JobStore::set_change_listener`]).
    pub fn set_listener(&self, listener: ChangeListener) {
        *lock(&self.listener) = Some(listener);
    }

    /// The scheduler's listener, if one was set.
    pub fn listener(&self) -> Option<ChangeListener> {
        lock(&self.listener).clone()
    }

    /// Records how to stop the listening task just started.
    pub fn listening(&self, stop: StopListening) {
        *lock(&self.stop) = Some(stop);
    }

    /// Stops the listening task, if one runs.
    pub async fn stop(&self) {
        let stop = lock(&self.stop).take();
        if let Some(stop) = stop {
            stop().await;
        }
    }
}

impl fmt::Debug for ChangeChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeChannel")
            .field("token", &self.token)
            .field("listening", &lock(&self.stop).is_some())
            .finish_non_exhaustive()
    }
}

/// What [`JobStore::release_jobs`] did not apply. A scheduler starts a claimed fire time
/// only once the release that moves the job past it is applied: a release the store
/// did not apply means the fire time is not this scheduler's to start.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Released {
    /// Jobs whose lease the caller no longer held (it expired and another scheduler
    /// claimed the job), or that were removed meanwhile: nothing was written for them.
    pub lost: Vec<Arc<str>>,
    /// Jobs whose new state the store refused (it cannot be serialized or is over the
    /// store's size limit): nothing was written, and the lease runs out.
    pub refused: Vec<(Arc<str>, Error)>,
    /// What [`JobStore::get_next_run_time`] would return once the release applied,
    /// when the store read it in the release's own round trip (`None`: not read; ask
    /// `get_next_run_time`).
    pub next_run_time: Option<Option<DateTime<Utc>>>,
}

impl Released {
    /// Every release was applied.
    pub fn all() -> Released {
        Released::default()
    }

    /// A result with these lost and refused jobs.
    pub fn new(lost: Vec<Arc<str>>, refused: Vec<(Arc<str>, Error)>) -> Released {
        Released {
            lost,
            refused,
            next_run_time: None,
        }
    }

    /// This result, carrying the store's next run time read after the release in the
    /// same round trip (see [`Released::next_run_time`]).
    pub fn with_next_run_time(mut self, next: Option<DateTime<Utc>>) -> Released {
        self.next_run_time = Some(next);
        self
    }

    /// Whether every release was applied.
    pub fn is_complete(&self) -> bool {
        self.lost.is_empty() && self.refused.is_empty()
    }
}

/// A stored job that could not be decoded (unknown task, unreadable state, unknown
/// trigger). Stores report it once, mark it, leave it in place and never return it as
/// due again; it is never silently deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptJob {
    /// The job's id.
    pub id: String,
    /// Why it could not be read.
    pub error: String,
}

/// The result of [`JobStore::acquire_due_jobs`].
#[derive(Debug, Default)]
pub struct Acquired {
    /// Due jobs, now leased to the caller, ordered by next run time then id.
    pub jobs: Vec<Job>,
    /// Due jobs that could not be decoded; reported once and set aside.
    pub corrupt: Vec<CorruptJob>,
}

/// Which claim partitions a claimer prefers, for
/// [`JobStore::acquire_due_jobs_preferring`]: the partitions its node owns among the
/// live nodes (rendezvous hashing over the node registry, recomputed when a node joins
/// or dies), so that many nodes claiming at once read different parts of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimHint<'a> {
    /// Into how many partitions the claimer divided the jobs: the store's
    /// [`Capabilities::partitions`]. A store that has another count ignores the hint.
    pub partitions: u32,
    /// The partitions the claimer owns, ascending, each below `partitions`.
    pub owned: &'a [u32],
}

impl ClaimHint<'_> {
    /// Whether the hint names every partition (one node owns them all): a claim with
    /// it is a plain claim.
    pub fn owns_all(&self) -> bool {
        self.owned.len() >= self.partitions as usize
    }
}

/// Where jobs live. One trait for the memory store and the persistent ones; several
/// schedulers may share one persistent store.
///
/// # Behavior
/// - Job ids are unique within a store.
/// - A job with `next_run_time == None` is paused: never due, listed last.
/// - [`acquire_due_jobs`](JobStore::acquire_due_jobs) is an atomic claim with a lease:
///   it returns up to `limit` jobs whose next run time is at or before `now`, ordered by
///   next run time (to the microsecond) then id, skipping jobs under another
///   scheduler's unexpired lease, and leases them to `scheduler_id` until
///   `now + lease` (on a store with [`Capabilities::store_clock`], the store's time
///   plus `lease`, and expiry is judged by the store's clock too). Two concurrent
///   claimers never receive the same (job, next run time). A lease that has expired
///   (its holder died) can be claimed by anyone.
/// - A shared store ([`Capabilities::shared`]) also returns due jobs leased to the
///   caller itself: a scheduler releases every claim within the pass that made it, so a
///   lease it still holds at its next claim was stranded (the claim's reply was lost to
///   a time-out while the store went ahead, or a commit's answer never came back), and
///   those jobs must not wait for the lease to expire. An in-process store cannot lose
///   a reply and may skip them.
/// - [`release_jobs`](JobStore::release_jobs) ends the caller's leases, storing the new
///   state or removing the job.
/// - Errors are [`Error`]s with a kind callers match on: `NotFound`, `Conflict`,
///   `Serialization` (a job that cannot be stored), `Unavailable` (retry later).
// A method added here must be forwarded in forward.rs too (a wrapper would otherwise
// run the default instead of the wrapped store's own).
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Called when the store is attached to a running scheduler under `alias`
    /// (create tables, connect, ...).
    ///
    /// # Errors
    /// `Unavailable` when the backend cannot be reached.
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        Ok(())
    }

    /// Called when the scheduler shuts down or the store is removed.
    ///
    /// # Errors
    /// Backend errors while closing.
    async fn shutdown(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Called by the scheduler before [`start`](JobStore::start) with a listener to call
    /// whenever the store learns that its jobs changed from elsewhere. Stores that
    /// declare [`Capabilities::notifications`] call it; the default ignores it (the
    /// scheduler then learns of other processes' changes at its next pass).
    fn set_change_listener(&self, _listener: ChangeListener) {}

    /// The run history kept beside this store's jobs (sharing its connection), for
    /// stores that offer one; the default offers none.
    fn run_history(&self) -> Option<Arc<dyn crate::RunHistory>> {
        None
    }

    /// The store's runs ([`RunStore`](crate::RunStore)), for stores that keep them: a
    /// scheduler with [leased runs](crate::RunStore) keeps every run of this store's
    /// jobs there. The default keeps none.
    fn runs(&self) -> Option<&dyn crate::RunStore> {
        None
    }

    /// Whether this store serializes jobs (and so refuses closure tasks).
    fn is_persistent(&self) -> bool;

    /// What this store offers beyond the contract: the engine's docs and the testkit's
    /// shared checks go by it. The default says whether it is persistent, and that it
    /// is single-node (not shared).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            persistent: self.is_persistent(),
            single_node: true,
            ..Capabilities::default()
        }
    }

    /// Adds a job.
    ///
    /// # Errors
    /// `Conflict` when the id exists and `replace_existing` is false; `Serialization`
    /// when a persistent store cannot serialize the job.
    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error>;

    /// Adds several jobs, in one round trip where the backend allows it; all or nothing
    /// on a conflict (with another stored job or within the batch).
    ///
    /// The default checks every id first, then adds one by one; it is all-or-nothing
    /// only without concurrent writers, so stores should override it with a transaction.
    ///
    /// # Errors
    /// As [`add_job`](JobStore::add_job).
    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        if !replace_existing {
            let mut seen = std::collections::HashSet::new();
            for job in &jobs {
                if !seen.insert(job.id.clone()) || self.lookup_job(&job.id).await?.is_some() {
                    return Err(Error::conflict(&job.id));
                }
            }
        }
        for job in jobs {
            self.add_job(job, replace_existing).await?;
        }
        Ok(())
    }

    /// Replaces the stored state of an existing job.
    ///
    /// # Errors
    /// `NotFound` when no job has that id.
    async fn update_job(&self, job: Job) -> Result<(), Error>;

    /// Removes a job.
    ///
    /// # Errors
    /// `NotFound` when no job has that id.
    async fn remove_job(&self, id: &str) -> Result<(), Error>;

    /// Removes every job.
    ///
    /// # Errors
    /// Backend errors.
    async fn remove_all_jobs(&self) -> Result<(), Error>;

    /// The job with this id, if any.
    ///
    /// # Errors
    /// Backend errors; `Serialization` for a job that cannot be decoded.
    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error>;

    /// Every (readable) job, ordered by next run time, then id, paused jobs last.
    ///
    /// # Errors
    /// Backend errors.
    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error>;

    /// When the next claim can return something: the earliest next run time among jobs
    /// that are not paused, where a job under a lease counts at the later of its next run
    /// time and its lease expiry.
    ///
    /// # Errors
    /// Backend errors.
    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error>;

    /// Claims due jobs (see the trait's `# Behavior`).
    ///
    /// # Errors
    /// Backend errors.
    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error>;

    /// Claims due jobs like [`acquire_due_jobs`](JobStore::acquire_due_jobs), preferring
    /// the partitions `hint` names: a store that divides its jobs into
    /// [`Capabilities::partitions`] partitions claims first the due jobs of those
    /// (earliest first), then, when they give fewer than `limit`, steals from the due
    /// jobs of every other partition (earliest first). Every guarantee of
    /// `acquire_due_jobs` holds; the jobs returned are ordered by next run time then id.
    /// A hint is only a preference: a job is claimable by any claimer in any partition.
    ///
    /// The default ignores the hint (stores without partitions).
    ///
    /// # Errors
    /// As [`acquire_due_jobs`](JobStore::acquire_due_jobs).
    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        let _ = hint;
        self.acquire_due_jobs(scheduler_id, now, limit, lease).await
    }

    /// Extends the caller's leases on these jobs to `now + lease` (the store's time plus
    /// `lease` on a store with [`Capabilities::store_clock`]); leases still held are
    /// extended even when some were lost.
    ///
    /// # Errors
    /// `LeaseLost` naming the jobs whose lease is no longer held by `scheduler_id`.
    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error>;

    /// Ends the caller's leases, storing new states or removing finished jobs, in one
    /// step per job that is applied only while the caller still holds the job's lease
    /// (expired or not: an expired lease nobody else claimed is still the caller's).
    /// The jobs it did not apply are returned: [`Released::lost`], held by another
    /// scheduler now (its lease expired and it was claimed) or removed meanwhile, and
    /// [`Released::refused`], whose new state cannot be stored. When a job is named
    /// twice, its last release counts.
    ///
    /// # Errors
    /// Backend errors: then the store may or may not have applied any of them.
    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error>;

    /// Whether [`release_jobs_recorded`](JobStore::release_jobs_recorded) writes the
    /// records and the release in one round trip to the server (default: no). A
    /// scheduler whose run history is this store's own
    /// ([`run_history`](JobStore::run_history)) then writes the `running` records of a
    /// pass's runs with the release that makes them its own.
    fn records_with_release(&self) -> bool {
        false
    }

    /// Writes `records` to this store's own run history, then releases as
    /// [`release_jobs`](JobStore::release_jobs) does; a store whose
    /// [`records_with_release`](JobStore::records_with_release) is true does both in
    /// one round trip (and, where the backend has transactions, atomically). The
    /// default writes the records, then releases.
    ///
    /// # Errors
    /// The records could not be written (nothing was released), or as `release_jobs`:
    /// the store may or may not have applied the release, and the records may or may
    /// not be written.
    async fn release_jobs_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[crate::RunRecord],
    ) -> Result<Released, Error> {
        if !records.is_empty() {
            let history = self.run_history().ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::InvalidState,
                    "this store keeps no run history to record the runs in",
                )
            })?;
            history.record_runs(records).await?;
        }
        self.release_jobs(scheduler_id, releases).await
    }
}

/// What a job store offers beyond the [`JobStore`] contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Jobs outlive the scheduler process (a restart finds them, run times and leases
    /// included).
    pub persistent: bool,
    /// Several schedulers, in other processes or on other machines, can share the store
    /// (claims with leases are atomic in the backend).
    pub shared: bool,
    /// The store tells schedulers about changes made elsewhere as they happen, through
    /// [`JobStore::set_change_listener`] (the ZooKeeper store's watches), so a sleeping
    /// scheduler need not poll.
    pub notifications: bool,
    /// Multi-job writes (`add_jobs`, claims, releases) are atomic transactions.
    pub transactions: bool,
    /// One process at a time claims from it: a scheduler in a second process is refused
    /// (a SQLite file's lock). Such a store is not for a cluster, though its claims
    /// follow the shared contract.
    pub single_node: bool,
    /// Leases are timed by the store's own clock (PostgreSQL and MySQL `now()`, Redis
    /// `TIME`): a claim or an extension leases until the store's time plus `lease`, and
    /// a lease has expired once the store's clock passes its end. The `now` a caller
    /// passes then only says which jobs are due, so node clock skew cannot let two nodes
    /// hold one lease. [`JobStore::get_next_run_time`] reports a leased job at the later
    /// of its run time and its lease's end on the store's clock.
    pub store_clock: bool,
    /// Into how many claim partitions the store divides its jobs (a stable hash of the
    /// job id), for [`JobStore::acquire_due_jobs_preferring`]; 0 when it does not.
    pub partitions: u32,
}

impl Capabilities {
    /// A store whose jobs outlive the process and that several schedulers can share.
    pub const fn persistent_shared(transactions: bool) -> Capabilities {
        Capabilities {
            persistent: true,
            shared: true,
            notifications: false,
            transactions,
            single_node: false,
            store_clock: false,
            partitions: 0,
        }
    }
}
