//! [`ZooKeeperRunHistory`]: run records and node heartbeats beside the jobs, on the
//! store's session and under its root path (layout in the
//! [crate documentation](crate#run-history) and in `layout.rs`).
//!
//! Every change to a record is one `multi` request that writes, together, the record,
//! its run id's pointer (checked against the pointer's version read before it) and its
//! entry in the running index, so the three always agree.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use apscheduler_core::{
    async_trait, log_warn, Error, ErrorKind, NodeRegistry, RunElsewhere, RunHistory, RunQuery,
    RunRecord,
};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use zookeeper_client::{Client, Error as ZkError, MultiWriteError};

use crate::error::zk;
use crate::layout::{self, Layout};
use crate::session::Connection;
use crate::write::Failed;
use crate::{BURST, CONTAINER, PERSISTENT};
use query::Candidate;

mod nodes;
mod query;
mod records;
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

    /// Lists a folder's children; a missing folder has none.
    async fn children(c: &Client, path: &str) -> Result<Vec<String>, Error> {
        match c.list_children(path).await {
            Ok(names) => Ok(names),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk("list run records", e)),
        }
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
