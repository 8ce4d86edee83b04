//! A job added inside the caller's transaction (`SqlJobStore::add_job_in`) exists if and
//! only if the transaction commits, on every backend: invisible before the commit,
//! absent after a rollback, stored and run by a running scheduler after the commit.

mod support;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ErrorKind, Job, JobStore};
use apscheduler_engine::{AsyncScheduler, Engine, JobSpec};
use apscheduler_store_sql::SqlJobStore;
use serde_json::json;
use support::{on_every_backend, Tables};

on_every_backend!(a_job_added_in_a_transaction_exists_only_if_it_commits);

/// Runs `$body` with `$conn`, a connection of a pool of the caller's own on `$url`.
macro_rules! with_connection {
    ($url:expr, |$conn:ident| $body:expr) => {
        match $url.split(':').next() {
            Some("sqlite") => {
                let pool = sqlx::SqlitePool::connect($url).await.unwrap();
                let mut $conn = pool.acquire().await.unwrap();
                $body
            }
            Some("postgres" | "postgresql") => {
                let pool = sqlx::PgPool::connect($url).await.unwrap();
                let mut $conn = pool.acquire().await.unwrap();
                $body
            }
            _ => {
                let pool = sqlx::MySqlPool::connect($url).await.unwrap();
                let mut $conn = pool.acquire().await.unwrap();
                $body
            }
        }
    };
}

/// Adds `job` in a transaction of a pool of the caller's own on `url`, checks that no
/// one sees it before the end, then commits or rolls back.
async fn add_in_transaction(url: &str, store: &SqlJobStore, job: &Job, commit: bool) {
    macro_rules! with_pool {
        ($pool:ty) => {{
            let pool = <$pool>::connect(url).await.expect("the caller's pool");
            let mut tx = pool.begin().await.unwrap();
            store.add_job_in(&mut *tx, job).await.expect("add_job_in");
            assert!(
                store.lookup_job(&job.id).await.unwrap().is_none(),
                "{} seen before its transaction ended",
                job.id
            );
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            pool.close().await;
        }};
    }
    match url.split(':').next() {
        Some("sqlite") => with_pool!(sqlx::SqlitePool),
        Some("postgres" | "postgresql") => with_pool!(sqlx::PgPool),
        _ => with_pool!(sqlx::MySqlPool),
    }
}

async fn a_job_added_in_a_transaction_exists_only_if_it_commits(tables: &Tables) {
    let store = Arc::new(tables.store());
    let scheduler = AsyncScheduler::from_builder(
        Engine::builder()
            .timezone(chrono_tz::UTC)
            .jobstore("default", store.clone()),
    )
    .unwrap();
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    scheduler.register_task("receipt", move |ctx| {
        let _ = ran_tx.send(ctx.job_id.to_string());
        Ok(json!(null))
    });
    scheduler.start(false).await.unwrap();
    let engine = scheduler.engine();
    let soon = || {
        let at = chrono::Utc::now() + chrono::Duration::milliseconds(300);
        json!({"run_date": at.to_rfc3339()})
    };
    let build = |id: &str| {
        engine
            .build_job(JobSpec::task("receipt").id(id).trigger_args("date", soon()))
            .unwrap()
    };

    let dropped = build("rolled-back");
    add_in_transaction(tables.url(), &store, &dropped, false).await;
    assert!(store.lookup_job("rolled-back").await.unwrap().is_none());

    let kept = build("committed");
    add_in_transaction(tables.url(), &store, &kept, true).await;
    let stored = store
        .lookup_job("committed")
        .await
        .unwrap()
        .expect("committed job");
    assert_eq!(stored.next_run_time, kept.next_run_time);
    // PostgreSQL's notification wakes the scheduler with the commit; the others are
    // told by the caller.
    if !tables.url().starts_with("postgres") {
        scheduler.wakeup();
    }
    let first = tokio::time::timeout(Duration::from_secs(20), ran.recv())
        .await
        .expect("the committed job ran")
        .unwrap();
    assert_eq!(first, "committed");

    // The id is taken now: adding it again (here outside a transaction) is a Conflict.
    let again = build("committed-twice");
    add_in_transaction(tables.url(), &store, &again, true).await;
    let err = with_connection!(tables.url(), |conn| store
        .add_job_in(&mut *conn, &build("committed-twice"))
        .await
        .unwrap_err());
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // A connection to another backend is refused before anything is written.
    if !tables.url().starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let err = store
            .add_job_in(&mut *conn, &build("elsewhere"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    scheduler.shutdown(true).await.unwrap();
}
