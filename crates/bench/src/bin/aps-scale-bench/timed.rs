//! A job store that times the claims and passes of the store it wraps, for the node
//! processes of `aps-scale-bench`. Every call goes to the wrapped store unchanged; the
//! wrapper only notes how long `acquire_due_jobs` took, how many jobs it returned, and
//! the time from a claim's start to the end of the release that follows it (one batch
//! of a scheduler pass: claim, plan, release).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::async_trait;
use apscheduler_core::{
    Acquired, Capabilities, ChangeListener, Error, Job, JobRelease, JobStore, Released, RunHistory,
};
use chrono::{DateTime, Utc};

/// What a node measured around its store.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    /// Each claim: its time (ms) and the number of jobs it returned.
    pub(crate) claims: Vec<(f64, usize)>,
    /// Each batch that claimed something: claim start to release end (ms).
    pub(crate) passes: Vec<f64>,
    /// The start of the claim whose release has not come yet.
    open: Option<Instant>,
}

/// The timing wrapper (see the module docs).
#[derive(Debug)]
pub(crate) struct Timed {
    inner: Arc<dyn JobStore>,
    timings: Arc<Mutex<Timings>>,
    /// Whether the store's partitions are shown to the engine: without them it makes
    /// plain claims of the due head, however many nodes are live (the baseline the
    /// partitioned claims are compared with).
    partitions: bool,
}

impl Timed {
    /// Wraps `inner`; the timings are noted in `timings`; `partitions` false hides the
    /// store's partitions from the engine.
    pub(crate) fn new(
        inner: Arc<dyn JobStore>,
        timings: Arc<Mutex<Timings>>,
        partitions: bool,
    ) -> Self {
        Timed {
            inner,
            timings,
            partitions,
        }
    }

    fn note(&self) -> std::sync::MutexGuard<'_, Timings> {
        self.timings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Timed {
    /// Notes a claim that started at `start` and gave `acquired`.
    fn noted(&self, start: Instant, acquired: Result<Acquired, Error>) -> Result<Acquired, Error> {
        let took = ms(start.elapsed());
        let mut t = self.note();
        match &acquired {
            Ok(a) if !a.jobs.is_empty() => {
                t.claims.push((took, a.jobs.len()));
                t.open = Some(start);
            }
            Ok(_) => {
                t.claims.push((took, 0));
                t.open = None;
            }
            Err(_) => t.open = None,
        }
        acquired
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// Every method of the trait is forwarded, those with a default body too: the wrapped
// store's own version must run, never the trait's default.
#[async_trait]
impl JobStore for Timed {
    async fn start(&self, alias: &str) -> Result<(), Error> {
        self.inner.start(alias).await
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.inner.shutdown().await
    }

    fn set_change_listener(&self, listener: ChangeListener) {
        self.inner.set_change_listener(listener);
    }

    fn run_history(&self) -> Option<Arc<dyn RunHistory>> {
        self.inner.run_history()
    }

    fn is_persistent(&self) -> bool {
        self.inner.is_persistent()
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = self.inner.capabilities();
        if !self.partitions {
            capabilities.partitions = 0;
        }
        capabilities
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.inner.add_job(job, replace_existing).await
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        self.inner.add_jobs(jobs, replace_existing).await
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
        let start = Instant::now();
        let acquired = self
            .inner
            .acquire_due_jobs(scheduler_id, now, limit, lease)
            .await;
        self.noted(start, acquired)
    }

    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: apscheduler_core::ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        let start = Instant::now();
        let acquired = self
            .inner
            .acquire_due_jobs_preferring(scheduler_id, now, limit, lease, hint)
            .await;
        self.noted(start, acquired)
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
        let released = self.inner.release_jobs(scheduler_id, releases).await;
        let mut t = self.note();
        if let Some(start) = t.open.take() {
            let took = ms(start.elapsed());
            t.passes.push(took);
        }
        released
    }

    fn records_with_release(&self) -> bool {
        self.inner.records_with_release()
    }

    async fn release_jobs_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<Released, Error> {
        let released = self
            .inner
            .release_jobs_recorded(scheduler_id, releases, records)
            .await;
        let mut t = self.note();
        if let Some(start) = t.open.take() {
            let took = ms(start.elapsed());
            t.passes.push(took);
        }
        released
    }
}
