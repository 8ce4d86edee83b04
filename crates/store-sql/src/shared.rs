//! What the three dialects share: the statements that differ only in their placeholders
//! and casts, the row operations built on them, and the migration steps. A dialect file
//! keeps only what truly differs (its migration lock, insert, claim, extend, release).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::codec::{EncodedJob, FetchedRow};
use crate::driver::{check_existing_table, check_not_too_new, Result};
use crate::error::StoreError;
use crate::schema::{self, Dialect, Names};

impl Dialect {
    /// The `i`-th bind parameter (1-based). Shared statements use each parameter once,
    /// in order, so MySQL's positional `?` binds the same values.
    pub(crate) fn param(self, i: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{i}"),
            Dialect::Postgres => format!("${i}"),
            Dialect::MySql => "?".to_owned(),
        }
    }

    /// The backend's name in error messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL",
        }
    }

    /// A text column as the driver can read it: MySQL flags `utf8mb4_bin` columns as
    /// binary on the wire, which the driver refuses to read as text.
    pub(crate) fn text(self, column: &str) -> String {
        match self {
            Dialect::MySql => format!("CONVERT({column} USING utf8mb4)"),
            Dialect::Sqlite | Dialect::Postgres => column.to_owned(),
        }
    }

    /// The stored state's size in bytes (`state` text plus `state_bin` binary; one of
    /// them is empty), as a 64-bit integer.
    pub(crate) fn state_size(self, prefix: &str) -> String {
        let (text, bin) = (format!("{prefix}state"), format!("{prefix}state_bin"));
        match self {
            Dialect::Sqlite => {
                format!("(length(CAST({text} AS BLOB)) + COALESCE(length({bin}), 0))")
            }
            Dialect::Postgres => {
                format!("(octet_length({text}) + COALESCE(octet_length({bin}), 0))::BIGINT")
            }
            Dialect::MySql => {
                format!("CAST(LENGTH({text}) + COALESCE(LENGTH({bin}), 0) AS SIGNED)")
            }
        }
    }

    /// The stored state as bytes, in whichever format it was written.
    fn state_bytes(self, prefix: &str) -> String {
        let (text, bin) = (format!("{prefix}state"), format!("{prefix}state_bin"));
        match self {
            Dialect::Sqlite => format!("COALESCE({bin}, CAST({text} AS BLOB))"),
            Dialect::Postgres => format!("COALESCE({bin}, convert_to({text}, 'UTF8'))"),
            Dialect::MySql => format!("COALESCE({bin}, CAST({text} AS BINARY))"),
        }
    }

    /// Inserts a row unless its key exists.
    fn insert_ignore(self, table: &str, values: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INSERT OR IGNORE INTO {table} {values}"),
            Dialect::Postgres => {
                format!("INSERT INTO {table} {values} ON CONFLICT (id) DO NOTHING")
            }
            Dialect::MySql => format!("INSERT IGNORE INTO {table} {values}"),
        }
    }

    /// The column names of a table (no rows when there is no such table).
    pub(crate) fn columns_of_table(self) -> String {
        match self {
            Dialect::Sqlite => "SELECT name FROM pragma_table_info(?1)".to_owned(),
            Dialect::Postgres => "SELECT column_name::TEXT FROM information_schema.columns \
                                  WHERE table_schema = current_schema() AND table_name = $1"
                .to_owned(),
            Dialect::MySql => "SELECT CONVERT(column_name USING utf8mb4) \
                               FROM information_schema.columns \
                               WHERE table_schema = DATABASE() AND table_name = ?"
                .to_owned(),
        }
    }
}

/// The columns of a fetched row, as [`crate::driver::read_row`] reads them: `id,
/// next_run_time, state bytes (NULL when larger than the parameter `max_bytes`), size,
/// format_version, corrupt`. `prefix` qualifies the columns (`"j."`, or empty).
pub(crate) fn row_columns(dialect: Dialect, prefix: &str, max_bytes: &str) -> String {
    format!(
        "{id}, {prefix}next_run_time, CASE WHEN {len} <= {max_bytes} THEN {state} END, {len}, \
         {prefix}format_version, {corrupt}",
        id = dialect.text(&format!("{prefix}id")),
        len = dialect.state_size(prefix),
        state = dialect.state_bytes(prefix),
        corrupt = dialect.text(&format!("{prefix}corrupt")),
    )
}

