//! [`MeteredStore`]: a [`JobStore`] wrapper timing every call of the store it wraps.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::{
    Acquired, Capabilities, ChangeListener, Error, Job, JobRelease, JobStore, Released, RunHistory,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RunMetrics;

/// A [`JobStore`] that times every call of the store it wraps into
/// `aps_store_round_trip_seconds{op="<method>"}` of a [`RunMetrics`], forwarding
/// everything else unchanged (capabilities, change listener, run history).
///
/// Wrap a concrete store with [`MeteredStore::new`] (or [`RunMetrics::meter`]), or an
/// `Arc<dyn JobStore>` with [`MeteredStore::from_arc`].
pub struct MeteredStore<S: ?Sized = dyn JobStore> {
    inner: Arc<S>,
    metrics: RunMetrics,
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for MeteredStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: JobStore> MeteredStore<S> {
    /// Wraps `store`, timing its calls into `metrics`.
    pub fn new(store: S, metrics: RunMetrics) -> Self {
        MeteredStore {
            inner: Arc::new(store),
            metrics,
        }
    }
}

impl<S: JobStore + ?Sized> MeteredStore<S> {
    /// Wraps a shared store (such as the `Arc<dyn JobStore>` a scheduler is given).
    pub fn from_arc(store: Arc<S>, metrics: RunMetrics) -> Self {
        MeteredStore {
            inner: store,
            metrics,
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = call.await;
        self.metrics.record_store_call(op, start.elapsed());
        out
    }
}

#[async_trait]
impl<S: JobStore + ?Sized> JobStore for MeteredStore<S> {
    async fn start(&self, alias: &str) -> Result<(), Error> {
        self.timed("start", self.inner.start(alias)).await
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.timed("shutdown", self.inner.shutdown()).await
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
        self.inner.capabilities()
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.timed("add_job", self.inner.add_job(job, replace_existing))
            .await
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        self.timed("add_jobs", self.inner.add_jobs(jobs, replace_existing))
            .await
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        self.timed("update_job", self.inner.update_job(job)).await
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        self.timed("remove_job", self.inner.remove_job(id)).await
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        self.timed("remove_all_jobs", self.inner.remove_all_jobs())
            .await
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        self.timed("lookup_job", self.inner.lookup_job(id)).await
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        self.timed("get_all_jobs", self.inner.get_all_jobs()).await
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.timed("get_next_run_time", self.inner.get_next_run_time())
            .await
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        self.timed(
            "acquire_due_jobs",
            self.inner.acquire_due_jobs(scheduler_id, now, limit, lease),
        )
        .await
    }

    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: apscheduler_core::ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        // Timed as a claim: it is one, with a preference.
        self.timed(
            "acquire_due_jobs",
            self.inner
                .acquire_due_jobs_preferring(scheduler_id, now, limit, lease, hint),
        )
        .await
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        self.timed(
            "extend_leases",
            self.inner.extend_leases(scheduler_id, ids, now, lease),
        )
        .await
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        self.timed(
            "release_jobs",
            self.inner.release_jobs(scheduler_id, releases),
        )
        .await
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
        self.timed(
            "release_jobs",
            self.inner
                .release_jobs_recorded(scheduler_id, releases, records),
        )
        .await
    }
}
