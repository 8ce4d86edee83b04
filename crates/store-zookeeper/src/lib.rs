//! # apscheduler-store-zookeeper
//!
//! [`ZooKeeperJobStore`]: APScheduler's `ZooKeeperJobStore` for apscheduler-rs. Jobs are
//! znodes under a root path (APScheduler's default `/apscheduler`), kept as data (task
//! *names*, arguments, the trigger's tagged JSON; never code), so several schedulers, in
//! one process or on many machines, can share one ensemble: due jobs are claimed with a
//! lease by a versioned write per job, and every (job, run time) is handed to exactly
//! one scheduler. A watch wakes every scheduler when another process adds, changes or
//! removes a job.
//!
//! ## Usage
//! ```no_run
//! use std::sync::Arc;
//!
//! use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
//! use apscheduler_store_zookeeper::ZooKeeperJobStore;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), apscheduler_core::Error> {
//! // Nothing connects yet: the store connects when the scheduler starts it.
//! let store = ZooKeeperJobStore::builder("127.0.0.1:2181")
//!     .path("/myapp/scheduler")
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
//! ## Znode layout
//! Under the root path `P`:
//!
//! | znode | holds |
//! |---|---|
//! | `P/jobs/<id>` | one JSON header line (`next` run time and lease `owner`/`expires` in UTC microseconds, `corrupt` reason), a newline, then the job's [`JobState`](apscheduler_core::JobState) as core's codec writes it (JSON by default, readable with `zkCli.sh get`) |
//! | `P/runs/<day>/<minute>-<shard>/<key>-<id>` | an empty index entry: the job can be claimed from instant `key` on (its next run time, or the end of a lease on it if later); paused and corrupt jobs have none. `<day>` and `<minute>-<shard>` are container znodes, which the server deletes once empty |
//! | `P/changes` | written by every add, modify and remove; its watchers are woken |
//!
//! Ids are percent-encoded into znode names (`/` and characters ZooKeeper refuses), so
//! any job id is stored as it is. Every change to a job and its index entry is one
//! `multi` request, checked against the version of the job znode read before it: the
//! tree is consistent at every instant, and a crashed scheduler leaves nothing locked.
//!
//! ## Round trips
//! With N stored jobs, one pass of the main loop costs, whatever N:
//! - [`get_next_run_time`](JobStore::get_next_run_time): 3 listings (the day folders,
//!   the first day's minute folders, that minute's shard folders, the last in one
//!   pipelined burst); each reply is bounded (days, at most 23,040 minute folders a day,
//!   the entries of one minute).
//! - [`acquire_due_jobs`](JobStore::acquire_due_jobs) with `k` due jobs: the same
//!   listings (more folders when the due jobs span several minutes), then one pipelined
//!   burst of `k` reads and one of `k` versioned `multi` writes.
//! - [`release_jobs`](JobStore::release_jobs): one pipelined burst of reads and one of
//!   writes for the whole batch.
//!
//! Listing `P/jobs` (and reading every job) happens only in
//! [`get_all_jobs`](JobStore::get_all_jobs) and
//! [`remove_all_jobs`](JobStore::remove_all_jobs).
//!
//! ## Behavior
//! [`ZooKeeperJobStore`] follows the [`JobStore`] contract and passes the
//! `apscheduler-testkit` conformance suite. Where the contract leaves room:
//! - It connects in [`start`](JobStore::start) (or on first use), never in the
//!   constructor. A lost connection is re-established by the client within the
//!   session; calls made meanwhile fail with
//!   [`ErrorKind::Unavailable`](apscheduler_core::ErrorKind::Unavailable), which the
//!   engine retries. An expired session is replaced by a new one at the next call.
//!   Jobs are persistent znodes: nothing depends on a session staying alive.
//! - Claims: due index entries are read in key order, each job is leased by a `multi`
//!   that writes its header (checked against the version just read) and moves its
//!   index entry to the lease's end. Two claimers racing for one job: one write wins,
//!   the other sees `BadVersion` and skips the job. Leases a scheduler still holds at
//!   its next claim (the reply to a claim was lost) are given back to it.
//! - Corrupt jobs (a header or a state that cannot be read, an unknown trigger or
//!   time zone, a state over [`max_state_bytes`](ZooKeeperJobStoreBuilder::max_state_bytes))
//!   are reported once in [`Acquired::corrupt`] when they first come due, then marked
//!   in their header and taken out of the index; they are never deleted.
//!   [`lookup_job`](JobStore::lookup_job) reports them as `Serialization` errors,
//!   [`get_all_jobs`](JobStore::get_all_jobs) skips them with a warning, and storing a
//!   new state under their id (replace, update) makes them ordinary jobs again.
//! - [`add_jobs`](JobStore::add_jobs) is one `multi` while the batch fits in one
//!   request (about 512 KiB of job data); a larger batch is written in such chunks, and
//!   a conflict in a later chunk removes the chunks already written.
//! - Watches: [`set_change_listener`](JobStore::set_change_listener) hears about every
//!   add, modify and remove, from any process, through a persistent watch on
//!   `P/changes`, and also when the connection comes back (changes made while it was
//!   down raise no event).
//!
//! ## Feature flags
//! None. The client is [`zookeeper_client`], without TLS or SASL.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod config;
pub use config::{register, ZooKeeperStoreConfig};
mod error;
mod layout;
mod record;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::codec::{StateCodec, StateFormat};
use apscheduler_core::time::micros;
use apscheduler_core::{
    async_trait, log_warn, Acquired, Capabilities, ChangeListener, CorruptJob, Error, ErrorKind,
    Job, JobRelease, JobStore,
};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, CreateOptions, Error as ZkError, EventType,
    MultiWriteError, SessionState,
};

