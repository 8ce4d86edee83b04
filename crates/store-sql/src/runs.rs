//! The run history table (`<table>_runs`): its rows as written and read, and the pool
//! and statements of one table ([`Runs`]); the statements every dialect runs alike are
//! in [`crate::runs_sql`]. A dialect file implements
//! [`RunsDialect`](crate::history_ops::RunsDialect) for its `Runs<DB>`, adding only what
//! differs: how the table is created (under which lock), how a batch is written
//! (PostgreSQL: arrays through `UNNEST`), how the newest runs are read, and how running
//! records are interrupted (`UPDATE ... RETURNING`, or select then update on MySQL);
//! [`HistoryOps`](crate::history_ops::HistoryOps) follows for every dialect.

use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "mysql")]
use apscheduler_core::RunOutcome;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
use sqlx::Encode;
use sqlx::{ColumnIndex, Database, Decode, Pool, Row, Type};

use crate::error::StoreError;
use crate::runs_sql::RunStatements;
use crate::schema::{Dialect, Names};

/// Most records per multi-row statement (14 parameters each: SQLite takes 32,766
/// parameters, MySQL 65,535).
pub(crate) const CHUNK_ROWS: usize = 1000;

/// Most bytes of output and message per statement (MySQL/MariaDB refuse a packet over
/// `max_allowed_packet`, 16 MiB by default on MariaDB). A larger record goes alone.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;

/// A run record as written: its text borrowed, its times in microseconds since the
/// Unix epoch (UTC).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunWrite<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) job_id: &'a str,
    pub(crate) scheduled_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) outcome: &'static str,
    pub(crate) exit_code: Option<i32>,
    pub(crate) http_status: Option<i32>,
    pub(crate) output: &'a [u8],
    pub(crate) message: Option<&'a [u8]>,
    pub(crate) node: &'a str,
    pub(crate) attempt: i64,
    /// 0 or 1.
    pub(crate) backfill: i32,
    pub(crate) due_at: Option<i64>,
}

impl RunWrite<'_> {
    /// The bytes of its output and message.
    pub(crate) fn bytes(&self) -> usize {
        self.output.len() + self.message.map_or(0, <[u8]>::len)
    }
}

/// A run record as read: the columns as stored, checked by
/// [`crate::history`] when turned back into a record.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub(crate) run_id: String,
    pub(crate) job_id: String,
    pub(crate) scheduled_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) outcome: String,
    pub(crate) exit_code: Option<i32>,
    pub(crate) http_status: Option<i32>,
    pub(crate) output: Vec<u8>,
    pub(crate) message: Option<Vec<u8>>,
    pub(crate) node: String,
    pub(crate) attempt: i64,
    pub(crate) backfill: i32,
    pub(crate) due_at: Option<i64>,
}

impl RunRow {
    /// The row after [`HistoryOps::interrupt`](crate::history_ops::HistoryOps::interrupt) changed it.
    #[cfg(feature = "mysql")]
    pub(crate) fn interrupted(mut self, now: i64, message: &str) -> Self {
        self.outcome = RunOutcome::Interrupted.as_str().to_owned();
        self.finished_at = Some(now);
        self.message = Some(message.as_bytes().to_vec());
        self
    }
}

/// The filters of a query, as bound (each `None` leaves its condition out).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunFilter<'a> {
    pub(crate) job_id: Option<&'a str>,
    pub(crate) outcome: Option<&'static str>,
    /// `scheduled_at >= since`, microseconds.
    pub(crate) since: Option<i64>,
    /// `scheduled_at < until`, microseconds.
    pub(crate) until: Option<i64>,
    pub(crate) node: Option<&'a str>,
    pub(crate) limit: i64,
}

/// Splits a batch into statements of at most [`CHUNK_ROWS`] rows and (but for a
/// single larger row) [`CHUNK_BYTES`] bytes of output and message.
pub(crate) fn chunks<'a, 'b>(rows: &'a [RunWrite<'b>]) -> Vec<&'a [RunWrite<'b>]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        let size = r.bytes();
        if i > start && (i - start == CHUNK_ROWS || bytes + size > CHUNK_BYTES) {
            parts.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < rows.len() {
        parts.push(&rows[start..]);
    }
    parts
}

