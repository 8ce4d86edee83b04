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
//!     policy: Default::default(),
//!     paused_reason: None,
//!     declaration: None,
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
//! 2. one unordered `update` command per 100 ids, a single-document statement per id:
//!    `{_id: id, <claimable>}` setting
//!    `{lease_holder: scheduler_id, lease_expires: server_now + lease, lease_token: <random>}`.
//!    Each statement checks the filter as it writes its document, so a job that another
//!    scheduler claimed in the meantime no longer matches and is left alone: two
//!    claimers never both take one. (Not one `updateMany`: on SecantusDB a
//!    multi-document update keeps the collection's lock while it waits for a run
//!    step's uncommitted write to a job, and the step's next write waits for that
//!    lock, so the server hangs; a single-document statement waits without the lock.)
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
//! time, then sends one `update` command per 100 ids (a single-document statement per
//! id, as the claim does), filtered on the caller's live leases.
//!
//! ## Change streams
//! Where the server offers change streams (a replica set, a sharded cluster,
//! SecantusDB; a standalone `mongod` has none), [`start`](JobStore::start) opens one on
//! the jobs collection when the scheduler set a change listener, so a scheduler asleep
//! is woken as soon as another process adds, replaces or removes a job, or changes its
//! run time or state. The stream is filtered on the server: claims and lease
//! extensions (which only touch the lease fields) and releases (which carry a
//! `release_token`) wake nobody through it. The store's own writes are heard too (one
//! spare pass each).
//!
//! A release wakes only the schedulers waiting for it. A scheduler whose next wake-up
//! ([`get_next_run_time`](JobStore::get_next_run_time)) is the end of another's lease
//! records a wait, the document `{_id: <store token>, until: <lease end, µs>, wakes}`
//! in `<collection>_waiters` (removed at shutdown), and watches its own document there
//! with a second change stream. A release, after its writes, sends one `updateMany`
//! `{until: {$gt: now}}` → `{$inc: {wakes: 1}}`, which wakes exactly the schedulers
//! whose wait is ahead; the same stream tells every store the latest `until` recorded,
//! so a release made while no wait is ahead sends nothing. The store declares
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
//! ## Runs
//! The store implements the run contract ([`RunStore`](apscheduler_core::RunStore)):
//! a job's runs are one document of `<collection>_run_groups` (`_id` the job id, `v` its
//! version, `fence`, `finishing`, `expiry` the earliest end of a live run's lease,
//! `runs`). Each operation is one transaction that reads the groups and jobs it
//! touches and the server's time, lets core's [`RunTable`](apscheduler_core::RunTable)
//! decide, and writes each group only at the version it read and each released job
//! only under the caller's claim; a transaction that finds something moved is read and
//! decided again. Transactions need a replica set (or a server of the wire protocol
//! that has them).
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
//! | `attempt` | `Int64` | which attempt at its fire time (1: the first run); absent reads as 1 |
//! | `backfill` | boolean | whether a backfill started it; absent reads as `false` |
//! | `due_us` | `Int64` or `null` | when a run that waits to start (a retry) is due, UTC microseconds |
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
//! - [`record_starts`](apscheduler_core::RunHistory::record_starts) is an unordered
//!   `insertMany` of the records (absent ones are written whole), an `updateMany`
//!   filtered on `outcome: "running"` and a null start that sets it, and a `find` of
//!   the runs now started.
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

// Where the store's parts live:
// | module      | holds                                                              |
// |-------------|--------------------------------------------------------------------|
// | `builder`   | `MongoDbJobStoreBuilder`, the constructors and settings            |
// | `link`      | the connection shared with the run history; write commands        |
// | `ops`       | claim rounds, inserts, corrupt marks, the server's time            |
// | `job_store` | `JobStore` for `MongoDbJobStore`                                    |
// | `codec`     | jobs as documents                                                  |
// | `changes`   | the change streams                                                 |
// | `waits`     | waits for releases: who a release wakes                            |
// | `history`   | `MongoDbRunHistory`                                                |
// | `config`    | `type = "mongodb"`: the configuration and registration           |
mod config;
pub use config::{register, MongoDbStoreConfig};
mod builder;
mod changes;
mod codec;
mod error;
mod history;
mod job_store;
mod link;
mod names;
mod ops;
mod runs;
mod waits;

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
use apscheduler_core::time::micros::{lease_length, to_instant as from_micros};
pub use builder::MongoDbJobStoreBuilder;
use link::{fail, url_database, write_command, write_error, Conn, Link, Source, Written};
use ops::{unset_lease, Claim, Round, RELEASE_BURST};

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
    /// This store's waits for other schedulers' releases.
    waits: Arc<waits::Waits>,
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
