//! [`ZooKeeperJobStore`]'s [`RunStore`] implementation. A job's runs are one znode,
//! `<root>/run_groups/<job>` (JSON: the job's last fence, whether the finished job
//! waits for its last live run, and every kept run). A step reads the groups and the
//! job znodes it touches with their versions and the leader's time, lets core's
//! [`RunTable`] decide, and writes everything in one `multi` checked against the
//! versions read (a job it only needs to exist, or to be held, is checked by version
//! too); a `multi` refused because something moved meanwhile is read and decided
//! again.

use apscheduler_core::{
    Changes, EndReply, Held, JobFate, NewRun, ReleaseBatch, ReleasedRuns, Renewed, Run, RunEnd,
    RunKey, RunState, RunStore, RunTable, StartReply, Swept,
};
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

/// What a step's decision sees: the leader's time and the jobs as read.
struct View<'a> {
    now: DateTime<Utc>,
    read: &'a HashMap<Arc<str>, Read1>,
}

impl View<'_> {
    fn exists(&self, job: &str) -> bool {
        self.read.get(job).is_some_and(|r| r.job.is_some())
    }

    fn held_by(&self, job: &str, holder: &str) -> bool {
        self.read
            .get(job)
            .and_then(|r| r.job.as_ref())
            .and_then(|j| j.record.as_ref().ok())
            .is_some_and(|rec| rec.header.owner.as_deref() == Some(holder))
    }
}

/// What becomes of a job's znode in a step.
enum JobOp {
    Store(Record),
    Remove,
}

/// What a step writes for its jobs besides their runs; the jobs it needs unchanged.
#[derive(Default)]
struct Writes {
    ops: HashMap<Arc<str>, JobOp>,
    unchanged: HashSet<Arc<str>>,
}

