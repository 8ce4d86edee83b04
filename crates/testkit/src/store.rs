//! The job store conformance suite.
//!
//! Every job store proves the [`JobStore`] contract (see its `# Behavior` section) with
//! a few lines in its `tests/conformance.rs`:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn conformance() {
//!     apscheduler_testkit::store::run_all(|| async { MyStore::new(/* fresh namespace */) }).await;
//! }
//! ```
//!
//! [`run_all`] calls `make` once per check; each call must return a fresh, **empty**
//! store (a new table prefix, database or key namespace for a shared backend). The
//! store is [started](JobStore::start) under the alias `"default"` before the check
//! and [shut down](JobStore::shutdown) after it. The checks can also be called one by
//! one; each expects an empty, started store, and the concurrency checks a tokio
//! runtime (they spawn tasks; a multi-threaded runtime makes them run in parallel).
//!
//! Checks assert on [`ErrorKind`]s only, never on backend error types or messages,
//! and use named tasks ([`Task::Named`]) and persistable triggers, so the same checks
//! run against the memory store and against persistent ones. Checks that only apply
//! to one family are gated on [`JobStore::is_persistent`].
//!
//! Times are fixed instants relative to [`base_time`] (2100-01-01 00:00:00 UTC), passed
//! explicitly as `now`: nothing sleeps and nothing reads the clock. The base lies far
//! in the future so that a store judging lease expiry by its own clock (as
//! [`JobStore::get_next_run_time`], which takes no `now`, may have to) still sees the
//! checks' leases as live.
//!
//! ## What the checks prove
//! | check | contract |
//! |---|---|
//! | [`check_add_lookup_update_remove`] | jobs are stored, read back, replaced and removed |
//! | [`check_conflicts_and_replace`] | a duplicate id is `Conflict`; `replace_existing` replaces (and re-indexes) |
//! | [`check_add_jobs_all_or_nothing`] | `add_jobs` adds nothing on a conflict |
//! | [`check_missing_ids`] | update/remove of a missing id is `NotFound`; lookup is `None` |
//! | [`check_due_jobs_order`] | claims are ordered by run time then id, respect `limit`, include `now`, skip paused and future jobs |
//! | [`check_next_run_time`] | the earliest run time, ignoring paused jobs, exact to the microsecond |
//! | [`check_get_all_jobs_order`] | listing by run time then id, paused last, claimed jobs included |
//! | [`check_remove_all_jobs`] | everything (leases included) is gone |
//! | [`check_trigger_round_trip`] | every trigger kind comes back identical |
//! | [`check_argument_round_trip`] | args/kwargs of every JSON type come back identical |
//! | [`check_job_options_round_trip`] | name, executor, grace time, coalesce, max instances, recover, run time zone |
//! | [`check_claimed_job_not_returned`] | a claimed job is not claimed by another scheduler until released (a shared store gives the holder its stranded claims back) |
//! | [`check_expired_lease`] | an expired lease can be claimed by another scheduler; the old holder has lost it |
//! | [`check_release`] | release stores the new state (claimable again when due) or removes the job |
//! | [`check_extend_leases`] | the holder extends its lease; anyone else gets `LeaseLost` |
//! | [`check_concurrent_claimers`] | two concurrent claimers never get the same (job, run time) |
//! | [`check_concurrent_writers`] | concurrent adds all land; a contested id is added once |
//! | [`check_persistent_refuses_unserializable`] | persistent stores refuse closures and unpersistable triggers with `Serialization` |
//! | [`check_memory_accepts_closures`] | non-persistent stores keep closures and any trigger |
//!
//! Shared by every persistent store, called with two stores on one namespace (see
//! [`JobStore::capabilities`]):
//!
//! | check | what |
//! |---|---|
//! | [`check_survives_restart`] | jobs, run times to the microsecond, paused jobs and leases outlive a store shut down and opened again |
//! | [`check_corrupt_job_set_aside`] | a damaged stored job is reported once, set aside, kept, repairable; other jobs run |
//! | [`check_change_notifications`] | a store declaring [`Capabilities::notifications`](apscheduler_core::Capabilities::notifications) calls its listener for another store's adds, updates, removes and releases, not for its own writes, and again after its channel's connection dropped |
//!
//! ## Where the suite pins down what the trait leaves open
//! - `now` is inclusive: a job whose run time equals `now` is due.
//! - A lease taken at `now` for `lease` has expired at `now + lease` exactly (a claim
//!   at that instant succeeds; an extension at that instant is `LeaseLost`).
//! - [`add_jobs`](JobStore::add_jobs) is all or nothing also for two jobs of the same
//!   batch sharing an id (the trait's default implementation is not atomic: stores
//!   must override it).
//! - [`release_jobs`](JobStore::release_jobs) from a scheduler whose lease was taken
//!   over is not applied (the new holder's claim stands), and a job removed while
//!   claimed is not re-created by its release. Neither is an error: both are reported
//!   in [`Released::lost`](apscheduler_core::Released::lost).
//! - [`get_next_run_time`](JobStore::get_next_run_time) has no `now`: the checks only
//!   require that a claimed job's own run time is not reported while its lease is
//!   live, with leases far longer than the gap to the next unclaimed job, so a store
//!   may either skip leased jobs or report when their lease expires.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    no_args, no_kwargs, Error, ErrorKind, Job, JobRelease, JobStore, Task, TaskFn, Trigger,
};
use apscheduler_triggers::AnyTrigger;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

/// The lease the checks claim with, unless a check is about lease expiry.
pub const LEASE: Duration = Duration::from_secs(60);

/// The instant every check's times are relative to: 2100-01-01 00:00:00 UTC.
pub fn base_time() -> DateTime<Tz> {
    Tz::UTC.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()
}

/// [`base_time`] plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Tz> {
    at_millis(seconds * 1000)
}

/// [`base_time`] plus `millis` milliseconds.
pub fn at_millis(millis: i64) -> DateTime<Tz> {
    base_time() + chrono::Duration::milliseconds(millis)
}

/// [`at`] as a UTC instant (the form `now` takes in [`JobStore`] calls).
pub fn utc(seconds: i64) -> DateTime<Utc> {
    at(seconds).with_timezone(&Utc)
}

/// An interval trigger firing every `seconds` from [`base_time`] (UTC).
pub fn interval_trigger(seconds: u64) -> Arc<dyn Trigger> {
    AnyTrigger::from_args(
        "interval",
        &json!({ "seconds": seconds, "start_date": "2100-01-01 00:00:00" }),
        Tz::UTC,
        base_time(),
    )
    .expect("a valid interval trigger")
    .into_shared()
}

/// A job running the named task `"noop"` (so persistent stores accept it), named
/// `"noop"`, on the `"default"` executor, without arguments, with a 1 s grace time,
/// `coalesce = false` and `max_instances = 1`; `next_run_time = None` makes it paused.
pub fn sample_job(id: &str, next_run_time: Option<DateTime<Tz>>, trigger: Arc<dyn Trigger>) -> Job {
    Job {
        id: id.into(),
        name: "noop".into(),
        task: Task::Named("noop".into()),
        args: no_args(),
        kwargs: no_kwargs(),
        trigger,
        executor: "default".into(),
        misfire_grace_time: Some(Duration::from_secs(1)),
        coalesce: false,
        max_instances: 1,
        recover: false,
        next_run_time,
    }
}

/// Runs every check, each against a fresh store from `make`.
///
/// `make` must return a new, empty store each time. Call it from a tokio runtime (a
/// multi-threaded one makes the concurrency checks run in parallel).
///
/// # Panics
/// On the first check that fails, with a message naming the check and the contract.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: JobStore + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! run {
        ($($check:ident),* $(,)?) => {$(
            let store = start(&make).await;
            $check(&store).await;
            store.shutdown().await.expect(concat!(stringify!($check), ": shutdown"));
        )*};
    }
    run!(
        check_add_lookup_update_remove,
        check_conflicts_and_replace,
        check_add_jobs_all_or_nothing,
        check_missing_ids,
        check_due_jobs_order,
        check_next_run_time,
        check_get_all_jobs_order,
        check_remove_all_jobs,
        check_trigger_round_trip,
        check_argument_round_trip,
        check_job_options_round_trip,
        check_claimed_job_not_returned,
        check_expired_lease,
        check_release,
        check_extend_leases,
        check_persistent_refuses_unserializable,
        check_memory_accepts_closures,
    );

    let store: Arc<dyn JobStore> = Arc::new(start(&make).await);
    check_concurrent_claimers(store.clone()).await;
    store
        .shutdown()
        .await
        .expect("check_concurrent_claimers: shutdown");

    let store: Arc<dyn JobStore> = Arc::new(start(&make).await);
    check_concurrent_writers(store.clone()).await;
    store
        .shutdown()
        .await
        .expect("check_concurrent_writers: shutdown");
}

