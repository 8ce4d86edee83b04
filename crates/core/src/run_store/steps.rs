//! [`RunSteps`]: what a store provides so that the whole [`RunStore`] follows from it.
//! A store gives one atomic step (lock or read its jobs' run groups, let a decision
//! change them on a [`RunTable`], write them back with the job rows the decision asks
//! for) and a few reads; every operation of the contract is written once, here, as a
//! decision on the table.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    EndReply, EndedAndReleased, Held, JobFate, NewRun, ReleaseBatch, ReleasedAndStarted,
    ReleasedRuns, Renewed, Run, RunEnd, RunKey, RunStore, RunTable, StartCall, StartReply, Swept,
};
use crate::{Error, Job, JobRelease, JobStore, Released};

/// What a step's decision sees of the jobs it touches.
#[derive(Debug, Clone)]
pub struct StepView {
    /// The store's time (its server's clock where it has one).
    pub now: DateTime<Utc>,
    /// The jobs that exist.
    pub existing: HashSet<Arc<str>>,
    /// The jobs whose claim the caller holds.
    pub held: HashSet<Arc<str>>,
    /// The jobs this call covers when the store splits a step by partition (each part
    /// one atomic step, the decision called once per part, and again for a part whose
    /// write was overtaken); `None`: every job of the step.
    pub part: Option<HashSet<Arc<str>>>,
}

impl StepView {
    /// Whether this call of the decision covers `job_id`: a decision decides for the
    /// covered jobs only, and keeps what earlier calls decided for the others.
    pub fn covers(&self, job_id: &str) -> bool {
        self.part.as_ref().is_none_or(|part| part.contains(job_id))
    }
}

/// The job rows a step writes beside its runs, each only while its guard holds at the
/// write: a job in [`held`](JobWrites::held) must still be claimed by the caller, one
/// in [`existing`](JobWrites::existing) must still exist. The finished jobs whose last
/// live run the step ended ([`RunTable::take_changes`]'s `removable`) are removed too.
#[derive(Debug)]
pub struct JobWrites<E> {
    /// New states, stored with the caller's claim ended.
    pub store: Vec<(Arc<str>, E)>,
    /// Finished jobs kept, paused (no next run time), with the caller's claim ended,
    /// until their last live run ends.
    pub pause: Vec<Arc<str>>,
    /// Finished jobs removed.
    pub remove: Vec<Arc<str>>,
    /// Jobs the caller must still hold.
    pub held: Vec<Arc<str>>,
    /// Jobs that must still exist.
    pub existing: Vec<Arc<str>>,
}

impl<E> Default for JobWrites<E> {
    fn default() -> Self {
        JobWrites {
            store: Vec::new(),
            pause: Vec::new(),
            remove: Vec::new(),
            held: Vec::new(),
            existing: Vec::new(),
        }
    }
}

/// A step's decision: changes the table, says what to write to the jobs.
pub type Decide<'f, E> = dyn FnMut(&mut RunTable, &StepView) -> JobWrites<E> + Send + 'f;

/// The store's side of the run contract: one atomic step and a few reads. Every type
/// that implements it is a [`RunStore`].
#[async_trait]
pub trait RunSteps: JobStore {
    /// A job's new state as the store writes it.
    type Encoded: Clone + Send + Sync + 'static;

    /// Encodes a job's new state (refused: the release goes to
    /// [`Released::refused`]).
    ///
    /// # Errors
    /// `Serialization` and the like, as [`JobStore::add_job`] would refuse it.
    fn encode_job(&self, job: &Job) -> Result<Self::Encoded, Error>;

