//! # apscheduler-store-redis
//!
//! [`RedisJobStore`]: APScheduler's `RedisJobStore` for apscheduler-rs. Jobs are kept in
//! Redis as JSON data (task *names*, arguments, the trigger's tagged JSON; never code),
//! so several schedulers, in one process or on many machines, can share one store:
//! due jobs are claimed with a lease by one atomic Lua script, and every
//! (job, run time) is handed to exactly one scheduler. Beside the jobs it keeps a
//! [run history](#run-history) ([`RedisRunHistory`]): what ran, when and how it ended.
//!
//! ## Usage
//! ```no_run
//! use std::sync::Arc;
//!
//! use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
//! use apscheduler_store_redis::RedisJobStore;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), apscheduler_core::Error> {
//! // Nothing connects yet: the store connects when the scheduler starts it.
//! let store = RedisJobStore::builder("redis://127.0.0.1:6379/")
//!     .prefix("myapp.scheduler.")
//!     .build()?;
//! let scheduler = BackgroundScheduler::from_builder(
//!     Engine::builder().jobstore("default", Arc::new(store)),
//! )?;
//! // Jobs in a persistent store run tasks registered by name.
//! scheduler.register_task("report", |_ctx| Ok(json!(null)));
//! scheduler.add_job(
//!     JobSpec::task("report")
//!         .id("nightly-report")
//!         .trigger_args("cron", json!({"hour": 3}))
//!         .replace_existing(true),
//! )?;
//! scheduler.start(false)?;
//! # scheduler.shutdown(true)?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Key layout
//! With the default prefix `apscheduler.` (see [`RedisJobStoreBuilder::prefix`]):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `apscheduler.jobs` | hash | job id → the job's [`JobState`](apscheduler_core::JobState) as JSON, plus `next_run_time_zone` (the IANA zone of the next run time) |
//! | `apscheduler.run_times` | sorted set | job id → next run time in UTC microseconds, for scheduled jobs nobody has claimed; paused jobs are not in it |
//! | `apscheduler.claimed` | sorted set | job id → the instant (UTC microseconds) a claimed job can be claimed again: the later of its next run time and its lease's expiry |
//! | `apscheduler.leases` | hash | job id → `<expiry_us>\|<run_us>\|<scheduler id>`: who holds the claim, until when (on the server's clock, `TIME`), and the run time it was claimed for (empty when paused while claimed) |
//! | `apscheduler.corrupt` | hash | job id → why the job cannot be read; such jobs stay in `jobs` and are in neither sorted set |
//!
//! The first two keys are APScheduler's own layout (`jobs_key`, `run_times_key`); a
//! claimed job moves from `run_times` to `claimed` until it is released, so a claim
//! never has to step over jobs other schedulers are running. Every change that
//! touches more than one key is one Lua script (or a `MULTI`/`EXEC` transaction), so
//! the keys are consistent at every instant and a crash at any point leaves no job
//! half-written. Scores are whole microseconds (exact as Redis doubles until the year
//! 2255); a run time with a fraction of a microsecond is rounded up, so a job is never
//! due early.
//!
//! A claim ([`acquire_due_jobs`](JobStore::acquire_due_jobs)) is one script: it first
//! drops the leases that have expired on due jobs (members of `claimed` scored at or
//! before now) and puts those jobs back into `run_times`, then takes up to `limit`
//! members of `run_times` scored at or before now, leases them, moves them to
//! `claimed` and returns their states. Releasing, adding (a whole batch, with the
//! conflict check), updating, extending leases and setting corrupt jobs aside are
//! scripts too; removing one job is a `MULTI`/`EXEC` transaction.
//!
//! ## Behavior
//! [`RedisJobStore`] follows the [`JobStore`] contract and passes the
//! `apscheduler-testkit` conformance suite. Where the contract leaves room:
//! - It connects in [`start`](JobStore::start) (or on first use), never in the
//!   constructor, so a scheduler can be configured while Redis is down; `start`
//!   itself fails with `Unavailable` when Redis cannot be reached then. The
//!   connection is a [`redis::aio::ConnectionManager`]: a dropped connection is
//!   re-established in the background, and a call that finds the connection refused
//!   (so nothing was sent) is tried once more on the new one. Errors reaching Redis
//!   (refused, dropped, timed out, `LOADING`, `READONLY`, ...) are
//!   [`ErrorKind::Unavailable`](apscheduler_core::ErrorKind::Unavailable), which the
//!   engine retries with backoff; the Redis error is the error's
//!   [`source`](std::error::Error::source). Other kinds: `Conflict`, `NotFound`,
//!   `Serialization`, `LeaseLost` as the contract says; `InvalidInput` for a bad URL
//!   or prefix.
//! - Claims are ordered by score (run time in microseconds), then by id as raw bytes
//!   (Redis orders equal scores that way, which is also how Rust orders `str`).
//! - Corrupt jobs (not JSON, not a job, an unknown format version or trigger, an
//!   unknown time zone, a state larger than
//!   [`max_state_bytes`](RedisJobStoreBuilder::max_state_bytes)) are reported once in
//!   [`Acquired::corrupt`] when they first come due, then moved from `run_times` to the
//!   `corrupt` hash with the error; they stay in `jobs` and are never deleted.
//!   [`lookup_job`](JobStore::lookup_job) reports them as `Serialization` errors,
//!   [`get_all_jobs`](JobStore::get_all_jobs) skips them (with a warning),
//!   [`remove_job`](JobStore::remove_job) removes them, and storing a new state under
//!   their id (replace, update) makes them ordinary jobs again.
//!   [`RedisJobStore::corrupt_jobs`] lists them.
//! - Leases behave as in the memory store: `add_job` with `replace_existing` and
//!   `update_job` keep the lease of a claimed job; a release from a scheduler that lost
//!   its lease, or for a job removed meanwhile, is ignored;
//!   [`get_next_run_time`](JobStore::get_next_run_time) reports a claimed job at the
//!   later of its run time and its lease's expiry.
//! - Leases are timed by the server's clock (`TIME`, read inside the scripts): a claim
//!   leases until the server's time plus the lease, and a lease expires by the
//!   server's time, so node clock skew cannot let two schedulers hold one lease
//!   ([`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)). The
//!   `now` a scheduler passes says which jobs are due.
//! - [`add_jobs`](JobStore::add_jobs) is one script: all or nothing, also for two jobs
//!   of the batch with the same id.
//! - The scripts touch five keys (and the run history's scripts name keys from the
//!   prefix), so the store needs one Redis server (or a primary); with Redis Cluster, a
//!   hash-tag prefix such as `{aps}.` would keep them in one slot, but this crate
//!   connects to a single node.
//!
//! ## URLs, Sentinel and replicas
//! - `redis://[[user]:password@]host[:port][/db][?options]` (and `rediss://`,
//!   `redis+unix://`): one server.
//! - `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master_name[/db][?options]`:
//!   the primary that Redis Sentinels (port 26379 by default) monitor under
//!   `master_name`; user and password are the primary's. The store asks the Sentinels
//!   for the primary at its first call and again after every error that may mean the
//!   primary moved (a dropped or refused connection, a time-out, `READONLY`); the
//!   change subscription asks again each time it re-subscribes. A master name that no
//!   answering Sentinel monitors is `InvalidInput`; no Sentinel answering, or none
//!   naming a primary that answers as one, is `Unavailable` within
//!   [`connect_timeout`](RedisJobStoreBuilder::connect_timeout).
//! - Options in either URL: `prefix` ([`RedisJobStoreBuilder::prefix`]),
//!   `wait_replicas` and `wait_timeout_ms` ([`RedisJobStoreBuilder::wait_replicas`]);
//!   in a Sentinel URL also `sentinel_username` and `sentinel_password`, the
//!   Sentinels' own credentials (other options are refused there; a `redis://` URL's
//!   other options go to the `redis` crate).
//!
//! Redis replicates asynchronously: a failover loses the writes the old primary had
//! not yet sent to the promoted replica. A lost claim starts nothing (its release
//! finds no lease); a lost release could let its fire time run again after the lease,
//! unless [`wait_replicas`](RedisJobStoreBuilder::wait_replicas) makes every release
//! wait for a replica.
//!
//! ## Run history
//! [`run_history`](JobStore::run_history) hands out a [`RedisRunHistory`] on the store's
//! connection and prefix (passing `apscheduler_testkit::history`). With prefix `P`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `Prun:<run id>` | hash | one run: `job_id`, `scheduled_at`, `started_at`, `finished_at` (UTC microseconds), `outcome`, `exit_code`, `http_status`, `output`, `message`, `node`; absent optional fields are `None` |
//! | `Pruns` | sorted set | every run id, scored by `scheduled_at` in microseconds |
//! | `Pruns:job:<job id>` | sorted set | the job's run ids, same scores |
//! | `Pruns:outcome:<outcome>` | sorted set | the run ids with that outcome (`running`, `success`, ...) |
//! | `Pruns:node:<node>` | sorted set | the run ids of one scheduler node |
//!
//! - Order: `ZREVRANGEBYSCORE` returns equal scores by member (run id) descending as
//!   raw bytes, which is the contract's `scheduled_at` then `run_id` descending. Times
//!   are stored to the microsecond (a fraction of one is dropped); scores are exact
//!   between the years 1685 and 2255.
//! - [`record_runs`](apscheduler_core::RunHistory::record_runs) is one script per 1,000
//!   records: each record replaces its hash whole (fields it no longer has are gone)
//!   and moves between the job, outcome and node sets when those changed (a run going
//!   from `running` to `success` leaves `runs:outcome:running`).
//! - [`query_runs`](apscheduler_core::RunHistory::query_runs) walks one sorted set
//!   newest first within the `since`/`until` scores: `runs` without a job, outcome or
//!   node filter, the filter's set with one, and with several the set with the fewest
//!   runs in the range (`ZCOUNT`); the other filters are checked with `ZMSCORE` on
//!   pages of 1,000 ids, and only the matching records are read (`HMGET`, pipelined).
//!   So a query takes a few round trips whatever the history's size, unless it
//!   combines two large sets whose common runs are rare: then each 1,000 runs of the
//!   smaller set walked past cost a few milliseconds (1,000,000 runs: about 1 ms per
//!   query; 26 to 80 ms, by machine load, for a combination that matches none of the
//!   10,000 runs of the smaller set). It never runs a long script, so other clients
//!   are not held up. `interrupt_running` walks the smaller of `runs:outcome:running`
//!   (the runs in flight) and the node's set, and rewrites those records in a script
//!   that writes each only while it is still `running` (so of nodes reaping the same
//!   dead node at once, each record goes to one). Needs Redis 6.2 or later (`ZMSCORE`).
//! - Pruning walks `runs:job:<job>` (newest first) or `runs` (scores before the cut)
//!   in script calls of 1,000 runs, deleting ended runs from the hash and every set in
//!   the same script, so the sets always hold exactly the stored runs (an empty set
//!   disappears).
//! - Memory: about 1.2 KB per run with a short output (1,000,000 runs: 1.2 GB).
//!   [`remove_all_jobs`](JobStore::remove_all_jobs) leaves the history alone.
//! - A stored record that cannot be read (an unknown outcome, a missing or malformed
//!   field) is a `Serialization` error naming the run id and the value.
//!
//! ## Feature flags
//! None. The `redis` crate is used with its tokio connection manager, scripts and
//! Sentinel support, and without TLS.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod config;
pub use config::{register, RedisStoreConfig};
mod changes;
mod codec;
mod conn;
mod durability;
mod error;
mod history;
pub use history::RedisRunHistory;
mod scripts;
mod sentinel;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, Acquired, CorruptJob, Error, Job, JobRelease, JobStore, Released,
};
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManagerConfig;
use redis::{Client, Cmd, FromRedisValue, Pipeline, ScriptInvocation};

