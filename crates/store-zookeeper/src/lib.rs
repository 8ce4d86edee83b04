//! # apscheduler-store-zookeeper
//!
//! [`ZooKeeperJobStore`]: APScheduler's `ZooKeeperJobStore` for apscheduler-rs. Jobs are
//! znodes under a root path (APScheduler's default `/apscheduler`), kept as data (task
//! *names*, arguments, the trigger's tagged JSON; never code), so several schedulers, in
//! one process or on many machines, can share one ensemble: due jobs are claimed with a
//! lease by a versioned write per job, and every (job, run time) is handed to exactly
//! one scheduler. A watch wakes every scheduler when another process adds, changes or
//! removes a job, or releases one that a scheduler waits for.
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
//! | `P/runs/<day>/<hour>/<minute>-<shard>/<key>-<id>` | an empty index entry: the job can be claimed from instant `key` on (its next run time, or the end of a lease on it if later); paused and corrupt jobs have none. The folders are container znodes, which the server deletes once empty |
//! | `P/changes` | written by every add, modify and remove, and by a release while another session waits for one (`P/waiters`); its watchers are woken |
//! | `P/waiters/<session>_<until>` | ephemeral and empty: the scheduler of session `<session>` (hex) sleeps until `<until>` (UTC microseconds, the server's clock), the end of a lease, which a release can bring forward |
//! | `P/clock` | empty; written by claims and lease extensions to read the server's time (its modification time) |
//! | `P/history/...`, `P/nodes/<node>` | the run history and the node registry (see [Run history](#run-history)) |
//!
//! Ids are percent-encoded into znode names (`/` and characters ZooKeeper refuses), so
//! any job id is stored as it is. Every change to a job and its index entry is one
//! `multi` request, checked against the version of the job znode read before it: the
//! tree is consistent at every instant, and a crashed scheduler leaves nothing locked.
//!
//! ## Round trips
//! With N stored jobs, one pass of the main loop costs, whatever N:
//! - [`get_next_run_time`](JobStore::get_next_run_time): 4 listings in sequence (the
//!   day folders, the first day's hours, the first hour's minute folders, that minute's
//!   shard folders in one pipelined burst), more only where a folder is empty (the
//!   server removes empty folders about a minute later); each reply is bounded (days,
//!   at most 24 hours, 960 minute folders, the entries of one minute shard). When the
//!   first entry is ahead and a watch relays changes: one read of its job, to tell a
//!   lease's end from a run time, unless it is the entry looked at last; and, for a
//!   lease's end later than this store's recorded wait, one `multi` recording the wait.
//! - [`acquire_due_jobs`](JobStore::acquire_due_jobs) with `k` due jobs: the same
//!   listings (more folders when the due jobs span several minutes), then one pipelined
//!   burst of `k` reads, one write to `P/clock` (when `k > 0`) and one burst of `k`
//!   versioned `multi` writes.
//! - [`release_jobs`](JobStore::release_jobs): one pipelined burst of reads and one of
//!   writes for the whole batch; one more write (`P/changes`) when another session
//!   waits for a release. A session's first release also sets a watch on `P/waiters`
//!   and lists it once; the watch's events then tell who waits, without requests.
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
//!   [`ErrorKind::Unavailable`], which the
//!   engine retries. An expired session is replaced by a new one at the next call.
//!   Jobs are persistent znodes: nothing depends on a session staying alive.
//! - Claims: due index entries are read in key order, each job is leased by a `multi`
//!   that writes its header (checked against the version just read) and moves its
//!   index entry to the lease's end. Two claimers racing for one job: one write wins,
//!   the other sees `BadVersion` and skips the job. Leases a scheduler still holds at
//!   its next claim (the reply to a claim was lost) are given back to it.
//! - Leases run on the ZooKeeper leader's clock
//!   ([`Capabilities::store_clock`](apscheduler_core::Capabilities::store_clock)): a
//!   claim or an extension first writes `P/clock` and takes the modification time the
//!   server gives that write as "now"; a lease ends that long after it, and a lease has
//!   expired when that time is past it. Read before the claim's own writes, it is never
//!   later than the server's time at them, so no live lease is taken. The caller's
//!   `now` only says which jobs are due. The time is in milliseconds, and it is the
//!   leader's: after a leader change, the new leader's clock (keep the ensemble's
//!   clocks synchronised).
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
//!   down raise no event). It hears of a release while it waits for one: its next
//!   wake-up ([`get_next_run_time`](JobStore::get_next_run_time)) is the end of
//!   another's lease, a wait it records in `P/waiters` (removed at
//!   [`shutdown`](JobStore::shutdown), or with its session) and that releases check
//!   against the server's time of their writes (a batch of removals alone: the
//!   releasing node's clock).
//!
//! ## Runs
//! The store implements the run contract ([`RunStore`](apscheduler_core::RunStore)):
//! a job's runs are one znode, `<root>/run_groups/<job>` (JSON: the job's last fence,
//! whether the finished job waits for its last live run, and its kept runs). Each
//! operation reads the groups and job znodes it touches with their versions and the
//! leader's time, lets core's [`RunTable`](apscheduler_core::RunTable) decide, and
//! writes everything in one `multi` checked against the versions read; a `multi`
//! refused because something moved is read and decided again. A sweep lists the run
//! groups and reads each one.
//!
//! ## Run history
//! [`run_history`](JobStore::run_history) hands out a [`ZooKeeperRunHistory`] on the
//! store's session and root path `P` (passing `apscheduler_testkit::history`):
//!
//! | znode | holds |
//! |---|---|
//! | `P/history/jobs/<job>/<key>-<run>` | one run record, the [`RunRecord`](apscheduler_core::RunRecord) as JSON; `<key>` is `scheduled_at` (UTC microseconds) shifted like an index key, so a job's records list in time order. The job folders are container znodes |
//! | `P/history/ids/<run>` | the run's pointer (JSON): where its record is and the name of its running entry, if any; how a rewrite finds the record it replaces |
//! | `P/history/running/<node>+<job>+<key>+<run>` | empty: the run is `running`. The name holds all that [`running_elsewhere`](apscheduler_core::RunHistory::running_elsewhere) returns |
//! | `P/nodes/<node>` | a node's heartbeat, a [`NodeInfo`](apscheduler_core::NodeInfo) as JSON |
//!
//! - A record, its pointer and its running entry are written by one `multi`, checked
//!   against the version of the pointer read before it; a batch is one burst of pointer
//!   reads and one `multi` per 512 KiB of records. A record over [`MAX_RECORD_BYTES`]
//!   keeps the tail of its output that fits.
//! - Costs: a query for one job lists that job's folder and reads only the newest
//!   candidates (`limit` of them without an outcome or node filter); a query without a
//!   job lists **every** job's folder. `running_elsewhere`, called by every pass of a
//!   scheduler on a shared store, is one listing of `P/history/running`, without reads.
//!   `interrupt_running` lists that folder too and writes each of the node's records
//!   at the version it read, so callers reaping one node at once get disjoint records.
//!   `record_starts` adds a start to a record still `running` without one by a
//!   `setData` at the version it read (a record rewritten meanwhile is read again).
//! - Pruning reads what it would delete and deletes it at that version; running records
//!   and records that cannot be decoded are never deleted. A record that cannot be
//!   decoded is a `Serialization` error naming its znode.
//!
//! ## Feature flags
//! None. The client is [`zookeeper_client`], without TLS or SASL.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod claim;
mod config;
pub use config::{register, ZooKeeperStoreConfig};
mod error;
mod history;
pub use history::{ZooKeeperRunHistory, MAX_RECORD_BYTES};
mod layout;
mod read;
mod record;
mod runs;
mod session;
mod waiters;
mod write;

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
    MultiWriteError, MultiWriteResult, SessionState,
};

