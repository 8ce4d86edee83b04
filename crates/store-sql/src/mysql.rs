//! MySQL and MariaDB: claims with `SELECT ... FOR UPDATE SKIP LOCKED` then `UPDATE` in
//! one transaction (sessions run at `READ COMMITTED`, so claims take no gap locks that
//! would hold up inserts); batches as multi-row statements.

use async_trait::async_trait;
use sqlx::mysql::{MySqlPool, MySqlRow};

use crate::codec::{EncodedJob, FetchedRow};
use crate::driver::{ClaimRequest, Driver, Result};
use crate::error::StoreError;
use crate::schema::{self, Dialect, Names};

/// Rows per multi-row statement (5 to 9 placeholders each; MySQL allows 65,535).
const CHUNK: usize = 500;

/// The statements of one job table that do not depend on a batch size, built once.
#[derive(Debug)]
struct Statements {
    update: String,
    delete: String,
    delete_all: String,
    fetch: String,
    fetch_all: String,
    fetch_corrupt: String,
    next_run_time: String,
    claim_select: String,
    mark_corrupt: String,
}

/// The columns of a fetched row. Text comes back through `CONVERT(... USING utf8mb4)`:
/// the `utf8mb4_bin` columns are flagged binary on the wire, which the driver refuses
/// to read as text.
const COLUMNS: &str = "CONVERT(id USING utf8mb4), next_run_time, \
                       CASE WHEN LENGTH(state) <= ? THEN CONVERT(state USING utf8mb4) END, \
                       CAST(LENGTH(state) AS SIGNED), format_version, CONVERT(corrupt USING utf8mb4)";

impl Statements {
    fn new(n: &Names) -> Self {
        let jobs = &n.jobs;
        Statements {
            update: format!(
                "UPDATE {jobs} SET next_run_time = ?, paused = ?, state = ?, format_version = ?, \
                 corrupt = NULL WHERE id = ?"
            ),
            delete: format!("DELETE FROM {jobs} WHERE id = ?"),
            delete_all: format!("DELETE FROM {jobs}"),
            fetch: format!("SELECT {COLUMNS} FROM {jobs} WHERE id = ?"),
            fetch_all: format!(
                "SELECT {COLUMNS} FROM {jobs} ORDER BY (next_run_time IS NULL), next_run_time, id"
            ),
            fetch_corrupt: format!(
                "SELECT CONVERT(id USING utf8mb4), CONVERT(corrupt USING utf8mb4) FROM {jobs} \
                 WHERE corrupt IS NOT NULL ORDER BY id"
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
            claim_select: format!(
                "SELECT {COLUMNS} FROM {jobs} \
                 WHERE next_run_time <= ? AND corrupt IS NULL \
                 AND (lease_expires IS NULL OR lease_expires <= ? OR lease_holder = ?) \
                 ORDER BY next_run_time, id LIMIT ? FOR UPDATE SKIP LOCKED"
            ),
            mark_corrupt: format!(
                "UPDATE {jobs} SET corrupt = ?, lease_holder = NULL, lease_expires = NULL WHERE id = ?"
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

/// The MySQL/MariaDB backend.
#[derive(Debug)]
pub(crate) struct MySqlDriver {
    pool: MySqlPool,
    names: Names,
    sql: Statements,
}

impl MySqlDriver {
    pub(crate) fn new(pool: MySqlPool, names: Names) -> Self {
        let sql = Statements::new(&names);
        MySqlDriver { pool, names, sql }
    }

    fn insert_sql(&self, rows: usize, replace: bool) -> String {
        let mut sql = format!(
            "INSERT INTO {} (id, next_run_time, paused, state, format_version) VALUES ",
            self.names.jobs
        );
        for i in 0..rows {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?, ?, ?)");
        }
        if replace {
            sql.push_str(
                " ON DUPLICATE KEY UPDATE next_run_time = VALUES(next_run_time), \
                 paused = VALUES(paused), state = VALUES(state), \
                 format_version = VALUES(format_version), corrupt = NULL",
            );
        }
        sql
    }

    async fn migrate_on(&self, conn: &mut sqlx::MySqlConnection) -> Result<()> {
        let n = &self.names;
        let ctx = |what: &str| format!("MySQL: migrating table {}: {what}", n.table);
        sqlx::query(&schema::schema_table_ddl(n))
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::sql(ctx("create the schema table"), e))?;
        sqlx::query(&format!(
            "INSERT IGNORE INTO {} (id, version) VALUES (1, 0)",
            n.schema
        ))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(ctx("initialize the schema table"), e))?;
        let current: i32 =
            sqlx::query_scalar(&format!("SELECT version FROM {} WHERE id = 1", n.schema))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| StoreError::sql(ctx("read the schema version"), e))?;
        crate::driver::check_not_too_new(n, i64::from(current))?;
        if current == 0 {
            let existing: Vec<String> = sqlx::query_scalar(
                "SELECT CONVERT(column_name USING utf8mb4) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ?",
            )
            .bind(&n.table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| StoreError::sql(ctx("inspect an existing table"), e))?;
            crate::driver::check_existing_table(n, &existing)?;
        }
        for m in schema::pending(i64::from(current)) {
            tracing::info!(target: "apscheduler", table = %n.table, "MySQL: applying schema migration {}: {}", m.version, m.description);
            // DDL commits implicitly here: the statements are written to be re-run.
            for stmt in (m.statements)(Dialect::MySql, n) {
                sqlx::query(&stmt)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| StoreError::sql(ctx(&format!("migration {}", m.version)), e))?;
            }
            sqlx::query(&format!("UPDATE {} SET version = ? WHERE id = 1", n.schema))
                .bind(i32::try_from(m.version).unwrap_or(i32::MAX))
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::sql(ctx("record the schema version"), e))?;
        }
        Ok(())
    }
}

