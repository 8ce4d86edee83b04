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
pub use config::{register, MemoryStoreConfig};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{async_trait, Acquired, Error, Job, JobRelease, JobStore, Released};
use chrono::{DateTime, TimeZone, Utc};
use hashbrown::hash_table::{self, HashTable};
pub use history::MemoryRunHistory;
use parking_lot::Mutex;

/// A job store that keeps jobs in memory (APScheduler's `MemoryJobStore`).
///
/// Not persistent: jobs may run closures, and are gone when the store is dropped.
/// Share it behind an `Arc`; every operation takes a short lock and completes without
/// awaiting anything.
///
/// See the [crate documentation](crate) for an example and the details of the lease
/// bookkeeping.
#[derive(Default)]
pub struct MemoryJobStore {
    state: Mutex<State>,
    history: Arc<MemoryRunHistory>,
}

impl MemoryJobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for `capacity` jobs before its id table grows.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryJobStore {
            state: Mutex::new(State {
                jobs: JobTable::with_capacity(capacity),
                ..State::default()
            }),
            history: Arc::default(),
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

/// The hasher of the id tables: seeded per table like std's SipHash, but several times
/// faster on short ids (it is hashbrown's default).
type IdHasher = foldhash::fast::RandomState;

/// A next run time or lease expiry as UTC microseconds since the epoch: the sort key of
/// both indexes.
type Micros = i64;

/// An index key: the instant, then the job id (ties broken by id).
type Key = (Micros, Arc<str>);

/// A stored job. The id table holds one pointer per job (its spare capacity costs a
/// few bytes per slot, never a whole job) and no separate copy of the id as key.
struct Stored(Box<Job>);

/// The jobs by id: a hash table of [`Stored`] jobs hashed by their id, looked up with
/// one probe where `HashSet` would need two (insert unless present, update in place).
#[derive(Default)]
struct JobTable {
    table: HashTable<Stored>,
    hasher: IdHasher,
}

impl JobTable {
    fn with_capacity(capacity: usize) -> Self {
        JobTable {
            table: HashTable::with_capacity(capacity),
            hasher: IdHasher::default(),
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &Stored> {
        self.table.iter()
    }

    fn get(&self, id: &str) -> Option<&Stored> {
        self.table.find(self.hash(id), |s| &*s.0.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Stored> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |s| &*s.0.id == id)
    }

    fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    fn take(&mut self, id: &str) -> Option<Stored> {
        let hash = self.hash(id);
        let entry = self.table.find_entry(hash, |s| &*s.0.id == id).ok()?;
        Some(entry.remove().0)
    }

    /// Stores a job whose id is not in the table yet; if it is, drops the job and gives
    /// its id back.
    fn insert_new(&mut self, job: Job) -> Result<&Job, Arc<str>> {
        let JobTable { table, hasher } = self;
        let hash = hasher.hash_one(&*job.id);
        match table.entry(hash, |s| s.0.id == job.id, |s| hasher.hash_one(&*s.0.id)) {
            hash_table::Entry::Occupied(_) => Err(job.id),
            hash_table::Entry::Vacant(slot) => Ok(&slot.insert(Stored(Box::new(job))).into_mut().0),
        }
    }

    fn reserve(&mut self, additional: usize) {
        let JobTable { table, hasher } = self;
        table.reserve(additional, |s| hasher.hash_one(&*s.0.id));
    }
}

/// Who holds a claim on a job, and until when.
struct Lease {
    /// Shared by every lease of the same claimant.
    holder: Arc<str>,
    /// UTC microseconds; the lease has expired at any `now` at or after this.
    expires: Micros,
}

impl Lease {
    fn is_live(&self, now: Micros) -> bool {
        now < self.expires
    }
}

/// Up to this many due jobs are taken from the index one by one (no tree split, which
/// allocates); more are split off in one go.
const FEW_DUE: usize = 16;

/// The store's state, under one lock.
///
/// Invariants:
/// - every job is in `jobs`; `leases` holds the claims on jobs of `jobs` only;
/// - a scheduled job (with a next run time) without a lease is in `index.due`, keyed by
///   its next run time;
/// - a scheduled job with a lease is in `index.leased`, keyed by the instant it becomes
///   claimable again: the later of its next run time and the lease's expiry;
/// - a paused job is in neither index.
#[derive(Default)]
struct State {
    jobs: JobTable,
    leases: HashMap<Arc<str>, Lease, IdHasher>,
    index: Indexes,
    /// The last claimant's id, shared by its leases (one allocation per claimant, not
    /// per claim).
    holder: Option<Arc<str>>,
}

#[derive(Default)]
struct Indexes {
    due: BTreeSet<Key>,
    leased: BTreeSet<Key>,
}

fn micros<T: TimeZone>(t: &DateTime<T>) -> Micros {
    t.timestamp_micros()
}

/// `now + lease` in microseconds, saturating.
fn expiry(now: &DateTime<Utc>, lease: Duration) -> Micros {
    let lease = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    micros(now).saturating_add(lease)
}

fn from_micros(us: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The exact next run time of job `id`.
fn run_time(jobs: &JobTable, id: &str) -> Option<DateTime<Utc>> {
    jobs.get(id)
        .and_then(|s| s.0.next_run_time.as_ref())
        .map(|t| t.with_timezone(&Utc))
}

/// Inserts `keys` (sorted, none already in `set`) into `set`: merged in one pass when
/// they are at least as many as the keys there (a claim or release batch into a small
/// index), one by one otherwise.
fn insert_sorted(set: &mut BTreeSet<Key>, keys: Vec<Key>) {
    if keys.len() >= set.len() {
        let mut batch: BTreeSet<Key> = keys.into_iter().collect();
        set.append(&mut batch);
    } else {
        set.extend(keys);
    }
}

impl Indexes {
    /// The index a job belongs to and its key there; `None` for a paused job.
    fn slot<'a>(
        &'a mut self,
        job: &Job,
        lease: Option<&Lease>,
    ) -> Option<(&'a mut BTreeSet<Key>, Key)> {
        let run = micros(job.next_run_time.as_ref()?);
        let id = job.id.clone();
        Some(match lease {
            Some(lease) => (&mut self.leased, (run.max(lease.expires), id)),
            None => (&mut self.due, (run, id)),
        })
    }

    /// Puts a job's key into its index.
    fn link(&mut self, job: &Job, lease: Option<&Lease>) {
        if let Some((index, key)) = self.slot(job, lease) {
            index.insert(key);
        }
    }

    /// Takes a job's key out of its index.
    fn unlink(&mut self, job: &Job, lease: Option<&Lease>) {
        if let Some((index, key)) = self.slot(job, lease) {
            index.remove(&key);
        }
    }
}

impl State {
    /// Replaces the state of a stored job, keeping its lease.
    fn replace(&mut self, job: Job) -> Result<(), Error> {
        let State {
            jobs,
            leases,
            index,
            ..
        } = self;
        let Some(stored) = jobs.get_mut(&job.id) else {
            return Err(Error::job_not_found(&job.id));
        };
        let lease = leases.get(&*job.id);
        index.unlink(&stored.0, lease);
        *stored.0 = job;
        index.link(&stored.0, lease);
        Ok(())
    }

    /// Takes the lease of job `id` unless another scheduler holds it (`Err`): the
    /// caller's lease expired and the job was claimed again. `Ok(None)`: nobody holds one.
    fn take_lease(&mut self, scheduler_id: &str, id: &str) -> Result<Option<Lease>, ()> {
        match self.leases.remove(id) {
            Some(lease) if &*lease.holder != scheduler_id => {
                // Claimed again by another scheduler after this one's lease expired.
                self.leases.insert(id.into(), lease);
                Err(())
            }
            lease => Ok(lease),
        }
    }

    /// Applies one release by `scheduler_id` if it may release the job: it exists, and
    /// the caller holds its lease (expired or not). Ends the lease and drops the job's key from the indexes, but
    /// leaves a leased key to the caller's sweep when `sweep_leases`; returns the key to
    /// link into `due` for an updated job (linked by the caller, in bulk). `Err` with
    /// the id when the release is not applied (another scheduler holds the job, or it
    /// is gone).
    fn release_one(
        &mut self,
        scheduler_id: &str,
        release: JobRelease,
        sweep_leases: bool,
    ) -> Result<Option<Key>, Arc<str>> {
        let id = match &release {
            JobRelease::Update(job) => job.id.clone(),
            JobRelease::Remove(id) => id.clone(),
        };
        // Only the holder releases: without a lease, another scheduler may have claimed
        // and released the job since, and this release would undo its work.
        let Ok(Some(lease)) = self.take_lease(scheduler_id, &id) else {
            return Err(id);
        };
        let State { jobs, index, .. } = self;
        let Some(stored) = jobs.get_mut(&id) else {
            return Err(id);
        };
        if !sweep_leases {
            index.unlink(&stored.0, Some(&lease));
        }
        match release {
            JobRelease::Update(job) => {
                let key = job.next_run_time.as_ref().map(|t| (micros(t), id));
                *stored.0 = job;
                Ok(key)
            }
            JobRelease::Remove(_) => {
                jobs.take(&id);
                Ok(None)
            }
        }
    }

    fn remove(&mut self, id: &str) -> Option<Stored> {
        let stored = self.jobs.take(id)?;
        let lease = self.leases.remove(id);
        self.index.unlink(&stored.0, lease.as_ref());
        Some(stored)
    }

    fn add(&mut self, job: Job, replace_existing: bool) -> Result<(), Error> {
        if replace_existing && self.jobs.contains(&job.id) {
            return self.replace(job);
        }
        match self.jobs.insert_new(job) {
            Ok(job) => {
                self.index.link(job, None);
                Ok(())
            }
            Err(id) => Err(Error::conflict(&id)),
        }
    }

    /// Drops the expired leases of the jobs that are due by `now`, moving those jobs
    /// back to the `due` index.
    fn reap_expired(&mut self, now: Micros) {
        while self.index.leased.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, id)) = self.index.leased.pop_first() else {
                break;
            };
            self.leases.remove(&id);
            if let Some(stored) = self.jobs.get(&id) {
                self.index.link(&stored.0, None);
            }
        }
    }

