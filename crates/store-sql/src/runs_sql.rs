//! The statements every dialect runs alike on the run history table: their SQL, built
//! once per table ([`RunStatements`]) or per query, and their execution on a
//! [`Runs`]: creating the table, writing records, the node registry, queries, pruning
//! and interrupts.

use apscheduler_core::RunOutcome;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::driver::Result;
use crate::error::StoreError;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
use crate::runs::{bind_runs, chunks, RunWrite, CHUNK_ROWS};
use crate::runs::{read_run, NodeRow, RunFilter, RunRow, Runs};
use crate::schema::{self, Dialect, Names};
use crate::shared::RowsAffected;
/// Jobs per statement of [`Runs::select_latest`] (MySQL/MariaDB).
#[cfg(feature = "mysql")]
pub(crate) const LATEST_CHUNK: usize = 200;
/// Statements of [`Runs::select_latest`] in flight at once (each on its own pooled
/// connection).
#[cfg(feature = "mysql")]
const LATEST_PARALLEL: usize = 4;

/// The statements of one run history table that do not depend on the query, built once.
#[derive(Debug)]
pub(crate) struct RunStatements {
    /// The select list, in [`schema::RUN_COLUMNS`] order (text columns readable as text).
    pub(crate) columns: String,
    /// `INSERT INTO runs (columns)`: the head of every write.
    pub(crate) insert_head: String,
    /// What replaces an existing row on a conflict of run ids (after the values).
    pub(crate) upsert_tail: String,
    /// The newest ended row of a job past the ones kept (`OFFSET keep`).
    boundary: String,
    /// Deletes a job's ended rows at or past the boundary row.
    prune_job: String,
    /// Deletes the ended rows scheduled before a time.
    prune_before: String,
    /// SQLite and PostgreSQL: `UPDATE ... RETURNING` of a node's running rows.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    interrupt_returning: String,
    /// SQLite and PostgreSQL: the newest row of each job of a list bound as one
    /// parameter (a JSON array on SQLite, a `text[]` on PostgreSQL), in one statement;
    /// on SQLite the rows come back as one JSON array (`crate::sqlite::one_value`).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) latest_of_list: String,
    /// Writes a node's registry row, replacing the one it had.
    node_upsert: String,
    /// Every registry row, by node name.
    node_list: String,
    /// Deletes a node's registry row.
    node_remove: String,
}

