//! A claim on PostgreSQL and MySQL/MariaDB skips the rows another transaction holds
//! locked (`FOR UPDATE SKIP LOCKED`): while a session holds a due job's row, a claim
//! returns the other due jobs at once rather than waiting for that session's commit
//! (which, for a claimer in the middle of its own pass, could be seconds away).

mod support;

use std::time::{Duration, Instant};

use apscheduler_core::JobStore;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use support::{server_url, Tables, MYSQL_ENV, POSTGRES_ENV};

/// How long the claim may take. A claim that skips the locked row answers in
/// milliseconds (seconds on a loaded machine); one that waits for it waits for ever
/// (PostgreSQL) or for `innodb_lock_wait_timeout`, 50 s by default (MariaDB).
const CLAIM_LIMIT: Duration = Duration::from_secs(10);

/// Jobs `a`, `b`, `c` due; another session locks `a`'s row in an open transaction;
/// a claim then returns `b` and `c` within [`CLAIM_LIMIT`], and `a` once the lock is
/// gone.
async fn a_claim_skips_a_row_another_transaction_holds(tables: &Tables, lock_a: &str) {
    let table = tables.table();
    let store = tables.store_on(&table);
    store.start("default").await.unwrap();
    for (id, t) in [("a", 1), ("b", 2), ("c", 3)] {
        store
            .add_job(sample_job(id, Some(at(t)), interval_trigger(60)), false)
            .await
            .unwrap();
    }
    let lock = lock_a.replace("{table}", &table);
    let holder = Holder::lock(tables.url(), &lock).await;

    let started = Instant::now();
    let claimed = tokio::time::timeout(
        CLAIM_LIMIT,
        store.acquire_due_jobs("s1", utc(10), 10, LEASE),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the claim waited over {CLAIM_LIMIT:?} for the row another transaction holds: \
             it does not skip locked rows"
        )
    })
    .unwrap();
    let ids: Vec<&str> = claimed.jobs.iter().map(|j| &*j.id).collect();
    assert_eq!(ids, ["b", "c"], "the claim returns the unlocked due jobs");
    eprintln!(
        "claim beside a locked row answered in {:?}",
        started.elapsed()
    );

    // Once the other transaction ends, `a` is claimable again (by another scheduler:
    // `b` and `c` stay leased to the first).
    holder.release().await;
    let claimed = store
        .acquire_due_jobs("s2", utc(10), 10, LEASE)
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.jobs.iter().map(|j| &*j.id).collect();
    assert_eq!(ids, ["a"]);
    store.shutdown().await.unwrap();
}

/// A transaction of another session that holds a row lock until released.
enum Holder {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
}

impl Holder {
    /// Begins a transaction on a connection of its own and runs `sql` (a `SELECT ...
    /// FOR UPDATE`) in it; checks it locked one row.
    async fn lock(url: &str, sql: &str) -> Holder {
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPool::connect(url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut *tx).await.unwrap();
            assert_eq!(rows.len(), 1, "{sql}");
            Holder::Postgres(tx)
        } else {
            let pool = sqlx::mysql::MySqlPool::connect(url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut *tx).await.unwrap();
            assert_eq!(rows.len(), 1, "{sql}");
            Holder::MySql(tx)
        }
    }

    async fn release(self) {
        match self {
            Holder::Postgres(tx) => tx.rollback().await.unwrap(),
            Holder::MySql(tx) => tx.rollback().await.unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_skip_locked_rows() {
    let Some(url) = server_url(POSTGRES_ENV, "postgres_claims_skip_locked_rows") else {
        return;
    };
    a_claim_skips_a_row_another_transaction_holds(
        &Tables::new(&url),
        "SELECT id FROM \"{table}\" WHERE id = 'a' FOR UPDATE",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_claims_skip_locked_rows() {
    let Some(url) = server_url(MYSQL_ENV, "mysql_claims_skip_locked_rows") else {
        return;
    };
    a_claim_skips_a_row_another_transaction_holds(
        &Tables::new(&url),
        "SELECT id FROM `{table}` WHERE id = 'a' FOR UPDATE",
    )
    .await;
}