/// The columns a row's job is written to, in [`bind_rows`]'s order.
pub(crate) const WRITTEN_COLUMNS: &str =
    "id, next_run_time, paused, state, state_bin, format_version";

/// The statements of one job table that every dialect runs alike, built once.
#[derive(Debug)]
struct Statements {
    update: String,
    delete: String,
    delete_all: String,
    fetch: String,
    fetch_all: String,
    fetch_corrupt: String,
    next_run_time: String,
    schema_version: String,
}

impl Statements {
    fn new(d: Dialect, n: &Names) -> Self {
        let jobs = &n.jobs;
        let p = |i| d.param(i);
        let columns = row_columns(d, "", &p(1));
        Statements {
            update: format!(
                "UPDATE {jobs} SET next_run_time = {}, paused = {}, state = {}, state_bin = {}, \
                 format_version = {}, corrupt = NULL WHERE id = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            ),
            delete: format!("DELETE FROM {jobs} WHERE id = {}", p(1)),
            delete_all: format!("DELETE FROM {jobs}"),
            fetch: format!("SELECT {columns} FROM {jobs} WHERE id = {}", p(2)),
            fetch_all: format!(
                "SELECT {columns} FROM {jobs} ORDER BY (next_run_time IS NULL), next_run_time, id"
            ),
            fetch_corrupt: format!(
                "SELECT {}, {} FROM {jobs} WHERE corrupt IS NOT NULL ORDER BY id",
                d.text("id"),
                d.text("corrupt")
            ),
            next_run_time: next_run_time_sql(jobs),
            schema_version: format!("SELECT version FROM {} WHERE id = 1", n.schema),
        }
    }
}

/// [`SharedRows::next_run_time`]'s statement on the job table `jobs`.
pub(crate) fn next_run_time_sql(jobs: &str) -> String {
    format!(
        "SELECT \
         (SELECT next_run_time FROM {jobs} WHERE next_run_time IS NOT NULL AND corrupt IS NULL \
          AND (lease_expires IS NULL OR lease_expires <= next_run_time) \
          ORDER BY next_run_time LIMIT 1), \
         (SELECT lease_expires FROM {jobs} WHERE lease_expires IS NOT NULL \
          AND next_run_time IS NOT NULL AND corrupt IS NULL AND lease_expires > next_run_time \
          ORDER BY lease_expires LIMIT 1)"
    )
}

/// The row operations every dialect runs with the same statements.
#[async_trait]
pub(crate) trait SharedRows: Send + Sync + std::fmt::Debug {
    /// The schema version stored in the schema table.
    async fn schema_version(&self) -> Result<Option<i64>>;

    /// Overwrites an existing row's job columns (lease kept, corrupt mark cleared);
    /// `false` when there is no such row.
    async fn update(&self, row: &EncodedJob) -> Result<bool>;

    /// Deletes a row; `false` when there is no such row.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Deletes every row.
    async fn delete_all(&self) -> Result<()>;

    /// The row with this id.
    async fn fetch(&self, id: &str, max_bytes: i64) -> Result<Option<FetchedRow>>;

    /// Every row, by next run time then id, paused (NULL) last.
    async fn fetch_all(&self, max_bytes: i64) -> Result<Vec<FetchedRow>>;

    /// Rows marked corrupt, `(id, reason)`.
    async fn fetch_corrupt(&self) -> Result<Vec<(String, String)>>;

    /// `(earliest next run time of a row not under a lease that outlasts it, earliest
    /// lease expiry that outlasts its row's next run time)`, corrupt and paused rows
    /// excluded.
    async fn next_run_time(&self) -> Result<(Option<i64>, Option<i64>)>;
}

/// How many rows a statement touched (each backend's result type has its own method).
pub(crate) trait RowsAffected {
    fn rows(&self) -> u64;
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "mysql")]
impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows(&self) -> u64 {
        // The connection reports matched rows (CLIENT_FOUND_ROWS), not changed rows.
        self.rows_affected()
    }
}

/// A pool and the shared statements of one job table.
#[derive(Debug)]
pub(crate) struct Rows<DB: Database> {
    pool: Pool<DB>,
    sql: Statements,
    /// The backend's name in error messages (`SQLite`, ...).
    label: &'static str,
}