fn read_row(r: &MySqlRow) -> std::result::Result<FetchedRow, sqlx::Error> {
    crate::driver::read_row(r)
}

#[async_trait]
impl Driver for MySqlDriver {
    async fn migrate(&self) -> Result<()> {
        let n = &self.names;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| StoreError::sql(format!("MySQL: migrating table {}", n.table), e))?;
        // DDL is not transactional here: a named lock serializes schedulers starting
        // together. It belongs to the session, so it is released if the session dies.
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 60)")
            .bind(&n.lock_name)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| StoreError::sql(format!("MySQL: migrating table {}: lock", n.table), e))?;
        if locked != Some(1) {
            return Err(StoreError::MigrationLockTimeout {
                table: n.table.clone(),
            });
        }
        let result = self.migrate_on(&mut conn).await;
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&n.lock_name)
            .execute(&mut *conn)
            .await;
        result
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        let v: Option<i32> = sqlx::query_scalar(&format!(
            "SELECT version FROM {} WHERE id = 1",
            self.names.schema
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::sql("MySQL: reading the schema version", e))?;
        Ok(v.map(i64::from))
    }

    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()> {
        let map =
            |e| StoreError::insert("MySQL: add_jobs", crate::driver::conflict_message(rows), e);
        // One statement is atomic by itself; several chunks share a transaction.
        if rows.len() <= CHUNK {
            let sql = self.insert_sql(rows.len(), replace);
            let mut q = sqlx::query(&sql).persistent(rows.len() == 1);
            for r in rows {
                q = q
                    .bind(&r.id)
                    .bind(r.next_run_time)
                    .bind(r.paused)
                    .bind(&r.state)
                    .bind(r.format_version);
            }
            q.execute(&self.pool).await.map_err(map)?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(map)?;
        for chunk in rows.chunks(CHUNK) {
            let sql = self.insert_sql(chunk.len(), replace);
            let mut q = sqlx::query(&sql).persistent(chunk.len() == CHUNK);
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
        tx.commit().await.map_err(map)?;
        Ok(())
    }

    async fn update(&self, row: &EncodedJob) -> Result<bool> {
        let done = sqlx::query(&self.sql.update)
            .bind(row.next_run_time)
            .bind(row.paused)
            .bind(&row.state)
            .bind(row.format_version)
            .bind(&row.id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("MySQL: update_job", e))?;
        // The connection reports matched rows (CLIENT_FOUND_ROWS), not changed rows.
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(&self.sql.delete)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("MySQL: remove_job", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_all(&self) -> Result<()> {
        sqlx::query(&self.sql.delete_all)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("MySQL: remove_all_jobs", e))?;
        Ok(())
    }

    async fn fetch(&self, id: &str, max_bytes: i64) -> Result<Option<FetchedRow>> {
        let row = sqlx::query(&self.sql.fetch)
            .bind(max_bytes)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::sql("MySQL: lookup_job", e))?;
        row.as_ref()
            .map(read_row)
            .transpose()
            .map_err(|e| StoreError::sql("MySQL: lookup_job", e))
    }

    async fn fetch_all(&self, max_bytes: i64) -> Result<Vec<FetchedRow>> {
        let rows = sqlx::query(&self.sql.fetch_all)
            .bind(max_bytes)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("MySQL: get_all_jobs", e))?;
        rows.iter()
            .map(read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::sql("MySQL: get_all_jobs", e))
    }

    async fn fetch_corrupt(&self) -> Result<Vec<(String, String)>> {
        sqlx::query_as(&self.sql.fetch_corrupt)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("MySQL: corrupt_jobs", e))
    }

    async fn next_run_time(&self) -> Result<(Option<i64>, Option<i64>)> {
        sqlx::query_as(&self.sql.next_run_time)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::sql("MySQL: get_next_run_time", e))
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>> {
        let map = |e| StoreError::sql("MySQL: acquire_due_jobs", e);
        let mut tx = self.pool.begin().await.map_err(map)?;
        let rows = sqlx::query(&self.sql.claim_select)
            .bind(req.max_bytes)
            .bind(req.now)
            .bind(req.now)
            .bind(req.holder)
            .bind(req.limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
        let rows: Vec<FetchedRow> = rows
            .iter()
            .map(read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(map)?;
        if rows.is_empty() {
            tx.commit().await.map_err(map)?;
            return Ok(rows);
        }
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "UPDATE {} SET lease_holder = ?, lease_expires = ? WHERE id IN ({})",
                self.names.jobs,
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql)
                .persistent(false)
                .bind(req.holder)
                .bind(req.expires);
            for r in chunk {
                q = q.bind(&r.id);
            }
            q.execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        Ok(rows)
    }

    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()> {
        let map = |e| StoreError::sql("MySQL: marking corrupt jobs", e);
        let mut tx = self.pool.begin().await.map_err(map)?;
        for (id, reason) in marks {
            sqlx::query(&self.sql.mark_corrupt)
                .bind(reason)
                .bind(id)
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
        let map = |e| StoreError::sql("MySQL: extend_leases", e);
        let mut tx = self.pool.begin().await.map_err(map)?;
        let mut held: Vec<String> = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT CONVERT(id USING utf8mb4) FROM {} WHERE id IN ({}) AND lease_holder = ? \
                 AND lease_expires > ? FOR UPDATE",
                self.names.jobs,
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar(&sql).persistent(false);
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
        for chunk in held.chunks(CHUNK) {
            let sql = format!(
                "UPDATE {} SET lease_expires = ? WHERE id IN ({})",
                self.names.jobs,
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql).persistent(false).bind(expires);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await.map_err(map)?;
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
        let map = |e| StoreError::sql("MySQL: release_jobs", e);
        let jobs = &self.names.jobs;
        let mut conn = self.pool.acquire().await.map_err(map)?;
        // One multi-row UPDATE per chunk: a join with the new values as a derived table
        // (`SELECT ? ... UNION ALL SELECT ? ...`), on the primary key.
        for chunk in updates.chunks(CHUNK) {
            let row = "SELECT CONVERT(? USING utf8mb4) COLLATE utf8mb4_bin AS id, \
                       CAST(? AS SIGNED) AS next_run_time, CAST(? AS SIGNED) AS paused, \
                       CONVERT(? USING utf8mb4) AS state, CAST(? AS SIGNED) AS format_version";
            let mut values = String::with_capacity(chunk.len() * (row.len() + 11));
            for i in 0..chunk.len() {
                if i > 0 {
                    values.push_str(" UNION ALL ");
                }
                values.push_str(row);
            }
            let sql = format!(
                "UPDATE {jobs} AS j JOIN ({values}) AS v ON j.id = v.id \
                 SET j.next_run_time = v.next_run_time, j.paused = v.paused, j.state = v.state, \
                 j.format_version = v.format_version, j.lease_holder = NULL, \
                 j.lease_expires = NULL, j.corrupt = NULL \
                 WHERE j.lease_holder = ?"
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
            q.bind(holder).execute(&mut *conn).await.map_err(map)?;
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
            q.bind(holder).execute(&mut *conn).await.map_err(map)?;
        }
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
