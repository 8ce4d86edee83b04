//! [`ZooKeeperRunHistory`]: run records and node heartbeats beside the jobs, on the
//! store's session and under its root path (layout in the
//! [crate documentation](crate#run-history) and in `layout.rs`).
//!
//! Every change to a record is one `multi` request that writes, together, the record,
//! its run id's pointer (checked against the pointer's version read before it) and its
//! entry in the running index, so the three always agree.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use apscheduler_core::{
    async_trait, log_warn, Error, ErrorKind, NodeInfo, NodeRegistry, RunElsewhere, RunHistory,
    RunOutcome, RunQuery, RunRecord,
};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use zookeeper_client::{Client, Error as ZkError, MultiWriteError};

use crate::error::zk;
use crate::layout::{self, Layout, RunningName};
use crate::session::Connection;
use crate::write::Failed;
use crate::{BURST, CONTAINER, MULTI_BYTES, PERSISTENT, WRITE_TRIES};

mod starts;

/// The largest record stored: a znode holds at most about 1 MB, so a record over this
/// keeps only the tail of its output that fits (as `RunRecord::output_tail` cuts).
pub const MAX_RECORD_BYTES: usize = 900 << 10;

/// Where a run id's record is, and its running index entry while it is `running`:
/// the data of `<root>/history/ids/<run>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pointer {
    /// The record's znode, relative to `<root>/history/jobs`.
    record: String,
    /// The name of its entry under `<root>/history/running`, if it is running.
    running: Option<String>,
}

/// One write of a history `multi`.
enum HOp {
    Create {
        path: String,
        data: Vec<u8>,
    },
    Set {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
}

impl HOp {
    fn bytes(&self) -> usize {
        let size = match self {
            HOp::Create { path, data } | HOp::Set { path, data, .. } => path.len() + data.len(),
            HOp::Delete { path, .. } => path.len(),
        };
        size + 32
    }
}

/// The run history of a [`ZooKeeperJobStore`](crate::ZooKeeperJobStore), from its
/// [`run_history`](apscheduler_core::JobStore::run_history): one znode per run under
/// the store's root path, on the store's session (see the
/// [crate documentation](crate#run-history) for the layout and the costs). It also
/// keeps the [`NodeRegistry`] of the schedulers sharing the store.
///
/// ```no_run
/// use apscheduler_core::{JobStore, RunQuery};
/// use apscheduler_store_zookeeper::ZooKeeperJobStore;
///
/// # async fn demo() -> Result<(), apscheduler_core::Error> {
/// let store = ZooKeeperJobStore::new("127.0.0.1:2181", "/myapp/scheduler")?;
/// let history = store.run_history().expect("the ZooKeeper store keeps history");
/// history.prepare().await?;
/// for run in history.query_runs(&RunQuery { limit: 10, ..RunQuery::default() }).await? {
///     println!("{} {} {}", run.scheduled_at, run.job_id, run.outcome);
/// }
/// # Ok(())
/// # }
/// ```
pub struct ZooKeeperRunHistory {
    conn: Arc<Connection>,
    layout: Layout,
}

impl fmt::Debug for ZooKeeperRunHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperRunHistory")
            .field("hosts", &self.conn.hosts)
            .field("path", &self.layout.root)
            .finish_non_exhaustive()
    }
}

/// A record's znode found by listing a job's folder.
#[derive(Debug, Clone)]
struct Candidate {
    key: i64,
    run: String,
    path: String,
}

fn serialization(what: &str, path: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Serialization,
        format!("ZooKeeper {what} {path} cannot be read: {why}"),
    )
}