impl<DB: Database> Rows<DB> {
    pub(crate) fn new(pool: Pool<DB>, dialect: Dialect, names: &Names) -> Self {
        Rows {
            pool,
            sql: Statements::new(dialect, names),
            label: dialect.label(),
        }
    }

    fn error(&self, operation: &str) -> impl Fn(sqlx::Error) -> StoreError {
        let context = format!("{}: {operation}", self.label);
        move |e| StoreError::sql(context.clone(), e)
    }
}

#[async_trait]
impl<DB> SharedRows for Rows<DB>
where
    DB: Database,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB>,
    for<'q> &'q [u8]: Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn schema_version(&self) -> Result<Option<i64>> {
        let row = sqlx::query(&self.sql.schema_version)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.error("reading the schema version"))?;
        row.map(|r| read_version(&r))
            .transpose()
            .map_err(self.error("reading the schema version"))
    }

    async fn update(&self, row: &EncodedJob) -> Result<bool> {
        let done = sqlx::query(&self.sql.update)
            .bind(row.next_run_time)
            .bind(row.paused)
            .bind(row.state.as_str())
            .bind(row.state_bin.as_deref())
            .bind(row.format_version)
            .bind(row.id.as_str())
            .execute(&self.pool)
            .await
            .map_err(self.error("update_job"))?;
        Ok(done.rows() > 0)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(&self.sql.delete)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.error("remove_job"))?;
        Ok(done.rows() > 0)
    }

    async fn delete_all(&self) -> Result<()> {
        sqlx::query(&self.sql.delete_all)
            .execute(&self.pool)
            .await
            .map_err(self.error("remove_all_jobs"))?;
        Ok(())
    }

    async fn fetch(&self, id: &str, max_bytes: i64) -> Result<Option<FetchedRow>> {
        let row = sqlx::query(&self.sql.fetch)
            .bind(max_bytes)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.error("lookup_job"))?;
        row.as_ref()
            .map(crate::driver::read_row)
            .transpose()
            .map_err(self.error("lookup_job"))
    }

    async fn fetch_all(&self, max_bytes: i64) -> Result<Vec<FetchedRow>> {
        let rows = sqlx::query(&self.sql.fetch_all)
            .bind(max_bytes)
            .fetch_all(&self.pool)
            .await
            .map_err(self.error("get_all_jobs"))?;
        rows.iter()
            .map(crate::driver::read_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(self.error("get_all_jobs"))
    }

    async fn fetch_corrupt(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(&self.sql.fetch_corrupt)
            .fetch_all(&self.pool)
            .await
            .map_err(self.error("corrupt_jobs"))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(self.error("corrupt_jobs"))
    }

    async fn next_run_time(&self) -> Result<(Option<i64>, Option<i64>)> {
        let row = sqlx::query(&self.sql.next_run_time)
            .fetch_one(&self.pool)
            .await
            .map_err(self.error("get_next_run_time"))?;
        let read =
            || -> std::result::Result<_, sqlx::Error> { Ok((row.try_get(0)?, row.try_get(1)?)) };
        read().map_err(self.error("get_next_run_time"))
    }
}

/// The version column (an `INTEGER`: 64 bits on SQLite, 32 elsewhere).
fn read_version<R>(row: &R) -> std::result::Result<i64, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<i64, _>(0)
        .or_else(|_| row.try_get::<i32, _>(0).map(i64::from))
}