use crate::codec::{decode, encode, from_micros, lease_length, now_micros, Encoded};
use crate::conn::Connection;
use crate::error::StoreError;
use crate::scripts::SCRIPTS;
use apscheduler_core::codec::{StateCodec, StateFormat};

/// The key prefix used when none is given (APScheduler's `apscheduler.`).
pub const DEFAULT_PREFIX: &str = "apscheduler.";

/// The largest stored job state read or written by default: 1 MiB.
pub const DEFAULT_MAX_STATE_BYTES: usize = 1 << 20;

/// The names of the keys a store uses (see the [crate documentation](crate#key-layout)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// Hash: job id → job state JSON.
    pub jobs: String,
    /// Sorted set: job id → next run time (UTC microseconds), unclaimed scheduled jobs.
    pub run_times: String,
    /// Sorted set: job id → when a claimed job can be claimed again (UTC microseconds).
    pub claimed: String,
    /// Hash: job id → `<expiry_us>|<run_us>|<scheduler id>`.
    pub leases: String,
    /// Hash: job id → why the job cannot be read.
    pub corrupt: String,
}

impl KeyLayout {
    fn new(prefix: &str) -> Self {
        KeyLayout {
            jobs: format!("{prefix}jobs"),
            run_times: format!("{prefix}run_times"),
            claimed: format!("{prefix}claimed"),
            leases: format!("{prefix}leases"),
            corrupt: format!("{prefix}corrupt"),
        }
    }

