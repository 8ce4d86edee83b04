//! # apscheduler-store-mongodb
//!
//! [`MongoDbJobStore`]: APScheduler's `MongoDBJobStore` for apscheduler-rs. Jobs live as
//! documents in a MongoDB collection (database `apscheduler`, collection `jobs` by
//! default), so they survive restarts and several schedulers — on one machine or many —
//! can share them: claims are atomic and leased, so every (job, run time) is handed to
//! exactly one scheduler, and the jobs of a scheduler that dies are taken over by the
//! others when its leases run out. Beside the jobs it keeps the schedulers' run history
//! ([`MongoDbRunHistory`], collection `<collection>_runs`; see [Run history](#run-history)).
//!
//! It speaks the documented MongoDB API only (CRUD, `findAndModify`, the `update`
//! write command, an aggregation with `$group`), so it works with MongoDB servers from
//! 4.2 on, standalone or replica sets, and with servers of the MongoDB wire protocol
//! that implement those commands. (Sharded collections are not supported: the claim's
//! `findAndModify` does not name a shard key.)
//!
//! ## Usage
//! ```no_run
//! use std::time::Duration;
//!
//! use apscheduler_core::chrono::Utc;
//! use apscheduler_core::{no_args, no_kwargs, Job, JobRelease, JobStore, Task};
//! use apscheduler_store_mongodb::MongoDbJobStore;
//! use apscheduler_triggers::AnyTrigger;
//!
//! # async fn example() -> Result<(), apscheduler_core::Error> {
//! let store = MongoDbJobStore::builder("mongodb://localhost:27017/?appName=billing")
//!     .database("billing")
//!     .collection("scheduled_jobs")
//!     .build()?;
//! // Connects, checks that the server answers and creates the index.
//! store.start("default").await?;
//!
//! let tz = apscheduler_core::chrono_tz::UTC;
//! let now = Utc::now().with_timezone(&tz);
//! let args = serde_json::json!({"minutes": 5});
//! let trigger = AnyTrigger::from_args("interval", &args, tz, now)?.into_shared();
//! let job = Job {
//!     id: "send-invoices".into(),
//!     name: "send invoices".into(),
//!     // Persistent stores hold registered task names, never code.
//!     task: Task::Named("billing.send_invoices".into()),
//!     args: no_args(),
//!     kwargs: no_kwargs(),
//!     next_run_time: trigger.next_fire_time(None, &now),
//!     trigger,
//!     executor: "default".into(),
//!     misfire_grace_time: Some(Duration::from_secs(30)),
//!     coalesce: true,
//!     max_instances: 1,
//!     recover: false,
//! };
//! store.add_job(job, true).await?;
//!
//! // What a scheduler does: claim due jobs with a lease, run them, release them with
//! // their next run time.
//! let due = store
//!     .acquire_due_jobs("node-1", Utc::now(), 100, Duration::from_secs(30))
//!     .await?;
//! for corrupt in &due.corrupt {
//!     eprintln!("cannot read job {}: {}", corrupt.id, corrupt.error);
//! }
//! let releases = due
//!     .jobs
//!     .into_iter()
//!     .map(|mut job| {
//!         job.next_run_time = job
//!             .trigger
//!             .next_fire_time(job.next_run_time.as_ref(), &Utc::now().with_timezone(&tz));
//!         JobRelease::Update(job)
//!     })
//!     .collect();
//! store.release_jobs("node-1", releases).await?;
//! store.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Document layout
//! One document per job, readable with any MongoDB client:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `_id` | string | the job id |
//! | `next_run_time` | `Int64` or `null` | UTC microseconds since the Unix epoch; `null` = paused |
//! | `state` | document (or string) | the job's [`JobState`](apscheduler_core::JobState): `version`, `id`, `name`, `task`, `args`, `kwargs`, `trigger` (tagged by `type`), `executor`, `misfire_grace_time` (seconds), `coalesce`, `max_instances`, `next_run_time` (RFC 3339) and `next_run_time_zone` (its IANA zone) |
//! | `lease_holder` | string, absent when free | the scheduler id that claimed the job |
//! | `lease_expires` | `Int64`, absent when free | UTC microseconds on the server's clock; the lease has expired at and after this instant |
//! | `lease_token` | string, absent when free | identifies the claim call that took the lease |
//! | `release_token` | string, absent until a release | identifies the release call that last stored the state |
//! | `corrupt` | string, absent when readable | why the job could not be read (see below) |
//!
//! `state` is a BSON document whenever that form reads back exactly; a state holding
//! an integer beyond `i64`, a NUL character, or an argument key that is empty, contains
//! `.` or starts with `$` is stored as its JSON text (a string) instead, so arguments
//! always come back byte for byte. Both forms are read. The top-level `next_run_time`
//! is what claims filter and sort on; the state's copy keeps the time zone.
//!
//! [`start`](JobStore::start) creates two indexes (idempotent): `aps_next_run_time` on
//! `{next_run_time: 1, _id: 1}` (claims and their order) and the sparse
//! `aps_lease_expires` on `{lease_expires: 1}` (the leased jobs, for
//! [`get_next_run_time`](JobStore::get_next_run_time)).
//!
//! ## Claims
//! [`acquire_due_jobs`](JobStore::acquire_due_jobs) takes four round trips, the last
//! two once per 100 jobs. First, `hello` reads the server's time (`localTime`, from
//! the primary), `server_now` below: leases run on the server's clock
//! ([`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)), and
//! the caller's `now` only says which jobs are due. Read before the claim's writes,
//! `server_now` is never later than the server's time at them, so no live lease is
//! taken whatever the schedulers' clocks say. (A server whose `hello` has no
//! `localTime` leaves the caller's clock, with a warning.) Then:
//! 1. `find` the first `limit` claimable jobs, sorted by `{next_run_time: 1, _id: 1}`
//!    (the index), returning their ids only. Claimable is
//!    `{next_run_time: {$lte: now}, corrupt: null, lease_expires: {$not: {$gt: server_now}}}`
//!    (or leased to the caller): due, readable, and with no lease or an expired one.
//! 2. `updateMany` `{_id: {$in: ids}, <claimable>}` setting
//!    `{lease_holder: scheduler_id, lease_expires: server_now + lease, lease_token: <random>}`.
//!    A multi-document update is atomic per document and checks the filter on each
//!    document as it writes it, so a job that another scheduler claimed in the
//!    meantime no longer matches and is left alone: two claimers never both take one.
//! 3. `find` `{_id: {$in: ids}, lease_token: <random>}`: exactly the jobs this call
//!    took, read after the lease was set (never a state from before).
//!
//! When other schedulers took some of the candidates, another round (up to four in
//! all) looks for more. The result is sorted by run time, then id.
//!
//! (A loop of `findAndModify`, one per job, would be simpler but costs a round trip
//! per job; on the SecantusDB test server it measured 180 ms per job at 2,000 due
//! jobs, against about 2 ms per job for the batch above.)
//!
//! [`release_jobs`](JobStore::release_jobs) sends one conditional write per job (an
//! `updateOne` of the new state, or a `deleteOne`), filtered on `{_id, lease_holder:
//! scheduler_id}`, up to 64 in flight at once; a write that matches nothing is a lost
//! lease. Each update also stores the call's random `release_token`: when the reply to
//! a write is lost and the driver sends it again (a retryable write), a server that does
//! not remember the first attempt (SecantusDB after a restart) matches nothing the
//! second time, and one `find` on `{_id: {$in: ids}, release_token}` then tells that the
//! first attempt applied, so the job is released, not lost (its fire time would
//! otherwise be started by nobody). [`extend_leases`](JobStore::extend_leases) reads the server's
//! time, then sends one `updateMany` per 100 ids, filtered on the caller's live leases.
//!
//! ## Change streams
//! Where the server offers change streams (a replica set, a sharded cluster,
//! SecantusDB; a standalone `mongod` has none), [`start`](JobStore::start) opens one on
//! the jobs collection when the scheduler set a change listener, so a scheduler asleep
//! is woken as soon as another process adds, replaces, removes or releases a job, or
//! changes its run time or state. The stream is filtered on the server: claims and
//! lease extensions (which only touch the lease fields) wake nobody. The store's own
//! writes are heard too (one spare pass each). The store declares
//! [`Capabilities::notifications`](apscheduler_core::Capabilities::notifications)
//! only while the stream is open, so the scheduler polls every `change_poll`
//! otherwise: before it opens, when the server has none (said once at `info`), and
//! after it ends (a lost connection, the collection dropped: a warning, a pass, and a
//! new stream a second later).
//!
//! ## Corrupt jobs
//! A document whose state cannot be read — not a document or JSON string, invalid
//! BSON or JSON, a missing field, an unknown format version or trigger type, a state
//! larger than [`max_state_bytes`](MongoDbJobStoreBuilder::max_state_bytes), an id that
//! differs from `_id` — is reported once, by the claim that meets it, in
//! [`Acquired::corrupt`](apscheduler_core::Acquired::corrupt). The claim sets its
//! `corrupt` field to the reason and drops the lease; it stays in the collection, is
//! never claimed again and is never deleted by the store. [`lookup_job`](JobStore::lookup_job)
//! returns `Serialization` for it and [`get_all_jobs`](JobStore::get_all_jobs) skips it
//! (with a warning under the tracing target `apscheduler`). To put it back in service,
//! store a good state with [`update_job`](JobStore::update_job) (or `add_job` with
//! `replace_existing`), which clears the mark, or fix the document by hand and
//! `$unset` its `corrupt` field. [`remove_job`](JobStore::remove_job) and
//! [`remove_all_jobs`](JobStore::remove_all_jobs) delete corrupt jobs like any other.
//! The state holds data only: task names, never code.
//!
//! ## Behavior
//! [`MongoDbJobStore`] follows the [`JobStore`] contract and passes the
//! `apscheduler-testkit` store conformance suite. Where the contract leaves room:
//! - Times are compared and ordered at microsecond resolution (a run time within the
//!   same microsecond as `now` is due).
//! - [`get_next_run_time`](JobStore::get_next_run_time) reports a leased job at the
//!   later of its run time and its lease's expiry, like the memory store.
//! - [`update_job`](JobStore::update_job) and `add_job` with `replace_existing` keep an
//!   existing lease.
//! - [`add_jobs`](JobStore::add_jobs) without `replace_existing` is all or nothing by
//!   compensation, not by transaction (transactions need a replica set; this store
//!   works on a standalone server too): duplicate ids within the batch are refused
//!   before anything is written; otherwise one ordered `insertMany` runs, and when it
//!   stops at a duplicate id, the jobs it inserted before it are deleted again before
//!   `Conflict` is returned. For that moment (one round trip) other schedulers may see
//!   them. A connection failure in the middle of the batch can leave part of it
//!   stored (the error is `Unavailable`). With `replace_existing` the batch is one
//!   `update` command of upserts; a repeated id keeps its last job.
//! - [`release_jobs`](JobStore::release_jobs) ignores releases for jobs that were
//!   removed or that another scheduler claimed after the caller's lease expired. A job
//!   in the batch that cannot be serialized is skipped (it stays leased until the
//!   lease expires) and reported as `Serialization` after the others were released.
//! - A claim that fails after it took some jobs returns those (the failure is logged);
//!   it fails only when it got nothing.
//!
//! Errors map to core kinds: no server, network failures and elections are
//! `Unavailable`; a duplicate id is `Conflict`; BSON errors and unreadable jobs are
//! `Serialization`; a bad connection string is `InvalidInput`. The driver's error is
//! kept as the error's source.
//!
//! ## Run history
//! [`JobStore::run_history`] (and [`MongoDbJobStore::history`], by type) hands out a
//! [`MongoDbRunHistory`]: one document per run in the collection `<collection>_runs`
//! of the store's database (`apscheduler.jobs_runs` by default), reached with the
//! store's client — using the history connects the store if it is not yet connected,
//! and after [`shutdown`](JobStore::shutdown) its next call connects again.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `_id` | string | the run id |
//! | `job_id` | string | the job id |
//! | `scheduled_us` | `Int64` | the fire time, UTC microseconds since the Unix epoch |
//! | `started_us` | `Int64` or `null` | when it started (`null`: never started) |
//! | `finished_us` | `Int64` or `null` | when it ended (`null`: still running) |
//! | `outcome` | string | `running`, `success`, `failure`, `timeout`, `missed`, `interrupted` or `error` |
//! | `exit_code` | `Int32` or `null` | a command's exit code |
//! | `http_status` | `Int32` or `null` | an HTTP job's response status |
//! | `output` | string | the tail of the run's output |
//! | `message` | string or `null` | why it failed, was missed or could not run |
//! | `node` | string | the scheduler that ran it |
//!
//! Times are integers, not BSON dates, because a BSON date holds milliseconds and a
//! record keeps microseconds (a finer part of an instant is dropped); in the shell,
//! `{$toDate: {$divide: ["$scheduled_us", 1000]}}` shows one as a date. A document
//! missing an optional field (written by hand) reads as `null` there; a missing
//! required field, a wrong type or an unknown `outcome` makes the query that meets it
//! fail with `Serialization`, naming the run id, the field and the value.
//!
//! [`prepare`](apscheduler_core::RunHistory::prepare) creates four indexes
//! (idempotent; one that exists under the same name with other keys is kept, with a
//! warning): `aps_runs_scheduled` `{scheduled_us: -1, _id: -1}` (newest first, pruning
//! by age), `aps_runs_job` `{job_id: 1, scheduled_us: -1, _id: -1}` (a job's runs,
//! pruning by count), `aps_runs_outcome` `{outcome: 1, scheduled_us: -1, _id: -1}` and
//! `aps_runs_node` `{node: 1, outcome: 1}` (a node's running records).
//!
//! - [`record_runs`](apscheduler_core::RunHistory::record_runs) writes records that
//!   are most likely new (`running`, or never started: `missed`, `error`) with one
//!   unordered `insertMany`, and the others (ended runs replacing their `running`
//!   record), plus any of the first whose id turned out to exist, as replacement
//!   upserts in `update` commands (1,000 per command). On the SecantusDB test server
//!   1,000 new records take about 0.6–0.8 s to insert and 1.7 s to upsert.
//! - [`query_runs`](apscheduler_core::RunHistory::query_runs) is one `find` sorted
//!   `{scheduled_us: -1, _id: -1}` with the limit. `since` is sent as
//!   `scheduled_us > since - 1 µs` rather than `>= since`: SecantusDB 0.7 misses
//!   documents equal to an inclusive bound on an index key followed by another key.
//!   On MongoDB each filter (none, a job, an outcome) has an index giving the whole
//!   order, so the server reads only the first `limit` entries; SecantusDB reads every
//!   match before it applies the limit (at 100,000 records: about 3 s unfiltered,
//!   5–10 ms for a job, 0.1–0.4 s for an outcome; `tests/perf.rs`, `history_figures`).
//! - [`prune_job_runs`](apscheduler_core::RunHistory::prune_job_runs) finds the
//!   newest ended run beyond `keep` (sorted `find` with `skip`), then deletes the job's
//!   ended runs ordered at or before it by (`scheduled_us`, `_id`) in two `deleteMany`s
//!   (SecantusDB scans the whole collection for an `$or`);
//!   [`prune_runs_before`](apscheduler_core::RunHistory::prune_runs_before) is one
//!   `deleteMany`. Neither touches a `running` record.
//! - [`interrupt_running`](apscheduler_core::RunHistory::interrupt_running) takes, per
//!   100 running records of the node, a `find` of their ids, an `updateMany` filtered
//!   on `outcome: "running"` (so a run that ends meanwhile keeps its real outcome) and
//!   a `find` of the records it changed.
//!
//! ## Connecting
//! [`MongoDbJobStore::builder`] takes a [connection string]; the client is created
//! (and the server pinged) in [`start`](JobStore::start), or on first use without it.
//! [`MongoDbJobStore::builder_with_client`] shares a [`mongodb::Client`] the
//! application already has (the store then never shuts that client down).
//! [`shutdown`](JobStore::shutdown) closes a client the store created; a later call
//! connects again.
//!
//! [connection string]: https://www.mongodb.com/docs/manual/reference/connection-string/
//!
//! ## Testing
//! The integration tests read the server's URL from `APS_TEST_MONGODB_URL` (for example
//! `mongodb://127.0.0.1:27117/?directConnection=true`); without it they print a notice
//! and pass, unless `CI=true`, where they fail. Each run works in a database of its own
//! and drops it at the end. `scripts/start-mongo-wire.sh` starts a local SecantusDB
//! (a MongoDB wire-protocol server from PyPI) on port 27117.
//!
//! ## Feature flags
//! None. The `mongodb` driver is built with its default features: TLS through rustls
//! (no OpenSSL) and DNS seed lists (`mongodb+srv://`).
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod config;
pub use config::{register, MongoDbStoreConfig};
mod changes;
mod codec;
mod error;
mod history;
mod names;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::codec::{StateCodec, StateFormat};
use apscheduler_core::{
    async_trait, Acquired, CorruptJob, Error, ErrorKind, Job, JobRelease, JobStore, Released,
};
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, Bson, Document, RawDocumentBuf};
use mongodb::error::{Error as DriverError, ErrorKind as DriverKind};
use mongodb::options::{
    ClientOptions, CollectionOptions, IndexOptions, ReadPreference, SelectionCriteria,
};
use mongodb::{Client, Collection, Database, IndexModel};
use parking_lot::Mutex;

