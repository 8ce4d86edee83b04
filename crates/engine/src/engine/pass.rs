//! One pass of the main loop: claim due jobs, apply misfire grace and coalescing,
//! submit runs, store next run times.

use super::*;

/// What one main-loop pass looks up once instead of once per job: the executors by
/// alias (and which of them got runs to flush once the pass is stored), and `now` in
/// the last job's timezone.
#[derive(Default)]
pub(super) struct PassLookups {
    /// Alias, executor, and whether runs were submitted to it since the last flush.
    pub(super) executors: Vec<(Arc<str>, Arc<dyn Executor>, bool)>,
    pub(super) now_in_zone: Option<DateTime<Tz>>,
}

impl PassLookups {
    /// The executor by `alias`, looked up in the engine on first use in this pass.
    pub(super) fn get(&mut self, engine: &Engine, alias: &str) -> Option<Arc<dyn Executor>> {
        if let Some((_, e, _)) = self.executors.iter().find(|(a, _, _)| &**a == alias) {
            return Some(e.clone());
        }
        let executor = engine.executor(alias)?;
        self.executors.push((alias.into(), executor.clone(), false));
        Some(executor)
    }

    /// Marks `executor` as having runs to start at the next flush.
    pub(super) fn add(&mut self, executor: &Arc<dyn Executor>) {
        if let Some(entry) = self
            .executors
            .iter_mut()
            .find(|(_, e, _)| Arc::ptr_eq(e, executor))
        {
            entry.2 = true;
        }
    }

    /// `now` in `tz` (converting costs a zone lookup; a pass's jobs mostly share a zone).
    pub(super) fn now_in(&mut self, now: DateTime<Utc>, tz: Tz) -> DateTime<Tz> {
        match self.now_in_zone {
            Some(t) if t.timezone() == tz => t,
            _ => {
                let t = now.with_timezone(&tz);
                self.now_in_zone = Some(t);
                t
            }
        }
    }

    pub(super) fn flush(&mut self) {
        for (_, executor, used) in &mut self.executors {
            if std::mem::take(used) {
                executor.flush();
            }
        }
    }
}

impl Engine {
    // ----------------------------------------------------------------- the main loop

    /// One pass of the main loop (APScheduler's `_process_jobs`): claims due jobs from
    /// every store, applies misfire grace and coalescing, submits runs, stores next run
    /// times, removes finished jobs. Returns how long to wait before the next pass
    /// (`None`: until woken).
    pub async fn process_jobs(&self) -> Option<Duration> {
        self.run_pass().await.map(|(wait, _)| wait)
    }

