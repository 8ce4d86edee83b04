//! The run contract's checks (`apscheduler_testkit::store::runs`) against Redis
//! (`APS_TEST_REDIS_URL`), each on a fresh key prefix.

mod common;

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_contract() {
    let Some(url) = common::redis_url("run_contract") else {
        return;
    };
    let prefixes = Arc::new(common::Prefixes::new(&url));
    let make = {
        let prefixes = prefixes.clone();
        move || {
            let store = common::store(&url, &prefixes.fresh());
            async move { store }
        }
    };
    apscheduler_testkit::store::runs::run_runs(make).await;
}
