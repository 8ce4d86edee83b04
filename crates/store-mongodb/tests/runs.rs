//! The run contract's checks (`apscheduler_testkit::store::runs`) against the server
//! at `APS_TEST_MONGODB_URL`, each on a fresh collection.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_contract() {
    let Some(db) = common::TestDb::new("run_contract") else {
        return;
    };
    apscheduler_testkit::store::runs::run_runs(|| {
        let store = db.store();
        async move { store }
    })
    .await;
}
