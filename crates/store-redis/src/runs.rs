//! [`RedisJobStore`]'s side of the run contract ([`RunSteps`], from which core derives
//! [`RunStore`](apscheduler_core::RunStore)): a step reads the run groups of the jobs
//! it touches, lets core's [`RunTable`] decide, and writes the result only if no group
//! moved meanwhile (see [`crate::run_scripts`]), one partition at a time.

use std::collections::HashMap;
use std::sync::Arc;

use apscheduler_core::{
    async_trait, Changes, Decide, Error, Job, Run, RunKey, RunState, RunSteps, RunTable, StepView,
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

fn unreadable(what: &'static str) -> StoreError {
    StoreError::Reply {
        what,
        detail: "the run step's read answered something else".to_owned(),
    }
}

fn conflict(jobs: &[Arc<str>]) -> Error {
    StoreError::Conflict(format!(
        "the runs of these jobs kept changing for {ATTEMPTS} attempts: {jobs:?}"
    ))
    .into()
}

fn unreadable_run(job: &str, e: serde_json::Error) -> StoreError {
    StoreError::CorruptRun {
        id: format!("a run of job {job}"),
        reason: e.to_string(),
    }
}

impl RedisJobStore {
    /// One step over `jobs` of one partition, atomically.
    async fn run_step_in(
        &self,
        part: usize,
        holder: &str,
        jobs: &[Arc<str>],
        decide: &mut Decide<'_, Encoded>,
    ) -> Result<(), Error> {
        self.step_from(part, holder, jobs, None, decide).await
    }

    /// [`run_step_in`](Self::run_step_in), deciding first on `read` when given (read
    /// after the last write this caller saw succeed; a stale one costs an attempt).
    async fn step_from(
        &self,
        part: usize,
        holder: &str,
        jobs: &[Arc<str>],
        mut read: Option<Read>,
        decide: &mut Decide<'_, Encoded>,
    ) -> Result<(), Error> {
        for _ in 0..ATTEMPTS {
            let (now, groups) = match read.take() {
                Some(read) => read,
                None => self.read_step(part, holder, jobs).await?,
            };
            let write = self.decided(part, holder, jobs, now, &groups, decide)?;
            let done: i64 = self.invoke("write run groups", &write).await?;
            if done == 1 {
                return Ok(());
            }
        }
        Err(conflict(jobs))
    }

    /// Two steps over `jobs` of one partition, one after the other, the second's read
    /// sent with the first's write (the connection keeps their order). The outer error
    /// is the first's, the inner the second's.
    async fn chained_in(
        &self,
        part: usize,
        holder: &str,
        jobs: &[Arc<str>],
        first: &mut Decide<'_, Encoded>,
        second: &mut Decide<'_, Encoded>,
    ) -> Result<Result<(), Error>, Error> {
        let (mut now, mut groups) = self.read_step(part, holder, jobs).await?;
        for _ in 0..ATTEMPTS {
            let write = self.decided(part, holder, jobs, now, &groups, first)?;
            let next = self.read_invocation(part, holder, jobs);
            let (done, next) = tokio::join!(
                self.invoke::<i64>("write run groups", &write),
                self.invoke::<Vec<Value>>("read run groups", &next)
            );
            let next = next
                .map_err(Error::from)
                .and_then(|reply| Ok(self.read_groups(jobs, reply)?));
            if done? == 1 {
                return Ok(self.step_from(part, holder, jobs, next.ok(), second).await);
            }
            (now, groups) = match next {
                Ok(read) => read,
                Err(_) => self.read_step(part, holder, jobs).await?,
            };
        }
        Err(conflict(jobs))
    }

    fn read_invocation(
        &self,
        part: usize,
        holder: &str,
        jobs: &[Arc<str>],
    ) -> redis::ScriptInvocation<'static> {
        let keys = self.parts.get(part);
        let mut read = self.invocation(part, &RUN_SCRIPTS.read);
        read.key(&keys.run_expiry).key(&keys.run_jobs);
        read.arg(holder);
        for job in jobs {
            read.arg(&**job);
        }
        read
    }

    /// The server's time and the run groups of `jobs`.
    async fn read_step(&self, part: usize, holder: &str, jobs: &[Arc<str>]) -> Result<Read, Error> {
        let read = self.read_invocation(part, holder, jobs);
        let reply: Vec<Value> = self.invoke("read run groups", &read).await?;
        Ok(self.read_groups(jobs, reply)?)
    }

    /// Lets `decide` decide on the groups read; answers the script call that writes what
    /// it changed if no group moved meanwhile.
    fn decided(
        &self,
        part: usize,
        holder: &str,
        jobs: &[Arc<str>],
        now: DateTime<Utc>,
        groups: &HashMap<Arc<str>, Group>,
        decide: &mut Decide<'_, Encoded>,
    ) -> Result<redis::ScriptInvocation<'static>, Error> {
        let keys = self.parts.get(part);
        let runs = groups.values().flat_map(|g| g.runs.iter().cloned());
        let fences = groups
            .iter()
            .map(|(job, g)| (job.clone(), g.fence, g.finishing));
        let mut table = RunTable::load(runs.collect::<Vec<_>>(), fences.collect::<Vec<_>>());
        let view = StepView {
            part: Some(jobs.iter().cloned().collect()),
            now,
            existing: groups
                .iter()
                .filter(|(_, g)| g.exists)
                .map(|(job, _)| job.clone())
                .collect(),
            held: groups
                .iter()
                .filter(|(_, g)| g.exists && g.holder == holder)
                .map(|(job, _)| job.clone())
                .collect(),
        };
        let writes = decide(&mut table, &view);
        let mut stored: HashMap<Arc<str>, Encoded> = writes.store.into_iter().collect();
        for id in &writes.pause {
            stored.insert(id.clone(), self.paused_state(id, &groups[id].state)?);
        }
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
            } else if writes.existing.contains(&job) {
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
            if removable.contains(&job) || writes.remove.contains(&job) {
                write.arg("d").arg("").arg("");
            } else if let Some(enc) = stored.get(&job) {
                write.arg("u").arg(&enc.state[..]).arg(enc.run_arg());
            } else {
                write.arg("-").arg("").arg("");
            }
            let mine: Vec<&Run> = changed.iter().filter(|r| r.key.job_id == job).collect();
            write.arg(mine.len());
            for run in mine {
                let json = serde_json::to_string(run).expect("a run serializes");
                write.arg(&*run.id).arg(json);
            }
        }
        Ok(write)
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

