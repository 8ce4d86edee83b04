//! A run history table created before the `attempt`, `backfill` and `due_at` columns
//! (eleven columns, as the first release made it) is upgraded at prepare time, on every
//! backend: the columns are added, a row written in the old format reads as a first
//! attempt, not a backfill, with no due time, and new records keep all three fields.
//! Schedulers upgrading the same table at once all succeed.

mod support;

use std::sync::Arc;

use apscheduler_core::{JobStore, RunHistory};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::history_fields::{
    check_attempt_backfill_due_at, check_old_format_record, old_format_record,
};
use support::{server_url, Raw, Tables, TempDir, MYSQL_ENV, POSTGRES_ENV};

/// Runs `check` against SQLite (temporary file), PostgreSQL and MySQL/MariaDB.
macro_rules! on_every_backend {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = super::TempDir::new();
                let tables = super::Tables::new(&dir.sqlite_url("jobs.sqlite"));
                super::$check(&tables).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(url) = super::server_url(super::POSTGRES_ENV, concat!("postgres::", stringify!($check))) else {
                    return;
                };
                super::$check(&super::Tables::new(&url)).await;
            })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(url) = super::server_url(super::MYSQL_ENV, concat!("mysql::", stringify!($check))) else {
                    return;
                };
                super::$check(&super::Tables::new(&url)).await;
            })*
        }
    };
}

on_every_backend!(
    an_old_table_is_upgraded_at_prepare,
    schedulers_upgrading_together
);

fn history_of(store: &SqlJobStore) -> Arc<dyn RunHistory> {
    store.run_history().expect("SQL keeps history")
}

/// The run history table as the first release created it (without its indexes, which
/// prepare adds where missing).
fn old_table_ddl(raw: &Raw, runs: &str) -> String {
    match raw {
        Raw::MySql(_) => format!(
            "CREATE TABLE {runs} (\
             run_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             job_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             scheduled_at BIGINT NOT NULL, started_at BIGINT NULL, finished_at BIGINT NULL, \
             outcome VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             exit_code INTEGER NULL, http_status INTEGER NULL, output LONGBLOB NOT NULL, \
             message LONGBLOB NULL, \
             node VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             PRIMARY KEY (run_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        ),
        Raw::Postgres(_) | Raw::Sqlite(_) => {
            let (collate, bytes) = match raw {
                Raw::Postgres(_) => (" COLLATE \"C\"", "BYTEA"),
                _ => ("", "BLOB"),
            };
            format!(
                "CREATE TABLE {runs} (run_id VARCHAR(191){collate} NOT NULL PRIMARY KEY, \
                 job_id VARCHAR(191){collate} NOT NULL, scheduled_at BIGINT NOT NULL, \
                 started_at BIGINT, finished_at BIGINT, outcome VARCHAR(16) NOT NULL, \
                 exit_code INTEGER, http_status INTEGER, output {bytes} NOT NULL, \
                 message {bytes}, node VARCHAR(191){collate} NOT NULL)"
            )
        }
    }
}

/// A binary literal of `text` in `raw`'s dialect.
fn bytes_literal(raw: &Raw, text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    match raw {
        Raw::Postgres(_) => format!("decode('{hex}', 'hex')"),
        Raw::Sqlite(_) | Raw::MySql(_) => format!("X'{hex}'"),
    }
}

/// Creates the old table under the history's name and writes
/// [`old_format_record`] into it with the old eleven columns.
async fn old_table_with_a_row(raw: &Raw, store: &SqlJobStore) {
    let runs = raw.quote(store.runs_table_name());
    raw.exec(&old_table_ddl(raw, &runs)).await;
    let r = old_format_record();
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    raw.exec(&format!(
        "INSERT INTO {runs} (run_id, job_id, scheduled_at, started_at, finished_at, outcome, \
         exit_code, http_status, output, message, node) \
         VALUES ('{}', '{}', {}, {}, {}, '{}', {}, NULL, {}, {}, '{}')",
        r.run_id,
        r.job_id,
        micros(r.scheduled_at),
        micros(r.started_at.unwrap()),
        micros(r.finished_at.unwrap()),
        r.outcome,
        r.exit_code.unwrap(),
        bytes_literal(raw, &r.output),
        bytes_literal(raw, r.message.as_deref().unwrap()),
        r.node,
    ))
    .await;
}

/// Prepare adds the three columns to the old table; the old row reads with the
/// defaults; new records keep the fields; a second prepare changes nothing.
async fn an_old_table_is_upgraded_at_prepare(tables: &Tables) {
    let store = tables.store();
    let raw = Raw::connect(tables.url()).await;
    old_table_with_a_row(&raw, &store).await;
    let history = history_of(&store);
    history.prepare().await.expect("prepare upgrades the table");
    check_old_format_record(&*history).await;
    check_attempt_backfill_due_at(&*history).await;
    history.prepare().await.expect("prepare again");
    let runs = raw.quote(store.runs_table_name());
    assert_eq!(
        raw.int(&format!(
            "SELECT attempt FROM {runs} WHERE run_id = 'old-1'"
        ))
        .await,
        Some(1)
    );
    assert_eq!(
        raw.int(&format!(
            "SELECT backfill FROM {runs} WHERE run_id = 'old-1'"
        ))
        .await,
        Some(0)
    );
    raw.close().await;
    store.shutdown().await.unwrap();
}

/// Four schedulers preparing the same old table at once all succeed (MySQL/MariaDB
/// prepare without a lock: a column another one added first is not an error), and the
/// old row reads with the defaults from each.
async fn schedulers_upgrading_together(tables: &Tables) {
    let table = tables.table();
    let stores: Vec<SqlJobStore> = (0..4).map(|_| tables.store_on(&table)).collect();
    let raw = Raw::connect(tables.url()).await;
    old_table_with_a_row(&raw, &stores[0]).await;
    let histories: Vec<_> = stores.iter().map(history_of).collect();
    let results = futures_util::future::join_all(histories.iter().map(|h| h.prepare())).await;
    for (i, result) in results.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("scheduler {i} preparing: {e}"));
    }
    for history in &histories {
        check_old_format_record(&**history).await;
    }
    raw.close().await;
    for store in stores {
        store.shutdown().await.unwrap();
    }
}
