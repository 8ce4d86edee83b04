//! PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` and `UPDATE ... RETURNING` in one
//! statement; batches as arrays (`UNNEST`), so every operation is one round trip. A
//! release notifies the other schedulers in the same statement (`pg_notify` in an
//! uncorrelated subquery: evaluated once, and only when a row was released).

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row as _};

use crate::backend::prelude::*;
use crate::held::Held;
use crate::runs::chunks;
use crate::schema;

/// The statements of one job table, built once.
#[derive(Debug)]
struct Statements {
    insert: String,
    upsert: String,
    claim: String,
    /// A claim that takes the due rows of some partitions (`$6`) first.
    claim_preferring: String,
    mark_corrupt: String,
    extend: String,
    release: String,
    /// The release, with the run history's records written in the same statement.
    release_recorded: String,
    /// Records a wait for a release (`$1` token, `$2` until), dropping waits an hour
    /// over (the rows of stores that are gone).
    wait_for_release: String,
}

/// The server's time in microseconds since the epoch, constant within a statement:
/// leases are timed by it, so that node clock skew cannot let two nodes hold one.
const NOW: &str = "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000)::BIGINT";

/// The release: new states written and rows deleted where `$7` holds the lease, the
/// other schedulers notified (`$9` channel, `$10` payload) once if any row was released
/// and some scheduler waits for a release (a row of `waiters` not yet over),
/// and the next run time after it read in the same statement (as
/// [`SharedRows::next_run_time`](crate::shared::SharedRows::next_run_time) would: the
/// statement's snapshot predates its own writes, so the released rows count with their
/// new next run times and the others as read). One row per released id. `recorded`
/// (empty, or a `name AS (...), ` common table expression) is written with it.
fn release_statement(jobs: &str, waiters: &str, recorded: &str) -> String {
    let others = "id NOT IN (SELECT id FROM released) AND next_run_time IS NOT NULL \
                  AND corrupt IS NULL";
    format!(
        "WITH {recorded}updated AS (\
         UPDATE {jobs} AS j SET next_run_time = v.next_run_time, paused = v.paused, \
         state = v.state, state_bin = v.state_bin, format_version = v.format_version, \
         lease_holder = NULL, lease_expires = NULL, corrupt = NULL \
         FROM UNNEST($1::VARCHAR[], $2::BIGINT[], $3::BOOLEAN[], $4::TEXT[], \
         $5::BYTEA[], $6::INTEGER[]) \
         AS v(id, next_run_time, paused, state, state_bin, format_version) \
         WHERE j.id = v.id AND j.lease_holder = $7 RETURNING j.id, j.next_run_time), \
         removed AS (\
         DELETE FROM {jobs} WHERE id = ANY($8::VARCHAR[]) \
         AND lease_holder = $7 RETURNING id), \
         released AS (SELECT id FROM updated UNION ALL SELECT id FROM removed) \
         SELECT r.id, (SELECT pg_notify($9, $10) FROM {waiters} \
         WHERE until > {NOW} LIMIT 1) IS NULL, \
         LEAST((SELECT min(next_run_time) FROM updated), \
         (SELECT next_run_time FROM {jobs} WHERE {others} \
         AND (lease_expires IS NULL OR lease_expires <= next_run_time) \
         ORDER BY next_run_time LIMIT 1)), \
         (SELECT lease_expires FROM {jobs} WHERE {others} \
         AND lease_expires IS NOT NULL AND lease_expires > next_run_time \
         ORDER BY lease_expires LIMIT 1) \
         FROM released AS r"
    )
}