use crate::codec::{field, micros, micros_field, run_time_micros, Encoded};
use crate::error::{is_duplicate_key, StoreError, DUPLICATE_KEY};
pub use crate::history::MongoDbRunHistory;
pub use crate::names::{validate_collection_name, validate_database_name};

/// The MongoDB driver this crate is built with, to build a [`mongodb::Client`] for
/// [`MongoDbJobStore::builder_with_client`] with the same version.
pub use mongodb;

/// Ids per `$in` list (claims, lease extensions, removals); long `$in` lists are slow
/// on some servers of the wire protocol.
const IDS_PER_QUERY: usize = 100;

/// Claim rounds per call: another round runs when other schedulers took some of the
/// candidates first.
const CLAIM_ROUNDS: usize = 4;

/// Statements per `update` command of a release or replacing batch.
const STATEMENTS_PER_COMMAND: usize = 1000;

/// State bytes per `update` command (MongoDB takes up to 16 MiB per command).
const BYTES_PER_COMMAND: usize = 8 << 20;

/// Index names created by [`MongoDbJobStore`].
const NEXT_RUN_TIME_INDEX: &str = "aps_next_run_time";
const LEASE_INDEX: &str = "aps_lease_expires";

/// Server codes for "an index of this name exists with other options/keys".
const INDEX_CONFLICT_CODES: [i32; 2] = [85, 86];