/// The record's JSON, its output cut to its tail when the whole would not fit a znode.
fn encode_record(record: &RunRecord) -> Result<Vec<u8>, Error> {
    let encode = |r: &RunRecord| {
        serde_json::to_vec(r).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("run record '{}' cannot be encoded: {e}", r.run_id),
            )
        })
    };
    let mut data = encode(record)?;
    if data.len() <= MAX_RECORD_BYTES {
        return Ok(data);
    }
    let mut cut = record.clone();
    while data.len() > MAX_RECORD_BYTES {
        if cut.output.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "run record '{}' is over {MAX_RECORD_BYTES} bytes even without its output",
                    record.run_id
                ),
            ));
        }
        let cap = cut
            .output
            .len()
            .saturating_sub(data.len() - MAX_RECORD_BYTES);
        cut.output = RunRecord::output_tail(cut.output.as_bytes(), cap);
        data = encode(&cut)?;
    }
    Ok(data)
}

/// `Unavailable`: other writers kept changing `what` (the caller retries later).
fn contended(what: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("{what} kept changing under concurrent writers; try again"),
    )
}

fn decode_record(path: &str, data: &[u8]) -> Result<RunRecord, Error> {
    serde_json::from_slice(data).map_err(|e| serialization("run record", path, e))
}

