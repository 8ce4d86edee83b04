//! Shared by the ZooKeeper store's tests: the server from the environment and a fresh
//! root path per test (the private server a test can kill and restart is the testkit's).
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use apscheduler_store_zookeeper::ZooKeeperJobStore;

/// The ensemble in `APS_TEST_ZOOKEEPER_URL` (`host:port`), or `None` (skip) outside CI.
pub fn zk_hosts(test: &str) -> Option<String> {
    apscheduler_testkit::server::server_url("APS_TEST_ZOOKEEPER_URL", "127.0.0.1:2181", test)
}

/// A root path of this test's own.
pub fn fresh_path() -> String {
    format!("/{}", apscheduler_testkit::server::random_namespace())
}

/// A store on `hosts` under `path`.
pub fn store(hosts: &str, path: &str) -> ZooKeeperJobStore {
    ZooKeeperJobStore::builder(hosts)
        .path(path)
        .session_timeout(Duration::from_secs(6))
        .connection_timeout(Duration::from_secs(2))
        .build()
        .expect("a valid store")
}
