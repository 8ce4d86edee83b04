//! A database that cannot be reached fails the store's first call within the connect
//! time-out, naming the backend, the address and the cause: refused, unknown host, or
//! no answer (a black hole). Loopback only: no server is needed.

use std::time::Duration;

use apscheduler_core::JobStore;
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::unreachable::{closed_port, expect_unreachable, BlackHole, UNKNOWN_HOST};

/// Generous for a loaded machine: the time-outs under test are 1 s.
const WITHIN: Duration = Duration::from_secs(10);

async fn first_call(url: &str, timeout: Option<Duration>) -> Result<(), apscheduler_core::Error> {
    let mut builder = SqlJobStore::builder(url);
    if let Some(t) = timeout {
        builder = builder.connect_timeout(t);
    }
    let store = builder.build()?;
    store.lookup_job("x").await.map(|_| ())
}

#[tokio::test]
async fn closed_ports_are_refused_at_once() {
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://root@127.0.0.1:{}/test", closed_port());
        let err =
            expect_unreachable(&url, first_call(&url, None), "connection refused", WITHIN).await;
        assert!(err.to_string().contains("connect_timeout = 5s"), "{err}");
        assert!(err.to_string().contains(" store at 127.0.0.1:"), "{err}");
    }
}

#[tokio::test]
async fn unknown_hosts_name_the_resolution_failure() {
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://root@{UNKNOWN_HOST}:5432/test");
        expect_unreachable(
            &url,
            first_call(&url, None),
            "name resolution failed",
            WITHIN,
        )
        .await;
    }
}

#[tokio::test]
async fn black_holes_time_out_after_the_connect_timeout() {
    let hole = BlackHole::new();
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://root@127.0.0.1:{}/test", hole.port());
        let err = expect_unreachable(
            &url,
            first_call(&url, Some(Duration::from_secs(1))),
            "timed out after 1.0 s",
            WITHIN,
        )
        .await;
        assert!(err.to_string().contains("connect_timeout = 1s"), "{err}");
    }
}

#[tokio::test]
async fn a_postgres_url_connect_timeout_is_the_default() {
    let hole = BlackHole::new();
    let url = format!(
        "postgres://root@127.0.0.1:{}/test?connect_timeout=1",
        hole.port()
    );
    expect_unreachable(
        &url,
        first_call(&url, None),
        "timed out after 1.0 s",
        WITHIN,
    )
    .await;
}
