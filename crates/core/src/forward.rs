//! [`StoreWrapper`]: a job store that wraps another one and forwards every call to it,
//! doing something of its own around each (timing, counting, logging).
//!
//! Writing such a wrapper by hand means forwarding every [`JobStore`] method, and a
//! method left out silently runs the trait's default instead of the wrapped store's own
//! (a partitioned claim turning into a plain one, a run history or capabilities
//! disappearing). A [`StoreWrapper`] is a [`JobStore`] through a blanket implementation
//! that forwards every method, those with a default body too, so a wrapper writes only
//! what it adds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::{Acquired, Capabilities, ChangeListener, ClaimHint, JobRelease, Released};
use crate::{Error, Job, JobStore, RunHistory, RunRecord};

/// A job store that wraps another and forwards every [`JobStore`] call to it, passing
/// each asynchronous call through [`around`](StoreWrapper::around).
///
/// Every type that implements `StoreWrapper` is a [`JobStore`] (a blanket
/// implementation): each method calls the same method of
/// [`wrapped`](StoreWrapper::wrapped), so the wrapped store's own version runs, never
/// the trait's default. The synchronous methods (`is_persistent`, `run_history`,
/// `set_change_listener`, `records_with_release`) are forwarded as they are;
/// `capabilities` goes through
/// [`adjust_capabilities`](StoreWrapper::adjust_capabilities).
///
/// # Example
/// A wrapper that counts the calls that failed:
/// ```
/// use std::future::Future;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// use apscheduler_core::{JobStore, Reply, StoreOp, StoreReply, StoreWrapper};
///
/// #[derive(Debug)]
/// struct CountFailures {
///     inner: Arc<dyn JobStore>,
///     failed: AtomicUsize,
/// }
///
/// impl StoreWrapper for CountFailures {
///     type Inner = dyn JobStore;
///
///     fn wrapped(&self) -> &Self::Inner {
///         &*self.inner
///     }
///
///     async fn around<T: StoreReply>(
///         &self,
///         op: StoreOp,
///         call: impl Future<Output = T> + Send,
///     ) -> T {
///         let reply = call.await;
///         if let Reply::Failed(e) = reply.view() {
///             eprintln!("{} failed: {e}", op.name());
///             self.failed.fetch_add(1, Ordering::Relaxed);
///         }
///         reply
///     }
/// }
/// # use apscheduler_core::{async_trait, Acquired, Error, ErrorKind, Job, JobRelease, Released};
/// # use apscheduler_core::chrono::{DateTime, Utc};
/// # /// A store whose backend is down.
/// # #[derive(Debug)]
/// # struct Down;
/// # fn down<T>() -> Result<T, Error> { Err(Error::new(ErrorKind::Unavailable, "down")) }
/// # #[async_trait]
/// # impl JobStore for Down {
/// #     fn is_persistent(&self) -> bool { true }
/// #     async fn add_job(&self, _: Job, _: bool) -> Result<(), Error> { down() }
/// #     async fn update_job(&self, _: Job) -> Result<(), Error> { down() }
/// #     async fn remove_job(&self, _: &str) -> Result<(), Error> { down() }
/// #     async fn remove_all_jobs(&self) -> Result<(), Error> { down() }
/// #     async fn lookup_job(&self, _: &str) -> Result<Option<Job>, Error> { down() }
/// #     async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> { down() }
/// #     async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> { down() }
/// #     async fn acquire_due_jobs(&self, _: &str, _: DateTime<Utc>, _: usize,
/// #         _: std::time::Duration) -> Result<Acquired, Error> { down() }
/// #     async fn extend_leases(&self, _: &str, _: &[Arc<str>], _: DateTime<Utc>,
/// #         _: std::time::Duration) -> Result<(), Error> { down() }
/// #     async fn release_jobs(&self, _: &str, _: Vec<JobRelease>) -> Result<Released, Error> { down() }
/// # }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = CountFailures { inner: Arc::new(Down), failed: AtomicUsize::new(0) };
/// assert!(store.get_all_jobs().await.is_err());
/// assert!(store.is_persistent()); // forwarded as well
/// assert_eq!(store.failed.load(Ordering::Relaxed), 1);
/// # });
/// ```
pub trait StoreWrapper: Send + Sync + std::fmt::Debug {
    /// The type of the wrapped store (`dyn JobStore` for one only known at run time).
    type Inner: JobStore + ?Sized;

