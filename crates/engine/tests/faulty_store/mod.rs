//! A memory store whose next release meets a fault (and whose claims can fail, or
//! panic), recording the leases it is asked for: the claims tests' store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{
    async_trait, Acquired, Capabilities, Error, ErrorKind, Job, JobRelease, JobStore, Released,
};
use apscheduler_engine::DEFAULT_LEASE;
use apscheduler_store_memory::MemoryJobStore;
use chrono::{DateTime, Utc};

use crate::common::at;

/// What the store does to the next release.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Another scheduler claims and releases the job first (this one's lease expired).
    TakenOver,
    /// The release fails before the store applied it (its reply is an error).
    Unconfirmed,
    /// The store applies the release, and its reply is lost.
    AppliedUnconfirmed,
    /// The release answers only after this long (a store stalled mid-pass).
    Slow(Duration),
}

/// A memory store whose next release meets a fault; `shared`, it says it is a store
/// several schedulers share (as the SQL, Redis and MongoDB stores do).
#[derive(Debug)]
pub(crate) struct Faulty {
    pub(crate) inner: MemoryJobStore,
    pub(crate) fault: Mutex<Option<Fault>>,
    pub(crate) releases: AtomicUsize,
    pub(crate) shared: bool,
    /// The next claim panics (a bug in the store).
    pub(crate) claim_panics: AtomicBool,
    /// The lease each claim asked for.
    pub(crate) leases: Mutex<Vec<Duration>>,
    /// How many of the next claims fail (the store is down).
    pub(crate) claims_failing: AtomicUsize,
}

impl Faulty {
    pub(crate) fn new(shared: bool) -> Arc<Self> {
        Arc::new(Faulty {
            inner: MemoryJobStore::new(),
            fault: Mutex::new(None),
            releases: AtomicUsize::new(0),
            shared,
            claim_panics: AtomicBool::new(false),
            leases: Mutex::new(Vec::new()),
            claims_failing: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl JobStore for Faulty {
    fn is_persistent(&self) -> bool {
        false
    }
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.shared = self.shared;
        caps.single_node = !self.shared;
        caps
    }
    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.inner.add_job(job, replace_existing).await
    }
    async fn update_job(&self, job: Job) -> Result<(), Error> {
        self.inner.update_job(job).await
    }
    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        self.inner.remove_job(id).await
    }
    async fn remove_all_jobs(&self) -> Result<(), Error> {
        self.inner.remove_all_jobs().await
    }
    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        self.inner.lookup_job(id).await
    }
    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        self.inner.get_all_jobs().await
    }
    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.inner.get_next_run_time().await
    }
    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        assert!(
            !self.claim_panics.swap(false, Ordering::SeqCst),
            "a bug in the store's claim"
        );
        self.leases.lock().unwrap().push(lease);
        let down = self
            .claims_failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if down {
            return Err(Error::new(ErrorKind::Unavailable, "connection refused"));
        }
        self.inner
            .acquire_due_jobs(scheduler_id, now, limit, lease)
            .await
    }
    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        self.inner
            .extend_leases(scheduler_id, ids, now, lease)
            .await
    }
    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        let fault = self.fault.lock().unwrap().take();
        match fault {
            None => self.inner.release_jobs(scheduler_id, releases).await,
            Some(Fault::TakenOver) => {
                // The lease ran out mid-pass; another scheduler claimed the job, ran
                // its fire time and moved it on, all before this release arrives.
                let later = at(10, 0, 0) + chrono::Duration::from_std(DEFAULT_LEASE).unwrap();
                let taken = self
                    .inner
                    .acquire_due_jobs("node-2", later, 10, DEFAULT_LEASE)
                    .await?;
                assert_eq!(taken.jobs.len(), 1, "node-2 claims the expired lease");
                let mut job = taken.jobs[0].clone();
                job.next_run_time = Some(at(10, 1, 0).with_timezone(&chrono_tz::UTC));
                let theirs = self
                    .inner
                    .release_jobs("node-2", vec![JobRelease::Update(job)])
                    .await?;
                assert!(theirs.is_complete());
                self.inner.release_jobs(scheduler_id, releases).await
            }
            Some(Fault::Unconfirmed) => Err(Error::new(
                ErrorKind::Unavailable,
                "connection reset while committing",
            )),
            Some(Fault::Slow(stall)) => {
                tokio::time::sleep(stall).await;
                self.inner.release_jobs(scheduler_id, releases).await
            }
            Some(Fault::AppliedUnconfirmed) => {
                let released = self.inner.release_jobs(scheduler_id, releases).await?;
                assert!(released.is_complete());
                Err(Error::new(
                    ErrorKind::Unavailable,
                    "connection reset after the commit",
                ))
            }
        }
    }
}