    /// Every key, in the order the scripts take them.
    fn all(&self) -> [&str; 5] {
        [
            &self.jobs,
            &self.run_times,
            &self.claimed,
            &self.leases,
            &self.corrupt,
        ]
    }
}

/// Checks a key prefix: not empty, at most 256 bytes, no whitespace or control
/// characters.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](apscheduler_core::ErrorKind::InvalidInput) naming the
/// problem.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let problem = if prefix.is_empty() {
        Some("it is empty".to_owned())
    } else if prefix.len() > 256 {
        Some(format!("it is {} bytes long, more than 256", prefix.len()))
    } else {
        prefix
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
            .map(|c| format!("it contains the character {c:?}"))
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(StoreError::InvalidInput(format!(
            "invalid value for field 'prefix': {prefix:?}: {why} (use letters, digits and \
             punctuation, such as 'apscheduler.')"
        ))
        .into()),
    }
}

/// Configures a [`RedisJobStore`]; from [`RedisJobStore::builder`].
#[derive(Debug, Clone)]
pub struct RedisJobStoreBuilder {
    url: String,
    /// `None`: the URL's `prefix=`, else [`DEFAULT_PREFIX`].
    prefix: Option<String>,
    max_state_bytes: usize,
    state_format: StateFormat,
    connection_timeout: Duration,
    response_timeout: Duration,
    reconnect_retries: usize,
    /// `None`: the URL's `wait_replicas=`, else no waiting.
    wait: Option<durability::WaitFor>,
}

