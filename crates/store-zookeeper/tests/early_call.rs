//! A session opened by a call made before `start` (the `aps` daemon looks a job up to
//! check the store is reachable before it starts its scheduler) still gets the watch
//! that wakes the scheduler when `start` comes with a change listener.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apscheduler_core::JobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job};

#[tokio::test]
async fn a_session_opened_before_start_still_watches_for_changes() {
    let Some(hosts) = common::zk_hosts("a_session_opened_before_start_still_watches_for_changes")
    else {
        return;
    };
    let path = common::fresh_path();
    let store = common::store(&hosts, &path);
    assert!(store.lookup_job("x").await.unwrap().is_none());
    let heard = Arc::new(AtomicUsize::new(0));
    let counter = heard.clone();
    store.set_change_listener(Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    store.start("default").await.unwrap();
    let before = heard.load(Ordering::SeqCst);

    let other = common::store(&hosts, &path);
    other
        .add_job(sample_job("n", Some(at(0)), interval_trigger(60)), false)
        .await
        .unwrap();
    let began = Instant::now();
    while heard.load(Ordering::SeqCst) == before && began.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let woke = heard.load(Ordering::SeqCst) > before;
    other.remove_all_jobs().await.unwrap();
    other.shutdown().await.unwrap();
    store.shutdown().await.unwrap();
    assert!(woke, "no change notification within 10 s");
}
