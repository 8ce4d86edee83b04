//! Reads: one job, many jobs in bursts, and the index in key order.

use super::*;

/// A job znode as read: its record (or why its header cannot be read) and version.
pub(crate) struct Read {
    pub(crate) id: String,
    pub(crate) record: Result<Record, Unreadable>,
    pub(crate) version: i32,
}

/// A job znode whose header cannot be read: why, and its bytes (kept when it is set
/// aside).
pub(crate) struct Unreadable {
    pub(crate) why: String,
    pub(crate) raw: Vec<u8>,
}

impl ZooKeeperJobStore {
    pub(crate) async fn read(&self, c: &Client, id: &str) -> Result<Option<Read>, Error> {
        match c.get_data(&self.layout.job(id)).await {
            Ok((data, stat)) => Ok(Some(Read {
                id: id.to_owned(),
                record: match Record::decode(&data) {
                    Ok(record) => Ok(record),
                    Err(why) => Err(Unreadable { why, raw: data }),
                },
                version: stat.version,
            })),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(zk("read a job", e)),
        }
    }

    /// Reads these jobs (missing ones left out), in bursts.
    pub(crate) async fn read_many(&self, c: &Client, ids: &[String]) -> Result<Vec<Read>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BURST) {
            for read in join_all(chunk.iter().map(|id| self.read(c, id))).await {
                out.extend(read?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn read_all(&self, c: &Client) -> Result<Vec<Read>, Error> {
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

    /// Deletes index folders found empty, so later lookups need not list them again
    /// (the server would remove them too, but only about a minute later). A folder that
    /// gained an entry meanwhile is not deleted (`NotEmpty`); a writer whose folder
    /// went away creates it again.
    pub(crate) async fn prune(&self, c: &Client, paths: &[&str]) {
        if paths.is_empty() {
            return;
        }
        let _ = join_all(paths.iter().map(|p| c.delete(p, None))).await;
    }

    pub(crate) async fn list(&self, c: &Client, path: &str) -> Result<Vec<String>, Error> {
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
    pub(crate) async fn scan(
        &self,
        c: &Client,
        upto: Option<i64>,
        max: usize,
    ) -> Result<Vec<Entry>, Error> {
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
            for hour in self.list(c, &day_path).await? {
                let Some(start) = hour_start(&hour) else {
                    continue;
                };
                if past(start) {
                    return Ok(out);
                }
                let hour_path = format!("{day_path}/{hour}");
                let buckets = self.list(c, &hour_path).await?;
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
                    let paths: Vec<String> =
                        shards.iter().map(|s| format!("{hour_path}/{s}")).collect();
                    let mut entries = Vec::new();
                    let mut empty = Vec::new();
                    let listed = join_all(paths.iter().map(|p| self.list(c, p))).await;
                    for (path, listed) in paths.iter().zip(listed) {
                        let names = listed?;
                        if names.is_empty() {
                            empty.push(path.as_str());
                        }
                        entries.extend(names.iter().filter_map(|n| parse_entry(n)));
                    }
                    self.prune(c, &empty).await;
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
        }
        Ok(out)
    }

    pub(crate) fn decode_job(&self, id: &str, state: &[u8]) -> Result<Job, String> {
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
}
