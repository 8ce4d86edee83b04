//! Waiting runs: retries ([`RetryPolicy`](apscheduler_core::RetryPolicy) on a job: a
//! failed or timed-out attempt of a fire time gets another attempt after the policy's
//! delay) and buffered fire times ([`Overlap::BufferOne`] and [`Overlap::BufferAll`]: a
//! fire time that finds `max_instances` runs in flight waits for one to end).
//!
//! Each retry is a *waiting run*: held here, in memory, and, with a run history, as a
//! record `running` with no start time and `due_at` set, queued right after the
//! record of the attempt that failed. When it is due, a pass looks the job up and
//! starts the attempt through the job's executor like any run (its own run id, its
//! attempt number), after writing its start time to the history and seeing that write
//! confirmed. The record of a waiting run whose node dies is handed by the history to
//! one node only ([`RunHistory::interrupt_running`]), which takes it over: it runs
//! there once, at its due time ([`Engine::take_over`]). A buffered fire time is the
//! same with attempt 1 and `due_at` its fire time; it starts, oldest first, once its
//! job has room under `max_instances` (this node's runs, other nodes' with a shared
//! history, and retries waiting), however late.
//!
//! [`RunHistory::interrupt_running`]: apscheduler_core::RunHistory::interrupt_running

use apscheduler_core::{Overlap, RetryOn, RunRecord};

use super::pass::PassLookups;
use super::*;

/// A waiting run of this scheduler, as [`Engine::pending_retries`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRun {
    /// The job.
    pub job_id: Arc<str>,
    /// The fire time it is for.
    pub fire_time: DateTime<Utc>,
    /// Its attempt: 2 and up for a retry, 1 for a buffered fire time.
    pub attempt: u32,
    /// When a retry is due; a buffered fire time's own time (it starts when its job
    /// has room).
    pub due_at: DateTime<Utc>,
    /// A buffered fire time rather than a retry.
    pub buffered: bool,
}

/// One retry waiting for its due time.
pub(super) struct WaitingRun {
    pub(super) job_id: Arc<str>,
    /// The fire time it retries.
    pub(super) fire_time: DateTime<Utc>,
    /// The attempt it runs (2 for the first retry).
    pub(super) attempt: u32,
    pub(super) due_at: DateTime<Utc>,
    /// Its waiting record, when the scheduler records history.
    pub(super) record: Option<RunRecord>,
    /// A buffered fire time (starts when its job has room), not a retry (starts at
    /// `due_at`).
    pub(super) buffered: bool,
}

/// What a failed attempt gets: the attempt after it and when it is due, when the job's
/// retry policy asks for one.
pub(super) fn next_attempt(
    run: &JobRun,
    failure: &JobFailure,
    now: DateTime<Utc>,
) -> Option<(u32, DateTime<Utc>)> {
    let policy = run.policy.retry.as_ref()?;
    let on = match crate::history::outcome_of(&failure.kind) {
        RunOutcome::Failure => RetryOn::Failure,
        RunOutcome::Timeout => RetryOn::Timeout,
        // Could not run (no task, refused, worker lost) or interrupted: not an
        // attempt's failure.
        _ => return None,
    };
    let exit_code = failure
        .detail
        .as_deref()
        .and_then(|d| d.get("exit_code"))
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok());
    if !policy.retries(run.attempt, on, exit_code) {
        return None;
    }
    let next = run.attempt.saturating_add(1);
    let unit = policy.jitter.then(rand::random::<f64>);
    let delay = chrono::Duration::from_std(policy.delay_before(next, unit))
        .unwrap_or(chrono::TimeDelta::MAX);
    Some((next, now.checked_add_signed(delay).unwrap_or(now)))
}

/// What to say of a waiting run, in logs and records.
fn what(w: &WaitingRun) -> String {
    if w.buffered {
        return format!(
            "buffered fire time {} of job {}",
            w.fire_time.to_rfc3339(),
            w.job_id
        );
    }
    format!(
        "retry (attempt {}) of job {} for its fire time {}",
        w.attempt,
        w.job_id,
        w.fire_time.to_rfc3339()
    )
}

impl Engine {
    /// Holds a retry until its due time (a buffered fire time until its job has room)
    /// and wakes the main loop for it.
    pub(super) fn hold_retry(&self, waiting: WaitingRun) {
        let due = waiting.due_at;
        let mut retries = lock(&self.inner.retries);
        retries.push(waiting);
        self.count_buffered(&retries);
        drop(retries);
        self.inner.wake.wake_for(Some(due));
    }

