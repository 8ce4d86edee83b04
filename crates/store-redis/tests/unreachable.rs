//! A Redis server that cannot be reached fails the store's first call within the
//! connect time-out, naming the address and the cause: refused, unknown host, or no
//! answer (a black hole). Loopback only: no server is needed.

use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_store_redis::RedisJobStore;
use apscheduler_testkit::unreachable::{closed_port, expect_unreachable, BlackHole, UNKNOWN_HOST};

/// Generous for a loaded machine: the time-outs under test are 1 s or 3 s.
const WITHIN: Duration = Duration::from_secs(10);

async fn first_call(url: &str, timeout: Option<Duration>) -> Result<(), apscheduler_core::Error> {
    let mut builder = RedisJobStore::builder(url);
    if let Some(t) = timeout {
        builder = builder.connect_timeout(t);
    }
    builder.build()?.lookup_job("x").await.map(|_| ())
}

#[tokio::test]
async fn a_closed_port_is_refused_at_once() {
    let url = format!("redis://127.0.0.1:{}/", closed_port());
    let err = expect_unreachable(&url, first_call(&url, None), "connection refused", WITHIN).await;
    let text = err.to_string();
    assert!(
        text.contains("cannot reach the Redis store at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("connect_timeout = 3s"), "{text}");
}

#[tokio::test]
async fn an_unknown_host_names_the_resolution_failure() {
    let url = format!("redis://{UNKNOWN_HOST}:6379/");
    expect_unreachable(
        &url,
        first_call(&url, None),
        "name resolution failed",
        WITHIN,
    )
    .await;
}

#[tokio::test]
async fn a_black_hole_times_out_after_the_connect_timeout() {
    let hole = BlackHole::new();
    let url = format!("redis://127.0.0.1:{}/", hole.port());
    let timeout = Some(Duration::from_secs(1));
    expect_unreachable(
        &url,
        first_call(&url, timeout),
        "timed out after 1.0 s",
        WITHIN,
    )
    .await;
}