/// The microsecond key of an instant (rounded down).
fn key_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl ZooKeeperRunHistory {
    pub(crate) fn new(conn: Arc<Connection>, layout: &Layout) -> Self {
        ZooKeeperRunHistory {
            conn,
            layout: layout.clone(),
        }
    }

    /// The root path the history lives under (the store's).
    pub fn path(&self) -> &str {
        &self.layout.root
    }

    async fn client(&self) -> Result<Client, Error> {
        self.conn.client().await
    }

    /// Creates the persistent folders of the history and the node registry.
    async fn make_folders(&self, c: &Client) -> Result<(), Error> {
        for path in [
            &self.layout.history_jobs,
            &self.layout.history_ids,
            &self.layout.history_running,
            &self.layout.nodes,
        ] {
            c.mkdir(path, &PERSISTENT)
                .await
                .map_err(|e| zk("create the history's folders", e))?;
        }
        Ok(())
    }

    /// Creates the job folders these records go into (and the persistent folders, if
    /// they were removed).
    async fn make_job_folders(&self, c: &Client, folders: &HashSet<String>) -> Result<(), Error> {
        let mut made_base = false;
        for folder in folders {
            loop {
                match c.create(folder, b"", &CONTAINER).await {
                    Ok(_) | Err(ZkError::NodeExists) => break,
                    Err(ZkError::NoNode) if !made_base => {
                        self.make_folders(c).await?;
                        made_base = true;
                    }
                    Err(e) => return Err(zk("create a job's history folder", e)),
                }
            }
        }
        if !made_base {
            // The ids and running folders may be missing too (a pointer or an entry
            // create failed): cheap to make sure.
            self.make_folders(c).await?;
        }
        Ok(())
    }

    async fn commit(c: &Client, ops: &[HOp]) -> Result<(), Failed> {
        let mut w = c.new_multi_writer();
        for op in ops {
            let added = match op {
                HOp::Create { path, data } => w.add_create(path, data, &PERSISTENT),
                HOp::Set {
                    path,
                    data,
                    version,
                } => w.add_set_data(path, data, *version),
                HOp::Delete { path, version } => w.add_delete(path, *version),
            };
            added.map_err(|e| Failed::Call(zk("prepare a history write", e)))?;
        }
        match w.commit().await {
            Ok(_) => Ok(()),
            Err(MultiWriteError::RequestFailed { source }) => {
                Err(Failed::Call(zk("write run records", source)))
            }
            Err(MultiWriteError::OperationFailed { index, source }) => Err(Failed::Op {
                index,
                error: source,
            }),
        }
    }

    /// A run id's pointer and its version; `None` when the run has no record.
    async fn read_pointer(&self, c: &Client, run: &str) -> Result<Option<(Pointer, i32)>, Error> {
        let path = self.layout.run_pointer(run);
        match c.get_data(&path).await {
            Ok((data, stat)) => {
                let pointer = serde_json::from_slice(&data)
                    .map_err(|e| serialization("run pointer", &path, e))?;
                Ok(Some((pointer, stat.version)))
            }
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(zk("read a run pointer", e)),
        }
    }

    /// The writes that store `record` (encoded as `data`) over what `old` says is there.
    fn record_ops(
        &self,
        record: &RunRecord,
        data: Vec<u8>,
        old: Option<(Pointer, i32)>,
    ) -> Result<Vec<HOp>, Error> {
        let key = key_of(record.scheduled_at);
        let running = (record.outcome == RunOutcome::Running)
            .then(|| layout::running_name(&record.node, &record.job_id, key, &record.run_id));
        let pointer = Pointer {
            record: Layout::run_relative(&record.job_id, key, &record.run_id),
            running: running.clone(),
        };
        let pointer_data = serde_json::to_vec(&pointer)
            .map_err(|e| Error::new(ErrorKind::Serialization, format!("run pointer: {e}")))?;
        let pointer_path = self.layout.run_pointer(&record.run_id);
        let path = self.layout.run(&record.job_id, key, &record.run_id);
        let mut ops = Vec::new();
        let old_running = match old {
            None => {
                ops.push(HOp::Create {
                    path: pointer_path,
                    data: pointer_data,
                });
                ops.push(HOp::Create { path, data });
                None
            }
            Some((old, version)) => {
                ops.push(HOp::Set {
                    path: pointer_path,
                    data: pointer_data,
                    version: Some(version),
                });
                if old.record == pointer.record {
                    ops.push(HOp::Set {
                        path,
                        data,
                        version: None,
                    });
                } else {
                    ops.push(HOp::Delete {
                        path: format!("{}/{}", self.layout.history_jobs, old.record),
                        version: None,
                    });
                    ops.push(HOp::Create { path, data });
                }
                old.running
            }
        };
        if old_running != running {
            if let Some(name) = old_running {
                ops.push(HOp::Delete {
                    path: self.layout.running(&name),
                    version: None,
                });
            }
            if let Some(name) = running {
                ops.push(HOp::Create {
                    path: self.layout.running(&name),
                    data: Vec::new(),
                });
            }
        }
        Ok(ops)
    }

    /// Lists a folder's children; a missing folder has none.
    async fn children(c: &Client, path: &str) -> Result<Vec<String>, Error> {
        match c.list_children(path).await {
            Ok(names) => Ok(names),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk("list run records", e)),
        }
    }

    /// The record znodes in these job folders, listed in bursts.
    async fn candidates(&self, c: &Client, folders: &[String]) -> Result<Vec<Candidate>, Error> {
        let mut out = Vec::new();
        for chunk in folders.chunks(BURST) {
            let listed = join_all(chunk.iter().map(|f| Self::children(c, f))).await;
            for (folder, names) in chunk.iter().zip(listed) {
                for name in names? {
                    match layout::parse_run_name(&name) {
                        Some(n) => out.push(Candidate {
                            key: n.key,
                            run: n.run,
                            path: format!("{folder}/{name}"),
                        }),
                        None => log_warn!(
                            "ZooKeeper run history: ignoring the znode {folder}/{name} (not a run record)"
                        ),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every job folder.
    async fn all_folders(&self, c: &Client) -> Result<Vec<String>, Error> {
        let names = Self::children(c, &self.layout.history_jobs).await?;
        Ok(names
            .into_iter()
            .map(|n| format!("{}/{n}", self.layout.history_jobs))
            .collect())
    }

    /// Reads these records (missing ones, pruned meanwhile, left out) with their
    /// versions, in bursts.
    async fn read_records(
        c: &Client,
        paths: &[&str],
    ) -> Result<Vec<Option<(Result<RunRecord, Error>, i32)>>, Error> {
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(BURST) {
            for (path, read) in chunk
                .iter()
                .zip(join_all(chunk.iter().map(|p| c.get_data(p))).await)
            {
                out.push(match read {
                    Ok((data, stat)) => Some((decode_record(path, &data), stat.version)),
                    Err(ZkError::NoNode) => None,
                    Err(e) => return Err(zk("read run records", e)),
                });
            }
        }
        Ok(out)
    }

    /// The running index, decoded.
    async fn running_entries(&self, c: &Client) -> Result<Vec<(String, RunningName)>, Error> {
        let names = Self::children(c, &self.layout.history_running).await?;
        Ok(names
            .into_iter()
            .filter_map(|name| {
                let parsed = layout::parse_running_name(&name);
                if parsed.is_none() {
                    log_warn!(
                        "ZooKeeper run history: ignoring the running entry {name:?} (not one)"
                    );
                }
                parsed.map(|p| (name, p))
            })
            .collect())
    }

    /// Deletes the ended records among `candidates` that `keep_out` does not spare,
    /// each checked against the version read (a record rewritten meanwhile stays);
    /// returns how many went. Unreadable records are never deleted.
    async fn delete_ended(
        &self,
        c: &Client,
        candidates: &[Candidate],
        spare: impl Fn(&RunRecord) -> bool,
    ) -> Result<u64, Error> {
        let mut removed = 0;
        for chunk in candidates.chunks(BURST) {
            let paths: Vec<&str> = chunk.iter().map(|c| c.path.as_str()).collect();
            let reads = Self::read_records(c, &paths).await?;
            let mut deletions = Vec::new();
            for (cand, read) in chunk.iter().zip(reads) {
                let Some((record, version)) = read else {
                    continue;
                };
                match record {
                    Err(e) => log_warn!("ZooKeeper run history: not pruning: {e}"),
                    Ok(r) if r.outcome == RunOutcome::Running || spare(&r) => {}
                    Ok(_) => deletions.push(vec![
                        HOp::Delete {
                            path: cand.path.clone(),
                            version: Some(version),
                        },
                        HOp::Delete {
                            path: self.layout.run_pointer(&cand.run),
                            version: None,
                        },
                    ]),
                }
            }
            for done in join_all(deletions.iter().map(|ops| Self::commit(c, ops))).await {
                match done {
                    Ok(()) => removed += 1,
                    // Rewritten or removed meanwhile.
                    Err(Failed::Op { .. }) => {}
                    Err(Failed::Call(e)) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    async fn query(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let folders = match &query.job_id {
            Some(job) => vec![self.layout.run_folder(job)],
            None => self.all_folders(&c).await?,
        };
        let (since, until) = (query.since.map(key_of), query.until.map(key_of));
        let mut candidates: Vec<Candidate> = self
            .candidates(&c, &folders)
            .await?
            .into_iter()
            // A superset of the time window (keys are rounded down); `matches` decides.
            .filter(|cand| {
                since.is_none_or(|s| cand.key >= s) && until.is_none_or(|u| cand.key <= u)
            })
            .collect();
        candidates.sort_unstable_by(|a, b| (b.key, &b.run).cmp(&(a.key, &a.run)));
        let filtered = query.outcome.is_some() || query.node.is_some();
        let mut found = Vec::new();
        let mut next = 0;
        while next < candidates.len() && found.len() < query.limit {
            let want = if filtered {
                BURST
            } else {
                (query.limit - found.len()).clamp(1, BURST)
            };
            let page = &candidates[next..(next + want).min(candidates.len())];
            next += page.len();
            let paths: Vec<&str> = page.iter().map(|c| c.path.as_str()).collect();
            for read in Self::read_records(&c, &paths).await?.into_iter().flatten() {
                let record = read.0?;
                if query.matches(&record) && found.len() < query.limit {
                    found.push(record);
                }
            }
        }
        found.sort_by(|a, b| (b.scheduled_at, &b.run_id).cmp(&(a.scheduled_at, &a.run_id)));
        Ok(found)
    }

    async fn record(&self, records: &[RunRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        // A run id named twice: its last record counts.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            last.insert(&r.run_id, i);
        }
        let mut encoded: Vec<(&RunRecord, Vec<u8>)> = Vec::with_capacity(last.len());
        for (i, r) in records.iter().enumerate() {
            if last[r.run_id.as_str()] == i {
                encoded.push((r, encode_record(r)?));
            }
        }
        let c = self.client().await?;
        let mut pending: Vec<usize> = (0..encoded.len()).collect();
        for _ in 0..WRITE_TRIES {
            // Where each record is now (one burst of reads), then its writes.
            let mut planned: Vec<(usize, Vec<HOp>)> = Vec::with_capacity(pending.len());
            for chunk in pending.chunks(BURST) {
                let pointers = join_all(
                    chunk
                        .iter()
                        .map(|&i| self.read_pointer(&c, &encoded[i].0.run_id)),
                )
                .await;
                for (&i, old) in chunk.iter().zip(pointers) {
                    let (record, data) = &encoded[i];
                    planned.push((i, self.record_ops(record, data.clone(), old?)?));
                }
            }
            // As few multis as the size limit allows.
            let mut chunks: Vec<(Vec<usize>, Vec<HOp>)> = vec![(Vec::new(), Vec::new())];
            let mut bytes = 0;
            for (i, ops) in planned {
                let size: usize = ops.iter().map(HOp::bytes).sum();
                let last = chunks.last_mut().expect("a chunk");
                if bytes + size > MULTI_BYTES && !last.0.is_empty() {
                    chunks.push((Vec::new(), Vec::new()));
                    bytes = 0;
                }
                bytes += size;
                let last = chunks.last_mut().expect("a chunk");
                last.0.push(i);
                last.1.extend(ops);
            }
            let done = join_all(chunks.iter().map(|(_, ops)| Self::commit(&c, ops))).await;
            let mut again = Vec::new();
            let mut folders = HashSet::new();
            for ((indexes, ops), result) in chunks.iter().zip(done) {
                match result {
                    Ok(()) => {}
                    Err(Failed::Call(e)) => return Err(e),
                    Err(Failed::Op { index, error }) => {
                        if let (ZkError::NoNode, Some(HOp::Create { .. })) =
                            (&error, ops.get(index))
                        {
                            for &i in indexes {
                                folders.insert(self.layout.run_folder(&encoded[i].0.job_id));
                            }
                        }
                        // Changed meanwhile (BadVersion, NodeExists) or a folder was
                        // missing: read again and write again.
                        again.extend_from_slice(indexes);
                    }
                }
            }
            if again.is_empty() {
                return Ok(());
            }
            if !folders.is_empty() {
                self.make_job_folders(&c, &folders).await?;
            }
            pending = again;
        }
        Err(contended(&format!(
            "run record '{}'",
            encoded[pending[0]].0.run_id
        )))
    }

    async fn interrupt(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        let c = self.client().await?;
        let mut changed = Vec::new();
        // Entries that cannot be interrupted here (their record is missing or no longer
        // running): not tried again in this call.
        let mut skipped: HashSet<String> = HashSet::new();
        for _ in 0..WRITE_TRIES {
            let mine: Vec<(String, RunningName)> = self
                .running_entries(&c)
                .await?
                .into_iter()
                .filter(|(name, e)| e.node == node && !skipped.contains(name))
                .collect();
            if mine.is_empty() {
                return Ok(changed);
            }
            let paths: Vec<String> = mine
                .iter()
                .map(|(_, e)| self.layout.run(&e.job, e.key, &e.run))
                .collect();
            let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let reads = Self::read_records(&c, &path_refs).await?;
            let mut writes = Vec::new();
            for (((name, entry), path), read) in mine.iter().zip(&paths).zip(reads) {
                let Some((record, version)) = read else {
                    skipped.insert(name.clone());
                    continue;
                };
                let mut record = record?;
                if record.outcome != RunOutcome::Running {
                    skipped.insert(name.clone());
                    continue;
                }
                record.outcome = RunOutcome::Interrupted;
                record.finished_at = Some(now);
                record.message = Some(message.to_owned());
                let pointer = Pointer {
                    record: Layout::run_relative(&entry.job, entry.key, &entry.run),
                    running: None,
                };
                let ops = vec![
                    // Only one caller's write of the version read succeeds: the record
                    // is handed to that caller alone.
                    HOp::Set {
                        path: path.clone(),
                        data: encode_record(&record)?,
                        version: Some(version),
                    },
                    HOp::Set {
                        path: self.layout.run_pointer(&entry.run),
                        data: serde_json::to_vec(&pointer).map_err(|e| {
                            Error::new(ErrorKind::Serialization, format!("run pointer: {e}"))
                        })?,
                        version: None,
                    },
                    HOp::Delete {
                        path: self.layout.running(name),
                        version: None,
                    },
                ];
                writes.push((name, record, ops));
            }
            let results = join_all(writes.iter().map(|(_, _, ops)| Self::commit(&c, ops))).await;
            let mut retry = false;
            for ((name, record, _), result) in writes.into_iter().zip(results) {
                match result {
                    Ok(()) => changed.push(record),
                    // Rewritten meanwhile: look again (another caller's interrupt
                    // removes the entry; a rewrite that keeps it running does not).
                    Err(Failed::Op {
                        error: ZkError::BadVersion,
                        ..
                    }) => retry = true,
                    Err(Failed::Op { .. }) => {
                        skipped.insert(name.clone());
                    }
                    Err(Failed::Call(e)) => {
                        if changed.is_empty() {
                            return Err(e);
                        }
                        // These are interrupted already: hand them over; the rest
                        // stay running for the next call.
                        log_warn!("ZooKeeper run history: interrupting runs of {node}: {e}");
                        return Ok(changed);
                    }
                }
            }
            if !retry && changed.is_empty() {
                return Ok(changed);
            }
        }
        Ok(changed)
    }
}

#[async_trait]
impl NodeRegistry for ZooKeeperRunHistory {
    async fn heartbeat(&self, node: &NodeInfo) -> Result<(), Error> {
        let data = serde_json::to_vec(node).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("node entry '{}': {e}", node.node),
            )
        })?;
        let path = self.layout.node(&node.node);
        let c = self.client().await?;
        for _ in 0..WRITE_TRIES {
            match c.set_data(&path, &data, None).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(zk("write a heartbeat", e)),
            }
            match c.create(&path, &data, &PERSISTENT).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NodeExists) => {}
                Err(ZkError::NoNode) => self.make_folders(&c).await?,
                Err(e) => return Err(zk("write a heartbeat", e)),
            }
        }
        Err(contended(&format!("node entry '{}'", node.node)))
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let c = self.client().await?;
        let names = Self::children(&c, &self.layout.nodes).await?;
        let paths: Vec<String> = names
            .iter()
            .map(|n| format!("{}/{n}", self.layout.nodes))
            .collect();
        let mut nodes = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(BURST) {
            for (path, read) in chunk
                .iter()
                .zip(join_all(chunk.iter().map(|p| c.get_data(p))).await)
            {
                match read {
                    Ok((data, _)) => nodes.push(
                        serde_json::from_slice::<NodeInfo>(&data)
                            .map_err(|e| serialization("node entry", path, e))?,
                    ),
                    Err(ZkError::NoNode) => {}
                    Err(e) => return Err(zk("read node entries", e)),
                }
            }
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn remove_node(&self, node: &str) -> Result<bool, Error> {
        let c = self.client().await?;
        match c.delete(&self.layout.node(node), None).await {
            Ok(()) => Ok(true),
            Err(ZkError::NoNode) => Ok(false),
            Err(e) => Err(zk("remove a node entry", e)),
        }
    }
}

#[async_trait]
impl RunHistory for ZooKeeperRunHistory {
    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        Some(self)
    }

    async fn prepare(&self) -> Result<(), Error> {
        let c = self.client().await?;
        self.make_folders(&c).await
    }

    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        self.record(records).await
    }

    /// Per record: its pointer and record read, then a `setData` of the version read
    /// that adds the start to a record still `running` without one (or, with no
    /// record, one `multi` creating it whole); a record rewritten meanwhile is read
    /// again.
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        self.start(records).await
    }

    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        self.query(query).await
    }

    async fn latest_runs(&self, job_ids: &[String]) -> Result<Vec<RunRecord>, Error> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let mut seen = HashSet::new();
        let jobs: Vec<&String> = job_ids.iter().filter(|j| seen.insert(*j)).collect();
        let mut latest = Vec::new();
        for chunk in jobs.chunks(BURST) {
            let folders: Vec<String> = chunk.iter().map(|j| self.layout.run_folder(j)).collect();
            let listed = join_all(folders.iter().map(|f| Self::children(&c, f))).await;
            let mut newest: Vec<(&String, Option<String>)> = Vec::new();
            for ((job, folder), names) in chunk.iter().zip(&folders).zip(listed) {
                let best = names?
                    .into_iter()
                    .filter_map(|n| layout::parse_run_name(&n).map(|p| (p.key, p.run, n)))
                    .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                newest.push((job, best.map(|(_, _, n)| format!("{folder}/{n}"))));
            }
            let paths: Vec<&str> = newest.iter().filter_map(|(_, p)| p.as_deref()).collect();
            let mut reads = Self::read_records(&c, &paths).await?.into_iter();
            for (job, path) in &newest {
                if path.is_none() {
                    continue;
                }
                match reads.next().flatten() {
                    Some((record, _)) => latest.push(record?),
                    None => {
                        // Pruned or moved since the listing: ask again.
                        let query = RunQuery {
                            job_id: Some((*job).clone()),
                            limit: 1,
                            ..RunQuery::default()
                        };
                        latest.extend(self.query(&query).await?);
                    }
                }
            }
        }
        Ok(latest)
    }

    async fn running_elsewhere(&self, node: &str) -> Result<Vec<RunElsewhere>, Error> {
        let c = self.client().await?;
        let mut out = Vec::new();
        for (_, e) in self.running_entries(&c).await? {
            if e.node == node {
                continue;
            }
            let Some(scheduled_at) = DateTime::<Utc>::from_timestamp_micros(e.key) else {
                log_warn!(
                    "ZooKeeper run history: running entry of run '{}' has an impossible time",
                    e.run
                );
                continue;
            };
            out.push(RunElsewhere {
                job_id: e.job,
                run_id: e.run,
                scheduled_at,
                node: e.node,
            });
        }
        Ok(out)
    }

    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        let c = self.client().await?;
        let mut entries = self
            .candidates(&c, &[self.layout.run_folder(job_id)])
            .await?;
        if entries.len() <= keep {
            return Ok(0);
        }
        let running: HashSet<String> = self
            .running_entries(&c)
            .await?
            .into_iter()
            .filter(|(_, e)| e.job == job_id)
            .map(|(_, e)| e.run)
            .collect();
        entries.retain(|e| !running.contains(&e.run));
        entries.sort_unstable_by(|a, b| (b.key, &b.run).cmp(&(a.key, &a.run)));
        if entries.len() <= keep {
            return Ok(0);
        }
        self.delete_ended(&c, &entries[keep..], |_| false).await
    }

    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let c = self.client().await?;
        let cut = key_of(before);
        let folders = self.all_folders(&c).await?;
        let old: Vec<Candidate> = self
            .candidates(&c, &folders)
            .await?
            .into_iter()
            .filter(|cand| cand.key <= cut)
            .collect();
        self.delete_ended(&c, &old, |r| r.scheduled_at >= before)
            .await
    }

    async fn interrupt_running(
        &self,
        node: &str,
        now: DateTime<Utc>,
        message: &str,
    ) -> Result<Vec<RunRecord>, Error> {
        self.interrupt(node, now, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_records_keep_the_tail_of_their_output() {
        let at = DateTime::<Utc>::from_timestamp_micros(1).unwrap();
        let mut r = RunRecord::pending("r", "j", at, "n");
        r.output = "a".repeat(MAX_RECORD_BYTES) + &"\0".repeat(1000) + "end";
        let data = encode_record(&r).unwrap();
        assert!(data.len() <= MAX_RECORD_BYTES, "{}", data.len());
        let back: RunRecord = serde_json::from_slice(&data).unwrap();
        assert!(back.output.ends_with("\0end"));
        r.output = "small".into();
        assert_eq!(encode_record(&r).unwrap(), serde_json::to_vec(&r).unwrap());
    }
}