/// Brings a job table up to date on `conn` (inside the caller's transaction or
/// migration lock): creates the schema table, reads the version, refuses a newer
/// schema or a foreign table under our name, and applies the pending migrations.
pub(crate) async fn migrate_on<DB>(
    conn: &mut DB::Connection,
    dialect: Dialect,
    n: &Names,
) -> Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let label = dialect.label();
    let ctx = |what: &str| format!("{label}: migrating table {}: {what}", n.table);
    sqlx::query(&schema::schema_table_ddl(n))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(ctx("create the schema table"), e))?;
    sqlx::query(&dialect.insert_ignore(&n.schema, "(id, version) VALUES (1, 0)"))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(ctx("initialize the schema table"), e))?;
    let row = sqlx::query(&format!("SELECT version FROM {} WHERE id = 1", n.schema))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(ctx("read the schema version"), e))?;
    let current = read_version(&row).map_err(|e| StoreError::sql(ctx("read the version"), e))?;
    check_not_too_new(n, current)?;
    if current == 0 {
        let rows = sqlx::query(&dialect.columns_of_table())
            .bind(n.table.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| StoreError::sql(ctx("inspect an existing table"), e))?;
        let existing = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| StoreError::sql(ctx("inspect an existing table"), e))?;
        check_existing_table(n, &existing)?;
    }
    let record = format!(
        "UPDATE {} SET version = {} WHERE id = 1",
        n.schema,
        dialect.param(1)
    );
    for m in schema::pending(current) {
        tracing::info!(target: "apscheduler", table = %n.table, "{label}: applying schema migration {}: {}", m.version, m.description);
        // On MySQL each DDL statement commits by itself: they are written to be re-run.
        for stmt in (m.statements)(dialect, n) {
            match sqlx::query(&stmt).execute(&mut *conn).await {
                Ok(_) => {}
                Err(e) if dialect == Dialect::MySql && already_applied(&e) => {}
                Err(e) => return Err(StoreError::sql(ctx(&format!("migration {}", m.version)), e)),
            }
        }
        sqlx::query(&record)
            .bind(i32::try_from(m.version).unwrap_or(i32::MAX))
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::sql(ctx("record the schema version"), e))?;
    }
    Ok(())
}

/// A MySQL/MariaDB DDL statement re-run after an interrupted migration: its column
/// (1060) or index (1061) is already there.
#[cfg(feature = "mysql")]
fn already_applied(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| matches!(m.number(), 1060 | 1061)),
        _ => false,
    }
}

#[cfg(not(feature = "mysql"))]
fn already_applied(_: &sqlx::Error) -> bool {
    false
}

/// [`migrate_on`] inside `tx`, then commits it (MySQL/MariaDB commit DDL implicitly, and
/// migrate without one).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) async fn migrate_in<DB>(
    mut tx: sqlx::Transaction<'_, DB>,
    dialect: Dialect,
    n: &Names,
) -> Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    migrate_on::<DB>(&mut tx, dialect, n).await?;
    tx.commit()
        .await
        .map_err(|e| migration_error(dialect, n, "commit", e))
}

/// An error of a migration step (`what`: "begin", "lock", ...).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn migration_error(
    dialect: Dialect,
    n: &Names,
    what: &str,
    e: sqlx::Error,
) -> StoreError {
    StoreError::sql(
        format!("{}: migrating table {}: {what}", dialect.label(), n.table),
        e,
    )
}

/// Marks rows corrupt (`(id, reason)`) and drops their leases, in chunks of `chunk`
/// rows, one statement each (SQLite and MySQL: anonymous `?` placeholders). Marking
/// again is harmless, so the chunks need no transaction.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) async fn mark_corrupt_in<DB>(
    pool: &Pool<DB>,
    jobs: &str,
    marks: &[(String, String)],
    chunk: usize,
) -> std::result::Result<(), sqlx::Error>
where
    DB: Database + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    for part in marks.chunks(chunk) {
        let sql = format!(
            "UPDATE {jobs} SET corrupt = CASE id {} END, lease_holder = NULL, \
             lease_expires = NULL WHERE id IN ({})",
            vec!["WHEN ? THEN ?"; part.len()].join(" "),
            placeholders(part.len())
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for (id, reason) in part {
            q = q.bind(id.as_str()).bind(reason.as_str());
        }
        for (id, _) in part {
            q = q.bind(id.as_str());
        }
        q.execute(pool).await?;
    }
    Ok(())
}

/// `?, ?, ?` (`n` anonymous placeholders, for SQLite and MySQL batches).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?, ?, ?, ?, ?), ...`: the values of `rows` rows for [`bind_rows`].
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn row_values(rows: usize) -> String {
    vec!["(?, ?, ?, ?, ?, ?)"; rows].join(", ")
}

/// Binds each row's [`WRITTEN_COLUMNS`], in order.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn bind_rows<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
    rows: &'q [EncodedJob],
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB>,
    i32: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB>,
    &'q [u8]: Type<DB>,
{
    for r in rows {
        query = query
            .bind(r.id.as_str())
            .bind(r.next_run_time)
            .bind(r.paused)
            .bind(r.state.as_str())
            .bind(r.state_bin.as_deref())
            .bind(r.format_version);
    }
    query
}