impl RedisJobStoreBuilder {
    /// The prefix of every key (default: the URL's `prefix=` option, else
    /// [`DEFAULT_PREFIX`], `apscheduler.`); see [`validate_prefix`] for what is allowed.
    /// A URL's `prefix=` that differs from this one fails [`build`](Self::build).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The largest encoded job state, in bytes, the store writes or reads (default
    /// [`DEFAULT_MAX_STATE_BYTES`], 1 MiB). Larger jobs are refused with
    /// `Serialization`; larger stored states are treated as corrupt.
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes;
        self
    }

    /// The format new job states are written in (default JSON; see
    /// [`apscheduler_core::codec`]). States in either format are read, so switching is
    /// not a migration.
    pub fn state_format(mut self, format: StateFormat) -> Self {
        self.state_format = format;
        self
    }

    /// How long connecting may take (default 3 s): the first connection, retries
    /// included, fails after this long with `Unavailable` naming the address and the
    /// cause ("cannot reach the Redis store at 127.0.0.1:6379: connection refused
    /// ..."); each later reconnection attempt is bounded by it too. The same setting
    /// as [`connection_timeout`](Self::connection_timeout), under the name every
    /// store uses.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// [`connect_timeout`](Self::connect_timeout), under its earlier name.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long to wait for the answer to one command or script (default 10 s); a
    /// command that times out is `Unavailable`.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many times one (re)connection retries, with exponential backoff from 100 ms,
    /// before the calls waiting for it fail as `Unavailable` (default 1). The scheduler
    /// engine retries a failing store itself, so this stays small.
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// After each write that changes jobs (adds, updates, removals, releases), waits
    /// until `replicas` replicas have it (`WAIT`), at most `timeout`; fewer in time
    /// fail the call with `Unavailable` ("applied on the primary but confirmed by 0 of
    /// 1 replicas ..."): the write stands on the primary but a failover could undo it.
    /// The scheduler starts a fire time only after its release is confirmed, so with
    /// a replica this keeps a failover from starting a fire time twice. Claims are not
    /// waited for (a lost claim starts nothing). 0 turns it off (the default; URL
    /// options `wait_replicas=N&wait_timeout_ms=M`, default time-out 100 ms).
    pub fn wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = Some(durability::WaitFor { replicas, timeout });
        self
    }

    /// Builds the store. Nothing connects yet.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that cannot be parsed, an invalid prefix, or a URL
    /// `prefix=` that differs from [`prefix`](Self::prefix).
    pub fn build(self) -> Result<RedisJobStore, Error> {
        let (target, options) = if self.url.starts_with(sentinel::SCHEME) {
            let (url, options) = sentinel::SentinelUrl::parse(&self.url)?;
            (
                conn::Target::Sentinel(sentinel::SentinelTarget::new(url)?),
                options,
            )
        } else {
            let (url, options) = durability::take_options(&self.url)?;
            let client =
                Client::open(url.as_str()).map_err(|source| StoreError::InvalidUrl { source })?;
            (conn::Target::Direct(client), options)
        };
        let wait = match self.wait {
            Some(wait) => Some(wait),
            None => options.wait().map_err(|why| {
                StoreError::InvalidInput(format!("invalid value for field 'url': {why}"))
            })?,
        }
        .filter(|w| w.replicas > 0);
        let prefix = match (self.prefix, options.prefix) {
            (Some(set), Some(in_url)) if set != in_url => {
                return Err(StoreError::InvalidInput(format!(
                    "invalid value for field 'prefix': {set:?} differs from the URL's                      prefix={in_url:?} (give the prefix once)"
                ))
                .into())
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => DEFAULT_PREFIX.to_owned(),
        };
        validate_prefix(&prefix)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.reconnect_retries);
        let conn = Arc::new(Connection::new(target, config, self.connection_timeout));
        Ok(RedisJobStore {
            history: Arc::new(RedisRunHistory::new(conn.clone(), &prefix)),
            conn,
            keys: KeyLayout::new(&prefix),
            prefix,
            max_state_bytes: self.max_state_bytes,
            state_format: self.state_format,
            wait,
            changes: apscheduler_core::ChangeChannel::new(uuid::Uuid::new_v4().to_string()),
        })
    }
}

