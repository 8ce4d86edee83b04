//! [`RedisJobStore`]'s [`RunStore`] implementation: each operation reads the run groups
//! of the jobs it touches, lets core's [`RunTable`] decide, and writes the result only
//! if no group moved meanwhile (see [`crate::run_scripts`]), per partition.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, Changes, EndReply, Error, Held, JobFate, JobRelease, NewRun, ReleaseBatch,
    Released, ReleasedRuns, Renewed, Run, RunEnd, RunKey, RunStore, RunTable, StartReply, Swept,
};
use chrono::{DateTime, Utc};
use redis::Value;

use crate::codec::{from_micros, now_micros, Encoded};
use crate::error::StoreError;
use crate::run_scripts::RUN_SCRIPTS;
use crate::RedisJobStore;

/// How often a step reads and decides again after a write found a group moved.
const ATTEMPTS: usize = 50;

/// A job's run group as read.
struct Group {
    version: String,
    fence: u64,
    finishing: bool,
    exists: bool,
    holder: String,
    state: Vec<u8>,
    runs: Vec<Run>,
}

/// The server's time and the jobs' run groups, as a step reads them.
type Read = (DateTime<Utc>, HashMap<Arc<str>, Group>);

/// What a step's decision sees: the server's time, and the jobs as read.
struct View<'a> {
    now: DateTime<Utc>,
    groups: &'a HashMap<Arc<str>, Group>,
}

impl View<'_> {
    fn exists(&self, job: &str) -> bool {
        self.groups.get(job).is_some_and(|g| g.exists)
    }

    fn held_by(&self, job: &str, holder: &str) -> bool {
        self.groups
            .get(job)
            .is_some_and(|g| g.exists && g.holder == holder)
    }
}

/// What becomes of a job's row in a step.
enum JobOp {
    Store(Encoded),
    Remove,
}

/// What a step writes for the jobs besides their runs, and which guard each needs.
#[derive(Default)]
struct Writes {
    ops: HashMap<Arc<str>, JobOp>,
    held: HashSet<Arc<str>>,
    exists: HashSet<Arc<str>>,
}

type Decide<'f> = dyn FnMut(&mut RunTable, &View<'_>) -> Result<Writes, Error> + Send + 'f;

fn unreadable(what: &'static str) -> StoreError {
    StoreError::Reply {
        what,
        detail: "the run step's read answered something else".to_owned(),
    }
}

fn unreadable_run(job: &str, e: serde_json::Error) -> StoreError {
    StoreError::CorruptRun {
        id: format!("a run of job {job}"),
        reason: e.to_string(),
    }
}

