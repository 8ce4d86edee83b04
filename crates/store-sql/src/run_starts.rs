//! The start of claimed runs (`RunHistory::record_starts`), written only on records
//! still `running` without one: SQLite and MySQL/MariaDB in one transaction of three
//! statements (insert the absent records, set the start of the unstarted ones, read
//! which are now started); PostgreSQL in one statement (`crate::postgres`).

use std::collections::BTreeMap;

use apscheduler_core::RunOutcome;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

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
    /// Writes the starts of `rows` (run ids unique within them) in one transaction
    /// begun with `begin` (the driver's default when `None`): inserts the rows whose
    /// run id has no row, sets `started_at` on the rows still `running` without one,
    /// then returns the run ids of `rows` whose row is `running` with a start. The
    /// insert and the update lock the rows they write until the commit, so an
    /// interruption of one of them waits for it, or comes first and leaves it alone.
    pub(crate) async fn start_values(
        &self,
        rows: &[RunWrite<'_>],
        begin: Option<&'static str>,
    ) -> Result<Vec<String>> {
        let map = self.error("record_starts");
        let runs = &self.names.runs;
        let running = RunOutcome::Running.as_str();
        let ignore = match self.dialect {
            Dialect::MySql => " ON DUPLICATE KEY UPDATE run_id = run_id",
            Dialect::Sqlite | Dialect::Postgres => " ON CONFLICT (run_id) DO NOTHING",
        };
        let mut tx = match begin {
            Some(statement) => self.pool.begin_with(statement).await,
            None => self.pool.begin().await,
        }
        .map_err(&map)?;
        for part in chunks(rows) {
            let values =
                vec![format!("({})", placeholders(crate::schema::RUN_COLUMNS.len())); part.len()]
                    .join(", ");
            let sql = format!("{} VALUES {values}{ignore}", self.sql.insert_head);
            let q = sqlx::query(&sql).persistent(part.len() == 1);
            bind_runs(q, part).execute(&mut *tx).await.map_err(&map)?;
        }
        // Usually one start time for the whole batch: one update per time.
        let mut by_start: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for r in rows {
            if let Some(at) = r.started_at {
                by_start.entry(at).or_default().push(r.run_id);
            }
        }
        for (at, ids) in &by_start {
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let sql = format!(
                    "UPDATE {runs} SET started_at = ? WHERE outcome = '{running}' \
                     AND started_at IS NULL AND run_id IN ({})",
                    placeholders(chunk.len())
                );
                let mut q = sqlx::query(&sql).persistent(chunk.len() == 1).bind(*at);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await.map_err(&map)?;
            }
        }
        let mut accepted = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {} FROM {runs} WHERE outcome = '{running}' \
                 AND started_at IS NOT NULL AND run_id IN ({})",
                self.dialect.text("run_id"),
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<DB, String>(&sql).persistent(chunk.len() == 1);
            for r in chunk {
                q = q.bind(r.run_id);
            }
            accepted.extend(q.fetch_all(&mut *tx).await.map_err(&map)?);
        }
        tx.commit().await.map_err(map)?;
        Ok(accepted)
    }
}