impl Statements {
    fn new(n: &Names) -> Self {
        let jobs = &n.jobs;
        let runs = crate::runs_sql::RunStatements::new(Dialect::Postgres, n);
        let insert = insert_sql(jobs);
        let claimable = format!(
            "next_run_time <= $2 AND corrupt IS NULL \
             AND (lease_expires IS NULL OR lease_expires <= {NOW} OR lease_holder = $4)"
        );
        let lease_due = |due: &str| {
            format!(
                "UPDATE {jobs} AS j SET lease_holder = $4, lease_expires = {NOW} + $5 FROM {due} \
                 WHERE j.id = {due}.id \
                 RETURNING {}",
                row_columns(Dialect::Postgres, "j.", "$1")
            )
        };
        let waiters = &n.waiters;
        Statements {
            wait_for_release: format!(
                "WITH gone AS (DELETE FROM {waiters} WHERE until < {NOW} - 3600000000 \
                 AND token <> $1) \
                 INSERT INTO {waiters} (token, until) VALUES ($1, $2) \
                 ON CONFLICT (token) DO UPDATE SET until = EXCLUDED.until"
            ),
            upsert: format!(
                "{insert} ON CONFLICT (id) DO UPDATE SET next_run_time = EXCLUDED.next_run_time, \
                 paused = EXCLUDED.paused, state = EXCLUDED.state, state_bin = EXCLUDED.state_bin, \
                 format_version = EXCLUDED.format_version, corrupt = NULL"
            ),
            insert,
            claim: format!(
                "WITH due AS (\
                 SELECT id FROM {jobs} WHERE {claimable} \
                 ORDER BY next_run_time, id LIMIT $3 FOR UPDATE SKIP LOCKED) {}",
                lease_due("due")
            ),
            // Its own partitions through the partition index, then the earliest of the
            // others (not its own: rows of its own it skipped are locked elsewhere) up
            // to the limit; a steal of nothing reads nothing (`LIMIT 0`).
            claim_preferring: format!(
                "WITH own AS (\
                 SELECT id FROM {jobs} WHERE claim_partition = ANY($6::INTEGER[]) AND {claimable} \
                 ORDER BY next_run_time, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
                 stolen AS (\
                 SELECT id FROM {jobs} WHERE NOT (claim_partition = ANY($6::INTEGER[])) \
                 AND {claimable} ORDER BY next_run_time, id \
                 LIMIT GREATEST($3 - (SELECT count(*) FROM own), 0) FOR UPDATE SKIP LOCKED), \
                 due AS (SELECT id FROM own UNION ALL SELECT id FROM stolen) {}",
                lease_due("due")
            ),
            mark_corrupt: format!(
                "UPDATE {jobs} AS j SET corrupt = v.reason, lease_holder = NULL, lease_expires = NULL \
                 FROM UNNEST($1::VARCHAR[], $2::TEXT[]) AS v(id, reason) WHERE j.id = v.id"
            ),
            extend: format!(
                "UPDATE {jobs} SET lease_expires = {NOW} + $3 \
                 WHERE id = ANY($1::VARCHAR[]) AND lease_holder = $2 AND lease_expires > {NOW} \
                 RETURNING id"
            ),
            release: release_statement(jobs, waiters, ""),
            release_recorded: release_statement(
                jobs,
                waiters,
                &format!(
                    "recorded AS ({} SELECT * FROM UNNEST($11::VARCHAR[], $12::VARCHAR[], \
                     $13::BIGINT[], $14::BIGINT[], $15::BIGINT[], $16::VARCHAR[], $17::INTEGER[], \
                     $18::INTEGER[], $19::BYTEA[], $20::BYTEA[], $21::VARCHAR[], $22::BIGINT[], \
                     $23::INTEGER[], $24::BIGINT[]){}), ",
                    runs.insert_head, runs.upsert_tail
                ),
            ),
        }
    }
}

/// The PostgreSQL backend.
#[derive(Debug)]
pub(crate) struct PgDriver {
    pool: PgPool,
    names: Names,
    parts: Parts<Postgres>,
    sql: Statements,
    /// The connection of the scheduler's passes: claims and releases, one round trip
    /// each.
    pass: Held<Postgres>,
}

impl PgDriver {
    /// A driver on `pool` (of at most `max_connections`; `ping`: check connections
    /// idle for a while before use).
    pub(crate) fn new(pool: PgPool, names: Names, max_connections: u32, ping: bool) -> Self {
        let sql = Statements::new(&names);
        let parts =
            Parts::new(&pool, Dialect::Postgres, &names).keeping_connections(max_connections, ping);
        PgDriver {
            pass: Held::new(&pool, max_connections, ping),
            pool,
            names,
            parts,
            sql,
        }
    }
}

/// The insert of a batch of rows into `jobs`, their columns as the arrays `$1` to `$6`
/// ([`Columns`]); each row gets its claim partition from its id (an upsert keeps it:
/// same id).
pub(crate) fn insert_sql(jobs: &str) -> String {
    format!(
        "INSERT INTO {jobs} ({WRITTEN_COLUMNS}, claim_partition) \
         SELECT v.*, {} FROM UNNEST($1::VARCHAR[], $2::BIGINT[], $3::BOOLEAN[], $4::TEXT[], \
         $5::BYTEA[], $6::INTEGER[]) AS v(id, next_run_time, paused, state, state_bin, \
         format_version)",
        schema::partition_of(Dialect::Postgres, "v.id")
    )
}