use crate::error::{invalid, zk};
use crate::layout::{bucket_start, day_start, parse_entry, Entry, Layout};
use crate::record::{Header, Record};

/// The root path used when none is given (APScheduler's `/apscheduler`).
pub const DEFAULT_PATH: &str = "/apscheduler";

/// The largest stored job state read or written by default: 512 KiB (a znode holds at
/// most about 1 MB).
pub const DEFAULT_MAX_STATE_BYTES: usize = 512 << 10;

/// The session time-out asked of the server by default.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take by default.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const CONTAINER: CreateOptions<'static> = CreateMode::Container.with_acls(Acls::anyone_all());

/// Requests in flight at once for reads and writes of many jobs.
const BURST: usize = 512;

/// A `multi` request's job data before a batch is split (ZooKeeper refuses requests
/// over 1 MB by default).
const MULTI_BYTES: usize = 512 << 10;

/// A write retried after a concurrent change (`BadVersion`) at most this often.
const WRITE_TRIES: usize = 16;

/// Builds a [`ZooKeeperJobStore`].
#[derive(Debug, Clone)]
pub struct ZooKeeperJobStoreBuilder {
    hosts: String,
    path: String,
    session_timeout: Duration,
    connection_timeout: Duration,
    max_state_bytes: usize,
    state_format: StateFormat,
}

impl ZooKeeperJobStoreBuilder {
    /// The root path of the store's znodes (default [`DEFAULT_PATH`]): absolute, without
    /// a trailing `/`, and not under `/zookeeper`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The session time-out asked of the server (default 10 s; the server bounds it
    /// to between 2 and 20 ticks).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long connecting may take before the call fails with `Unavailable`
    /// (default 5 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// The largest job state written or read (default [`DEFAULT_MAX_STATE_BYTES`]).
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes;
        self
    }

    /// The format new job states are written in (default JSON); either is read.
    pub fn state_format(mut self, format: StateFormat) -> Self {
        self.state_format = format;
        self
    }

    /// Checks the options and builds the store (nothing connects yet).
    ///
    /// # Errors
    /// `InvalidInput` naming the option: empty hosts, a root path that is not a valid
    /// ZooKeeper path, a zero time-out or size.
    pub fn build(self) -> Result<ZooKeeperJobStore, Error> {
        if self.hosts.trim().is_empty() {
            return Err(invalid(
                "hosts",
                &self.hosts,
                "give host:port pairs, such as '127.0.0.1:2181'",
            ));
        }
        validate_path(&self.path)?;
        for (field, value) in [
            ("session_timeout", self.session_timeout),
            ("connection_timeout", self.connection_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(field, "0", "it must be longer than zero"));
            }
        }
        if self.max_state_bytes == 0 || self.max_state_bytes > 1 << 20 {
            return Err(invalid(
                "max_state_bytes",
                &self.max_state_bytes.to_string(),
                "it must be between 1 and 1048576 (a znode holds at most about 1 MB)",
            ));
        }
        Ok(ZooKeeperJobStore {
            layout: Layout::new(&self.path),
            codec: StateCodec::new(self.state_format, self.max_state_bytes),
            hosts: self.hosts,
            session_timeout: self.session_timeout,
            connection_timeout: self.connection_timeout,
            session: tokio::sync::Mutex::new(None),
            held: Mutex::new(HashMap::new()),
            listener: Mutex::new(None),
        })
    }
}

/// Checks a root path: absolute, no empty, `.` or `..` segment, no trailing `/`, not the
/// root itself, not under `/zookeeper`.
///
/// # Errors
/// `InvalidInput` naming the field `path` and the problem.
pub fn validate_path(path: &str) -> Result<(), Error> {
    let why = if !path.starts_with('/') {
        Some("it must start with '/'")
    } else if path == "/" {
        Some("the root itself cannot hold the store; use a path such as '/apscheduler'")
    } else if path.ends_with('/') {
        Some("it must not end with '/'")
    } else if path == "/zookeeper" || path.starts_with("/zookeeper/") {
        Some("'/zookeeper' is reserved by ZooKeeper")
    } else if path[1..]
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        Some("it has an empty, '.' or '..' segment")
    } else if path.chars().any(|c| c.is_control()) {
        Some("it contains a control character")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(invalid("path", path, why)),
    }
}

/// A live session and the task that relays its watch.
struct Session {
    client: Client,
    watch: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = self.watch.take() {
            task.abort();
        }
    }
}

/// APScheduler's ZooKeeper job store (see the [crate documentation](crate)).
pub struct ZooKeeperJobStore {
    hosts: String,
    layout: Layout,
    session_timeout: Duration,
    connection_timeout: Duration,
    codec: StateCodec,
    session: tokio::sync::Mutex<Option<Session>>,
    /// Per scheduler id, the jobs this store claimed for it and that were not released
    /// yet: a claim whose reply was lost can still have leased them, and the contract
    /// gives such leases back at the scheduler's next claim.
    held: Mutex<HashMap<String, HashSet<String>>>,
    listener: Mutex<Option<ChangeListener>>,
}

impl fmt::Debug for ZooKeeperJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperJobStore")
            .field("hosts", &self.hosts)
            .field("path", &self.layout.root)
            .finish_non_exhaustive()
    }
}

