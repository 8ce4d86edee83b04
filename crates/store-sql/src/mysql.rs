//! MySQL and MariaDB: claims with `SELECT ... FOR UPDATE SKIP LOCKED` then `UPDATE` in
//! one transaction (sessions run at `READ COMMITTED`, so claims take no gap locks that
//! would hold up inserts); batches as multi-row statements.

use apscheduler_core::RunOutcome;
use async_trait::async_trait;
use sqlx::mysql::MySqlPool;
use sqlx::{MySql, Row as _};

use crate::backend::prelude::*;
use crate::held::Held;
use crate::runs::read_run;
use crate::shared::migrate_on;

/// The server's time in microseconds since the epoch, in UTC whatever the session's
/// time zone: leases are timed by it, so that node clock skew cannot let two nodes
/// hold one.
const NOW: &str = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))";

/// The MySQL/MariaDB backend.
#[derive(Debug)]
pub(crate) struct MySqlDriver {
    pool: MySqlPool,
    names: Names,
    parts: Parts<MySql>,
    /// Selects and locks the due rows a claim may lease.
    claim_select: String,
    /// Reads the next run time (after a release, on its connection).
    next_run_time: String,
    /// The connection of the scheduler's passes (claims and releases): no pool
    /// round trips, and their statements stay prepared.
    pass: Held<MySql>,
}

impl MySqlDriver {
    /// A driver on `pool` (of at most `max_connections`; `ping`: check connections
    /// idle for a while before use).
    pub(crate) fn new(pool: MySqlPool, names: Names, max_connections: u32, ping: bool) -> Self {
        let jobs = &names.jobs;
        let claim_select = format!(
            "SELECT {} FROM {jobs} \
             WHERE next_run_time <= ? AND corrupt IS NULL \
             AND (lease_expires IS NULL OR lease_expires <= {NOW} OR lease_holder = ?) \
             ORDER BY next_run_time, id LIMIT ? FOR UPDATE SKIP LOCKED",
            row_columns(Dialect::MySql, "", "?")
        );
        let next_run_time = crate::shared::next_run_time_sql(jobs);
        let parts =
            Parts::new(&pool, Dialect::MySql, &names).keeping_connections(max_connections, ping);
        MySqlDriver {
            pass: Held::new(&pool, max_connections, ping),
            pool,
            names,
            parts,
            claim_select,
            next_run_time,
        }
    }