type Decide<'f> = dyn FnMut(&mut RunTable, &View<'_>) -> Result<Writes, Error> + Send + 'f;

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
    async fn run_step(&self, jobs: Vec<Arc<str>>, decide: &mut Decide<'_>) -> Result<(), Error> {
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
            let view = View { now, read: &read };
            let writes = decide(&mut table, &view)?;
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
                let op = if removable.contains(&job) {
                    Some(&JobOp::Remove)
                } else {
                    writes.ops.get(&job)
                };
                let read_job = r.job.as_ref();
                match (op, read_job) {
                    (Some(op), Some(j)) => {
                        let header = j.record.as_ref().ok().map(|rec| &rec.header);
                        ops.extend(match op {
                            JobOp::Store(record) => self.rewrite(
                                &job,
                                j.version,
                                header.unwrap_or(&Header::default()),
                                record,
                            ),
                            JobOp::Remove => self.deletion(&job, j.version, header),
                        });
                    }
                    (None, Some(j)) if writes.unchanged.contains(&job) => ops.push(Op::Check {
                        path: self.layout.job(&job),
                        version: j.version,
                    }),
                    _ => {}
                }
            }
            match self.commit(&c, &ops).await {
                Ok(_) => return Ok(()),
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

fn jobs_of(runs: &[Held]) -> Vec<Arc<str>> {
    runs.iter()
        .filter_map(|h| RunKey::from_id(&h.id))
        .map(|k| k.job_id)
        .collect()
}

#[async_trait]
impl RunStore for ZooKeeperJobStore {
    async fn release_with_runs(
        &self,
        holder: &str,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<ReleasedRuns, Error> {
        let ReleaseBatch {
            jobs: asked,
            refused,
        } = ReleaseBatch::new(releases, |job| self.encode(job));
        let holder_id: Arc<str> = holder.into();
        let (mut lost, mut made) = (Vec::new(), Vec::new());
        let jobs: Vec<Arc<str>> = asked.iter().map(|(id, ..)| id.clone()).collect();
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            lost.clear();
            made.clear();
            let mut writes = Writes::default();
            for (id, record, runs) in &asked {
                if !view.held_by(id, holder) {
                    lost.push(id.clone());
                    continue;
                }
                let (runs, fate) =
                    table.release_job(&holder_id, id, record.is_none(), runs, view.now, lease);
                made.extend(runs);
                let op = match (fate, record) {
                    (JobFate::Update, Some(record)) => JobOp::Store(record.clone()),
                    (JobFate::Pause, _) => {
                        let read = view.read[id].job.as_ref().expect("held, so read");
                        JobOp::Store(self.paused_record(id, read)?)
                    }
                    (JobFate::Remove | JobFate::Update, _) => JobOp::Remove,
                };
                writes.ops.insert(id.clone(), op);
            }
            Ok(writes)
        };
        self.run_step(jobs.clone(), &mut decide).await?;
        let ids: Vec<&str> = jobs.iter().map(|id| &**id).collect();
        self.unmark_held(holder, &ids);
        Ok(ReleasedRuns {
            jobs: apscheduler_core::Released::new(lost, refused),
            runs: made,
        })
    }

    async fn insert_runs(
        &self,
        holder: &str,
        runs: Vec<NewRun>,
        lease: Duration,
    ) -> Result<Vec<Run>, Error> {
        let holder_id: Arc<str> = holder.into();
        let jobs = runs.iter().map(|r| r.key.job_id.clone()).collect();
        let mut made = Vec::new();
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            made.clear();
            let mut writes = Writes::default();
            for new in &runs {
                let job = &new.key.job_id;
                if view.exists(job) && !table.is_finishing(job) {
                    made.extend(table.insert(&holder_id, new.clone(), view.now, lease));
                    writes.unchanged.insert(job.clone());
                }
            }
            Ok(writes)
        };
        self.run_step(jobs, &mut decide).await?;
        Ok(made)
    }

    async fn start_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Vec<StartReply>, Error> {
        let mut replies = vec![StartReply::Refused; runs.len()];
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            replies = runs
                .iter()
                .map(|held| table.start(holder, held, view.now, lease))
                .collect();
            Ok(Writes::default())
        };
        self.run_step(jobs_of(runs), &mut decide).await?;
        Ok(replies)
    }

    async fn renew_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Renewed, Error> {
        let mut renewed = Renewed {
            held: Vec::new(),
            lost: runs.iter().map(|h| h.id.clone()).collect(),
        };
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            renewed = table.renew(holder, runs, view.now, lease);
            Ok(Writes::default())
        };
        self.run_step(jobs_of(runs), &mut decide).await?;
        Ok(renewed)
    }

    async fn end_runs(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        lease: Duration,
    ) -> Result<Vec<EndReply>, Error> {
        let held: Vec<Held> = ends.iter().map(|e| e.run.clone()).collect();
        let holder_id: Arc<str> = holder.into();
        let mut replies = vec![EndReply::Refused; ends.len()];
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            replies = ends
                .iter()
                .map(|end| table.end(&holder_id, end, view.now, lease))
                .collect();
            Ok(Writes::default())
        };
        self.run_step(jobs_of(&held), &mut decide).await?;
        Ok(replies)
    }

    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error> {
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
        expired.truncate(limit);
        let jobs = expired.into_iter().map(|(_, job)| job).collect();
        let sweeper_id: Arc<str> = sweeper.into();
        let mut swept = Swept::default();
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            swept = table.sweep(&sweeper_id, view.now, lease, limit);
            Ok(Writes::default())
        };
        self.run_step(jobs, &mut decide).await?;
        Ok(swept)
    }

    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let Some(key) = RunKey::from_id(id) else {
            return Ok(None);
        };
        let runs = self.runs_of_job(&key.job_id).await?;
        Ok(runs.into_iter().find(|r| r.key == key))
    }

    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        let c = self.client().await?;
        let mut runs = self
            .read_group(&c, job_id)
            .await?
            .map(|(g, _)| g.runs)
            .unwrap_or_default();
        runs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(runs)
    }

    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error> {
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
