//! SQLite: one writer at a time. Claims and batches run in `BEGIN IMMEDIATE`
//! transactions, which take the database's write lock up front (waiting up to the busy
//! timeout), so two claimers never see the same due row; readers are not blocked (WAL).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::SqlitePool;
use sqlx::{ConnectOptions as _, Sqlite};

use crate::backend::prelude::*;

/// How a write transaction starts: with the write lock.
const BEGIN: &str = "BEGIN IMMEDIATE";

/// The SQLite backend.
#[derive(Debug)]
pub(crate) struct SqliteDriver {
    pool: SqlitePool,
    names: Names,
    parts: Parts<Sqlite>,
    /// Leases due rows to a holder and returns them, in one statement.
    claim: String,
    /// Every row, as one value (see [`one_value`]).
    fetch_all: String,
    /// The background WAL checkpoints, when asked for.
    checkpoints: Option<Checkpoints>,
}

/// A task that checkpoints the WAL every so often on a connection of its own
/// ([`SqlJobStoreBuilder::sqlite_background_checkpoints`](crate::SqlJobStoreBuilder::sqlite_background_checkpoints)),
/// so that no claim or release pays for one. Stops with the store, or when dropped.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Checkpoints {
    /// Starts the task on the current tokio runtime (none without one: the commits'
    /// own checkpoints at the safety bound remain).
    pub(crate) fn start(options: sqlx::sqlite::SqliteConnectOptions, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Checkpoints { stop };
        };
        runtime.spawn(async move {
            let mut conn: Option<sqlx::sqlite::SqliteConnection> = None;
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                let done = match conn.as_mut() {
                    Some(c) => sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                        .execute(&mut *c)
                        .await
                        .map(|_| ()),
                    None => options.connect().await.map(|c| conn = Some(c)),
                };
                match done {
                    Ok(()) => failing = false,
                    Err(e) => {
                        if !failing {
                            apscheduler_core::log_warn!(target: "apscheduler", "SQLite: background WAL checkpoint failed (retried every {every:?}; commits checkpoint past {} pages meanwhile): {e}", crate::connect::WAL_SAFETY_PAGES);
                        }
                        failing = true;
                        conn = None;
                    }
                }
            }
        });
        Checkpoints { stop }
    }

    fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SqliteDriver {
    pub(crate) fn new(pool: SqlitePool, names: Names) -> Self {
        // Leases the due rows and returns them in one statement (SQLite 3.35+).
        let claim = format!(
            "UPDATE {jobs} SET lease_holder = ?4, lease_expires = ?5 WHERE id IN (\
             SELECT id FROM {jobs} WHERE next_run_time <= ?2 AND corrupt IS NULL \
             AND (lease_expires IS NULL OR lease_expires <= ?2 OR lease_holder = ?4) \
             ORDER BY next_run_time, id LIMIT ?3) \
             RETURNING {columns}",
            jobs = names.jobs,
            columns = row_columns(Dialect::Sqlite, "", "?1")
        );
        // A state is carried as JSON text when it is text, else (bincode, or a value of
        // another type) as hex; one larger than the bound (?1) is not carried at all.
        // No ORDER BY: sorting 10,000 rows with their states spills to a temporary file;
        // the rows are sorted once read.
        let len = Dialect::Sqlite.state_size("");
        let fetch_all = format!(
            "SELECT CAST(json_group_array(json_array(id, next_run_time, \
             CASE WHEN {len} <= ?1 AND state_bin IS NULL AND typeof(state) = 'text' \
             THEN state END, \
             CASE WHEN {len} <= ?1 AND (state_bin IS NOT NULL OR typeof(state) <> 'text') \
             THEN hex(COALESCE(state_bin, CAST(state AS BLOB))) END, \
             {len}, format_version, corrupt)) AS BLOB) FROM {jobs}",
            jobs = names.jobs
        );
        SqliteDriver {
            fetch_all,
            parts: Parts::new(&pool, Dialect::Sqlite, &names),
            claim,
            pool,
            names,
            checkpoints: None,
        }
    }

    /// The driver with its background checkpoints (`None`: SQLite's own).
    pub(crate) fn with_checkpoints(mut self, checkpoints: Option<Checkpoints>) -> Self {
        self.checkpoints = checkpoints;
        self
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), primary codes.
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// `BEGIN IMMEDIATE` on a database that several processes may be opening at once.
/// SQLite answers BUSY at once, without waiting out the busy timeout, while another
/// connection switches the file to WAL or recovers it (a new connection of any pool on
/// the file may be the one doing so); those moments are short, so try again.
async fn begin_opening(
    pool: &SqlitePool,
) -> std::result::Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
    let mut attempt = 0;
    loop {
        match pool.begin_with(BEGIN).await {
            Err(e) if attempt < 50 && is_busy(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl Driver for SqliteDriver {
    async fn migrate(&self) -> Result<()> {
        let tx = begin_opening(&self.pool)
            .await
            .map_err(|e| migration_error(Dialect::Sqlite, &self.names, "begin", e))?;
        migrate_in(tx, Dialect::Sqlite, &self.names).await
    }

    fn parts(&self) -> &dyn SharedParts {
        &self.parts
    }

    /// In one value: each row sent on its own from the connection's thread costs a
    /// thread wake-up (one `aps jobs list` of 10,000 jobs switched threads 17,000 times;
    /// 300 times since).
    async fn fetch_all(&self, max_bytes: i64) -> Result<Vec<FetchedRow>> {
        let map = |e| StoreError::sql("SQLite: get_all_jobs", e);
        // One statement, one snapshot: a listing never shows a job twice or misses one
        // that was there throughout.
        let mut rows = one_value_rows(
            sqlx::query(&self.fetch_all).bind(max_bytes),
            &self.pool,
            |(id, next_run_time, text, hex, size, format_version, corrupt): JobItem| {
                let state = match (text, hex) {
                    (Some(Bytes(b)), _) => Some(b),
                    (None, Some(h)) => Some(from_hex(&h).ok_or_else(|| {
                        sqlx::Error::Decode(format!("job '{id}': invalid hex state").into())
                    })?),
                    (None, None) => None,
                };
                Ok(FetchedRow {
                    id,
                    next_run_time,
                    state,
                    size: size.unwrap_or(0),
                    format_version,
                    corrupt,
                })
            },
        )
        .await
        .map_err(map)?;
        // The order of `SharedRows::fetch_all`: SQLite compares text byte by byte, as
        // `str` does.
        rows.sort_unstable_by(|a, b| {
            (a.next_run_time.is_none(), a.next_run_time, &a.id).cmp(&(
                b.next_run_time.is_none(),
                b.next_run_time,
                &b.id,
            ))
        });
        Ok(rows)
    }

    async fn insert(&self, rows: &[EncodedJob], replace: bool) -> Result<()> {
        let map =
            |e| StoreError::insert("SQLite: add_jobs", crate::driver::conflict_message(rows), e);
        let statement = |rows: usize| {
            let mut sql = format!(
                "INSERT INTO {} ({WRITTEN_COLUMNS}) VALUES {}",
                self.names.jobs,
                row_values(rows)
            );
            if replace {
                sql.push_str(
                    " ON CONFLICT (id) DO UPDATE SET next_run_time = excluded.next_run_time, \
                     paused = excluded.paused, state = excluded.state, state_bin = excluded.state_bin, \
                     format_version = excluded.format_version, corrupt = NULL",
                );
            }
            sql
        };
        // One statement is atomic by itself (one round trip to the connection's
        // thread instead of three); several chunks share a write transaction.
        if rows.len() <= CHUNK {
            let sql = statement(rows.len());
            let q = sqlx::query(&sql).persistent(rows.len() == 1);
            bind_rows(q, rows).execute(&self.pool).await.map_err(map)?;
            return Ok(());
        }
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        for chunk in rows.chunks(CHUNK) {
            let sql = statement(chunk.len());
            let q = sqlx::query(&sql).persistent(chunk.len() == CHUNK);
            bind_rows(q, chunk).execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)
    }

    async fn claim(&self, req: ClaimRequest<'_>) -> Result<Vec<FetchedRow>> {
        let map = |e| StoreError::sql("SQLite: acquire_due_jobs", e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        let rows = req
            .bind_numbered(sqlx::query(&self.claim), req.expires)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        rows.iter()
            .map(crate::driver::read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(map)
    }

    async fn mark_corrupt(&self, marks: &[(String, String)]) -> Result<()> {
        mark_corrupt_in(&self.pool, &self.names.jobs, marks, CHUNK)
            .await
            .map_err(|e| StoreError::sql("SQLite: marking corrupt jobs", e))
    }

    async fn extend(&self, req: Extension<'_>) -> Result<Vec<String>> {
        let (holder, ids, now, expires) = (req.holder, req.ids, req.now, req.expires);
        let map = |e| StoreError::sql("SQLite: extend_leases", e);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        let jobs = &self.names.jobs;
        let statement = |ids: &str| {
            format!(
                "UPDATE {jobs} SET lease_expires = ? WHERE id IN ({ids}) AND lease_holder = ? \
                 AND lease_expires > ? RETURNING id"
            )
        };
        let held = held_ids_on::<Sqlite>(
            &mut tx,
            statement,
            Some(expires),
            (holder, ids, Some(now)),
            CHUNK,
        )
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(held)
    }

    async fn release(&self, req: Release<'_>) -> Result<Vec<String>> {
        let map = |e| StoreError::sql("SQLite: release_jobs", e);
        let jobs = &self.names.jobs;
        // One multi-row UPDATE ... FROM (VALUES ...) per chunk.
        let update = |rows: usize| {
            format!(
                "UPDATE {jobs} SET next_run_time = v.column2, paused = v.column3, state = v.column4, \
                 state_bin = v.column5, format_version = v.column6, \
                 lease_holder = NULL, lease_expires = NULL, corrupt = NULL \
                 FROM (VALUES {}) AS v \
                 WHERE {jobs}.id = v.column1 AND {jobs}.lease_holder = ?",
                row_values(rows)
            )
        };
        // `BEGIN IMMEDIATE` holds the write lock: the held rows stay held until commit.
        let held =
            |ids: &str| format!("SELECT id FROM {jobs} WHERE id IN ({ids}) AND lease_holder = ?");
        let tx = self.pool.begin_with(BEGIN).await.map_err(map)?;
        release_in::<Sqlite>(tx, (jobs, held, update), req, CHUNK)
            .await
            .map_err(map)
    }

    async fn close(&self) {
        if let Some(c) = &self.checkpoints {
            c.stop();
        }
        self.parts.close().await;
    }
}

/// The run history: writes in `BEGIN IMMEDIATE` transactions (one writer at a time),
/// interruptions in one `UPDATE ... RETURNING`.
#[async_trait]
impl RunsDialect for Runs<Sqlite> {
    async fn create(&self) -> Result<()> {
        // Schedulers preparing the history of a new file together: see `begin_opening`.
        let mut tx = begin_opening(&self.pool)
            .await
            .map_err(self.error("create the table"))?;
        self.create_on(&mut tx).await?;
        tx.commit().await.map_err(self.error("create the table"))?;
        Ok(())
    }

    async fn upsert(&self, rows: &[RunWrite<'_>]) -> Result<()> {
        self.upsert_values(rows, Some(BEGIN)).await
    }

    async fn start(&self, rows: &[RunWrite<'_>]) -> Result<Vec<String>> {
        self.start_values(rows).await
    }

    async fn latest(&self, job_ids: &[&str]) -> Result<Vec<RunRow>> {
        // A JSON array of the ids: one statement, however many jobs; two halves of the
        // list on two connections at once, each built on its connection's thread (on two
        // cores where there are two). Each job's newest run is read whole in one of
        // them; the two read moments differ as the job list's and the runs' already do.
        let (first, second) = job_ids.split_at(job_ids.len() / 2);
        let half = |ids: &[&str]| {
            let list = serde_json::to_string(ids).unwrap_or_default();
            async move {
                one_value::<Vec<RunItem>>(
                    sqlx::query(&self.sql.latest_of_list).bind(list),
                    &self.pool,
                )
                .await
            }
        };
        let (first, second) = futures_util::future::try_join(half(first), half(second))
            .await
            .map_err(self.error("latest_runs"))?;
        Ok(first
            .into_iter()
            .chain(second)
            .map(
                |(
                    run_id,
                    job_id,
                    scheduled_at,
                    started_at,
                    finished_at,
                    outcome,
                    exit_code,
                    http_status,
                    output,
                    message,
                    node,
                    attempt,
                    backfill,
                    due_at,
                )| RunRow {
                    run_id,
                    job_id,
                    scheduled_at,
                    started_at,
                    finished_at,
                    outcome,
                    exit_code,
                    http_status,
                    output: output.0,
                    message: message.map(|m| m.0),
                    node,
                    attempt,
                    backfill,
                    due_at,
                },
            )
            .collect())
    }

    async fn interrupt(&self, node: &str, now: i64, message: &str) -> Result<Vec<RunRow>> {
        self.interrupt_returning(node, now, message).await
    }
}

/// A job row as [`SqliteDriver::fetch_all`]'s statement gives it: id, next run time,
/// the state as text or as hex, its size, format version, corrupt mark.
type JobItem = (
    String,
    Option<i64>,
    Option<Bytes>,
    Option<String>,
    Option<i64>,
    i32,
    Option<String>,
);

/// A run row as the `latest_of_list` statement gives it, in `schema::RUN_COLUMNS` order.
type RunItem = (
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<i32>,
    Option<i32>,
    Bytes,
    Option<Bytes>,
    String,
    i64,
    i32,
    Option<i64>,
);

/// Runs a statement that returns its rows as one JSON array (`json_group_array`, cast
/// to a BLOB so that the text is not checked as UTF-8), and reads the array.
///
/// Why: sqlx runs each SQLite connection on a thread of its own, which sends the rows
/// of a statement one by one to the task reading them, a thread wake-up each
/// (`latest_runs` of 10,000 jobs took 167 ms where its statement takes 16-40 ms in the
/// `sqlite3` shell). One value crosses once.
async fn one_value<'q, T: serde::de::DeserializeOwned>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    pool: &SqlitePool,
) -> std::result::Result<T, sqlx::Error> {
    use sqlx::Row as _;
    let row = query.fetch_one(pool).await?;
    // Borrowed from the row: the array can be megabytes.
    let bytes: &[u8] = row.try_get(0)?;
    serde_json::from_slice(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// As [`one_value`] for a statement whose value is an array of rows: the array is split
/// into its elements first (borrowed, unparsed), then each element is read into `T` and
/// through `convert`, on every core once there are many. Reading the rows one after the
/// other was a fifth of `aps jobs list` on 10,000 jobs: each state is a JSON string
/// inside the array, unescaped byte by byte.
async fn one_value_rows<'q, T, R, F>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    pool: &SqlitePool,
    convert: F,
) -> std::result::Result<Vec<R>, sqlx::Error>
where
    T: serde::de::DeserializeOwned,
    R: Send,
    F: Fn(T) -> std::result::Result<R, sqlx::Error> + Sync,
{
    use rayon::prelude::*;
    use sqlx::Row as _;
    let row = query.fetch_one(pool).await?;
    let bytes: &[u8] = row.try_get(0)?;
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    // `RawValue` needs UTF-8 text; the array holds bytes as stored (see [`Bytes`]), so
    // text that is not UTF-8 takes the one-pass path.
    let Ok(text) = std::str::from_utf8(bytes) else {
        let items: Vec<T> = serde_json::from_slice(bytes).map_err(decode)?;
        return items.into_iter().map(&convert).collect();
    };
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(decode)?;
    let read = |item: &&serde_json::value::RawValue| {
        convert(serde_json::from_str::<T>(item.get()).map_err(decode)?)
    };
    if items.len() >= PARALLEL_ROWS {
        items.par_iter().map(read).collect()
    } else {
        items.iter().map(read).collect()
    }
}

/// Rows from which [`one_value_rows`] reads on every core.
const PARALLEL_ROWS: usize = 1_000;

/// A JSON string read as its bytes, unchecked: a text column may hold bytes that are
/// not UTF-8 (SQLite does not check), which a row-by-row read also returns as stored.
#[derive(Debug, Default)]
struct Bytes(Vec<u8>);

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v.as_bytes().to_vec()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v.into_bytes()))
            }
        }
        // serde_json hands a string to `deserialize_bytes` unescaped but unchecked.
        d.deserialize_bytes(Visitor)
    }
}

/// The bytes of SQLite's `hex()` text; `None` if it is not hex.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_back() {
        assert_eq!(from_hex("00FFa0"), Some(vec![0, 255, 160]));
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn json_strings_read_as_their_bytes() {
        // Escapes are undone; bytes that are not UTF-8 are kept as they are.
        let raw = b"[\"a\\u0000\\\"\xff\", null]";
        let v: (Bytes, Option<Bytes>) = serde_json::from_slice(raw).unwrap();
        assert_eq!(v.0 .0, b"a\0\"\xff");
        assert!(v.1.is_none());
    }
}