async fn start<S, F, Fut>(make: &F) -> S
where
    S: JobStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    store.start("default").await.expect("start the store");
    store
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Fails unless `result` is an error of `kind`.
#[track_caller]
fn expect_kind<T: fmt::Debug>(result: Result<T, Error>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a `{kind}` error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: wrong error kind ({e})"),
    }
}

/// The ids of `jobs`, in order.
fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| &*j.id).collect()
}

/// The precondition of every check.
async fn assert_empty(store: &dyn JobStore, check: &str) {
    let jobs = store.get_all_jobs().await.expect("get_all_jobs");
    assert!(
        jobs.is_empty(),
        "{check}: needs an empty store, found jobs {:?}",
        ids(&jobs)
    );
}

async fn add(store: &dyn JobStore, job: Job) {
    let id = job.id.clone();
    store
        .add_job(job, false)
        .await
        .unwrap_or_else(|e| panic!("add_job({id}): {e}"));
}

async fn lookup(store: &dyn JobStore, id: &str) -> Job {
    store
        .lookup_job(id)
        .await
        .unwrap_or_else(|e| panic!("lookup_job({id}): {e}"))
        .unwrap_or_else(|| panic!("lookup_job({id}): the job is missing"))
}

async fn is_absent(store: &dyn JobStore, id: &str) -> bool {
    store
        .lookup_job(id)
        .await
        .unwrap_or_else(|e| panic!("lookup_job({id}): {e}"))
        .is_none()
}

async fn claim(
    store: &dyn JobStore,
    scheduler: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<Job> {
    claim_for(store, scheduler, now, limit, LEASE).await
}

async fn claim_for(
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

async fn next_run_time(store: &dyn JobStore) -> Option<DateTime<Utc>> {
    store.get_next_run_time().await.expect("get_next_run_time")
}

async fn all_ids(store: &dyn JobStore) -> Vec<String> {
    let jobs = store.get_all_jobs().await.expect("get_all_jobs");
    jobs.iter().map(|j| j.id.to_string()).collect()
}

/// `release_jobs`, panicking on an error; the ids it reported lost, sorted. A refused
/// release (an unstorable state) is a failure here: the suite's jobs are all storable.
async fn release(store: &dyn JobStore, scheduler: &str, releases: Vec<JobRelease>) -> Vec<String> {
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
fn rescheduled(job: &Job, next_run_time: Option<DateTime<Tz>>) -> Job {
    Job {
        next_run_time,
        ..job.clone()
    }
}

/// A trigger without a persisted form.
#[derive(Debug)]
struct Unpersistable;

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

fn closure_task() -> Task {
    Task::Closure(TaskFn::from_fn(|_| Ok(Value::Null)))
}

// ---------------------------------------------------------------------------------
// Basic operations
// ---------------------------------------------------------------------------------

/// A job is stored by `add_job`, read back by `lookup_job` and `get_all_jobs`, replaced
/// by `update_job` (a new run time, name, option, or `None` to pause) and deleted by
/// `remove_job`.
pub async fn check_add_lookup_update_remove(store: &dyn JobStore) {
    const CHECK: &str = "check_add_lookup_update_remove";
    assert_empty(store, CHECK).await;
    assert!(
        is_absent(store, "a").await,
        "{CHECK}: lookup of a missing id"
    );

    add(store, sample_job("a", Some(at(10)), interval_trigger(10))).await;
    let job = lookup(store, "a").await;
    assert_eq!(&*job.id, "a", "{CHECK}: id");
    assert_eq!(&*job.name, "noop", "{CHECK}: name");
    assert_eq!(job.task.name(), Some("noop"), "{CHECK}: task");
    assert_eq!(job.next_run_time, Some(at(10)), "{CHECK}: next_run_time");
    assert_eq!(
        job.trigger.to_string(),
        "interval[0:00:10]",
        "{CHECK}: trigger"
    );
    assert_eq!(
        all_ids(store).await,
        ["a"],
        "{CHECK}: get_all_jobs after add"
    );

    let updated = Job {
        name: "renamed".into(),
        coalesce: true,
        next_run_time: Some(at(20)),
        ..job
    };
    store.update_job(updated).await.expect("update_job");
    let job = lookup(store, "a").await;
    assert_eq!(&*job.name, "renamed", "{CHECK}: name after update");
    assert!(job.coalesce, "{CHECK}: coalesce after update");
    assert_eq!(
        job.next_run_time,
        Some(at(20)),
        "{CHECK}: next_run_time after update"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(20)),
        "{CHECK}: next run time after update"
    );
    assert_eq!(
        all_ids(store).await,
        ["a"],
        "{CHECK}: update must not duplicate the job"
    );

    store
        .update_job(rescheduled(&job, None))
        .await
        .expect("update_job (pause)");
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        None,
        "{CHECK}: paused"
    );
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: a paused job has no run time"
    );

    store.remove_job("a").await.expect("remove_job");
    assert!(
        is_absent(store, "a").await,
        "{CHECK}: removed job still found"
    );
    assert!(
        all_ids(store).await.is_empty(),
        "{CHECK}: get_all_jobs after remove"
    );
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: next run time after remove"
    );
}

/// Adding an id that exists is `Conflict` and leaves the stored job untouched; with
/// `replace_existing` the new job replaces it, including its place in the run time
/// order (the old run time is no longer due).
pub async fn check_conflicts_and_replace(store: &dyn JobStore) {
    const CHECK: &str = "check_conflicts_and_replace";
    assert_empty(store, CHECK).await;
    add(store, sample_job("a", Some(at(10)), interval_trigger(10))).await;

    let second = Job {
        name: "second".into(),
        ..sample_job("a", Some(at(20)), interval_trigger(20))
    };
    expect_kind(
        store.add_job(second.clone(), false).await,
        ErrorKind::Conflict,
        "add_job with an existing id",
    );
    let job = lookup(store, "a").await;
    assert_eq!(
        &*job.name, "noop",
        "{CHECK}: a conflicting add changed the job"
    );
    assert_eq!(
        job.next_run_time,
        Some(at(10)),
        "{CHECK}: a conflicting add changed the job"
    );

    store
        .add_job(second, true)
        .await
        .expect("add_job with replace_existing");
    let job = lookup(store, "a").await;
    assert_eq!(
        &*job.name, "second",
        "{CHECK}: replace_existing did not replace"
    );
    assert_eq!(
        job.next_run_time,
        Some(at(20)),
        "{CHECK}: replaced run time"
    );
    assert_eq!(
        job.trigger.to_string(),
        "interval[0:00:20]",
        "{CHECK}: replaced trigger"
    );
    assert_eq!(
        all_ids(store).await,
        ["a"],
        "{CHECK}: replace must not duplicate the job"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(20)),
        "{CHECK}: the old run time lingers"
    );
    assert!(
        claim(store, "s1", utc(15), 10).await.is_empty(),
        "{CHECK}: the replaced job is due at its old run time"
    );
    assert_eq!(
        ids(&claim(store, "s1", utc(20), 10).await),
        ["a"],
        "{CHECK}: due at the new time"
    );
}

/// `add_jobs` is all or nothing on a conflict, with a stored job or within the batch;
/// with `replace_existing` it replaces and adds.
pub async fn check_add_jobs_all_or_nothing(store: &dyn JobStore) {
    const CHECK: &str = "check_add_jobs_all_or_nothing";
    assert_empty(store, CHECK).await;
    let job = |id: &str, t: i64| sample_job(id, Some(at(t)), interval_trigger(10));
    add(store, job("x", 1)).await;

    expect_kind(
        store.add_jobs(vec![job("y", 2), job("x", 3)], false).await,
        ErrorKind::Conflict,
        "add_jobs with an existing id",
    );
    assert!(
        is_absent(store, "y").await,
        "{CHECK}: add_jobs added part of a conflicting batch"
    );
    assert_eq!(
        lookup(store, "x").await.next_run_time,
        Some(at(1)),
        "{CHECK}: x was changed"
    );

    expect_kind(
        store.add_jobs(vec![job("p", 2), job("p", 3)], false).await,
        ErrorKind::Conflict,
        "add_jobs with the same id twice",
    );
    assert!(
        is_absent(store, "p").await,
        "{CHECK}: add_jobs added part of a conflicting batch"
    );

    store
        .add_jobs(vec![job("y", 2), job("z", 3)], false)
        .await
        .expect("add_jobs");
    assert_eq!(
        all_ids(store).await,
        ["x", "y", "z"],
        "{CHECK}: after add_jobs"
    );

    store
        .add_jobs(vec![job("x", 9), job("w", 4)], true)
        .await
        .expect("add_jobs with replace_existing");
    assert_eq!(
        all_ids(store).await,
        ["y", "z", "w", "x"],
        "{CHECK}: after replacing add_jobs"
    );
    assert_eq!(
        lookup(store, "x").await.next_run_time,
        Some(at(9)),
        "{CHECK}: x not replaced"
    );
}

