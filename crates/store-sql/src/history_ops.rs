//! The run history operations a store calls ([`HistoryOps`]), written once for every
//! dialect: a dialect supplies only what it does its own way ([`RunsDialect`]); the
//! rest runs the shared statements of [`Runs`].

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::driver::Result;
use crate::runs::{NodeRow, RunFilter, RunRow, RunWrite, Runs};
use crate::shared::RowsAffected;

/// One backend's operations on the run history table.
#[async_trait]
pub(crate) trait HistoryOps: Send + Sync + std::fmt::Debug {
    /// Whether [`create`](HistoryOps::create) succeeded on this pool.
    fn is_ready(&self) -> bool;

    /// Creates the table and its indexes unless they exist, and checks that a table
    /// found under the name has the columns; idempotent.
    async fn create(&self) -> Result<()>;

    /// Writes the rows (run ids unique within them), each replacing the row with its
    /// run id; all or nothing.
    async fn upsert(&self, rows: &[RunWrite<'_>]) -> Result<()>;

    /// Writes the starts of `rows` (`running` rows with `started_at`, run ids unique
    /// within them) as `RunHistory::record_starts` says: inserted where absent,
    /// `started_at` set where the row is `running` without one, nothing else changed;
    /// returns the run ids now `running` with a start.
    async fn start(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>>;

    /// The rows matching `filter`, by `scheduled_at` then `run_id`, both descending.
    async fn query(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRow>>;

    /// The newest row of each job of `job_ids` (that has one).
    async fn latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>>;

    /// Deletes the ended rows of `job_id` beyond the newest `keep`; how many.
    async fn prune_job(&self, job_id: &str, keep: i64) -> Result<u64>;

    /// Deletes the ended rows scheduled before `before` (microseconds); how many.
    async fn prune_before(&self, before: i64) -> Result<u64>;

    /// Marks the running rows of `node` interrupted, finished at `now` with `message`;
    /// returns them as changed.
    async fn interrupt(&self, node: &str, now: i64, message: &str) -> Result<Vec<RunRow>>;

    /// Writes a node's registry row (creating or replacing it).
    async fn heartbeat(&self, row: &NodeRow) -> Result<()>;

    /// Every registry row, by node name.
    async fn nodes(&self) -> Result<Vec<NodeRow>>;

    /// Deletes a node's registry row; whether there was one.
    async fn remove_node(&self, node: &str) -> Result<bool>;
}

/// What a dialect's `Runs<DB>` does its own way; [`HistoryOps`] is built on it.
#[async_trait]
pub(crate) trait RunsDialect: Send + Sync + std::fmt::Debug {
    /// [`HistoryOps::create`]: creates the table and its indexes (under the dialect's
    /// lock or transaction); the history is marked ready once it returns `Ok`.
    async fn create(&self) -> Result<()>;

    /// [`HistoryOps::upsert`]: the batch in the dialect's statements.
    async fn upsert(&self, rows: &[RunWrite<'_>]) -> Result<()>;

    /// [`HistoryOps::start`]: the batch in the dialect's statements.
    async fn start(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>>;

    /// [`HistoryOps::latest`]: the newest row of each job, read the dialect's fastest way.
    async fn latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>>;

    /// [`HistoryOps::interrupt`]: one `UPDATE ... RETURNING`, or what stands for it.
    async fn interrupt(&self, node: &str, now: i64, message: &str) -> Result<Vec<RunRow>>;
}

#[async_trait]
impl<DB> HistoryOps for Runs<DB>
where
    Runs<DB>: RunsDialect,
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
    fn is_ready(&self) -> bool {
        self.ready()
    }

    async fn create(&self) -> Result<()> {
        RunsDialect::create(self).await?;
        self.set_ready();
        Ok(())
    }

    async fn upsert(&self, rows: &[RunWrite<'_>]) -> Result<()> {
        RunsDialect::upsert(self, rows).await
    }

    async fn start(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>> {
        RunsDialect::start(self, rows).await
    }

    async fn query(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRow>> {
        self.select(filter).await
    }

    async fn latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>> {
        RunsDialect::latest(self, job_ids).await
    }

    async fn prune_job(&self, job_id: &str, keep: i64) -> Result<u64> {
        self.delete_beyond(job_id, keep).await
    }

    async fn prune_before(&self, before: i64) -> Result<u64> {
        self.delete_before(before).await
    }

    async fn interrupt(&self, node: &str, now: i64, message: &str) -> Result<Vec<RunRow>> {
        RunsDialect::interrupt(self, node, now, message).await
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