/// A node registry row as stored: times in microseconds.
#[derive(Debug)]
pub(crate) struct NodeRow {
    pub(crate) node: String,
    pub(crate) host: String,
    pub(crate) pid: i64,
    pub(crate) started_at: i64,
    pub(crate) heartbeat_at: i64,
    pub(crate) running: i64,
    pub(crate) protocol: String,
}

/// A pool and the statements of one run history table.
#[derive(Debug)]
pub(crate) struct Runs<DB: Database> {
    pub(crate) pool: Pool<DB>,
    pub(crate) dialect: Dialect,
    pub(crate) names: Names,
    pub(crate) sql: RunStatements,
    ready: AtomicBool,
    /// Connections kept for the reads of `running` records (every pass of a cluster
    /// scheduler makes one) and for the history writer's writes (see
    /// [`Held`](crate::held::Held)); `None`: each statement takes one from the pool.
    pub(crate) kept: Option<Kept<DB>>,
}

/// The connections a run history keeps (see [`Runs::kept`]).
#[derive(Debug)]
pub(crate) struct Kept<DB: Database> {
    pub(crate) reads: crate::held::Held<DB>,
    pub(crate) writes: crate::held::Held<DB>,
}

impl<DB: Database> Runs<DB> {
    pub(crate) fn new(pool: Pool<DB>, dialect: Dialect, names: &Names) -> Self {
        Runs {
            pool,
            dialect,
            sql: RunStatements::new(dialect, names),
            names: names.clone(),
            ready: AtomicBool::new(false),
            kept: None,
        }
    }

    /// Whether the table was created (or found) on this pool.
    pub(crate) fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Records that the table exists.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// What a failed `operation` says it was doing.
    pub(crate) fn error(&self, operation: &str) -> impl Fn(sqlx::Error) -> StoreError {
        let context = format!(
            "{}: run history table {}: {operation}",
            self.dialect.label(),
            self.names.runs_table
        );
        move |e| StoreError::sql(context.clone(), e)
    }
}

/// Binds each row's columns, in [`schema::RUN_COLUMNS`](crate::schema::RUN_COLUMNS) order.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn bind_runs<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
    rows: &'q [RunWrite<'q>],
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB>,
    Option<i32>: Encode<'q, DB>,
    i32: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB>,
{
    for r in rows {
        query = query
            .bind(r.run_id)
            .bind(r.job_id)
            .bind(r.scheduled_at)
            .bind(r.started_at)
            .bind(r.finished_at)
            .bind(r.outcome)
            .bind(r.exit_code)
            .bind(r.http_status)
            .bind(r.output)
            .bind(r.message)
            .bind(r.node)
            .bind(r.attempt)
            .bind(r.backfill)
            .bind(r.due_at);
    }
    query
}

/// Reads a row selected with [`RunStatements::columns`].
pub(crate) fn read_run<'r, R>(r: &'r R) -> std::result::Result<RunRow, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RunRow {
        run_id: r.try_get(0)?,
        job_id: r.try_get(1)?,
        scheduled_at: r.try_get(2)?,
        started_at: r.try_get(3)?,
        finished_at: r.try_get(4)?,
        outcome: r.try_get(5)?,
        exit_code: r.try_get(6)?,
        http_status: r.try_get(7)?,
        output: r.try_get(8)?,
        message: r.try_get(9)?,
        node: r.try_get(10)?,
        attempt: r.try_get(11)?,
        backfill: r.try_get(12)?,
        due_at: r.try_get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(output: &[u8]) -> RunWrite<'_> {
        RunWrite {
            run_id: "r",
            job_id: "j",
            scheduled_at: 0,
            started_at: None,
            finished_at: None,
            outcome: "success",
            exit_code: None,
            http_status: None,
            output,
            message: None,
            node: "n",
            attempt: 1,
            backfill: 0,
            due_at: None,
        }
    }

    #[test]
    fn chunks_by_rows_and_bytes() {
        let small = vec![write(b"x"); 2500];
        let parts = chunks(&small);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let big = vec![0u8; CHUNK_BYTES / 2 + 1];
        let rows = vec![write(&big); 3];
        assert_eq!(
            chunks(&rows).iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        let huge = vec![0u8; CHUNK_BYTES * 2];
        let rows = [write(&huge), write(b"a"), write(b"b")];
        assert_eq!(
            chunks(&rows).iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(chunks(&[]).is_empty());
    }
}