/// A job store keeping jobs in a MongoDB collection (APScheduler's `MongoDBJobStore`).
///
/// Persistent: jobs must run registered tasks (by name) with serializable arguments.
/// Several schedulers may share one collection. Cheap to share behind an `Arc`; the
/// driver's connection pool serves concurrent calls.
///
/// See the [crate documentation](crate) for the document layout, the claim protocol
/// and the handling of unreadable jobs.
pub struct MongoDbJobStore {
    link: Arc<Link>,
    codec: StateCodec,
    /// The scheduler's change listener and the change stream task.
    changes: apscheduler_core::ChangeChannel,
    /// Whether a change stream is open now (then the store declares notifications).
    streaming: Arc<AtomicBool>,
}

/// Where the store's data lives and the client it reaches it with, shared with the
/// store's [`MongoDbRunHistory`] (so both use one client and connect once).
pub(crate) struct Link {
    source: Source,
    pub(crate) database: String,
    pub(crate) collection: String,
    /// `database.collection`, for messages.
    pub(crate) namespace: String,
    server_selection_timeout: Option<Duration>,
    conn: Mutex<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
    /// Set once a server was seen that does not tell its time (warned about once).
    no_server_time: AtomicBool,
}

/// Where the client comes from.
#[derive(Clone)]
enum Source {
    /// A connection string; the store creates (and shuts down) its client.
    Url(String),
    /// A client the application owns.
    Client(Client),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the connection string: it may hold a password.
        match self {
            Source::Url(_) => f.write_str("Url(<redacted>)"),
            Source::Client(_) => f.write_str("Client"),
        }
    }
}

/// A connected client and the collection handles.
#[derive(Clone)]
pub(crate) struct Conn {
    client: Client,
    pub(crate) database: Database,
    pub(crate) jobs: Collection<Document>,
    raw: Collection<RawDocumentBuf>,
}

/// Builds a [`MongoDbJobStore`]; see [`MongoDbJobStore::builder`].
#[derive(Debug, Clone)]
pub struct MongoDbJobStoreBuilder {
    source: Source,
    database: String,
    collection: String,
    max_state_bytes: usize,
    state_format: StateFormat,
    server_selection_timeout: Option<Duration>,
}

