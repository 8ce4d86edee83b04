//! A configuration no retry can fix is an `InvalidInput` error at `start`, naming what is
//! wrong, not an `Unavailable` the scheduler would retry for ever: an SQLite file in a
//! folder that does not exist, a PostgreSQL or MySQL database that does not exist.

mod support;

use std::time::{Duration, Instant};

use apscheduler_core::{ErrorKind, JobStore};
use apscheduler_store_sql::SqlJobStore;
use support::{server_url, TempDir, MYSQL_ENV, POSTGRES_ENV};

/// `url` with its database (the path after the last `/`) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

async fn assert_invalid_at_start(url: &str, needle: &str) {
    let store = SqlJobStore::builder(url)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let began = Instant::now();
    let err = store.start("default").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err}");
    assert!(err.to_string().contains(needle), "{url}: {err}");
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{url}: refused after {:?}, as if retried",
        began.elapsed()
    );
}

#[tokio::test]
async fn sqlite_file_in_a_missing_folder() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("no/such/folder/jobs.sqlite");
    assert_invalid_at_start(&url, "does not exist").await;
}

#[tokio::test]
async fn postgres_database_that_does_not_exist() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_database_that_does_not_exist") else {
        return;
    };
    assert_invalid_at_start(
        &with_database(&url, "aps_no_such_database"),
        "aps_no_such_database",
    )
    .await;
}

#[tokio::test]
async fn mysql_database_that_does_not_exist() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_database_that_does_not_exist") else {
        return;
    };
    assert_invalid_at_start(
        &with_database(&url, "aps_no_such_database"),
        "aps_no_such_database",
    )
    .await;
}

/// Once the scheduler knows its store is down, job API calls fail at once with
/// `Unavailable` instead of each waiting out the pool's time-out (PostgreSQL on a closed
/// port, 2 s acquire time-out).
#[test]
fn calls_fail_fast_while_the_store_is_known_down() {
    use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};

    if server_url(
        POSTGRES_ENV,
        "calls_fail_fast_while_the_store_is_known_down",
    )
    .is_none()
    {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = SqlJobStore::builder(format!("postgres://root@127.0.0.1:{port}/test"))
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let scheduler = BackgroundScheduler::from_builder(
        Engine::builder().jobstore("default", std::sync::Arc::new(store)),
    )
    .unwrap();
    scheduler.register_task("noop", |_| Ok(serde_json::json!(null)));
    scheduler.start(false).unwrap(); // the store is down: started, retrying
    for _ in 0..3 {
        let began = Instant::now();
        let err = scheduler
            .add_job(
                JobSpec::task("noop").trigger_args("interval", serde_json::json!({"hours": 1})),
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            began.elapsed() < Duration::from_millis(500),
            "add_job took {:?} to fail",
            began.elapsed()
        );
        let began = Instant::now();
        assert_eq!(
            scheduler.get_jobs(None).unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        assert!(began.elapsed() < Duration::from_millis(500));
    }
    scheduler.shutdown(false).unwrap();
}
