//! What every dialect's driver holds beside its own statements: the row and run
//! history operations every dialect runs alike on its pool ([`Parts`]), reached through
//! [`Driver::rows`](crate::driver::Driver::rows) and
//! [`Driver::history`](crate::driver::Driver::history); and the names every dialect
//! file imports ([`prelude`]).

use async_trait::async_trait;
use sqlx::{Database, Pool};

use crate::history_ops::HistoryOps;
use crate::run_rows::{RunOps, RunRows};
use crate::runs::Runs;
use crate::schema::{Dialect, Names};
use crate::shared::{Rows, SharedRows};

/// Rows per multi-row statement of SQLite and MySQL (at most 9 placeholders a row:
/// SQLite allows 32,766 placeholders a statement, MySQL 65,535).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) const CHUNK: usize = 500;

/// The shared row operations and the run history of one job table, on one pool.
#[derive(Debug)]
pub(crate) struct Parts<DB: Database> {
    pool: Pool<DB>,
    rows: Rows<DB>,
    history: Runs<DB>,
    run_rows: RunRows<DB>,
}

impl<DB: Database> Parts<DB> {
    pub(crate) fn new(pool: &Pool<DB>, dialect: Dialect, names: &Names) -> Self {
        Parts {
            pool: pool.clone(),
            rows: Rows::new(pool.clone(), dialect, names),
            history: Runs::new(pool.clone(), dialect, names),
            run_rows: RunRows::new(pool.clone(), dialect, names),
        }
    }

    /// These parts, the run history keeping a connection for its reads of `running`
    /// records and one for its writes (see [`Held`](crate::held::Held)) in a pool of
    /// at most `max_connections` (`ping`: check them after idleness). SQLite's single
    /// writer gains nothing from it.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) fn keeping_connections(mut self, max_connections: u32, ping: bool) -> Self {
        self.history.kept = Some(crate::runs::Kept {
            reads: crate::held::Held::new(&self.pool, max_connections, ping),
            writes: crate::held::Held::new(&self.pool, max_connections, ping),
        });
        self
    }
}

/// [`Parts`] of any dialect, as a driver hands them out.
#[async_trait]
pub(crate) trait SharedParts: Send + Sync + std::fmt::Debug {
    /// The operations every dialect runs alike on job rows.
    fn rows(&self) -> &dyn SharedRows;

    /// The run history table's operations.
    fn history(&self) -> &dyn HistoryOps;

    /// The run contract's rows.
    fn run_rows(&self) -> &dyn RunOps;

    /// Closes the pool.
    async fn close(&self);
}

#[async_trait]
impl<DB: Database> SharedParts for Parts<DB>
where
    Rows<DB>: SharedRows,
    Runs<DB>: HistoryOps,
    RunRows<DB>: RunOps,
{
    fn rows(&self) -> &dyn SharedRows {
        &self.rows
    }

    fn history(&self) -> &dyn HistoryOps {
        &self.history
    }

    fn run_rows(&self) -> &dyn RunOps {
        &self.run_rows
    }

    async fn close(&self) {
        // The pool waits for every connection to come back before it closes.
        if let Some(kept) = &self.history.kept {
            kept.reads.release().await;
            kept.writes.release().await;
        }
        self.pool.close().await;
    }
}

/// The names every dialect file uses, imported at once (`use crate::backend::prelude::*`).
pub(crate) mod prelude {
    #[cfg(any(feature = "sqlite", feature = "mysql"))]
    pub(crate) use super::CHUNK;
    pub(crate) use super::{Parts, SharedParts};
    pub(crate) use crate::codec::{EncodedJob, FetchedRow};
    pub(crate) use crate::driver::{ClaimRequest, Driver, Extension, Release, Result};
    // SQLite reads the next run time in a round trip of its own, and names no such type.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) use crate::driver::NextRunTime;
    pub(crate) use crate::error::StoreError;
    pub(crate) use crate::history_ops::RunsDialect;
    pub(crate) use crate::runs::{RunRow, RunWrite, Runs};
    pub(crate) use crate::schema::{Dialect, Names};
    #[cfg(feature = "mysql")]
    pub(crate) use crate::shared::placeholders;
    pub(crate) use crate::shared::{row_columns, WRITTEN_COLUMNS};
    // Batches with anonymous `?` placeholders.
    #[cfg(any(feature = "sqlite", feature = "mysql"))]
    pub(crate) use crate::shared::{
        bind_rows, held_ids_on, mark_corrupt_in, release_in, row_values,
    };
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) use crate::shared::{migrate_in, migration_error};
}
