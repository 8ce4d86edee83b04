//! The whole job store conformance suite against Redis (`APS_TEST_REDIS_URL`).

mod common;

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(url) = common::redis_url("conformance") else {
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
    apscheduler_testkit::store::run_all(make).await;
}

/// The testkit's shared restart check: two stores on one key prefix, the first shut
/// down before the second opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_restart() {
    let Some(url) = common::redis_url("survives_restart") else {
        return;
    };
    let prefixes = common::Prefixes::new(&url);
    let prefix = prefixes.fresh();
    let (first, second) = (common::store(&url, &prefix), common::store(&url, &prefix));
    apscheduler_testkit::store::check_survives_restart(&first, &second).await;
}
