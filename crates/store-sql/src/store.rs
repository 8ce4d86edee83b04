//! [`SqlJobStore`] and its builder.

use apscheduler_core::codec::{StateCodec, StateFormat};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

// Named by the documentation's links.
#[cfg(doc)]
use apscheduler_core::JobStore;
use apscheduler_core::{CorruptJob, Error, Job};

use crate::codec::{self, EncodedJob};
use crate::connect::{self, PoolConfig, Target};
use crate::driver::Driver;
use crate::error::invalid_input;
use crate::history::SqlRunHistory;
use crate::schema::{self, Dialect, Names};

/// The default bound on one job's stored state: 1 MiB.
pub const DEFAULT_MAX_STATE_BYTES: usize = 1 << 20;

/// A job store in a SQL database (APScheduler's `SQLAlchemyJobStore`): SQLite,
/// PostgreSQL, MySQL or MariaDB, through sqlx.
///
/// Jobs are stored as data (their [`JobState`](apscheduler_core::JobState) JSON), so
/// they survive restarts and can be shared by several schedulers: claims are atomic
/// with leases (see the [crate documentation](crate) for how each backend does it).
///
/// Creating a store does no I/O: it connects (and creates or migrates its tables) when
/// it is [started](JobStore::start) or first used, inside the caller's tokio runtime.
/// [`shutdown`](JobStore::shutdown) closes the connections; a later call connects
/// again.
pub struct SqlJobStore {
    pub(crate) link: Arc<Link>,
    pub(crate) codec: StateCodec,
    /// Change notifications (PostgreSQL).
    pub(crate) changes: apscheduler_core::ChangeChannel,
    /// The run history [`JobStore::run_history`] hands out, the same each time: a
    /// scheduler recognizes it as this store's own and writes its records with the
    /// release ([`JobStore::release_jobs_recorded`]).
    pub(crate) history: Arc<dyn apscheduler_core::RunHistory>,
    /// The end of the last wait for a release recorded for this store (microseconds,
    /// the server's clock; PostgreSQL), so that a wait is written once.
    pub(crate) waiting_until: std::sync::atomic::AtomicI64,
}

impl fmt::Debug for SqlJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlJobStore")
            .field("backend", &self.link.target.dialect())
            .field("url", &self.link.url)
            .field("table_name", &self.link.names.table)
            .field("connected", &self.link.current().is_some())
            .finish_non_exhaustive()
    }
}

/// What a store and its run history share: the URL, the pool settings, the table
/// names, and the connected backend (its pool), made on first use.
pub(crate) struct Link {
    target: Target,
    /// The URL with its password masked.
    pub(crate) url: String,
    pub(crate) names: Names,
    pool: PoolConfig,
    driver: RwLock<Option<Arc<dyn Driver>>>,
    connecting: tokio::sync::Mutex<()>,
    /// A SQLite file's scheduler lock, taken at the first claim.
    #[cfg(feature = "sqlite")]
    pub(crate) node_lock: Option<crate::single_node::NodeLock>,
}

impl Link {
    /// The backend the URL names.
    pub(crate) fn backend(&self) -> Dialect {
        self.target.dialect()
    }

