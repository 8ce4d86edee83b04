//! The run contract's checks (`apscheduler_testkit::store::runs`) against SQLite (a
//! temporary file and memory), PostgreSQL and MySQL/MariaDB (a random table per check,
//! dropped at the end).

mod support;

use apscheduler_testkit::store::runs::run_runs;
use support::{server_url, Tables, TempDir, MYSQL_ENV, POSTGRES_ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_run_contract() {
    let dir = TempDir::new();
    let tables = Tables::new(&dir.sqlite_url("jobs.sqlite"));
    run_runs(|| async { tables.store() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_run_contract() {
    run_runs(|| async { apscheduler_store_sql::SqlJobStore::connect("sqlite::memory:").unwrap() })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_run_contract() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_run_contract") else {
        return;
    };
    let tables = Tables::new(&url);
    run_runs(|| async { tables.store() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_run_contract() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_run_contract") else {
        return;
    };
    let tables = Tables::new(&url);
    run_runs(|| async { tables.store() }).await;
}