/// Updating or removing an id that does not exist is `NotFound` (and creates nothing);
/// looking it up is `None`.
pub async fn check_missing_ids(store: &dyn JobStore) {
    const CHECK: &str = "check_missing_ids";
    assert_empty(store, CHECK).await;
    expect_kind(
        store
            .update_job(sample_job("ghost", Some(at(1)), interval_trigger(10)))
            .await,
        ErrorKind::NotFound,
        "update_job of a missing id",
    );
    assert!(
        is_absent(store, "ghost").await,
        "{CHECK}: update_job created a job"
    );
    expect_kind(
        store.remove_job("ghost").await,
        ErrorKind::NotFound,
        "remove_job of a missing id",
    );

    add(store, sample_job("a", Some(at(1)), interval_trigger(10))).await;
    store.remove_job("a").await.expect("remove_job");
    expect_kind(
        store.remove_job("a").await,
        ErrorKind::NotFound,
        "remove_job of a removed id",
    );
    expect_kind(
        store
            .update_job(sample_job("a", Some(at(1)), interval_trigger(10)))
            .await,
        ErrorKind::NotFound,
        "update_job of a removed id",
    );
    assert!(all_ids(store).await.is_empty(), "{CHECK}: store not empty");
}

// ---------------------------------------------------------------------------------
// Ordering
// ---------------------------------------------------------------------------------

/// `acquire_due_jobs` returns the jobs due at `now` (inclusive), ordered by next run
/// time then id, at most `limit` of them (`limit = 0` claims nothing); paused jobs and
/// jobs due after `now` are not returned.
pub async fn check_due_jobs_order(store: &dyn JobStore) {
    const CHECK: &str = "check_due_jobs_order";
    assert_empty(store, CHECK).await;
    for (id, t) in [
        ("f", Some(20)),
        ("b", Some(10)),
        ("e", Some(30)),
        ("p", None),
        ("a", Some(10)),
        ("d", Some(20)),
        ("c", Some(5)),
    ] {
        add(store, sample_job(id, t.map(at), interval_trigger(60))).await;
    }
    let now = utc(20);

    assert!(
        claim(store, "s1", now, 0).await.is_empty(),
        "{CHECK}: limit 0 claimed jobs"
    );
    let first = claim(store, "s1", now, 3).await;
    assert_eq!(
        ids(&first),
        ["c", "a", "b"],
        "{CHECK}: first claim (limit 3)"
    );
    let times: Vec<_> = first.iter().map(|j| j.next_run_time).collect();
    assert_eq!(
        times,
        [Some(at(5)), Some(at(10)), Some(at(10))],
        "{CHECK}: claimed run times"
    );

    // Each claim by another scheduler: a shared store gives a holder its own claims
    // back (see the JobStore contract).
    let second = claim(store, "s2", now, 10).await;
    assert_eq!(
        ids(&second),
        ["d", "f"],
        "{CHECK}: second claim (jobs due exactly at `now`, ties by id)"
    );
    assert!(
        claim(store, "s3", now, 10).await.is_empty(),
        "{CHECK}: a paused or not yet due job was claimed"
    );
    assert_eq!(
        ids(&claim(store, "s4", utc(30), 10).await),
        ["e"],
        "{CHECK}: e is due at its run time"
    );
}

/// `get_next_run_time` is the earliest run time of the jobs that are not paused (as
/// the same instant, to the microsecond, whatever the job's time zone); `None` when
/// every job is paused or there is none.
pub async fn check_next_run_time(store: &dyn JobStore) {
    const CHECK: &str = "check_next_run_time";
    assert_empty(store, CHECK).await;
    assert_eq!(next_run_time(store).await, None, "{CHECK}: empty store");

    add(store, sample_job("p", None, interval_trigger(10))).await;
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: only a paused job"
    );

    add(store, sample_job("a", Some(at(30)), interval_trigger(10))).await;
    add(store, sample_job("b", Some(at(10)), interval_trigger(10))).await;
    assert_eq!(
        next_run_time(store).await,
        Some(utc(10)),
        "{CHECK}: earliest of a and b"
    );

    let b = lookup(store, "b").await;
    store
        .update_job(rescheduled(&b, None))
        .await
        .expect("update_job (pause)");
    assert_eq!(
        next_run_time(store).await,
        Some(utc(30)),
        "{CHECK}: b paused"
    );

    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    let precise = (at(5) + chrono::Duration::microseconds(123_456)).with_timezone(&tokyo);
    add(store, sample_job("t", Some(precise), interval_trigger(10))).await;
    assert_eq!(
        next_run_time(store).await,
        Some(precise.with_timezone(&Utc)),
        "{CHECK}: a run time in another zone, with microseconds"
    );

    store.remove_job("t").await.expect("remove_job");
    store.remove_job("a").await.expect("remove_job");
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: only a paused job left"
    );
}

/// `get_all_jobs` lists every job by next run time then id, paused jobs last (by id);
/// claimed jobs are listed too.
pub async fn check_get_all_jobs_order(store: &dyn JobStore) {
    const CHECK: &str = "check_get_all_jobs_order";
    assert_empty(store, CHECK).await;
    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    for (id, t) in [
        ("z", Some(at(5))),
        ("m", None),
        ("b", Some(at(10))),
        ("a", Some(at(10))),
        ("c", None),
        ("y", Some(at(1).with_timezone(&tokyo))),
        ("x", Some(at(7))),
    ] {
        add(store, sample_job(id, t, interval_trigger(60))).await;
    }
    let expected = ["y", "z", "x", "a", "b", "c", "m"];
    assert_eq!(all_ids(store).await, expected, "{CHECK}: listing order");

    let claimed = claim(store, "s1", utc(7), 10).await;
    assert_eq!(ids(&claimed), ["y", "z", "x"], "{CHECK}: claim");
    assert_eq!(
        all_ids(store).await,
        expected,
        "{CHECK}: claimed jobs must stay listed"
    );
}

/// `remove_all_jobs` removes every job, paused and claimed ones included, and leaves
/// no lease behind: a job added again under the same id is claimable.
pub async fn check_remove_all_jobs(store: &dyn JobStore) {
    const CHECK: &str = "check_remove_all_jobs";
    assert_empty(store, CHECK).await;
    for (id, t) in [("a", Some(1)), ("b", Some(2)), ("c", Some(50)), ("p", None)] {
        add(store, sample_job(id, t.map(at), interval_trigger(60))).await;
    }
    assert_eq!(
        ids(&claim(store, "s1", utc(5), 10).await),
        ["a", "b"],
        "{CHECK}: claim"
    );

    store.remove_all_jobs().await.expect("remove_all_jobs");
    assert!(all_ids(store).await.is_empty(), "{CHECK}: jobs left");
    assert_eq!(
        next_run_time(store).await,
        None,
        "{CHECK}: next run time left"
    );
    assert!(is_absent(store, "a").await, "{CHECK}: a still found");
    assert!(
        claim(store, "s2", utc(100), 10).await.is_empty(),
        "{CHECK}: claimable jobs left"
    );

    add(store, sample_job("a", Some(at(1)), interval_trigger(60))).await;
    assert_eq!(
        ids(&claim(store, "s2", utc(5), 10).await),
        ["a"],
        "{CHECK}: a lease survived remove_all_jobs"
    );
}

// ---------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------

