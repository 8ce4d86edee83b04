//! MongoDB tells other schedulers of a release only while one of them waits for it
//! (`apscheduler_testkit::store::check_release_notifies_only_waiters`): a scheduler
//! whose next wake-up is a lease's end records the wait in `<collection>_waiters` and
//! watches it; a release bumps the waits still ahead, and the jobs' change stream
//! leaves releases out.

mod common;

use std::sync::Arc;

use apscheduler_core::JobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_only_a_scheduler_that_waits_for_it() {
    let Some(db) = common::TestDb::new("a_release_wakes_only_a_scheduler_that_waits_for_it") else {
        return;
    };
    apscheduler_testkit::store::check_release_notifies_only_waiters(|| {
        Arc::new(db.store_on("waited")) as Arc<dyn JobStore>
    })
    .await;
}

/// A store that starts hears one wake-up, when its jobs' stream opens: its stream on
/// the waits opening too, with no wait of its own recorded, wakes nobody (a second,
/// late wake-up made the check above see a release "announced" that was not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_streams_wakes_the_scheduler_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    let Some(db) = common::TestDb::new("opening_the_streams_wakes_the_scheduler_once") else {
        return;
    };
    let store = db.store_on("opened");
    let heard = Arc::new(AtomicUsize::new(0));
    let h = heard.clone();
    store.set_change_listener(Arc::new(move || {
        h.fetch_add(1, Ordering::SeqCst);
    }));
    store.start("default").await.unwrap();
    // Both streams open within this (a round trip or two each); nothing else happens.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(heard.load(Ordering::SeqCst), 1, "wake-ups at start");
    store.shutdown().await.unwrap();
}
