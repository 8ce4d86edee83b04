//! [`SqlJobStore`]'s [`JobStore`] implementation, and its release (with the run
//! records written in the same round trip where the backend can).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, Acquired, Error, ErrorKind, Job, JobRelease, JobStore, Released, RunRecord,
};
use chrono::{DateTime, Utc};

use crate::codec;
use crate::driver::{Extension, Release};
use crate::error::StoreError;
use crate::schema::Dialect;
use crate::store::SqlJobStore;

/// From this many jobs, [`SqlJobStore::get_all_jobs`] decodes them on every core
/// (rayon): at 10-20 µs a job, a listing of 10,000 takes 100-200 ms on one. Fewer
/// are decoded in place: not worth the worker threads a small daemon would keep.
const PARALLEL_DECODE_ROWS: usize = 2_000;

impl SqlJobStore {
    /// Writes `records` to the run history beside the table and releases (one
    /// statement on PostgreSQL, which also reads the next run time after the release).
    async fn release_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[RunRecord],
    ) -> Result<Released, Error> {
        let writes = crate::history::writes(records)?;
        if releases.is_empty() {
            if !writes.is_empty() {
                let driver = self.driver().await?;
                retry!(driver.history().upsert(&writes))?;
            }
            return Ok(Released::all());
        }
        codec::check_id("scheduler_id", scheduler_id)?;
        // The last release of an id wins.
        let mut last: HashMap<Arc<str>, JobRelease> = HashMap::with_capacity(releases.len());
        for r in releases {
            let id = match &r {
                JobRelease::Update(job) => job.id.clone(),
                JobRelease::Remove(id) => id.clone(),
            };
            last.insert(id, r);
        }
        let mut updates = Vec::with_capacity(last.len());
        let mut removes = Vec::new();
        let mut asked: Vec<Arc<str>> = Vec::with_capacity(last.len());
        let mut refused = Vec::new();
        for (id, r) in last {
            match r {
                JobRelease::Update(job) => match self.encode(&job) {
                    Ok(row) => {
                        updates.push(row);
                        asked.push(id);
                    }
                    Err(e) => refused.push((id, e)),
                },
                JobRelease::Remove(_) => match codec::check_id("id", &id) {
                    Ok(()) => {
                        removes.push(id.to_string());
                        asked.push(id);
                    }
                    Err(e) => refused.push((id, e)),
                },
            }
        }
        let driver = self.driver().await?;
        if asked.is_empty() {
            if !writes.is_empty() {
                retry!(driver.history().upsert(&writes))?;
            }
            return Ok(Released::new(Vec::new(), refused));
        }
        let (released, next) = retry!(driver.release_reading_next(
            Release {
                holder: scheduler_id,
                updates: &updates,
                removes: &removes,
                // A node that saw these jobs under this one's lease sleeps until it
                // expires: the release wakes it (PostgreSQL, in the same statement).
                token: self.changes.token(),
            },
            &writes
        ))?;
        let released: HashSet<String> = released.into_iter().collect();
        let mut lost = Vec::new();
        if released.len() < asked.len() {
            lost = asked
                .into_iter()
                .filter(|id| !released.contains(&**id))
                .collect();
        }
        let done = Released::new(lost, refused);
        Ok(match next {
            Some((due, leased)) => {
                let earliest = match (due, leased) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                done.with_next_run_time(earliest.map(codec::from_micros))
            }
            None => done,
        })
    }
}

fn into_error(e: StoreError) -> Error {
    e.into()
}