    pub(crate) fn current(&self) -> Option<Arc<dyn Driver>> {
        self.driver
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connected backend: connects and migrates on first use.
    pub(crate) async fn driver(&self) -> Result<Arc<dyn Driver>, Error> {
        if let Some(d) = self.current() {
            return Ok(d);
        }
        let _guard = self.connecting.lock().await;
        if let Some(d) = self.current() {
            return Ok(d);
        }
        // A configuration that can never work is not retried for ever.
        connect::check_reachable_config(&self.target, &self.url)?;
        // One direct connection first, bounded by the connect time-out: the pool's
        // acquire would retry a refused connection until its own time-out, and then
        // report only "pool timed out".
        let timeout = crate::first::connect_timeout(&self.target, self.pool.connect_timeout);
        crate::first::check(&self.target, timeout).await?;
        let driver = connect::open(&self.target, &self.pool, self.names.clone());
        if let Err(e) = retry!(driver.migrate()) {
            driver.close().await;
            let kind = e.kind();
            return Err(Error::new(
                kind,
                format!(
                    "{} job store ({}, table {}): {e}",
                    self.backend(),
                    self.url,
                    self.names.table
                ),
            )
            .with_source(e));
        }
        tracing::debug!(target: "apscheduler", backend = %self.backend(), table = %self.names.table, "SQL job store connected");
        *self.driver.write().unwrap_or_else(|e| e.into_inner()) = Some(driver.clone());
        Ok(driver)
    }

    /// Closes the pool, if open; a later call to [`driver`](Link::driver) opens another.
    pub(crate) async fn close(&self) {
        let _guard = self.connecting.lock().await;
        let driver = self
            .driver
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(d) = driver {
            d.close().await;
        }
    }
}

/// Builds a [`SqlJobStore`]: the URL, then options.
///
/// ```
/// use std::time::Duration;
/// use apscheduler_store_sql::SqlJobStore;
///
/// let store = SqlJobStore::builder("sqlite:///jobs.sqlite")
///     .table_name("my_jobs")
///     .max_connections(4)
///     .acquire_timeout(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert_eq!(store.table_name(), "my_jobs");
///
/// let err = SqlJobStore::builder("sqlite::memory:").table_name("jobs; DROP TABLE x").build().unwrap_err();
/// assert!(err.message().contains("table_name"));
/// ```
#[derive(Debug, Clone)]
pub struct SqlJobStoreBuilder {
    url: String,
    table_name: String,
    pool: PoolConfig,
    max_state_bytes: usize,
    state_format: StateFormat,
}

impl SqlJobStoreBuilder {
    /// The job table's name (default [`DEFAULT_TABLE_NAME`](crate::DEFAULT_TABLE_NAME),
    /// APScheduler's `tablename`): 1 to 63 ASCII letters, digits and underscores, not
    /// starting with a digit. The schema version table is named after it
    /// (`<table_name>_schema`).
    pub fn table_name(mut self, name: impl Into<String>) -> Self {
        self.table_name = name.into();
        self
    }

    /// The most connections the pool opens (default 10; an in-memory SQLite database
    /// always uses exactly one).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.pool.max_connections = n;
        self
    }

