//! SQLite: one writer at a time. Claims and batches run in `BEGIN IMMEDIATE`
//! transactions, which take the database's write lock up front (waiting up to the busy
//! timeout), so two claimers never see the same due row; readers are not blocked (WAL).

use async_trait::async_trait;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::codec::{EncodedJob, FetchedRow};
use crate::driver::{ClaimRequest, Driver, Result};
use crate::error::StoreError;
use crate::schema::{self, Dialect, Names};

/// Rows per multi-row statement (SQLite allows 32,766 placeholders).
const CHUNK: usize = 500;

/// How a write transaction starts: with the write lock.
const BEGIN: &str = "BEGIN IMMEDIATE";

#[derive(Debug)]
struct Statements {
    update: String,
    delete: String,
    delete_all: String,
    fetch: String,
    fetch_all: String,
    fetch_corrupt: String,
    next_run_time: String,
    claim: String,
    mark_corrupt: String,
}

const COLUMNS: &str =
    "id, next_run_time, CASE WHEN length(CAST(state AS BLOB)) <= ?1 THEN state END, \
                       length(CAST(state AS BLOB)), format_version, corrupt";

impl Statements {
    fn new(n: &Names) -> Self {
        let jobs = &n.jobs;
        Statements {
            update: format!(
                "UPDATE {jobs} SET next_run_time = ?2, paused = ?3, state = ?4, format_version = ?5, \
                 corrupt = NULL WHERE id = ?1"
            ),
            delete: format!("DELETE FROM {jobs} WHERE id = ?1"),
            delete_all: format!("DELETE FROM {jobs}"),
            fetch: format!("SELECT {COLUMNS} FROM {jobs} WHERE id = ?2"),
            fetch_all: format!(
                "SELECT {COLUMNS} FROM {jobs} ORDER BY (next_run_time IS NULL), next_run_time, id"
            ),
            fetch_corrupt: format!(
                "SELECT id, corrupt FROM {jobs} WHERE corrupt IS NOT NULL ORDER BY id"
            ),
            next_run_time: format!(
                "SELECT \
                 (SELECT next_run_time FROM {jobs} WHERE next_run_time IS NOT NULL AND corrupt IS NULL \
                  AND (lease_expires IS NULL OR lease_expires <= next_run_time) \
                  ORDER BY next_run_time LIMIT 1), \
                 (SELECT lease_expires FROM {jobs} WHERE lease_expires IS NOT NULL \
                  AND next_run_time IS NOT NULL AND corrupt IS NULL AND lease_expires > next_run_time \
                  ORDER BY lease_expires LIMIT 1)"
            ),
            claim: format!(
                "UPDATE {jobs} SET lease_holder = ?4, lease_expires = ?5 WHERE id IN (\
                 SELECT id FROM {jobs} WHERE next_run_time <= ?2 AND corrupt IS NULL \
                 AND (lease_expires IS NULL OR lease_expires <= ?2 OR lease_holder = ?4) \
                 ORDER BY next_run_time, id LIMIT ?3) \
                 RETURNING {COLUMNS}"
            ),
            mark_corrupt: format!(
                "UPDATE {jobs} SET corrupt = ?2, lease_holder = NULL, lease_expires = NULL WHERE id = ?1"
            ),
        }
    }
}

/// `?, ?, ?` (`n` placeholders).
fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

/// The SQLite backend.
#[derive(Debug)]
pub(crate) struct SqliteDriver {
    pool: SqlitePool,
    names: Names,
    sql: Statements,
}

impl SqliteDriver {
    pub(crate) fn new(pool: SqlitePool, names: Names) -> Self {
        let sql = Statements::new(&names);
        SqliteDriver { pool, names, sql }
    }
}

fn read_row(r: &SqliteRow) -> std::result::Result<FetchedRow, sqlx::Error> {
    crate::driver::read_row(r)
}

