//! The run contract's checks (`apscheduler_testkit::store::runs`) against ZooKeeper
//! (`APS_TEST_ZOOKEEPER_URL`), each on a fresh root path.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_contract() {
    let Some(hosts) = common::zk_hosts("run_contract") else {
        return;
    };
    apscheduler_testkit::store::runs::run_runs(move || {
        let store = common::store(&hosts, &common::fresh_path());
        async move { store }
    })
    .await;
}
