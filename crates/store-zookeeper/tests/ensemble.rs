//! The store on a three-server ensemble (a private one, Debian's `zookeeper`, started
//! by the test): the whole conformance suite through the connect string
//! `h1:p1,h2:p2,h3:p3`; and a connect string whose chroot does not exist, refused at the
//! first call with an error naming it.

mod common;

use std::time::Duration;

use apscheduler_core::{ErrorKind, JobStore};
use apscheduler_store_zookeeper::ZooKeeperJobStore;
use apscheduler_testkit::ensemble::ZooKeeperEnsemble;
use apscheduler_testkit::server::PrivateZooKeeper;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_three_server_ensemble() {
    if !PrivateZooKeeper::available("conformance_on_a_three_server_ensemble") {
        return;
    }
    let ensemble = tokio::task::spawn_blocking(ZooKeeperEnsemble::new)
        .await
        .unwrap();
    let hosts = ensemble.hosts();
    assert_eq!(hosts.split(',').count(), 3, "{hosts}");
    apscheduler_testkit::store::run_all(move || {
        let store = common::store(&hosts, &common::fresh_path());
        async move { store }
    })
    .await;
    drop(ensemble);
}

/// `host:port/chroot` with a chroot that is not there: the first call fails with
/// `InvalidInput`, naming the chroot and saying to create it, rather than retrying
/// forever as an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chroot_that_does_not_exist_is_named_at_the_first_call() {
    let Some(hosts) = common::zk_hosts("a_chroot_that_does_not_exist_is_named_at_the_first_call")
    else {
        return;
    };
    let chroot = format!("/{}", apscheduler_testkit::server::random_namespace());
    let connect = format!("{hosts}{chroot}");
    let store = ZooKeeperJobStore::builder(connect.clone())
        .path("/apscheduler")
        .connection_timeout(Duration::from_secs(2))
        .build()
        .expect("a valid store");
    let err = tokio::time::timeout(Duration::from_secs(20), store.lookup_job("x"))
        .await
        .expect("an answer within 20 s")
        .expect_err("the chroot does not exist");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{text}");
    assert!(text.contains(&chroot), "names the chroot: {text}");
    assert!(text.contains("does not exist"), "{text}");
}