    /// The wrapped store, which every call is forwarded to.
    fn wrapped(&self) -> &Self::Inner;

    /// Runs one asynchronous call of the wrapped store: `call` is the wrapped store's
    /// method, called but not yet polled, and `op` says which it is. Return what it
    /// returns; [`StoreReply::view`] shows it. The default just awaits it.
    ///
    /// A wrapper that never awaits `call` makes the call not happen.
    fn around<T: StoreReply>(
        &self,
        op: StoreOp,
        call: impl Future<Output = T> + Send,
    ) -> impl Future<Output = T> + Send {
        let _ = op;
        call
    }

    /// What the wrapper reports as its capabilities, given the wrapped store's. The
    /// default reports them unchanged.
    fn adjust_capabilities(&self, wrapped: Capabilities) -> Capabilities {
        wrapped
    }
}

/// An asynchronous [`JobStore`] method, as [`StoreWrapper::around`] is told of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOp {
    /// [`JobStore::start`].
    Start,
    /// [`JobStore::shutdown`].
    Shutdown,
    /// [`JobStore::add_job`].
    AddJob,
    /// [`JobStore::add_jobs`].
    AddJobs,
    /// [`JobStore::update_job`].
    UpdateJob,
    /// [`JobStore::remove_job`].
    RemoveJob,
    /// [`JobStore::remove_all_jobs`].
    RemoveAllJobs,
    /// [`JobStore::lookup_job`].
    LookupJob,
    /// [`JobStore::get_all_jobs`].
    GetAllJobs,
    /// [`JobStore::get_next_run_time`].
    GetNextRunTime,
    /// [`JobStore::acquire_due_jobs`].
    AcquireDueJobs,
    /// [`JobStore::acquire_due_jobs_preferring`].
    AcquireDueJobsPreferring,
    /// [`JobStore::extend_leases`].
    ExtendLeases,
    /// [`JobStore::release_jobs`].
    ReleaseJobs,
    /// [`JobStore::release_jobs_recorded`].
    ReleaseJobsRecorded,
}

impl StoreOp {
    /// Every operation, in the trait's order.
    pub const ALL: &'static [StoreOp] = &[
        StoreOp::Start,
        StoreOp::Shutdown,
        StoreOp::AddJob,
        StoreOp::AddJobs,
        StoreOp::UpdateJob,
        StoreOp::RemoveJob,
        StoreOp::RemoveAllJobs,
        StoreOp::LookupJob,
        StoreOp::GetAllJobs,
        StoreOp::GetNextRunTime,
        StoreOp::AcquireDueJobs,
        StoreOp::AcquireDueJobsPreferring,
        StoreOp::ExtendLeases,
        StoreOp::ReleaseJobs,
        StoreOp::ReleaseJobsRecorded,
    ];

    /// The method's name (`"acquire_due_jobs"`).
    pub const fn name(self) -> &'static str {
        match self {
            StoreOp::Start => "start",
            StoreOp::Shutdown => "shutdown",
            StoreOp::AddJob => "add_job",
            StoreOp::AddJobs => "add_jobs",
            StoreOp::UpdateJob => "update_job",
            StoreOp::RemoveJob => "remove_job",
            StoreOp::RemoveAllJobs => "remove_all_jobs",
            StoreOp::LookupJob => "lookup_job",
            StoreOp::GetAllJobs => "get_all_jobs",
            StoreOp::GetNextRunTime => "get_next_run_time",
            StoreOp::AcquireDueJobs => "acquire_due_jobs",
            StoreOp::AcquireDueJobsPreferring => "acquire_due_jobs_preferring",
            StoreOp::ExtendLeases => "extend_leases",
            StoreOp::ReleaseJobs => "release_jobs",
            StoreOp::ReleaseJobsRecorded => "release_jobs_recorded",
        }
    }
}

