//! Finding records: the listings of job folders and of the running index, the reads
//! that queries page through newest first, and the versioned deletions of pruning.

use apscheduler_core::{log_warn, Error, RunOutcome, RunQuery, RunRecord};
use futures_util::future::join_all;
use zookeeper_client::Client;

use super::{key_of, HOp, ZooKeeperRunHistory};
use crate::layout::{self, RunningName};
use crate::write::Failed;
use crate::BURST;

/// A record's znode found by listing a job's folder.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) key: i64,
    pub(super) run: String,
    pub(super) path: String,
}

impl ZooKeeperRunHistory {
    /// The record znodes in these job folders, listed in bursts.
    pub(super) async fn candidates(
        &self,
        c: &Client,
        folders: &[String],
    ) -> Result<Vec<Candidate>, Error> {
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
    pub(super) async fn all_folders(&self, c: &Client) -> Result<Vec<String>, Error> {
        let names = Self::children(c, &self.layout.history_jobs).await?;
        Ok(names
            .into_iter()
            .map(|n| format!("{}/{n}", self.layout.history_jobs))
            .collect())
    }

    /// The running index, decoded.
    pub(super) async fn running_entries(
        &self,
        c: &Client,
    ) -> Result<Vec<(String, RunningName)>, Error> {
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
    pub(super) async fn delete_ended(
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

    pub(super) async fn query(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
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
}