impl RedisJobStore {
    /// One step over `jobs` (grouped by partition, each partition atomically).
    async fn run_step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        with_state: bool,
        decide: &mut Decide<'_>,
    ) -> Result<(), Error> {
        let mut jobs = jobs;
        jobs.sort();
        jobs.dedup();
        for (part, group) in self.parts.group(jobs, |id| &**id) {
            self.run_step_in(part, holder, &group, with_state, decide)
                .await?;
        }
        Ok(())
    }

    async fn run_step_in(
        &self,
        part: usize,
        holder: &str,
        jobs: &[Arc<str>],
        with_state: bool,
        decide: &mut Decide<'_>,
    ) -> Result<(), Error> {
        let keys = self.parts.get(part);
        for _ in 0..ATTEMPTS {
            let mut read = self.invocation(part, &RUN_SCRIPTS.read);
            read.key(&keys.run_expiry).key(&keys.run_jobs);
            read.arg(holder).arg(if with_state { "1" } else { "0" });
            for job in jobs {
                read.arg(&**job);
            }
            let reply: Vec<Value> = self.invoke("read run groups", &read).await?;
            let (now, groups) = self.read_groups(jobs, reply)?;
            let runs = groups.values().flat_map(|g| g.runs.iter().cloned());
            let fences = groups
                .iter()
                .map(|(job, g)| (job.clone(), g.fence, g.finishing));
            let mut table = RunTable::load(runs.collect::<Vec<_>>(), fences.collect::<Vec<_>>());
            let view = View {
                now,
                groups: &groups,
            };
            let writes = decide(&mut table, &view)?;
            let mut write = self.invocation(part, &RUN_SCRIPTS.write);
            write.key(&keys.run_expiry).key(&keys.run_jobs).arg(holder);
            let Changes {
                runs: changed,
                jobs: fences,
                removable,
            } = table.take_changes();
            for (job, fence, finishing) in fences {
                let group = &groups[&job];
                let guard = if writes.held.contains(&job) {
                    "held"
                } else if writes.exists.contains(&job) {
                    "exists"
                } else {
                    "-"
                };
                let expiry = table
                    .of_job(&job)
                    .filter(|r| r.state.is_live())
                    .map(|r| r.lease_until)
                    .min()
                    .map(|t| now_micros(&t).to_string())
                    .unwrap_or_default();
                write
                    .arg(&*job)
                    .arg(&group.version)
                    .arg(guard)
                    .arg(fence)
                    .arg(u8::from(finishing))
                    .arg(expiry);
                match writes.ops.get(&job) {
                    _ if removable.contains(&job) => write.arg("d").arg("").arg(""),
                    Some(JobOp::Remove) => write.arg("d").arg("").arg(""),
                    Some(JobOp::Store(enc)) => {
                        write.arg("u").arg(&enc.state[..]).arg(enc.run_arg())
                    }
                    None => write.arg("-").arg("").arg(""),
                };
                let mine: Vec<&Run> = changed.iter().filter(|r| r.key.job_id == job).collect();
                write.arg(mine.len());
                for run in mine {
                    let json = serde_json::to_string(run).expect("a run serializes");
                    write.arg(&*run.id).arg(json);
                }
            }
            let done: i64 = self.invoke("write run groups", &write).await?;
            if done == 1 {
                return Ok(());
            }
        }
        Err(StoreError::Conflict(format!(
            "the runs of these jobs kept changing for {ATTEMPTS} attempts: {jobs:?}"
        ))
        .into())
    }

    fn read_groups(&self, jobs: &[Arc<str>], reply: Vec<Value>) -> Result<Read, StoreError> {
        let mut reply = reply.into_iter();
        let now: String = redis::from_redis_value(reply.next().ok_or_else(|| unreadable("time"))?)
            .map_err(|_| unreadable("time"))?;
        let now = from_micros(now.parse().map_err(|_| unreadable("time"))?);
        let mut groups = HashMap::with_capacity(jobs.len());
        for (job, value) in jobs.iter().zip(reply) {
            type Row = (String, String, String, i64, String, Vec<u8>, Vec<String>);
            let (version, fence, finishing, exists, holder, state, rows): Row =
                redis::from_redis_value(value).map_err(|_| unreadable("group"))?;
            let runs = rows
                .iter()
                .map(|json| serde_json::from_str(json).map_err(|e| unreadable_run(job, e)))
                .collect::<Result<_, _>>()?;
            groups.insert(
                job.clone(),
                Group {
                    version,
                    fence: fence.parse().unwrap_or(0),
                    finishing: finishing == "1",
                    exists: exists == 1,
                    holder,
                    state,
                    runs,
                },
            );
        }
        Ok((now, groups))
    }

    /// A job's state with no next run time, to keep a finished job paused.
    fn paused_state(&self, job: &str, state: &[u8]) -> Result<Encoded, Error> {
        let mut job = self.decode(job.as_bytes(), state)?;
        job.next_run_time = None;
        self.encode(&job)
    }

    /// Every run of the job, as stored.
    async fn group_of(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        let keys = self.parts.get(self.parts.of(job_id));
        let runs_key = format!("{}runs:{job_id}", keys.run_prefix());
        let all: Vec<(String, String)> = self
            .query("runs of a job", redis::cmd("HGETALL").arg(&runs_key))
            .await?;
        let mut runs: Vec<Run> = all
            .iter()
            .filter(|(field, _)| field.starts_with("r:"))
            .map(|(_, json)| serde_json::from_str(json))
            .collect::<Result<_, _>>()
            .map_err(|e| unreadable_run(job_id, e))?;
        runs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(runs)
    }
}

