//! Runs the job store conformance suite of `apscheduler-testkit` against
//! [`MemoryJobStore`]; the pattern every store crate copies.

use apscheduler_core::JobStore;
use apscheduler_store_memory::MemoryJobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    apscheduler_testkit::store::run_all(|| async { MemoryJobStore::new() }).await;
}

#[tokio::test]
async fn run_history_conformance() {
    let store = MemoryJobStore::new();
    apscheduler_testkit::history::run_all(store.run_history().expect("memory keeps history")).await;
}