/// One write of a `multi` request.
enum Op {
    /// Creates a znode (`NodeExists` if it is there).
    Create { path: String, data: Vec<u8> },
    /// Creates an index entry (and its folders when missing).
    CreateEntry(Entry),
    /// Sets a znode's data, if its version is still `version`.
    Set {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// Deletes a znode (at `version`, if given).
    Delete { path: String, version: Option<i32> },
    /// Writes `P/changes` (wakes the watchers).
    Bump,
}

/// Why a `multi` failed.
enum Failed {
    /// Operation `index` was refused (`NodeExists`, `BadVersion`, `NoNode`, ...).
    Op { index: usize, error: ZkError },
    /// The request itself failed.
    Call(Error),
}

impl Failed {
    fn into_error(self, what: &'static str) -> Error {
        match self {
            Failed::Op { error, .. } => zk(what, error),
            Failed::Call(e) => e,
        }
    }
}

/// A job znode as read: its record (or why its header cannot be read) and version.
struct Read {
    id: String,
    record: Result<Record, String>,
    version: i32,
}

impl ZooKeeperJobStore {
    /// A builder for a store on the ensemble `hosts` (`host:port[,host:port...]`).
    pub fn builder(hosts: impl Into<String>) -> ZooKeeperJobStoreBuilder {
        ZooKeeperJobStoreBuilder {
            hosts: hosts.into(),
            path: DEFAULT_PATH.to_owned(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            state_format: StateFormat::default(),
        }
    }

    /// A store on `hosts` under `path`, with the other options at their defaults.
    ///
    /// # Errors
    /// As [`ZooKeeperJobStoreBuilder::build`].
    pub fn new(hosts: impl Into<String>, path: impl Into<String>) -> Result<Self, Error> {
        Self::builder(hosts).path(path).build()
    }

    /// The root path of the store's znodes.
    pub fn path(&self) -> &str {
        &self.layout.root
    }

    /// The jobs set aside because they cannot be read, with the reasons.
    ///
    /// # Errors
    /// `Unavailable` when the ensemble cannot be reached.
    pub async fn corrupt_jobs(&self) -> Result<Vec<CorruptJob>, Error> {
        let c = self.client().await?;
        let mut out = Vec::new();
        for read in self.read_all(&c).await? {
            let error = match read.record {
                Err(why) => Some(why),
                Ok(r) => r.header.corrupt,
            };
            if let Some(error) = error {
                out.push(CorruptJob { id: read.id, error });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    // -- the session -------------------------------------------------------------

    /// The live client, connecting (and laying out the root path) when there is none
    /// or its session has ended.
    async fn client(&self) -> Result<Client, Error> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            if !session.client.state().is_terminated() {
                return Ok(session.client.clone());
            }
            log_warn!(
                "ZooKeeper session to {} ended ({:?}); opening a new one",
                self.hosts,
                session.client.state()
            );
        }
        *slot = None;
        let client = Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(self.connection_timeout)
            .with_fail_eagerly()
            .connect(&self.hosts)
            .await
            .map_err(|e| zk("connect", e))?;
        for path in [&self.layout.jobs, &self.layout.runs] {
            client
                .mkdir(path, &PERSISTENT)
                .await
                .map_err(|e| zk("create the root path", e))?;
        }
        match client.create(&self.layout.changes, b"", &PERSISTENT).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => return Err(zk("create the root path", e)),
        }
        let watch = self.start_watch(&client).await?;
        *slot = Some(Session {
            client: client.clone(),
            watch,
        });
        drop(slot);
        // Whatever changed while there was no session raised no event.
        self.notify();
        Ok(client)
    }

    /// Watches `P/changes` for the listener, if one is set and a runtime can run it.
    async fn start_watch(
        &self,
        client: &Client,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
        let Some(listener) = self.listener.lock().expect("listener lock").clone() else {
            return Ok(None);
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ok(None);
        };
        let mut watcher = client
            .watch(&self.layout.changes, AddWatchMode::Persistent)
            .await
            .map_err(|e| zk("watch for changes", e))?;
        let state = client.state_watcher();
        Ok(Some(runtime.spawn(async move {
            loop {
                // `changed` panics once the session has ended: check first.
                if state.peek_state().is_terminated() {
                    listener();
                    return;
                }
                let event = watcher.changed().await;
                match event.event_type {
                    EventType::Session => {
                        if event.session_state.is_terminated() {
                            listener();
                            return;
                        }
                        if event.session_state == SessionState::SyncConnected {
                            // Events while disconnected may be lost: re-plan.
                            listener();
                        }
                    }
                    _ => listener(),
                }
            }
        })))
    }

    fn notify(&self) {
        let listener = self.listener.lock().expect("listener lock").clone();
        if let Some(listener) = listener {
            listener();
        }
    }

    // -- writes -------------------------------------------------------------------

    /// Commits `ops` as one `multi`, creating index folders that are missing.
    async fn commit(&self, c: &Client, ops: &[Op]) -> Result<(), Failed> {
        let mut tries = 0;
        loop {
            let mut w = c.new_multi_writer();
            for op in ops {
                let added = match op {
                    Op::Create { path, data } => w.add_create(path, data, &PERSISTENT),
                    Op::CreateEntry(e) => {
                        w.add_create(&self.layout.entry(e.key, &e.id), b"", &PERSISTENT)
                    }
                    Op::Set {
                        path,
                        data,
                        version,
                    } => w.add_set_data(path, data, Some(*version)),
                    Op::Delete { path, version } => w.add_delete(path, *version),
                    Op::Bump => w.add_set_data(&self.layout.changes, b"", None),
                };
                added.map_err(|e| Failed::Call(zk("prepare a write", e)))?;
            }
            match w.commit().await {
                Ok(_) => return Ok(()),
                Err(MultiWriteError::RequestFailed { source }) => {
                    return Err(Failed::Call(zk("write", source)))
                }
                Err(MultiWriteError::OperationFailed { index, source }) => {
                    if let (ZkError::NoNode, Some(Op::CreateEntry(_))) = (&source, ops.get(index)) {
                        tries += 1;
                        if tries < WRITE_TRIES {
                            // Create every folder the request needs at once.
                            let mut buckets = HashSet::new();
                            let entries = ops.iter().filter_map(|op| match op {
                                Op::CreateEntry(e)
                                    if buckets.insert(self.layout.bucket(e.key, &e.id)) =>
                                {
                                    Some(e)
                                }
                                _ => None,
                            });
                            let created =
                                join_all(entries.map(|e| self.create_folders(c, e))).await;
                            for done in created {
                                done.map_err(Failed::Call)?;
                            }
                            continue;
                        }
                    }
                    return Err(Failed::Op {
                        index,
                        error: source,
                    });
                }
            }
        }
    }

    /// Creates the day and minute folders of an index entry.
    async fn create_folders(&self, c: &Client, e: &Entry) -> Result<(), Error> {
        for path in [self.layout.day(e.key), self.layout.bucket(e.key, &e.id)] {
            match c.create(&path, b"", &CONTAINER).await {
                // NoNode: the day folder went away meanwhile; the caller tries again.
                Ok(_) | Err(ZkError::NodeExists) | Err(ZkError::NoNode) => {}
                Err(e) => return Err(zk("create an index folder", e)),
            }
        }
        Ok(())
    }

    /// The index changes that move a job from `old` to `new` header.
    fn reindex(ops: &mut Vec<Op>, layout: &Layout, id: &str, old: &Header, new: &Header) {
        let (before, after) = (old.due_key(), new.due_key());
        if before == after {
            return;
        }
        if let Some(key) = before {
            ops.push(Op::Delete {
                path: layout.entry(key, id),
                version: None,
            });
        }
        if let Some(key) = after {
            ops.push(Op::CreateEntry(Entry {
                key,
                id: id.to_owned(),
            }));
        }
    }

    fn encode(&self, job: &Job) -> Result<Record, Error> {
        if job.id.is_empty() {
            return Err(invalid("id", "", "a job id must not be empty"));
        }
        Ok(Record {
            header: Header {
                next: job.next_run_time.as_ref().map(micros::run_time),
                ..Header::default()
            },
            state: self.codec.encode(job)?,
        })
    }

    /// The writes that add `record` as a new job.
    fn creation(&self, id: &str, record: &Record, ops: &mut Vec<Op>) {
        ops.push(Op::Create {
            path: self.layout.job(id),
            data: record.encode(),
        });
        if let Some(key) = record.header.due_key() {
            ops.push(Op::CreateEntry(Entry {
                key,
                id: id.to_owned(),
            }));
        }
    }

    /// Stores a new state for an existing job, keeping its lease: `Ok(false)` when the
    /// job is missing.
    async fn overwrite(&self, c: &Client, id: &str, mut record: Record) -> Result<bool, Error> {
        for _ in 0..WRITE_TRIES {
            let Some(read) = self.read(c, id).await? else {
                return Ok(false);
            };
            let old = read.record.map(|r| r.header).unwrap_or_default();
            record.header.owner.clone_from(&old.owner);
            record.header.expires = old.expires;
            let mut ops = vec![Op::Set {
                path: self.layout.job(id),
                data: record.encode(),
                version: read.version,
            }];
            Self::reindex(&mut ops, &self.layout, id, &old, &record.header);
            ops.push(Op::Bump);
            match self.commit(c, &ops).await {
                Ok(()) => return Ok(true),
                Err(Failed::Op {
                    error: ZkError::BadVersion | ZkError::NoNode,
                    ..
                }) => continue,
                Err(f) => return Err(f.into_error("update a job")),
            }
        }
        Err(contended(id))
    }

    // -- reads --------------------------------------------------------------------

    async fn read(&self, c: &Client, id: &str) -> Result<Option<Read>, Error> {
        match c.get_data(&self.layout.job(id)).await {
            Ok((data, stat)) => Ok(Some(Read {
                id: id.to_owned(),
                record: Record::decode(&data),
                version: stat.version,
            })),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(zk("read a job", e)),
        }
    }

    /// Reads these jobs (missing ones left out), in bursts.
    async fn read_many(&self, c: &Client, ids: &[String]) -> Result<Vec<Read>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BURST) {
            for read in join_all(chunk.iter().map(|id| self.read(c, id))).await {
                out.extend(read?);
            }
        }
        Ok(out)
    }

