//! Starting the runs a pass planned: each goes to its executor once the store applied
//! the release that moves its job past the fire times, or is recorded as not started.

use super::overlap;
use super::pass::PassLookups;
use super::*;
use apscheduler_core::RunElsewhere;
use chrono::SubsecRound;

impl Engine {
    /// The run of `job` at its `due` times, to start once its release is applied; `None`
    /// (each fire time recorded as an error) when it has no executor or task.
    pub(super) fn plan_run(
        &self,
        alias: &Arc<str>,
        job: &Job,
        due: Vec<DateTime<Tz>>,
        used: &mut PassLookups,
    ) -> Option<PlannedRun> {
        let fail_all = |failure: JobFailure, due: &[DateTime<Tz>]| {
            for &t in due {
                self.record_error(alias, &job.id, t, None, &failure);
            }
        };
        let Some(executor) = used.get(self, &job.executor) else {
            apscheduler_core::log_error!(target: "apscheduler", job_id = %job.id, "Executor lookup failed: no executor '{}'", job.executor);
            fail_all(
                JobFailure::new(
                    "executor",
                    format!("no executor by the alias of '{}'", job.executor),
                ),
                &due,
            );
            return None;
        };
        let resolved = match (self.resolve_task(&job.task), &job.task) {
            (Some(task), _) => Some(task),
            // A worker process finds the task by name in its own registry; the parent
            // need not have it.
            (None, Task::Named(name)) if !executor.runs_in_process() => {
                let name = name.clone();
                Some(TaskFn::from_fn(move |_| {
                    Err(format!("task '{name}' runs only in a worker process").into())
                }))
            }
            (None, _) => None,
        };
        let Some(task) = resolved else {
            apscheduler_core::log_error!(target: "apscheduler", job_id = %job.id, "no task registered under the name '{}'", job.task);
            fail_all(
                JobFailure::new(
                    "unknown-task",
                    format!("no task is registered under the name '{}'", job.task),
                ),
                &due,
            );
            return None;
        };
        let run = JobRun {
            job_id: job.id.clone(),
            jobstore: alias.clone(),
            task_name: job.task.name().map(Into::into),
            task,
            args: job.args.clone(),
            kwargs: job.kwargs.clone(),
            run_ids: match self.inner.history {
                Some(_) => due.iter().map(|_| new_run_id()).collect(),
                None => Vec::new(),
            },
            fences: Vec::new(),
            run_times: due,
            max_instances: overlap::max_instances(job),
            attempt: 1,
            cancel: overlap::signal_for(job),
            policy: job.policy.clone(),
        };
        Some(PlannedRun {
            executor,
            run,
            name: job.name.clone(),
            executor_alias: job.executor.clone(),
            grace: job.misfire_grace_time,
            waiting: false,
            overlap: job.policy.overlap,
            recover: job.recover,
        })
    }

    /// Hands a planned run to its executor (started at the pass's flush). `elsewhere` are
    /// the runs of the job other nodes have in flight: with the executor's own
    /// instances, they count against the job's `max_instances`.
    pub(super) fn start_run(
        &self,
        alias: &Arc<str>,
        planned: PlannedRun,
        used: &mut PassLookups,
        elsewhere: &[RunElsewhere],
    ) {
        self.start_or_give_back(alias, planned, used, elsewhere, false);
    }

