//! [`SqlJobStore`]'s [`RunStore`] implementation: each operation is one step of
//! [`crate::run_rows`] (a transaction), whose decisions are core's
//! [`RunTable`](apscheduler_core::RunTable)'s.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{
    async_trait, EndReply, Error, Held, JobFate, JobRelease, NewRun, ReleaseBatch, Released,
    ReleasedRuns, Renewed, Run, RunEnd, RunKey, RunStore, StartReply, Swept,
};
use chrono::{DateTime, Utc};

use crate::codec;
use crate::run_rows::{JobWrites, Step};
use crate::store::SqlJobStore;

/// The keys of held runs, and the jobs they belong to; `None` for an id that names no
/// run (it is refused without a round trip).
fn keys_of(runs: &[Held]) -> (Vec<Option<RunKey>>, Vec<Arc<str>>) {
    let keys: Vec<Option<RunKey>> = runs.iter().map(|h| RunKey::from_id(&h.id)).collect();
    let jobs = keys.iter().flatten().map(|k| k.job_id.clone()).collect();
    (keys, jobs)
}

#[async_trait]
impl RunStore for SqlJobStore {
    async fn release_with_runs(
        &self,
        holder: &str,
        releases: Vec<(JobRelease, Vec<NewRun>)>,
        lease: Duration,
    ) -> Result<ReleasedRuns, Error> {
        codec::check_id("scheduler_id", holder)?;
        let ReleaseBatch {
            jobs: asked,
            refused,
        } = ReleaseBatch::new(releases, |job| self.encode(job));
        // The new runs' keys are loaded too: a key that ran before is never run again.
        let step = Step {
            holder,
            jobs: asked.iter().map(|(id, ..)| id.clone()).collect(),
            keys: asked
                .iter()
                .flat_map(|(_, _, runs)| runs.iter().map(|r| r.key.clone()))
                .collect(),
        };
        let holder_id: Arc<str> = holder.into();
        let (mut lost, mut made) = (Vec::new(), Vec::new());
        let mut decide = |table: &mut apscheduler_core::RunTable,
                          view: &crate::run_rows::StepView| {
            // A retried step decides again from scratch.
            lost.clear();
            made.clear();
            let mut writes = JobWrites::default();
            for (id, what, runs) in &asked {
                if !view.held.contains(id) {
                    lost.push(id.clone());
                    continue;
                }
                let (runs, fate) =
                    table.release_job(&holder_id, id, what.is_none(), runs, view.now, lease);
                made.extend(runs);
                match (fate, what) {
                    (JobFate::Update, Some(row)) => writes.updates.push(row.clone()),
                    (JobFate::Pause, _) => writes.pause.push(id.clone()),
                    (JobFate::Remove | JobFate::Update, _) => writes.delete.push(id.clone()),
                }
            }
            writes
        };
        if !step.jobs.is_empty() {
            let driver = self.driver().await?;
            retry!(driver.parts().run_rows().step(&step, &mut decide))?;
        }
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
        codec::check_id("scheduler_id", holder)?;
        for new in &runs {
            codec::check_id("job_id", &new.key.job_id)?;
        }
        let step = Step {
            holder,
            jobs: runs.iter().map(|r| r.key.job_id.clone()).collect(),
            keys: runs.iter().map(|r| r.key.clone()).collect(),
        };
        let holder_id: Arc<str> = holder.into();
        let mut made = Vec::new();
        let mut decide = |table: &mut apscheduler_core::RunTable,
                          view: &crate::run_rows::StepView| {
            made.clear();
            for new in &runs {
                let job = &new.key.job_id;
                if view.existing.contains(job) && !table.is_finishing(job) {
                    made.extend(table.insert(&holder_id, new.clone(), view.now, lease));
                }
            }
            JobWrites::default()
        };
        if !step.jobs.is_empty() {
            let driver = self.driver().await?;
            retry!(driver.parts().run_rows().step(&step, &mut decide))?;
        }
        Ok(made)
    }

