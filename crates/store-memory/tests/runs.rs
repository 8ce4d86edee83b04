//! The run contract's checks (`apscheduler_testkit::store::runs`) against
//! [`MemoryJobStore`].

use apscheduler_store_memory::MemoryJobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_contract() {
    apscheduler_testkit::store::runs::run_runs(|| async { MemoryJobStore::new() }).await;
}