/// The trigger cases of [`check_trigger_round_trip`]: `(kind, args)` for
/// [`AnyTrigger::from_args`], built at [`base_time`] in UTC.
pub fn trigger_cases() -> Vec<(&'static str, Value)> {
    let cron_weekdays = json!({
        "day_of_week": "mon-fri",
        "hour": "9-17/2",
        "minute": 30,
        "second": "15,45",
        "timezone": "Europe/Helsinki",
    });
    let cron_bounded = json!({
        "year": "2100-2102",
        "month": "6-8,11-12",
        "day": "3rd fri",
        "hour": 4,
        "start_date": "2100-02-01 00:00:00",
        "end_date": "2102-12-31 23:59:59",
        "jitter": 30,
    });
    let crontab = json!({"expr": "*/5 9-17 * * mon-fri", "timezone": "America/New_York"});
    let interval_bounded = json!({
        "hours": 2,
        "minutes": 30,
        "start_date": "2100-01-01 08:00:00.250000",
        "end_date": "2101-01-01",
        "timezone": "Asia/Kolkata",
    });
    let interval_jitter = json!({"weeks": 1, "days": 2, "seconds": 0.5, "jitter": 2.5});
    let date = json!({
        "run_date": "2100-03-01 12:00:00.123456",
        "timezone": "Australia/Lord_Howe",
    });
    let calendar_monthly = json!({
        "months": 1,
        "hour": 3,
        "minute": 15,
        "start_date": "2100-01-31",
        "timezone": "Europe/London",
    });
    let calendar_mixed = json!({
        "years": 1,
        "weeks": 2,
        "days": 3,
        "second": 59,
        "start_date": "2100-02-28",
        "end_date": "2110-01-01",
    });
    let and = json!({
        "triggers": [
            {"trigger": "cron", "args": {"hour": 9}},
            {"trigger": "interval", "args": {"hours": 3, "start_date": "2100-01-01"}},
        ],
        "timezone": "America/Sao_Paulo",
    });
    let or = json!({
        "triggers": [
            {"trigger": "date", "args": {"run_date": "2100-02-01 10:00"}},
            {"trigger": "crontab", "args": {"expr": "0 12 * * *"}},
            {"trigger": "and", "args": {"triggers": [
                {"trigger": "cron", "args": {"minute": "*/10"}},
                {"trigger": "calendarinterval", "args": {"days": 1, "start_date": "2100-01-01"}},
            ]}},
        ],
        "timezone": "Asia/Tokyo",
        "jitter": 1,
    });
    vec![
        ("cron", cron_weekdays),
        ("cron", cron_bounded),
        ("crontab", crontab),
        ("interval", interval_bounded),
        ("interval", interval_jitter),
        ("date", date),
        ("calendarinterval", calendar_monthly),
        ("calendarinterval", calendar_mixed),
        ("and", and),
        ("or", or),
    ]
}

/// Jobs with every trigger kind (cron, crontab, interval, date, calendarinterval, and,
/// or; with time zones, start/end dates and jitter) come back with the same trigger:
/// same `to_string()`, `to_state()`, time zone, and (without jitter) the same next
/// fire times; the run time comes back as the same instant in the same zone.
pub async fn check_trigger_round_trip(store: &dyn JobStore) {
    const CHECK: &str = "check_trigger_round_trip";
    assert_empty(store, CHECK).await;
    let now = base_time();
    let mut originals = Vec::new();
    for (i, (kind, args)) in trigger_cases().into_iter().enumerate() {
        let any = AnyTrigger::from_args(kind, &args, Tz::UTC, now)
            .unwrap_or_else(|e| panic!("{CHECK}: trigger {kind} {args}: {e}"));
        let jittered = any.jitter().is_some();
        let trigger = any.into_shared();
        // A jittered first fire time is random; use a fixed one in the trigger's zone.
        let first = if jittered {
            Some(at(3600).with_timezone(&trigger.timezone()))
        } else {
            trigger.next_fire_time(None, &now.with_timezone(&trigger.timezone()))
        };
        assert!(
            first.is_some(),
            "{CHECK}: trigger {kind} {args} never fires"
        );
        let job = sample_job(&format!("trigger-{i:02}-{kind}"), first, trigger);
        add(store, job.clone()).await;
        originals.push((job, jittered));
    }

    let listed = store.get_all_jobs().await.expect("get_all_jobs");
    assert_eq!(listed.len(), originals.len(), "{CHECK}: get_all_jobs count");
    for (original, jittered) in &originals {
        let stored = lookup(store, &original.id).await;
        let listed = listed
            .iter()
            .find(|j| j.id == original.id)
            .unwrap_or_else(|| panic!("{CHECK}: {} missing from get_all_jobs", original.id));
        for (how, job) in [("lookup_job", &stored), ("get_all_jobs", listed)] {
            let what = format!("{CHECK}: {} via {how}", original.id);
            let (a, b) = (&original.trigger, &job.trigger);
            assert_eq!(a.to_string(), b.to_string(), "{what}: trigger to_string");
            assert_eq!(a.to_state(), b.to_state(), "{what}: trigger to_state");
            assert_eq!(a.timezone(), b.timezone(), "{what}: trigger time zone");
            assert_same_time(original.next_run_time, job.next_run_time, &what);
            if !jittered {
                let mut prev = original.next_run_time;
                for step in 0..5 {
                    let Some(p) = prev else { break };
                    let expected = a.next_fire_time(Some(&p), &p);
                    let got = b.next_fire_time(Some(&p), &p);
                    assert_eq!(expected, got, "{what}: next fire time, step {step}");
                    prev = expected;
                }
            }
        }
    }
}

#[track_caller]
fn assert_same_time(expected: Option<DateTime<Tz>>, got: Option<DateTime<Tz>>, what: &str) {
    assert_eq!(expected, got, "{what}: next_run_time instant");
    assert_eq!(
        expected.map(|t| t.to_rfc3339()),
        got.map(|t| t.to_rfc3339()),
        "{what}: next_run_time zone/offset"
    );
}

/// Positional arguments of every JSON type: null, booleans, integers (0, -1,
/// `i64::MIN`, `i64::MAX`, `u64::MAX`), floats (including -0.0, the extremes and
/// values that need 17 digits), strings (empty, unicode, quotes, backslashes, control
/// characters), nested arrays and objects.
pub fn sample_args() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1.5),
        json!(-0.0),
        json!(0.1),
        json!(0.30000000000000004),
        json!(1e300),
        json!(5e-324),
        json!(f64::MAX),
        json!(f64::MIN),
        json!(""),
        json!("héllo wörld ✓ 日本語 🎉 \u{202e}rtl"),
        json!("quotes \" and 'single' and `back`, backslash \\ and \\\" escaped"),
        json!("control \n\r\t\u{0}\u{1f} chars; sql ' ; DROP TABLE jobs; --"),
        json!([]),
        json!({}),
        json!([[], [1, [2, [3, [4.5, "deep", null]]]], {"k": [true]}]),
        json!({"nested": {"a": [1, {"b": null, "c": {"d": [false, -7, "x"]}}], "e": {}}}),
    ]
}

/// Keyword arguments with every JSON type (the values of [`sample_args`]) under keys
/// that are empty, unicode, or full of quotes.
pub fn sample_kwargs() -> Map<String, Value> {
    let mut map = Map::new();
    for (i, v) in sample_args().into_iter().enumerate() {
        map.insert(format!("arg{i:02}"), v);
    }
    map.insert(String::new(), json!("empty key"));
    map.insert("ключ 🔑".into(), json!({"ü": ["ß"]}));
    map.insert("with \"quotes\" and 'apostrophes' and \\".into(), json!(42));
    map
}

