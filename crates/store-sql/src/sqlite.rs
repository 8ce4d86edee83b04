//! SQLite: one writer at a time. Claims and batches run in `BEGIN IMMEDIATE`
//! transactions, which take the database's write lock up front (waiting up to the busy
//! timeout), so two claimers never see the same due row; readers are not blocked (WAL).

use async_trait::async_trait;
use sqlx::sqlite::SqlitePool;
use sqlx::Sqlite;

use crate::codec::{EncodedJob, FetchedRow};
use crate::driver::{ClaimRequest, Driver, Extension, Release, Result};
use crate::error::StoreError;
use crate::runs::{HistoryOps, NodeRow, RunFilter, RunRow, RunWrite, Runs};
use crate::schema::{Dialect, Names};
use crate::shared::{
    bind_rows, held_ids_on, mark_corrupt_in, migrate_in, migration_error, release_on, row_columns,
    row_values, Rows, SharedRows, WRITTEN_COLUMNS,
};

/// Rows per multi-row statement (SQLite allows 32,766 placeholders).
const CHUNK: usize = 500;

/// How a write transaction starts: with the write lock.
const BEGIN: &str = "BEGIN IMMEDIATE";

/// The SQLite backend.
#[derive(Debug)]
pub(crate) struct SqliteDriver {
    pool: SqlitePool,
    names: Names,
    rows: Rows<Sqlite>,
    history: Runs<Sqlite>,
    /// Leases due rows to a holder and returns them, in one statement.
    claim: String,
}

