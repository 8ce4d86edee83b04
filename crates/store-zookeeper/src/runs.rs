//! [`ZooKeeperJobStore`]'s side of the run contract ([`RunSteps`], from which core
//! derives [`RunStore`](apscheduler_core::RunStore)). A job's runs are one znode,
//! `<root>/run_groups/<job>` (JSON: the job's last fence, whether the finished job
//! waits for its last live run, and every kept run). A step reads the groups and the
//! job znodes it touches with their versions and the leader's time, lets core's
//! [`RunTable`] decide, and writes everything in one `multi` checked against the
//! versions read (a job it only needs to exist, or to be held, is checked by version
//! too); a `multi` refused because something moved meanwhile is read and decided
//! again.

use apscheduler_core::{Changes, Decide, Run, RunKey, RunState, RunSteps, RunTable, StepView};
use serde::{Deserialize, Serialize};

use super::*;
use crate::layout::encode_id;

/// A job's run group, as its znode holds it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Group {
    fence: u64,
    finishing: bool,
    runs: Vec<Run>,
}

/// What a step read of one job.
struct Read1 {
    job: Option<Read>,
    group: Option<(Group, i32)>,
}

fn unreadable_group(job: &str, e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Serialization,
        format!("the runs of job '{job}' cannot be read: {e}"),
    )
}

impl ZooKeeperJobStore {
    fn group_path(&self, job: &str) -> String {
        format!("{}/{}", self.layout.run_groups, encode_id(job))
    }

    async fn read_group(&self, c: &Client, job: &str) -> Result<Option<(Group, i32)>, Error> {
        match c.get_data(&self.group_path(job)).await {
            Ok((data, stat)) => {
                let group = serde_json::from_slice(&data).map_err(|e| unreadable_group(job, e))?;
                Ok(Some((group, stat.version)))
            }
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(zk("read a job's runs", e)),
        }
    }

    /// One step over `jobs`, atomically (see the module documentation).
    async fn step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        decide: &mut Decide<'_, Record>,
    ) -> Result<(), Error> {
        let mut jobs = jobs;
        jobs.sort();
        jobs.dedup();
        if jobs.is_empty() {
            return Ok(());
        }
        let c = self.client().await?;
        for _ in 0..WRITE_TRIES {
            let now = micros::to_instant(self.server_time(&c).await?);
            let mut read = HashMap::with_capacity(jobs.len());
            for job in &jobs {
                let (j, g) =
                    futures_util::future::join(self.read(&c, job), self.read_group(&c, job)).await;
                read.insert(job.clone(), Read1 { job: j?, group: g? });
            }
            let runs: Vec<Run> = read
                .values()
                .filter_map(|r| r.group.as_ref())
                .flat_map(|(g, _)| g.runs.iter().cloned())
                .collect();
            let fences: Vec<(Arc<str>, u64, bool)> = read
                .iter()
                .map(|(job, r)| {
                    let (fence, finishing) = r
                        .group
                        .as_ref()
                        .map_or((0, false), |(g, _)| (g.fence, g.finishing));
                    (job.clone(), fence, finishing)
                })
                .collect();
            let mut table = RunTable::load(runs, fences);
            let record_of =
                |job: &Arc<str>| read[job].job.as_ref().and_then(|j| j.record.as_ref().ok());
            let view = StepView {
                part: None,
                now,
                existing: read
                    .iter()
                    .filter(|(_, r)| r.job.is_some())
                    .map(|(job, _)| job.clone())
                    .collect(),
                held: jobs
                    .iter()
                    .filter(|job| {
                        record_of(job)
                            .is_some_and(|rec| rec.header.owner.as_deref() == Some(holder))
                    })
                    .cloned()
                    .collect(),
            };
            let writes = decide(&mut table, &view);
            let mut stored: HashMap<Arc<str>, Record> = writes.store.into_iter().collect();
            for id in &writes.pause {
                let j = read[id].job.as_ref().expect("held, so read");
                stored.insert(id.clone(), self.paused_record(id, j)?);
            }
            let guarded: HashSet<&Arc<str>> = writes.held.iter().chain(&writes.existing).collect();
            let Changes {
                runs: changed,
                jobs: groups,
                removable,
            } = table.take_changes();
            let mut ops = Vec::new();
            for (job, fence, finishing) in groups {
                let r = &read[&job];
                let mut group = r.group.as_ref().map(|(g, _)| Group {
                    fence: g.fence,
                    finishing: g.finishing,
                    runs: g.runs.clone(),
                });
                let group = group.get_or_insert_with(Group::default);
                group.fence = fence;
                group.finishing = finishing;
                for run in changed.iter().filter(|run| run.key.job_id == job) {
                    match group.runs.iter_mut().find(|old| old.key == run.key) {
                        Some(old) => *old = run.clone(),
                        None => group.runs.push(run.clone()),
                    }
                }
                let data = serde_json::to_vec(&group).expect("a run group serializes");
                let path = self.group_path(&job);
                ops.push(match &r.group {
                    Some((_, version)) => Op::Set {
                        path,
                        data,
                        version: *version,
                    },
                    None => Op::Create { path, data },
                });
                if let Some(j) = r.job.as_ref() {
                    let header = j.record.as_ref().ok().map(|rec| &rec.header);
                    if removable.contains(&job) || writes.remove.contains(&job) {
                        ops.extend(self.deletion(&job, j.version, header));
                    } else if let Some(record) = stored.get(&job) {
                        let old = header.cloned().unwrap_or_default();
                        ops.extend(self.rewrite(&job, j.version, &old, record));
                    } else if guarded.contains(&job) {
                        ops.push(Op::Check {
                            path: self.layout.job(&job),
                            version: j.version,
                        });
                    }
                }
            }
            match self.commit(&c, &ops).await {
                Ok(_) => {
                    // Released: no longer this caller's to claim first.
                    let released: Vec<&str> = writes.held.iter().map(|id| &**id).collect();
                    self.unmark_held(holder, &released);
                    return Ok(());
                }
                Err(Failed::Op {
                    error: ZkError::BadVersion | ZkError::NoNode | ZkError::NodeExists,
                    ..
                }) => continue,
                Err(f) => return Err(f.into_error("write a run step")),
            }
        }
        Err(crate::write::contended(&jobs[0]))
    }

    /// A job's record with no next run time, to keep a finished job paused.
    fn paused_record(&self, job: &str, read: &Read) -> Result<Record, Error> {
        let record = read
            .record
            .as_ref()
            .map_err(|u| Error::new(ErrorKind::Serialization, format!("job '{job}': {}", u.why)))?;
        let mut decoded = self
            .decode_job(job, &record.state)
            .map_err(|why| Error::new(ErrorKind::Serialization, format!("job '{job}': {why}")))?;
        decoded.next_run_time = None;
        self.encode(&decoded)
    }
}

