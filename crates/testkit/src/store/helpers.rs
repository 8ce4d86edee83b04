//! Helpers the checks share: assertions, store calls that must succeed, triggers and tasks no persistent store can keep.

use super::*;

/// Fails unless `result` is an error of `kind`.
#[track_caller]
pub(super) fn expect_kind<T: fmt::Debug>(result: Result<T, Error>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a `{kind}` error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: wrong error kind ({e})"),
    }
}

/// The ids of `jobs`, in order.
pub(super) fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| &*j.id).collect()
}

/// The precondition of every check.
pub(super) async fn assert_empty(store: &dyn JobStore, check: &str) {
    let jobs = store.get_all_jobs().await.expect("get_all_jobs");
    assert!(
        jobs.is_empty(),
        "{check}: needs an empty store, found jobs {:?}",
        ids(&jobs)
    );
}

pub(super) async fn add(store: &dyn JobStore, job: Job) {
    let id = job.id.clone();
    store
        .add_job(job, false)
        .await
        .unwrap_or_else(|e| panic!("add_job({id}): {e}"));
}

pub(super) async fn lookup(store: &dyn JobStore, id: &str) -> Job {
    store
        .lookup_job(id)
        .await
        .unwrap_or_else(|e| panic!("lookup_job({id}): {e}"))
        .unwrap_or_else(|| panic!("lookup_job({id}): the job is missing"))
}

pub(super) async fn is_absent(store: &dyn JobStore, id: &str) -> bool {
    store
        .lookup_job(id)
        .await
        .unwrap_or_else(|e| panic!("lookup_job({id}): {e}"))
        .is_none()
}

pub(super) async fn claim(
    store: &dyn JobStore,
    scheduler: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<Job> {
    claim_for(store, scheduler, now, limit, LEASE).await
}

pub(super) async fn claim_for(
    store: &dyn JobStore,
    scheduler: &str,
    now: DateTime<Utc>,
    limit: usize,
    lease: Duration,
) -> Vec<Job> {
    let acquired = store
        .acquire_due_jobs(scheduler, now, limit, lease)
        .await
        .unwrap_or_else(|e| panic!("acquire_due_jobs({scheduler}, {now}): {e}"));
    assert!(
        acquired.corrupt.is_empty(),
        "acquire_due_jobs reported corrupt jobs: {:?}",
        acquired.corrupt
    );
    acquired.jobs
}

pub(super) async fn next_run_time(store: &dyn JobStore) -> Option<DateTime<Utc>> {
    store.get_next_run_time().await.expect("get_next_run_time")
}

pub(super) async fn all_ids(store: &dyn JobStore) -> Vec<String> {
    let jobs = store.get_all_jobs().await.expect("get_all_jobs");
    jobs.iter().map(|j| j.id.to_string()).collect()
}

/// `release_jobs`, panicking on an error; the ids it reported lost, sorted. A refused
/// release (an unstorable state) is a failure here: the suite's jobs are all storable.
pub(super) async fn release(
    store: &dyn JobStore,
    scheduler: &str,
    releases: Vec<JobRelease>,
) -> Vec<String> {
    let released = store
        .release_jobs(scheduler, releases)
        .await
        .unwrap_or_else(|e| panic!("release_jobs({scheduler}): {e}"));
    assert!(
        released.refused.is_empty(),
        "release_jobs({scheduler}) refused {:?}",
        released.refused
    );
    let mut lost: Vec<String> = released.lost.iter().map(|id| id.to_string()).collect();
    lost.sort();
    lost
}

/// `job` with another next run time.
pub(super) fn rescheduled(job: &Job, next_run_time: Option<DateTime<Tz>>) -> Job {
    Job {
        next_run_time,
        ..job.clone()
    }
}

/// A trigger without a persisted form.
#[derive(Debug)]
pub(super) struct Unpersistable;

impl fmt::Display for Unpersistable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unpersistable[]")
    }
}

impl Trigger for Unpersistable {
    fn next_fire_time(&self, _: Option<&DateTime<Tz>>, _: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        None
    }

    fn timezone(&self) -> Tz {
        Tz::UTC
    }
}

pub(super) fn closure_task() -> Task {
    Task::Closure(TaskFn::from_fn(|_| Ok(Value::Null)))
}
