//! MySQL and MariaDB: a pass's claim and release are each one script (several
//! statements sent as one text query, see [`crate::mysql_script`]), one round trip.
//! A claim leases the rows a `SELECT ... FOR UPDATE SKIP LOCKED` locks, in one
//! transaction (sessions run at `READ COMMITTED`, so claims take no gap locks that
//! would hold up inserts); other batches are multi-row statements.

use apscheduler_core::RunOutcome;
use async_trait::async_trait;
use sqlx::mysql::MySqlPool;
use sqlx::{MySql, Row as _};

use crate::backend::prelude::*;
use crate::held::Held;
use crate::mysql_script::{self as script, Script};
use crate::runs::read_run;
use crate::runs_sql::RunStatements;
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
    /// The run history's statements (its upsert goes into a release's script).
    runs: RunStatements,
    /// Reads the next run time (after a release, on its connection).
    next_run_time: String,
    /// The connection of the scheduler's passes (claims and releases): no pool
    /// round trips.
    pass: Held<MySql>,
}

impl MySqlDriver {
    /// A driver on `pool` (of at most `max_connections`; `ping`: check connections
    /// idle for a while before use).
    pub(crate) fn new(pool: MySqlPool, names: Names, max_connections: u32, ping: bool) -> Self {
        let next_run_time = crate::shared::next_run_time_sql(&names.jobs);
        let parts =
            Parts::new(&pool, Dialect::MySql, &names).keeping_connections(max_connections, ping);
        MySqlDriver {
            pass: Held::new(&pool, max_connections, ping),
            runs: RunStatements::new(Dialect::MySql, &names),
            pool,
            names,
            parts,
            next_run_time,
        }
    }

    /// The claim's script and the index of its statement that returns the claimed
    /// rows.
    ///
    /// The due rows are selected and locked (`FOR UPDATE SKIP LOCKED`, in a derived
    /// table) and leased in one `UPDATE`, until `@aps_lease_end`; the rows leased to the
    /// holder until that instant are then read. Only a row the holder already held with
    /// that very lease end could come back besides them: a row the claim may hand it
    /// anyway (its own lease). The derived table is read first (`STRAIGHT_JOIN`) and
    /// the job rows through their primary key (`FORCE INDEX`): a scan of the job table
    /// would wait for the rows other claimers lock.
    fn claim_script(&self, req: &ClaimRequest<'_>) -> (Script, usize) {
        let jobs = &self.names.jobs;
        let holder = script::text(req.holder);
        let now = req.now;
        let due = |partitions: &str, limit: &str| {
            format!(
                "SELECT id FROM {jobs} \
                 WHERE {partitions}next_run_time <= {now} AND corrupt IS NULL \
                 AND (lease_expires IS NULL OR lease_expires <= {NOW} OR lease_holder = {holder}) \
                 ORDER BY next_run_time, id LIMIT {limit} FOR UPDATE SKIP LOCKED"
            )
        };
        let lease = |due: &str| {
            format!(
                "UPDATE ({due}) AS due STRAIGHT_JOIN {jobs} AS j FORCE INDEX (PRIMARY) \
                 ON j.id = due.id SET j.lease_holder = {holder}, j.lease_expires = @aps_lease_end"
            )
        };
        let limit = req.limit.to_string();
        let mut s = Script::default();
        s.push("BEGIN");
        s.push(format!("SET @aps_lease_end = {NOW} + {}", req.lease));
        match req.prefer {
            Some(owned) if !owned.is_empty() => {
                // Its own partitions first (through the partition index), then, when
                // they give fewer than the limit, the earliest of the others. The
                // partitions are numbers this crate made.
                let list = owned
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                s.push(lease(&due(
                    &format!("claim_partition IN ({list}) AND "),
                    &limit,
                )));
                // The others' limit is what is left, known on the server only: a
                // statement prepared there, its limit a parameter.
                s.push(format!(
                    "SET @aps_left = GREATEST({limit} - ROW_COUNT(), 0)"
                ));
                let others = lease(&due(&format!("claim_partition NOT IN ({list}) AND "), "?"));
                s.push(format!("SET @aps_others = {}", script::text(&others)));
                s.push("PREPARE aps_claim_others FROM @aps_others");
                s.push("EXECUTE aps_claim_others USING @aps_left");
                s.push("DEALLOCATE PREPARE aps_claim_others");
            }
            _ => {
                s.push(lease(&due("", &limit)));
            }
        }
        let rows = s.push(format!(
            "SELECT {} FROM {jobs} WHERE lease_expires = @aps_lease_end \
             AND lease_holder = {holder} AND next_run_time <= {now} AND corrupt IS NULL",
            row_columns(Dialect::MySql, "", &req.max_bytes.to_string())
        ));
        s.push("COMMIT");
        (s, rows)
    }

