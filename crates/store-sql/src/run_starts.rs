//! The start of claimed runs (`RunHistory::record_starts`), written only on records
//! still `running` without one: SQLite and MySQL/MariaDB in two statements (an upsert
//! that inserts absent records whole and, on an existing row, sets `started_at` only
//! where the row is `running` without one; then a read of the rows' outcomes and
//! starts; on MySQL/MariaDB both in one script where they fit); PostgreSQL in one
//! statement (`crate::postgres`).

use std::collections::HashMap;

use apscheduler_core::RunOutcome;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::driver::Result;
use crate::runs::{bind_runs, chunks, RunWrite, Runs};
use crate::schema::Dialect;
use crate::shared::{placeholders, RowsAffected};

/// Most run ids per `IN (...)` list.
const IDS_PER_STATEMENT: usize = 1000;

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
    /// Writes the starts of `rows` (run ids unique within them): an upsert per
    /// [`chunks`] batch that writes an absent row whole and, on an existing one, sets
    /// `started_at` only where the row is `running` without one (each row's update
    /// atomic), then a read of the rows' outcomes and starts. A run may start when its
    /// row is `running` with a start, or has this write's start: the upsert set it
    /// while the row was `running` (an interruption since finds it started, and does
    /// not start it again). Two round trips, no transaction.
    pub(crate) async fn start_values(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>> {
        let map = self.error("record_starts");
        let runs = &self.names.runs;
        let tail = start_tail(self.dialect);
        for part in chunks(rows) {
            let values =
                vec![format!("({})", placeholders(crate::schema::RUN_COLUMNS.len())); part.len()]
                    .join(", ");
            let sql = format!("{} VALUES {values}{tail}", self.sql.insert_head);
            let q = bind_runs(sqlx::query(&sql), part);
            // On the writer's kept connection, as `record_runs`: a pooled one costs a
            // ping.
            match &self.kept {
                Some(kept) => {
                    let mut held = kept.writes.lock().await.map_err(&map)?;
                    let done = q.execute(held.conn()).await;
                    held.done(done).map_err(&map)?;
                }
                None => {
                    q.execute(&self.pool).await.map_err(&map)?;
                }
            }
        }
        let mut found = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {}, {}, started_at FROM {runs} WHERE run_id IN ({})",
                self.dialect.text("run_id"),
                self.dialect.text("outcome"),
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q.bind(r.run_id);
            }
            let read = match &self.kept {
                Some(kept) => {
                    let mut held = kept.writes.lock().await.map_err(&map)?;
                    let done = q.fetch_all(held.conn()).await;
                    held.done(done)
                }
                None => q.fetch_all(&self.pool).await,
            }
            .map_err(&map)?;
            for row in read {
                found.push((
                    row.try_get(0).map_err(&map)?,
                    row.try_get(1).map_err(&map)?,
                    row.try_get(2).map_err(&map)?,
                ));
            }
        }
        let accepted = accepted_starts(rows, found);
        Ok(accepted)
    }
}

/// The `ON CONFLICT` (`ON DUPLICATE KEY`) tail of a start write: on an existing row,
/// `started_at` is set only where the row is `running` without one.
pub(crate) fn start_tail(dialect: Dialect) -> String {
    let running = RunOutcome::Running.as_str();
    let keep = format!(
        "CASE WHEN outcome = '{running}' AND started_at IS NULL THEN {} ELSE started_at END",
        match dialect {
            Dialect::MySql => "VALUES(started_at)",
            Dialect::Sqlite | Dialect::Postgres => "excluded.started_at",
        }
    );
    match dialect {
        Dialect::MySql => format!(" ON DUPLICATE KEY UPDATE started_at = {keep}"),
        Dialect::Sqlite | Dialect::Postgres => {
            format!(" ON CONFLICT (run_id) DO UPDATE SET started_at = {keep}")
        }
    }
}

/// The run ids of `rows` whose starts stand, from the rows read back after the write
/// (`run_id`, `outcome`, `started_at`): a row `running` with a start, or with this
/// write's start (set while the row was `running`; an interruption since finds it
/// started and does not start it again).
pub(crate) fn accepted_starts(
    rows: &[RunWrite<'_>],
    found: Vec<(String, String, Option<i64>)>,
) -> Vec<String> {
    let running = RunOutcome::Running.as_str();
    let ours: HashMap<&str, Option<i64>> = rows.iter().map(|r| (r.run_id, r.started_at)).collect();
    found
        .into_iter()
        .filter(|(id, outcome, started)| {
            let mine = started.is_some() && ours.get(id.as_str()).copied().flatten() == *started;
            mine || (outcome == running && started.is_some())
        })
        .map(|(id, _, _)| id)
        .collect()
}