    /// Connections the pool keeps open even when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.pool.min_connections = n;
        self
    }

    /// How long an operation waits for a connection (connecting included, retrying a
    /// refused connection) before failing with `Unavailable` (default 5 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.pool.acquire_timeout = timeout;
        self
    }

    /// How long the first connection to the database may take (default 5 s; for
    /// PostgreSQL, a `connect_timeout` parameter in the URL, in seconds, is used when
    /// this is not set). The store connects directly once before opening its pool, so
    /// a database that cannot be reached fails within this time with the cause
    /// (`Unavailable`: "cannot reach the PostgreSQL store at 127.0.0.1:5432:
    /// connection refused ..."). Later connections are the pool's, bounded by
    /// [`acquire_timeout`](Self::acquire_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.pool.connect_timeout = Some(timeout);
        self
    }

    /// Idle connections are closed after this long (default 10 minutes; `None` keeps
    /// them).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool.idle_timeout = timeout;
        self
    }

    /// Connections are replaced after this long (default 30 minutes; `None` keeps them).
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.pool.max_lifetime = lifetime;
        self
    }

    /// Whether a pooled connection is checked with a ping before use (default true):
    /// after a database restart, stale connections are then replaced before an
    /// operation fails on them. On PostgreSQL and MySQL only a connection idle for 5 s
    /// or longer is pinged (one used more recently answered then, and a ping before
    /// every statement would double a busy scheduler's round trips); a server
    /// restarted within those 5 s fails one operation on such a connection, which is
    /// retried. SQLite pings before every use.
    pub fn test_before_acquire(mut self, test: bool) -> Self {
        self.pool.test_before_acquire = test;
        self
    }

    /// SQLite only: how long a writer waits for another connection's write lock before
    /// failing with `Unavailable` (default 5 s).
    pub fn sqlite_busy_timeout(mut self, timeout: Duration) -> Self {
        self.pool.sqlite_busy_timeout = timeout;
        self
    }

    /// SQLite file only: checkpoint the write-ahead log from a background task every
    /// `every`, on a connection of its own, instead of in whichever commit brings the
    /// log to 1,000 pages (SQLite's automatic checkpoint, which also syncs the database
    /// file: a pause of several milliseconds in that commit, at a random one of a busy
    /// scheduler's claims and releases). Commits still checkpoint past 20,000 pages,
    /// should the task fall behind. The `aps` daemon checkpoints every 250 ms.
    pub fn sqlite_background_checkpoints(mut self, every: Duration) -> Self {
        self.pool.sqlite_checkpoint_every = Some(every);
        self
    }

    /// SQLite only: the page cache each pooled connection keeps, in bytes (rounded up
    /// to KiB; SQLite's default is 2,000 KiB). The file's pages stay in the operating
    /// system's cache either way: a small cache costs a system call per page read, and
    /// keeps a long-running process small (the `aps` daemon uses 512 KiB).
    pub fn sqlite_page_cache(mut self, bytes: usize) -> Self {
        self.pool.sqlite_cache_kib = Some(u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX));
        self
    }

    /// SQLite only: read the file through a memory map of up to `bytes` (SQLite's
    /// `mmap_size`; default 0, no map). Reads of pages outside the page cache then cost
    /// no system call, and pages are mapped, not copied (shared with the operating
    /// system's file cache). But Linux maps a neighbourhood of pages on each fault (16
    /// by default) and a process unmaps them all at its end: a reader that touches one
    /// page here and there across a large file (the newest run of each of 10,000 jobs
    /// in a 1,000,000-run history) pays more than with `pread`, and becomes resident
    /// for most of the file.
    pub fn sqlite_mmap(mut self, bytes: u64) -> Self {
        self.pool.sqlite_mmap_bytes = Some(bytes);
        self
    }

    /// SQLite only: sync every commit to disk (`synchronous = FULL`) rather than at WAL
    /// checkpoints (`NORMAL`, the default). With the default, a job is durable when
    /// `add_job` returns against the crash of any process, the scheduler's included
    /// (SIGKILL); an operating-system crash or a power loss may lose the last commits
    /// (the database stays consistent). `true` survives those too, at the cost of one
    /// disk sync per commit (about 0.35 ms per `add_job` on the benchmark machine; see
    /// docs/PERFORMANCE.md, "Adding jobs to a running scheduler with a SQL store").
    pub fn sqlite_sync_full(mut self, full: bool) -> Self {
        self.pool.sqlite_sync_full = full;
        self
    }

    /// The largest encoded state one job may have, in bytes (default
    /// [`DEFAULT_MAX_STATE_BYTES`], 1 MiB). Larger jobs are refused when stored; a
    /// larger row found in the table is not even fetched: it is reported corrupt.
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes;
        self
    }

    /// The format new job states are written in (default JSON, in the `state` text
    /// column, readable in the database; bincode goes to the `state_bin` column; see
    /// [`apscheduler_core::codec`]). Rows in either format are read, so switching is
    /// not a migration.
    pub fn state_format(mut self, format: StateFormat) -> Self {
        self.state_format = format;
        self
    }

    /// Checks the options and builds the store (without connecting).
    ///
    /// # Errors
    /// `InvalidInput`, naming the field and the value, for a bad URL (unknown scheme,
    /// a backend this build lacks, options the driver refuses), table name, or pool
    /// size.
    pub fn build(self) -> Result<SqlJobStore, Error> {
        schema::validate_table_name(&self.table_name)?;
        let target = connect::parse_url(&self.url)?;
        if self.pool.max_connections == 0 {
            return Err(invalid_input("max_connections", "0", "must be at least 1"));
        }
        if self.pool.min_connections > self.pool.max_connections {
            return Err(invalid_input(
                "min_connections",
                &self.pool.min_connections.to_string(),
                &format!(
                    "must not exceed max_connections ({})",
                    self.pool.max_connections
                ),
            ));
        }
        if self.max_state_bytes < 1024 || i32::try_from(self.max_state_bytes).is_err() {
            return Err(invalid_input(
                "max_state_bytes",
                &self.max_state_bytes.to_string(),
                "must be between 1024 and 2147483647",
            ));
        }
        let names = Names::new(&self.table_name, target.dialect());
        #[cfg(feature = "sqlite")]
        let node_lock = target
            .sqlite_file()
            .map(crate::single_node::NodeLock::beside);
        let link = Arc::new(Link {
            #[cfg(feature = "sqlite")]
            node_lock,
            url: connect::redact(&self.url),
            target,
            names,
            pool: self.pool,
            driver: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
        });
        Ok(SqlJobStore {
            history: Arc::new(SqlRunHistory::new(link.clone())),
            link,
            codec: StateCodec::new(self.state_format, self.max_state_bytes),
            changes: apscheduler_core::ChangeChannel::new(uuid::Uuid::new_v4().to_string()),
            waiting_until: std::sync::atomic::AtomicI64::new(0),
        })
    }
}