/// Jobs whose args/kwargs hold every JSON type ([`sample_args`], [`sample_kwargs`])
/// come back identical, to the byte of their JSON form (so `-0.0`, `u64::MAX` and
/// integer/float distinctions survive); empty arguments come back empty; an update
/// of the arguments is stored.
pub async fn check_argument_round_trip(store: &dyn JobStore) {
    const CHECK: &str = "check_argument_round_trip";
    assert_empty(store, CHECK).await;
    let args = sample_args();
    let kwargs = sample_kwargs();
    let job = Job {
        args: Arc::new(args.clone()),
        kwargs: Arc::new(kwargs.clone()),
        ..sample_job("args", Some(at(10)), interval_trigger(10))
    };
    add(store, job.clone()).await;
    add(
        store,
        sample_job("no-args", Some(at(10)), interval_trigger(10)),
    )
    .await;

    let assert_args = |got: &Job, args: &Vec<Value>, kwargs: &Map<String, Value>, what: &str| {
        assert_eq!(*got.args, *args, "{CHECK}: {what}: args");
        assert_eq!(*got.kwargs, *kwargs, "{CHECK}: {what}: kwargs");
        assert_eq!(
            serde_json::to_string(&*got.args).unwrap(),
            serde_json::to_string(args).unwrap(),
            "{CHECK}: {what}: args JSON"
        );
        assert_eq!(
            serde_json::to_string(&*got.kwargs).unwrap(),
            serde_json::to_string(kwargs).unwrap(),
            "{CHECK}: {what}: kwargs JSON"
        );
    };
    assert_args(&lookup(store, "args").await, &args, &kwargs, "lookup_job");
    let listed = store.get_all_jobs().await.expect("get_all_jobs");
    let listed = listed.iter().find(|j| &*j.id == "args").expect("listed");
    assert_args(listed, &args, &kwargs, "get_all_jobs");
    let empty = lookup(store, "no-args").await;
    assert_args(&empty, &Vec::new(), &Map::new(), "no arguments");

    let claimed = claim(store, "s1", utc(10), 10).await;
    let claimed = claimed.iter().find(|j| &*j.id == "args").expect("claimed");
    assert_args(claimed, &args, &kwargs, "acquire_due_jobs");

    let new_args = vec![json!("only"), json!({"one": 1})];
    let mut new_kwargs = Map::new();
    new_kwargs.insert("k".into(), json!([null]));
    let updated = Job {
        args: Arc::new(new_args.clone()),
        kwargs: Arc::new(new_kwargs.clone()),
        ..job
    };
    store.update_job(updated).await.expect("update_job");
    assert_args(
        &lookup(store, "args").await,
        &new_args,
        &new_kwargs,
        "after update_job",
    );
}

/// Name (unicode), executor, misfire grace time (fractional and `None`), coalesce,
/// max instances, recover and the run time's zone and microseconds come back unchanged; a
/// paused job stays paused.
pub async fn check_job_options_round_trip(store: &dyn JobStore) {
    const CHECK: &str = "check_job_options_round_trip";
    assert_empty(store, CHECK).await;
    let new_york: Tz = "America/New_York".parse().unwrap();
    let precise = (at(90) + chrono::Duration::microseconds(654_321)).with_timezone(&new_york);
    let first = Job {
        name: "Ünïcode “name” 🎉 'with' \"quotes\"".into(),
        executor: "processpool".into(),
        misfire_grace_time: Some(Duration::from_millis(2500)),
        coalesce: true,
        max_instances: 7,
        recover: true,
        ..sample_job("options-1", Some(precise), interval_trigger(30))
    };
    let second = Job {
        name: "".into(),
        executor: "default".into(),
        misfire_grace_time: None,
        coalesce: false,
        max_instances: 1,
        ..sample_job("options-2", None, interval_trigger(30))
    };
    for job in [&first, &second] {
        add(store, job.clone()).await;
        let got = lookup(store, &job.id).await;
        let what = format!("{CHECK}: {}", job.id);
        assert_eq!(got.id, job.id, "{what}: id");
        assert_eq!(got.name, job.name, "{what}: name");
        assert_eq!(got.task.name(), job.task.name(), "{what}: task");
        assert_eq!(got.executor, job.executor, "{what}: executor");
        assert_eq!(
            got.misfire_grace_time, job.misfire_grace_time,
            "{what}: misfire_grace_time"
        );
        assert_eq!(got.coalesce, job.coalesce, "{what}: coalesce");
        assert_eq!(got.recover, job.recover, "{what}: recover");
        assert_eq!(
            got.max_instances, job.max_instances,
            "{what}: max_instances"
        );
        assert_same_time(job.next_run_time, got.next_run_time, &what);
    }
}

// ---------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------

/// A claimed job is not returned again, to the same or another scheduler, until it is
/// released, and `get_next_run_time` does not report its run time while the lease is
/// held; jobs added after the claim are claimable; claimed jobs can still be looked up.
///
/// On a store with [`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)
/// a leased job counts at the later of its run time and its lease's end on the store's
/// clock: the run times here (in 2100) are later than any lease taken today, so
/// `get_next_run_time` shows the claimed jobs' run times there.
pub async fn check_claimed_job_not_returned(store: &dyn JobStore) {
    const CHECK: &str = "check_claimed_job_not_returned";
    assert_empty(store, CHECK).await;
    let leased_shown = store.capabilities().store_clock;
    add(store, sample_job("a", Some(at(0)), interval_trigger(60))).await;
    add(store, sample_job("b", Some(at(1)), interval_trigger(60))).await;
    add(store, sample_job("d", Some(at(20)), interval_trigger(60))).await;
    let lease = Duration::from_secs(3600);

    let claimed = claim_for(store, "s1", utc(10), 10, lease).await;
    assert_eq!(ids(&claimed), ["a", "b"], "{CHECK}: first claim");
    if store.capabilities().shared {
        // The holder's own live leases were stranded (see the JobStore contract): its
        // next claim takes the jobs back.
        let again = claim_for(store, "s1", utc(11), 10, lease).await;
        assert_eq!(
            ids(&again),
            ["a", "b"],
            "{CHECK}: the holder's stranded claims"
        );
    } else {
        assert!(
            claim_for(store, "s1", utc(11), 10, lease).await.is_empty(),
            "{CHECK}: the holder got its claimed jobs again"
        );
    }
    assert!(
        claim_for(store, "s2", utc(12), 10, lease).await.is_empty(),
        "{CHECK}: another scheduler got claimed jobs"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(if leased_shown { 0 } else { 20 })),
        "{CHECK}: get_next_run_time reported a claimed job's run time"
    );
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        Some(at(0)),
        "{CHECK}: lookup of a claimed job"
    );

    add(store, sample_job("c", Some(at(5)), interval_trigger(60))).await;
    assert_eq!(
        ids(&claim_for(store, "s2", utc(12), 10, lease).await),
        ["c"],
        "{CHECK}: a job added after the claim"
    );

    // s1 releases a with a later run time: claimable again at that time only.
    release(
        store,
        "s1",
        vec![JobRelease::Update(rescheduled(&claimed[0], Some(at(15))))],
    )
    .await;
    // b (run time 1) and c (5) are still leased.
    assert_eq!(
        next_run_time(store).await,
        Some(utc(if leased_shown { 1 } else { 15 })),
        "{CHECK}: released run time"
    );
    // s3: s2 still holds c, which a shared store would give back to s2.
    assert!(
        claim_for(store, "s3", utc(14), 10, lease).await.is_empty(),
        "{CHECK}: a released job was claimed before its new run time"
    );
    let again = claim_for(store, "s3", utc(16), 10, lease).await;
    assert_eq!(
        ids(&again),
        ["a"],
        "{CHECK}: the released job is claimable when due"
    );
    assert_eq!(
        again[0].next_run_time,
        Some(at(15)),
        "{CHECK}: the released run time"
    );

    release(store, "s1", vec![JobRelease::Remove(claimed[1].id.clone())]).await;
    assert!(is_absent(store, "b").await, "{CHECK}: released with Remove");
    // c (5) and a (15) are still leased.
    assert_eq!(
        next_run_time(store).await,
        Some(utc(if leased_shown { 5 } else { 20 })),
        "{CHECK}: only d is unclaimed"
    );
}

/// Lets `length` of lease time pass from `since`: on a store whose leases run on its own
/// clock ([`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)),
/// real time, as the `now` a caller passes does not age them; elsewhere nothing (the
/// check passes a later `now`).
async fn let_lease_time_pass(store: &dyn JobStore, since: std::time::Instant, length: Duration) {
    if store.capabilities().store_clock {
        let until = since + length;
        tokio::time::sleep(until.saturating_duration_since(std::time::Instant::now())).await;
    }
}