/// Binds a batch's columns to [`insert_sql`].
pub(crate) fn bind_insert<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    rows: &[EncodedJob],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let c = Columns::of(rows);
    query
        .bind(c.ids)
        .bind(c.next_run_times)
        .bind(c.paused)
        .bind(c.states)
        .bind(c.state_bins)
        .bind(c.versions)
}

/// The columns of a batch, as arrays.
struct Columns {
    ids: Vec<String>,
    next_run_times: Vec<Option<i64>>,
    paused: Vec<bool>,
    states: Vec<String>,
    state_bins: Vec<Option<Vec<u8>>>,
    versions: Vec<i32>,
}

impl Columns {
    fn of(rows: &[EncodedJob]) -> Self {
        Columns {
            ids: rows.iter().map(|r| r.id.clone()).collect(),
            next_run_times: rows.iter().map(|r| r.next_run_time).collect(),
            paused: rows.iter().map(|r| r.paused).collect(),
            states: rows.iter().map(|r| r.state.clone()).collect(),
            state_bins: rows.iter().map(|r| r.state_bin.clone()).collect(),
            versions: rows.iter().map(|r| r.format_version).collect(),
        }
    }
}

/// Keeps the server's notices about `CREATE ... IF NOT EXISTS` ("relation ... already
/// exists, skipping") to itself for the rest of `tx`: every start runs such statements
/// on tables that exist, and sqlx logs each notice at INFO. Only for the transaction
/// (a setting of the connection would outlive it in the pool, and PgBouncer refuses a
/// startup `options` parameter unless told to ignore it).
async fn quiet_notices(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> sqlx::Result<()> {
    sqlx::query("SET LOCAL client_min_messages = warning")
        .execute(&mut **tx)
        .await
        .map(drop)
}

#[async_trait]
impl Driver for PgDriver {
    async fn migrate(&self) -> Result<()> {
        let n = &self.names;
        let error = |what| move |e| migration_error(Dialect::Postgres, n, what, e);
        let mut tx = self.pool.begin().await.map_err(error("begin"))?;
        // Serializes schedulers starting together; released at commit or rollback.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(n.lock_key)
            .execute(&mut *tx)
            .await
            .map_err(error("lock"))?;
        quiet_notices(&mut tx)
            .await
            .map_err(error("set client_min_messages"))?;
        migrate_in(tx, Dialect::Postgres, n).await
    }

    fn parts(&self) -> &dyn SharedParts {
        &self.parts
    }

    async fn close(&self) {
        // The pool waits for every connection to come back before it closes.
        self.pass.release().await;
        self.parts.close().await;
    }

    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()> {
        let sql = if replace {
            &self.sql.upsert
        } else {
            &self.sql.insert
        };
        bind_insert(sqlx::query(sql), rows)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                StoreError::insert(
                    "PostgreSQL: add_jobs",
                    crate::driver::conflict_message(rows),
                    e,
                )
            })?;
        Ok(())
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>> {
        let map = |e| StoreError::sql("PostgreSQL: acquire_due_jobs", e);
        let query = match req.prefer {
            Some(owned) => {
                let owned: Vec<i32> = owned
                    .iter()
                    .map(|&p| i32::try_from(p).unwrap_or(i32::MAX))
                    .collect();
                req.bind_numbered(sqlx::query(&self.sql.claim_preferring), req.lease)
                    .bind(owned)
            }
            None => req.bind_numbered(sqlx::query(&self.sql.claim), req.lease),
        };
        let mut held = self.pass.lock().await.map_err(map)?;
        let rows = query.fetch_all(held.conn()).await;
        let rows = held
            .done(rows)
            .map_err(|e| StoreError::sql("PostgreSQL: acquire_due_jobs", e))?;
        rows.iter()
            .map(crate::driver::read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::sql("PostgreSQL: acquire_due_jobs", e))
    }

    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()> {
        let ids: Vec<&str> = marks.iter().map(|(id, _)| id.as_str()).collect();
        let reasons: Vec<&str> = marks.iter().map(|(_, r)| r.as_str()).collect();
        sqlx::query(&self.sql.mark_corrupt)
            .bind(&ids)
            .bind(&reasons)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: marking corrupt jobs", e))?;
        Ok(())
    }

    async fn extend(&self, req: Extension<'_>) -> Result<Vec<String>> {
        sqlx::query_scalar(&self.sql.extend)
            .bind(req.ids)
            .bind(req.holder)
            .bind(req.lease)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: extend_leases", e))
    }

    async fn release(&self, req: Release<'_>) -> Result<Vec<String>> {
        Ok(self.release_reading_next(req, &[]).await?.0)
    }

    async fn release_reading_next(
        &self,
        req: Release<'_>,
        records: &[RunWrite<'_>],
    ) -> Result<(Vec<String>, Option<NextRunTime>)> {
        let (holder, updates, removes) = (req.holder, req.updates, req.removes);
        let c = Columns::of(updates);
        let sql = if records.is_empty() {
            &self.sql.release
        } else {
            &self.sql.release_recorded
        };
        let q = sqlx::query(sql)
            .bind(&c.ids)
            .bind(&c.next_run_times)
            .bind(&c.paused)
            .bind(&c.states)
            .bind(&c.state_bins)
            .bind(&c.versions)
            .bind(holder)
            .bind(removes)
            .bind(self.names.channel.as_str())
            .bind(req.token);
        let runs = RunColumns::of(records);
        let q = if records.is_empty() { q } else { runs.bind(q) };
        let map = |e| StoreError::sql("PostgreSQL: release_jobs", e);
        let mut held = self.pass.lock().await.map_err(map)?;
        let rows = q.fetch_all(held.conn()).await;
        let rows = held.done(rows).map_err(map)?;
        let ids = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(map)?;
        let next = match rows.first() {
            Some(r) => Some((r.try_get(2).map_err(map)?, r.try_get(3).map_err(map)?)),
            None => None,
        };
        Ok((ids, next))
    }

    async fn notify_change(&self, token: &str) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(self.names.channel.as_str())
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: notify a change", e))?;
        Ok(())
    }

    async fn wait_for_release(&self, token: &str, until: i64) -> Result<()> {
        sqlx::query(&self.sql.wait_for_release)
            .bind(token)
            .bind(until)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::sql("PostgreSQL: record a wait for a release", e))?;
        Ok(())
    }

    async fn stop_waiting(&self, token: &str) -> Result<()> {
        sqlx::query(&format!(
            "DELETE FROM {} WHERE token = $1",
            self.names.waiters
        ))
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::sql("PostgreSQL: remove a wait for a release", e))?;
        Ok(())
    }

    fn listen(
        &self,
        token: std::sync::Arc<str>,
        listener: apscheduler_core::ChangeListener,
    ) -> Option<tokio::task::JoinHandle<()>> {
        Some(tokio::spawn(listen_loop(
            self.pool.clone(),
            self.names.channel.clone(),
            token,
            listener,
        )))
    }
}