impl RunStatements {
    pub(crate) fn new(d: Dialect, n: &Names) -> Self {
        let runs = &n.runs;
        let p = |i| d.param(i);
        let running = RunOutcome::Running.as_str();
        let columns = schema::RUN_COLUMNS
            .iter()
            .map(|c| match *c {
                "run_id" | "job_id" | "outcome" | "node" => d.text(c),
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let updated = schema::RUN_COLUMNS[1..].iter().map(|c| match d {
            Dialect::MySql => format!("{c} = VALUES({c})"),
            Dialect::Sqlite | Dialect::Postgres => format!("{c} = EXCLUDED.{c}"),
        });
        let updated = updated.collect::<Vec<_>>().join(", ");
        RunStatements {
            insert_head: format!("INSERT INTO {runs} ({})", schema::RUN_COLUMNS.join(", ")),
            upsert_tail: match d {
                Dialect::MySql => format!(" ON DUPLICATE KEY UPDATE {updated}"),
                Dialect::Sqlite | Dialect::Postgres => {
                    format!(" ON CONFLICT (run_id) DO UPDATE SET {updated}")
                }
            },
            boundary: format!(
                "SELECT scheduled_at, {} FROM {runs} WHERE job_id = {} AND outcome <> '{running}' \
                 ORDER BY scheduled_at DESC, run_id DESC LIMIT 1 OFFSET {}",
                d.text("run_id"),
                p(1),
                p(2)
            ),
            prune_job: format!(
                "DELETE FROM {runs} WHERE job_id = {} AND outcome <> '{running}' \
                 AND (scheduled_at < {} OR (scheduled_at = {} AND run_id <= {}))",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            prune_before: format!(
                "DELETE FROM {runs} WHERE scheduled_at < {} AND outcome <> '{running}'",
                p(1)
            ),
            interrupt_returning: format!(
                "UPDATE {runs} SET outcome = '{}', finished_at = {}, message = {} \
                 WHERE outcome = '{running}' AND node = {} RETURNING {columns}",
                RunOutcome::Interrupted.as_str(),
                p(1),
                p(2),
                p(3)
            ),
            latest_of_list: match d {
                // One seek on the job index per id (the sub-select reads the index only),
                // then one by rowid: no statement of hundreds of `UNION ALL` terms to
                // compile per 200 jobs.
                // All the rows in one value (see `crate::sqlite::one_value`): output and
                // message as text, bytes as they are, read back as bytes.
                Dialect::Sqlite => format!(
                    "SELECT CAST(json_group_array(json_array(run_id, job_id, scheduled_at, \
                     started_at, finished_at, outcome, exit_code, http_status, \
                     CAST(output AS TEXT), CAST(message AS TEXT), node, attempt, backfill, \
                     due_at)) AS BLOB) \
                     FROM {runs} WHERE rowid IN (SELECT (SELECT x.rowid \
                     FROM {runs} x WHERE x.job_id = j.value \
                     ORDER BY x.scheduled_at DESC, x.run_id DESC LIMIT 1) FROM json_each({}) j)",
                    p(1)
                ),
                Dialect::Postgres => format!(
                    "SELECT {columns} FROM unnest({}::text[]) AS j(id) CROSS JOIN LATERAL \
                     (SELECT * FROM {runs} x WHERE x.job_id = j.id \
                     ORDER BY x.scheduled_at DESC, x.run_id DESC LIMIT 1) r",
                    p(1)
                ),
                Dialect::MySql => String::new(),
            },
            node_upsert: format!(
                "INSERT INTO {} (node, host, pid, started_at, heartbeat_at, running, protocol) \
                 VALUES ({}, {}, {}, {}, {}, {}, {}){}",
                n.nodes,
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                match d {
                    Dialect::MySql => " ON DUPLICATE KEY UPDATE host = VALUES(host), \
                                       pid = VALUES(pid), started_at = VALUES(started_at), \
                                       heartbeat_at = VALUES(heartbeat_at), running = VALUES(running), \
                                       protocol = VALUES(protocol)",
                    Dialect::Sqlite | Dialect::Postgres => {
                        " ON CONFLICT (node) DO UPDATE SET host = EXCLUDED.host, \
                         pid = EXCLUDED.pid, started_at = EXCLUDED.started_at, \
                         heartbeat_at = EXCLUDED.heartbeat_at, running = EXCLUDED.running, \
                         protocol = EXCLUDED.protocol"
                    }
                }
            ),
            node_list: format!(
                "SELECT {}, {}, pid, started_at, heartbeat_at, running, {} FROM {} ORDER BY node",
                d.text("node"),
                d.text("host"),
                d.text("protocol"),
                n.nodes
            ),
            node_remove: format!("DELETE FROM {} WHERE node = {}", n.nodes, p(1)),
            columns,
        }
    }
}

impl<DB: Database> Runs<DB> {
    /// `(?, ?, ...), ...`: the values of `rows` rows (anonymous placeholders, for
    /// SQLite and MySQL).
    #[cfg(any(feature = "sqlite", feature = "mysql"))]
    fn values(rows: usize) -> String {
        let row = format!("({})", vec!["?"; schema::RUN_COLUMNS.len()].join(", "));
        vec![row.as_str(); rows].join(", ")
    }

    /// The query for `f`, its parameters numbered in the order [`select`](Self::select)
    /// binds them.
    fn query_sql(&self, f: &RunFilter<'_>) -> String {
        let d = self.dialect;
        let mut i = 0;
        let mut next = || {
            i += 1;
            d.param(i)
        };
        let mut conditions = Vec::new();
        if f.job_id.is_some() {
            conditions.push(format!("job_id = {}", next()));
        }
        if f.outcome.is_some() {
            conditions.push(format!("outcome = {}", next()));
        }
        if f.since.is_some() {
            conditions.push(format!("scheduled_at >= {}", next()));
        }
        if f.until.is_some() {
            conditions.push(format!("scheduled_at < {}", next()));
        }
        if f.node.is_some() {
            conditions.push(format!("node = {}", next()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        format!(
            "SELECT {} FROM {}{filter} ORDER BY scheduled_at DESC, run_id DESC LIMIT {}",
            self.sql.columns,
            self.names.runs,
            next()
        )
    }
}

impl<DB> Runs<DB>
where
    DB: Database + sqlx::database::HasStatementCache,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Creates the table on `conn` unless it exists, checks that the table under the
    /// name has every column (another program's table is refused, not written to),
    /// then creates the indexes that are missing.
    pub(crate) async fn create_on(&self, conn: &mut DB::Connection) -> Result<()> {
        let ddl = schema::runs_table_ddl(self.dialect, &self.names);
        let (table, indexes) = ddl.split_first().expect("the DDL creates a table");
        let map = self.error("create the table");
        sqlx::query(table)
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(&map)?;
        let existing = self.columns_on(conn).await?;
        let missing: Vec<&str> = schema::RUN_COLUMNS
            .iter()
            .copied()
            .filter(|c| !crate::runs_upgrade::has_column(&existing, c))
            .filter(|c| !schema::ADDED_RUN_COLUMNS.iter().any(|(a, _)| a == c))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::ForeignRunsTable {
                table: self.names.runs_table.clone(),
                missing: missing.join(", "),
            });
        }
        self.add_missing_columns(conn, &existing).await?;
        for stmt in indexes {
            sqlx::query(stmt)
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(&map)?;
        }
        sqlx::query(&schema::nodes_table_ddl(self.dialect, &self.names))
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(&map)?;
        self.add_node_protocol(conn).await
    }

    /// Writes a node's registry row.
    pub(crate) async fn upsert_node(&self, row: &NodeRow) -> Result<()> {
        sqlx::query(&self.sql.node_upsert)
            .bind(row.node.as_str())
            .bind(row.host.as_str())
            .bind(row.pid)
            .bind(row.started_at)
            .bind(row.heartbeat_at)
            .bind(row.running)
            .bind(row.protocol.as_str())
            .execute(&self.pool)
            .await
            .map_err(self.error("heartbeat"))?;
        Ok(())
    }

    /// Every registry row, by node name.
    pub(crate) async fn select_nodes(&self) -> Result<Vec<NodeRow>> {
        let map = self.error("list_nodes");
        let rows = sqlx::query(&self.sql.node_list)
            .fetch_all(&self.pool)
            .await
            .map_err(&map)?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    node: r.try_get(0)?,
                    host: r.try_get(1)?,
                    pid: r.try_get(2)?,
                    started_at: r.try_get(3)?,
                    heartbeat_at: r.try_get(4)?,
                    running: r.try_get(5)?,
                    protocol: r.try_get(6)?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(map)
    }

    /// Deletes a node's registry row; whether there was one.
    pub(crate) async fn delete_node(&self, node: &str) -> Result<bool> {
        let done = sqlx::query(&self.sql.node_remove)
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(self.error("remove_node"))?;
        Ok(done.rows() > 0)
    }

    /// Writes the rows with multi-row `INSERT ... VALUES` statements and the dialect's
    /// upsert clause (SQLite and MySQL): one statement, or a transaction begun with
    /// `begin` (the driver's default when `None`) for several.
    #[cfg(any(feature = "sqlite", feature = "mysql"))]
    pub(crate) async fn upsert_values(
        &self,
        rows: &[RunWrite<'_>],
        begin: Option<&'static str>,
    ) -> Result<()> {
        let map = self.error("record_runs");
        let statement = |n: usize| {
            format!(
                "{} VALUES {}{}",
                self.sql.insert_head,
                Self::values(n),
                self.sql.upsert_tail
            )
        };
        // A record at a time (each start and end of a run) and full chunks are the
        // statements worth preparing once per connection.
        let cached = |n: usize| n == 1 || n == CHUNK_ROWS;
        let parts = chunks(rows);
        if let [part] = parts.as_slice() {
            let sql = statement(part.len());
            let q = bind_runs(sqlx::query(&sql).persistent(cached(part.len())), part);
            match &self.kept {
                Some(kept) => {
                    let mut held = kept.writes.lock().await.map_err(&map)?;
                    let done = q.execute(held.conn()).await;
                    held.done(done).map_err(map)?;
                }
                None => {
                    q.execute(&self.pool).await.map_err(map)?;
                }
            }
            return Ok(());
        }
        let mut tx = match begin {
            Some(statement) => self.pool.begin_with(statement).await,
            None => self.pool.begin().await,
        }
        .map_err(&map)?;
        for part in parts {
            let sql = statement(part.len());
            let q = sqlx::query(&sql).persistent(cached(part.len()));
            bind_runs(q, part).execute(&mut *tx).await.map_err(&map)?;
        }
        tx.commit().await.map_err(map)
    }

    /// MySQL/MariaDB (no `LATERAL` on MariaDB): the newest row of each job: one
    /// statement per [`LATEST_CHUNK`] jobs, a
    /// `UNION ALL` of one-row lookups on the job index (instead of one round trip,
    /// and its thread hand-offs, per job), [`LATEST_PARALLEL`] statements at a time on
    /// their own connections.
    #[cfg(feature = "mysql")]
    pub(crate) async fn select_latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>> {
        use futures_util::stream::{StreamExt as _, TryStreamExt as _};
        let map = self.error("latest_runs");
        let statements: Vec<_> = job_ids
            .chunks(LATEST_CHUNK)
            .map(|chunk| self.select_latest_chunk(chunk))
            .collect();
        let chunks = futures_util::stream::iter(statements).buffered(LATEST_PARALLEL);
        let rows: Vec<Vec<_>> = chunks.try_collect().await.map_err(&map)?;
        rows.iter()
            .flatten()
            .map(|r| read_run(r).map_err(&map))
            .collect()
    }

    /// The newest row of each job through [`RunStatements::latest_of_list`], with the
    /// list already bound.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) async fn select_latest_of_list<'q>(
        &self,
        query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    ) -> Result<Vec<RunRow>> {
        let map = self.error("latest_runs");
        let rows = query.fetch_all(&self.pool).await.map_err(&map)?;
        rows.iter().map(|r| read_run(r).map_err(&map)).collect()
    }

    #[cfg(feature = "mysql")]
    async fn select_latest_chunk(&self, chunk: &[&str]) -> sqlx::Result<Vec<DB::Row>> {
        let d = self.dialect;
        let sql = (1..=chunk.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT {} FROM {} WHERE job_id = {} \
                     ORDER BY scheduled_at DESC, run_id DESC LIMIT 1) AS latest{i}",
                    self.sql.columns,
                    self.names.runs,
                    d.param(i)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        q.fetch_all(&self.pool).await
    }

    /// The rows matching `f`, newest first.
    pub(crate) async fn select(&self, f: &RunFilter<'_>) -> Result<Vec<RunRow>> {
        let sql = self.query_sql(f);
        let mut q = sqlx::query(&sql);
        if let Some(job_id) = f.job_id {
            q = q.bind(job_id);
        }
        if let Some(outcome) = f.outcome {
            q = q.bind(outcome);
        }
        if let Some(since) = f.since {
            q = q.bind(since);
        }
        if let Some(until) = f.until {
            q = q.bind(until);
        }
        if let Some(node) = f.node {
            q = q.bind(node);
        }
        let map = self.error("query_runs");
        let q = q.bind(f.limit);
        let rows = match &self.kept {
            // The scan of `running` records every pass of a cluster scheduler makes.
            Some(kept) if f.outcome == Some(RunOutcome::Running.as_str()) => {
                let mut held = kept.reads.lock().await.map_err(&map)?;
                let rows = q.fetch_all(held.conn()).await;
                held.done(rows)
            }
            _ => q.fetch_all(&self.pool).await,
        }
        .map_err(&map)?;
        rows.iter()
            .map(read_run)
            .collect::<std::result::Result<_, _>>()
            .map_err(map)
    }

    /// Finds the newest ended row of the job past the `keep` newest, then deletes it
    /// and every older ended row of the job: two statements on the job's index, with
    /// no `LIMIT` in a subquery (which MySQL refuses). A row recorded in between is
    /// kept if newer than that boundary.
    pub(crate) async fn delete_beyond(&self, job_id: &str, keep: i64) -> Result<u64> {
        let map = self.error("prune_job_runs");
        let boundary = sqlx::query(&self.sql.boundary)
            .bind(job_id)
            .bind(keep)
            .fetch_optional(&self.pool)
            .await
            .map_err(&map)?;
        let Some(boundary) = boundary else {
            return Ok(0);
        };
        let at: i64 = boundary.try_get(0).map_err(&map)?;
        let run_id: String = boundary.try_get(1).map_err(&map)?;
        let done = sqlx::query(&self.sql.prune_job)
            .bind(job_id)
            .bind(at)
            .bind(at)
            .bind(run_id.as_str())
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(done.rows())
    }

    /// Deletes the ended rows scheduled before `before`.
    pub(crate) async fn delete_before(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(&self.sql.prune_before)
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(self.error("prune_runs_before"))?;
        Ok(done.rows())
    }

    /// One `UPDATE ... RETURNING` (SQLite 3.35+, PostgreSQL).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) async fn interrupt_returning(
        &self,
        node: &str,
        now: i64,
        message: &str,
    ) -> Result<Vec<RunRow>> {
        let map = self.error("interrupt_running");
        let rows = sqlx::query(&self.sql.interrupt_returning)
            .bind(now)
            .bind(message.as_bytes())
            .bind(node)
            .fetch_all(&self.pool)
            .await
            .map_err(&map)?;
        rows.iter()
            .map(read_run)
            .collect::<std::result::Result<_, _>>()
            .map_err(map)
    }
}