impl MongoDbJobStoreBuilder {
    /// The database (default [`MongoDbJobStore::DEFAULT_DATABASE`], `apscheduler`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// The collection (default [`MongoDbJobStore::DEFAULT_COLLECTION`], `jobs`).
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// The largest job state the store writes or reads, in bytes (default
    /// [`MongoDbJobStore::DEFAULT_MAX_STATE_BYTES`], 1 MiB; at most 15 MiB, below
    /// MongoDB's 16 MiB document limit). A larger job is refused with `Serialization`
    /// when added; a larger stored state is treated as corrupt.
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes;
        self
    }

    /// The format new job states are written in (default JSON, stored as a BSON
    /// document; bincode is stored as binary data; see [`apscheduler_core::codec`]).
    /// States in either format are read, so switching is not a migration.
    pub fn state_format(mut self, format: StateFormat) -> Self {
        self.state_format = format;
        self
    }

    /// How long to wait for a suitable server before an operation fails with
    /// `Unavailable` (the driver's default is 30 s; the connection string's
    /// `serverSelectionTimeoutMS` sets it too). Ignored with
    /// [`builder_with_client`](MongoDbJobStore::builder_with_client).
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = Some(timeout);
        self
    }

    /// Checks the configuration and builds the store; nothing connects yet.
    ///
    /// # Errors
    /// `InvalidInput` for a database or collection name MongoDB refuses (see
    /// [`validate_database_name`], [`validate_collection_name`]), a connection string
    /// that does not start with `mongodb://` or `mongodb+srv://`, or a state limit of
    /// zero or above 15 MiB.
    pub fn build(self) -> Result<MongoDbJobStore, Error> {
        validate_database_name(&self.database)?;
        validate_collection_name(&self.database, &self.collection)?;
        if let Source::Url(url) = &self.source {
            if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "invalid value for field 'url': a MongoDB connection string starts with \
                     'mongodb://' or 'mongodb+srv://'",
                ));
            }
        }
        if self.max_state_bytes == 0
            || self.max_state_bytes > MongoDbJobStore::MAX_STATE_BYTES_LIMIT
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid value for field 'max_state_bytes': '{}': must be between 1 and {}",
                    self.max_state_bytes,
                    MongoDbJobStore::MAX_STATE_BYTES_LIMIT
                ),
            ));
        }
        Ok(MongoDbJobStore {
            link: Arc::new(Link {
                namespace: format!("{}.{}", self.database, self.collection),
                source: self.source,
                database: self.database,
                collection: self.collection,
                server_selection_timeout: self.server_selection_timeout,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                no_server_time: AtomicBool::new(false),
            }),
            codec: StateCodec::new(self.state_format, self.max_state_bytes),
            changes: apscheduler_core::ChangeChannel::new(""),
            streaming: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl MongoDbJobStore {
    /// The database used unless configured (APScheduler's default).
    pub const DEFAULT_DATABASE: &'static str = "apscheduler";
    /// The collection used unless configured (APScheduler's default).
    pub const DEFAULT_COLLECTION: &'static str = "jobs";
    /// The default limit on a job state's size: 1 MiB.
    pub const DEFAULT_MAX_STATE_BYTES: usize = 1 << 20;
    /// The highest state size limit allowed: 15 MiB.
    pub const MAX_STATE_BYTES_LIMIT: usize = 15 << 20;

    /// A store for the server at `url` (a MongoDB connection string), in database
    /// `apscheduler`, collection `jobs`.
    ///
    /// # Errors
    /// As [`MongoDbJobStoreBuilder::build`].
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// A builder for a store on the server at `url`, a MongoDB [connection string]
    /// such as `mongodb://user:pass@db1,db2/?replicaSet=rs0` (read in
    /// [`start`](JobStore::start)).
    ///
    /// [connection string]: https://www.mongodb.com/docs/manual/reference/connection-string/
    ///
    /// The database is the connection string's default database when it names one
    /// (`mongodb://host:27017/billing`), else [`DEFAULT_DATABASE`](Self::DEFAULT_DATABASE);
    /// [`database`](MongoDbJobStoreBuilder::database) overrides both.
    pub fn builder(url: impl Into<String>) -> MongoDbJobStoreBuilder {
        let url = url.into();
        let named = url_database(&url);
        let mut builder = Self::builder_from(Source::Url(url));
        if let Some(database) = named {
            builder.database = database;
        }
        builder
    }

    /// A builder for a store using a client the application already has (built with
    /// the re-exported [`mongodb`] crate). The store never shuts this client down.
    pub fn builder_with_client(client: Client) -> MongoDbJobStoreBuilder {
        Self::builder_from(Source::Client(client))
    }

    fn builder_from(source: Source) -> MongoDbJobStoreBuilder {
        MongoDbJobStoreBuilder {
            source,
            database: Self::DEFAULT_DATABASE.to_owned(),
            collection: Self::DEFAULT_COLLECTION.to_owned(),
            max_state_bytes: Self::DEFAULT_MAX_STATE_BYTES,
            state_format: StateFormat::Json,
            server_selection_timeout: None,
        }
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.link.database
    }

    /// The collection name.
    pub fn collection(&self) -> &str {
        &self.link.collection
    }

    /// The limit on a job state's size, in bytes.
    pub fn max_state_bytes(&self) -> usize {
        self.codec.max_bytes
    }

    /// The format new job states are written in.
    pub fn state_format(&self) -> StateFormat {
        self.codec.format
    }

    /// The run history kept beside the jobs: the collection `<collection>_runs` of the
    /// same database, reached with this store's client (connecting it when needed). The
    /// same as [`JobStore::run_history`], by its type.
    pub fn history(&self) -> MongoDbRunHistory {
        MongoDbRunHistory::new(self.link.clone())
    }

    /// Whether the store holds a client (after [`start`](JobStore::start) or a first
    /// operation, until [`shutdown`](JobStore::shutdown)).
    pub fn is_connected(&self) -> bool {
        self.link.conn.lock().is_some()
    }

    // -----------------------------------------------------------------------------
    // Connection
    // -----------------------------------------------------------------------------

    async fn conn(&self) -> Result<Conn, Error> {
        self.link.conn().await
    }

    // -----------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------

    fn fail(&self, context: impl Into<String>, source: DriverError) -> Error {
        fail(&self.link.namespace, context, source)
    }

    /// The server's time, UTC microseconds: `hello`'s `localTime`, from the primary.
    /// Leases are timed by it, so that node clocks do not matter; read before a claim's
    /// writes, it is never later than the server's time at them, so a lease judged
    /// expired by it has expired on the server too. A server that does not tell its
    /// time (some servers of the wire protocol) leaves `fallback`, the caller's clock,
    /// with a warning the first time.
    async fn server_time(&self, conn: &Conn, fallback: &DateTime<Utc>) -> Result<i64, Error> {
        let reply = conn
            .database
            .run_command(doc! {"hello": 1})
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .await
            .map_err(|e| self.fail("read the server's time", e))?;
        match reply.get_datetime("localTime") {
            Ok(t) => Ok(t.timestamp_millis().saturating_mul(1000)),
            Err(_) => {
                if !self.link.no_server_time.swap(true, Ordering::Relaxed) {
                    apscheduler_core::log_warn!(
                        target: "apscheduler",
                        namespace = %self.link.namespace,
                        "the server's hello reply has no localTime: leases are timed by \
                         each scheduler's own clock (keep them synchronised)"
                    );
                }
                Ok(micros(fallback))
            }
        }
    }

    fn encode(&self, job: &Job) -> Result<Encoded, Error> {
        codec::encode(job, &self.codec)
    }

    /// The duplicate-id error of APScheduler (`ConflictingIdError`), with its cause.
    fn conflict(&self, id: &str, source: Option<DriverError>) -> Error {
        let error = Error::conflict(id);
        match source {
            Some(source) => error.with_source(StoreError::Driver {
                namespace: self.link.namespace.clone(),
                context: format!("insert of job '{id}'"),
                source,
            }),
            None => error,
        }
    }

    /// Inserts or replaces one job, keeping a lease it has.
    async fn upsert(&self, conn: &Conn, job: &Encoded) -> Result<(), Error> {
        let filter = doc! {field::ID: &*job.id};
        let update = doc! {"$set": job.set_state(), "$unset": {field::CORRUPT: ""}};
        let mut raced = false;
        loop {
            match conn
                .jobs
                .update_one(filter.clone(), update.clone())
                .upsert(true)
                .await
            {
                Ok(_) => return Ok(()),
                // Two upserts of a new id raced to insert it: the retry updates.
                Err(e) if !raced && is_duplicate_key(&e) => raced = true,
                Err(e) => return Err(self.fail(format!("replace of job '{}'", job.id), e)),
            }
        }
    }

    /// Runs a write command on the jobs collection: see [`write_command`].
    async fn write_command(
        &self,
        conn: &Conn,
        command: &str,
        list: &str,
        statements: Vec<(Document, usize)>,
        context: &str,
    ) -> Result<Vec<(usize, i32, String)>, Error> {
        write_command(
            &conn.database,
            &conn.jobs,
            &self.link.namespace,
            command,
            list,
            statements,
            context,
        )
        .await
    }

    fn write_error(&self, context: &str, code: i32, message: String) -> Error {
        write_error(&self.link.namespace, context, code, message)
    }

    /// One round of a claim: finds up to `wanted` claimable jobs in order, leases them
    /// with one `updateMany` per chunk of ids — atomic per document, and filtered on
    /// "still claimable", so a job another claimer took in between is not taken —
    /// then reads back the jobs that carry this call's token.
    async fn claim_round(
        &self,
        conn: &Conn,
        claimable: &Document,
        claim: &Claim<'_>,
        wanted: usize,
        acquired: &mut Acquired,
    ) -> Result<Round, Error> {
        let context = "claim of due jobs";
        let mut cursor = conn
            .raw
            .find(claimable.clone())
            .sort(doc! {field::NEXT_RUN_TIME: 1, field::ID: 1})
            .projection(doc! {field::ID: 1})
            .limit(i64::try_from(wanted).unwrap_or(i64::MAX))
            .await
            .map_err(|e| self.fail(context, e))?;
        let mut candidates: Vec<Bson> = Vec::new();
        while cursor.advance().await.map_err(|e| self.fail(context, e))? {
            if let Some(id) = cursor
                .current()
                .get(field::ID)
                .ok()
                .flatten()
                .and_then(|id| Bson::try_from(id).ok())
            {
                candidates.push(id);
            }
        }
        let lease = doc! {"$set": {
            field::LEASE_HOLDER: claim.holder,
            field::LEASE_EXPIRES: claim.expires,
            field::LEASE_TOKEN: &claim.token,
        }};
        let mut claimed = 0;
        for chunk in candidates.chunks(IDS_PER_QUERY) {
            let mut filter = claimable.clone();
            filter.insert(field::ID, doc! {"$in": chunk});
            let result = conn
                .jobs
                .update_many(filter, lease.clone())
                .await
                .map_err(|e| self.fail(context, e))?;
            if result.modified_count == 0 {
                continue;
            }
            let mut cursor = conn
                .raw
                .find(doc! {field::ID: {"$in": chunk}, field::LEASE_TOKEN: &claim.token})
                .projection(codec::projection())
                .await
                .map_err(|e| self.fail(context, e))?;
            while cursor.advance().await.map_err(|e| self.fail(context, e))? {
                claimed += 1;
                match codec::decode(cursor.current(), &self.codec) {
                    Ok(job) => acquired.jobs.push(job),
                    Err(corrupt) => {
                        self.mark_corrupt(conn, &corrupt, claim).await;
                        apscheduler_core::log_error!(
                            target: "apscheduler",
                            namespace = %self.link.namespace,
                            job_id = %corrupt.id,
                            error = %corrupt.error,
                            "a due job cannot be read; it is marked corrupt and left in place"
                        );
                        let corrupt = *corrupt;
                        acquired.corrupt.push(CorruptJob {
                            id: corrupt.id,
                            error: corrupt.error,
                        });
                    }
                }
            }
        }
        Ok(Round {
            candidates: candidates.len(),
            claimed,
        })
    }

    /// Marks a document the caller just claimed as corrupt and drops the lease.
    async fn mark_corrupt(&self, conn: &Conn, corrupt: &codec::Corrupt, claim: &Claim<'_>) {
        let filter = doc! {field::ID: corrupt.key.clone(), field::LEASE_TOKEN: &claim.token};
        let update = doc! {"$set": {field::CORRUPT: &corrupt.error}, "$unset": unset_lease(false)};
        if let Err(e) = conn.jobs.update_one(filter, update).await {
            apscheduler_core::log_warn!(
                target: "apscheduler",
                namespace = %self.link.namespace,
                job_id = %corrupt.id,
                error = %e,
                "cannot mark an unreadable job as corrupt; it will be reported again when its lease expires"
            );
        }
    }
}

impl Link {
    /// The connected client and collection handles, connecting first when needed
    /// (which also creates the jobs collection's indexes).
    pub(crate) async fn conn(&self) -> Result<Conn, Error> {
        if let Some(conn) = self.conn.lock().clone() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.conn.lock().clone() {
            return Ok(conn);
        }
        let conn = self.connect().await?;
        *self.conn.lock() = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Conn, Error> {
        let client = match &self.source {
            Source::Url(url) => {
                let mut options = ClientOptions::parse(url)
                    .await
                    .map_err(|e| fail(&self.namespace, "cannot use the connection string", e))?;
                if options.app_name.is_none() {
                    options.app_name = Some("apscheduler-rs".to_owned());
                }
                if let Some(timeout) = self.server_selection_timeout {
                    options.server_selection_timeout = Some(timeout);
                }
                Client::with_options(options)
                    .map_err(|e| fail(&self.namespace, "cannot create the client", e))?
            }
            Source::Client(client) => client.clone(),
        };
        let database = client.database(&self.database);
        database
            .run_command(doc! {"ping": 1})
            .await
            .map_err(|e| fail(&self.namespace, "cannot reach the server", e))?;
        // Claims read back what they just wrote: always on the primary.
        let jobs = database.collection_with_options::<Document>(
            &self.collection,
            CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .build(),
        );
        let indexes = [
            IndexModel::builder()
                .keys(doc! {field::NEXT_RUN_TIME: 1, field::ID: 1})
                .options(
                    IndexOptions::builder()
                        .name(NEXT_RUN_TIME_INDEX.to_owned())
                        .build(),
                )
                .build(),
            IndexModel::builder()
                .keys(doc! {field::LEASE_EXPIRES: 1})
                .options(
                    IndexOptions::builder()
                        .name(LEASE_INDEX.to_owned())
                        .sparse(true)
                        .build(),
                )
                .build(),
        ];
        if let Err(e) = jobs.create_indexes(indexes).await {
            match &*e.kind {
                DriverKind::Command(c) if INDEX_CONFLICT_CODES.contains(&c.code) => {
                    apscheduler_core::log_warn!(
                        target: "apscheduler",
                        namespace = %self.namespace,
                        error = %e,
                        "an index of the same name exists with other options; keeping it"
                    );
                }
                _ => return Err(fail(&self.namespace, "cannot create the indexes", e)),
            }
        }
        Ok(Conn {
            raw: jobs.clone_with_type(),
            client,
            database,
            jobs,
        })
    }
}

/// A driver error as a core error, naming `namespace` and what was being done.
pub(crate) fn fail(namespace: &str, context: impl Into<String>, source: DriverError) -> Error {
    StoreError::Driver {
        namespace: namespace.to_owned(),
        context: context.into(),
        source,
    }
    .into_error()
}

/// Runs a write command (`update` or `delete`) on `target` over `statements` (each with its
/// size in bytes), in as many commands as the limits need, unordered. Returns the
/// statements' write errors: (index into `statements`, code, message).
pub(crate) async fn write_command(
    database: &Database,
    target: &Collection<Document>,
    namespace: &str,
    command: &str,
    list: &str,
    statements: Vec<(Document, usize)>,
    context: &str,
) -> Result<Vec<(usize, i32, String)>, Error> {
    let mut failures = Vec::new();
    let mut start = 0;
    let mut statements = statements.into_iter().peekable();
    while statements.peek().is_some() {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some((_, size)) = statements.peek() {
            if !batch.is_empty()
                && (batch.len() >= STATEMENTS_PER_COMMAND || bytes + size > BYTES_PER_COMMAND)
            {
                break;
            }
            let Some((statement, size)) = statements.next() else {
                break;
            };
            bytes += size;
            batch.push(Bson::Document(statement));
        }
        let count = batch.len();
        let mut body = doc! {command: target.name(), list: batch, "ordered": false};
        if let Some(concern) = target.write_concern() {
            if let Ok(concern) = bson::to_bson(concern) {
                body.insert("writeConcern", concern);
            }
        }
        let reply = database
            .run_command(body)
            .await
            .map_err(|e| fail(namespace, context, e))?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            for error in errors.iter().filter_map(Bson::as_document) {
                let index = error
                    .get("index")
                    .and_then(bson_int)
                    .and_then(|i| usize::try_from(i).ok())
                    .unwrap_or(0);
                let code = error
                    .get("code")
                    .and_then(bson_int)
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(0);
                let message = error.get_str("errmsg").unwrap_or_default().to_owned();
                failures.push((start + index, code, message));
            }
        }
        if let Ok(concern) = reply.get_document("writeConcernError") {
            return Err(write_error(
                namespace,
                context,
                concern
                    .get("code")
                    .and_then(bson_int)
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(0),
                concern.get_str("errmsg").unwrap_or_default().to_owned(),
            ));
        }
        start += count;
    }
    Ok(failures)
}

pub(crate) fn write_error(namespace: &str, context: &str, code: i32, message: String) -> Error {
    StoreError::Write {
        namespace: namespace.to_owned(),
        context: context.to_owned(),
        code,
        message,
    }
    .into_error()
}

/// An integer of any BSON integer type (or an integral double).
fn bson_int(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some((*v).into()),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 && v.is_finite() => Some(*v as i64),
        _ => None,
    }
}

use apscheduler_core::time::micros::{lease_length, to_instant as from_micros};

/// The default database a connection string names (`mongodb://host/db?...`), if any.
fn url_database(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split('?').next().unwrap_or_default();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Release writes in flight at once.
const RELEASE_BURST: usize = 64;

/// `$unset` of the lease fields (and of the corrupt mark).
fn unset_lease(corrupt_too: bool) -> Document {
    let mut unset =
        doc! {field::LEASE_HOLDER: "", field::LEASE_EXPIRES: "", field::LEASE_TOKEN: ""};
    if corrupt_too {
        unset.insert(field::CORRUPT, "");
    }
    unset
}

impl MongoDbJobStore {
    /// Which of `ids` hold `token` as their release token: the ones a release call with
    /// that token stored.
    async fn released_by(
        &self,
        conn: &Conn,
        ids: &[&str],
        token: &str,
    ) -> Result<HashSet<String>, mongodb::error::Error> {
        let mut applied = HashSet::new();
        for chunk in ids.chunks(RELEASE_BURST) {
            let mut cursor = conn
                .jobs
                .find(doc! {field::ID: {"$in": chunk}, field::RELEASE_TOKEN: token})
                .projection(doc! {field::ID: 1})
                .await?;
            while cursor.advance().await? {
                if let Ok(id) = cursor.current().get_str(field::ID) {
                    applied.insert(id.to_owned());
                }
            }
        }
        Ok(applied)
    }
}

/// One claim call: who claims, its unique token, and the lease's expiry.
struct Claim<'a> {
    holder: &'a str,
    token: String,
    expires: i64,
}

/// What one round of a claim found and took.
struct Round {
    candidates: usize,
    claimed: usize,
}

impl fmt::Debug for MongoDbJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDbJobStore")
            .field("source", &self.link.source)
            .field("namespace", &self.link.namespace)
            .field("codec", &self.codec)
            .field("connected", &self.is_connected())
            .field("change_stream_open", &self.streaming.load(Ordering::SeqCst))
            .finish()
    }
}

