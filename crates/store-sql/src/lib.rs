//! # apscheduler-store-sql
//!
//! [`SqlJobStore`]: the job store of APScheduler's `SQLAlchemyJobStore`, on
//! [sqlx](https://docs.rs/sqlx): SQLite, PostgreSQL, MySQL and MariaDB. Jobs survive
//! restarts, and several schedulers can share one PostgreSQL or MySQL/MariaDB database:
//! due jobs are claimed atomically with a lease, so every (job, run time) runs once.
//! Beside the jobs, the store keeps a run history ([`SqlRunHistory`], see
//! [Run history](#run-history)).
//!
//! ## Usage
//! ```
//! use std::time::Duration;
//!
//! use apscheduler_core::chrono::{TimeZone, Utc};
//! use apscheduler_core::{no_args, no_kwargs, Job, JobRelease, JobStore, Task};
//! use apscheduler_store_sql::SqlJobStore;
//! use apscheduler_triggers::AnyTrigger;
//!
//! let tz = apscheduler_core::chrono_tz::UTC;
//! let now = tz.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
//! let args = serde_json::json!({"seconds": 10});
//! let trigger = AnyTrigger::from_args("interval", &args, tz, now).unwrap().into_shared();
//! let job = Job {
//!     id: "tick".into(),
//!     name: "tick".into(),
//!     // Stored jobs name a task registered with the scheduler: never code.
//!     task: Task::Named("tick".into()),
//!     args: no_args(),
//!     kwargs: no_kwargs(),
//!     next_run_time: trigger.next_fire_time(None, &now),
//!     trigger,
//!     executor: "default".into(),
//!     misfire_grace_time: Some(Duration::from_secs(1)),
//!     coalesce: true,
//!     max_instances: 1,
//!     recover: false,
//!     policy: Default::default(),
//!     paused_reason: None,
//!     declaration: None,
//! };
//!
//! // No I/O yet: the store connects (and creates its tables) when started.
//! let store = SqlJobStore::connect("sqlite::memory:").unwrap();
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! runtime.block_on(async {
//!     store.start("default").await.unwrap();
//!     assert_eq!(store.schema_version().await.unwrap(), Some(apscheduler_store_sql::SCHEMA_VERSION));
//!     store.add_job(job, false).await.unwrap();
//!
//!     let first = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 10).unwrap();
//!     assert_eq!(store.get_next_run_time().await.unwrap(), Some(first));
//!
//!     // A scheduler claims the due jobs with a lease, runs them, and releases them
//!     // with their next run time.
//!     let lease = Duration::from_secs(60);
//!     let due = store.acquire_due_jobs("scheduler-1", first, 100, lease).await.unwrap();
//!     assert_eq!(due.jobs.len(), 1);
//!     let mut job = due.jobs.into_iter().next().unwrap();
//!     job.next_run_time = job.trigger.next_fire_time(job.next_run_time.as_ref(), &now);
//!     store.release_jobs("scheduler-1", vec![JobRelease::Update(job)]).await.unwrap();
//!     let second = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 20).unwrap();
//!     assert_eq!(store.get_next_run_time().await.unwrap(), Some(second));
//!     store.shutdown().await.unwrap();
//! });
//! ```
//!
//! With a scheduler (any front-end of `apscheduler-engine`), the store is added under
//! an alias and the scheduler starts and stops it:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use apscheduler_store_sql::SqlJobStore;
//! # fn demo() -> Result<(), apscheduler_core::Error> {
//! let store = SqlJobStore::builder("postgres://scheduler:secret@db.internal:5432/app")
//!     .table_name("apscheduler_jobs")
//!     .max_connections(5)
//!     .build()?;
//! # let _ = Arc::new(store);
//! // BackgroundScheduler::from_builder(Engine::builder().jobstore("default", Arc::new(store)))
//! # Ok(()) }
//! ```
//!
//! ## Backends
//! A store is created from a URL with [`SqlJobStore::connect`] or
//! [`SqlJobStore::builder`]; SQLAlchemy's `+driver` suffixes are accepted and ignored
//! (`postgresql+psycopg2://`, `mysql+pymysql://`). Nothing connects before the store is
//! started (or first used), so a scheduler can be configured while the database is
//! down. Passwords are masked in every message and in `Debug` output.
//!
//! The table is `apscheduler_jobs` unless [`SqlJobStoreBuilder::table_name`] says
//! otherwise (APScheduler's `tablename`). A table name is 1 to 63 ASCII letters, digits
//! and underscores, not starting with a digit (`^[A-Za-z_][A-Za-z0-9_]{0,62}$`);
//! anything else is an `InvalidInput` error naming `table_name`, so nothing from the
//! configuration reaches SQL. Names are quoted, so they are case-sensitive. Next to it
//! lives `<table>_schema`, which records the schema version.
//!
//! ### SQLite (feature `sqlite`, on by default)
//! - `sqlite:///jobs.sqlite`: SQLAlchemy's form, as in APScheduler's documentation:
//!   three slashes and a path **relative** to the working directory (resolved when the
//!   store is built); four slashes (`sqlite:////var/lib/aps/jobs.sqlite`) for an
//!   absolute path.
//! - `sqlite:jobs.db`, `sqlite:/var/lib/aps/jobs.db`, `sqlite://jobs.db`: a path.
//! - `sqlite::memory:` (or `sqlite://`): a private in-memory database on a single
//!   connection, gone when the store shuts down.
//! - `?mode=rwc` (create if missing, the default), `?mode=rw` (must exist), `?mode=ro`.
//!
//! Files are opened in WAL mode (readers never wait for the writer; do not put the
//! file on a network file system). SQLite has one writer at a time: a writer waits up
//! to [`sqlite_busy_timeout`](SqlJobStoreBuilder::sqlite_busy_timeout) for the lock.
//! Several processes may share the file on one machine.
//!
//! ### PostgreSQL (feature `postgres`)
//! - `postgres://user:password@host:5432/database` or `postgresql://...`, with the
//!   parameters of libpq URLs that sqlx understands (`?application_name=...`,
//!   `?options=-c%20search_path%3Dscheduling` to put the table in another schema).
//! - PostgreSQL 9.5 or later. This build has no TLS: use a local or tunnelled
//!   connection (`sslmode=require` fails).
//! - Table and index names longer than 63 characters would be truncated by
//!   PostgreSQL; derived names are shortened with a hash instead.
//!
//! ### MySQL and MariaDB (feature `mysql`)
//! - `mysql://user:password@host:3306/database` or `mariadb://...`.
//! - MySQL 8.0+ or MariaDB 10.6+ (`SKIP LOCKED`), InnoDB. Sessions run at `READ
//!   COMMITTED`. Ids are `utf8mb4_bin`: compared and ordered byte by byte, as
//!   everywhere else. This build has no TLS.
//!
//! ## Schema
//! One row per job (PostgreSQL DDL; the others are equivalent):
//!
//! ```sql
//! CREATE TABLE apscheduler_jobs (
//!     id VARCHAR(191) COLLATE "C" NOT NULL PRIMARY KEY,  -- utf8mb4_bin on MySQL
//!     next_run_time BIGINT,          -- µs since 1970-01-01 UTC, rounded up; NULL = paused
//!     paused BOOLEAN NOT NULL,       -- next_run_time IS NULL, for people reading the table
//!     state TEXT NOT NULL,           -- the job as JSON (MEDIUMTEXT on MySQL)
//!     format_version INTEGER NOT NULL, -- of the JSON (JobState::VERSION)
//!     lease_holder VARCHAR(191),     -- the scheduler that claimed the job
//!     lease_expires BIGINT,          -- µs; the claim is void from then on
//!     corrupt TEXT                   -- why the row cannot be read; NULL = fine
//! );
//! CREATE INDEX apscheduler_jobs_next_run_time_idx ON apscheduler_jobs (next_run_time, id);
//! CREATE INDEX apscheduler_jobs_lease_expires_idx ON apscheduler_jobs (lease_expires)
//!     WHERE lease_expires IS NOT NULL;
//! CREATE TABLE apscheduler_jobs_schema (id SMALLINT PRIMARY KEY, version INTEGER NOT NULL);
//! -- PostgreSQL and MySQL/MariaDB: each job's claim partition (0 to 1023), from its id
//! -- (the first 32 bits of its MD5, modulo 1024; a stored generated column on MySQL)
//! ALTER TABLE apscheduler_jobs ADD COLUMN claim_partition INTEGER NOT NULL DEFAULT 0;
//! CREATE INDEX apscheduler_jobs_partition_idx
//!     ON apscheduler_jobs (claim_partition, next_run_time, id);
//! -- The run contract (apscheduler_core::RunStore): one row per run, the whole run as
//! -- JSON beside the columns its steps select by, and per job its last fence and
//! -- whether the finished job waits for its last live run
//! CREATE TABLE apscheduler_jobs_run_leases (job_id VARCHAR(191) COLLATE "C" NOT NULL,
//!     fire_time BIGINT NOT NULL, attempt BIGINT NOT NULL, rerun BIGINT NOT NULL,
//!     state VARCHAR(16) NOT NULL,   -- claimed, waiting, started, ended, interrupted
//!     lease_until BIGINT NOT NULL, holder VARCHAR(191) COLLATE "C" NOT NULL,
//!     fence BIGINT NOT NULL, ended_at BIGINT, row_json TEXT NOT NULL,
//!     PRIMARY KEY (job_id, fire_time, attempt, rerun));
//! CREATE INDEX apscheduler_jobs_run_leases_idx ON apscheduler_jobs_run_leases (state, lease_until);
//! CREATE TABLE apscheduler_jobs_run_fences (job_id VARCHAR(191) COLLATE "C" NOT NULL
//!     PRIMARY KEY, fence BIGINT NOT NULL, finishing BIGINT NOT NULL);
//! -- PostgreSQL: the schedulers waiting for a release (their token, the lease's end)
//! CREATE TABLE apscheduler_jobs_waiters (token VARCHAR(191) COLLATE "C" NOT NULL
//!     PRIMARY KEY, until BIGINT NOT NULL);
//! ```
//!
//! `state` is the job's [`JobState`](apscheduler_core::JobState) as JSON, readable
//! with any database client: task name, trigger, arguments, options and the next run
//! time (RFC 3339, with its zone's name). The columns are what claims go by: if you
//! edit `next_run_time` by hand, that time is used.
//!
//! The tables are created on first use, and upgraded by numbered migrations run once,
//! under a lock, when a store connects; a table written by a newer release of this
//! crate is refused (`InvalidState`) rather than misread; see [`SCHEMA_VERSION`],
//! also for how to add a migration. A table under the job table's name with other
//! columns (Python APScheduler's `SQLAlchemyJobStore` table, say) is refused with a
//! message saying so, and left untouched.
//!
//! ## Run history
//! [`JobStore::run_history`](apscheduler_core::JobStore::run_history) returns a
//! [`SqlRunHistory`] ([`SqlJobStore::history`] with its type): one row per run in the
//! table `<table>_runs` ([`SqlJobStore::runs_table_name`]) on the store's own pool.
//! It is not one of the numbered migrations: [`prepare`](apscheduler_core::RunHistory::prepare)
//! (or the first use on a pool) creates it, with `IF NOT EXISTS` throughout, so a
//! store that keeps no history has no such table and the job table's schema version
//! does not change. PostgreSQL DDL, the others are equivalent:
//!
//! ```sql
//! CREATE TABLE apscheduler_jobs_runs (
//!     run_id VARCHAR(191) COLLATE "C" NOT NULL PRIMARY KEY, -- utf8mb4_bin on MySQL
//!     job_id VARCHAR(191) COLLATE "C" NOT NULL,
//!     scheduled_at BIGINT NOT NULL,  -- µs since 1970-01-01 UTC, like every time here
//!     started_at BIGINT,
//!     finished_at BIGINT,
//!     outcome VARCHAR(16) NOT NULL,  -- running, success, failure, timeout, missed, ...
//!     exit_code INTEGER,
//!     http_status INTEGER,
//!     output BYTEA NOT NULL,         -- UTF-8 as bytes (BLOB on SQLite, LONGBLOB on
//!     message BYTEA,                 -- MySQL): PostgreSQL text cannot hold a NUL
//!     node VARCHAR(191) COLLATE "C" NOT NULL,
//!     attempt BIGINT NOT NULL DEFAULT 1,    -- 1 for the first run, 2 for the first retry
//!     backfill INTEGER NOT NULL DEFAULT 0,  -- 1 for a run started by a backfill
//!     due_at BIGINT                         -- when a waiting run (a retry) is due
//! );
//! CREATE INDEX apscheduler_jobs_runs_time_idx ON apscheduler_jobs_runs (scheduled_at, run_id);
//! CREATE INDEX apscheduler_jobs_runs_job_idx ON apscheduler_jobs_runs (job_id, scheduled_at, run_id);
//! CREATE INDEX apscheduler_jobs_runs_outcome_idx ON apscheduler_jobs_runs (outcome, scheduled_at, run_id);
//! ```
//!
//! (MySQL/MariaDB: the indexes are declared inside the `CREATE TABLE IF NOT EXISTS`.)
//! A table created before `attempt`, `backfill` and `due_at` existed gets them at
//! prepare time (`ALTER TABLE ... ADD COLUMN`); its rows read as first attempts, not
//! backfills, with no due time.
//! Read `output` as text with `convert_from(output, 'UTF8')` (PostgreSQL),
//! `CAST(output AS TEXT)` (SQLite) or `CONVERT(output USING utf8mb4)` (MySQL).
//!
//! - `record_runs` is an upsert on `run_id` (`ON CONFLICT ... DO UPDATE`, `ON
//!   DUPLICATE KEY UPDATE` on MySQL) of up to 1,000 records (and 4 MiB of output) per
//!   statement, several statements in one transaction: all or nothing. SQLite and
//!   MySQL send multi-row `VALUES` (MySQL: up to 1 MiB of values as one text
//!   statement, literals, one round trip), PostgreSQL arrays through `UNNEST`.
//! - `query_runs` is one `SELECT ... ORDER BY scheduled_at DESC, run_id DESC LIMIT n`
//!   walked backwards on one of the indexes (filters on job, outcome and
//!   `since`/`until` use them; the node filter has none).
//! - `prune_job_runs` finds the newest ended run past the ones kept (`LIMIT 1 OFFSET
//!   keep` on the job's index) and deletes the job's ended runs from it on, older
//!   ones included (no `LIMIT` in a subquery, which MySQL refuses);
//!   `prune_runs_before` is one `DELETE`. Neither touches a `running` row.
//! - `interrupt_running` is one `UPDATE ... RETURNING` (SQLite, PostgreSQL), or
//!   `SELECT ... FOR UPDATE` then `UPDATE` in a transaction (MySQL/MariaDB).
//! - `record_starts` (the start of claimed runs, written only on rows still
//!   `running` without one) is one statement on PostgreSQL (an `UPDATE ... SET
//!   started_at ... WHERE outcome = 'running' AND started_at IS NULL` and an `INSERT
//!   ... ON CONFLICT DO NOTHING` of absent rows in one `WITH`, returning the run ids
//!   accepted); on SQLite and MySQL/MariaDB an upsert whose update is `started_at =
//!   CASE WHEN outcome = 'running' AND started_at IS NULL THEN ... ELSE started_at
//!   END`, then a `SELECT` of the rows' outcomes and starts (a run whose row has this
//!   write's start may start: the upsert set it while the row was `running`).
//!
//! A stored row that cannot be read (an unknown outcome, output that is not UTF-8) fails
//! the query with `Serialization`, naming the run and the value.
//!
//! ## Claims and leases
//! [`acquire_due_jobs`](apscheduler_core::JobStore::acquire_due_jobs) selects due rows
//! (`next_run_time <= now`, not corrupt, no live lease) in `(next_run_time, id)` order
//! on the index, and leases them to the caller, atomically. On PostgreSQL and
//! MySQL/MariaDB the lease runs on the server's clock (until the server's time plus
//! the lease, and a lease has expired once the server's time passes its end:
//! [`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)), so node
//! clock skew cannot let two schedulers hold one lease; `now` only says which jobs are
//! due. SQLite, single-node, leases until `now + lease`.
//! - **PostgreSQL**: one statement, `WITH due AS (SELECT id ... ORDER BY next_run_time,
//!   id LIMIT n FOR UPDATE SKIP LOCKED) UPDATE ... FROM due ... RETURNING ...`:
//!   concurrent claimers skip each other's rows instead of waiting.
//! - **MySQL/MariaDB**: a transaction sent as one script (several statements in one
//!   text query, one round trip; values as hexadecimal literals): `UPDATE (SELECT id
//!   ... ORDER BY next_run_time, id LIMIT n FOR UPDATE SKIP LOCKED) AS due
//!   STRAIGHT_JOIN jobs ... SET lease_holder = ..., lease_expires = <server time> +
//!   lease`, then the rows leased until that instant read back, commit. A script the
//!   server stops midway closes its connection, so the server rolls it back.
//! - **Partitioned** (PostgreSQL and MySQL/MariaDB,
//!   [`JobStore::acquire_due_jobs_preferring`](apscheduler_core::JobStore::acquire_due_jobs_preferring)
//!   with the engine's hint when four or more schedulers are live): the same select
//!   restricted to `claim_partition IN (owned)` first, then, for what is left of `n`, to
//!   the other partitions; one statement on PostgreSQL (two `WITH` parts), a second
//!   `UPDATE` in the same script on MySQL/MariaDB (prepared on the server, its limit
//!   what the first left).
//! - **SQLite**: `BEGIN IMMEDIATE` (the write lock: one writer at a time), then `UPDATE
//!   ... WHERE id IN (SELECT id ... ORDER BY next_run_time, id LIMIT n) RETURNING ...`,
//!   commit.
//!
//! Releases are batched: PostgreSQL updates and deletes a whole batch in one statement
//! (arrays through `UNNEST`); MySQL/MariaDB with one `UPDATE ... JOIN (SELECT ... UNION
//! ALL SELECT ...)` on the primary key and one `DELETE ... WHERE id IN (...)` per 500
//! jobs, after a `SELECT ... FOR UPDATE` of the held rows, in one script with the
//! pass's `running` records and the read of the next run time (prepared statements
//! when the values exceed 1 MiB); SQLite in one transaction with `UPDATE ... FROM (VALUES ...)`. [`add_jobs`] is one multi-row
//! `INSERT` (PostgreSQL: `INSERT ... SELECT FROM UNNEST`) per 500 jobs in one
//! transaction: all or nothing. Deadlock and serialization victims are retried twice.
//!
//! Where the contract leaves room, this store does what the memory store does: a
//! replaced or updated job keeps its lease; a release is applied only to jobs whose
//! lease the caller still holds (expired or not): one from a scheduler whose lease was
//! taken over, for a job removed meanwhile, or already applied (a release retried
//! after a lost connection) is ignored; [`get_next_run_time`]
//! reports a leased job at the later of its run time and its lease's expiry (so a dead
//! scheduler's claims are picked up when their leases run out). Run times are stored
//! to the microsecond, rounded up, so a job is never claimed before its exact run time.
//!
//! [`add_jobs`]: apscheduler_core::JobStore::add_jobs
//! [`get_next_run_time`]: apscheduler_core::JobStore::get_next_run_time
//!
//! ## Runs
//! The store implements the run contract ([`RunStore`](apscheduler_core::RunStore)):
//! each of its operations is one transaction that locks the fence rows of the jobs it
//! touches (`SELECT ... FOR UPDATE` on PostgreSQL and MySQL/MariaDB, in id order; the
//! whole database under SQLite's `BEGIN IMMEDIATE`), loads those jobs' live runs and
//! the runs it names, lets core's [`RunTable`](apscheduler_core::RunTable) decide, and
//! writes back what changed; a release that creates runs also writes its jobs in that
//! transaction, only for the jobs whose claim the caller holds (their rows locked too).
//! Leases are timed by the server's clock (SQLite: the process's). A deadlock or
//! serialization failure is retried at once, as every other write here.
//!
//! ## Corrupt rows
//! A row that cannot be read (invalid JSON, an unknown format version, an unknown
//! trigger type, an unknown time zone, a state over [`max_state_bytes`] (1 MiB by
//! default; such a state is not even fetched) or nested deeper than 64 levels) is:
//! - reported **once**, in [`Acquired::corrupt`](apscheduler_core::Acquired::corrupt)
//!   of the claim that first finds it due (the engine reports it as `EVENT_JOB_ERROR`
//!   of kind `corrupt`), and marked in the `corrupt` column with the reason;
//! - never claimed or counted as due again, and never deleted by the store: it stays
//!   in the table for you to inspect ([`SqlJobStore::corrupt_jobs`]), fix
//!   (`update_job`, or `add_job` with `replace_existing`, clear the mark), or remove;
//! - left out of [`get_all_jobs`] (with a warning in the log), while [`lookup_job`]
//!   returns a `Serialization` error for it (so its id is still known to be taken).
//!
//! Stored state is data only: a task is a name resolved in the scheduler's task
//! registry, never code. A job whose task name is not registered is not corrupt: it is
//! read and claimed normally, and the engine reports each of its runs as
//! `EVENT_JOB_ERROR` of kind `unknown-task`.
//!
//! [`max_state_bytes`]: SqlJobStoreBuilder::max_state_bytes
//! [`get_all_jobs`]: apscheduler_core::JobStore::get_all_jobs
//! [`lookup_job`]: apscheduler_core::JobStore::lookup_job
//!
//! ## Errors
//! Every error is an [`apscheduler_core::Error`] whose kind callers match on, with the
//! driver's error as its `source`:
//! - `Unavailable` (retryable): the database cannot be reached (connection refused or
//!   lost, pool timeout, server shutting down, too many connections), a lock timeout,
//!   a deadlock or serialization failure that persisted, SQLite busy beyond its
//!   timeout. The engine retries with backoff.
//! - `Conflict`: an id that exists (unique violation). `NotFound`: updating or
//!   removing an id that does not exist.
//! - `Serialization`: a job that cannot be stored (a closure task, a trigger without a
//!   persisted form, a state over the size bound) or a row that cannot be read.
//! - `InvalidInput`: a bad URL, table name or option; a job or scheduler id (or a run
//!   record's run id, job id or node) longer than 191 characters or holding a NUL
//!   character.
//! - `InvalidState`: a table from a newer release, or a table under the job table's
//!   (or the run history table's) name that is not this crate's.
//! - `Other`: anything else (a missing privilege, a full disk).
//!
//! ## Feature flags
//! - `sqlite` (default): SQLite, with a bundled libsqlite3.
//! - `postgres`: PostgreSQL.
//! - `mysql`: MySQL and MariaDB.
//!
//! At least one must be enabled. None of them enables TLS.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!(
    "apscheduler-store-sql needs at least one of the features `sqlite`, `postgres`, `mysql`"
);

/// Runs a driver call again (up to three attempts in all) when the database rolled it
/// back as a deadlock or serialization victim, which a second attempt resolves.
macro_rules! retry {
    ($call:expr) => {{
        let mut attempt = 1;
        loop {
            match $call.await {
                Err(e) if attempt < 3 && e.is_transient_conflict() => {
                    attempt += 1;
                    tokio::task::yield_now().await;
                }
                result => break result,
            }
        }
    }};
}

mod config;
pub use config::{register, SqlStoreConfig};
mod backend;
mod claim;
mod codec;
mod connect;
mod driver;
mod error;
mod first;
mod held;
mod history;
mod history_ops;
mod in_transaction;
pub use in_transaction::TransactionConnection;
mod job_store;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "mysql")]
mod mysql_script;
#[cfg(feature = "postgres")]
mod postgres;
mod read_only;
mod run_rows;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod run_starts;
mod run_store;
mod runs;
mod runs_sql;
mod runs_upgrade;
mod schema;
mod shared;
#[cfg(feature = "sqlite")]
mod single_node;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use codec::MAX_ID_CHARS;
pub use history::SqlRunHistory;
pub use schema::{Dialect, DEFAULT_TABLE_NAME};
pub use store::{SqlJobStore, SqlJobStoreBuilder, DEFAULT_MAX_STATE_BYTES};

/// The schema version this build creates and reads: the number of its migrations.
///
/// The version of a table is recorded in `<table>_schema` (one row, `id = 1`). When a
/// store connects, it runs the migrations the table has not had yet, in order, under
/// a lock (an advisory lock and the transaction on PostgreSQL, SQLite's write lock,
/// `GET_LOCK` on MySQL/MariaDB), so schedulers starting together migrate once. A table
/// at a newer version than this is refused.
///
/// # Adding a migration (for maintainers)
/// 1. Append a `Migration` to `MIGRATIONS` in `src/schema.rs` with the next version
///    and a description; never edit or reorder one that was released.
/// 2. Write its statements for every dialect. On PostgreSQL and SQLite they run in the
///    migration's transaction. MySQL/MariaDB commit DDL implicitly, so a migration
///    interrupted there is re-run from its first statement: use `IF NOT EXISTS` where
///    both servers have it; a re-run `ADD COLUMN` or `ADD INDEX` whose column or index
///    exists (errors 1060, 1061) counts as done.
/// 3. Rewrite rows in SQL in the same migration if their format changes.
/// 4. Bump this constant (a unit test checks it equals the last migration's version).
pub const SCHEMA_VERSION: u32 = 5;
