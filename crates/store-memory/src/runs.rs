//! [`MemoryJobStore`]'s [`RunStore`] implementation: the contract's decisions are
//! [`RunTable`](apscheduler_core::RunTable)'s, taken under the store's one lock, so a
//! release and the runs it creates are one step.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, EndReply, Error, ErrorKind, Held, JobFate, JobRelease, NewRun, ReleaseBatch,
    Released, ReleasedRuns, Renewed, Run, RunEnd, RunStore, StartReply, Swept,
};
use chrono::{DateTime, Utc};

use crate::state::State;
use crate::MemoryJobStore;

impl State {
    /// Removes the finishing jobs whose last live run just ended.
    fn remove_finished(&mut self) {
        for id in self.runs.take_removable() {
            self.remove(&id);
        }
    }
}

#[async_trait]
impl RunStore for MemoryJobStore {
    async fn release_with_runs(
        &self,
        holder: &str,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<ReleasedRuns, Error> {
        let now = self.clock.now();
        let holder: Arc<str> = holder.into();
        // The last release of a job counts (jobs are kept as they are: nothing to encode).
        let batch = ReleaseBatch::new(releases, |job| Ok::<_, Error>(job.clone()));
        let mut state = self.state.lock();
        let mut lost = Vec::new();
        let mut runs = Vec::new();
        for (id, job, new_runs) in batch.jobs {
            let held = state
                .leases
                .get(&id)
                .is_some_and(|l| *l.holder == *holder && state.jobs.contains(&id));
            if !held {
                lost.push(id);
                continue;
            }
            let (made, fate) =
                state
                    .runs
                    .release_job(&holder, &id, job.is_none(), &new_runs, now, lease);
            runs.extend(made);
            let release = match (fate, job) {
                (JobFate::Update, Some(job)) => JobRelease::Update(job),
                // A finished job stays, paused, while a run of it lives.
                (JobFate::Pause, _) => {
                    let mut job = (*state.jobs.get(&id).expect("held").0).clone();
                    job.next_run_time = None;
                    JobRelease::Update(job)
                }
                (JobFate::Remove | JobFate::Update, _) => JobRelease::Remove(id),
            };
            if let Err(id) = state.release_linked(&holder, release) {
                // Held a moment ago under the same lock: cannot happen.
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("job {id}: its release was refused under the caller's lease"),
                ));
            }
        }
        Ok(ReleasedRuns {
            jobs: Released::new(lost, Vec::new()),
            runs,
        })
    }

    async fn insert_runs(
        &self,
        holder: &str,
        runs: Vec<NewRun>,
        lease: Duration,
    ) -> Result<Vec<Run>, Error> {
        let now = self.clock.now();
        let holder: Arc<str> = holder.into();
        let mut state = self.state.lock();
        let mut inserted = Vec::new();
        for new in runs {
            let job_id = new.key.job_id.clone();
            if state.jobs.contains(&job_id) && !state.runs.is_finishing(&job_id) {
                inserted.extend(state.runs.insert(&holder, new, now, lease));
            }
        }
        Ok(inserted)
    }

    async fn start_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Vec<StartReply>, Error> {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let replies = runs
            .iter()
            .map(|held| state.runs.start(holder, held, now, lease))
            .collect();
        state.remove_finished();
        Ok(replies)
    }

    async fn renew_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Renewed, Error> {
        let now = self.clock.now();
        Ok(self.state.lock().runs.renew(holder, runs, now, lease))
    }

    async fn end_runs(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        lease: Duration,
    ) -> Result<Vec<EndReply>, Error> {
        let now = self.clock.now();
        let holder: Arc<str> = holder.into();
        let mut state = self.state.lock();
        let replies = ends
            .iter()
            .map(|end| state.runs.end(&holder, end, now, lease))
            .collect();
        state.remove_finished();
        Ok(replies)
    }

    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error> {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let swept = state.runs.sweep(&sweeper.into(), now, lease, limit);
        state.remove_finished();
        Ok(swept)
    }

    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error> {
        Ok(self.state.lock().runs.get(id).cloned())
    }

    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        Ok(self.state.lock().runs.of_job(job_id).cloned().collect())
    }

    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        Ok(self.state.lock().runs.prune(before))
    }
}