/// The keys of held runs and their jobs.
fn jobs_of(runs: &[Held]) -> Vec<Arc<str>> {
    runs.iter()
        .filter_map(|h| RunKey::from_id(&h.id))
        .map(|k| k.job_id)
        .collect()
}

#[async_trait]
impl RunStore for RedisJobStore {
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
        let jobs = asked.iter().map(|(id, ..)| id.clone()).collect();
        let mut decide = |table: &mut RunTable, view: &View<'_>| {
            lost.clear();
            made.clear();
            let mut writes = Writes::default();
            for (id, enc, runs) in &asked {
                if !view.held_by(id, holder) {
                    lost.push(id.clone());
                    continue;
                }
                let (runs, fate) =
                    table.release_job(&holder_id, id, enc.is_none(), runs, view.now, lease);
                made.extend(runs);
                let op = match (fate, enc) {
                    (JobFate::Update, Some(enc)) => JobOp::Store(enc.clone()),
                    (JobFate::Remove, _) | (JobFate::Update, None) => JobOp::Remove,
                    (JobFate::Pause, _) => {
                        JobOp::Store(self.paused_state(id, &view.groups[id].state)?)
                    }
                };
                writes.ops.insert(id.clone(), op);
                writes.held.insert(id.clone());
            }
            Ok(writes)
        };
        self.run_step(holder, jobs, true, &mut decide).await?;
        Ok(ReleasedRuns {
            jobs: Released::new(lost, refused),
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
                    writes.exists.insert(job.clone());
                }
            }
            Ok(writes)
        };
        self.run_step(holder, jobs, false, &mut decide).await?;
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
        self.run_step(holder, jobs_of(runs), false, &mut decide)
            .await?;
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
        self.run_step(holder, jobs_of(runs), false, &mut decide)
            .await?;
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
        self.run_step(holder, jobs_of(&held), false, &mut decide)
            .await?;
        Ok(replies)
    }

    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error> {
        let sweeper_id: Arc<str> = sweeper.into();
        let mut swept = Swept::default();
        for part in 0..self.parts.all().len() {
            let left = limit.saturating_sub(swept.taken.len() + swept.interrupted.len());
            if left == 0 {
                break;
            }
            let keys = self.parts.get(part);
            let mut expired = self.invocation(part, &RUN_SCRIPTS.expired);
            expired.key(&keys.run_expiry).key(&keys.run_jobs).arg(left);
            let jobs: Vec<String> = self.invoke("expired runs", &expired).await?;
            if jobs.is_empty() {
                continue;
            }
            let jobs: Vec<Arc<str>> = jobs.into_iter().map(Arc::from).collect();
            let mut found = Swept::default();
            let mut decide = |table: &mut RunTable, view: &View<'_>| {
                found = table.sweep(&sweeper_id, view.now, lease, left);
                Ok(Writes::default())
            };
            self.run_step_in(part, sweeper, &jobs, false, &mut decide)
                .await?;
            swept.taken.extend(found.taken);
            swept.interrupted.extend(found.interrupted);
        }
        Ok(swept)
    }

    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let Some(key) = RunKey::from_id(id) else {
            return Ok(None);
        };
        let runs = self.group_of(&key.job_id).await?;
        Ok(runs.into_iter().find(|r| r.key == key))
    }

    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        self.group_of(job_id).await
    }

    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        let mut pruned = 0;
        for keys in self.parts.all() {
            let jobs: Vec<String> = self
                .query("jobs with runs", redis::cmd("SMEMBERS").arg(&keys.run_jobs))
                .await?;
            for job in jobs {
                let old: Vec<String> = self
                    .group_of(&job)
                    .await?
                    .into_iter()
                    .filter(|r| match r.state {
                        apscheduler_core::RunState::Ended { at, .. }
                        | apscheduler_core::RunState::Interrupted { at } => at < before,
                        _ => false,
                    })
                    .map(|r| format!("r:{}", r.id))
                    .collect();
                if !old.is_empty() {
                    let runs_key = format!("{}runs:{job}", keys.run_prefix());
                    let _: i64 = self
                        .query("prune runs", redis::cmd("HDEL").arg(&runs_key).arg(&old))
                        .await?;
                    pruned += old.len();
                }
            }
        }
        Ok(pruned)
    }
}