    /// One atomic step: loads into a [`RunTable`] the runs of `jobs` (all of them, or
    /// at least the live ones and those of `keys`) with their fences and finishing
    /// marks, calls `decide` with the store's time and which jobs exist and are held
    /// by `holder`, and writes back the table's changes and the job rows `decide` asks
    /// for, all or nothing. When something it read has moved by the write, it loads and
    /// decides again (`decide` starts from scratch each time).
    ///
    /// # Errors
    /// Backend errors; a step that kept being overtaken.
    async fn run_step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        keys: Vec<RunKey>,
        decide: &mut Decide<'_, Self::Encoded>,
    ) -> Result<(), Error>;

    /// Two atomic steps on the same jobs and runs, one after the other: `first`, as
    /// [`run_step`](RunSteps::run_step), then `second`, loaded and decided once the
    /// first is written. A store may send the second's reads with the first's commit.
    /// The inner result is the second step's: the first was written when it is
    /// reached.
    ///
    /// # Errors
    /// The first step's (it may or may not have been written).
    async fn run_steps_chained(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        keys: Vec<RunKey>,
        first: &mut Decide<'_, Self::Encoded>,
        second: &mut Decide<'_, Self::Encoded>,
    ) -> Result<Result<(), Error>, Error> {
        self.run_step(holder, jobs.clone(), keys.clone(), first)
            .await?;
        Ok(self.run_step(holder, jobs, keys, second).await)
    }

    /// Up to `limit` jobs with a live run whose lease ended on the store's clock,
    /// earliest end first.
    ///
    /// # Errors
    /// Backend errors.
    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>, Error>;

    /// The kept runs of a job, by key.
    ///
    /// # Errors
    /// Backend errors.
    async fn job_runs(&self, job_id: &str) -> Result<Vec<Run>, Error>;

    /// Forgets the runs that ended before `before`; answers how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn prune_ended(&self, before: DateTime<Utc>) -> Result<usize, Error>;
}

/// Whether this call of a decision covers the run `id` (see [`StepView::covers`]).
fn covers_run(view: &StepView, id: &str) -> bool {
    RunKey::from_id(id).is_some_and(|key| view.covers(&key.job_id))
}

fn jobs_of(runs: &[Held]) -> (Vec<Arc<str>>, Vec<RunKey>) {
    let keys: Vec<RunKey> = runs.iter().filter_map(|h| RunKey::from_id(&h.id)).collect();
    (keys.iter().map(|k| k.job_id.clone()).collect(), keys)
}