impl SqlJobStore {
    /// On a SQLite file, takes the file's scheduler lock now (the first claim takes it
    /// otherwise): SQLite is single-node, so a second scheduler on the same file is
    /// refused until the first stops. The lock is an exclusive `flock` on
    /// `<database>-scheduler.lock`, released at [`shutdown`](JobStore::shutdown) or
    /// when the process ends. Other backends have nothing to lock.
    ///
    /// # Errors
    /// `Conflict` naming the holder's pid when another scheduler holds the lock;
    /// `Unavailable` when the lock file cannot be opened.
    pub fn lock_single_node(&self) -> Result<(), Error> {
        #[cfg(feature = "sqlite")]
        if let Some(lock) = &self.link.node_lock {
            return lock.acquire();
        }
        Ok(())
    }

    /// A store for `url` with the default options (see
    /// [`builder`](SqlJobStore::builder)). Does no I/O: the store connects when started.
    ///
    /// URLs: `sqlite:///jobs.sqlite` (SQLAlchemy's form, relative path),
    /// `sqlite:////var/lib/aps/jobs.sqlite` (absolute), `sqlite:jobs.db`,
    /// `sqlite::memory:`; `postgres://user:password@host:5432/db` (or `postgresql:`);
    /// `mysql://user:password@host:3306/db` (or `mariadb:`). See the crate
    /// documentation for each backend.
    ///
    /// # Errors
    /// `InvalidInput` naming the field `url` for a URL that cannot be used.
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// A builder for a store on `url`, for the table name and pool options.
    pub fn builder(url: impl Into<String>) -> SqlJobStoreBuilder {
        SqlJobStoreBuilder {
            url: url.into(),
            table_name: schema::DEFAULT_TABLE_NAME.to_owned(),
            pool: PoolConfig::default(),
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            state_format: StateFormat::Json,
        }
    }

    /// The job table's name.
    pub fn table_name(&self) -> &str {
        &self.link.names.table
    }

    /// The schema version table's name (`<table_name>_schema`, shortened with a hash
    /// when that would exceed 63 characters).
    pub fn schema_table_name(&self) -> &str {
        &self.link.names.schema_table
    }

    /// The run history table's name (`<table_name>_runs`, shortened with a hash when
    /// that would exceed 63 characters). It exists once the history was
    /// [prepared](apscheduler_core::RunHistory::prepare) or first used.
    pub fn runs_table_name(&self) -> &str {
        &self.link.names.runs_table
    }

    /// The run history kept beside this store's jobs, on its connection pool: what
    /// [`JobStore::run_history`] returns, as its concrete type.
    pub fn history(&self) -> SqlRunHistory {
        SqlRunHistory::new(self.link.clone())
    }

    /// The backend the URL names.
    pub fn backend(&self) -> Dialect {
        self.link.backend()
    }

    /// The schema version recorded in the database (connecting, and creating or
    /// migrating the tables, if needed): [`SCHEMA_VERSION`](crate::SCHEMA_VERSION)
    /// once the store has started.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn schema_version(&self) -> Result<Option<u32>, Error> {
        let driver = self.driver().await?;
        let v = driver.rows().schema_version().await?;
        Ok(v.and_then(|v| u32::try_from(v).ok()))
    }

    /// The jobs set aside as corrupt (`id`, reason), by id. They stay in the table
    /// until removed ([`remove_job`](JobStore::remove_job)) or replaced
    /// ([`update_job`](JobStore::update_job), or [`add_job`](JobStore::add_job) with
    /// `replace_existing`).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn corrupt_jobs(&self) -> Result<Vec<CorruptJob>, Error> {
        let driver = self.driver().await?;
        let rows = driver.rows().fetch_corrupt().await?;
        Ok(rows
            .into_iter()
            .map(|(id, error)| CorruptJob { id, error })
            .collect())
    }

    /// The connected backend: connects and migrates on first use.
    pub(crate) async fn driver(&self) -> Result<Arc<dyn Driver>, Error> {
        self.link.driver().await
    }

    pub(crate) fn max_bytes(&self) -> i64 {
        i64::try_from(self.codec.max_bytes).unwrap_or(i64::MAX)
    }

    pub(crate) fn encode(&self, job: &Job) -> Result<EncodedJob, Error> {
        codec::encode(job, &self.codec)
    }

    /// Tells the other schedulers that jobs changed (PostgreSQL), after a write that
    /// succeeded. A failed notification is not the write's failure: the others still
    /// see the change at their next pass or poll.
    pub(crate) async fn changed(&self, driver: &Arc<dyn Driver>) {
        if let Err(e) = driver.notify_change(self.changes.token()).await {
            tracing::debug!(target: "apscheduler", "change notification not sent: {e}");
        }
    }
}
