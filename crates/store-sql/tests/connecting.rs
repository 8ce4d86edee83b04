//! Building and connecting a store: table names and URLs validated (passwords never
//! shown), SQLAlchemy's relative SQLite URL, no I/O until first use, unreachable
//! servers `Unavailable`, and a new connection after `shutdown` on every backend.

mod support;

use std::time::Duration;

use apscheduler_core::{ErrorKind, JobState, JobStore};
use apscheduler_store_sql::SqlJobStore;
use support::{ids, job, on_every_backend, Tables, TempDir};

on_every_backend!(reconnects_after_shutdown);

/// After `shutdown`, the store connects again on its next use.
async fn reconnects_after_shutdown(tables: &Tables) {
    let store = tables.store();
    store.start("default").await.unwrap();
    store.add_job(job("a", 1), false).await.unwrap();
    store.shutdown().await.unwrap();
    assert!(format!("{store:?}").contains("connected: false"));
    assert_eq!(ids(&store.get_all_jobs().await.unwrap()), ["a"]);
    store.shutdown().await.unwrap();
    store.start("default").await.unwrap();
    store.remove_job("a").await.unwrap();
    store.shutdown().await.unwrap();
}

#[test]
fn table_names_are_validated() {
    for bad in [
        "",
        "1jobs",
        "jobs; DROP TABLE x",
        "my-jobs",
        "public.jobs",
        "jöbs",
        &"j".repeat(64),
    ] {
        let err = SqlJobStore::builder("sqlite::memory:")
            .table_name(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(err.message().contains("'table_name'"), "{err}");
        if !bad.is_empty() {
            assert!(err.message().contains(&bad[..1]), "{err}");
        }
    }
    for good in ["apscheduler_jobs", "_private", "Jobs2", &"j".repeat(63)] {
        let store = SqlJobStore::builder("sqlite::memory:")
            .table_name(good)
            .build()
            .unwrap();
        assert_eq!(store.table_name(), good);
    }
    assert_eq!(
        SqlJobStore::connect("sqlite::memory:")
            .unwrap()
            .table_name(),
        "apscheduler_jobs"
    );
}

#[test]
fn urls_are_validated_and_passwords_masked() {
    let err = SqlJobStore::connect("oracle://scott:tiger@db/orcl").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("'url'"), "{err}");
    assert!(!err.message().contains("tiger"), "password shown: {err}");
    let store = SqlJobStore::connect("postgres://app:s3cret@db.internal/app").unwrap();
    assert!(!format!("{store:?}").contains("s3cret"));
    assert!(SqlJobStore::connect("postgresql+psycopg2://u@h/db").is_ok());
    assert!(SqlJobStore::connect("mariadb://root@localhost/test").is_ok());
    assert!(SqlJobStore::connect("sqlite:///jobs.sqlite").is_ok());
    let err = SqlJobStore::builder("sqlite::memory:")
        .max_connections(0)
        .build()
        .unwrap_err();
    assert!(err.message().contains("'max_connections'"), "{err}");
}

/// The seeds' `sqlite:///jobs.sqlite`: a path relative to the working directory.
#[tokio::test]
async fn sqlalchemy_sqlite_url_is_relative() {
    let dir = TempDir::new();
    let old = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir.path).unwrap();
    let store = SqlJobStore::connect("sqlite:///jobs.sqlite").unwrap();
    let started = store.start("default").await;
    std::env::set_current_dir(old).unwrap();
    started.unwrap();
    store.add_job(job("a", 1), false).await.unwrap();
    store.shutdown().await.unwrap();
    assert!(dir.path.join("jobs.sqlite").exists());
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Building a store does no I/O; an unreachable server is `Unavailable` (retryable)
/// when the store is used, and a later attempt goes through once it is reachable.
#[tokio::test]
async fn unreachable_servers_are_unavailable() {
    for url in [
        format!("postgres://root@127.0.0.1:{}/test", closed_port()),
        format!("mysql://root@127.0.0.1:{}/test", closed_port()),
    ] {
        let store = SqlJobStore::builder(url.clone())
            .acquire_timeout(Duration::from_millis(300))
            .build()
            .expect("no I/O when building");
        let err = store.start("default").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{url}: {err}");
        assert!(err.is_retryable());
        assert!(
            std::error::Error::source(&err).is_some(),
            "{url}: no source"
        );
        let err = store.get_next_run_time().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
    // SQLite in a folder that does not exist is a configuration error, not an outage
    // (tests/config_errors.rs).
    // The state format the rows hold is JobState's.
    assert_eq!(JobState::VERSION, 1);
}