#[async_trait]
impl RunSteps for RedisJobStore {
    type Encoded = Encoded;

    fn encode_job(&self, job: &Job) -> Result<Encoded, Error> {
        self.encode(job)
    }

    async fn run_step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        _keys: Vec<RunKey>,
        decide: &mut Decide<'_, Encoded>,
    ) -> Result<(), Error> {
        let mut jobs = jobs;
        jobs.sort();
        jobs.dedup();
        for (part, group) in self.parts.group(jobs, |id| &**id) {
            self.run_step_in(part, holder, &group, decide).await?;
        }
        Ok(())
    }

    async fn run_steps_chained(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        keys: Vec<RunKey>,
        first: &mut Decide<'_, Encoded>,
        second: &mut Decide<'_, Encoded>,
    ) -> Result<Result<(), Error>, Error> {
        let mut jobs = jobs;
        jobs.sort();
        jobs.dedup();
        let mut parts = self.parts.group(jobs.clone(), |id| &**id);
        if parts.len() != 1 {
            // Each part's first step before any part's second, as the steps are one
            // after the other.
            self.run_step(holder, jobs.clone(), keys.clone(), first)
                .await?;
            return Ok(self.run_step(holder, jobs, keys, second).await);
        }
        let (part, group) = parts.remove(0);
        self.chained_in(part, holder, &group, first, second).await
    }

    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>, Error> {
        let mut jobs = Vec::new();
        for part in 0..self.parts.all().len() {
            let left = limit.saturating_sub(jobs.len());
            if left == 0 {
                break;
            }
            let keys = self.parts.get(part);
            let mut expired = self.invocation(part, &RUN_SCRIPTS.expired);
            expired.key(&keys.run_expiry).key(&keys.run_jobs).arg(left);
            let found: Vec<String> = self.invoke("expired runs", &expired).await?;
            jobs.extend(found.into_iter().map(Arc::from));
        }
        Ok(jobs)
    }

    async fn job_runs(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        self.group_of(job_id).await
    }

    async fn prune_ended(&self, before: DateTime<Utc>) -> Result<usize, Error> {
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
                        RunState::Ended { at, .. } | RunState::Interrupted { at } => at < before,
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