#[async_trait]
impl Driver for SqliteDriver {
    async fn migrate(&self) -> Result<()> {
        let n = &self.names;
        let ctx = |what: &str| format!("SQLite: migrating table {}: {what}", n.table);
        let mut tx = self
            .pool
            .begin_with(BEGIN)
            .await
            .map_err(|e| StoreError::sql(ctx("begin"), e))?;
        sqlx::query(&schema::schema_table_ddl(n))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::sql(ctx("create the schema table"), e))?;
        sqlx::query(&format!(
            "INSERT OR IGNORE INTO {} (id, version) VALUES (1, 0)",
            n.schema
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::sql(ctx("initialize the schema table"), e))?;
        let current: i64 =
            sqlx::query_scalar(&format!("SELECT version FROM {} WHERE id = 1", n.schema))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::sql(ctx("read the schema version"), e))?;
        crate::driver::check_not_too_new(n, current)?;
        if current == 0 {
            let existing: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)")
                    .bind(&n.table)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| StoreError::sql(ctx("inspect an existing table"), e))?;
            crate::driver::check_existing_table(n, &existing)?;
        }
        for m in schema::pending(current) {
            tracing::info!(target: "apscheduler", table = %n.table, "SQLite: applying schema migration {}: {}", m.version, m.description);
            for stmt in (m.statements)(Dialect::Sqlite, n) {
                sqlx::query(&stmt)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::sql(ctx(&format!("migration {}", m.version)), e))?;
            }
            sqlx::query(&format!(
                "UPDATE {} SET version = ?1 WHERE id = 1",
                n.schema
            ))
            .bind(i64::from(m.version))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::sql(ctx("record the schema version"), e))?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::sql(ctx("commit"), e))
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        sqlx::query_scalar(&format!(
            "SELECT version FROM {} WHERE id = 1",
            self.names.schema
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::sql("SQLite: reading the schema version", e))
    }

    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()> {
        let map =
            |e| StoreError::insert("SQLite: add_jobs", crate::driver::conflict_message(rows), e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        for chunk in rows.chunks(CHUNK) {
            let mut sql = format!(
                "INSERT INTO {} (id, next_run_time, paused, state, format_version) VALUES ",
                self.names.jobs
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str("(?, ?, ?, ?, ?)");
            }
            if replace {
                sql.push_str(
                    " ON CONFLICT (id) DO UPDATE SET next_run_time = excluded.next_run_time, \
                     paused = excluded.paused, state = excluded.state, \
                     format_version = excluded.format_version, corrupt = NULL",
                );
            }
            let mut q = sqlx::query(&sql).persistent(chunk.len() == 1 || chunk.len() == CHUNK);
            for r in chunk {
                q = q
                    .bind(&r.id)
                    .bind(r.next_run_time)
                    .bind(r.paused)
                    .bind(&r.state)
                    .bind(r.format_version);
            }
            q.execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)
    }

    async fn update(&self, row: &EncodedJob) -> Result<bool> {
        let done = sqlx::query(&self.sql.update)
            .bind(&row.id)
            .bind(row.next_run_time)
            .bind(row.paused)
            .bind(&row.state)
            .bind(row.format_version)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("SQLite: update_job", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(&self.sql.delete)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("SQLite: remove_job", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_all(&self) -> Result<()> {
        sqlx::query(&self.sql.delete_all)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("SQLite: remove_all_jobs", e))?;
        Ok(())
    }

    async fn fetch(&self, id: &str, max_bytes: i64) -> Result<Option<FetchedRow>> {
        let row = sqlx::query(&self.sql.fetch)
            .bind(max_bytes)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::sql("SQLite: lookup_job", e))?;
        row.as_ref()
            .map(read_row)
            .transpose()
            .map_err(|e| StoreError::sql("SQLite: lookup_job", e))
    }

    async fn fetch_all(&self, max_bytes: i64) -> Result<Vec<FetchedRow>> {
        let rows = sqlx::query(&self.sql.fetch_all)
            .bind(max_bytes)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("SQLite: get_all_jobs", e))?;
        rows.iter()
            .map(read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::sql("SQLite: get_all_jobs", e))
    }

    async fn fetch_corrupt(&self) -> Result<Vec<(String, String)>> {
        sqlx::query_as(&self.sql.fetch_corrupt)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("SQLite: corrupt_jobs", e))
    }

    async fn next_run_time(&self) -> Result<(Option<i64>, Option<i64>)> {
        sqlx::query_as(&self.sql.next_run_time)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::sql("SQLite: get_next_run_time", e))
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>> {
        let map = |e| StoreError::sql("SQLite: acquire_due_jobs", e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        let rows = sqlx::query(&self.sql.claim)
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
            .map(read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(map)
    }

    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()> {
        let map = |e| StoreError::sql("SQLite: marking corrupt jobs", e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        for (id, reason) in marks {
            sqlx::query(&self.sql.mark_corrupt)
                .bind(id)
                .bind(reason)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
        }
        tx.commit().await.map_err(map)
    }

    async fn extend(
        &self,
        holder: &str,
        ids: &[String],
        now: i64,
        expires: i64,
    ) -> Result<Vec<String>> {
        let map = |e| StoreError::sql("SQLite: extend_leases", e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        let mut held = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "UPDATE {} SET lease_expires = ? WHERE id IN ({}) AND lease_holder = ? \
                 AND lease_expires > ? RETURNING id",
                self.names.jobs,
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar(&sql).persistent(false).bind(expires);
            for id in chunk {
                q = q.bind(id);
            }
            let found: Vec<String> = q
                .bind(holder)
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(map)?;
            held.extend(found);
        }
        tx.commit().await.map_err(map)?;
        Ok(held)
    }

    async fn release(
        &self,
        holder: &str,
        updates: &[EncodedJob],
        removes: &[String],
    ) -> Result<()> {
        let map = |e| StoreError::sql("SQLite: release_jobs", e);
        let jobs = &self.names.jobs;
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        // One multi-row UPDATE ... FROM (VALUES ...) per chunk.
        for chunk in updates.chunks(CHUNK) {
            let mut values = String::with_capacity(chunk.len() * 18);
            for i in 0..chunk.len() {
                if i > 0 {
                    values.push_str(", ");
                }
                values.push_str("(?, ?, ?, ?, ?)");
            }
            let sql = format!(
                "UPDATE {jobs} SET next_run_time = v.column2, paused = v.column3, state = v.column4, \
                 format_version = v.column5, lease_holder = NULL, lease_expires = NULL, corrupt = NULL \
                 FROM (VALUES {values}) AS v \
                 WHERE {jobs}.id = v.column1 AND {jobs}.lease_holder = ?"
            );
            let mut q = sqlx::query(&sql).persistent(chunk.len() == CHUNK);
            for r in chunk {
                q = q
                    .bind(&r.id)
                    .bind(r.next_run_time)
                    .bind(r.paused)
                    .bind(&r.state)
                    .bind(r.format_version);
            }
            q.bind(holder).execute(&mut *tx).await.map_err(map)?;
        }
        for chunk in removes.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM {jobs} WHERE id IN ({}) AND lease_holder = ?",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for id in chunk {
                q = q.bind(id);
            }
            q.bind(holder).execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