impl SqliteDriver {
    pub(crate) fn new(pool: SqlitePool, names: Names) -> Self {
        // Leases the due rows and returns them in one statement (SQLite 3.35+).
        let claim = format!(
            "UPDATE {jobs} SET lease_holder = ?4, lease_expires = ?5 WHERE id IN (\
             SELECT id FROM {jobs} WHERE next_run_time <= ?2 AND corrupt IS NULL \
             AND (lease_expires IS NULL OR lease_expires <= ?2 OR lease_holder = ?4) \
             ORDER BY next_run_time, id LIMIT ?3) \
             RETURNING {columns}",
            jobs = names.jobs,
            columns = row_columns(Dialect::Sqlite, "", "?1")
        );
        SqliteDriver {
            rows: Rows::new(pool.clone(), Dialect::Sqlite, &names),
            history: Runs::new(pool.clone(), Dialect::Sqlite, &names),
            claim,
            pool,
            names,
        }
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), primary codes.
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

#[async_trait]
impl Driver for SqliteDriver {
    async fn migrate(&self) -> Result<()> {
        // Several processes opening a new database at once: SQLite answers BUSY at once,
        // without waiting out the busy timeout, while another connection switches the file
        // to WAL or recovers it; those moments are short, so try again.
        let mut attempt = 0;
        let tx = loop {
            match self.pool.begin_with(BEGIN).await {
                Err(e) if attempt < 50 && is_busy(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => {
                    break other
                        .map_err(|e| migration_error(Dialect::Sqlite, &self.names, "begin", e))?
                }
            }
        };
        migrate_in(tx, Dialect::Sqlite, &self.names).await
    }

    fn rows(&self) -> &dyn SharedRows {
        &self.rows
    }

    fn history(&self) -> &dyn HistoryOps {
        &self.history
    }

    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()> {
        let map =
            |e| StoreError::insert("SQLite: add_jobs", crate::driver::conflict_message(rows), e);
        let statement = |rows: usize| {
            let mut sql = format!(
                "INSERT INTO {} ({WRITTEN_COLUMNS}) VALUES {}",
                self.names.jobs,
                row_values(rows)
            );
            if replace {
                sql.push_str(
                    " ON CONFLICT (id) DO UPDATE SET next_run_time = excluded.next_run_time, \
                     paused = excluded.paused, state = excluded.state, state_bin = excluded.state_bin, \
                     format_version = excluded.format_version, corrupt = NULL",
                );
            }
            sql
        };
        // One statement is atomic by itself (one round trip to the connection's
        // thread instead of three); several chunks share a write transaction.
        if rows.len() <= CHUNK {
            let sql = statement(rows.len());
            let q = sqlx::query(&sql).persistent(rows.len() == 1);
            bind_rows(q, rows).execute(&self.pool).await.map_err(map)?;
            return Ok(());
        }
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        for chunk in rows.chunks(CHUNK) {
            let sql = statement(chunk.len());
            let q = sqlx::query(&sql).persistent(chunk.len() == CHUNK);
            bind_rows(q, chunk).execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>> {
        let map = |e| StoreError::sql("SQLite: acquire_due_jobs", e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        let rows = sqlx::query(&self.claim)
            .bind(req.max_bytes)
            .bind(req.now)
            .bind(req.limit)
            .bind(req.holder)
            .bind(req.expires)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        rows.iter()
            .map(crate::driver::read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(map)
    }

    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()> {
        mark_corrupt_in(&self.pool, &self.names.jobs, marks, CHUNK)
            .await
            .map_err(|e| StoreError::sql("SQLite: marking corrupt jobs", e))
    }

    async fn extend(&self, req: Extension<'_>) -> Result<Vec<String>> {
        let (holder, ids, now, expires) = (req.holder, req.ids, req.now, req.expires);
        let map = |e| StoreError::sql("SQLite: extend_leases", e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        let jobs = &self.names.jobs;
        let statement = |ids: &str| {
            format!(
                "UPDATE {jobs} SET lease_expires = ? WHERE id IN ({ids}) AND lease_holder = ? \
                 AND lease_expires > ? RETURNING id"
            )
        };
        let held =
            held_ids_on::<Sqlite>(&mut tx, statement, Some(expires), (holder, ids, now), CHUNK)
                .await
                .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(held)
    }

    async fn release(&self, req: Release<'_>) -> Result<Vec<String>> {
        let map = |e| StoreError::sql("SQLite: release_jobs", e);
        let jobs = &self.names.jobs;
        // One multi-row UPDATE ... FROM (VALUES ...) per chunk.
        let update = |rows: usize| {
            format!(
                "UPDATE {jobs} SET next_run_time = v.column2, paused = v.column3, state = v.column4, \
                 state_bin = v.column5, format_version = v.column6, \
                 lease_holder = NULL, lease_expires = NULL, corrupt = NULL \
                 FROM (VALUES {}) AS v \
                 WHERE {jobs}.id = v.column1 AND {jobs}.lease_holder = ?",
                row_values(rows)
            )
        };
        // `BEGIN IMMEDIATE` holds the write lock: the held rows stay held until commit.
        let held =
            |ids: &str| format!("SELECT id FROM {jobs} WHERE id IN ({ids}) AND lease_holder = ?");
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        let lists = (req.holder, req.updates, req.removes);
        let released = release_on::<Sqlite>(&mut tx, (jobs, held, update), lists, CHUNK)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(released)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The run history: writes in `BEGIN IMMEDIATE` transactions (one writer at a time),
/// interruptions in one `UPDATE ... RETURNING`.
#[async_trait]
impl HistoryOps for Runs<Sqlite> {
    fn is_ready(&self) -> bool {
        self.ready()
    }

    async fn create(&self) -> Result<()> {
        let mut tx = self
            .pool
            .begin_with(BEGIN)
            .await
            .map_err(self.error("create the table"))?;
        self.create_on(&mut tx).await?;
        tx.commit().await.map_err(self.error("create the table"))?;
        self.set_ready();
        Ok(())
    }

    async fn upsert(&self, rows: &[RunWrite<'_>]) -> Result<()> {
        self.upsert_values(rows, Some(BEGIN)).await
    }

    async fn query(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRow>> {
        self.select(filter).await
    }

    async fn latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>> {
        // A JSON array of the ids: one statement, however many jobs.
        let list = serde_json::to_string(job_ids).unwrap_or_default();
        self.select_latest_of_list(sqlx::query(&self.sql.latest_of_list).bind(list))
            .await
    }

    async fn prune_job(&self, job_id: &str, keep: i64) -> Result<u64> {
        self.delete_beyond(job_id, keep).await
    }

    async fn prune_before(&self, before: i64) -> Result<u64> {
        self.delete_before(before).await
    }

    async fn interrupt(&self, node: &str, now: i64, message: &str) -> Result<Vec<RunRow>> {
        self.interrupt_returning(node, now, message).await
    }
    async fn heartbeat(&self, row: &NodeRow) -> Result<()> {
        self.upsert_node(row).await
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>> {
        self.select_nodes().await
    }

    async fn remove_node(&self, node: &str) -> Result<bool> {
        self.delete_node(node).await
    }
}
