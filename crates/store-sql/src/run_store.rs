//! [`SqlJobStore`]'s side of the run contract ([`RunSteps`], from which core derives
//! [`RunStore`](apscheduler_core::RunStore)): each step is one transaction of
//! [`crate::run_rows`]; a deadlock or serialization failure is retried at once.

use std::sync::Arc;

use apscheduler_core::{async_trait, Decide, Error, Job, Run, RunKey, RunSteps};
use chrono::{DateTime, Utc};

use crate::codec::{self, EncodedJob};
use crate::run_rows::Step;
use crate::store::SqlJobStore;

#[async_trait]
impl RunSteps for SqlJobStore {
    type Encoded = EncodedJob;

    fn encode_job(&self, job: &Job) -> Result<EncodedJob, Error> {
        self.encode(job)
    }

    async fn run_step(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        keys: Vec<RunKey>,
        decide: &mut Decide<'_, EncodedJob>,
    ) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        codec::check_id("scheduler_id", holder)?;
        for job in &jobs {
            codec::check_id("job_id", job)?;
        }
        let step = Step { holder, jobs, keys };
        let driver = self.driver().await?;
        Ok(retry!(driver.parts().run_rows().step(&step, decide))?)
    }

    async fn run_steps_chained(
        &self,
        holder: &str,
        jobs: Vec<Arc<str>>,
        keys: Vec<RunKey>,
        first: &mut Decide<'_, EncodedJob>,
        second: &mut Decide<'_, EncodedJob>,
    ) -> Result<Result<(), Error>, Error> {
        if jobs.is_empty() {
            return Ok(Ok(()));
        }
        codec::check_id("scheduler_id", holder)?;
        for job in &jobs {
            codec::check_id("job_id", job)?;
        }
        let step = Step { holder, jobs, keys };
        let driver = self.driver().await?;
        let rows = driver.parts().run_rows();
        match rows.steps(&step, first, second).await {
            Ok(Ok(())) => Ok(Ok(())),
            // The first was written; the second rolled back.
            Ok(Err(e)) if e.is_transient_conflict() => {
                Ok(retry!(rows.step(&step, second)).map_err(Error::from))
            }
            Ok(Err(e)) => Ok(Err(e.into())),
            // Neither was written.
            Err(e) if e.is_transient_conflict() => {
                retry!(rows.step(&step, first))?;
                Ok(retry!(rows.step(&step, second)).map_err(Error::from))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn expired_jobs(&self, limit: usize) -> Result<Vec<Arc<str>>, Error> {
        let driver = self.driver().await?;
        Ok(retry!(driver.parts().run_rows().expired_jobs(limit))?)
    }

    async fn job_runs(&self, job_id: &str) -> Result<Vec<Run>, Error> {
        let driver = self.driver().await?;
        Ok(retry!(driver.parts().run_rows().of_job(job_id))?)
    }

    async fn prune_ended(&self, before: DateTime<Utc>) -> Result<usize, Error> {
        let driver = self.driver().await?;
        Ok(retry!(driver.parts().run_rows().prune(before))?)
    }
}