    /// [`start_run`](Self::start_run); with `give_back`, a run refused at
    /// `max_instances` is returned instead of recorded as skipped, for the caller to
    /// start once an instance is free (a backfill under `skip` waits rather than skip
    /// its own fire times, whoever took the instance first).
    pub(super) fn start_or_give_back(
        &self,
        alias: &Arc<str>,
        planned: PlannedRun,
        used: &mut PassLookups,
        elsewhere: &[RunElsewhere],
        give_back: bool,
    ) -> Option<PlannedRun> {
        let planned = self.overlap_gate(alias, planned)?;
        let back = give_back.then(|| planned.clone());
        let PlannedRun {
            executor,
            run,
            name,
            executor_alias,
            waiting,
            ..
        } = planned;
        let overlap = run.policy.overlap;
        let (job_id, max_instances) = (run.job_id.clone(), run.max_instances);
        // The run times again for the events of a failed submission, without copying
        // the usual single run time into a new vector on every submission.
        let first = run.run_times[0];
        let kept = (run.run_times.len() > 1).then(|| run.run_times.clone());
        // The run ids of the `running` records written for it, replaced if it does not
        // start.
        let run_ids = run.run_ids.clone();
        let cancel = run.cancel.clone();
        // A retry waiting here counts as an instance of its job, like a run elsewhere.
        let retrying = if waiting {
            0
        } else {
            self.retries_waiting(&job_id)
        };
        let cluster_full = (!elsewhere.is_empty() || retrying > 0)
            && elsewhere
                .len()
                .saturating_add(retrying)
                .saturating_add(executor.instances(&job_id))
                >= max_instances as usize;
        let submitted = if cluster_full {
            Err(SubmitError::MaxInstances)
        } else {
            let submitted = executor.submit_deferred(run);
            used.add(&executor);
            submitted
        };
        let reached = if cluster_full && retrying > 0 {
            format!(
                "{max_instances}, {retrying} of them waiting runs (retries, buffered fire times)"
            )
        } else if cluster_full {
            format!(
                "{max_instances}, {} of them on other nodes: {}",
                elsewhere.len(),
                nodes_of(elsewhere)
            )
        } else {
            max_instances.to_string()
        };
        if submitted.is_err() && cancel.is_live() {
            self.inner.cancellable.remove(&job_id, &cancel);
        }
        match submitted {
            Ok(()) => {
                tracing::debug!(target: "apscheduler", job_id = %job_id, "Running job \"{name}\"");
            }
            Err(SubmitError::MaxInstances) if back.is_some() => return back,
            Err(SubmitError::MaxInstances) => {
                // `buffer_one`/`buffer_all` keep fire times to run once there is room.
                let mut skipped = Vec::new();
                let mut full = "";
                for (i, &t) in kept.as_deref().unwrap_or(&[first]).iter().enumerate() {
                    match self.buffer(&job_id, overlap, t, run_ids.get(i)) {
                        Ok(()) => {}
                        Err(why) => {
                            full = why;
                            skipped.push((i, t));
                        }
                    }
                }
                if skipped.is_empty() {
                    return None;
                }
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job_id, "Execution of job \"{name}\" skipped: maximum number of running instances reached ({reached}){full}");
                if let Some(recorder) = &self.inner.history {
                    for &(i, t) in &skipped {
                        recorder.not_run_as(
                            run_ids.get(i),
                            &job_id,
                            t,
                            RunOutcome::Missed,
                            format!(
                                "skipped: maximum number of running instances reached ({reached}){full}"
                            ),
                        );
                    }
                }
                self.inner
                    .dispatcher
                    .emit(event::EVENT_JOB_MAX_INSTANCES, || {
                        Event::max_instances(
                            job_id.clone(),
                            alias.clone(),
                            skipped.into_iter().map(|(_, t)| t).collect(),
                        )
                    });
            }
            Err(e) => {
                apscheduler_core::log_error!(target: "apscheduler", job_id = %job_id, "Error submitting job \"{name}\" to executor '{executor_alias}': {e}");
                let failure = JobFailure::new("submit", e.to_string());
                for (i, t) in kept.unwrap_or_else(|| vec![first]).into_iter().enumerate() {
                    self.record_error(alias, &job_id, t, run_ids.get(i), &failure);
                }
            }
        }
        None
    }

    /// A fire time that did not start: history record `error`, `EVENT_JOB_ERROR`.
    fn record_error(
        &self,
        alias: &Arc<str>,
        job_id: &Arc<str>,
        t: DateTime<Tz>,
        run_id: Option<&Arc<str>>,
        failure: &JobFailure,
    ) {
        if let Some(recorder) = &self.inner.history {
            recorder.not_run_as(run_id, job_id, t, RunOutcome::Error, failure.to_string());
        }
        let failure = failure.clone();
        self.inner.dispatcher.emit(event::EVENT_JOB_ERROR, || {
            Event::error(job_id.clone(), alias.clone(), t, failure)
        });
    }
}