#[async_trait]
impl JobStore for SqlJobStore {
    /// Connects, and creates or migrates the tables. On PostgreSQL, with a change
    /// listener set, also listens for other schedulers' changes.
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        let driver = self.driver().await?;
        if let Some(listener) = self.changes.listener() {
            self.changes.stop().await;
            if let Some(task) = driver.listen(self.changes.token().clone(), listener) {
                // Awaited: the task holds a connection of the pool, which must be back
                // before the pool closes.
                self.changes.listening(Box::new(move || {
                    task.abort();
                    Box::pin(async move {
                        let _ = task.await;
                    })
                }));
            }
        }
        Ok(())
    }

    /// Closes the pool's connections (the run history's too: they share them).
    async fn shutdown(&self) -> Result<(), Error> {
        self.changes.stop().await;
        if self
            .waiting_until
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            if let Some(driver) = self.link.current() {
                // Left behind, it would only wake the others for nothing until it ends.
                let _ = driver.stop_waiting(self.changes.token()).await;
            }
        }
        self.link.close().await;
        #[cfg(feature = "sqlite")]
        if let Some(lock) = &self.link.node_lock {
            lock.release();
        }
        Ok(())
    }

    /// A [`SqlRunHistory`](crate::SqlRunHistory) on this store's pool, in the table
    /// `<table_name>_runs` beside the job table (see [`SqlJobStore::runs_table_name`]).
    fn runs(&self) -> Option<&dyn apscheduler_core::RunStore> {
        Some(self)
    }

    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(self.history.clone())
    }

    fn is_persistent(&self) -> bool {
        true
    }

    /// SQLite is single-node (one scheduler process per file: see
    /// [`SqlJobStore::lock_single_node`]).
    fn capabilities(&self) -> apscheduler_core::Capabilities {
        let mut capabilities = apscheduler_core::Capabilities::persistent_shared(true);
        capabilities.single_node = self.link.backend() == Dialect::Sqlite;
        capabilities.notifications = self.link.backend() == Dialect::Postgres;
        capabilities.store_clock = self.link.backend() != Dialect::Sqlite;
        if self.link.backend() != Dialect::Sqlite {
            capabilities.partitions = crate::schema::CLAIM_PARTITIONS;
        }
        capabilities
    }

    /// PostgreSQL: heard through `LISTEN` from [`start`](JobStore::start) on: every
    /// job added, changed, removed or released by another store on the table (another
    /// process's scheduler or `aps jobs`) calls it, and so does every reconnection of
    /// the listening connection. The other backends have no channel.
    fn set_change_listener(&self, listener: apscheduler_core::ChangeListener) {
        self.changes.set_listener(listener);
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        let row = self.encode(&job)?;
        let driver = self.driver().await?;
        retry!(driver.insert(std::slice::from_ref(&row), replace_existing)).map_err(into_error)?;
        self.changed(&driver).await;
        Ok(())
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        let mut rows = Vec::with_capacity(jobs.len());
        for job in &jobs {
            rows.push(self.encode(job)?);
        }
        if replace_existing {
            // The same id twice: the later job wins, as if added one by one.
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
            for (i, r) in rows.iter().enumerate() {
                last.insert(r.id.as_str(), i);
            }
            if last.len() < rows.len() {
                let keep: HashSet<usize> = last.into_values().collect();
                rows = rows
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep.contains(i))
                    .map(|(_, r)| r)
                    .collect();
            }
        } else {
            let mut seen = HashSet::with_capacity(rows.len());
            for r in &rows {
                if !seen.insert(r.id.as_str()) {
                    return Err(Error::conflict(&r.id));
                }
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let driver = self.driver().await?;
        retry!(driver.insert(&rows, replace_existing)).map_err(into_error)?;
        self.changed(&driver).await;
        Ok(())
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let row = self.encode(&job)?;
        let driver = self.driver().await?;
        if retry!(driver.rows().update(&row))? {
            self.changed(&driver).await;
            Ok(())
        } else {
            Err(Error::job_not_found(&job.id))
        }
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        if codec::check_id("id", id).is_err() {
            return Err(Error::job_not_found(id));
        }
        let driver = self.driver().await?;
        if retry!(driver.rows().delete(id))? {
            self.changed(&driver).await;
            Ok(())
        } else {
            Err(Error::job_not_found(id))
        }
    }

    /// Removes every job, corrupt ones included.
    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let driver = self.driver().await?;
        retry!(driver.rows().delete_all()).map_err(into_error)?;
        self.changed(&driver).await;
        Ok(())
    }

    /// The job, `None` when absent, or a `Serialization` error for a row that cannot
    /// be read (it is not marked corrupt here: claims do that).
    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        if codec::check_id("id", id).is_err() {
            return Ok(None);
        }
        let driver = self.driver().await?;
        let Some(row) = driver.rows().fetch(id, self.max_bytes()).await? else {
            return Ok(None);
        };
        codec::decode(&row, &self.codec)
            .map(Some)
            .map_err(|reason| Error::new(ErrorKind::Serialization, reason))
    }

    /// Every readable job; rows that cannot be read are skipped with a warning (see
    /// [`corrupt_jobs`](SqlJobStore::corrupt_jobs)).
    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let driver = self.driver().await?;
        let rows = driver.fetch_all(self.max_bytes()).await?;
        let decoded: Vec<Result<Job, String>> = if rows.len() >= PARALLEL_DECODE_ROWS {
            use rayon::prelude::*;
            rows.par_iter()
                .map(|row| codec::decode(row, &self.codec))
                .collect()
        } else {
            rows.iter()
                .map(|row| codec::decode(row, &self.codec))
                .collect()
        };
        let mut jobs = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for (row, job) in rows.iter().zip(decoded) {
            match job {
                Ok(job) => jobs.push(job),
                Err(_) => unreadable.push(row.id.as_str()),
            }
        }
        if !unreadable.is_empty() {
            let shown: Vec<&str> = unreadable.iter().take(10).copied().collect();
            apscheduler_core::log_warn!(target: "apscheduler", table = %self.link.names.table, "{} stored job(s) cannot be read and were left out: {}{}", unreadable.len(), shown.join(", "), if unreadable.len() > shown.len() { ", ..." } else { "" });
        }
        Ok(jobs)
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let driver = self.driver().await?;
        let (due, leased) = driver.rows().next_run_time().await?;
        // Sleeping until another scheduler's lease ends: only then does a release
        // concern this scheduler (a release never moves a job it saw unleased earlier).
        if let Some(until) = leased.filter(|l| due.is_none_or(|d| *l <= d)) {
            self.wait_for_release(&driver, until).await;
        }
        let earliest = match (due, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(earliest.map(codec::from_micros))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        self.claim(scheduler_id, now, limit, lease, None).await
    }

    /// PostgreSQL and MySQL/MariaDB: the due jobs of the hint's partitions first,
    /// through the index on `(claim_partition, next_run_time, id)`, then the earliest
    /// due jobs of the other partitions to fill `limit`, in one statement on PostgreSQL
    /// (two in one transaction on MySQL/MariaDB when it steals). A hint that names
    /// every partition or none, or another partition count, is a plain claim; SQLite
    /// ignores it.
    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: apscheduler_core::ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        let partitioned = self.link.backend() != Dialect::Sqlite
            && hint.partitions == crate::schema::CLAIM_PARTITIONS
            && !hint.owned.is_empty()
            && !hint.owns_all();
        let prefer = partitioned.then_some(hint.owned);
        self.claim(scheduler_id, now, limit, lease, prefer).await
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        codec::check_id("scheduler_id", scheduler_id)?;
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if seen.insert(&**id) && codec::check_id("id", id).is_ok() {
                unique.push(id.to_string());
            }
        }
        let extended: HashSet<String> = if unique.is_empty() {
            HashSet::new()
        } else {
            let driver = self.driver().await?;
            let expires = codec::expiry(&now, lease);
            let now = codec::micros_floor(&now);
            retry!(driver.extend(Extension {
                holder: scheduler_id,
                ids: &unique,
                now,
                expires,
                lease: codec::lease_length(lease),
            }))?
            .into_iter()
            .collect()
        };
        let mut lost: Vec<&str> = Vec::new();
        let mut reported = HashSet::new();
        for id in ids {
            if !extended.contains(&**id) && reported.insert(&**id) {
                lost.push(id);
            }
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
        self.release_recorded(scheduler_id, releases, &[]).await
    }

    fn records_with_release(&self) -> bool {
        // The backends whose driver writes records and release in one round trip
        // (PostgreSQL one statement, MySQL one script), atomically.
        matches!(self.link.backend(), Dialect::Postgres | Dialect::MySql)
    }

    async fn release_jobs_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[RunRecord],
    ) -> Result<Released, Error> {
        self.release_recorded(scheduler_id, releases, records).await
    }
}