#[async_trait]
impl<S: RunSteps> RunStore for S {
    async fn release_with_runs(
        &self,
        holder: &str,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<ReleasedRuns, Error> {
        self.end_and_release(holder, Vec::new(), releases, lease)
            .await
            .map(|step| step.released)
    }

    async fn end_and_release(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<EndedAndReleased, Error> {
        let mut pass = PassStep::new(self, holder, ends, releases);
        let (jobs, keys) = (pass.jobs.clone(), pass.keys.clone());
        let mut decide = |table: &mut RunTable, view: &StepView| pass.decide(table, view, lease);
        self.run_step(holder, jobs, keys, &mut decide).await?;
        Ok(pass.answer())
    }

    async fn end_release_and_start(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        at: DateTime<Utc>,
        lease: Duration,
    ) -> Result<ReleasedAndStarted, Error> {
        let pass = Mutex::new(PassStep::new(self, holder, ends, releases));
        let (jobs, keys) = {
            let pass = lock(&pass);
            (pass.jobs.clone(), pass.keys.clone())
        };
        let mut replies = Vec::new();
        let mut first =
            |table: &mut RunTable, view: &StepView| lock(&pass).decide(table, view, lease);
        // The runs the first step created, as it decided them.
        let mut second = |table: &mut RunTable, view: &StepView| {
            let pass = lock(&pass);
            replies.resize(pass.made.len(), StartReply::Refused);
            let mut call = StartCall::new();
            for (reply, run) in replies.iter_mut().zip(&pass.made) {
                if view.covers(&run.key.job_id) {
                    *reply = table.start(holder, &run.held(), view.now, at, lease, &mut call);
                }
            }
            JobWrites::default()
        };
        let second_step = self
            .run_steps_chained(holder, jobs, keys, &mut first, &mut second)
            .await?;
        let step = pass
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .answer();
        Ok(ReleasedAndStarted {
            starts: second_step.map(|()| {
                replies.resize(step.released.runs.len(), StartReply::Refused);
                replies
            }),
            step,
        })
    }

    async fn insert_runs(
        &self,
        holder: &str,
        runs: Vec<NewRun>,
        lease: Duration,
    ) -> Result<Vec<Run>, Error> {
        let jobs = runs.iter().map(|r| r.key.job_id.clone()).collect();
        let keys = runs.iter().map(|r| r.key.clone()).collect();
        let holder_id: Arc<str> = holder.into();
        let mut made = Vec::new();
        let mut decide = |table: &mut RunTable, view: &StepView| {
            made.retain(|r: &Run| !view.covers(&r.key.job_id));
            let mut writes = JobWrites::default();
            for new in &runs {
                let job = &new.key.job_id;
                if view.covers(job) && view.existing.contains(job) && !table.is_finishing(job) {
                    made.extend(table.insert(&holder_id, new.clone(), view.now, lease));
                    writes.existing.push(job.clone());
                }
            }
            writes
        };
        self.run_step(holder, jobs, keys, &mut decide).await?;
        Ok(made)
    }

    async fn start_runs(
        &self,
        holder: &str,
        runs: &[Held],
        at: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<StartReply>, Error> {
        let (jobs, keys) = jobs_of(runs);
        let mut replies = vec![StartReply::Refused; runs.len()];
        let mut decide = |table: &mut RunTable, view: &StepView| {
            let mut call = StartCall::new();
            for (reply, held) in replies.iter_mut().zip(runs) {
                if covers_run(view, &held.id) {
                    *reply = table.start(holder, held, view.now, at, lease, &mut call);
                }
            }
            JobWrites::default()
        };
        self.run_step(holder, jobs, keys, &mut decide).await?;
        Ok(replies)
    }

    async fn renew_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Renewed, Error> {
        let (jobs, keys) = jobs_of(runs);
        let mut kept: Vec<Run> = Vec::new();
        let mut decide = |table: &mut RunTable, view: &StepView| {
            kept.retain(|r| !view.covers(&r.key.job_id));
            let mine: Vec<Held> = runs
                .iter()
                .filter(|h| covers_run(view, &h.id))
                .cloned()
                .collect();
            kept.extend(table.renew(holder, &mine, view.now, lease).held);
            JobWrites::default()
        };
        self.run_step(holder, jobs, keys, &mut decide).await?;
        let lost = runs
            .iter()
            .filter(|h| !kept.iter().any(|r| r.id == h.id))
            .map(|h| h.id.clone())
            .collect();
        Ok(Renewed { held: kept, lost })
    }

    async fn end_runs(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        lease: Duration,
    ) -> Result<Vec<EndReply>, Error> {
        let held: Vec<Held> = ends.iter().map(|e| e.run.clone()).collect();
        let (jobs, mut keys) = jobs_of(&held);
        // A repeated end answers with the retry it created: load those too.
        keys.extend(keys.clone().iter().map(RunKey::retry));
        let holder_id: Arc<str> = holder.into();
        let mut replies = vec![EndReply::Refused; ends.len()];
        let mut decide = |table: &mut RunTable, view: &StepView| {
            for (reply, end) in replies.iter_mut().zip(&ends) {
                if covers_run(view, &end.run.id) {
                    *reply = table.end(&holder_id, end, view.now, lease);
                }
            }
            JobWrites::default()
        };
        self.run_step(holder, jobs, keys, &mut decide).await?;
        Ok(replies)
    }

    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error> {
        let jobs = self.expired_jobs(limit).await?;
        let sweeper_id: Arc<str> = sweeper.into();
        let mut swept = Swept::default();
        let mut decide = |table: &mut RunTable, view: &StepView| {
            swept.taken.retain(|r| !view.covers(&r.key.job_id));
            swept.interrupted.retain(|r| !view.covers(&r.key.job_id));
            swept.missed.retain(|r| !view.covers(&r.key.job_id));
            swept.ending.retain(|r| !view.covers(&r.key.job_id));
            swept
                .interrupted_from
                .retain(|k, _| !view.covers(&k.job_id));
            let part = table.sweep(&sweeper_id, view.now, lease, limit);
            swept.taken.extend(part.taken);
            swept.interrupted.extend(part.interrupted);
            swept.interrupted_from.extend(part.interrupted_from);
            swept.missed.extend(part.missed);
            swept.ending.extend(part.ending);
            JobWrites::default()
        };
        self.run_step(sweeper, jobs, Vec::new(), &mut decide)
            .await?;
        Ok(swept)
    }

    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let Some(key) = RunKey::from_id(id) else {
            return Ok(None);
        };
        let runs = self.job_runs(&key.job_id).await?;
        Ok(runs.into_iter().find(|r| r.key == key))
    }

    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        self.job_runs(job_id).await
    }

    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        self.prune_ended(before).await
    }
}