    /// Selects and leases the due rows in one transaction on `conn`.
    async fn claim_on(
        &self,
        conn: &mut sqlx::MySqlConnection,
        req: ClaimRequest<'_>,
    ) -> std::result::Result<Vec<FetchedRow>, sqlx::Error> {
        let mut tx = sqlx::Connection::begin(conn).await?;
        let rows = match req.prefer {
            None => select_due(&mut tx, &self.claim_select, &req, req.limit, true).await?,
            Some(owned) => {
                // Its own partitions first (through the partition index), then, when
                // they give fewer than the limit, the earliest of the others. The
                // partitions are numbers this crate made: safe to splice.
                let list = owned
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let (own, others) = (
                    self.claim_in_partitions("IN", &list),
                    self.claim_in_partitions("NOT IN", &list),
                );
                let mut rows = select_due(&mut tx, &own, &req, req.limit, false).await?;
                let left = req.limit - i64::try_from(rows.len()).unwrap_or(req.limit);
                if left > 0 {
                    rows.extend(select_due(&mut tx, &others, &req, left, false).await?);
                }
                rows
            }
        };
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(rows);
        }
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "UPDATE {} SET lease_holder = ?, lease_expires = {NOW} + ? WHERE id IN ({})",
                self.names.jobs,
                placeholders(chunk.len())
            );
            // Prepared once per batch size on the kept connection.
            let mut q = sqlx::query(&sql).bind(req.holder).bind(req.lease);
            for r in chunk {
                q = q.bind(&r.id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// The claim's select restricted to rows whose partition is (`IN`) or is not
    /// (`NOT IN`) in `list`.
    fn claim_in_partitions(&self, op: &str, list: &str) -> String {
        format!(
            "SELECT {} FROM {} \
             WHERE claim_partition {op} ({list}) AND next_run_time <= ? AND corrupt IS NULL \
             AND (lease_expires IS NULL OR lease_expires <= {NOW} OR lease_holder = ?) \
             ORDER BY next_run_time, id LIMIT ? FOR UPDATE SKIP LOCKED",
            row_columns(Dialect::MySql, "", "?"),
            self.names.jobs
        )
    }

    fn insert_sql(&self, rows: usize, replace: bool) -> String {
        let mut sql = format!(
            "INSERT INTO {} ({WRITTEN_COLUMNS}) VALUES ",
            self.names.jobs
        );
        sql.push_str(&row_values(rows));
        if replace {
            sql.push_str(
                " ON DUPLICATE KEY UPDATE next_run_time = VALUES(next_run_time), \
                 paused = VALUES(paused), state = VALUES(state), state_bin = VALUES(state_bin), \
                 format_version = VALUES(format_version), corrupt = NULL",
            );
        }
        sql
    }
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
        let result = migrate_on::<MySql>(&mut conn, Dialect::MySql, n).await;
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&n.lock_name)
            .execute(&mut *conn)
            .await;
        result
    }

    fn parts(&self) -> &dyn SharedParts {
        &self.parts
    }

    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()> {
        let map =
            |e| StoreError::insert("MySQL: add_jobs", crate::driver::conflict_message(rows), e);
        // One statement is atomic by itself; several chunks share a transaction.
        if rows.len() <= CHUNK {
            let sql = self.insert_sql(rows.len(), replace);
            let q = sqlx::query(&sql).persistent(rows.len() == 1);
            bind_rows(q, rows).execute(&self.pool).await.map_err(map)?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(map)?;
        for chunk in rows.chunks(CHUNK) {
            let sql = self.insert_sql(chunk.len(), replace);
            let q = sqlx::query(&sql).persistent(chunk.len() == CHUNK);
            bind_rows(q, chunk).execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        Ok(())
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>> {
        let map = |e| StoreError::sql("MySQL: acquire_due_jobs", e);
        let mut held = self.pass.lock().await.map_err(map)?;
        let claimed = self.claim_on(held.conn(), req).await;
        held.done(claimed).map_err(map)
    }

    async fn close(&self) {
        // The pool waits for every connection to come back before it closes.
        self.pass.release().await;
        self.parts.close().await;
    }

    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()> {
        mark_corrupt_in(&self.pool, &self.names.jobs, marks, CHUNK)
            .await
            .map_err(|e| StoreError::sql("MySQL: marking corrupt jobs", e))
    }

    async fn release(&self, req: Release<'_>) -> Result<Vec<String>> {
        Ok(self.release_reading_next(req, &[]).await?.0)
    }

    /// The records first (their own round trip), then the release's transaction, then
    /// the next run time on the same connection: one round trip, not a pooled
    /// connection's two.
    async fn release_reading_next(
        &self,
        req: Release<'_>,
        records: &[RunWrite<'_>],
    ) -> Result<(Vec<String>, Option<NextRunTime>)> {
        if !records.is_empty() {
            self.parts.history().upsert(records).await?;
        }
        let map = |e| StoreError::sql("MySQL: release_jobs", e);
        let jobs = &self.names.jobs;
        // One multi-row UPDATE per chunk: a join with the new values as a derived table
        // (`SELECT ? ... UNION ALL SELECT ? ...`), on the primary key.
        let update = |rows: usize| {
            let row = "SELECT CONVERT(? USING utf8mb4) COLLATE utf8mb4_bin AS id, \
                       CAST(? AS SIGNED) AS next_run_time, CAST(? AS SIGNED) AS paused, \
                       CONVERT(? USING utf8mb4) AS state, CAST(? AS BINARY) AS state_bin, \
                       CAST(? AS SIGNED) AS format_version";
            format!(
                "UPDATE {jobs} AS j JOIN ({}) AS v ON j.id = v.id \
                 SET j.next_run_time = v.next_run_time, j.paused = v.paused, j.state = v.state, \
                 j.state_bin = v.state_bin, j.format_version = v.format_version, j.lease_holder = NULL, \
                 j.lease_expires = NULL, j.corrupt = NULL \
                 WHERE j.lease_holder = ?",
                vec![row; rows].join(" UNION ALL ")
            )
        };
        // The held rows are locked until commit: a claimer skips them (SKIP LOCKED).
        let held = |ids: &str| {
            format!(
                "SELECT CONVERT(id USING utf8mb4) FROM {jobs} WHERE id IN ({ids}) \
                 AND lease_holder = ? FOR UPDATE"
            )
        };
        let mut conn = self.pass.lock().await.map_err(map)?;
        let released = match sqlx::Connection::begin(conn.conn()).await {
            Ok(tx) => release_in::<MySql>(tx, (jobs, held, update), req, CHUNK).await,
            Err(e) => Err(e),
        };
        let ids = match released {
            Ok(ids) => ids,
            Err(e) => return conn.done(Err(e)).map_err(map),
        };
        if ids.is_empty() {
            return conn.done(Ok((ids, None))).map_err(map);
        }
        // The release is committed: a failure to read the next run time only leaves
        // it unknown (the scheduler asks for it), never the release unconfirmed.
        let next = sqlx::query(&self.next_run_time)
            .fetch_one(conn.conn())
            .await
            .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?)));
        match next {
            Ok(next) => conn.done(Ok((ids, Some(next)))).map_err(map),
            Err(e) => {
                let _ = conn.done::<()>(Err(e));
                Ok((ids, None))
            }
        }
    }

    async fn extend(&self, req: Extension<'_>) -> Result<Vec<String>> {
        let (holder, ids, lease) = (req.holder, req.ids, req.lease);
        let map = |e| StoreError::sql("MySQL: extend_leases", e);
        let mut tx = self.pool.begin().await.map_err(map)?;
        let jobs = &self.names.jobs;
        let statement = |ids: &str| {
            format!(
                "SELECT CONVERT(id USING utf8mb4) FROM {jobs} WHERE id IN ({ids}) \
                 AND lease_holder = ? AND lease_expires > {NOW} FOR UPDATE"
            )
        };
        let held = held_ids_on::<MySql>(&mut tx, statement, None, (holder, ids, None), CHUNK)
            .await
            .map_err(map)?;
        for chunk in held.chunks(CHUNK) {
            let sql = format!(
                "UPDATE {} SET lease_expires = {NOW} + ? WHERE id IN ({})",
                self.names.jobs,
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql).persistent(false).bind(lease);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        Ok(held)
    }
}

/// Selects and locks up to `limit` due rows with `sql` (a claim select: its parameters
/// `max_bytes`, `now`, `holder`, `limit`), in `tx`; `persistent`: a statement worth
/// preparing once (the partition lists vary).
async fn select_due(
    tx: &mut sqlx::Transaction<'_, MySql>,
    sql: &str,
    req: &ClaimRequest<'_>,
    limit: i64,
    persistent: bool,
) -> std::result::Result<Vec<FetchedRow>, sqlx::Error> {
    let rows = sqlx::query(sql)
        .persistent(persistent)
        .bind(req.max_bytes)
        .bind(req.now)
        .bind(req.holder)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(crate::driver::read_row).collect()
}

/// The run history: batches as multi-row `INSERT ... ON DUPLICATE KEY UPDATE`;
/// interruptions (no `UPDATE ... RETURNING` here) as `SELECT ... FOR UPDATE` then
/// `UPDATE` in one transaction.
#[async_trait]
impl RunsDialect for Runs<MySql> {
    async fn create(&self) -> Result<()> {
        // One `CREATE TABLE IF NOT EXISTS` with its indexes: atomic, so no lock.
        let map = self.error("create the table");
        self.create_on(&mut *self.pool.acquire().await.map_err(map)?)
            .await
    }

    async fn upsert(&self, rows: &[RunWrite<'_>]) -> Result<()> {
        self.upsert_values(rows, None).await
    }

    async fn start(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>> {
        self.start_values(rows).await
    }

    async fn latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>> {
        self.select_latest(job_ids).await
    }

    async fn interrupt(&self, node: &str, now: i64, message: &str) -> Result<Vec<RunRow>> {
        let map = self.error("interrupt_running");
        let runs = &self.names.runs;
        let mut tx = self.pool.begin().await.map_err(&map)?;
        let select = format!(
            "SELECT {} FROM {runs} WHERE outcome = '{}' AND node = ? FOR UPDATE",
            self.sql.columns,
            RunOutcome::Running.as_str()
        );
        let rows = sqlx::query(&select)
            .bind(node)
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?
            .iter()
            .map(read_run)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(&map)?;
        for chunk in rows.chunks(CHUNK) {
            let update = format!(
                "UPDATE {runs} SET outcome = '{}', finished_at = ?, message = ? \
                 WHERE run_id IN ({})",
                RunOutcome::Interrupted.as_str(),
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&update)
                .persistent(false)
                .bind(now)
                .bind(message.as_bytes());
            for r in chunk {
                q = q.bind(r.run_id.as_str());
            }
            q.execute(&mut *tx).await.map_err(&map)?;
        }
        tx.commit().await.map_err(map)?;
        Ok(rows
            .into_iter()
            .map(|r| r.interrupted(now, message))
            .collect())
    }
}
