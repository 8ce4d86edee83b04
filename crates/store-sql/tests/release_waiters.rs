//! PostgreSQL tells other schedulers of a release only while one of them waits for it
//! (`apscheduler_testkit::store::check_release_notifies_only_waiters`): a scheduler
//! whose next wake-up is a lease's end records the wait in `<table>_waiters`, and a
//! release notifies only while such a wait is current.

mod support;

use std::sync::Arc;

use apscheduler_core::JobStore;
use support::{server_url, Tables, POSTGRES_ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_only_a_scheduler_that_waits_for_it() {
    let Some(url) = server_url(
        POSTGRES_ENV,
        "a_release_wakes_only_a_scheduler_that_waits_for_it",
    ) else {
        return;
    };
    let tables = Tables::new(&url);
    let table = tables.table();
    apscheduler_testkit::store::check_release_notifies_only_waiters(|| {
        Arc::new(tables.store_on(&table)) as Arc<dyn JobStore>
    })
    .await;
}
