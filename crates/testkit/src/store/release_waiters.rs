//! A store that tells other schedulers of a release only while one of them waits for
//! it: a scheduler whose next wake-up is a lease's end (it saw a due job under
//! another's lease) records the wait, and a release notifies only while such a wait
//! is current. Other changes (add, update, remove) notify every listener.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{JobRelease, JobStore};
use chrono::Utc;

use super::{interval_trigger, sample_job};

/// `store`, started, with a listener that counts the notifications it hears (from
/// zero, once the channel has connected).
async fn listening(store: Arc<dyn JobStore>) -> (Arc<dyn JobStore>, Arc<AtomicUsize>) {
    let heard = Arc::new(AtomicUsize::new(0));
    let h = heard.clone();
    store.set_change_listener(Arc::new(move || {
        h.fetch_add(1, Ordering::SeqCst);
    }));
    store.start("default").await.unwrap();
    // The listener is called once when the channel connects.
    for _ in 0..100 {
        if heard.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        heard.load(Ordering::SeqCst) > 0,
        "the channel never connected"
    );
    heard.store(0, Ordering::SeqCst);
    (store, heard)
}

/// Whether `heard` counts a notification within `within`.
async fn hears(heard: &AtomicUsize, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if heard.load(Ordering::SeqCst) > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Claims the due job for `holder` and makes its release (next run a minute later).
async fn claim_and_release(store: &dyn JobStore, holder: &str, lease: Duration) -> Vec<JobRelease> {
    let claimed = store
        .acquire_due_jobs(holder, Utc::now(), 10, lease)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1, "the due job is claimed");
    claimed
        .jobs
        .into_iter()
        .map(|mut job| {
            job.next_run_time = job.next_run_time.map(|t| t + chrono::Duration::minutes(1));
            JobRelease::Update(job)
        })
        .collect()
}

/// Checks that a release wakes only a scheduler waiting for it, on stores made by
/// `new_store` (each call a new store on the same jobs, not started): nobody waits, the
/// release is not announced; a store that sees the job under the releaser's lease (its
/// next wake-up is the lease's end) is woken by the release; a wait ends with its
/// lease, after which a release is not announced. Takes about 6 s of real time.
///
/// # Panics
/// On the first expectation not met.
pub async fn check_release_notifies_only_waiters(new_store: impl Fn() -> Arc<dyn JobStore>) {
    let releaser = new_store();
    releaser.start("default").await.unwrap();
    let (waiter, heard) = listening(new_store()).await;
    let due =
        Utc::now().with_timezone(&apscheduler_core::chrono_tz::UTC) - chrono::Duration::seconds(1);
    releaser
        .add_job(sample_job("j", Some(due), interval_trigger(60)), false)
        .await
        .unwrap();
    assert!(
        hears(&heard, Duration::from_secs(3)).await,
        "an add notifies"
    );
    heard.store(0, Ordering::SeqCst);

    // Nobody waits: the release is not announced.
    let releases = claim_and_release(&*releaser, "r", Duration::from_secs(30)).await;
    let released = releaser.release_jobs("r", releases).await.unwrap();
    assert!(released.is_complete());
    assert!(
        !hears(&heard, Duration::from_millis(1_500)).await,
        "a release nobody waits for woke a listener"
    );

    // The waiter sees the job under the releaser's lease: its next wake-up is the
    // lease's end, and the release wakes it.
    releaser
        .add_job(sample_job("j", Some(due), interval_trigger(60)), true)
        .await
        .unwrap();
    assert!(
        hears(&heard, Duration::from_secs(3)).await,
        "a replace notifies"
    );
    let releases = claim_and_release(&*releaser, "r", Duration::from_secs(30)).await;
    let next = waiter.get_next_run_time().await.unwrap().unwrap();
    assert!(
        next > Utc::now() + chrono::Duration::seconds(20),
        "{next}: the lease's end"
    );
    heard.store(0, Ordering::SeqCst);
    releaser.release_jobs("r", releases).await.unwrap();
    assert!(
        hears(&heard, Duration::from_secs(3)).await,
        "the waiting scheduler was not woken by the release"
    );

    // A wait ends with its lease: a release after that is not announced. (A new
    // waiter: the first one's wait, recorded until the end of the 30 s lease, lasts
    // that long whether or not it was woken before.)
    waiter.shutdown().await.unwrap();
    let (waiter, heard) = listening(new_store()).await;
    releaser
        .add_job(sample_job("j", Some(due), interval_trigger(60)), true)
        .await
        .unwrap();
    assert!(
        hears(&heard, Duration::from_secs(3)).await,
        "a replace notifies"
    );
    let releases = claim_and_release(&*releaser, "r", Duration::from_millis(800)).await;
    let next = waiter.get_next_run_time().await.unwrap().unwrap();
    assert!(next > Utc::now(), "{next}: the lease's end");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    heard.store(0, Ordering::SeqCst);
    releaser.release_jobs("r", releases).await.unwrap();
    assert!(
        !hears(&heard, Duration::from_millis(1_500)).await,
        "a release after the wait's end woke a listener"
    );

    waiter.shutdown().await.unwrap();
    releaser.shutdown().await.unwrap();
}
