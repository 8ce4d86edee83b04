//! The store's state under one lock: the jobs by id, the leases, and the two ordered
//! indexes by next run time (unleased jobs) and by the instant a leased job becomes
//! claimable again.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Error, Job, JobRelease};
use chrono::{DateTime, TimeZone, Utc};
use hashbrown::hash_table::{self, HashTable};

/// The hasher of the id tables: seeded per table like std's SipHash, but several times
/// faster on short ids (it is hashbrown's default).
type IdHasher = foldhash::fast::RandomState;

/// A next run time or lease expiry as UTC microseconds since the epoch: the sort key of
/// both indexes.
pub(crate) type Micros = i64;

/// An index key: the instant, then the job id (ties broken by id).
pub(crate) type Key = (Micros, Arc<str>);

/// A stored job. The id table holds one pointer per job (its spare capacity costs a
/// few bytes per slot, never a whole job) and no separate copy of the id as key.
pub(crate) struct Stored(pub(crate) Box<Job>);

/// The jobs by id: a hash table of [`Stored`] jobs hashed by their id, looked up with
/// one probe where `HashSet` would need two (insert unless present, update in place).
#[derive(Default)]
pub(crate) struct JobTable {
    table: HashTable<Stored>,
    hasher: IdHasher,
}

impl JobTable {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        JobTable {
            table: HashTable::with_capacity(capacity),
            hasher: IdHasher::default(),
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Stored> {
        self.table.iter()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Stored> {
        self.table.find(self.hash(id), |s| &*s.0.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Stored> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |s| &*s.0.id == id)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
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

    pub(crate) fn reserve(&mut self, additional: usize) {
        let JobTable { table, hasher } = self;
        table.reserve(additional, |s| hasher.hash_one(&*s.0.id));
    }
}

/// Who holds a claim on a job, and until when.
pub(crate) struct Lease {
    /// Shared by every lease of the same claimant.
    pub(crate) holder: Arc<str>,
    /// UTC microseconds; the lease has expired at any `now` at or after this.
    pub(crate) expires: Micros,
}

impl Lease {
    pub(crate) fn is_live(&self, now: Micros) -> bool {
        now < self.expires
    }
}

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
pub(crate) struct State {
    pub(crate) jobs: JobTable,
    pub(crate) leases: HashMap<Arc<str>, Lease, IdHasher>,
    pub(crate) index: Indexes,
    /// The last claimant's id, shared by its leases (one allocation per claimant, not
    /// per claim).
    pub(crate) holder: Option<Arc<str>>,
    /// The runs (the run contract), beside the jobs under the same lock.
    pub(crate) runs: apscheduler_core::RunTable,
}

#[derive(Default)]
pub(crate) struct Indexes {
    pub(crate) due: BTreeSet<Key>,
    pub(crate) leased: BTreeSet<Key>,
}

pub(crate) fn micros<T: TimeZone>(t: &DateTime<T>) -> Micros {
    t.timestamp_micros()
}

/// `now + lease` in microseconds, saturating.
pub(crate) fn expiry(now: &DateTime<Utc>, lease: Duration) -> Micros {
    let lease = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    micros(now).saturating_add(lease)
}

pub(crate) fn from_micros(us: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The exact next run time of job `id`.
pub(crate) fn run_time(jobs: &JobTable, id: &str) -> Option<DateTime<Utc>> {
    jobs.get(id)
        .and_then(|s| s.0.next_run_time.as_ref())
        .map(|t| t.with_timezone(&Utc))
}

/// Inserts `keys` (sorted, none already in `set`) into `set`: merged in one pass when
/// they are at least as many as the keys there (a claim or release batch into a small
/// index), one by one otherwise.
pub(crate) fn insert_sorted(set: &mut BTreeSet<Key>, keys: Vec<Key>) {
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
    pub(crate) fn link(&mut self, job: &Job, lease: Option<&Lease>) {
        if let Some((index, key)) = self.slot(job, lease) {
            index.insert(key);
        }
    }

    /// Takes a job's key out of its index.
    pub(crate) fn unlink(&mut self, job: &Job, lease: Option<&Lease>) {
        if let Some((index, key)) = self.slot(job, lease) {
            index.remove(&key);
        }
    }
}

impl State {
    /// Replaces the state of a stored job, keeping its lease.
    pub(crate) fn replace(&mut self, job: Job) -> Result<(), Error> {
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
    pub(crate) fn release_one(
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

    /// Applies one release as [`release_one`](State::release_one) does and links the
    /// updated job into the due index at once (a release outside a batch).
    pub(crate) fn release_linked(
        &mut self,
        scheduler_id: &str,
        release: JobRelease,
    ) -> Result<(), Arc<str>> {
        if let Some(key) = self.release_one(scheduler_id, release, false)? {
            if !self.leases.contains_key(&key.1) {
                self.index.due.insert(key);
            }
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Stored> {
        let stored = self.jobs.take(id)?;
        let lease = self.leases.remove(id);
        self.index.unlink(&stored.0, lease.as_ref());
        Some(stored)
    }

    pub(crate) fn add(&mut self, job: Job, replace_existing: bool) -> Result<(), Error> {
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
    pub(crate) fn reap_expired(&mut self, now: Micros) {
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

    pub(crate) fn run_time(&self, id: &str) -> Option<DateTime<Utc>> {
        run_time(&self.jobs, id)
    }
}