    async fn start_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Vec<StartReply>, Error> {
        let (keys, jobs) = keys_of(runs);
        let step = Step {
            holder,
            jobs,
            keys: keys.iter().flatten().cloned().collect(),
        };
        let mut replies = Vec::new();
        let mut decide = |table: &mut apscheduler_core::RunTable,
                          view: &crate::run_rows::StepView| {
            replies = runs
                .iter()
                .map(|held| table.start(holder, held, view.now, lease))
                .collect();
            JobWrites::default()
        };
        if step.jobs.is_empty() {
            return Ok(vec![StartReply::Refused; runs.len()]);
        }
        let driver = self.driver().await?;
        retry!(driver.parts().run_rows().step(&step, &mut decide))?;
        Ok(replies)
    }

    async fn renew_runs(
        &self,
        holder: &str,
        runs: &[Held],
        lease: Duration,
    ) -> Result<Renewed, Error> {
        let (keys, jobs) = keys_of(runs);
        let step = Step {
            holder,
            jobs,
            keys: keys.iter().flatten().cloned().collect(),
        };
        let mut renewed = Renewed::default();
        let mut decide = |table: &mut apscheduler_core::RunTable,
                          view: &crate::run_rows::StepView| {
            renewed = table.renew(holder, runs, view.now, lease);
            JobWrites::default()
        };
        if step.jobs.is_empty() {
            return Ok(Renewed {
                held: Vec::new(),
                lost: runs.iter().map(|h| h.id.clone()).collect(),
            });
        }
        let driver = self.driver().await?;
        retry!(driver.parts().run_rows().step(&step, &mut decide))?;
        Ok(renewed)
    }

    async fn end_runs(
        &self,
        holder: &str,
        ends: Vec<RunEnd>,
        lease: Duration,
    ) -> Result<Vec<EndReply>, Error> {
        let held: Vec<Held> = ends.iter().map(|e| e.run.clone()).collect();
        let (keys, jobs) = keys_of(&held);
        // A repeated end answers with the retry it created: load those too.
        let retries = keys.iter().flatten().map(RunKey::retry);
        let step = Step {
            holder,
            jobs,
            keys: keys.iter().flatten().cloned().chain(retries).collect(),
        };
        let holder_id: Arc<str> = holder.into();
        let mut replies = Vec::new();
        let mut decide = |table: &mut apscheduler_core::RunTable,
                          view: &crate::run_rows::StepView| {
            replies = ends
                .iter()
                .map(|end| table.end(&holder_id, end, view.now, lease))
                .collect();
            JobWrites::default()
        };
        if step.jobs.is_empty() {
            return Ok(vec![EndReply::Refused; ends.len()]);
        }
        let driver = self.driver().await?;
        retry!(driver.parts().run_rows().step(&step, &mut decide))?;
        Ok(replies)
    }

    async fn sweep_runs(
        &self,
        sweeper: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Swept, Error> {
        codec::check_id("scheduler_id", sweeper)?;
        let driver = self.driver().await?;
        let jobs = retry!(driver.parts().run_rows().expired_jobs(limit))?;
        if jobs.is_empty() {
            return Ok(Swept::default());
        }
        let step = Step {
            holder: sweeper,
            jobs,
            keys: Vec::new(),
        };
        let sweeper_id: Arc<str> = sweeper.into();
        let mut swept = Swept::default();
        let mut decide = |table: &mut apscheduler_core::RunTable,
                          view: &crate::run_rows::StepView| {
            swept = table.sweep(&sweeper_id, view.now, lease, limit);
            JobWrites::default()
        };
        retry!(driver.parts().run_rows().step(&step, &mut decide))?;
        Ok(swept)
    }

    async fn lookup_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let Some(key) = RunKey::from_id(id) else {
            return Ok(None);
        };
        let driver = self.driver().await?;
        Ok(retry!(driver.parts().run_rows().lookup(&key))?)
    }

    async fn runs_of_job(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        let driver = self.driver().await?;
        Ok(retry!(driver.parts().run_rows().of_job(job_id))?)
    }

    async fn prune_runs(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        let driver = self.driver().await?;
        Ok(retry!(driver.parts().run_rows().prune(before))?)
    }
}