/// A lease that has expired can be claimed by another scheduler (the holder died); the
/// old holder has then lost it: extending it is `LeaseLost`, and its late release does
/// not overwrite the new holder's claim. The new holder's release is stored.
///
/// On a store with [`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)
/// the lease (1 s) ages in real time, whatever `now` the claimers pass.
pub async fn check_expired_lease(store: &dyn JobStore) {
    const CHECK: &str = "check_expired_lease";
    assert_empty(store, CHECK).await;
    add(store, sample_job("a", Some(at(0)), interval_trigger(60))).await;
    let short = Duration::from_secs(1);

    let claimed_at = std::time::Instant::now();
    let first = claim_for(store, "s1", utc(0), 10, short).await;
    assert_eq!(ids(&first), ["a"], "{CHECK}: first claim");
    assert!(
        claim(store, "s2", at_millis(500).with_timezone(&Utc), 10)
            .await
            .is_empty(),
        "{CHECK}: a live lease was claimed by another scheduler"
    );
    if store.capabilities().store_clock {
        // A caller whose clock is far ahead does not end a lease on the store's clock.
        assert!(
            claim(store, "s2", utc(3600), 10).await.is_empty(),
            "{CHECK}: a lease on the store's clock was taken by a caller whose clock is ahead"
        );
    }
    let_lease_time_pass(store, claimed_at, Duration::from_millis(1300)).await;
    let second = claim(store, "s2", utc(2), 10).await;
    assert_eq!(
        ids(&second),
        ["a"],
        "{CHECK}: the expired lease was not reclaimable"
    );
    assert_eq!(
        second[0].next_run_time,
        Some(at(0)),
        "{CHECK}: reclaimed run time"
    );

    expect_kind(
        store
            .extend_leases("s1", &[first[0].id.clone()], utc(2), LEASE)
            .await,
        ErrorKind::LeaseLost,
        "extend_leases by the holder of an expired, reclaimed lease",
    );

    // The old holder's late release must not overwrite the new claim, and says so.
    let lost = release(
        store,
        "s1",
        vec![JobRelease::Update(rescheduled(&first[0], Some(at(50))))],
    )
    .await;
    assert_eq!(
        lost,
        ["a"],
        "{CHECK}: a release by a scheduler that lost the lease was not reported lost"
    );
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        Some(at(0)),
        "{CHECK}: a release by a scheduler that lost the lease was stored"
    );
    assert!(
        claim(store, "s3", utc(3), 10).await.is_empty(),
        "{CHECK}: a release by a scheduler that lost the lease ended the new holder's lease"
    );

    let lost = release(
        store,
        "s2",
        vec![JobRelease::Update(rescheduled(&second[0], Some(at(50))))],
    )
    .await;
    assert!(
        lost.is_empty(),
        "{CHECK}: the new holder's release reported lost: {lost:?}"
    );
    assert_eq!(
        lookup(store, "a").await.next_run_time,
        Some(at(50)),
        "{CHECK}: new holder's release"
    );
    assert!(
        claim(store, "s3", utc(49), 10).await.is_empty(),
        "{CHECK}: claimed before due"
    );
    assert_eq!(
        ids(&claim(store, "s3", utc(50), 10).await),
        ["a"],
        "{CHECK}: claim when due"
    );
}

/// `release_jobs` with `Update` stores the new state (run time, arguments) and ends the
/// lease: the job is claimable again when due (by any scheduler), and a release with a
/// `None` run time leaves it paused (listed last, never due). `Remove` deletes the job.
/// A job removed while claimed is not re-created by its release.
pub async fn check_release(store: &dyn JobStore) {
    const CHECK: &str = "check_release";
    assert_empty(store, CHECK).await;
    for (id, t) in [("u", 0), ("p", 1), ("r", 2), ("x", 3)] {
        add(store, sample_job(id, Some(at(t)), interval_trigger(60))).await;
    }
    let claimed = claim(store, "s1", utc(5), 10).await;
    assert_eq!(ids(&claimed), ["u", "p", "r", "x"], "{CHECK}: claim");
    store
        .remove_job("x")
        .await
        .expect("remove_job of a claimed job");

    let updated = Job {
        args: Arc::new(vec![json!("run 2")]),
        ..rescheduled(&claimed[0], Some(at(60)))
    };
    let lost = release(
        store,
        "s1",
        vec![
            JobRelease::Update(updated),
            JobRelease::Update(rescheduled(&claimed[1], None)),
            JobRelease::Remove(claimed[2].id.clone()),
            JobRelease::Update(rescheduled(&claimed[3], Some(at(60)))),
        ],
    )
    .await;
    assert_eq!(
        lost,
        ["x"],
        "{CHECK}: the release of a job removed while claimed was not reported lost"
    );

    let u = lookup(store, "u").await;
    assert_eq!(u.next_run_time, Some(at(60)), "{CHECK}: released run time");
    assert_eq!(*u.args, [json!("run 2")], "{CHECK}: released arguments");
    assert_eq!(
        lookup(store, "p").await.next_run_time,
        None,
        "{CHECK}: released as paused"
    );
    assert!(is_absent(store, "r").await, "{CHECK}: released with Remove");
    assert!(
        is_absent(store, "x").await,
        "{CHECK}: a removed job was re-created by its release"
    );
    assert_eq!(
        all_ids(store).await,
        ["u", "p"],
        "{CHECK}: listing after release"
    );
    assert_eq!(
        next_run_time(store).await,
        Some(utc(60)),
        "{CHECK}: next run time after release"
    );

    assert!(
        claim(store, "s2", utc(59), 10).await.is_empty(),
        "{CHECK}: claimed before due"
    );
    assert_eq!(
        ids(&claim(store, "s2", utc(1000), 10).await),
        ["u"],
        "{CHECK}: the released job is claimable by another scheduler when due; paused is not"
    );
}

/// The holder extends its lease (`now + lease` from the extension on), so the job is
/// not claimable where the original lease would have expired; a scheduler that does
/// not hold the lease (never claimed, another holder, expired, or the job is gone) gets
/// `LeaseLost`.
///
/// On a store with [`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)
/// the leases (1 s, extended to 3 s) age in real time, whatever `now` the callers pass.
pub async fn check_extend_leases(store: &dyn JobStore) {
    const CHECK: &str = "check_extend_leases";
    assert_empty(store, CHECK).await;
    add(store, sample_job("a", Some(at(0)), interval_trigger(60))).await;
    add(store, sample_job("b", Some(at(100)), interval_trigger(60))).await;
    let a: [Arc<str>; 1] = ["a".into()];
    let (first, extended) = if store.capabilities().store_clock {
        (Duration::from_secs(1), Duration::from_secs(3))
    } else {
        (Duration::from_secs(5), Duration::from_secs(10))
    };

    let claimed = claim_for(store, "s1", utc(0), 10, first).await;
    assert_eq!(ids(&claimed), ["a"], "{CHECK}: claim");
    let extended_at = std::time::Instant::now();
    store
        .extend_leases("s1", &a, utc(4), extended)
        .await
        .expect("extend_leases by the holder");
    // Past the first lease's end, within the extension.
    let_lease_time_pass(store, extended_at, Duration::from_millis(1500)).await;
    assert!(
        claim(store, "s2", utc(6), 10).await.is_empty(),
        "{CHECK}: the extended lease was ignored"
    );
    expect_kind(
        store.extend_leases("s2", &a, utc(6), LEASE).await,
        ErrorKind::LeaseLost,
        "extend_leases by a scheduler that does not hold the lease",
    );
    expect_kind(
        store
            .extend_leases("s1", &["b".into()], utc(6), LEASE)
            .await,
        ErrorKind::LeaseLost,
        "extend_leases of a job that was never claimed",
    );
    expect_kind(
        store
            .extend_leases("s1", &["ghost".into()], utc(6), LEASE)
            .await,
        ErrorKind::LeaseLost,
        "extend_leases of a missing job",
    );
    let_lease_time_pass(store, extended_at, extended + Duration::from_millis(500)).await;
    expect_kind(
        store.extend_leases("s1", &a, utc(14), LEASE).await,
        ErrorKind::LeaseLost,
        "extend_leases of an expired lease",
    );
    assert_eq!(
        ids(&claim(store, "s2", utc(14), 10).await),
        ["a"],
        "{CHECK}: the extended lease did not expire"
    );
    expect_kind(
        store.extend_leases("s1", &a, utc(15), LEASE).await,
        ErrorKind::LeaseLost,
        "extend_leases after another scheduler took the job over",
    );
    store
        .extend_leases("s2", &a, utc(15), LEASE)
        .await
        .expect("extend_leases by the new holder");
}

// ---------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------

