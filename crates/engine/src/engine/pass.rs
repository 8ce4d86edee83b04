//! One pass of the main loop: claim due jobs, apply misfire grace and coalescing,
//! plan the runs, store next run times. Starting the planned runs lives in
//! [`start`](super::start); releases the store did not apply, in
//! [`unreleased`](super::unreleased).

use super::start::PlannedRun;
use super::*;
use apscheduler_core::RunElsewhere;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;

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
    pub(super) fn get(&mut self, engine: &Engine, alias: &Arc<str>) -> Option<Arc<dyn Executor>> {
        if let Some((_, e, _)) = self.executors.iter().find(|(a, _, _)| a == alias) {
            return Some(e.clone());
        }
        let executor = engine.executor(alias)?;
        self.executors
            .push((alias.clone(), executor.clone(), false));
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

    /// One of the pass's runs not started yet, for the loop's own thread to run
    /// ([`Executor::take_deferred`]).
    pub(super) fn take_one(&mut self) -> Option<DeferredRun> {
        self.executors
            .iter()
            .filter(|(_, _, used)| *used)
            .find_map(|(_, executor, _)| executor.take_deferred())
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
    /// After a batch's release: starts its runs now when more batches follow, and tells
    /// the listeners of the jobs it removed (those whose release was applied).
    fn batch_released(
        &self,
        alias: &Arc<str>,
        removed: Vec<Arc<str>>,
        skipped: &HashMap<Arc<str>, super::unreleased::NotStarted>,
        more: bool,
        used: &mut PassLookups,
    ) {
        if more {
            used.flush();
        }
        for id in removed {
            if !skipped.contains_key(&*id) {
                self.emit_job(event::EVENT_JOB_REMOVED, &id, alias);
            }
        }
    }

    // ----------------------------------------------------------------- the main loop

    /// One pass of the main loop (APScheduler's `_process_jobs`): claims due jobs from
    /// every store, applies misfire grace and coalescing, submits runs, stores next run
    /// times, removes finished jobs. Returns how long to wait before the next pass
    /// (`None`: until woken).
    pub async fn process_jobs(&self) -> Option<Duration> {
        self.run_pass(false).await.0.map(|(wait, _)| wait)
    }

    /// [`process_jobs`](Self::process_jobs), also returning the instant (engine clock)
    /// the wait leads to and, with `take`, one of the pass's runs for the caller's
    /// thread to run instead of a worker ([`Executor::take_deferred`]).
    pub(crate) async fn run_pass(
        &self,
        take: bool,
    ) -> (Option<(Duration, DateTime<Utc>)>, Option<DeferredRun>) {
        if self.state() != SchedulerState::Running {
            return (None, None);
        }
        let now = self.inner.clock.now();
        let mut used = PassLookups::default();
        let interrupted = std::mem::take(&mut *lock(&self.inner.interrupted));
        // With leased runs, the store's sweep runs interrupted `recover` jobs again.
        if !interrupted.is_empty() && self.inner.leased().is_none() {
            self.recover(interrupted, &mut used).await;
        }
        let mut next_wakeup: Option<DateTime<Utc>> = match self.inner.leased() {
            Some(_) => self.leased_upkeep(now, &mut used).await,
            None => self.start_due_retries(now, &mut used).await,
        };
        let mut earliest = |t: DateTime<Utc>| {
            if next_wakeup.is_none_or(|n| t < n) {
                next_wakeup = Some(t);
            }
        };
        for (alias, store) in self.stores() {
            // A store that panics (a bug in it, a third-party crate's) fails this pass
            // like a store that errs: retried with the backoff below, said each time,
            // the other stores served meanwhile. Its claimed jobs stay leased to this
            // scheduler, whose next claim takes them back.
            let processed = AssertUnwindSafe(self.process_store(&alias, &store, now, &mut used))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(Error::new(
                        ErrorKind::Other,
                        format!(
                            "the pass over this store panicked: {}",
                            apscheduler_core::panic_message(&*panic)
                        ),
                    ))
                });
            match processed {
                Ok(next) => {
                    let mut st = lock(&self.inner.state);
                    // Guarded: hashing the alias costs more than the check, every pass.
                    if !st.store_failures.is_empty() {
                        st.store_failures.remove(&alias);
                    }
                    drop(st);
                    let caps = store.capabilities();
                    if let Some(t) = next {
                        // A store whose leases run on its own clock reports a leased job
                        // at its lease's end on that clock: when that is not after ours
                        // (the store's clock is behind), the lease is still live there,
                        // so look again shortly rather than at once, in a loop.
                        earliest(if caps.store_clock && t <= now {
                            now + chrono::Duration::from_std(LEASE_CLOCK_RETRY).unwrap_or_default()
                        } else {
                            t
                        });
                    }
                    // Other processes' changes reach a store without notifications
                    // only when it is looked at.
                    if let (Some(every), true) = (
                        self.inner.change_poll,
                        caps.shared && !caps.single_node && !caps.notifications,
                    ) {
                        earliest(now + chrono::Duration::from_std(every).unwrap_or_default());
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
        // Ends no release of this pass carried to its store.
        if self.ends_queued(true) {
            let stores = self.stores();
            if !self.write_ends(&stores).await {
                earliest(self.inner.clock.now() + chrono::Duration::seconds(1));
            }
        }
        // The pass's runs start now that it is done: a worker woken earlier would
        // interrupt the pass (here the woken thread often takes this very core).
        let taken = if take { used.take_one() } else { None };
        used.flush();
        // From the pass's end, not its start: a pass that waited on a distant store
        // must not add its own length to the next wake-up.
        let end = self.inner.clock.now();
        let wait = next_wakeup.map(|t| ((t - end).to_std().unwrap_or(Duration::ZERO), t));
        if let Some((w, _)) = wait {
            tracing::debug!(target: "apscheduler", "Next wakeup is due in {:.6} seconds", w.as_secs_f64());
        } else {
            tracing::debug!(target: "apscheduler", "No jobs; waiting until a job is added");
        }
        (wait, taken)
    }

    pub(super) async fn process_store(
        &self,
        alias: &Arc<str>,
        store: &Arc<dyn JobStore>,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        // Uncontended nearly always: taking it at once skips the async acquire.
        let _guard = match self.inner.jobs_lock.try_lock() {
            Ok(guard) => guard,
            Err(_) => self.inner.jobs_lock.lock().await,
        };
        self.add_waiting_jobs(alias).await?;
        let left_over = {
            let mut unreleased = lock(&self.inner.unreleased);
            if unreleased.is_empty() {
                None
            } else {
                unreleased.remove(alias)
            }
        };
        if let Some(left_over) = left_over {
            match store
                .release_jobs(&self.inner.scheduler_id, left_over.releases.clone())
                .await
            {
                Ok(released) => {
                    self.start_held(alias, left_over, &released, now, used)
                        .await;
                }
                Err(e) => {
                    lock(&self.inner.unreleased).insert(alias.clone(), left_over);
                    return Err(e);
                }
            }
        }
        let capabilities = store.capabilities();
        let batch = if capabilities.shared && !capabilities.single_node {
            SHARED_CLAIM_BATCH
        } else {
            CLAIM_BATCH
        };
        // The history is the store's own, and the store writes records with a release
        // in one round trip: the `running` records go with the release.
        let with_release = self
            .inner
            .history
            .as_ref()
            .filter(|recorder| recorder.records_with_release_on(&**store));
        // The next run time the last release read in its own round trip, if it did.
        let mut next_known = None;
        loop {
            // Paused or shutting down meanwhile: claim no further batch.
            if self.state() != SchedulerState::Running {
                break;
            }
            let acquired = self.claim(store, capabilities, now, batch).await?;
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
            let mut planned = Vec::with_capacity(claimed);
            for job in acquired.jobs {
                if let Some(release) =
                    self.process_job(alias, job, now, &mut removed, &mut planned, used)
                {
                    releases.push(release);
                }
            }
            if let Some(runs) = self.run_store(store) {
                let (next, skipped) = self
                    .release_leased(alias, runs, releases, planned, now, used)
                    .await?;
                next_known = next;
                self.batch_released(alias, removed, &skipped, claimed == batch, used);
                if claimed < batch {
                    break;
                }
                continue;
            }
            // `max_instances` across the nodes sharing the history: the runs other
            // nodes have in flight, read after the claim (alongside the release, which
            // it does not depend on: one round trip of waiting for both). A node
            // records a run `running` before its release, and the release comes before
            // this claim, so every instance started elsewhere is counted (an ended one
            // whose end is not written yet is counted too: a fire time is skipped,
            // never doubled).
            let read_elsewhere = async {
                match &self.inner.history {
                    Some(recorder)
                        if !planned.is_empty()
                            && capabilities.shared
                            && !capabilities.single_node =>
                    {
                        recorder.running_elsewhere().await.map(by_job)
                    }
                    _ => None,
                }
            };
            // Each fire time gets its `running` record before the release makes it this
            // node's (or with it, atomically): a node killed at any point from here on
            // leaves a record (made `interrupted` when its heartbeat stops), never a
            // fire time without a trace. Keep a copy of the releases until the store
            // has taken them (a clone is a few Arc increments per job).
            let release = async {
                match with_release {
                    Some(recorder) => {
                        let records =
                            recorder.stage(planned.iter().map(|p| &p.run), None, true, false);
                        let released = store
                            .release_jobs_recorded(
                                &self.inner.scheduler_id,
                                releases.clone(),
                                &records,
                            )
                            .await;
                        match &released {
                            Ok(_) => recorder.staged_written(&records),
                            Err(e) => recorder.staged_unwritten(records, &e.to_string()),
                        }
                        released
                    }
                    None => {
                        if let Some(recorder) = &self.inner.history {
                            recorder
                                .begin(planned.iter().map(|p| &p.run), None, true)
                                .await;
                        }
                        store
                            .release_jobs(&self.inner.scheduler_id, releases.clone())
                            .await
                    }
                }
            };
            let (mut elsewhere, released) = tokio::join!(read_elsewhere, release);
            // A fire time is started only once the release that moves its job past it
            // is applied: a release the store did not apply (or did not confirm) may
            // leave it to another scheduler, which must be the only one to start it.
            // Its runs wait for the release's retry (see `start_held`).
            let released = match released {
                Ok(released) => released,
                Err(e) => {
                    apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, "the store did not confirm the release of {} job(s) ({e}); their {} fire time(s) wait until the release is retried, and start if it applies", releases.len(), planned.len());
                    let mut unreleased = lock(&self.inner.unreleased);
                    let held = unreleased.entry(alias.clone()).or_default();
                    held.releases.extend(releases);
                    held.runs.extend(planned);
                    return Err(e);
                }
            };
            next_known = released.next_run_time;
            let skipped = self.report_unreleased(alias, &released, now);
            let mut waiting = Vec::new();
            let mut starting = Vec::with_capacity(planned.len());
            for run in planned {
                match skipped.get(&*run.run.job_id) {
                    None => {
                        let mut others = elsewhere
                            .as_mut()
                            .and_then(|e| e.remove(&*run.run.job_id))
                            .unwrap_or_default();
                        // A `running` record of one of these fire times is a dead
                        // node's: it wrote it and died before its release, which this
                        // claim shows was never applied, so it never started there.
                        others.retain(|r| {
                            !run.run
                                .run_times
                                .iter()
                                .any(|t| crate::history::is_fire_time(t, &r.scheduled_at))
                        });
                        if run.blocked_only_elsewhere(others.len()) {
                            waiting.push((run, others));
                        } else {
                            starting.push((run, others));
                        }
                    }
                    Some(why) => self.not_started(alias, run, why),
                }
            }
            self.start_recorded(alias, starting, used).await;
            if !waiting.is_empty() {
                self.wait_for_ends_elsewhere(alias, waiting);
            }
            self.batch_released(alias, removed, &skipped, claimed == batch, used);
            if claimed < batch {
                break;
            }
        }
        match next_known {
            Some(next) => Ok(next),
            None => store.get_next_run_time().await,
        }
    }

    /// Decides one claimed job's runs and its next state.
    pub(super) fn process_job(
        &self,
        alias: &Arc<str>,
        mut job: Job,
        now: DateTime<Utc>,
        removed: &mut Vec<Arc<str>>,
        planned: &mut Vec<PlannedRun>,
        used: &mut PassLookups,
    ) -> Option<JobRelease> {
        let now_tz = used.now_in(now, job.trigger.timezone());
        // The run times due, and the trigger's next fire time after the last of them.
        let (mut due, next) = run_times(&job, &now_tz);
        if due.is_empty() {
            return Some(JobRelease::Update(job));
        }
        if self.inner.leased().is_some() {
            // A leased run's fire time is its row's, kept in whole microseconds as every
            // store keeps times: its misses, events and records name the same instant.
            for t in &mut due {
                *t = chrono::SubsecRound::trunc_subsecs(*t, 6);
            }
        }
        // Fire times its calendar excludes are recorded and dropped first: coalescing
        // and the misfire grace apply to the ones left.
        self.drop_excluded(alias, &job, &mut due);
        let Some(last) = due.last().copied() else {
            job.next_run_time = next;
            return Some(if job.next_run_time.is_some() {
                JobRelease::Update(job)
            } else {
                removed.push(job.id.clone());
                JobRelease::Remove(job.id)
            });
        };
        // A catch-up window decides coalescing and misses itself (see `catchup`).
        let caught_up = self.catch_up(alias, &job, now, &mut due);
        if !caught_up && job.coalesce && due.len() > 1 {
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
        if !caught_up && due.iter().any(missed) {
            for &t in due.iter().filter(|t| missed(t)) {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "Run time of job \"{}\" was missed by {}", job.name, apscheduler_core::time::human_duration(now - t.with_timezone(&Utc)));
                self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
                    Event::missed(job.id.clone(), alias.clone(), t)
                });
                if let Some(recorder) = &self.inner.history {
                    let late = apscheduler_core::time::human_duration(now - t.with_timezone(&Utc));
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
            planned.extend(self.plan_run(alias, &job, due, used));
        }
        job.next_run_time = next;
        if job.next_run_time.is_some() {
            Some(JobRelease::Update(job))
        } else {
            removed.push(job.id.clone());
            Some(JobRelease::Remove(job.id))
        }
    }
}

/// The runs other nodes have in flight, by job.
fn by_job(runs: Vec<RunElsewhere>) -> HashMap<String, Vec<RunElsewhere>> {
    let mut jobs: HashMap<String, Vec<RunElsewhere>> = HashMap::new();
    for run in runs {
        jobs.entry(run.job_id.clone()).or_default().push(run);
    }
    jobs
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
