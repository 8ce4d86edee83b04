//! [`SqlJobStore`] and its builder.

use apscheduler_core::codec::{StateCodec, StateFormat};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apscheduler_core::{
    async_trait, Acquired, CorruptJob, Error, ErrorKind, Job, JobRelease, JobStore, Released,
    RunRecord,
};
use chrono::{DateTime, Utc};

use crate::codec::{self, EncodedJob};
use crate::connect::{self, PoolConfig, Target};
use crate::driver::{Driver, Extension, Release};
use crate::error::{invalid_input, StoreError};
use crate::history::SqlRunHistory;
use crate::schema::{self, Dialect, Names};

/// The default bound on one job's stored state: 1 MiB.
pub const DEFAULT_MAX_STATE_BYTES: usize = 1 << 20;

/// From this many jobs, [`SqlJobStore::get_all_jobs`] decodes them on every core
/// (rayon): at 10-20 µs a job, a listing of 10,000 takes 100-200 ms on one. Fewer
/// are decoded in place: not worth the worker threads a small daemon would keep.
const PARALLEL_DECODE_ROWS: usize = 2_000;

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
    history: Arc<dyn apscheduler_core::RunHistory>,
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
    node_lock: Option<crate::single_node::NodeLock>,
}

impl Link {
    /// The backend the URL names.
    pub(crate) fn backend(&self) -> Dialect {
        self.target.dialect()
    }

    fn current(&self) -> Option<Arc<dyn Driver>> {
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
    async fn close(&self) {
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

    fn encode(&self, job: &Job) -> Result<EncodedJob, Error> {
        codec::encode(job, &self.codec)
    }

    /// Tells the other schedulers that jobs changed (PostgreSQL), after a write that
    /// succeeded. A failed notification is not the write's failure: the others still
    /// see the change at their next pass or poll.
    async fn changed(&self, driver: &Arc<dyn Driver>) {
        if let Err(e) = driver.notify_change(self.changes.token()).await {
            tracing::debug!(target: "apscheduler", "change notification not sent: {e}");
        }
    }
}

impl SqlJobStore {
    /// Writes `records` to the run history beside the table and releases (one
    /// statement on PostgreSQL, which also reads the next run time after the release).
    async fn release_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[RunRecord],
    ) -> Result<Released, Error> {
        let writes = crate::history::writes(records)?;
        if releases.is_empty() {
            if !writes.is_empty() {
                let driver = self.driver().await?;
                retry!(driver.history().upsert(&writes))?;
            }
            return Ok(Released::all());
        }
        codec::check_id("scheduler_id", scheduler_id)?;
        // The last release of an id wins.
        let mut last: HashMap<Arc<str>, JobRelease> = HashMap::with_capacity(releases.len());
        for r in releases {
            let id = match &r {
                JobRelease::Update(job) => job.id.clone(),
                JobRelease::Remove(id) => id.clone(),
            };
            last.insert(id, r);
        }
        let mut updates = Vec::with_capacity(last.len());
        let mut removes = Vec::new();
        let mut asked: Vec<Arc<str>> = Vec::with_capacity(last.len());
        let mut refused = Vec::new();
        for (id, r) in last {
            match r {
                JobRelease::Update(job) => match self.encode(&job) {
                    Ok(row) => {
                        updates.push(row);
                        asked.push(id);
                    }
                    Err(e) => refused.push((id, e)),
                },
                JobRelease::Remove(_) => match codec::check_id("id", &id) {
                    Ok(()) => {
                        removes.push(id.to_string());
                        asked.push(id);
                    }
                    Err(e) => refused.push((id, e)),
                },
            }
        }
        let driver = self.driver().await?;
        if asked.is_empty() {
            if !writes.is_empty() {
                retry!(driver.history().upsert(&writes))?;
            }
            return Ok(Released::new(Vec::new(), refused));
        }
        let (released, next) = retry!(driver.release_reading_next(
            Release {
                holder: scheduler_id,
                updates: &updates,
                removes: &removes,
                // A node that saw these jobs under this one's lease sleeps until it
                // expires: the release wakes it (PostgreSQL, in the same statement).
                token: self.changes.token(),
            },
            &writes
        ))?;
        let released: HashSet<String> = released.into_iter().collect();
        let mut lost = Vec::new();
        if released.len() < asked.len() {
            lost = asked
                .into_iter()
                .filter(|id| !released.contains(&**id))
                .collect();
        }
        let done = Released::new(lost, refused);
        Ok(match next {
            Some((due, leased)) => {
                let earliest = match (due, leased) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                done.with_next_run_time(earliest.map(codec::from_micros))
            }
            None => done,
        })
    }
}

fn into_error(e: StoreError) -> Error {
    e.into()
}

#[async_trait]
impl JobStore for SqlJobStore {
    /// Connects, and creates or migrates the tables. On PostgreSQL, with a change
    /// listener set, also listens for other schedulers' changes.
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        let driver = self.driver().await?;
        if let Some(listener) = self.changes.listener() {
            self.changes.stop().await;
            if let Some(task) = driver.listen(self.changes.token().clone(), listener) {
                // Awaited: the task holds a connection of the pool, which must be back
                // before the pool closes.
                self.changes.listening(Box::new(move || {
                    task.abort();
                    Box::pin(async move {
                        let _ = task.await;
                    })
                }));
            }
        }
        Ok(())
    }