#[async_trait]
impl RunSteps for ZooKeeperJobStore {
    type Encoded = Record;

    fn encode_job(&self, job: &Job) -> Result<Record, Error> {
        self.encode(job)
    }

    async fn run_step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        _keys: Vec<RunKey>,
        decide: &mut Decide<'_, Record>,
    ) -> Result<(), Error> {
        self.step(holder, jobs, decide).await
    }

    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>, Error> {
        let c = self.client().await?;
        let now = micros::to_instant(self.server_time(&c).await?);
        let names = match c.list_children(&self.layout.run_groups).await {
            Ok(names) => names,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(zk("list the run groups", e)),
        };
        // The groups with a live run whose lease ended, earliest first.
        let mut expired = Vec::new();
        for name in names {
            let Some(job) = crate::layout::decode_id(&name) else {
                continue;
            };
            if let Some((group, _)) = self.read_group(&c, &job).await? {
                let end = group
                    .runs
                    .iter()
                    .filter(|r| r.state.is_live())
                    .map(|r| r.lease_until)
                    .min();
                if let Some(end) = end.filter(|end| *end <= now) {
                    expired.push((end, Arc::<str>::from(job)));
                }
            }
        }
        expired.sort();
        Ok(expired
            .into_iter()
            .take(limit)
            .map(|(_, job)| job)
            .collect())
    }

    async fn job_runs(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        let c = self.client().await?;
        let mut runs = self
            .read_group(&c, job_id)
            .await?
            .map(|(g, _)| g.runs)
            .unwrap_or_default();
        runs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(runs)
    }

    async fn prune_ended(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        let c = self.client().await?;
        let names = match c.list_children(&self.layout.run_groups).await {
            Ok(names) => names,
            Err(ZkError::NoNode) => return Ok(0),
            Err(e) => return Err(zk("list the run groups", e)),
        };
        let mut pruned = 0;
        for name in names {
            let Some(job) = crate::layout::decode_id(&name) else {
                continue;
            };
            let old = |r: &Run| match r.state {
                RunState::Ended { at, .. } | RunState::Interrupted { at } => at < before,
                _ => false,
            };
            for _ in 0..WRITE_TRIES {
                let Some((mut group, version)) = self.read_group(&c, &job).await? else {
                    break;
                };
                let count = group.runs.iter().filter(|r| old(r)).count();
                if count == 0 {
                    break;
                }
                group.runs.retain(|r| !old(r));
                let data = serde_json::to_vec(&group).expect("a run group serializes");
                match c
                    .set_data(&self.group_path(&job), &data, Some(version))
                    .await
                {
                    Ok(_) => {
                        pruned += count;
                        break;
                    }
                    Err(ZkError::BadVersion | ZkError::NoNode) => continue,
                    Err(e) => return Err(zk("prune a job's runs", e)),
                }
            }
        }
        Ok(pruned)
    }
}