    /// A release too large for one script: the records first, then the release's
    /// transaction (prepared statements, the values bound), then the next run time on
    /// the same connection.
    async fn release_prepared(
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
        let (script, rows) = self.claim_script(&req);
        let mut held = self.pass.lock().await.map_err(map)?;
        let mut ran = script.run(held.conn()).await;
        let claimed = match ran.take_error() {
            Some(e) => Err(e),
            None => ran.rows(rows).iter().map(crate::driver::read_row).collect(),
        };
        held.done_closing(claimed).map_err(map)
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

    /// One script: in one transaction the `running` records, the held rows (selected
    /// and locked), their new states and the deletions; then the next run time. A
    /// release whose values exceed [`SCRIPT_BYTES`](script::SCRIPT_BYTES) takes the
    /// prepared statements instead (see [`MySqlDriver::release_prepared`]).
    async fn release_reading_next(
        &self,
        req: Release<'_>,
        records: &[RunWrite<'_>],
    ) -> Result<(Vec<String>, Option<NextRunTime>)> {
        let map = |e| StoreError::sql("MySQL: release_jobs", e);
        let Some((script, at)) = script::release(
            &self.names.jobs,
            &self.runs,
            &self.next_run_time,
            &req,
            records,
        ) else {
            return self.release_prepared(req, records).await;
        };
        let mut conn = self.pass.lock().await.map_err(map)?;
        let mut ran = script.run(conn.conn()).await;
        if !ran.completed(at.commit) {
            let e = ran.take_error().unwrap_or_else(|| {
                sqlx::Error::Protocol("the release's script stopped before its commit".into())
            });
            return conn.done_closing(Err(e)).map_err(map);
        }
        let ids = at
            .held
            .iter()
            .flat_map(|&i| ran.rows(i))
            .map(|row| row.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>();
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => return conn.done_closing(Err(e)).map_err(map),
        };
        // The release is committed: a failure to read the next run time only leaves
        // it unknown (the scheduler asks for it), never the release unconfirmed.
        if let Some(e) = ran.take_error() {
            let _ = conn.done_closing::<()>(Err(e));
            return Ok((ids, None));
        }
        let next = match ran.rows(at.next).first() {
            Some(row) if !ids.is_empty() => match (row.try_get(0), row.try_get(1)) {
                (Ok(due), Ok(leased)) => Some((due, leased)),
                _ => None,
            },
            _ => None,
        };
        conn.done(Ok((ids, next))).map_err(map)
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

/// The run history: batches as multi-row `INSERT ... ON DUPLICATE KEY UPDATE` (up to
/// [`SCRIPT_BYTES`](script::SCRIPT_BYTES) of values as one text statement, one round
/// trip; larger ones prepared, the values bound); interruptions (no `UPDATE ... RETURNING` here) as `SELECT ... FOR UPDATE` then
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
        if rows.is_empty() {
            return Ok(());
        }
        if rows.len() > crate::runs::CHUNK_ROWS || script::record_bytes(rows) > script::SCRIPT_BYTES
        {
            return self.upsert_values(rows, None).await;
        }
        // A prepared statement of a varying number of rows costs a round trip to
        // prepare it: the text statement does not.
        let map = self.error("record_runs");
        let sql = script::records_upsert(&self.sql, rows);
        match &self.kept {
            Some(kept) => {
                let mut held = kept.writes.lock().await.map_err(&map)?;
                let done = execute_text(held.conn(), &sql).await;
                held.done(done).map_err(map)
            }
            None => {
                let mut conn = self.pool.acquire().await.map_err(&map)?;
                execute_text(&mut conn, &sql).await.map_err(map)
            }
        }
    }

    /// One script (the upsert and the read of the rows), one round trip, on the
    /// history writer's kept connection; the two statements of
    /// [`start_values`](Runs::start_values) otherwise.
    async fn start(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>> {
        let (Some(kept), Some(script)) = (
            &self.kept,
            script::starts(&self.sql, &self.names.runs, rows),
        ) else {
            return self.start_values(rows).await;
        };
        let map = self.error("record_starts");
        let mut held = kept.writes.lock().await.map_err(&map)?;
        let mut ran = script.run(held.conn()).await;
        let result = ran.take_error().map_or(Ok(()), Err);
        held.done_closing(result).map_err(&map)?;
        let found = ran
            .rows(1)
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(map)?;
        Ok(crate::run_starts::accepted_starts(rows, found))
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

/// Runs one text statement on `conn`.
async fn execute_text(conn: &mut sqlx::MySqlConnection, sql: &str) -> sqlx::Result<()> {
    // The executor's boxed future: `RawSql::execute`'s own is not `Send` for every
    // lifetime, as an `async_trait` method needs.
    sqlx::Executor::execute(conn, sqlx::raw_sql(sql))
        .await
        .map(drop)
}