/// A pass's ends and releases, as one step decides them.
struct PassStep<E> {
    holder: Arc<str>,
    ends: Vec<RunEnd>,
    asked: Vec<(Arc<str>, Option<E>, Vec<NewRun>)>,
    refused: Vec<(Arc<str>, Error)>,
    /// The jobs and runs the step locks and loads.
    jobs: Vec<Arc<str>>,
    keys: Vec<RunKey>,
    ended: Vec<EndReply>,
    lost: Vec<Arc<str>>,
    made: Vec<Run>,
}

impl<E: Clone> PassStep<E> {
    fn new<S: RunSteps<Encoded = E> + ?Sized>(
        store: &S,
        holder: &str,
        ends: Vec<RunEnd>,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
    ) -> PassStep<E> {
        let ReleaseBatch {
            jobs: asked,
            refused,
        } = ReleaseBatch::new(releases, |job| store.encode_job(job));
        let held: Vec<Held> = ends.iter().map(|e| e.run.clone()).collect();
        let (mut jobs, mut keys) = jobs_of(&held);
        keys.extend(keys.clone().iter().map(RunKey::retry));
        jobs.extend(asked.iter().map(|(id, ..)| id.clone()));
        keys.extend(
            asked
                .iter()
                .flat_map(|(_, _, runs)| runs.iter().map(|r| r.key.clone())),
        );
        // A job may both end a run and be released: named once.
        let mut seen = HashSet::new();
        jobs.retain(|j| seen.insert(j.clone()));
        let mut seen = HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        PassStep {
            holder: holder.into(),
            ended: vec![EndReply::Refused; ends.len()],
            ends,
            asked,
            refused,
            jobs,
            keys,
            lost: Vec::new(),
            made: Vec::new(),
        }
    }

    fn decide(&mut self, table: &mut RunTable, view: &StepView, lease: Duration) -> JobWrites<E> {
        for (reply, end) in self.ended.iter_mut().zip(&self.ends) {
            if covers_run(view, &end.run.id) {
                *reply = table.end(&self.holder, end, view.now, lease);
            }
        }
        let mut writes = JobWrites::default();
        release(
            table,
            view,
            &self.holder,
            &self.asked,
            lease,
            &mut self.lost,
            &mut self.made,
            &mut writes,
        );
        writes
    }

    fn answer(self) -> EndedAndReleased {
        EndedAndReleased {
            ended: self.ended,
            released: ReleasedRuns {
                jobs: Released::new(self.lost, self.refused),
                runs: self.made,
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The decision of a release: for each job the caller still holds, its runs created
/// and its new state (stored, kept paused, or removed) asked of the store; the others
/// are `lost`. Decides for the jobs this call covers, again from scratch when the
/// store decides a part again.
#[allow(clippy::too_many_arguments)]
fn release<E: Clone>(
    table: &mut RunTable,
    view: &StepView,
    holder: &Arc<str>,
    asked: &[(Arc<str>, Option<E>, Vec<NewRun>)],
    lease: Duration,
    lost: &mut Vec<Arc<str>>,
    made: &mut Vec<Run>,
    writes: &mut JobWrites<E>,
) {
    lost.retain(|id| !view.covers(id));
    made.retain(|r| !view.covers(&r.key.job_id));
    for (id, state, runs) in asked {
        if !view.covers(id) {
            continue;
        }
        if !view.held.contains(id) {
            lost.push(id.clone());
            continue;
        }
        let (runs, fate) = table.release_job(holder, id, state.is_none(), runs, view.now, lease);
        made.extend(runs);
        match (fate, state) {
            (JobFate::Update, Some(state)) => writes.store.push((id.clone(), state.clone())),
            (JobFate::Pause, _) => writes.pause.push(id.clone()),
            (JobFate::Remove | JobFate::Update, _) => writes.remove.push(id.clone()),
        }
        writes.held.push(id.clone());
    }
}