    async fn read_all(&self, c: &Client) -> Result<Vec<Read>, Error> {
        let names = c
            .list_children(&self.layout.jobs)
            .await
            .map_err(|e| zk("list jobs", e))?;
        let ids: Vec<String> = names
            .iter()
            .filter_map(|n| {
                let id = layout::decode_id(n);
                if id.is_none() {
                    log_warn!("ZooKeeper job store: ignoring the znode {n:?} (not a job id)");
                }
                id
            })
            .collect();
        self.read_many(c, &ids).await
    }

    async fn list(&self, c: &Client, path: &str) -> Result<Vec<String>, Error> {
        match c.list_children(path).await {
            Ok(mut names) => {
                names.sort_unstable();
                Ok(names)
            }
            // A container the server removed since it was listed.
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk("list the index", e)),
        }
    }

    /// Index entries in key order, then id: those with a key at or before `upto`
    /// (all with `None`), at most `max` of them.
    async fn scan(&self, c: &Client, upto: Option<i64>, max: usize) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        let past = |start: i64| upto.is_some_and(|u| start > u);
        for day in self.list(c, &self.layout.runs).await? {
            let Some(start) = day_start(&day) else {
                continue;
            };
            if past(start) {
                break;
            }
            let day_path = format!("{}/{day}", self.layout.runs);
            let buckets = self.list(c, &day_path).await?;
            // Group the shard folders of each minute.
            let mut minutes: Vec<(i64, Vec<String>)> = Vec::new();
            for name in buckets {
                let Some(start) = bucket_start(&name) else {
                    continue;
                };
                match minutes.last_mut() {
                    Some((m, names)) if *m == start => names.push(name),
                    _ => minutes.push((start, vec![name])),
                }
            }
            for (start, shards) in minutes {
                if past(start) {
                    return Ok(out);
                }
                let paths: Vec<String> = shards.iter().map(|s| format!("{day_path}/{s}")).collect();
                let mut entries = Vec::new();
                for listed in join_all(paths.iter().map(|p| self.list(c, p))).await {
                    entries.extend(listed?.iter().filter_map(|n| parse_entry(n)));
                }
                entries.sort_unstable();
                for e in entries {
                    if upto.is_some_and(|u| e.key > u) {
                        return Ok(out);
                    }
                    out.push(e);
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn decode_job(&self, id: &str, state: &[u8]) -> Result<Job, String> {
        let state = self.codec.decode(state)?;
        if state.id != id {
            return Err(format!(
                "the stored state belongs to job '{}', not to '{id}'",
                state.id
            ));
        }
        state
            .into_job(apscheduler_triggers::decode_trigger)
            .map_err(|e| e.message().to_owned())
    }

    // -- claims -------------------------------------------------------------------

    fn held_ids(&self, scheduler: &str) -> Vec<String> {
        let held = self.held.lock().expect("held lock");
        held.get(scheduler)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn mark_held(&self, scheduler: &str, ids: impl IntoIterator<Item = String>) {
        let mut held = self.held.lock().expect("held lock");
        held.entry(scheduler.to_owned()).or_default().extend(ids);
    }

    fn unmark_held(&self, scheduler: &str, ids: &[&str]) {
        let mut held = self.held.lock().expect("held lock");
        if let Some(set) = held.get_mut(scheduler) {
            for id in ids {
                set.remove(*id);
            }
            if set.is_empty() {
                held.remove(scheduler);
            }
        }
    }

    /// Tries to claim (or set aside, when its state cannot be read) one due job.
    async fn claim_one(
        &self,
        c: &Client,
        scheduler: &str,
        now: i64,
        expires: i64,
        (id, version, record): (String, i32, Record),
    ) -> Result<Option<Result<Job, CorruptJob>>, Error> {
        let path = self.layout.job(&id);
        let h = &record.header;
        let Some(next) = h.next else { return Ok(None) };
        let mine = h.owner.as_deref() == Some(scheduler);
        let claimable = h.corrupt.is_none()
            && next <= now
            && (mine || h.expires.is_none_or(|e| e <= now) || h.owner.is_none());
        if !claimable {
            return Ok(None);
        }
        match self.decode_job(&id, &record.state) {
            Ok(job) => {
                let new = Header {
                    owner: Some(scheduler.to_owned()),
                    expires: Some(expires),
                    ..h.clone()
                };
                let mut ops = vec![Op::Set {
                    path,
                    data: Record {
                        header: new.clone(),
                        state: record.state.clone(),
                    }
                    .encode(),
                    version,
                }];
                Self::reindex(&mut ops, &self.layout, &id, h, &new);
                match self.commit(c, &ops).await {
                    Ok(()) => Ok(Some(Ok(job))),
                    Err(Failed::Op { .. }) => Ok(None), // another claimer or writer won
                    Err(Failed::Call(e)) => Err(e),
                }
            }
            Err(why) => {
                let new = Header {
                    corrupt: Some(why.clone()),
                    ..h.clone()
                };
                let mut ops = vec![Op::Set {
                    path,
                    data: Record {
                        header: new.clone(),
                        state: record.state,
                    }
                    .encode(),
                    version,
                }];
                Self::reindex(&mut ops, &self.layout, &id, h, &new);
                match self.commit(c, &ops).await {
                    Ok(()) => {
                        log_warn!(
                            "ZooKeeper job store: job '{}' cannot be read and is set aside \
                             (kept under {}): {why}",
                            id,
                            self.layout.job(&id)
                        );
                        Ok(Some(Err(CorruptJob { id, error: why })))
                    }
                    Err(Failed::Op { .. }) => Ok(None),
                    Err(Failed::Call(e)) => Err(e),
                }
            }
        }
    }

    /// Sets aside a job whose header cannot be read: its bytes are kept after a header
    /// that marks it; the index entry that led here is dropped.
    async fn set_aside_unreadable(
        &self,
        c: &Client,
        id: &str,
        version: i32,
        key: i64,
        why: &str,
    ) -> Result<bool, Error> {
        let raw = match c.get_data(&self.layout.job(id)).await {
            Ok((raw, stat)) if stat.version == version => raw,
            Ok(_) | Err(ZkError::NoNode) => return Ok(false),
            Err(e) => return Err(zk("read a job", e)),
        };
        let record = Record {
            header: Header {
                corrupt: Some(why.to_owned()),
                ..Header::default()
            },
            state: raw,
        };
        let ops = [
            Op::Set {
                path: self.layout.job(id),
                data: record.encode(),
                version,
            },
            Op::Delete {
                path: self.layout.entry(key, id),
                version: None,
            },
        ];
        match self.commit(c, &ops).await {
            Ok(()) => Ok(true),
            Err(Failed::Op { .. }) => Ok(false),
            Err(Failed::Call(e)) => Err(e),
        }
    }

    /// Drops an index entry whose job is gone.
    async fn drop_entry(&self, c: &Client, e: &Entry) -> Result<(), Error> {
        match c.delete(&self.layout.entry(e.key, &e.id), None).await {
            Ok(()) | Err(ZkError::NoNode) => Ok(()),
            Err(err) => Err(zk("drop a stale index entry", err)),
        }
    }
}

fn contended(id: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("job '{id}' kept changing under concurrent writers; try again"),
    )
}

#[async_trait]
impl JobStore for ZooKeeperJobStore {
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        self.client().await.map(drop)
    }

    async fn shutdown(&self) -> Result<(), Error> {
        // Dropping the last client closes the session.
        self.session.lock().await.take();
        Ok(())
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::persistent_shared(false);
        caps.notifications = true;
        caps
    }

    fn set_change_listener(&self, listener: ChangeListener) {
        *self.listener.lock().expect("listener lock") = Some(listener);
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        let record = self.encode(&job)?;
        let c = self.client().await?;
        for _ in 0..WRITE_TRIES {
            if replace_existing && self.overwrite(&c, &job.id, record.clone()).await? {
                return Ok(());
            }
            let mut ops = Vec::new();
            self.creation(&job.id, &record, &mut ops);
            ops.push(Op::Bump);
            match self.commit(&c, &ops).await {
                Ok(()) => return Ok(()),
                Err(Failed::Op {
                    index: 0,
                    error: ZkError::NodeExists,
                }) => {
                    if !replace_existing {
                        return Err(Error::conflict(&job.id));
                    }
                }
                Err(f) => return Err(f.into_error("add a job")),
            }
        }
        Err(contended(&job.id))
    }

    async fn add_jobs(&self, jobs: Vec<Job>, replace_existing: bool) -> Result<(), Error> {
        let mut seen = HashSet::new();
        for job in &jobs {
            if !seen.insert(&*job.id) {
                return Err(Error::conflict(&job.id));
            }
        }
        let records = jobs
            .iter()
            .map(|j| self.encode(j))
            .collect::<Result<Vec<_>, _>>()?;
        let c = self.client().await?;
        if replace_existing {
            let pairs: Vec<(&Job, &Record)> = jobs.iter().zip(&records).collect();
            for chunk in pairs.chunks(BURST) {
                for done in join_all(
                    chunk
                        .iter()
                        .map(|(job, record)| self.replace_one(&c, &job.id, record)),
                )
                .await
                {
                    done?;
                }
            }
            return Ok(());
        }
        // Without replacing: all or nothing, one multi per chunk.
        let mut chunks: Vec<Vec<Op>> = vec![Vec::new()];
        let mut bytes = 0;
        for (job, record) in jobs.iter().zip(&records) {
            let size = record.state.len() + 128;
            if bytes + size > MULTI_BYTES && !chunks.last().expect("a chunk").is_empty() {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            self.creation(&job.id, record, chunks.last_mut().expect("a chunk"));
        }
        for (n, chunk) in chunks.iter_mut().enumerate() {
            chunk.push(Op::Bump);
            if let Err(f) = self.commit(&c, chunk).await {
                let conflict = match &f {
                    Failed::Op {
                        index,
                        error: ZkError::NodeExists,
                    } => match &chunk[*index] {
                        Op::Create { path, .. } => {
                            path.rsplit('/').next().and_then(layout::decode_id)
                        }
                        _ => None,
                    },
                    _ => None,
                };
                // Undo the chunks already written.
                for done in &chunks[..n] {
                    for op in done {
                        if let Op::Create { path, .. } = op {
                            if let Some(id) = path.rsplit('/').next().and_then(layout::decode_id) {
                                match self.remove_job(&id).await {
                                    Ok(()) => {}
                                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                                    Err(e) => return Err(e),
                                }
                            }
                        }
                    }
                }
                return Err(match conflict {
                    Some(id) => Error::conflict(&id),
                    None => f.into_error("add jobs"),
                });
            }
        }
        Ok(())
    }

    async fn update_job(&self, job: Job) -> Result<(), Error> {
        let record = self.encode(&job)?;
        let c = self.client().await?;
        if self.overwrite(&c, &job.id, record).await? {
            Ok(())
        } else {
            Err(Error::job_not_found(&job.id))
        }
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let c = self.client().await?;
        for _ in 0..WRITE_TRIES {
            let Some(read) = self.read(&c, id).await? else {
                return Err(Error::job_not_found(id));
            };
            let mut ops = vec![Op::Delete {
                path: self.layout.job(id),
                version: Some(read.version),
            }];
            if let Some(key) = read.record.ok().and_then(|r| r.header.due_key()) {
                ops.push(Op::Delete {
                    path: self.layout.entry(key, id),
                    version: None,
                });
            }
            ops.push(Op::Bump);
            match self.commit(&c, &ops).await {
                Ok(()) => return Ok(()),
                Err(Failed::Op {
                    index: 0,
                    error: ZkError::NoNode,
                }) => return Err(Error::job_not_found(id)),
                Err(Failed::Op {
                    error: ZkError::BadVersion | ZkError::NoNode,
                    ..
                }) => continue,
                Err(f) => return Err(f.into_error("remove a job")),
            }
        }
        Err(contended(id))
    }

    async fn remove_all_jobs(&self) -> Result<(), Error> {
        let c = self.client().await?;
        let names = c
            .list_children(&self.layout.jobs)
            .await
            .map_err(|e| zk("list jobs", e))?;
        let ids: Vec<String> = names.iter().filter_map(|n| layout::decode_id(n)).collect();
        for chunk in ids.chunks(BURST) {
            for done in join_all(chunk.iter().map(|id| self.remove_job(id))).await {
                match done {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn lookup_job(&self, id: &str) -> Result<Option<Job>, Error> {
        let c = self.client().await?;
        let Some(read) = self.read(&c, id).await? else {
            return Ok(None);
        };
        let unreadable = |why: String| {
            Error::new(
                ErrorKind::Serialization,
                format!("stored job '{id}' cannot be read: {why}"),
            )
        };
        let record = read.record.map_err(unreadable)?;
        if let Some(why) = record.header.corrupt {
            return Err(unreadable(why));
        }
        self.decode_job(id, &record.state)
            .map(Some)
            .map_err(unreadable)
    }

    async fn get_all_jobs(&self) -> Result<Vec<Job>, Error> {
        let c = self.client().await?;
        let mut jobs = Vec::new();
        for read in self.read_all(&c).await? {
            let job = read.record.and_then(|r| match r.header.corrupt {
                Some(why) => Err(why),
                None => self.decode_job(&read.id, &r.state),
            });
            match job {
                Ok(job) => jobs.push(job),
                Err(why) => log_warn!(
                    "ZooKeeper job store: skipping job '{}', which cannot be read: {why}",
                    read.id
                ),
            }
        }
        jobs.sort_by(|a, b| {
            let key = |j: &Job| {
                (
                    j.next_run_time.is_none(),
                    j.next_run_time.map(|t| t.to_utc()),
                )
            };
            key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
        });
        Ok(jobs)
    }

    async fn get_next_run_time(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let c = self.client().await?;
        let first = self.scan(&c, None, 1).await?;
        Ok(first.first().map(|e| micros::to_instant(e.key)))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let c = self.client().await?;
        let now_us = micros::now(&now);
        let expires = micros::expiry(&now, lease);
        let mut acquired = Acquired::default();
        let mut tried: HashSet<String> = HashSet::new();
        // The caller's own stranded leases first (see the JobStore contract).
        let mut candidates: Vec<(String, Option<i64>)> = self
            .held_ids(scheduler_id)
            .into_iter()
            .map(|id| (id, None))
            .collect();
        // A few rounds: candidates lost to another claimer make room for later ones.
        for _round in 0..4 {
            let want = limit.saturating_sub(acquired.jobs.len());
            if want == 0 {
                break;
            }
            for e in self.scan(&c, Some(now_us), want + tried.len()).await? {
                if !tried.contains(&e.id) && candidates.len() < want + 64 {
                    candidates.push((e.id, Some(e.key)));
                }
            }
            candidates.retain(|(id, _)| tried.insert(id.clone()));
            if candidates.is_empty() {
                break;
            }
            let keys: HashMap<String, Option<i64>> = candidates.drain(..).collect();
            let ids: Vec<String> = keys.keys().cloned().collect();
            let reads = self.read_many(&c, &ids).await?;
            let mut stale: Vec<Entry> = Vec::new();
            let mut unreadable = Vec::new();
            let mut due = Vec::new();
            let found: HashSet<&str> = reads.iter().map(|r| r.id.as_str()).collect();
            for (id, key) in &keys {
                if let (false, Some(key)) = (found.contains(id.as_str()), key) {
                    stale.push(Entry {
                        key: *key,
                        id: id.clone(),
                    }); // the job is gone
                }
            }
            for read in reads {
                let key = keys.get(&read.id).copied().flatten();
                match read.record {
                    Err(why) => {
                        if let Some(key) = key {
                            unreadable.push((read.id, read.version, key, why));
                        }
                    }
                    // An entry that does not match its job's header was left behind.
                    Ok(record) if key.is_some() && record.header.due_key() != key => {
                        stale.push(Entry {
                            key: key.expect("checked"),
                            id: read.id,
                        });
                    }
                    Ok(record) => due.push((read.id, read.version, record)),
                }
            }
            for dropped in join_all(stale.iter().map(|e| self.drop_entry(&c, e))).await {
                dropped?;
            }
            // Past the limit, the earliest run times win.
            due.sort_by(|a, b| (a.2.header.next, &a.0).cmp(&(b.2.header.next, &b.0)));
            due.truncate(want);
            let attempted = due.len();
            self.mark_held(scheduler_id, due.iter().map(|d| d.0.clone()));
            let outcomes = join_all(
                due.into_iter()
                    .map(|d| self.claim_one(&c, scheduler_id, now_us, expires, d)),
            )
            .await;
            let mut won = 0;
            for outcome in outcomes {
                match outcome? {
                    Some(Ok(job)) => {
                        won += 1;
                        acquired.jobs.push(job);
                    }
                    Some(Err(corrupt)) => {
                        won += 1;
                        acquired.corrupt.push(corrupt);
                    }
                    None => {}
                }
            }
            for (id, version, key, why) in unreadable {
                if self
                    .set_aside_unreadable(&c, &id, version, key, &why)
                    .await?
                {
                    log_warn!(
                        "ZooKeeper job store: job '{id}' cannot be read and is set aside: {why}"
                    );
                    acquired.corrupt.push(CorruptJob { id, error: why });
                }
            }
            if won == attempted {
                break;
            }
        }
        // Keep held marks only for the jobs this claim holds now.
        {
            let claimed: HashSet<&str> = acquired.jobs.iter().map(|j| &*j.id).collect();
            let mut held = self.held.lock().expect("held lock");
            if let Some(set) = held.get_mut(scheduler_id) {
                set.retain(|id| claimed.contains(id.as_str()) || !tried.contains(id));
                if set.is_empty() {
                    held.remove(scheduler_id);
                }
            }
        }
        acquired.jobs.sort_by(|a, b| {
            let key = |j: &Job| j.next_run_time.as_ref().map(micros::run_time);
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
        let c = self.client().await?;
        let now_us = micros::now(&now);
        let expires = micros::expiry(&now, lease);
        let extend = |id: Arc<str>| {
            let c = &c;
            async move {
                for _ in 0..WRITE_TRIES {
                    let Some(read) = self.read(c, &id).await? else {
                        return Ok(false);
                    };
                    let Ok(record) = read.record else {
                        return Ok(false);
                    };
                    if !record.header.held_by(scheduler_id, now_us) {
                        return Ok(false);
                    }
                    let new = Header {
                        expires: Some(expires),
                        ..record.header.clone()
                    };
                    let mut ops = vec![Op::Set {
                        path: self.layout.job(&id),
                        data: Record {
                            header: new.clone(),
                            state: record.state,
                        }
                        .encode(),
                        version: read.version,
                    }];
                    Self::reindex(&mut ops, &self.layout, &id, &record.header, &new);
                    match self.commit(c, &ops).await {
                        Ok(()) => return Ok(true),
                        Err(Failed::Op {
                            error: ZkError::BadVersion | ZkError::NoNode,
                            ..
                        }) => continue,
                        Err(f) => return Err(f.into_error("extend a lease")),
                    }
                }
                Err(contended(&id))
            }
        };
        let mut lost = Vec::new();
        for chunk in ids.chunks(BURST) {
            let done = join_all(chunk.iter().cloned().map(extend)).await;
            for (id, held) in chunk.iter().zip(done) {
                if !held? {
                    lost.push(&**id);
                }
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
    ) -> Result<(), Error> {
        let c = self.client().await?;
        let release = |r: &JobRelease| {
            let c = &c;
            let (id, new) = match r {
                JobRelease::Update(job) => (job.id.clone(), Some(self.encode(job))),
                JobRelease::Remove(id) => (id.clone(), None),
            };
            async move {
                let new = new.transpose()?;
                for _ in 0..WRITE_TRIES {
                    let Some(read) = self.read(c, &id).await? else {
                        return Ok(());
                    };
                    let Ok(old) = read.record else { return Ok(()) };
                    if old.header.owner.as_deref() != Some(scheduler_id) {
                        return Ok(()); // lost the lease: the new holder's claim stands
                    }
                    let path = self.layout.job(&id);
                    let mut ops = Vec::new();
                    match &new {
                        Some(record) => {
                            ops.push(Op::Set {
                                path,
                                data: record.encode(),
                                version: read.version,
                            });
                            Self::reindex(&mut ops, &self.layout, &id, &old.header, &record.header);
                        }
                        None => {
                            ops.push(Op::Delete {
                                path,
                                version: Some(read.version),
                            });
                            if let Some(key) = old.header.due_key() {
                                ops.push(Op::Delete {
                                    path: self.layout.entry(key, &id),
                                    version: None,
                                });
                            }
                        }
                    }
                    match self.commit(c, &ops).await {
                        Ok(()) => return Ok(()),
                        Err(Failed::Op {
                            error: ZkError::BadVersion | ZkError::NoNode,
                            ..
                        }) => continue,
                        Err(f) => return Err(f.into_error("release a job")),
                    }
                }
                Err(contended(&id))
            }
        };
        let ids: Vec<&str> = releases
            .iter()
            .map(|r| match r {
                JobRelease::Update(job) => &*job.id,
                JobRelease::Remove(id) => &**id,
            })
            .collect();
        for chunk in releases.chunks(BURST) {
            for done in join_all(chunk.iter().map(release)).await {
                done?;
            }
        }
        self.unmark_held(scheduler_id, &ids);
        Ok(())
    }
}

impl ZooKeeperJobStore {
    async fn replace_one(&self, c: &Client, id: &str, record: &Record) -> Result<(), Error> {
        for _ in 0..WRITE_TRIES {
            if self.overwrite(c, id, record.clone()).await? {
                return Ok(());
            }
            let mut ops = Vec::new();
            self.creation(id, record, &mut ops);
            ops.push(Op::Bump);
            match self.commit(c, &ops).await {
                Ok(()) => return Ok(()),
                Err(Failed::Op {
                    index: 0,
                    error: ZkError::NodeExists,
                }) => continue,
                Err(f) => return Err(f.into_error("add a job")),
            }
        }
        Err(contended(id))
    }
}