    fn run_time(&self, id: &str) -> Option<DateTime<Utc>> {
        run_time(&self.jobs, id)
    }
}

#[async_trait]
impl JobStore for MemoryJobStore {
    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(self.history.clone())
    }

    fn is_persistent(&self) -> bool {
        false
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.state.lock().add(job, replace_existing)
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        let mut state = self.state.lock();
        if !replace_existing {
            let mut batch = HashSet::with_capacity(jobs.len());
            for job in &jobs {
                if state.jobs.contains(&job.id) || !batch.insert(&*job.id) {
                    return Err(Error::conflict(&job.id));
                }
            }
        }
        state.jobs.reserve(jobs.len());
        for job in jobs {
            state.add(job, replace_existing)?;
        }
        Ok(())
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        self.state.lock().replace(job)
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let removed = self.state.lock().remove(id);
        match removed {
            Some(_) => Ok(()),
            None => Err(Error::job_not_found(id)),
        }
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let old = std::mem::take(&mut *self.state.lock());
        // Free the jobs outside the lock.
        drop(old);
        Ok(())
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        Ok(self.state.lock().jobs.get(id).map(|s| (*s.0).clone()))
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let mut jobs: Vec<(Option<Micros>, Job)> = self
            .state
            .lock()
            .jobs
            .iter()
            .map(|s| (s.0.next_run_time.as_ref().map(micros), (*s.0).clone()))
            .collect();
        // Paused jobs (`None`) sort after every run time.
        jobs.sort_unstable_by(|(a, ja), (b, jb)| {
            (a.is_none(), a, &ja.id).cmp(&(b.is_none(), b, &jb.id))
        });
        Ok(jobs.into_iter().map(|(_, job)| job).collect())
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let state = self.state.lock();
        let due = state
            .index
            .due
            .first()
            .and_then(|(_, id)| state.run_time(id));
        // A leased job is claimable again at its key: the later of its run time and its
        // lease's expiry. Report the exact run time when that is the later one.
        let leased = state
            .index
            .leased
            .first()
            .map(|(at, id)| match state.run_time(id) {
                Some(t) if micros(&t) >= *at => t,
                _ => from_micros(*at),
            });
        Ok(match (due, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let now_us = micros(&now);
        let expires = expiry(&now, lease);
        let mut state = self.state.lock();
        state.reap_expired(now_us);
        let State {
            jobs,
            leases,
            index,
            holder: last_holder,
        } = &mut *state;

        // The keys of earlier microseconds than `now` are due. A few are taken key by
        // key; a long prefix of the index (a burst) is detached in one split instead.
        let due = index
            .due
            .iter()
            .take(limit)
            .take_while(|key| key.0 < now_us)
            .count();
        let mut claimed: Vec<Key> = if due <= FEW_DUE {
            (0..due).filter_map(|_| index.due.pop_first()).collect()
        } else {
            let rest = match index.due.iter().nth(due).cloned() {
                Some(key) => index.due.split_off(&key),
                None => BTreeSet::new(),
            };
            std::mem::replace(&mut index.due, rest)
                .into_iter()
                .collect()
        };
        // In the same microsecond as `now`: compare the exact instants, key by key.
        if claimed.len() < limit {
            let same: Vec<Key> = index
                .due
                .iter()
                .take_while(|key| key.0 == now_us)
                .filter(|key| matches!(run_time(jobs, &key.1), Some(t) if t <= now))
                .take(limit - claimed.len())
                .cloned()
                .collect();
            for key in same {
                index.due.remove(&key);
                claimed.push(key);
            }
        }

        if claimed.is_empty() {
            return Ok(Acquired::default());
        }
        let holder = match last_holder {
            Some(h) if &**h == scheduler_id => h.clone(),
            _ => last_holder.insert(Arc::from(scheduler_id)).clone(),
        };
        let mut acquired = Vec::with_capacity(claimed.len());
        // A claimed job is due (`run <= now < expires`), so it becomes claimable again
        // when its lease expires: every new key has the same instant, `expires`.
        let mut leased_keys = Vec::with_capacity(claimed.len());
        for (_, id) in claimed {
            let Some(stored) = jobs.get(&id) else {
                continue;
            };
            acquired.push((*stored.0).clone());
            leases.insert(
                id.clone(),
                Lease {
                    holder: holder.clone(),
                    expires,
                },
            );
            leased_keys.push((expires, id));
        }
        insert_sorted(&mut index.leased, leased_keys);
        Ok(Acquired {
            jobs: acquired,
            corrupt: Vec::new(),
        })
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        let now_us = micros(&now);
        let expires = expiry(&now, lease);
        let mut state = self.state.lock();
        let State {
            jobs,
            leases,
            index,
            ..
        } = &mut *state;
        let mut lost: Vec<&str> = Vec::new();
        for id in ids {
            let held = leases
                .get_mut(&**id)
                .filter(|l| &*l.holder == scheduler_id && l.is_live(now_us));
            let (Some(held), Some(stored)) = (held, jobs.get(id)) else {
                lost.push(id);
                continue;
            };
            index.unlink(&stored.0, Some(held));
            held.expires = expires;
            index.link(&stored.0, Some(held));
        }
        if lost.is_empty() {
            Ok(())
        } else {
            Err(Error::lease_lost(scheduler_id, &lost))
        }
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        let mut state = self.state.lock();
        // A release that covers a good part of the claimed jobs (a whole claim batch,
        // the usual case) drops their keys from the lease index in one pass at the end
        // instead of one tree removal each.
        let sweep = releases.len() >= 64 && releases.len() * 4 >= state.index.leased.len();
        let mut lost = Vec::new();
        let mut relinked: Vec<Key> = Vec::with_capacity(releases.len());
        for release in releases {
            match state.release_one(scheduler_id, release, sweep) {
                Ok(Some(key)) => relinked.push(key),
                Ok(None) => {}
                Err(id) => lost.push(id),
            }
        }
        let State {
            jobs,
            leases,
            index,
            ..
        } = &mut *state;
        if sweep {
            index.leased.retain(|(_, id)| leases.contains_key(id));
        }
        relinked.sort_unstable();
        relinked.dedup();
        // Keep only the keys of each job's final state (a batch may name a job twice).
        relinked.retain(|(at, id)| {
            !leases.contains_key(id)
                && jobs
                    .get(id)
                    .and_then(|s| s.0.next_run_time.as_ref())
                    .is_some_and(|t| micros(t) == *at)
        });
        insert_sorted(&mut index.due, relinked);
        Ok(Released::new(lost, Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

    fn job(id: &str, t: i64) -> Job {
        sample_job(id, Some(at(t)), interval_trigger(60))
    }

    async fn claim(store: &MemoryJobStore, who: &str, now: i64, lease: Duration) -> Vec<String> {
        let acquired = store
            .acquire_due_jobs(who, utc(now), 10, lease)
            .await
            .unwrap();
        acquired.jobs.iter().map(|j| j.id.to_string()).collect()
    }

    #[tokio::test]
    async fn next_run_time_reports_when_a_dead_holders_lease_runs_out() {
        let store = MemoryJobStore::new();
        store.add_job(job("a", 0), false).await.unwrap();
        assert_eq!(
            claim(&store, "s1", 10, Duration::from_secs(30)).await,
            ["a"]
        );
        // s1 dies: the job becomes claimable when the lease expires.
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(40)));
        assert!(claim(&store, "s2", 39, LEASE).await.is_empty());
        assert_eq!(claim(&store, "s2", 40, LEASE).await, ["a"]);
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(100)));
    }

    #[tokio::test]
    async fn update_of_a_claimed_job_keeps_its_lease() {
        let store = MemoryJobStore::new();
        store.add_job(job("a", 0), false).await.unwrap();
        assert_eq!(claim(&store, "s1", 0, LEASE).await, ["a"]);
        // Rescheduled while claimed to a time before the lease ends: still not claimable.
        store.update_job(job("a", 5)).await.unwrap();
        assert!(claim(&store, "s2", 10, LEASE).await.is_empty());
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(60)));
        // Rescheduled past the lease's end: reported (and claimable) at its run time.
        store.update_job(job("a", 90)).await.unwrap();
        assert_eq!(store.get_next_run_time().await.unwrap(), Some(utc(90)));
        assert_eq!(claim(&store, "s2", 90, LEASE).await, ["a"]);
    }

    #[tokio::test]
    async fn due_check_is_exact_below_the_microsecond() {
        let store = MemoryJobStore::new();
        let t = at(1) + chrono::Duration::nanoseconds(500);
        store
            .add_job(sample_job("a", Some(t), interval_trigger(60)), false)
            .await
            .unwrap();
        let now = utc(1);
        let early = store.acquire_due_jobs("s1", now, 10, LEASE).await.unwrap();
        assert!(early.jobs.is_empty(), "due 500 ns after now");
        let now = now + chrono::Duration::nanoseconds(500);
        let due = store.acquire_due_jobs("s1", now, 10, LEASE).await.unwrap();
        assert_eq!(due.jobs.len(), 1);
        assert_eq!(due.jobs[0].next_run_time, Some(t));
    }

    #[tokio::test]
    async fn extend_keeps_the_leases_still_held() {
        let store = MemoryJobStore::new();
        store.add_job(job("a", 0), false).await.unwrap();
        store.add_job(job("b", 0), false).await.unwrap();
        assert_eq!(
            claim(&store, "s1", 0, Duration::from_secs(5)).await,
            ["a", "b"]
        );
        let ids: [Arc<str>; 3] = ["a".into(), "ghost".into(), "b".into()];
        let err = store
            .extend_leases("s1", &ids, utc(1), LEASE)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), apscheduler_core::ErrorKind::LeaseLost);
        assert!(err.message().contains("ghost"), "{err}");
        assert!(!err.message().contains("a,"), "{err}");
        // a and b were extended to 61 s.
        assert!(claim(&store, "s2", 30, LEASE).await.is_empty());
        assert_eq!(claim(&store, "s2", 61, LEASE).await, ["a", "b"]);
    }

    /// Checks the invariants of [`State`]: each scheduled job has exactly one key, in the
    /// index its lease says, and no key names a missing job.
    fn check_invariants(store: &MemoryJobStore) {
        let state = store.state.lock();
        let mut keys = 0;
        for stored in state.jobs.iter() {
            let job = &stored.0;
            let Some(t) = job.next_run_time.as_ref() else {
                continue;
            };
            keys += 1;
            let run = micros(t);
            match state.leases.get(&*job.id) {
                Some(lease) => assert!(
                    state
                        .index
                        .leased
                        .contains(&(run.max(lease.expires), job.id.clone())),
                    "leased key of {}",
                    job.id
                ),
                None => assert!(
                    state.index.due.contains(&(run, job.id.clone())),
                    "due key of {}",
                    job.id
                ),
            }
        }
        assert_eq!(state.index.due.len() + state.index.leased.len(), keys);
        for id in state.leases.keys() {
            assert!(state.jobs.contains(id), "lease of missing job {id}");
        }
    }

    #[tokio::test]
    async fn indexes_stay_consistent_under_random_batches() {
        // A fixed linear congruential sequence: the same operations on every run.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n.max(1)
        };
        let store = MemoryJobStore::new();
        let mut claimed: Vec<(String, Job)> = Vec::new();
        let mut now = 0i64;
        for step in 0..800 {
            match next(10) {
                0 | 1 => {
                    let batch: Vec<Job> = (0..next(150))
                        .map(|k| job(&format!("j{step}-{k}"), now + next(20) as i64))
                        .collect();
                    store.add_jobs(batch, false).await.unwrap();
                }
                2..=4 => {
                    now += next(15) as i64;
                    let who = if next(4) == 0 { "s2" } else { "s1" };
                    let lease = Duration::from_secs(next(40));
                    let got = store
                        .acquire_due_jobs(who, utc(now), next(300) as usize + 1, lease)
                        .await
                        .unwrap();
                    claimed.extend(got.jobs.into_iter().map(|j| (who.to_owned(), j)));
                }
                5..=7 if !claimed.is_empty() => {
                    // Release a batch, sometimes naming a job twice.
                    let take = (next(claimed.len() as u64) as usize + 1).min(claimed.len());
                    let who = claimed[0].0.clone();
                    let mut releases = Vec::new();
                    for (holder, mut job) in claimed.drain(..take) {
                        if holder != who {
                            continue;
                        }
                        let twice = next(20) == 0;
                        let release = match next(4) {
                            0 => JobRelease::Remove(job.id.clone()),
                            1 => {
                                job.next_run_time = None;
                                JobRelease::Update(job)
                            }
                            _ => {
                                job.next_run_time = Some(at(now + next(30) as i64));
                                JobRelease::Update(job)
                            }
                        };
                        if twice {
                            // An earlier release of the same job, with another state.
                            let earlier = match &release {
                                JobRelease::Update(j) if j.next_run_time.is_some() => {
                                    let mut j = j.clone();
                                    j.next_run_time = Some(at(now + 100));
                                    JobRelease::Update(j)
                                }
                                other => other.clone(),
                            };
                            releases.push(earlier);
                        }
                        releases.push(release);
                    }
                    store.release_jobs(&who, releases).await.unwrap();
                }
                8 => {
                    let all = store.get_all_jobs().await.unwrap();
                    if !all.is_empty() {
                        let pick = &all[next(all.len() as u64) as usize];
                        if next(2) == 0 {
                            store.remove_job(&pick.id).await.unwrap();
                        } else {
                            let mut changed = pick.clone();
                            changed.next_run_time = Some(at(now + next(50) as i64));
                            store.update_job(changed).await.unwrap();
                        }
                    }
                }
                _ => {
                    let ids: Vec<Arc<str>> = claimed.iter().map(|(_, j)| j.id.clone()).collect();
                    let _ = store
                        .extend_leases("s1", &ids, utc(now), Duration::from_secs(next(40)))
                        .await;
                }
            }
            check_invariants(&store);
        }
        assert!(!store.is_empty());
    }

    #[tokio::test]
    async fn messages_and_bookkeeping() {
        let store = MemoryJobStore::with_capacity(4);
        assert!(store.is_empty());
        store.add_job(job("a", 0), false).await.unwrap();
        let err = store.add_job(job("a", 0), false).await.unwrap_err();
        assert_eq!(
            err.message(),
            "Job identifier (a) conflicts with an existing job"
        );
        let err = store.remove_job("x").await.unwrap_err();
        assert_eq!(err.message(), "No job by the id of x was found");
        assert_eq!(claim(&store, "s1", 0, LEASE).await, ["a"]);
        assert_eq!(
            format!("{store:?}"),
            "MemoryJobStore { jobs: 1, claimed: 1 }"
        );
        store.remove_job("a").await.unwrap();
        assert_eq!(store.len(), 0);
        assert_eq!(
            format!("{store:?}"),
            "MemoryJobStore { jobs: 0, claimed: 0 }"
        );
        let state = store.state.lock();
        assert!(state.index.due.is_empty() && state.index.leased.is_empty());
    }
}
