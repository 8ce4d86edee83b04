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
//! | [`check_change_notifications`] | a store declaring [`Capabilities::notifications`](apscheduler_core::Capabilities::notifications) calls its listener for another store's adds, updates, removes and releases (of a job it saw under the writer's lease), not for its own writes, and again after its channel's connection dropped |
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
//!
//! ## Where the checks live
//! | module | checks |
//! |---|---|
//! | `basic` | add, look up, replace, remove; conflicts; batches; missing ids |
//! | `ordering` | due jobs, next run time, listings, removing everything |
//! | `round_trips` | triggers, arguments, job options |
//! | `leases` | claims, expiry, releases, extensions |
//! | `concurrency` | racing claimers and writers |
//! | `families` | what persistent stores refuse and memory stores keep |
//! | `persistent` | restarts, corrupt jobs, change notifications |
//! | [`runs`] | the run contract ([`RunStore`](apscheduler_core::RunStore)): one check per rule, [`runs::run_runs`] runs them all |
//!
//! Every check is re-exported here: call them as `store::check_...`.

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

mod basic;
mod concurrency;
mod families;
mod helpers;
mod leases;
mod ordering;
mod persistent;
mod release_waiters;
mod round_trips;
pub mod runs;

pub use basic::{
    check_add_jobs_all_or_nothing, check_add_lookup_update_remove, check_conflicts_and_replace,
    check_missing_ids,
};
pub use concurrency::{check_concurrent_claimers, check_concurrent_writers};
pub use families::{check_memory_accepts_closures, check_persistent_refuses_unserializable};
pub use leases::{
    check_claimed_job_not_returned, check_expired_lease, check_extend_leases, check_release,
};
pub use ordering::{
    check_due_jobs_order, check_get_all_jobs_order, check_next_run_time, check_remove_all_jobs,
};
pub use persistent::{
    check_change_notifications, check_corrupt_job_set_aside, check_survives_restart, ListenerProbe,
};
pub use release_waiters::check_release_notifies_only_waiters;
pub use round_trips::{
    check_argument_round_trip, check_job_options_round_trip, check_trigger_round_trip, sample_args,
    sample_kwargs, trigger_cases,
};

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
        policy: Default::default(),
        paused_reason: None,
        declaration: None,
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