    /// Notes how many buffered fire times wait: the executors' reporter wakes the main
    /// loop at the end of each run while some do.
    fn count_buffered(&self, retries: &[WaitingRun]) {
        let n = retries.iter().filter(|w| w.buffered).count();
        self.inner
            .buffered
            .store(n, std::sync::atomic::Ordering::Release);
    }

    /// Keeps fire time `t` of `job_id`, refused at `max_instances`, as a buffered
    /// waiting run when the job's `overlap` asks for it; `Err` with what to add to the
    /// skip's message otherwise.
    pub(super) fn buffer(
        &self,
        job_id: &Arc<str>,
        overlap: Overlap,
        t: DateTime<Tz>,
        run_id: Option<&Arc<str>>,
    ) -> Result<(), &'static str> {
        match overlap {
            Overlap::BufferAll => {}
            Overlap::BufferOne => {
                let full = lock(&self.inner.retries)
                    .iter()
                    .any(|w| w.buffered && w.job_id == *job_id);
                if full {
                    return Err("; buffer full: a fire time already waits (buffer_one)");
                }
            }
            _ => return Err(""),
        }
        let fire_time = t.with_timezone(&Utc);
        let record = match (&self.inner.history, run_id) {
            (Some(recorder), Some(id)) => recorder.to_waiting(id, fire_time),
            _ => None,
        };
        tracing::info!(target: "apscheduler", job_id = %job_id, "fire time {} of job {job_id} waits for a running instance to end ({})", t.to_rfc3339(), overlap.as_str());
        self.hold_retry(WaitingRun {
            job_id: job_id.clone(),
            fire_time,
            attempt: 1,
            due_at: fire_time,
            record,
            buffered: true,
        });
        Ok(())
    }

    /// How many waiting runs of `job_id` wait here: each counts as an instance of its
    /// job.
    pub(super) fn retries_waiting(&self, job_id: &str) -> usize {
        let retries = lock(&self.inner.retries);
        if retries.is_empty() {
            return 0;
        }
        retries.iter().filter(|w| &*w.job_id == job_id).count()
    }

    /// The waiting runs of this scheduler (retries and buffered fire times), by due
    /// time.
    pub fn pending_retries(&self) -> Vec<PendingRun> {
        if let Some(leased) = self.inner.leased() {
            let mut out: Vec<PendingRun> = lock(&leased.held)
                .values()
                .filter_map(|h| match h.run.state {
                    apscheduler_core::RunState::Waiting { due_at } => Some(PendingRun {
                        job_id: h.run.key.job_id.clone(),
                        fire_time: h.run.key.fire_time,
                        attempt: h.run.key.attempt,
                        due_at: due_at.unwrap_or(h.run.key.fire_time),
                        buffered: due_at.is_none(),
                    }),
                    _ => None,
                })
                .collect();
            out.sort_by_key(|w| w.due_at);
            return out;
        }
        let mut out: Vec<PendingRun> = lock(&self.inner.retries)
            .iter()
            .map(|w| PendingRun {
                job_id: w.job_id.clone(),
                fire_time: w.fire_time,
                attempt: w.attempt,
                due_at: w.due_at,
                buffered: w.buffered,
            })
            .collect();
        out.sort_by_key(|w| w.due_at);
        out
    }

    /// Starts the retries due at `now` (at the start of a pass; flushed with the pass's
    /// runs). Returns the due time of the next one waiting.
    pub(super) async fn start_due_retries(
        &self,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) -> Option<DateTime<Utc>> {
        let (due, buffered): (Vec<WaitingRun>, bool) = {
            let mut retries = lock(&self.inner.retries);
            if retries.is_empty() {
                return None;
            }
            let (due, later) = std::mem::take(&mut *retries)
                .into_iter()
                .partition(|w| !w.buffered && w.due_at <= now);
            *retries = later;
            (due, retries.iter().any(|w| w.buffered))
        };
        if !due.is_empty() {
            let _guard = self.inner.jobs_lock.lock().await;
            let stores = self.stores();
            for w in due {
                self.start_retry(&stores, w, now, used).await;
            }
        }
        if buffered {
            self.start_buffered(now, used).await;
        }
        let retries = lock(&self.inner.retries);
        self.count_buffered(&retries);
        retries
            .iter()
            .map(|w| {
                if w.buffered {
                    // Other nodes' runs end unannounced: looked at every second.
                    now + chrono::Duration::seconds(1)
                } else {
                    w.due_at
                }
            })
            .min()
    }

    /// Starts the oldest buffered fire time of each job that has room under its
    /// `max_instances`: its runs on this node, on other nodes (with a shared history)
    /// and its retries waiting leave one free.
    async fn start_buffered(&self, now: DateTime<Utc>, used: &mut PassLookups) {
        let _guard = self.inner.jobs_lock.lock().await;
        let stores = self.stores();
        let mut jobs: Vec<Arc<str>> = lock(&self.inner.retries)
            .iter()
            .filter(|w| w.buffered)
            .map(|w| w.job_id.clone())
            .collect();
        jobs.sort_unstable();
        jobs.dedup();
        for job_id in jobs {
            let mut job = None;
            for (_, store) in &stores {
                if let Ok(Some(found)) = store.lookup_job(&job_id).await {
                    job = Some(found);
                    break;
                }
            }
            // This node's oldest buffered fire time of the job.
            let oldest = lock(&self.inner.retries)
                .iter()
                .filter(|w| w.buffered && w.job_id == job_id)
                .map(|w| (w.fire_time, w.record.as_ref().map(|r| r.run_id.clone())))
                .min();
            let Some((fire_time, run_id)) = oldest else {
                continue;
            };
            // A removed job: start_retry records the drop.
            if let Some(job) = &job {
                let here = used
                    .get(self, &job.executor)
                    .map_or(0, |e| e.instances(&job_id));
                let retries = lock(&self.inner.retries)
                    .iter()
                    .filter(|w| !w.buffered && w.job_id == job_id)
                    .count();
                let Some(there) = self.ahead_elsewhere(&job_id, fire_time, run_id).await else {
                    continue;
                };
                if here + retries + there >= job.max_instances as usize {
                    continue;
                }
            }
            let next = {
                let mut retries = lock(&self.inner.retries);
                let i = retries
                    .iter()
                    .position(|w| w.buffered && w.job_id == job_id && w.fire_time == fire_time);
                i.map(|i| retries.remove(i))
            };
            if let Some(w) = next {
                self.start_retry(&stores, w, now, used).await;
            }
        }
    }

    /// What other nodes have of `job_id` that comes before this node's buffered fire
    /// time `fire_time` (its record `run_id`): runs in flight, retries waiting, and
    /// buffered fire times older than it (the oldest buffered fire time anywhere goes
    /// first, so two nodes' buffered fire times never wait for each other). `Some(0)`
    /// without a history; `None` when the history cannot say now (tried again).
    async fn ahead_elsewhere(
        &self,
        job_id: &str,
        fire_time: DateTime<Utc>,
        run_id: Option<String>,
    ) -> Option<usize> {
        let Some(recorder) = &self.inner.history else {
            return Some(0);
        };
        let query = apscheduler_core::RunQuery {
            job_id: Some(job_id.to_owned()),
            outcome: Some(RunOutcome::Running),
            limit: 10_000,
            ..apscheduler_core::RunQuery::default()
        };
        let running = match recorder.history().query_runs(&query).await {
            Ok(running) => running,
            Err(e) => {
                tracing::debug!(target: "apscheduler", job_id, "buffered fire time waits: the run history cannot say what runs elsewhere: {e}");
                return None;
            }
        };
        let me = (fire_time, run_id.unwrap_or_default());
        let ahead = running
            .iter()
            .filter(|r| r.node != recorder.node())
            .filter(|r| {
                let waiting = r.started_at.is_none() && r.due_at.is_some();
                let buffered = waiting && r.attempt <= 1;
                !buffered || (r.scheduled_at, r.run_id.clone()) < me
            })
            .count();
        Some(ahead)
    }

    async fn start_retry(
        &self,
        stores: &[(Arc<str>, Arc<dyn JobStore>)],
        w: WaitingRun,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) {
        let mut found = None;
        for (alias, store) in stores {
            match store.lookup_job(&w.job_id).await {
                Ok(Some(job)) => {
                    found = Some((alias.clone(), job));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    apscheduler_core::log_warn!(target: "apscheduler", job_id = %w.job_id, "{}: its job cannot be read now, tried again at the next pass: {e}", what(&w));
                    self.hold_later(w);
                    return;
                }
            }
        }
        let Some((alias, job)) = found else {
            self.drop_retry(
                None,
                w,
                "dropped: the job was removed before the retry was due".to_owned(),
            );
            return;
        };
        let tz = job.trigger.timezone();
        let late = now - w.due_at;
        // A buffered fire time waits by design: it runs however late.
        if !w.buffered
            && job
                .misfire_grace_time
                .is_some_and(|g| late.to_std().is_ok_and(|late| late > g))
        {
            let late = apscheduler_core::time::human_duration(late);
            self.drop_retry(
                Some(&alias),
                w,
                format!("missed: due {late} ago (later than the misfire grace time)"),
            );
            return;
        }
        let Some(mut planned) =
            self.plan_run(&alias, &job, vec![w.fire_time.with_timezone(&tz)], used)
        else {
            // plan_run logged and recorded why (no executor, no task).
            self.drop_retry(
                Some(&alias),
                w,
                "not started: the job's run cannot be started here".to_owned(),
            );
            return;
        };
        planned.run.attempt = w.attempt;
        planned.waiting = true;
        if let (Some(recorder), Some(record)) = (&self.inner.history, &w.record) {
            planned.run.run_ids = vec![record.run_id.as_str().into()];
            if let Err(e) = recorder.start_waiting(record.clone()).await {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %w.job_id, "{}: its start could not be written to the run history ({e}); it keeps waiting", what(&w));
                self.hold_later(w);
                return;
            }
        }
        tracing::info!(target: "apscheduler", job_id = %w.job_id, "starting {}", what(&w));
        self.start_run(&alias, planned, used, &[]);
    }

    /// Puts `w` back, to be tried at the next pass that looks (a second from now).
    fn hold_later(&self, mut w: WaitingRun) {
        if !w.buffered {
            let next = self.inner.clock.now() + chrono::Duration::seconds(1);
            w.due_at = w.due_at.max(next);
        }
        lock(&self.inner.retries).push(w);
    }

    /// A retry that does not run: logged, recorded `missed`, `EVENT_JOB_MISSED`.
    fn drop_retry(&self, alias: Option<&Arc<str>>, w: WaitingRun, why: String) {
        apscheduler_core::log_warn!(target: "apscheduler", job_id = %w.job_id, "{} {why}", what(&w));
        if let (Some(recorder), Some(record)) = (&self.inner.history, w.record) {
            recorder.end_waiting(record, RunOutcome::Missed, why);
        }
        let alias = alias.cloned().unwrap_or_else(|| DEFAULT_ALIAS.into());
        let (job_id, t, attempt) = (w.job_id, w.fire_time, w.attempt);
        self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
            Event::missed(job_id, alias, t.with_timezone(&Tz::UTC)).with_attempt(attempt)
        });
    }

    /// At shutdown: the retries not yet due do not run (each logged, recorded `missed`,
    /// `EVENT_JOB_MISSED`).
    pub(super) fn drop_retries(&self) {
        let waiting = std::mem::take(&mut *lock(&self.inner.retries));
        self.count_buffered(&[]);
        for w in waiting {
            self.drop_retry(
                None,
                w,
                "not run: the scheduler shut down before it was due".to_owned(),
            );
        }
    }

    /// Takes over the waiting runs of `records` (a dead node's, never started, `due_at`
    /// set): each is written as this node's, then held here until its due time. Returns
    /// the records to try again (the history did not confirm the write).
    pub(super) async fn take_over(&self, records: Vec<RunRecord>) -> Vec<RunRecord> {
        let Some(recorder) = &self.inner.history else {
            return Vec::new();
        };
        let mut retry = Vec::new();
        for record in records {
            let Some(due_at) = record.due_at else {
                continue;
            };
            let mut mine = record.clone();
            mine.outcome = RunOutcome::Running;
            mine.finished_at = None;
            mine.started_at = None;
            mine.message = Some(format!("taken over from node {}", record.node));
            mine.node = recorder.node().to_string();
            if let Err(e) = recorder.write_now(&mine).await {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %record.job_id, run_id = %record.run_id, "waiting run {} of node {} not taken over yet, tried again at the next pass: {e}", record.run_id, record.node);
                retry.push(record);
                continue;
            }
            tracing::info!(target: "apscheduler", job_id = %record.job_id, run_id = %record.run_id, "took over waiting run {} (attempt {}, due {}) from node {}", record.run_id, record.attempt, due_at.to_rfc3339(), record.node);
            self.hold_retry(WaitingRun {
                job_id: record.job_id.as_str().into(),
                fire_time: record.scheduled_at,
                attempt: record.attempt,
                due_at,
                record: Some(mine),
                // Attempt 1 waiting: a buffered fire time; 2 and up: a retry.
                buffered: record.attempt <= 1,
            });
        }
        retry
    }
}
