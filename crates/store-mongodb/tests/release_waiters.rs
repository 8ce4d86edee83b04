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
