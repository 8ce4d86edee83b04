//! [`MemoryJobStore`]'s side of the run contract ([`RunSteps`], from which core
//! derives [`RunStore`](apscheduler_core::RunStore)): its runs are a
//! [`RunTable`](apscheduler_core::RunTable) under the store's one lock, so a step, the
//! jobs it releases included, is one critical section.

use std::sync::Arc;

use apscheduler_core::{
    async_trait, Decide, Error, ErrorKind, Job, JobRelease, Run, RunKey, RunSteps, StepView,
};
use chrono::{DateTime, Utc};

use crate::state::State;
use crate::MemoryJobStore;

impl State {
    /// Ends `holder`'s claim on a job with this release (held a moment ago under the
    /// same lock, so it applies).
    fn release_held(&mut self, holder: &str, release: JobRelease) -> Result<(), Error> {
        self.release_linked(holder, release).map_err(|id| {
            Error::new(
                ErrorKind::InvalidState,
                format!("job {id}: its release was refused under the caller's claim"),
            )
        })
    }
}

#[async_trait]
impl RunSteps for MemoryJobStore {
    // Jobs are kept as they are: nothing to encode.
    type Encoded = Job;

    fn encode_job(&self, job: &Job) -> Result<Job, Error> {
        Ok(job.clone())
    }

    async fn run_step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        _keys: Vec<RunKey>,
        decide: &mut Decide<'_, Job>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let existing = jobs
            .iter()
            .filter(|j| state.jobs.contains(j))
            .cloned()
            .collect();
        let held = jobs
            .iter()
            .filter(|j| {
                state.jobs.contains(j) && state.leases.get(*j).is_some_and(|l| *l.holder == *holder)
            })
            .cloned()
            .collect();
        let view = StepView {
            part: None,
            now,
            existing,
            held,
        };
        let writes = decide(&mut state.runs, &view);
        for (_, job) in writes.store {
            state.release_held(holder, JobRelease::Update(job))?;
        }
        for id in writes.pause {
            let mut job = (*state.jobs.get(&id).expect("held").0).clone();
            job.next_run_time = None;
            state.release_held(holder, JobRelease::Update(job))?;
        }
        for id in writes.remove {
            state.release_held(holder, JobRelease::Remove(id))?;
        }
        for id in state.runs.take_removable() {
            state.remove(&id);
        }
        Ok(())
    }

    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>, Error> {
        Ok(self.state.lock().runs.expired_jobs(self.clock.now(), limit))
    }

    async fn job_runs(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        Ok(self.state.lock().runs.of_job(job_id).cloned().collect())
    }

    async fn prune_ended(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        Ok(self.state.lock().runs.prune(before))
    }
}