impl std::fmt::Display for StoreOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a forwarded call returned, as [`StoreReply::view`] shows it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Reply<'r> {
    /// The call failed.
    Failed(&'r Error),
    /// A call with nothing to return succeeded (`start`, `add_job`, `extend_leases`, ...).
    Done,
    /// `lookup_job` found this job, or none.
    Job(Option<&'r Job>),
    /// `get_all_jobs` returned these jobs.
    Jobs(&'r [Job]),
    /// `get_next_run_time` returned this time.
    NextRunTime(Option<DateTime<Utc>>),
    /// A claim returned this.
    Acquired(&'r Acquired),
    /// A release returned this.
    Released(&'r Released),
}

/// The result of an asynchronous [`JobStore`] method, which a
/// [`StoreWrapper::around`] can look at through [`view`](StoreReply::view). Implemented
/// for each method's result type only.
pub trait StoreReply: Send + sealed::Sealed {
    /// The result as a [`Reply`].
    fn view(&self) -> Reply<'_>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! reply {
    ($t:ty, |$ok:ident| $view:expr) => {
        impl sealed::Sealed for Result<$t, Error> {}

        impl StoreReply for Result<$t, Error> {
            fn view(&self) -> Reply<'_> {
                match self {
                    Ok($ok) => $view,
                    Err(e) => Reply::Failed(e),
                }
            }
        }
    };
}

reply!((), |_done| Reply::Done);
reply!(Option<Job>, |job| Reply::Job(job.as_ref()));
reply!(Vec<Job>, |jobs| Reply::Jobs(jobs));
reply!(Option<DateTime<Utc>>, |next| Reply::NextRunTime(*next));
reply!(Acquired, |acquired| Reply::Acquired(acquired));
reply!(Released, |released| Reply::Released(released));

// Every method is forwarded, those with a default body too: the wrapped store's own
// version must run. A method added to `JobStore` must be added here (and to `StoreOp`
// when it is asynchronous).
#[async_trait]
impl<W: StoreWrapper> JobStore for W {
    async fn start(&self, alias: &str) -> Result<(), Error> {
        self.around(StoreOp::Start, self.wrapped().start(alias))
            .await
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.around(StoreOp::Shutdown, self.wrapped().shutdown())
            .await
    }

    fn set_change_listener(&self, listener: ChangeListener) {
        self.wrapped().set_change_listener(listener);
    }

    fn run_history(&self) -> Option<Arc<dyn RunHistory>> {
        self.wrapped().run_history()
    }

    // Run operations go to the wrapped store directly, not through `around`.
    fn runs(&self) -> Option<&dyn crate::RunStore> {
        self.wrapped().runs()
    }

    fn is_persistent(&self) -> bool {
        self.wrapped().is_persistent()
    }

    fn capabilities(&self) -> Capabilities {
        self.adjust_capabilities(self.wrapped().capabilities())
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.around(
            StoreOp::AddJob,
            self.wrapped().add_job(job, replace_existing),
        )
        .await
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        self.around(
            StoreOp::AddJobs,
            self.wrapped().add_jobs(jobs, replace_existing),
        )
        .await
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        self.around(StoreOp::UpdateJob, self.wrapped().update_job(job))
            .await
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        self.around(StoreOp::RemoveJob, self.wrapped().remove_job(id))
            .await
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        self.around(StoreOp::RemoveAllJobs, self.wrapped().remove_all_jobs())
            .await
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        self.around(StoreOp::LookupJob, self.wrapped().lookup_job(id))
            .await
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        self.around(StoreOp::GetAllJobs, self.wrapped().get_all_jobs())
            .await
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.around(StoreOp::GetNextRunTime, self.wrapped().get_next_run_time())
            .await
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        self.around(
            StoreOp::AcquireDueJobs,
            self.wrapped()
                .acquire_due_jobs(scheduler_id, now, limit, lease),
        )
        .await
    }

    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        self.around(
            StoreOp::AcquireDueJobsPreferring,
            self.wrapped()
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
        self.around(
            StoreOp::ExtendLeases,
            self.wrapped().extend_leases(scheduler_id, ids, now, lease),
        )
        .await
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        self.around(
            StoreOp::ReleaseJobs,
            self.wrapped().release_jobs(scheduler_id, releases),
        )
        .await
    }

    fn records_with_release(&self) -> bool {
        self.wrapped().records_with_release()
    }

    async fn release_jobs_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[RunRecord],
    ) -> Result<Released, Error> {
        self.around(
            StoreOp::ReleaseJobsRecorded,
            self.wrapped()
                .release_jobs_recorded(scheduler_id, releases, records),
        )
        .await
    }
}

#[cfg(test)]
mod tests;