    /// Closes the pool's connections (the run history's too: they share them).
    async fn shutdown(&self) -> Result<(), Error> {
        self.changes.stop().await;
        if self
            .waiting_until
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            if let Some(driver) = self.link.current() {
                // Left behind, it would only wake the others for nothing until it ends.
                let _ = driver.stop_waiting(self.changes.token()).await;
            }
        }
        self.link.close().await;
        #[cfg(feature = "sqlite")]
        if let Some(lock) = &self.link.node_lock {
            lock.release();
        }
        Ok(())
    }

    /// A [`SqlRunHistory`] on this store's pool, in the table `<table_name>_runs`
    /// beside the job table (see [`SqlJobStore::runs_table_name`]).
    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(self.history.clone())
    }

    fn is_persistent(&self) -> bool {
        true
    }

    /// SQLite is single-node (one scheduler process per file: see
    /// [`SqlJobStore::lock_single_node`]).
    fn capabilities(&self) -> apscheduler_core::Capabilities {
        let mut capabilities = apscheduler_core::Capabilities::persistent_shared(true);
        capabilities.single_node = self.link.backend() == Dialect::Sqlite;
        capabilities.notifications = self.link.backend() == Dialect::Postgres;
        capabilities.store_clock = self.link.backend() != Dialect::Sqlite;
        if self.link.backend() != Dialect::Sqlite {
            capabilities.partitions = crate::schema::CLAIM_PARTITIONS;
        }
        capabilities
    }

    /// PostgreSQL: heard through `LISTEN` from [`start`](JobStore::start) on: every
    /// job added, changed, removed or released by another store on the table (another
    /// process's scheduler or `aps jobs`) calls it, and so does every reconnection of
    /// the listening connection. The other backends have no channel.
    fn set_change_listener(&self, listener: apscheduler_core::ChangeListener) {
        self.changes.set_listener(listener);
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        let row = self.encode(&job)?;
        let driver = self.driver().await?;
        retry!(driver.insert(std::slice::from_ref(&row), replace_existing)).map_err(into_error)?;
        self.changed(&driver).await;
        Ok(())
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        let mut rows = Vec::with_capacity(jobs.len());
        for job in &jobs {
            rows.push(self.encode(job)?);
        }
        if replace_existing {
            // The same id twice: the later job wins, as if added one by one.
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
            for (i, r) in rows.iter().enumerate() {
                last.insert(r.id.as_str(), i);
            }
            if last.len() < rows.len() {
                let keep: HashSet<usize> = last.into_values().collect();
                rows = rows
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep.contains(i))
                    .map(|(_, r)| r)
                    .collect();
            }
        } else {
            let mut seen = HashSet::with_capacity(rows.len());
            for r in &rows {
                if !seen.insert(r.id.as_str()) {
                    return Err(Error::conflict(&r.id));
                }
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let driver = self.driver().await?;
        retry!(driver.insert(&rows, replace_existing)).map_err(into_error)?;
        self.changed(&driver).await;
        Ok(())
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let row = self.encode(&job)?;
        let driver = self.driver().await?;
        if retry!(driver.rows().update(&row))? {
            self.changed(&driver).await;
            Ok(())
        } else {
            Err(Error::job_not_found(&job.id))
        }
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        if codec::check_id("id", id).is_err() {
            return Err(Error::job_not_found(id));
        }
        let driver = self.driver().await?;
        if retry!(driver.rows().delete(id))? {
            self.changed(&driver).await;
            Ok(())
        } else {
            Err(Error::job_not_found(id))
        }
    }

    /// Removes every job, corrupt ones included.
    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let driver = self.driver().await?;
        retry!(driver.rows().delete_all()).map_err(into_error)?;
        self.changed(&driver).await;
        Ok(())
    }

    /// The job, `None` when absent, or a `Serialization` error for a row that cannot
    /// be read (it is not marked corrupt here: claims do that).
    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        if codec::check_id("id", id).is_err() {
            return Ok(None);
        }
        let driver = self.driver().await?;
        let Some(row) = driver.rows().fetch(id, self.max_bytes()).await? else {
            return Ok(None);
        };
        codec::decode(&row, &self.codec)
            .map(Some)
            .map_err(|reason| Error::new(ErrorKind::Serialization, reason))
    }

    /// Every readable job; rows that cannot be read are skipped with a warning (see
    /// [`corrupt_jobs`](SqlJobStore::corrupt_jobs)).
    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let driver = self.driver().await?;
        let rows = driver.fetch_all(self.max_bytes()).await?;
        let decoded: Vec<Result<Job, String>> = if rows.len() >= PARALLEL_DECODE_ROWS {
            use rayon::prelude::*;
            rows.par_iter()
                .map(|row| codec::decode(row, &self.codec))
                .collect()
        } else {
            rows.iter()
                .map(|row| codec::decode(row, &self.codec))
                .collect()
        };
        let mut jobs = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for (row, job) in rows.iter().zip(decoded) {
            match job {
                Ok(job) => jobs.push(job),
                Err(_) => unreadable.push(row.id.as_str()),
            }
        }
        if !unreadable.is_empty() {
            let shown: Vec<&str> = unreadable.iter().take(10).copied().collect();
            apscheduler_core::log_warn!(target: "apscheduler", table = %self.link.names.table, "{} stored job(s) cannot be read and were left out: {}{}", unreadable.len(), shown.join(", "), if unreadable.len() > shown.len() { ", ..." } else { "" });
        }
        Ok(jobs)
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let driver = self.driver().await?;
        let (due, leased) = driver.rows().next_run_time().await?;
        // Sleeping until another scheduler's lease ends: only then does a release
        // concern this scheduler (a release never moves a job it saw unleased earlier).
        if let Some(until) = leased.filter(|l| due.is_none_or(|d| *l <= d)) {
            self.wait_for_release(&driver, until).await;
        }
        let earliest = match (due, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(earliest.map(codec::from_micros))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        self.claim(scheduler_id, now, limit, lease, None).await
    }

    /// PostgreSQL and MySQL/MariaDB: the due jobs of the hint's partitions first,
    /// through the index on `(claim_partition, next_run_time, id)`, then the earliest
    /// due jobs of the other partitions to fill `limit`, in one statement on PostgreSQL
    /// (two in one transaction on MySQL/MariaDB when it steals). A hint that names
    /// every partition or none, or another partition count, is a plain claim; SQLite
    /// ignores it.
    async fn acquire_due_jobs_preferring(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
        hint: apscheduler_core::ClaimHint<'_>,
    ) -> Result<Acquired, Error> {
        let partitioned = self.link.backend() != Dialect::Sqlite
            && hint.partitions == crate::schema::CLAIM_PARTITIONS
            && !hint.owned.is_empty()
            && !hint.owns_all();
        let prefer = partitioned.then_some(hint.owned);
        self.claim(scheduler_id, now, limit, lease, prefer).await
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        codec::check_id("scheduler_id", scheduler_id)?;
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if seen.insert(&**id) && codec::check_id("id", id).is_ok() {
                unique.push(id.to_string());
            }
        }
        let extended: HashSet<String> = if unique.is_empty() {
            HashSet::new()
        } else {
            let driver = self.driver().await?;
            let expires = codec::expiry(&now, lease);
            let now = codec::micros_floor(&now);
            retry!(driver.extend(Extension {
                holder: scheduler_id,
                ids: &unique,
                now,
                expires,
                lease: codec::lease_length(lease),
            }))?
            .into_iter()
            .collect()
        };
        let mut lost: Vec<&str> = Vec::new();
        let mut reported = HashSet::new();
        for id in ids {
            if !extended.contains(&**id) && reported.insert(&**id) {
                lost.push(id);
            }
        }
        if lost.is_empty() {
            Ok(())
        } else {
            Err(Error::lease_lost(scheduler_id, &lost))
        }
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        self.release_recorded(scheduler_id, releases, &[]).await
    }

    fn records_with_release(&self) -> bool {
        // The backends whose driver writes records and release in one round trip
        // (PostgreSQL one statement, MySQL one script), atomically.
        matches!(self.link.backend(), Dialect::Postgres | Dialect::MySql)
    }

    async fn release_jobs_recorded(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
        records: &[RunRecord],
    ) -> Result<Released, Error> {
        self.release_recorded(scheduler_id, releases, records).await
    }
}
