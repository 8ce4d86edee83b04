//! The interface each backend implements with its own SQL and atomic primitives.

use async_trait::async_trait;

use crate::codec::{EncodedJob, FetchedRow};
use crate::error::StoreError;

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// `(earliest next run time of a row not under a lease that outlasts it, earliest
/// lease expiry that outlasts its row's next run time)`, microseconds: what
/// [`SharedRows::next_run_time`](crate::shared::SharedRows::next_run_time) returns.
pub(crate) type NextRunTime = (Option<i64>, Option<i64>);

/// What a claim is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRequest<'a> {
    /// The claiming scheduler.
    pub(crate) holder: &'a str,
    /// `now`, microseconds, rounded down.
    pub(crate) now: i64,
    /// The lease's end on the caller's clock, microseconds (SQLite).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) expires: i64,
    /// The lease's length, microseconds: backends with a clock (PostgreSQL, MySQL)
    /// lease until their own time plus this, and judge expiry by their own time.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) lease: i64,
    /// At most this many rows.
    pub(crate) limit: i64,
    /// States larger than this many bytes are not fetched.
    pub(crate) max_bytes: i64,
    /// The claim partitions to claim from first, ascending (of
    /// [`CLAIM_PARTITIONS`](crate::schema::CLAIM_PARTITIONS)); `None`: the whole due
    /// head. SQLite has no partitions and ignores it.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) prefer: Option<&'a [u32]>,
}

impl<'a> ClaimRequest<'a> {
    /// Binds `max_bytes`, `now`, `limit`, `holder` and `lease_end` as parameters 1 to 5:
    /// the numbered claim statements of SQLite (`lease_end`: [`expires`](Self::expires))
    /// and PostgreSQL ([`lease`](Self::lease), added to the server's time).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn bind_numbered<'q, DB>(
        &self,
        query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
        lease_end: i64,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
    where
        'a: 'q,
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'a str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.max_bytes)
            .bind(self.now)
            .bind(self.limit)
            .bind(self.holder)
            .bind(lease_end)
    }
}

/// What a lease extension is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extension<'a> {
    /// The scheduler whose leases are extended.
    pub(crate) holder: &'a str,
    /// The rows (unique ids).
    pub(crate) ids: &'a [String],
    /// `now`, microseconds: leases that ended before it are not extended (SQLite;
    /// backends with a clock use their own time).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) now: i64,
    /// The leases' new end on the caller's clock, microseconds (SQLite).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) expires: i64,
    /// The leases' new length from the backend's own time, microseconds (PostgreSQL,
    /// MySQL).
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) lease: i64,
}

/// What a release is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Release<'a> {
    /// The scheduler whose leases are dropped.
    pub(crate) holder: &'a str,
    /// New states of rows it holds.
    pub(crate) updates: &'a [EncodedJob],
    /// Rows it holds to delete.
    pub(crate) removes: &'a [String],
    /// The releasing store's token: PostgreSQL notifies the change with it in the
    /// release's own statement (see [`Driver::notify_change`]).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) token: &'a str,
}

/// One backend: the operations of the job store on rows.
///
/// Implementations must be atomic where the `JobStore` contract asks for it: a claim
/// never hands a row to two claimers, and `insert` is all or nothing.
#[async_trait]
pub(crate) trait Driver: Send + Sync + std::fmt::Debug {
    /// Creates the schema or brings it up to date.
    async fn migrate(&self) -> Result<()>;

    /// Inserts rows (ids unique within `rows`), all or nothing. Without `replace`, an
    /// existing id is a [`StoreError::Conflict`]; with it, the row's job columns are
    /// overwritten (lease kept, corrupt mark cleared).
    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()>;

    /// The row and run history operations every dialect runs alike (see
    /// [`crate::backend`]).
    fn parts(&self) -> &dyn crate::backend::SharedParts;

    /// The operations every dialect runs alike on job rows (see [`crate::shared`]).
    fn rows(&self) -> &dyn crate::shared::SharedRows {
        self.parts().rows()
    }

    /// Every row, by next run time then id, paused (NULL) last: what
    /// [`SharedRows::fetch_all`](crate::shared::SharedRows::fetch_all) returns, which is
    /// how the backends read them unless they know a faster way (SQLite does).
    async fn fetch_all(&self, max_bytes: i64) -> Result<Vec<FetchedRow>> {
        self.rows().fetch_all(max_bytes).await
    }

    /// The run history table's operations, on the same pool (see [`crate::runs`]).
    fn history(&self) -> &dyn crate::history_ops::HistoryOps {
        self.parts().history()
    }

    /// Leases up to `limit` due rows (next run time at or before `now`, not corrupt, no
    /// live lease) to `holder` and returns them (in any order): with `prefer`, the
    /// earliest of those partitions' first, then the earliest of the others' to fill
    /// `limit`.
    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>>;

    /// Marks rows corrupt (`(id, reason)`) and drops their leases.
    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()>;