/// A job store in Redis (APScheduler's `RedisJobStore`), shareable by several
/// schedulers.
///
/// Persistent: it stores [`JobState`](apscheduler_core::JobState) JSON, so jobs must run
/// tasks registered by name and have persistable triggers. See the
/// [crate documentation](crate) for the key layout and the details of the contract.
pub struct RedisJobStore {
    /// Shared with the run history.
    conn: Arc<Connection>,
    prefix: String,
    keys: KeyLayout,
    max_state_bytes: usize,
    state_format: StateFormat,
    history: Arc<RedisRunHistory>,
    /// `WAIT` after each job write.
    wait: Option<durability::WaitFor>,
    /// Change notifications (pub/sub).
    changes: apscheduler_core::ChangeChannel,
}

impl fmt::Debug for RedisJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJobStore")
            .field("server", &self.conn.describe())
            .field("prefix", &self.prefix)
            .field("connected", &self.conn.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisJobStore {
    /// A store at `url` (`redis://[:password@]host[:port][/db]`, or `redis+unix://`)
    /// with the default prefix and settings. Nothing connects yet.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that cannot be parsed.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// Configures a store at `url`.
    pub fn builder(url: impl Into<String>) -> RedisJobStoreBuilder {
        RedisJobStoreBuilder {
            url: url.into(),
            prefix: None,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            state_format: StateFormat::Json,
            connection_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(10),
            reconnect_retries: 1,
            wait: None,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The names of the keys this store uses.
    pub fn keys(&self) -> &KeyLayout {
        &self.keys
    }

    /// The jobs set aside because they cannot be read, with the reason, by id.
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn corrupt_jobs(&self) -> Result<Vec<CorruptJob>, Error> {
        let flat: Vec<Vec<u8>> = self
            .query(
                "list corrupt jobs",
                redis::cmd("HGETALL").arg(&self.keys.corrupt),
            )
            .await?;
        let mut jobs: Vec<CorruptJob> = flat
            .chunks_exact(2)
            .map(|pair| CorruptJob {
                id: String::from_utf8_lossy(&pair[0]).into_owned(),
                error: String::from_utf8_lossy(&pair[1]).into_owned(),
            })
            .collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    async fn query<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        self.conn.query(what, cmd).await
    }

    async fn pipeline<T: FromRedisValue>(
        &self,
        what: &'static str,
        pipe: &Pipeline,
    ) -> Result<T, StoreError> {
        self.conn.pipeline(what, pipe).await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.conn.invoke(what, invocation).await
    }

    /// A script call with the store's keys.
    fn invocation<'a>(&self, script: &'a redis::Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in self.keys.all() {
            invocation.key(key);
        }
        invocation
    }

    fn codec(&self) -> StateCodec {
        StateCodec::new(self.state_format, self.max_state_bytes)
    }

    fn encode(&self, job: &Job) -> Result<Encoded, Error> {
        encode(job, &self.codec())
    }

    fn decode(&self, id: &[u8], raw: &[u8]) -> Result<Job, StoreError> {
        decode(id, raw, &self.codec()).map_err(|reason| StoreError::Corrupt {
            id: String::from_utf8_lossy(id).into_owned(),
            reason,
        })
    }

    async fn add(&self, jobs: &[Job], replace_existing: bool) -> Result<(), Error> {
        let encoded = jobs
            .iter()
            .map(|job| self.encode(job))
            .collect::<Result<Vec<_>, _>>()?;
        let mut invocation = self.invocation(&SCRIPTS.add);
        invocation.arg(if replace_existing { "1" } else { "0" });
        for (job, enc) in jobs.iter().zip(&encoded) {
            invocation
                .arg(&*job.id)
                .arg(&enc.state[..])
                .arg(enc.run_arg());
        }
        let conflict: Option<String> = self.invoke("add jobs", &invocation).await?;
        match conflict {
            Some(id) => Err(StoreError::Conflict(id).into()),
            None => self.replicated("add jobs").await,
        }
    }

    /// With [`wait_replicas`](RedisJobStoreBuilder::wait_replicas), waits until the
    /// write just made is on enough replicas.
    async fn replicated(&self, what: &'static str) -> Result<(), Error> {
        match &self.wait {
            Some(wait) => Ok(wait.confirm(&self.conn, what).await?),
            None => Ok(()),
        }
    }

    /// The channel of this prefix's change notifications.
    fn changes_channel(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// Tells the other schedulers that jobs changed (`PUBLISH`), after a write that
    /// succeeded. A failed notification is not the write's failure: the others still
    /// see the change at their next pass or poll.
    async fn changed(&self) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.changes_channel()).arg(&**self.changes.token());
        let sent: Result<i64, _> = self.query("notify a change", &cmd).await;
        if let Err(e) = sent {
            tracing::debug!(target: "apscheduler", "change notification not sent: {e}");
        }
    }

    /// Sets aside claimed jobs that cannot be decoded (best effort: on failure they are
    /// reported again when their lease expires).
    async fn quarantine(&self, scheduler_id: &str, bad: &[(Vec<u8>, Vec<u8>, String)]) {
        let mut invocation = self.invocation(&SCRIPTS.quarantine);
        invocation.arg(scheduler_id);
        for (id, state, error) in bad {
            invocation.arg(&id[..]).arg(&state[..]).arg(error.as_str());
        }
        let result: Result<i64, _> = self.invoke("set aside corrupt jobs", &invocation).await;
        if let Err(e) = result {
            apscheduler_core::log_warn!(target: "apscheduler", prefix = %self.prefix, "cannot set aside corrupt jobs (they will be reported again): {e}");
        }
    }
}

/// The score of the first member of a flat `WITHSCORES` reply, in whole microseconds.
fn scored(flat: &[Vec<u8>]) -> Result<Option<i64>, StoreError> {
    let Some(score) = flat.get(1) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(score).unwrap_or_default();
    let value: f64 = text.parse().map_err(|_| StoreError::Reply {
        what: "get next run time",
        detail: format!("score {text:?}"),
    })?;
    Ok(Some(value.round() as i64))
}

#[async_trait]
impl JobStore for RedisJobStore {
    /// Connects (`PING`). With a change listener set, also subscribes to the prefix's
    /// change channel on a connection of its own.
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        let _: String = self.query("ping", &redis::cmd("PING")).await?;
        if let Some(listener) = self.changes.listener() {
            self.changes.stop().await;
            let task = tokio::spawn(changes::listen_loop(
                self.conn.clone(),
                self.changes_channel(),
                self.changes.token().clone(),
                listener,
            ));
            self.changes.listening(Box::new(move || {
                task.abort();
                Box::pin(async {})
            }));
        }
        Ok(())
    }

    /// Heard through the subscription to `<prefix>changes` from
    /// [`start`](JobStore::start) on: every job added, changed, removed or released by
    /// another store on the prefix (another process's scheduler or `aps jobs`) calls it,
    /// and so does every re-subscription after the connection dropped.
    fn set_change_listener(&self, listener: apscheduler_core::ChangeListener) {
        self.changes.set_listener(listener);
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.changes.stop().await;
        // Dropping the last handle closes the connection; a later call (of the store or
        // its run history) reconnects.
        self.conn.disconnect();
        Ok(())
    }

    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(self.history.clone())
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn capabilities(&self) -> apscheduler_core::Capabilities {
        let mut capabilities = apscheduler_core::Capabilities::persistent_shared(true);
        capabilities.notifications = true;
        capabilities.store_clock = true;
        capabilities
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        self.add(std::slice::from_ref(&job), replace_existing)
            .await?;
        self.changed().await;
        Ok(())
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.add(&jobs, replace_existing).await?;
        self.changed().await;
        Ok(())
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let enc = self.encode(&job)?;
        let mut invocation = self.invocation(&SCRIPTS.update);
        invocation
            .arg(&*job.id)
            .arg(&enc.state[..])
            .arg(enc.run_arg());
        let updated: i64 = self.invoke("update job", &invocation).await?;
        if updated == 0 {
            return Err(StoreError::NotFound(job.id.to_string()).into());
        }
        self.replicated("update job").await?;
        self.changed().await;
        Ok(())
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HDEL")
            .arg(&k.jobs)
            .arg(id)
            .cmd("ZREM")
            .arg(&k.run_times)
            .arg(id)
            .cmd("ZREM")
            .arg(&k.claimed)
            .arg(id)
            .cmd("HDEL")
            .arg(&k.leases)
            .arg(id)
            .cmd("HDEL")
            .arg(&k.corrupt)
            .arg(id);
        let (removed, ..): (i64, i64, i64, i64, i64) = self.pipeline("remove job", &pipe).await?;
        if removed == 0 {
            return Err(StoreError::NotFound(id.to_owned()).into());
        }
        self.replicated("remove job").await?;
        self.changed().await;
        Ok(())
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let _: i64 = self
            .query(
                "remove all jobs",
                redis::cmd("DEL").arg(&self.keys.all()[..]),
            )
            .await?;
        self.replicated("remove all jobs").await?;
        self.changed().await;
        Ok(())
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        let raw: Option<Vec<u8>> = self
            .query(
                "look up job",
                redis::cmd("HGET").arg(&self.keys.jobs).arg(id),
            )
            .await?;
        match raw {
            None => Ok(None),
            Some(raw) => Ok(Some(self.decode(id.as_bytes(), &raw)?)),
        }
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let flat: Vec<Vec<u8>> = self
            .query("list jobs", redis::cmd("HGETALL").arg(&self.keys.jobs))
            .await?;
        let mut jobs: Vec<(Option<i64>, Job)> = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            match self.decode(&pair[0], &pair[1]) {
                Ok(job) => jobs.push((job.next_run_time.as_ref().map(codec::score), job)),
                Err(e) => {
                    apscheduler_core::log_warn!(target: "apscheduler", prefix = %self.prefix, "skipping a stored job: {e}");
                }
            }
        }
        // Paused jobs (`None`) sort after every run time.
        jobs.sort_unstable_by(|(a, ja), (b, jb)| {
            (a.is_none(), a, &ja.id).cmp(&(b.is_none(), b, &jb.id))
        });
        Ok(jobs.into_iter().map(|(_, job)| job).collect())
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZRANGE")
            .arg(&self.keys.run_times)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(&self.keys.claimed)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES");
        let (due, claimed): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            self.pipeline("get next run time", &pipe).await?;
        let next = match (scored(&due)?, scored(&claimed)?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(next.map(from_micros))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let mut invocation = self.invocation(&SCRIPTS.claim);
        invocation
            .arg(now_micros(&now))
            .arg(lease_length(lease))
            .arg(i64::try_from(limit).unwrap_or(i64::MAX))
            .arg(scheduler_id)
            .arg(self.max_state_bytes);
        let (taken, too_large): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            self.invoke("acquire due jobs", &invocation).await?;

        let mut acquired = Acquired {
            jobs: Vec::with_capacity(taken.len() / 2),
            corrupt: Vec::new(),
        };
        for pair in too_large.chunks_exact(2) {
            acquired.corrupt.push(CorruptJob {
                id: String::from_utf8_lossy(&pair[0]).into_owned(),
                error: String::from_utf8_lossy(&pair[1]).into_owned(),
            });
        }
        let mut bad = Vec::new();
        let mut taken = taken.into_iter();
        while let (Some(id), Some(state)) = (taken.next(), taken.next()) {
            match decode(&id, &state, &self.codec()) {
                Ok(job) => acquired.jobs.push(job),
                Err(error) => {
                    acquired.corrupt.push(CorruptJob {
                        id: String::from_utf8_lossy(&id).into_owned(),
                        error: error.clone(),
                    });
                    bad.push((id, state, error));
                }
            }
        }
        if !bad.is_empty() {
            self.quarantine(scheduler_id, &bad).await;
        }
        Ok(acquired)
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        _now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut invocation = self.invocation(&SCRIPTS.extend);
        invocation.arg(scheduler_id).arg(lease_length(lease));
        for id in ids {
            invocation.arg(&**id);
        }
        let lost: Vec<String> = self.invoke("extend leases", &invocation).await?;
        if lost.is_empty() {
            Ok(())
        } else {
            Err(StoreError::LeaseLost {
                holder: scheduler_id.to_owned(),
                ids: lost.join(", "),
            }
            .into())
        }
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        if releases.is_empty() {
            return Ok(Released::all());
        }
        let mut invocation = self.invocation(&SCRIPTS.release);
        invocation.arg(scheduler_id);
        // A state that cannot be stored is not released (its lease runs out); the others
        // are.
        let mut refused = Vec::new();
        for release in &releases {
            match release {
                JobRelease::Update(job) => {
                    let enc = match self.encode(job) {
                        Ok(enc) => enc,
                        Err(e) => {
                            refused.push((job.id.clone(), e));
                            continue;
                        }
                    };
                    invocation
                        .arg("u")
                        .arg(&*job.id)
                        .arg(&enc.state[..])
                        .arg(enc.run_arg());
                }
                JobRelease::Remove(id) => {
                    invocation.arg("r").arg(&**id);
                }
            }
        }
        let lost: Vec<String> = self.invoke("release jobs", &invocation).await?;
        // Not confirmed: the scheduler starts none of these fire times and retries the
        // release, which then finds the leases gone (applied here) or applies them (on
        // a new primary that never had them).
        if lost.len() + refused.len() < releases.len() {
            self.replicated("release jobs").await?;
        }
        // A node that saw these jobs under this one's lease sleeps until it expires:
        // wake it now.
        if lost.len() + refused.len() < releases.len() {
            self.changed().await;
        }
        let lost = lost.into_iter().map(Arc::from).collect();
        Ok(Released::new(lost, refused))
    }
}
