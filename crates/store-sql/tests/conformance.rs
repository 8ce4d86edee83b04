//! The job store conformance suite (`apscheduler_testkit::store::run_all`), unchanged,
//! against SQLite (a temporary file), PostgreSQL and MySQL/MariaDB (a random table per
//! check, dropped at the end).

mod support;

use support::{server_url, Tables, TempDir, MYSQL_ENV, POSTGRES_ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = TempDir::new();
    let tables = Tables::new(&dir.sqlite_url("jobs.sqlite"));
    apscheduler_testkit::store::run_all(|| async { tables.store() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_conformance() {
    apscheduler_testkit::store::run_all(|| async {
        apscheduler_store_sql::SqlJobStore::connect("sqlite::memory:").unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_conformance") else {
        return;
    };
    let tables = Tables::new(&url);
    apscheduler_testkit::store::run_all(|| async { tables.store() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_conformance() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_conformance") else {
        return;
    };
    let tables = Tables::new(&url);
    apscheduler_testkit::store::run_all(|| async { tables.store() }).await;
}