/// Listens on `channel` until the pool closes. Every (re)connection calls `listener`
/// once: changes notified while the connection was down were not heard.
async fn listen_loop(
    pool: PgPool,
    channel: String,
    token: std::sync::Arc<str>,
    listener: apscheduler_core::ChangeListener,
) {
    use sqlx::postgres::PgListener;
    let mut warned = false;
    let mut heard = |e: sqlx::Error| -> bool {
        if matches!(e, sqlx::Error::PoolClosed) {
            return false;
        }
        if !warned {
            warned = true;
            apscheduler_core::log_warn!(target: "apscheduler", channel = %channel, "PostgreSQL: change notifications lost ({e}); retrying every second, and planning again once back");
        }
        true
    };
    loop {
        let connected = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(&channel).await {
                Ok(()) => Ok(l),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let mut l = match connected {
            Ok(l) => l,
            Err(e) => {
                if !heard(e) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::debug!(target: "apscheduler", channel = %channel, "PostgreSQL: listening for changes");
        listener();
        loop {
            match l.try_recv().await {
                Ok(Some(n)) if n.payload() != &*token => listener(),
                Ok(Some(_)) => {}
                // The connection dropped; the next call reconnects and listens again.
                Ok(None) => listener(),
                Err(e) => {
                    if !heard(e) {
                        return;
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The columns of a batch of run records, as arrays.
struct RunColumns<'a> {
    run_ids: Vec<&'a str>,
    job_ids: Vec<&'a str>,
    scheduled: Vec<i64>,
    started: Vec<Option<i64>>,
    finished: Vec<Option<i64>>,
    outcomes: Vec<&'a str>,
    exit_codes: Vec<Option<i32>>,
    http_statuses: Vec<Option<i32>>,
    outputs: Vec<&'a [u8]>,
    messages: Vec<Option<&'a [u8]>>,
    nodes: Vec<&'a str>,
    attempts: Vec<i64>,
    backfills: Vec<i32>,
    due: Vec<Option<i64>>,
}

impl<'a> RunColumns<'a> {
    fn of(rows: &[RunWrite<'a>]) -> Self {
        RunColumns {
            run_ids: rows.iter().map(|r| r.run_id).collect(),
            job_ids: rows.iter().map(|r| r.job_id).collect(),
            scheduled: rows.iter().map(|r| r.scheduled_at).collect(),
            started: rows.iter().map(|r| r.started_at).collect(),
            finished: rows.iter().map(|r| r.finished_at).collect(),
            outcomes: rows.iter().map(|r| r.outcome).collect(),
            exit_codes: rows.iter().map(|r| r.exit_code).collect(),
            http_statuses: rows.iter().map(|r| r.http_status).collect(),
            outputs: rows.iter().map(|r| r.output).collect(),
            messages: rows.iter().map(|r| r.message).collect(),
            nodes: rows.iter().map(|r| r.node).collect(),
            attempts: rows.iter().map(|r| r.attempt).collect(),
            backfills: rows.iter().map(|r| r.backfill).collect(),
            due: rows.iter().map(|r| r.due_at).collect(),
        }
    }
}

impl RunColumns<'_> {
    /// Binds the columns, in [`schema::RUN_COLUMNS`] order, after `q`'s parameters.
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        q.bind(&self.run_ids)
            .bind(&self.job_ids)
            .bind(&self.scheduled)
            .bind(&self.started)
            .bind(&self.finished)
            .bind(&self.outcomes)
            .bind(&self.exit_codes)
            .bind(&self.http_statuses)
            .bind(&self.outputs)
            .bind(&self.messages)
            .bind(&self.nodes)
            .bind(&self.attempts)
            .bind(&self.backfills)
            .bind(&self.due)
    }
}

/// The run history: batches as arrays through `UNNEST` (one statement each),
/// interruptions in one `UPDATE ... RETURNING`.
#[async_trait]
impl RunsDialect for Runs<Postgres> {
    async fn create(&self) -> Result<()> {
        let map = self.error("create the table");
        // Already there (the usual case): no lock taken, and no `CREATE INDEX IF NOT
        // EXISTS`, which locks the table against writers even when the index exists.
        // A table from before the added columns counts as missing (it is upgraded).
        let n = &self.names;
        let relations: Vec<&str> = [
            &n.runs,
            &n.idx_runs_time,
            &n.idx_runs_job,
            &n.idx_runs_outcome,
            &n.nodes,
        ]
        .iter()
        .map(|quoted| quoted.trim_matches('"'))
        .collect();
        let added: Vec<&str> = schema::ADDED_RUN_COLUMNS.iter().map(|(c, _)| *c).collect();
        let found: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace s \
             ON s.oid = c.relnamespace \
             WHERE s.nspname = current_schema() AND c.relname::TEXT = ANY($1::TEXT[])) \
             + (SELECT count(*) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $2 \
             AND column_name::TEXT = ANY($3::TEXT[]))",
        )
        .bind(&relations)
        .bind(n.runs_table.as_str())
        .bind(&added)
        .fetch_one(&self.pool)
        .await
        .map_err(&map)?;
        if found == (relations.len() + added.len()) as i64 {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(&map)?;
        // The job table's migration lock: schedulers preparing together would
        // otherwise race on the catalog (`CREATE ... IF NOT EXISTS` is not atomic).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.names.lock_key)
            .execute(&mut *tx)
            .await
            .map_err(&map)?;
        quiet_notices(&mut tx).await.map_err(&map)?;
        self.create_on(&mut tx).await?;
        tx.commit().await.map_err(map)?;
        Ok(())
    }

    async fn upsert(&self, rows: &[RunWrite<'_>]) -> Result<()> {
        let map = self.error("record_runs");
        let sql = format!(
            "{} SELECT * FROM UNNEST($1::VARCHAR[], $2::VARCHAR[], $3::BIGINT[], $4::BIGINT[], \
             $5::BIGINT[], $6::VARCHAR[], $7::INTEGER[], $8::INTEGER[], $9::BYTEA[], $10::BYTEA[], \
             $11::VARCHAR[], $12::BIGINT[], $13::INTEGER[], $14::BIGINT[]){}",
            self.sql.insert_head, self.sql.upsert_tail
        );
        let parts = chunks(rows);
        let mut tx = if parts.len() > 1 {
            Some(self.pool.begin().await.map_err(&map)?)
        } else {
            None
        };
        for part in parts {
            let c = RunColumns::of(part);
            let q = c.bind(sqlx::query(&sql));
            match (tx.as_mut(), &self.kept) {
                (Some(tx), _) => q.execute(&mut **tx).await,
                (None, Some(kept)) => {
                    let mut held = kept.writes.lock().await.map_err(&map)?;
                    let done = q.execute(held.conn()).await;
                    held.done(done)
                }
                (None, None) => q.execute(&self.pool).await,
            }
            .map_err(&map)?;
        }
        if let Some(tx) = tx {
            tx.commit().await.map_err(map)?;
        }
        Ok(())
    }

    async fn start(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>> {
        let map = self.error("record_starts");
        let runs = &self.names.runs;
        let running = apscheduler_core::RunOutcome::Running.as_str();
        // The update sees the rows as they are when it reaches them (a row an
        // interruption changed first no longer matches); the insert skips any row that
        // exists; `before` reads the rows started before this statement.
        let sql = format!(
            "WITH started AS (UPDATE {runs} r SET started_at = s.started_at \
             FROM UNNEST($1::VARCHAR[], $4::BIGINT[]) AS s(run_id, started_at) \
             WHERE r.run_id = s.run_id AND r.outcome = '{running}' AND r.started_at IS NULL \
             RETURNING r.run_id), \
             inserted AS ({} SELECT * FROM UNNEST($1::VARCHAR[], $2::VARCHAR[], $3::BIGINT[], \
             $4::BIGINT[], $5::BIGINT[], $6::VARCHAR[], $7::INTEGER[], $8::INTEGER[], \
             $9::BYTEA[], $10::BYTEA[], $11::VARCHAR[], $12::BIGINT[], $13::INTEGER[], \
             $14::BIGINT[]) ON CONFLICT (run_id) DO NOTHING RETURNING run_id), \
             before AS (SELECT run_id FROM {runs} WHERE run_id = ANY($1::VARCHAR[]) \
             AND outcome = '{running}' AND started_at IS NOT NULL) \
             SELECT run_id::TEXT FROM started UNION ALL SELECT run_id::TEXT FROM inserted \
             UNION ALL SELECT run_id::TEXT FROM before",
            self.sql.insert_head
        );
        let parts = chunks(rows);
        let mut tx = if parts.len() > 1 {
            Some(self.pool.begin().await.map_err(&map)?)
        } else {
            None
        };
        let mut accepted = Vec::with_capacity(rows.len());
        for part in parts {
            let c = RunColumns::of(part);
            let q = c.bind(sqlx::query(&sql));
            // On the writer's kept connection, as `record_runs`: a pooled one costs a
            // ping.
            let found = match (tx.as_mut(), &self.kept) {
                (Some(tx), _) => q.fetch_all(&mut **tx).await,
                (None, Some(kept)) => {
                    let mut held = kept.writes.lock().await.map_err(&map)?;
                    let done = q.fetch_all(held.conn()).await;
                    held.done(done)
                }
                (None, None) => q.fetch_all(&self.pool).await,
            }
            .map_err(&map)?;
            for row in &found {
                accepted.push(sqlx::Row::try_get::<String, _>(row, 0).map_err(&map)?);
            }
        }
        if let Some(tx) = tx {
            tx.commit().await.map_err(map)?;
        }
        Ok(accepted)
    }

    async fn latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>> {
        self.select_latest_of_list(sqlx::query(&self.sql.latest_of_list).bind(job_ids))
            .await
    }

    async fn interrupt(&self, node: &str, now: i64, message: &str) -> Result<Vec<RunRow>> {
        self.interrupt_returning(node, now, message).await
    }
}
