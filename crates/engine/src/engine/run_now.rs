//! Running a job once, now, outside its schedule ("run now" in a dashboard, `POST
//! /api/jobs/{id}/run`): a run like any other (its executor, `max_instances`, events,
//! a history record) that leaves the job's next run time alone. It obeys the job's
//! overlap policy as a fire time does.

use super::pass::PassLookups;
use super::*;
use apscheduler_core::Overlap;

impl Engine {
    /// Starts one run of job `id` now, on this scheduler, without touching its
    /// schedule: the job's next run time, and its trigger's grid, stay as they are.
    /// The run goes through the job's executor like a scheduled one (`max_instances`,
    /// events, and a run-history record whose message is `note`, when given).
    ///
    /// Returns the run's id in the history (`None` when this scheduler records no run
    /// history).
    ///
    /// # Errors
    /// `NotFound` for an unknown job; `InvalidState` when the scheduler is not running
    /// (paused or stopped); `Conflict` when the job already has `max_instances` runs
    /// going; `InvalidInput` when its executor or task is missing here (recorded as an
    /// `error` run too); store errors.
    pub async fn run_job_now(
        &self,
        id: &str,
        jobstore: Option<&str>,
        note: Option<&str>,
    ) -> Result<Option<String>, Error> {
        if self.state() != SchedulerState::Running {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "job '{id}' cannot be run now: the scheduler is {}",
                    self.state().as_str()
                ),
            ));
        }
        let (job, alias, store) = self.find(id, jobstore).await?;
        if let Some(runs) = self.run_store(&store) {
            return self.run_now_leased(&alias, runs, &job, note).await;
        }
        // Under cancel_other / terminate_other the run in flight is asked to stop (the
        // run starts once it ended); under allow_all there is no limit.
        let limited = matches!(
            job.policy.overlap,
            Overlap::Skip | Overlap::BufferOne | Overlap::BufferAll
        );
        if limited && self.instances(&job.id) >= job.max_instances as usize {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "job '{id}' already has {} run(s) going (max_instances = {})",
                    self.instances(&job.id),
                    job.max_instances
                ),
            ));
        }
        let mut used = PassLookups::default();
        let now = self.now_tz(job.trigger.timezone());
        let Some(planned) = self.plan_run(&alias, &job, vec![now], &mut used) else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "job '{id}' cannot run here: its executor '{}' or its task is missing",
                    job.executor
                ),
            ));
        };
        let run_id = planned.run().run_ids.first().map(|r| r.to_string());
        if let Some(recorder) = &self.inner.history {
            recorder
                .begin(std::iter::once(planned.run()), note, false)
                .await;
        }
        tracing::info!(target: "apscheduler", job_id = %job.id, run_id = run_id.as_deref().unwrap_or("-"), "running job \"{}\" now, outside its schedule", job.name);
        self.start_run(&alias, planned, &mut used, &[]);
        used.flush();
        Ok(run_id)
    }
}
