//! Checks shared by persistent stores, with two stores on one namespace: restarts, corrupt jobs, change notifications.

use super::helpers::*;
use super::*;

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
        later.next_run_time.map(|t| micros_ceil(&t)),
        Some(micros_ceil(&odd)),
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
/// store on the same namespace; a release once it saw the released job under the
/// writer's lease) within a few seconds, never its own writes, and is
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
    // Due now on the servers' clocks (their leases run on them).
    let now = chrono::Utc::now();
    let mut job = sample_job(
        "n",
        Some(now.with_timezone(&Tz::UTC) - chrono::Duration::seconds(1)),
        interval_trigger(60),
    );
    job.name = "renamed".into();
    writer.update_job(job).await.unwrap();
    after(count, "another store's update").await;
    count = settle().await;
    let claimed = writer
        .acquire_due_jobs("other", now, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1);
    // The listening store sees the job under the other's lease: it sleeps until the
    // lease's end, which a release brings forward (a store may tell only such a
    // waiting store of a release).
    let wake = listening.get_next_run_time().await.unwrap();
    assert!(wake.is_some_and(|t| t > now), "{wake:?}: the lease's end");
    let mut next = claimed.jobs[0].clone();
    next.next_run_time = Some(now.with_timezone(&Tz::UTC) + chrono::Duration::hours(1));
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