/// Deletes the rows of `ids` whose lease `holder` has (expired or not), on `conn`, in
/// chunks of `chunk` ids (SQLite and MySQL: anonymous `?` placeholders).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) async fn delete_held_on<DB>(
    conn: &mut DB::Connection,
    jobs: &str,
    holder: &str,
    ids: &[String],
    chunk: usize,
) -> std::result::Result<(), sqlx::Error>
where
    DB: Database + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    for part in ids.chunks(chunk) {
        let sql = format!(
            "DELETE FROM {jobs} WHERE id IN ({}) AND lease_holder = ?",
            placeholders(part.len())
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for id in part {
            q = q.bind(id.as_str());
        }
        q.bind(holder).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The ids among `ids` whose live lease `holder` has (`lease_expires > now`), on
/// `conn`, in chunks of `chunk` ids. `statement` turns the chunk's placeholders into
/// a statement that returns those ids, with its parameters in this order: `lead` (when
/// given), the ids, `holder`, `now` (when given: a backend with a clock uses its own;
/// SQLite and MySQL: anonymous `?` placeholders).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) async fn held_ids_on<DB>(
    conn: &mut DB::Connection,
    statement: impl Fn(&str) -> String + Send,
    lead: Option<i64>,
    (holder, ids, now): (&str, &[String], Option<i64>),
    chunk: usize,
) -> std::result::Result<Vec<String>, sqlx::Error>
where
    DB: Database + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut held = Vec::new();
    for part in ids.chunks(chunk) {
        let sql = statement(&placeholders(part.len()));
        let mut q = sqlx::query(&sql).persistent(false);
        if let Some(value) = lead {
            q = q.bind(value);
        }
        for id in part {
            q = q.bind(id.as_str());
        }
        q = q.bind(holder);
        if let Some(now) = now {
            q = q.bind(now);
        }
        for row in q.fetch_all(&mut *conn).await? {
            held.push(row.try_get(0)?);
        }
    }
    Ok(held)
}

/// Stores new states and deletes rows whose lease `holder` has, in the transaction
/// `tx`, which it commits, in chunks of `chunk` rows (SQLite and MySQL: anonymous `?`
/// placeholders); returns the ids it released. `held` turns a chunk's id placeholders
/// into a statement taking the ids, then `holder`, that selects the ids whose lease
/// `holder` has (and locks them, where the backend needs it). `update` turns a chunk's
/// size into a statement taking [`bind_rows`]'s values for each row, then `holder`,
/// that writes them and drops the leases.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) async fn release_in<DB>(
    mut tx: sqlx::Transaction<'_, DB>,
    (jobs, held, update): (
        &str,
        impl Fn(&str) -> String + Send,
        impl Fn(usize) -> String + Send,
    ),
    req: crate::driver::Release<'_>,
    chunk: usize,
) -> std::result::Result<Vec<String>, sqlx::Error>
where
    DB: Database + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB>,
    for<'q> &'q [u8]: Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let (holder, updates, removes) = (req.holder, req.updates, req.removes);
    let conn: &mut DB::Connection = &mut tx;
    let ids: Vec<&str> = updates
        .iter()
        .map(|u| u.id.as_str())
        .chain(removes.iter().map(String::as_str))
        .collect();
    let mut released = Vec::with_capacity(ids.len());
    // Prepared once per batch size and connection (a pass keeps its connection).
    for part in ids.chunks(chunk) {
        let sql = held(&placeholders(part.len()));
        let mut q = sqlx::query(&sql).persistent(true);
        for id in part {
            q = q.bind(*id);
        }
        for row in q.bind(holder).fetch_all(&mut *conn).await? {
            released.push(row.try_get(0)?);
        }
    }
    for part in updates.chunks(chunk) {
        let sql = update(part.len());
        let q = sqlx::query(&sql).persistent(true);
        bind_rows(q, part).bind(holder).execute(&mut *conn).await?;
    }
    delete_held_on::<DB>(conn, jobs, holder, removes, chunk).await?;
    tx.commit().await?;
    Ok(released)
}