    /// [`process_jobs`](Self::process_jobs), also returning the instant (engine clock)
    /// the wait leads to.
    pub(crate) async fn run_pass(&self) -> Option<(Duration, DateTime<Utc>)> {
        if self.state() != SchedulerState::Running {
            return None;
        }
        let now = self.inner.clock.now();
        let mut used = PassLookups::default();
        let mut next_wakeup: Option<DateTime<Utc>> = None;
        let mut earliest = |t: DateTime<Utc>| {
            if next_wakeup.is_none_or(|n| t < n) {
                next_wakeup = Some(t);
            }
        };
        for (alias, store) in self.stores() {
            match self.process_store(&alias, &store, now, &mut used).await {
                Ok(next) => {
                    lock(&self.inner.state).store_failures.remove(&alias);
                    if let Some(t) = next {
                        earliest(t);
                    }
                }
                Err(e) => {
                    let failures = {
                        let mut st = lock(&self.inner.state);
                        let n = st.store_failures.entry(alias.clone()).or_insert(0);
                        *n = n.saturating_add(1);
                        *n
                    };
                    // Backoff 0.5 s, then one probe a second: cheap for a store that
                    // stays down, and the first run after it returns comes within about
                    // a second (a longer cap would let the 1 s default grace expire).
                    let delay = Duration::from_millis(500)
                        .saturating_mul(1u32 << failures.min(2).saturating_sub(1))
                        .min(STORE_RETRY_CAP);
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "error processing job store (retrying in {delay:?}): {e}");
                    earliest(now + chrono::Duration::from_std(delay).unwrap_or_default());
                }
            }
        }
        // The pass's runs start now that it is done: a worker woken earlier would
        // interrupt the pass (here the woken thread often takes this very core).
        used.flush();
        let wait = next_wakeup.map(|t| ((t - now).to_std().unwrap_or(Duration::ZERO), t));
        if let Some((w, _)) = wait {
            tracing::debug!(target: "apscheduler", "Next wakeup is due in {:.6} seconds", w.as_secs_f64());
        } else {
            tracing::debug!(target: "apscheduler", "No jobs; waiting until a job is added");
        }
        wait
    }

    pub(super) async fn process_store(
        &self,
        alias: &Arc<str>,
        store: &Arc<dyn JobStore>,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let _guard = self.inner.jobs_lock.lock().await;
        self.add_waiting_jobs(alias).await?;
        let left_over = lock(&self.inner.unreleased).remove(alias);
        if let Some(left_over) = left_over {
            if let Err(e) = store
                .release_jobs(&self.inner.scheduler_id, left_over.clone())
                .await
            {
                lock(&self.inner.unreleased).insert(alias.clone(), left_over);
                return Err(e);
            }
        }
        loop {
            let acquired = store
                .acquire_due_jobs(&self.inner.scheduler_id, now, CLAIM_BATCH, self.inner.lease)
                .await?;
            for corrupt in &acquired.corrupt {
                apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, job_id = %corrupt.id, "stored job cannot be read and was set aside: {}", corrupt.error);
                let id: Arc<str> = corrupt.id.as_str().into();
                let failure = JobFailure::new("corrupt", corrupt.error.clone());
                self.inner.dispatcher.emit(event::EVENT_JOB_ERROR, || {
                    Event::error(id, alias.clone(), now.with_timezone(&Tz::UTC), failure)
                });
            }
            let claimed = acquired.jobs.len();
            let mut releases = Vec::with_capacity(claimed);
            let mut removed = Vec::with_capacity(claimed);
            for job in acquired.jobs {
                if let Some(release) = self.process_job(alias, job, now, &mut removed, used) {
                    releases.push(release);
                }
            }
            // Keep a copy until the store has taken it (a clone is a few Arc increments
            // per job).
            let released = store
                .release_jobs(&self.inner.scheduler_id, releases.clone())
                .await;
            if claimed == CLAIM_BATCH {
                // More batches follow: start this one's runs meanwhile.
                used.flush();
            }
            if let Err(e) = released {
                lock(&self.inner.unreleased)
                    .entry(alias.clone())
                    .or_default()
                    .extend(releases);
                return Err(e);
            }
            for id in removed {
                self.emit_job(event::EVENT_JOB_REMOVED, &id, alias);
            }
            if claimed < CLAIM_BATCH {
                break;
            }
        }
        store.get_next_run_time().await
    }

    /// Decides one claimed job's runs and its next state.
    pub(super) fn process_job(
        &self,
        alias: &Arc<str>,
        mut job: Job,
        now: DateTime<Utc>,
        removed: &mut Vec<Arc<str>>,
        used: &mut PassLookups,
    ) -> Option<JobRelease> {
        let now_tz = used.now_in(now, job.trigger.timezone());
        // The run times due, and the trigger's next fire time after the last of them.
        let (mut due, next) = run_times(&job, &now_tz);
        let Some(last) = due.last().copied() else {
            return Some(JobRelease::Update(job));
        };
        if job.coalesce && due.len() > 1 {
            due.clear();
            due.push(last);
        }
        // Misfire decision before submission: late by strictly more than the grace.
        let missed = |t: &DateTime<Tz>| {
            job.misfire_grace_time.is_some_and(|grace| {
                (now - t.with_timezone(&Utc))
                    .to_std()
                    .is_ok_and(|late| late > grace)
            })
        };
        if due.iter().any(missed) {
            for &t in due.iter().filter(|t| missed(t)) {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "Run time of job \"{}\" was missed by {}", job.name, apscheduler_core::time::timedelta(now - t.with_timezone(&Utc)));
                self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
                    Event::missed(job.id.clone(), alias.clone(), t)
                });
                if let Some(recorder) = &self.inner.history {
                    let late = apscheduler_core::time::timedelta(now - t.with_timezone(&Utc));
                    recorder.not_run(
                        &job.id,
                        t,
                        RunOutcome::Missed,
                        format!("run time missed by {late} (later than the misfire grace time)"),
                    );
                }
            }
            due.retain(|t| !missed(t));
        }
        if !due.is_empty() {
            self.submit(alias, &job, due, used);
        }
        job.next_run_time = next;
        if job.next_run_time.is_some() {
            Some(JobRelease::Update(job))
        } else {
            removed.push(job.id.clone());
            Some(JobRelease::Remove(job.id))
        }
    }

    pub(super) fn submit(
        &self,
        alias: &Arc<str>,
        job: &Job,
        due: Vec<DateTime<Tz>>,
        used: &mut PassLookups,
    ) {
        let fail_all = |failure: JobFailure, due: &[DateTime<Tz>]| {
            for &t in due {
                if let Some(recorder) = &self.inner.history {
                    recorder.not_run(&job.id, t, RunOutcome::Error, failure.to_string());
                }
                let failure = failure.clone();
                self.inner.dispatcher.emit(event::EVENT_JOB_ERROR, || {
                    Event::error(job.id.clone(), alias.clone(), t, failure)
                });
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
            return;
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
            return;
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
            run_times: due,
            max_instances: job.max_instances,
        };
        // The run times again for the events of a failed submission, without copying
        // the usual single run time into a new vector on every submission.
        let first = run.run_times[0];
        let kept = (run.run_times.len() > 1).then(|| run.run_times.clone());
        let submitted = executor.submit_deferred(run);
        used.add(&executor);
        match submitted {
            Ok(()) => {
                tracing::debug!(target: "apscheduler", job_id = %job.id, "Running job \"{}\"", job.name);
            }
            Err(SubmitError::MaxInstances) => {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "Execution of job \"{}\" skipped: maximum number of running instances reached ({})", job.name, job.max_instances);
                if let Some(recorder) = &self.inner.history {
                    for &t in kept.as_deref().unwrap_or(&[first]) {
                        recorder.not_run(
                            &job.id,
                            t,
                            RunOutcome::Missed,
                            format!(
                                "skipped: maximum number of running instances reached ({})",
                                job.max_instances
                            ),
                        );
                    }
                }
                self.inner
                    .dispatcher
                    .emit(event::EVENT_JOB_MAX_INSTANCES, || {
                        Event::max_instances(
                            job.id.clone(),
                            alias.clone(),
                            kept.unwrap_or_else(|| vec![first]),
                        )
                    });
            }
            Err(e) => {
                apscheduler_core::log_error!(target: "apscheduler", job_id = %job.id, "Error submitting job \"{}\" to executor '{}': {e}", job.name, job.executor);
                let run_times = kept.unwrap_or_else(|| vec![first]);
                fail_all(JobFailure::new("submit", e.to_string()), &run_times);
            }
        }
    }
}

/// Every scheduled run time of `job` up to `now`, oldest first (bounded), and the
/// trigger's next fire time after the last of them (`job.next_run_time` when none is
/// due).
pub(super) fn run_times(
    job: &Job,
    now: &DateTime<Tz>,
) -> (Vec<DateTime<Tz>>, Option<DateTime<Tz>>) {
    // Usually one run time: a one-element allocation (it is freed by a worker thread).
    let mut times = Vec::with_capacity(1);
    let mut next = job.next_run_time;
    while let Some(t) = next {
        if t > *now {
            break;
        }
        if times.len() == MAX_RUN_TIMES {
            times.remove(0);
        }
        times.push(t);
        next = job.trigger.next_fire_time(Some(&t), now);
        if next.is_some_and(|n| n <= t) {
            // A trigger must move forward; stop rather than loop.
            break;
        }
    }
    (times, next)
}
