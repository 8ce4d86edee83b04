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

/// The testkit's shared restart check: two stores on one table, the first shut down
/// before the second opens it.
async fn survives_restart(tables: &Tables) {
    let table = tables.table();
    let (first, second) = (tables.store_on(&table), tables.store_on(&table));
    apscheduler_testkit::store::check_survives_restart(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_restart() {
    let dir = TempDir::new();
    survives_restart(&Tables::new(&dir.sqlite_url("jobs.sqlite"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_restart() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_survives_restart") else {
        return;
    };
    survives_restart(&Tables::new(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_survives_restart() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_survives_restart") else {
        return;
    };
    survives_restart(&Tables::new(&url)).await;
}
