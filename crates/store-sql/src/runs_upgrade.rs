//! The upgrade of a run history table created before some of its columns existed
//! ([`schema::ADDED_RUN_COLUMNS`]): [`Runs::create_on`] finds the columns missing and
//! adds them, at prepare time (or the first use on a pool).

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::driver::Result;
use crate::runs::Runs;
use crate::schema::{self, Dialect};

/// Whether `columns` (as the catalog lists them) hold `column`.
pub(crate) fn has_column(columns: &[String], column: &str) -> bool {
    columns.iter().any(|e| e.eq_ignore_ascii_case(column))
}

impl<DB> Runs<DB>
where
    DB: Database + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The names of the run history table's columns, as `conn` sees them.
    pub(crate) async fn columns_on(&self, conn: &mut DB::Connection) -> Result<Vec<String>> {
        self.columns_of(conn, &self.names.runs_table).await
    }

    /// The names of `table`'s columns, as `conn` sees them.
    async fn columns_of(&self, conn: &mut DB::Connection, table: &str) -> Result<Vec<String>> {
        let map = self.error("read the table's columns");
        let rows = sqlx::query(&self.dialect.columns_of_table())
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(&map)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(map)
    }

    /// Upgrades a table created before [`schema::ADDED_RUN_COLUMNS`]: adds each
    /// missing column (its default fills the rows already there). MySQL/MariaDB
    /// prepare without a lock, so another scheduler may add a column first: an
    /// `ALTER` that fails is forgiven when the column is there afterwards.
    pub(crate) async fn add_missing_columns(
        &self,
        conn: &mut DB::Connection,
        existing: &[String],
    ) -> Result<()> {
        for (column, kind) in schema::ADDED_RUN_COLUMNS {
            if has_column(existing, column) {
                continue;
            }
            let added = sqlx::query(&schema::add_run_column(&self.names, column, kind))
                .persistent(false)
                .execute(&mut *conn)
                .await;
            if let Err(e) = added {
                if self.dialect != Dialect::MySql
                    || !has_column(&self.columns_on(conn).await?, column)
                {
                    return Err(self.error(&format!("add the column {column}"))(e));
                }
            }
            tracing::info!(
                target: "apscheduler",
                table = %self.names.runs_table,
                column,
                "run history table upgraded: column added"
            );
        }
        Ok(())
    }

    /// Upgrades a node registry created before nodes named their protocol: adds the
    /// `protocol` column (rows already there read as `history_records`, which is what
    /// their nodes keep). Forgiven on MySQL/MariaDB when another scheduler added it.
    pub(crate) async fn add_node_protocol(&self, conn: &mut DB::Connection) -> Result<()> {
        let table = &self.names.nodes_table;
        if has_column(&self.columns_of(conn, table).await?, "protocol") {
            return Ok(());
        }
        let added = sqlx::query(&schema::add_node_protocol_column(self.dialect, &self.names))
            .persistent(false)
            .execute(&mut *conn)
            .await;
        if let Err(e) = added {
            if self.dialect != Dialect::MySql
                || !has_column(&self.columns_of(conn, table).await?, "protocol")
            {
                return Err(self.error("add the column protocol")(e));
            }
        }
        tracing::info!(target: "apscheduler", table = %table, "node registry upgraded: column protocol added");
        Ok(())
    }
}
