//! [`MeteredStore`]: a [`JobStore`] wrapper timing every call of the store it wraps.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use apscheduler_core::{JobStore, StoreOp, StoreReply, StoreWrapper};

use super::RunMetrics;

/// A [`JobStore`] that times every call of the store it wraps into
/// `aps_store_round_trip_seconds{op="<method>"}` of a [`RunMetrics`], forwarding
/// everything else unchanged (capabilities, change listener, run history): a
/// [`StoreWrapper`] whose hook times each call. `acquire_due_jobs_preferring` is timed
/// as `acquire_due_jobs`, and `release_jobs_recorded` as `release_jobs`.
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
}

impl<S: JobStore + ?Sized> StoreWrapper for MeteredStore<S> {
    type Inner = S;

    fn wrapped(&self) -> &S {
        &self.inner
    }

    async fn around<T: StoreReply>(&self, op: StoreOp, call: impl Future<Output = T> + Send) -> T {
        let start = Instant::now();
        let out = call.await;
        self.metrics
            .record_store_call(op_label(op), start.elapsed());
        out
    }
}

/// The `op` label of a call: the method's name, except that the partition-aware claim
/// counts as a claim and the release with run records as a release (each is one, in
/// one round trip).
fn op_label(op: StoreOp) -> &'static str {
    match op {
        StoreOp::AcquireDueJobsPreferring => StoreOp::AcquireDueJobs.name(),
        StoreOp::ReleaseJobsRecorded => StoreOp::ReleaseJobs.name(),
        op => op.name(),
    }
}