#[async_trait]
impl JobStore for MongoDbJobStore {
    /// Connects (creating the client from the connection string), checks that the
    /// server answers and creates the indexes (idempotent). Calling it again is a
    /// no-op while connected. With a change listener set (and a tokio runtime), also
    /// opens a change stream on the jobs collection, on a task of its own that opens
    /// it again whenever it ends (see [`set_change_listener`](JobStore::set_change_listener)).
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        self.conn().await?;
        if let (Some(listener), Ok(runtime)) = (
            self.changes.listener(),
            tokio::runtime::Handle::try_current(),
        ) {
            self.changes.stop().await;
            let task = runtime.spawn(changes::watch_loop(
                self.link.clone(),
                listener,
                self.streaming.clone(),
            ));
            let streaming = self.streaming.clone();
            self.changes.listening(Box::new(move || {
                task.abort();
                streaming.store(false, Ordering::SeqCst);
                Box::pin(async {})
            }));
        }
        Ok(())
    }

    /// Heard through a change stream on the jobs collection, from
    /// [`start`](JobStore::start) on, where the server offers change streams (a replica
    /// set): every job added, replaced, changed (run time or state), released or
    /// removed, by any process, this store included, calls it; claims and lease
    /// extensions do not. It is called too each time the stream opens or ends. While
    /// no stream is open, [`capabilities`](JobStore::capabilities) says so and the
    /// scheduler looks every `change_poll` instead.
    fn set_change_listener(&self, listener: apscheduler_core::ChangeListener) {
        self.changes.set_listener(listener);
    }

    /// Stops the change stream and forgets the client, shutting it down when the store
    /// created it.
    async fn shutdown(&self) -> Result<(), Error> {
        self.changes.stop().await;
        let _connecting = self.link.connecting.lock().await;
        let conn = self.link.conn.lock().take();
        if let (Some(conn), Source::Url(_)) = (conn, &self.link.source) {
            conn.client.shutdown().immediate(true).await;
        }
        Ok(())
    }

    /// A [`MongoDbRunHistory`] in the collection `<collection>_runs`, sharing this
    /// store's client (see [`MongoDbJobStore::history`]).
    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(Arc::new(self.history()))
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn capabilities(&self) -> apscheduler_core::Capabilities {
        let mut caps = apscheduler_core::Capabilities::persistent_shared(false);
        caps.store_clock = true;
        caps.notifications = self.streaming.load(Ordering::SeqCst);
        caps
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        let encoded = self.encode(&job)?;
        let conn = self.conn().await?;
        if replace_existing {
            return self.upsert(&conn, &encoded).await;
        }
        match conn.jobs.insert_one(encoded.document()).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(self.conflict(&job.id, Some(e))),
            Err(e) => Err(self.fail(format!("insert of job '{}'", job.id), e)),
        }
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        let encoded = jobs
            .iter()
            .map(|job| self.encode(job))
            .collect::<Result<Vec<_>, _>>()?;

        if replace_existing {
            // A repeated id keeps its last job, as if added one by one.
            let mut seen = HashSet::with_capacity(encoded.len());
            let mut unique: Vec<&Encoded> = encoded
                .iter()
                .rev()
                .filter(|e| seen.insert(&*e.id))
                .collect();
            unique.reverse();
            let statements = unique
                .iter()
                .map(|e| {
                    let statement = doc! {
                        "q": {field::ID: &*e.id},
                        "u": {"$set": e.set_state(), "$unset": {field::CORRUPT: ""}},
                        "upsert": true,
                    };
                    (statement, e.size)
                })
                .collect();
            let conn = self.conn().await?;
            let failures = self
                .write_command(&conn, "update", "updates", statements, "add_jobs (replace)")
                .await?;
            for (index, code, message) in failures {
                match unique.get(index) {
                    // Raced with another insert of the same new id: update it.
                    Some(job) if code == DUPLICATE_KEY => self.upsert(&conn, job).await?,
                    _ => return Err(self.write_error("add_jobs (replace)", code, message)),
                }
            }
            return Ok(());
        }

        let mut seen = HashSet::with_capacity(encoded.len());
        if let Some(repeated) = encoded.iter().find(|e| !seen.insert(&*e.id)) {
            return Err(self.conflict(&repeated.id, None));
        }
        let conn = self.conn().await?;
        let result = conn
            .jobs
            .insert_many(encoded.iter().map(Encoded::document))
            .ordered(true)
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        let stopped_at = match &*e.kind {
            DriverKind::InsertMany(failure) => {
                failure.write_errors.iter().flatten().map(|w| w.index).min()
            }
            _ => None,
        };
        let Some(stopped_at) = stopped_at.filter(|i| *i < encoded.len()) else {
            return Err(self.fail("add_jobs", e));
        };
        // Ordered: exactly the jobs before the failed one were inserted by this call.
        let inserted: Vec<&str> = encoded[..stopped_at].iter().map(|e| &*e.id).collect();
        for chunk in inserted.chunks(IDS_PER_QUERY) {
            let undo = conn
                .jobs
                .delete_many(doc! {field::ID: {"$in": chunk}})
                .await;
            if let Err(undo) = undo {
                apscheduler_core::log_warn!(
                    target: "apscheduler",
                    namespace = %self.link.namespace,
                    error = %undo,
                    jobs = inserted.len(),
                    "add_jobs failed and the jobs it inserted could not be removed again"
                );
            }
        }
        if is_duplicate_key(&e) {
            Err(self.conflict(&encoded[stopped_at].id, Some(e)))
        } else {
            Err(self.fail("add_jobs", e))
        }
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let encoded = self.encode(&job)?;
        let conn = self.conn().await?;
        let result = conn
            .jobs
            .update_one(
                doc! {field::ID: &*job.id},
                doc! {"$set": encoded.set_state(), "$unset": {field::CORRUPT: ""}},
            )
            .await
            .map_err(|e| self.fail(format!("update of job '{}'", job.id), e))?;
        if result.matched_count == 0 {
            return Err(Error::job_not_found(&job.id));
        }
        Ok(())
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let conn = self.conn().await?;
        let result = conn
            .jobs
            .delete_one(doc! {field::ID: id})
            .await
            .map_err(|e| self.fail(format!("removal of job '{id}'"), e))?;
        if result.deleted_count == 0 {
            return Err(Error::job_not_found(id));
        }
        Ok(())
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let conn = self.conn().await?;
        conn.jobs
            .delete_many(doc! {})
            .await
            .map_err(|e| self.fail("removal of all jobs", e))?;
        Ok(())
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        let conn = self.conn().await?;
        let found = conn
            .raw
            .find_one(doc! {field::ID: id})
            .projection(codec::projection())
            .await
            .map_err(|e| self.fail(format!("lookup of job '{id}'"), e))?;
        match found {
            None => Ok(None),
            Some(document) => codec::decode(&document, &self.codec)
                .map(Some)
                .map_err(|corrupt| (*corrupt).into_error()),
        }
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let conn = self.conn().await?;
        let mut cursor = conn
            .raw
            .find(doc! {})
            .projection(codec::projection())
            .await
            .map_err(|e| self.fail("listing of jobs", e))?;
        let mut jobs = Vec::new();
        while cursor
            .advance()
            .await
            .map_err(|e| self.fail("listing of jobs", e))?
        {
            match codec::decode(cursor.current(), &self.codec) {
                Ok(job) => jobs.push(job),
                Err(corrupt) => apscheduler_core::log_warn!(
                    target: "apscheduler",
                    namespace = %self.link.namespace,
                    job_id = %corrupt.id,
                    error = %corrupt.error,
                    "skipping a job that cannot be read"
                ),
            }
        }
        jobs.sort_by(|a, b| {
            let key = |j: &Job| {
                (
                    j.next_run_time.is_none(),
                    j.next_run_time.as_ref().map(run_time_micros),
                )
            };
            key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
        });
        Ok(jobs)
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let conn = self.conn().await?;
        let context = "next run time";
        // Any number (type bracketing): the scheduled jobs.
        let scheduled = doc! {"$gte": i64::MIN};
        let free = conn
            .raw
            .find_one(doc! {
                field::NEXT_RUN_TIME: scheduled.clone(),
                field::CORRUPT: Bson::Null,
                field::LEASE_EXPIRES: Bson::Null,
            })
            .sort(doc! {field::NEXT_RUN_TIME: 1})
            .projection(doc! {field::NEXT_RUN_TIME: 1})
            .await
            .map_err(|e| self.fail(context, e))?
            .and_then(|d| micros_field(&d, field::NEXT_RUN_TIME));
        // A leased job becomes claimable at the later of its run time and its expiry.
        let mut cursor = conn
            .raw
            .aggregate([
                doc! {"$match": {
                    field::LEASE_EXPIRES: {"$ne": Bson::Null},
                    field::NEXT_RUN_TIME: scheduled,
                    field::CORRUPT: Bson::Null,
                }},
                doc! {"$group": {
                    "_id": Bson::Null,
                    "at": {"$min": {"$max": [
                        format!("${}", field::NEXT_RUN_TIME),
                        format!("${}", field::LEASE_EXPIRES),
                    ]}},
                }},
            ])
            .await
            .map_err(|e| self.fail(context, e))?;
        let leased = if cursor.advance().await.map_err(|e| self.fail(context, e))? {
            micros_field(cursor.current(), "at")
        } else {
            None
        };
        Ok(match (free, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(from_micros))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let mut acquired = Acquired::default();
        if limit == 0 {
            return Ok(acquired);
        }
        let conn = self.conn().await?;
        let now_us = micros(&now);
        let clock = self.server_time(&conn, &now).await?;
        let claim = Claim {
            holder: scheduler_id,
            token: uuid::Uuid::new_v4().simple().to_string(),
            expires: clock.saturating_add(lease_length(lease)),
        };
        // Due by the caller's `now`, readable, and not under another scheduler's live
        // lease (none, expired by the server's clock, or the caller's own: see the
        // JobStore contract on stranded leases), and
        // not taken by an earlier round of this very claim (its jobs are the caller's own
        // now: a later round would return them twice).
        let claimable = doc! {
            field::NEXT_RUN_TIME: {"$lte": now_us},
            field::CORRUPT: Bson::Null,
            field::LEASE_TOKEN: {"$ne": &claim.token},
            "$or": [
                {field::LEASE_EXPIRES: {"$not": {"$gt": clock}}},
                {field::LEASE_HOLDER: scheduler_id},
            ],
        };
        let mut rounds = 0;
        while acquired.jobs.len() < limit && rounds < CLAIM_ROUNDS {
            rounds += 1;
            let wanted = limit - acquired.jobs.len();
            let round = self
                .claim_round(&conn, &claimable, &claim, wanted, &mut acquired)
                .await;
            match round {
                // Fewer candidates than wanted: nothing else is due.
                Ok(Round {
                    candidates,
                    claimed,
                }) if candidates < wanted && claimed == candidates => break,
                // Everything wanted was there and taken.
                Ok(Round {
                    candidates,
                    claimed,
                }) if claimed == candidates => {}
                // Other schedulers took some candidates first: look again.
                Ok(_) => {}
                Err(error) if acquired.jobs.is_empty() && acquired.corrupt.is_empty() => {
                    return Err(error)
                }
                Err(error) => {
                    // Keep what was claimed: those jobs are leased to the caller now.
                    apscheduler_core::log_warn!(
                        target: "apscheduler",
                        namespace = %self.link.namespace,
                        error = %error,
                        claimed = acquired.jobs.len(),
                        "a claim failed part way; returning the jobs claimed so far"
                    );
                    break;
                }
            }
        }
        acquired.jobs.sort_by(|a, b| {
            let key = |j: &Job| j.next_run_time.as_ref().map(run_time_micros);
            key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
        });
        Ok(acquired)
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<&str> = ids
            .iter()
            .map(|id| &**id)
            .filter(|id| seen.insert(*id))
            .collect();
        if unique.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        let context = "lease extension";
        // The lease runs on the server's clock; `now` counts only where it cannot be read.
        let clock = self.server_time(&conn, &now).await?;
        let expires = clock.saturating_add(lease_length(lease));
        let mut lost: Vec<&str> = Vec::new();
        for chunk in unique.chunks(IDS_PER_QUERY) {
            let result = conn
                .jobs
                .update_many(
                    doc! {
                        field::ID: {"$in": chunk},
                        field::LEASE_HOLDER: scheduler_id,
                        field::LEASE_EXPIRES: {"$gt": clock},
                    },
                    doc! {"$set": {field::LEASE_EXPIRES: expires}},
                )
                .await
                .map_err(|e| self.fail(context, e))?;
            if usize::try_from(result.matched_count).is_ok_and(|n| n == chunk.len()) {
                continue;
            }
            // Which ones are held now (extended just now, by this call or a twin)?
            let mut cursor = conn
                .raw
                .find(doc! {
                    field::ID: {"$in": chunk},
                    field::LEASE_HOLDER: scheduler_id,
                    field::LEASE_EXPIRES: expires,
                })
                .projection(doc! {field::ID: 1})
                .await
                .map_err(|e| self.fail(context, e))?;
            let mut held = HashSet::new();
            while cursor.advance().await.map_err(|e| self.fail(context, e))? {
                if let Ok(id) = cursor.current().get_str(field::ID) {
                    held.insert(id.to_owned());
                }
            }
            lost.extend(chunk.iter().filter(|id| !held.contains(**id)));
        }
        if lost.is_empty() {
            return Ok(());
        }
        Err(Error::lease_lost(scheduler_id, &lost))
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<Released, Error> {
        if releases.is_empty() {
            return Ok(Released::all());
        }
        let mut updates: Vec<Encoded> = Vec::new();
        let mut removes: Vec<Arc<str>> = Vec::new();
        let mut refused = Vec::new();
        for release in releases {
            match release {
                JobRelease::Update(job) => match self.encode(&job) {
                    Ok(encoded) => updates.push(encoded),
                    Err(e) => refused.push((job.id.clone(), e)),
                },
                JobRelease::Remove(id) => removes.push(id),
            }
        }
        // A repeated id keeps its last state (the removals run after the updates).
        let mut seen = HashSet::with_capacity(updates.len());
        let mut unique: Vec<&Encoded> = updates
            .iter()
            .rev()
            .filter(|e| seen.insert(&*e.id))
            .collect();
        unique.reverse();

        let conn = self.conn().await?;
        // One conditional write per job (atomic per document, filtered on the caller's
        // lease), so that each answer says whether it was applied; a burst of them in
        // flight at once over the pool. Each update also stores this call's token: a
        // write the driver sent again after a lost reply finds the lease already gone
        // (its first attempt cleared it), and the token then tells whether that first
        // attempt applied (a server that deduplicates retried writes, as MongoDB does,
        // answers for the first attempt anyway).
        let token = uuid::Uuid::new_v4().to_string();
        let context = "release of jobs";
        let writes = unique
            .iter()
            .map(|e| (&*e.id, Some(*e)))
            .chain(removes.iter().map(|id| (&**id, None)));
        let mut lost = Vec::new();
        // Updates that matched nothing: lost, unless `token` shows they applied.
        let mut unmatched: Vec<&str> = Vec::new();
        let writes: Vec<_> = writes.collect();
        for burst in writes.chunks(RELEASE_BURST) {
            let answers = futures_util::future::join_all(burst.iter().map(|(id, update)| {
                let (conn, token) = (&conn, &token);
                async move {
                    let filter = doc! {field::ID: *id, field::LEASE_HOLDER: scheduler_id};
                    let applied = match update {
                        Some(e) => {
                            let mut set = e.set_state();
                            set.insert(field::RELEASE_TOKEN, token);
                            conn.jobs
                                .update_one(filter, doc! {"$set": set, "$unset": unset_lease(true)})
                                .await
                                .map(|r| r.matched_count > 0)
                        }
                        None => conn
                            .jobs
                            .delete_one(filter)
                            .await
                            .map(|r| r.deleted_count > 0),
                    };
                    (*id, update.is_some(), applied)
                }
            }))
            .await;
            for (id, update, applied) in answers {
                match applied {
                    Ok(true) => {}
                    Ok(false) if update => unmatched.push(id),
                    Ok(false) => lost.push(Arc::from(id)),
                    Err(e) => return Err(self.fail(context, e)),
                }
            }
        }
        if !unmatched.is_empty() {
            let applied = self
                .released_by(&conn, &unmatched, &token)
                .await
                .map_err(|e| self.fail(context, e))?;
            if !applied.is_empty() {
                tracing::info!(
                    target: "apscheduler",
                    namespace = %self.link.namespace,
                    "{} release write(s) sent again by the driver had applied at the first attempt",
                    applied.len()
                );
            }
            lost.extend(
                unmatched
                    .iter()
                    .filter(|id| !applied.contains(**id))
                    .map(|id| Arc::from(*id)),
            );
        }
        Ok(Released::new(lost, refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_string_names_the_default_database() {
        assert_eq!(
            url_database("mongodb://h:27017/billing?w=1").as_deref(),
            Some("billing")
        );
        assert_eq!(
            url_database("mongodb://u:p@h1,h2/ops").as_deref(),
            Some("ops")
        );
        assert_eq!(
            url_database("mongodb://h:27017/?directConnection=true"),
            None
        );
        assert_eq!(url_database("mongodb://h:27017"), None);
        let store = MongoDbJobStore::builder("mongodb://h/billing")
            .build()
            .unwrap();
        assert_eq!(store.link.namespace, "billing.jobs");
        let store = MongoDbJobStore::builder("mongodb://h/billing")
            .database("other")
            .build()
            .unwrap();
        assert_eq!(store.link.namespace, "other.jobs");
    }
}