/// The nodes running `runs`, each named once, for a message.
fn nodes_of(runs: &[RunElsewhere]) -> String {
    let mut nodes: Vec<&str> = runs.iter().map(|r| r.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes.join(", ")
}
/// A claimed job's run, planned in a pass and started once the store applied the
/// release that moves the job past its fire times.
#[derive(Clone)]
pub(super) struct PlannedRun {
    pub(super) executor: Arc<dyn Executor>,
    pub(super) run: JobRun,
    pub(super) name: Arc<str>,
    executor_alias: Arc<str>,
    /// The job's misfire grace time: the latest a run waiting for other nodes may start.
    grace: Option<Duration>,
    /// A waiting run (a retry, a buffered fire time) starting: the other waiting runs
    /// of its job do not hold it back.
    pub(super) waiting: bool,
    /// The job's overlap policy (`cancel_other` / `terminate_other` act at the start).
    pub(super) overlap: apscheduler_core::Overlap,
    /// The job's [`Job::recover`]: a node that takes this one for dead starts the run
    /// again even once started, so it must not start on a node that may have been.
    pub(super) recover: bool,
}

impl PlannedRun {
    /// The job's rules, for the run of its fire time `fire` (see
    /// [`RunRules`](apscheduler_core::RunRules)).
    pub(super) fn rules(&self, fire: DateTime<Utc>) -> apscheduler_core::RunRules {
        // The pass chose which overdue fire times a catch-up window runs: the store
        // starts them within the window, not only within the misfire grace.
        let window = (self.run.policy.catchup.as_ref())
            .filter(|c| c.mode != apscheduler_core::CatchupMode::None)
            .map(|c| c.window);
        let grace = match (self.grace, window) {
            (Some(grace), Some(window)) => Some(grace.max(window)),
            (grace, _) => grace,
        };
        apscheduler_core::RunRules {
            max_instances: self.run.max_instances,
            overlap: self.overlap,
            grace_until: grace
                .and_then(|g| chrono::Duration::from_std(g).ok())
                .and_then(|g| fire.checked_add_signed(g)),
            recover: self.recover,
            batch: None,
        }
    }

    /// [`rules`](Self::rules) for a fire time a pass at `now` releases. Several fire
    /// times (a job with `coalesce` off, late by more than one) are one batch, run in
    /// one instance in turn, as APScheduler runs them. When catch-up mode `all` runs
    /// overdue fire times (later than the grace) in this release, each of its fire
    /// times waits for the job's running instances (`buffer_all`), so that each runs,
    /// in order, as without leased runs.
    pub(super) fn release_rules(
        &self,
        fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> apscheduler_core::RunRules {
        let mut rules = self.rules(fire);
        let all = (self.run.policy.catchup.as_ref())
            .is_some_and(|c| c.mode == apscheduler_core::CatchupMode::All);
        let overdue = self.grace.is_some_and(|g| {
            self.run.run_times.iter().any(|t| {
                (now - t.with_timezone(&Utc))
                    .to_std()
                    .is_ok_and(|late| late > g)
            })
        });
        if all && overdue {
            rules.overlap = apscheduler_core::Overlap::BufferAll;
        }
        if self.run.run_times.len() > 1 {
            // Every store keeps times to the microsecond.
            rules.batch = Some(self.run.run_times[0].with_timezone(&Utc).trunc_subsecs(6));
        }
        rules
    }

    /// The run to submit.
    pub(super) fn run(&self) -> &JobRun {
        &self.run
    }

    /// Whether its oldest fire time is past the job's misfire grace time at `now`: too
    /// late to start a run held back (by runs elsewhere, or an unconfirmed release).
    pub(super) fn past_grace(&self, now: DateTime<Utc>) -> bool {
        let first = self.run.run_times[0].with_timezone(&Utc);
        self.grace
            .is_some_and(|g| (now - first).to_std().is_ok_and(|late| late > g))
    }

    /// Whether only the `elsewhere` runs other nodes have in flight keep this run from
    /// starting (this node's own instances leave room under `max_instances`).
    pub(super) fn blocked_only_elsewhere(&self, elsewhere: usize) -> bool {
        // Checked first: the executor's count is a lookup under a lock, on every run of
        // every pass, and needed only when other nodes have runs of the job.
        if elsewhere == 0 {
            return false;
        }
        let max = self.run.max_instances as usize;
        let here = self.executor.instances(&self.run.job_id);
        here < max && here.saturating_add(elsewhere) >= max
    }
}