/// Two claimers (spawned tasks, different scheduler ids) work through 50 due jobs,
/// 10 at a time, releasing each claimed job with a new run time (due again for the
/// first 40 jobs) or removing it, until nothing is left. No (job id, run time) pair is
/// ever handed out twice, every pair is handed out once (90 in all), each batch is
/// ordered, and the store ends up empty.
pub async fn check_concurrent_claimers(store: Arc<dyn JobStore>) {
    const CHECK: &str = "check_concurrent_claimers";
    assert_empty(&*store, CHECK).await;
    let jobs = (0..50)
        .map(|i| sample_job(&format!("job-{i:02}"), Some(at(i)), interval_trigger(60)))
        .collect();
    store.add_jobs(jobs, false).await.expect("add_jobs");
    let now = utc(100);

    let claimers = ["scheduler-a", "scheduler-b"].map(|scheduler| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(String, Option<DateTime<Tz>>)> = Vec::new();
            loop {
                let batch = claim(&*store, scheduler, now, 10).await;
                if batch.is_empty() {
                    break;
                }
                let order: Vec<_> = batch
                    .iter()
                    .map(|j| (j.next_run_time, j.id.clone()))
                    .collect();
                let mut sorted = order.clone();
                sorted.sort();
                assert_eq!(order, sorted, "{CHECK}: a batch out of order");
                tokio::task::yield_now().await;
                let releases = batch
                    .iter()
                    .map(|job| {
                        seen.push((job.id.to_string(), job.next_run_time));
                        match job.next_run_time {
                            Some(t) if t < at(40) => JobRelease::Update(rescheduled(
                                job,
                                Some(t + chrono::Duration::seconds(60)),
                            )),
                            _ => JobRelease::Remove(job.id.clone()),
                        }
                    })
                    .collect();
                release(&*store, scheduler, releases).await;
                tokio::task::yield_now().await;
            }
            seen
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.expect("a claimer task panicked"));
    }
    let mut unique = HashSet::new();
    for pair in &all {
        assert!(
            unique.insert(pair.clone()),
            "{CHECK}: {pair:?} was claimed twice"
        );
    }
    assert_eq!(
        all.len(),
        90,
        "{CHECK}: every (job, run time) is claimed once"
    );
    assert!(all_ids(&*store).await.is_empty(), "{CHECK}: jobs left over");
}

/// Eight tasks add 25 distinct jobs each at the same time (half one by one, half with
/// `add_jobs` in batches); all 200 are present afterwards. Eight tasks adding the same
/// id without `replace_existing`: exactly one succeeds, the others get `Conflict`.
pub async fn check_concurrent_writers(store: Arc<dyn JobStore>) {
    const CHECK: &str = "check_concurrent_writers";
    assert_empty(&*store, CHECK).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let jobs: Vec<Job> = (0..25)
                    .map(|i| sample_job(&format!("w{w}-{i:02}"), Some(at(i)), interval_trigger(60)))
                    .collect();
                if w % 2 == 0 {
                    for job in jobs {
                        add(&*store, job).await;
                        tokio::task::yield_now().await;
                    }
                } else {
                    for chunk in jobs.chunks(5) {
                        store
                            .add_jobs(chunk.to_vec(), false)
                            .await
                            .expect("add_jobs");
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer task panicked");
    }
    let listed: HashSet<String> = all_ids(&*store).await.into_iter().collect();
    assert_eq!(listed.len(), 200, "{CHECK}: jobs lost or duplicated");
    for w in 0..8 {
        for i in 0..25 {
            let id = format!("w{w}-{i:02}");
            assert!(
                listed.contains(&id),
                "{CHECK}: {id} missing from get_all_jobs"
            );
            lookup(&*store, &id).await;
        }
    }

    let contenders: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let job = Job {
                    name: format!("writer {w}").into(),
                    ..sample_job("contested", Some(at(1)), interval_trigger(60))
                };
                store.add_job(job, false).await.map_err(|e| e.kind())
            })
        })
        .collect();
    let mut ok = 0;
    for contender in contenders {
        match contender.await.expect("a writer task panicked") {
            Ok(()) => ok += 1,
            Err(kind) => assert_eq!(kind, ErrorKind::Conflict, "{CHECK}: contested add"),
        }
    }
    assert_eq!(ok, 1, "{CHECK}: a contested id must be added exactly once");
    assert_eq!(
        all_ids(&*store).await.len(),
        201,
        "{CHECK}: after the contested add"
    );
}

// ---------------------------------------------------------------------------------
// Store families
// ---------------------------------------------------------------------------------

/// Persistent stores only (skipped otherwise): a job running a closure, or with a
/// trigger that has no persisted form, is refused with `Serialization` by `add_job`
/// and `update_job`, and nothing is stored or changed.
pub async fn check_persistent_refuses_unserializable(store: &dyn JobStore) {
    const CHECK: &str = "check_persistent_refuses_unserializable";
    if !store.is_persistent() {
        return;
    }
    assert_empty(store, CHECK).await;
    let closure = Job {
        task: closure_task(),
        ..sample_job("closure", Some(at(1)), interval_trigger(10))
    };
    expect_kind(
        store.add_job(closure, false).await,
        ErrorKind::Serialization,
        "add_job of a closure task in a persistent store",
    );
    assert!(
        is_absent(store, "closure").await,
        "{CHECK}: a refused job was stored"
    );
    let unpersistable = sample_job("unpersistable", Some(at(1)), Arc::new(Unpersistable));
    expect_kind(
        store.add_job(unpersistable, false).await,
        ErrorKind::Serialization,
        "add_job with a trigger without a persisted form",
    );
    assert!(
        is_absent(store, "unpersistable").await,
        "{CHECK}: a refused job was stored"
    );

    add(
        store,
        sample_job("named", Some(at(1)), interval_trigger(10)),
    )
    .await;
    let job = lookup(store, "named").await;
    expect_kind(
        store
            .update_job(Job {
                task: closure_task(),
                ..job.clone()
            })
            .await,
        ErrorKind::Serialization,
        "update_job to a closure task",
    );
    expect_kind(
        store
            .update_job(Job {
                trigger: Arc::new(Unpersistable),
                ..job
            })
            .await,
        ErrorKind::Serialization,
        "update_job to a trigger without a persisted form",
    );
    let job = lookup(store, "named").await;
    assert_eq!(
        job.task.name(),
        Some("noop"),
        "{CHECK}: a refused update changed the task"
    );
    assert_eq!(
        job.trigger.to_string(),
        "interval[0:00:10]",
        "{CHECK}: a refused update changed the trigger"
    );
}

/// Non-persistent stores only (skipped otherwise): jobs running closures, with
/// triggers that cannot be persisted, are stored and handed back as they are.
pub async fn check_memory_accepts_closures(store: &dyn JobStore) {
    const CHECK: &str = "check_memory_accepts_closures";
    if store.is_persistent() {
        return;
    }
    assert_empty(store, CHECK).await;
    let job = Job {
        task: closure_task(),
        ..sample_job("closure", Some(at(1)), Arc::new(Unpersistable))
    };
    add(store, job).await;
    let got = lookup(store, "closure").await;
    assert!(
        matches!(got.task, Task::Closure(_)),
        "{CHECK}: task {:?}",
        got.task
    );
    assert_eq!(
        got.trigger.to_string(),
        "unpersistable[]",
        "{CHECK}: trigger"
    );
    let claimed = claim(store, "s1", utc(1), 10).await;
    assert_eq!(ids(&claimed), ["closure"], "{CHECK}: claim");
    assert!(
        matches!(claimed[0].task, Task::Closure(_)),
        "{CHECK}: claimed task"
    );
}

/// A persistent store shut down and opened again (a scheduler restart, with downtime)
/// finds its jobs as they were: run times to the microsecond, paused jobs paused, and a
/// lease taken before the restart still held (another scheduler cannot claim the job
/// until it expires). `first` and `second` must be two unstarted stores on the same
/// namespace (table, key prefix, collection); `first` must be empty.
///
/// # Panics
/// When the store does not declare itself persistent, or on a broken expectation.
pub async fn check_survives_restart(first: &dyn JobStore, second: &dyn JobStore) {
    const CHECK: &str = "check_survives_restart";
    assert!(
        first.capabilities().persistent,
        "{CHECK}: only for persistent stores"
    );
    first.start("default").await.expect("start the first store");
    assert_empty(first, CHECK).await;
    let odd = at(5) + chrono::Duration::nanoseconds(250_001);
    add(first, sample_job("due", Some(at(1)), interval_trigger(60))).await;
    add(
        first,
        sample_job("leased", Some(at(2)), interval_trigger(60)),
    )
    .await;
    add(first, sample_job("later", Some(odd), interval_trigger(60))).await;
    add(first, sample_job("paused", None, interval_trigger(60))).await;
    // s1 claims the two due jobs, then "crashes": only `due` is released.
    let lease = Duration::from_secs(3600);
    let claimed = claim_for(first, "s1", utc(3), 10, lease).await;
    assert_eq!(
        ids(&claimed),
        ["due", "leased"],
        "{CHECK}: claim before the restart"
    );
    let due = claimed
        .into_iter()
        .find(|j| &*j.id == "due")
        .expect("claimed");
    first
        .release_jobs("s1", vec![JobRelease::Update(due)])
        .await
        .expect("release before the restart");
    first.shutdown().await.expect("shut the first store down");

    second
        .start("default")
        .await
        .expect("start the second store");
    let jobs = second
        .get_all_jobs()
        .await
        .expect("get_all_jobs after the restart");
    assert_eq!(
        ids(&jobs),
        ["due", "leased", "later", "paused"],
        "{CHECK}: the jobs after the restart"
    );
    let later = lookup(second, "later").await;
    assert_eq!(
        later.next_run_time.map(|t| crate::store::micros_ceil(&t)),
        Some(crate::store::micros_ceil(&odd)),
        "{CHECK}: a run time keeps its microsecond"
    );
    assert!(
        lookup(second, "paused").await.next_run_time.is_none(),
        "{CHECK}: paused"
    );
    let claimed = claim_for(second, "s2", utc(4), 10, lease).await;
    assert_eq!(
        ids(&claimed),
        ["due"],
        "{CHECK}: s1's lease on 'leased' must survive the restart"
    );
    second.remove_all_jobs().await.expect("clean up");
    second.shutdown().await.expect("shut the second store down");
}

