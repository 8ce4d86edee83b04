//! A MongoDB server that cannot be reached fails the store's first call within the
//! connect time-out, naming the address and the cause: refused, unknown host, or no
//! answer (a black hole), instead of the driver's 30 s server selection time-out.
//! Loopback only: no server is needed.

use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_store_mongodb::MongoDbJobStore;
use apscheduler_testkit::unreachable::{closed_port, expect_unreachable, BlackHole, UNKNOWN_HOST};

/// Generous for a loaded machine: the time-outs under test are 1 s.
const WITHIN: Duration = Duration::from_secs(10);

async fn first_call(url: &str, timeout: Option<Duration>) -> Result<(), apscheduler_core::Error> {
    let mut builder = MongoDbJobStore::builder(url);
    if let Some(t) = timeout {
        builder = builder.connect_timeout(t);
    }
    builder.build()?.lookup_job("x").await.map(|_| ())
}

#[tokio::test]
async fn a_closed_port_is_refused_at_once() {
    let url = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        closed_port()
    );
    let err = expect_unreachable(&url, first_call(&url, None), "connection refused", WITHIN).await;
    let text = err.to_string();
    assert!(
        text.contains("cannot reach the MongoDB store at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("connect_timeout = 5s"), "{text}");
}

#[tokio::test]
async fn an_unknown_host_names_the_resolution_failure() {
    let url = format!("mongodb://{UNKNOWN_HOST}:27017/");
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
    let url = format!("mongodb://127.0.0.1:{}/?directConnection=true", hole.port());
    let timeout = Some(Duration::from_secs(1));
    expect_unreachable(
        &url,
        first_call(&url, timeout),
        "timed out after 1.0 s",
        WITHIN,
    )
    .await;
}

#[tokio::test]
async fn the_url_server_selection_timeout_is_the_default() {
    let hole = BlackHole::new();
    let url = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=1000",
        hole.port()
    );
    expect_unreachable(&url, first_call(&url, None), "connect_timeout = 1s", WITHIN).await;
}