    /// Extends the live leases `holder` has on these ids (unique) to `expires`;
    /// returns the ids that were extended.
    async fn extend(&self, req: Extension<'_>) -> Result<Vec<String>>;

    /// Stores new states and deletes rows, for rows whose lease is held by `holder`
    /// (expired or not), dropping the lease; other rows are left alone. Ids are unique
    /// across both lists. Running it again after a failure is harmless: rows already
    /// released are no longer held.
    ///
    /// Returns the ids it released: the others were not held by `holder` (another
    /// scheduler claimed them after the lease expired) or are gone. When it released
    /// any, the other schedulers are told as by [`notify_change`](Self::notify_change),
    /// in the same round trip.
    async fn release(&self, req: Release<'_>) -> Result<Vec<String>>;

    /// [`release`](Self::release), writing `records` to the run history first (in the
    /// same round trip and atomically on PostgreSQL), and reading the next run time
    /// after the release (`(due, leased)` as
    /// [`SharedRows::next_run_time`](crate::shared::SharedRows::next_run_time)) when
    /// that costs no round trip of its own (`None` otherwise, or when nothing was
    /// released).
    async fn release_reading_next(
        &self,
        req: Release<'_>,
        records: &[crate::runs::RunWrite<'_>],
    ) -> Result<(Vec<String>, Option<NextRunTime>)> {
        if !records.is_empty() {
            self.history().upsert(records).await?;
        }
        Ok((self.release(req).await?, None))
    }

    /// Closes the pool.
    async fn close(&self) {
        self.parts().close().await;
    }

    /// Tells the other schedulers on this table that its jobs changed (PostgreSQL:
    /// `NOTIFY`, with `token`, the notifying store's, as payload); the other backends
    /// have no channel and do nothing.
    async fn notify_change(&self, _token: &str) -> Result<()> {
        Ok(())
    }

    /// Records that the store with `token` waits, until `until` (microseconds, the
    /// server's clock), for another scheduler's release (PostgreSQL); the other
    /// backends have no channel and do nothing.
    async fn wait_for_release(&self, _token: &str, _until: i64) -> Result<()> {
        Ok(())
    }

    /// Removes the wait the store with `token` recorded (PostgreSQL), at its shutdown.
    async fn stop_waiting(&self, _token: &str) -> Result<()> {
        Ok(())
    }

    /// Calls `listener` whenever another store notifies a change of this table
    /// (PostgreSQL: `LISTEN` on a connection of its own, ignoring notifications with
    /// `token`); `None` on backends without a channel. The task ends when the pool
    /// closes; abort it before closing the pool (it holds one of its connections).
    fn listen(
        &self,
        _token: std::sync::Arc<str>,
        _listener: apscheduler_core::ChangeListener,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// Reads a row of `id, next_run_time, state bytes (or NULL when too large), size,
/// format_version, corrupt`, as every backend selects it.
pub(crate) fn read_row<'r, R>(r: &'r R) -> std::result::Result<FetchedRow, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(FetchedRow {
        id: r.try_get(0)?,
        next_run_time: r.try_get(1)?,
        state: r.try_get(2)?,
        size: r.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
        format_version: r.try_get(4)?,
        corrupt: r.try_get(5)?,
    })
}

/// Fails when the stored schema version is newer than this build knows.
pub(crate) fn check_not_too_new(names: &crate::schema::Names, current: i64) -> Result<()> {
    if current > i64::from(crate::SCHEMA_VERSION) {
        Err(StoreError::SchemaTooNew {
            table: names.table.clone(),
            found: current,
            known: crate::SCHEMA_VERSION,
        })
    } else {
        Ok(())
    }
}

/// The columns of the job table this crate uses.
pub(crate) const JOB_COLUMNS: [&str; 8] = [
    "id",
    "next_run_time",
    "paused",
    "state",
    "format_version",
    "lease_holder",
    "lease_expires",
    "corrupt",
];

/// Before the first migration: a table that already exists under the job table's name
/// must be ours (a schema table lost, say), not another program's. `existing` are its
/// columns (empty: no such table).
pub(crate) fn check_existing_table(
    names: &crate::schema::Names,
    existing: &[String],
) -> Result<()> {
    if existing.is_empty() {
        return Ok(());
    }
    let missing: Vec<&str> = JOB_COLUMNS
        .iter()
        .copied()
        .filter(|c| !existing.iter().any(|e| e.eq_ignore_ascii_case(c)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::ForeignTable {
            table: names.table.clone(),
            missing: missing.join(", "),
        })
    }
}

/// The `Conflict` message for an insert of `rows`.
pub(crate) fn conflict_message(rows: &[EncodedJob]) -> String {
    match rows {
        [row] => format!("Job identifier ({}) conflicts with an existing job", row.id),
        _ => format!(
            "Job identifier conflicts with an existing job (one of the {} jobs of this batch; none was added)",
            rows.len()
        ),
    }
}