/// A corrupt stored job is reported once and set aside, never deleted, and other jobs
/// keep running: `plant(id, bytes, run_time_micros)` writes a damaged record for job
/// `id`, due at `run_time_micros` (UTC microseconds), behind the store's back, the way
/// the backend stores jobs (a row, a hash field, a document). Every persistent store's
/// tests run it.
///
/// Checks: the claim that finds it returns the good jobs and reports the corrupt one
/// (by id, with a reason); no later claim reports it again, by this scheduler or
/// another; listing skips it, `lookup_job` fails with `Serialization` (it is still
/// there: not `None`); adding a valid job with `replace_existing` over it repairs it.
///
/// # Panics
/// When the store does not declare itself persistent, or on a broken expectation.
pub async fn check_corrupt_job_set_aside<F, Fut>(store: &dyn JobStore, plant: F)
where
    F: Fn(String, Vec<u8>, i64) -> Fut,
    Fut: Future<Output = ()>,
{
    const CHECK: &str = "check_corrupt_job_set_aside";
    assert!(
        store.capabilities().persistent,
        "{CHECK}: only for persistent stores"
    );
    store.start("default").await.expect("start the store");
    assert_empty(store, CHECK).await;
    add(store, sample_job("good", Some(at(1)), interval_trigger(60))).await;
    plant(
        "bad".to_owned(),
        b"{not a job".to_vec(),
        micros_ceil(&at(1)),
    )
    .await;

    let first = store
        .acquire_due_jobs("s1", utc(10), 100, LEASE)
        .await
        .expect("claim");
    assert_eq!(
        ids(&first.jobs),
        ["good"],
        "{CHECK}: good jobs keep running"
    );
    assert_eq!(
        first
            .corrupt
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["bad"],
        "{CHECK}: the corrupt job is reported with its id"
    );
    assert!(!first.corrupt[0].error.is_empty(), "{CHECK}: with a reason");
    let moved = first
        .jobs
        .into_iter()
        .map(|j| {
            JobRelease::Update(Job {
                next_run_time: Some(at(20)),
                ..j
            })
        })
        .collect();
    store.release_jobs("s1", moved).await.expect("release");
    let second = store
        .acquire_due_jobs("s2", utc(100), 100, LEASE)
        .await
        .expect("claim again");
    assert_eq!(ids(&second.jobs), ["good"], "{CHECK}");
    assert!(
        second.corrupt.is_empty(),
        "{CHECK}: reported once, not again: {:?}",
        second.corrupt
    );
    store
        .release_jobs(
            "s2",
            vec![JobRelease::Update(Job {
                next_run_time: Some(at(200)),
                ..second.jobs[0].clone()
            })],
        )
        .await
        .expect("release");
    assert_eq!(
        ids(&store.get_all_jobs().await.expect("get_all_jobs")),
        ["good"],
        "{CHECK}: listing skips the corrupt job"
    );
    let err = store.lookup_job("bad").await.expect_err(
        "check_corrupt_job_set_aside: a corrupt job is an error to look up, not absent",
    );
    assert_eq!(err.kind(), ErrorKind::Serialization, "{CHECK}: {err}");

    // Kept, not deleted: a valid job written over it repairs it.
    store
        .add_job(sample_job("bad", Some(at(150)), interval_trigger(60)), true)
        .await
        .expect("repair with replace_existing");
    let repaired = store
        .lookup_job("bad")
        .await
        .expect("lookup")
        .expect("kept");
    assert_eq!(repaired.next_run_time, Some(at(150)), "{CHECK}");
    let third = store
        .acquire_due_jobs("s3", utc(160), 100, LEASE)
        .await
        .expect("claim the repaired job");
    assert_eq!(ids(&third.jobs), ["bad"], "{CHECK}: the repaired job runs");
    store.remove_all_jobs().await.expect("remove_all_jobs");
    store.shutdown().await.expect("shutdown");
}

fn micros_ceil(t: &DateTime<Tz>) -> i64 {
    apscheduler_core::time::micros::run_time(t)
}

/// The change channel of a store that declares
/// [`Capabilities::notifications`](apscheduler_core::Capabilities::notifications):
/// `listening` (started here, with a listener) hears each write of `writer` (another
/// store on the same namespace) within a few seconds, never its own writes, and is
/// called again once `drop_channel` has cut its channel's connection (changes made
/// while it was down were not heard). Real time, a few seconds.
pub async fn check_change_notifications<F, Fut>(
    listening: &dyn JobStore,
    writer: &dyn JobStore,
    drop_channel: F,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    assert!(listening.capabilities().notifications);
    let probe = ListenerProbe::default();
    listening.set_change_listener(probe.listener());
    listening
        .start("default")
        .await
        .expect("start the listening store");
    writer
        .start("default")
        .await
        .expect("start the writing store");
    let after = |before, what| probe.after(before, what);
    let settle = || probe.settle();
    // Subscribed (the first call says so).
    after(0, "the subscription").await;
    let mut count = settle().await;

    // Its own writes are not heard.
    listening
        .add_job(sample_job("own", Some(at(60)), interval_trigger(60)), false)
        .await
        .unwrap();
    listening.remove_job("own").await.unwrap();
    assert_eq!(settle().await, count, "a store heard its own writes");

    writer
        .add_job(sample_job("n", Some(at(0)), interval_trigger(60)), false)
        .await
        .unwrap();
    after(count, "another store's add").await;
    count = settle().await;
    let mut job = sample_job("n", Some(at(30)), interval_trigger(60));
    job.name = "renamed".into();
    writer.update_job(job).await.unwrap();
    after(count, "another store's update").await;
    count = settle().await;
    let claimed = writer
        .acquire_due_jobs("other", utc(30), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1);
    let mut next = claimed.jobs[0].clone();
    next.next_run_time = Some(at(60));
    writer
        .release_jobs("other", vec![JobRelease::Update(next)])
        .await
        .unwrap();
    after(count, "another store's release").await;
    count = settle().await;
    writer.remove_job("n").await.unwrap();
    after(count, "another store's remove").await;
    count = settle().await;

    // The channel's connection drops: once back, the listener is called (a change
    // made meanwhile would otherwise go unheard until the next poll).
    drop_channel().await;
    after(count, "the re-subscription after a dropped connection").await;

    listening.shutdown().await.unwrap();
    writer.shutdown().await.unwrap();
}

/// Counts the calls of a store's change listener, for tests of change channels.
#[derive(Clone, Debug, Default)]
pub struct ListenerProbe {
    heard: Arc<std::sync::atomic::AtomicUsize>,
}

impl ListenerProbe {
    /// A listener to hand to [`JobStore::set_change_listener`] that counts its calls.
    pub fn listener(&self) -> apscheduler_core::ChangeListener {
        let heard = self.heard.clone();
        Arc::new(move || {
            heard.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
    }

    /// How many times the listener was called.
    pub fn count(&self) -> usize {
        self.heard.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the listener was called more than `before` times (panics naming
    /// `what` after 5 s); how long that took.
    pub async fn after(&self, before: usize, what: &str) -> Duration {
        let start = std::time::Instant::now();
        while self.count() <= before {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no notification of {what} within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    /// Waits until no call arrives for half a second; the count then.
    pub async fn settle(&self) -> usize {
        let mut last = self.count();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.count();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}