use crate::error::{invalid, zk};
use crate::layout::{bucket_start, day_start, hour_start, parse_entry, Entry, Layout};
use crate::read::{Read, Unreadable};
use crate::record::{Header, Record};
use crate::session::Connection;
use crate::write::{Failed, Op, Step};

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
    /// (default 5 s). The store first opens a plain TCP connection to each host (a
    /// refused connection or an unknown host fails at once, with that cause), then
    /// opens its session within this time; the error names the ensemble and the
    /// cause ("cannot reach the ZooKeeper store at 127.0.0.1:2181: connection refused
    /// ..."). The same setting as [`connection_timeout`](Self::connection_timeout),
    /// under the name every store uses.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// [`connect_timeout`](Self::connect_timeout), under its earlier name.
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
        let layout = Layout::new(&self.path);
        let conn = Arc::new(Connection {
            hosts: self.hosts,
            layout: layout.clone(),
            session_timeout: self.session_timeout,
            connection_timeout: self.connection_timeout,
            session: tokio::sync::Mutex::new(None),
            listener: Mutex::new(None),
        });
        Ok(ZooKeeperJobStore {
            history: Arc::new(ZooKeeperRunHistory::new(conn.clone(), &layout)),
            layout,
            codec: StateCodec::new(self.state_format, self.max_state_bytes),
            conn,
            held: Mutex::new(HashMap::new()),
            waits: waiters::Waits::default(),
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

/// APScheduler's ZooKeeper job store (see the [crate documentation](crate)).
pub struct ZooKeeperJobStore {
    conn: Arc<Connection>,
    layout: Layout,
    codec: StateCodec,
    history: Arc<ZooKeeperRunHistory>,
    /// Per scheduler id, the jobs this store claimed for it and that were not released
    /// yet: a claim whose reply was lost can still have leased them, and the contract
    /// gives such leases back at the scheduler's next claim.
    held: Mutex<HashMap<String, HashSet<String>>>,
    /// This store's wait for a release, and what it knows of the others' waits.
    waits: waiters::Waits,
}

impl fmt::Debug for ZooKeeperJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperJobStore")
            .field("hosts", &self.conn.hosts)
            .field("path", &self.layout.root)
            .finish_non_exhaustive()
    }
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
                Err(damaged) => Some(damaged.why),
                Ok(r) => r.header.corrupt,
            };
            if let Some(error) = error {
                out.push(CorruptJob { id: read.id, error });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

#[async_trait]
impl JobStore for ZooKeeperJobStore {
    async fn start(&self, _alias: &str) -> Result<(), Error> {
        let client = self.client().await?;
        // A session opened by a call before `start` (and before the listener was set)
        // has no watch yet.
        let mut slot = self.conn.session.lock().await;
        if let Some(session) = slot.as_mut() {
            if session.watch.is_none() && session.client.session_id() == client.session_id() {
                session.watch = self.conn.start_watch(&client).await?;
            }
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.stop_waiting().await;
        // Dropping the last client closes the session.
        self.conn.session.lock().await.take();
        Ok(())
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn runs(&self) -> Option<&dyn apscheduler_core::RunStore> {
        Some(self)
    }

    fn run_history(&self) -> Option<Arc<dyn apscheduler_core::RunHistory>> {
        Some(self.history.clone())
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::persistent_shared(false);
        caps.notifications = true;
        caps.store_clock = true;
        caps
    }

    fn set_change_listener(&self, listener: ChangeListener) {
        *self.conn.listener.lock().expect("listener lock") = Some(listener);
    }

    async fn add_job(&self, job: Job, replace_existing: bool) -> Result<(), Error> {
        let record = self.encode(&job)?;
        let c = self.client().await?;
        if replace_existing {
            return self.replace_one(&c, &job.id, &record).await;
        }
        let mut ops = Vec::new();
        self.creation(&job.id, &record, &mut ops);
        ops.push(Op::Bump);
        match self.commit(&c, &ops).await {
            Ok(_) => Ok(()),
            Err(Failed::Op {
                index: 0,
                error: ZkError::NodeExists,
            }) => Err(Error::conflict(&job.id)),
            Err(f) => Err(f.into_error("add a job")),
        }
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
        if self.overwrite(&c, &job.id, &record).await? {
            Ok(())
        } else {
            Err(Error::job_not_found(&job.id))
        }
    }

    async fn remove_job(&self, id: &str) -> Result<(), Error> {
        let c = self.client().await?;
        self.read_modify_write(&c, id, "remove a job", |read| {
            let Some(read) = read else {
                return Err(Error::job_not_found(id));
            };
            let old = read.record.as_ref().ok().map(|r| &r.header);
            let mut ops = self.deletion(id, read.version, old);
            ops.push(Op::Bump);
            Ok(Step::Write(ops, ()))
        })
        .await
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
        let record = read.record.map_err(|damaged| unreadable(damaged.why))?;
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
            let job =
                read.record
                    .map_err(|damaged| damaged.why)
                    .and_then(|r| match r.header.corrupt {
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
        if let Some(first) = first.first() {
            self.wait_if_leased(&c, first).await;
        }
        Ok(first.first().map(|e| micros::to_instant(e.key)))
    }

    async fn acquire_due_jobs(
        &self,
        scheduler_id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        self.acquire(scheduler_id, now, limit, lease).await
    }

    async fn extend_leases(
        &self,
        scheduler_id: &str,
        ids: &[Arc<str>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), Error> {
        self.extend(scheduler_id, ids, now, lease).await
    }

    async fn release_jobs(
        &self,
        scheduler_id: &str,
        releases: Vec<JobRelease>,
    ) -> Result<apscheduler_core::Released, Error> {
        self.release(scheduler_id, releases).await
    }
}
