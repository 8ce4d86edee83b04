//! Redis tells other schedulers of a release only while one of them waits for it
//! (`apscheduler_testkit::store::check_release_notifies_only_waiters`): a scheduler
//! whose next wake-up is a lease's end records the wait in `<prefix>waiters`, and the
//! release script publishes only while such a wait is ahead of the server's time. (A
//! test binary of its own: another test's `CLIENT KILL TYPE pubsub` would count as a
//! notification here.)

mod common;

use std::sync::Arc;

use apscheduler_core::JobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_only_a_scheduler_that_waits_for_it() {
    let Some(url) = common::redis_url("a_release_wakes_only_a_scheduler_that_waits_for_it") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    apscheduler_testkit::store::check_release_notifies_only_waiters(|| {
        Arc::new(common::store(&url, &prefix)) as Arc<dyn JobStore>
    })
    .await;
}
