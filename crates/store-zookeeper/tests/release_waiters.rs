//! ZooKeeper tells other schedulers of a release only while one of them waits for it
//! (`apscheduler_testkit::store::check_release_notifies_only_waiters`): a scheduler
//! whose next wake-up is a lease's end records the wait as an ephemeral znode under
//! `P/waiters`, and a release writes `P/changes` only while such a wait is ahead of
//! the server's time.

mod common;

use std::sync::Arc;

use apscheduler_core::JobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_only_a_scheduler_that_waits_for_it() {
    let Some(hosts) = common::zk_hosts("a_release_wakes_only_a_scheduler_that_waits_for_it") else {
        return;
    };
    let path = common::fresh_path();
    apscheduler_testkit::store::check_release_notifies_only_waiters(|| {
        Arc::new(common::store(&hosts, &path)) as Arc<dyn JobStore>
    })
    .await;
}
