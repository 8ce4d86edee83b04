//! A ZooKeeper ensemble that cannot be reached fails the store's first call within the
//! connect time-out, naming the address and the cause: refused, unknown host, or no
//! answer (a black hole). Loopback only: no server is needed.

use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_store_zookeeper::ZooKeeperJobStore;
use apscheduler_testkit::unreachable::{closed_port, expect_unreachable, BlackHole, UNKNOWN_HOST};

/// Generous for a loaded machine: the time-outs under test are 1 s.
const WITHIN: Duration = Duration::from_secs(10);

async fn first_call(hosts: &str, timeout: Option<Duration>) -> Result<(), apscheduler_core::Error> {
    let mut builder = ZooKeeperJobStore::builder(hosts);
    if let Some(t) = timeout {
        builder = builder.connect_timeout(t);
    }
    builder.build()?.lookup_job("x").await.map(|_| ())
}

#[tokio::test]
async fn a_closed_port_is_refused_at_once() {
    let hosts = format!("127.0.0.1:{}", closed_port());
    let err = expect_unreachable(
        &hosts,
        first_call(&hosts, None),
        "connection refused",
        WITHIN,
    )
    .await;
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot reach the ZooKeeper store at {hosts}")),
        "{text}"
    );
    assert!(text.contains("connect_timeout = 5s"), "{text}");
}

#[tokio::test]
async fn an_unknown_host_names_the_resolution_failure() {
    let hosts = format!("{UNKNOWN_HOST}:2181");
    expect_unreachable(
        &hosts,
        first_call(&hosts, None),
        "name resolution failed",
        WITHIN,
    )
    .await;
}

#[tokio::test]
async fn a_black_hole_times_out_after_the_connect_timeout() {
    let hole = BlackHole::new();
    let hosts = format!("127.0.0.1:{}", hole.port());
    let timeout = Some(Duration::from_secs(1));
    expect_unreachable(
        &hosts,
        first_call(&hosts, timeout),
        "timed out after 1.0 s",
        WITHIN,
    )
    .await;
}
