//! A job store that times the claims and passes of the store it wraps, for the node
//! processes of `aps-scale-bench`. Every call goes to the wrapped store unchanged; the
//! wrapper only notes how long `acquire_due_jobs` took, how many jobs it returned, and
//! the time from a claim's start to the end of the release that follows it (one batch
//! of a scheduler pass: claim, plan, release).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::{Capabilities, JobStore, Reply, StoreOp, StoreReply, StoreWrapper};

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
    fn noted_claim(&self, start: Instant, acquired: Reply<'_>) {
        let took = ms(start.elapsed());
        let mut t = self.note();
        match acquired {
            Reply::Acquired(a) if !a.jobs.is_empty() => {
                t.claims.push((took, a.jobs.len()));
                t.open = Some(start);
            }
            Reply::Acquired(_) => {
                t.claims.push((took, 0));
                t.open = None;
            }
            _ => t.open = None,
        }
    }

    /// Notes the end of a release: the end of the batch whose claim is open.
    fn noted_release(&self) {
        let mut t = self.note();
        if let Some(start) = t.open.take() {
            let took = ms(start.elapsed());
            t.passes.push(took);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// Every call goes to the wrapped store (the store wrapper forwards every method); the
// hook only notes the claims and releases.
impl StoreWrapper for Timed {
    type Inner = dyn JobStore;

    fn wrapped(&self) -> &Self::Inner {
        &*self.inner
    }

    async fn around<T: StoreReply>(&self, op: StoreOp, call: impl Future<Output = T> + Send) -> T {
        match op {
            StoreOp::AcquireDueJobs | StoreOp::AcquireDueJobsPreferring => {
                let start = Instant::now();
                let acquired = call.await;
                self.noted_claim(start, acquired.view());
                acquired
            }
            StoreOp::ReleaseJobs | StoreOp::ReleaseJobsRecorded => {
                let released = call.await;
                self.noted_release();
                released
            }
            _ => call.await,
        }
    }

    fn adjust_capabilities(&self, mut capabilities: Capabilities) -> Capabilities {
        if !self.partitions {
            capabilities.partitions = 0;
        }
        capabilities
    }
}
