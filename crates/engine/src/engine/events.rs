//! Events: listeners, the executors' reporter, and the emitters the job API uses.

use super::*;

/// Why a failed attempt of a leased run taken over by another scheduler is not retried
/// (the run is `interrupted` in the store; only a `recover` job runs it again).
const NOT_RETRIED: &str =
    "not retried: this scheduler's lease on the run ran out during it and another scheduler took it over";

/// Turns executor callbacks into events.
pub(super) struct Reporter {
    /// The dispatcher alone, not the engine: workers report every run, and touching
    /// the engine's shared reference count from each of them costs more than the event.
    pub(super) dispatcher: Arc<Dispatcher>,
    /// Records each run's start and end, when the scheduler records history.
    pub(super) recorder: Option<Arc<Recorder>>,
    /// When a failed attempt's retry is due is counted from now on this clock.
    pub(super) clock: Arc<dyn Clock>,
    /// How many buffered fire times wait (the engine's count).
    pub(super) buffered: Arc<std::sync::atomic::AtomicUsize>,
    /// The cancellable runs in flight (`cancel_other` / `terminate_other` jobs).
    pub(super) cancellable: Arc<super::overlap::Cancellable>,
    /// The engine, for what a failure streak does (pause, notify) and to hold retries;
    /// weak: executors outlive no engine.
    pub(super) engine: std::sync::Weak<Inner>,
    /// Runs are leased rows of their stores: an end goes to the store, with its retry.
    pub(super) leased: bool,
}

impl Reporter {
    /// The retry a failed attempt gets (`attempt`, due at `due_at`), held by the
    /// engine, with its waiting record (queued for the history after the failed
    /// attempt's).
    fn retry(
        &self,
        run: &JobRun,
        run_time: DateTime<Tz>,
        (attempt, due_at): (u32, DateTime<Utc>),
    ) -> retries::WaitingRun {
        let fire_time = run_time.with_timezone(&Utc);
        let record = self
            .recorder
            .as_ref()
            .map(|r| r.waiting_record(&new_run_id(), &run.job_id, fire_time, attempt, due_at));
        retries::WaitingRun {
            job_id: run.job_id.clone(),
            fire_time,
            attempt,
            due_at,
            record,
            buffered: false,
        }
    }

    /// The leased run of `run_time`, if this scheduler still holds it: its store's
    /// alias and handle.
    fn held(
        &self,
        run: &JobRun,
        run_time: DateTime<Tz>,
    ) -> Option<(Arc<str>, apscheduler_core::Held)> {
        let inner = self.engine.upgrade()?;
        let id = run.run_id(run_time)?;
        inner.leased()?.handle(id)
    }

    /// With leased runs: queues the end of `run_time`'s run (`held`, if this scheduler
    /// still holds it) for its store, with the retry the job's policy asks for.
    fn end_leased(
        &self,
        run: &JobRun,
        run_time: DateTime<Tz>,
        result: &Result<Value, JobFailure>,
        next: Option<(u32, DateTime<Utc>)>,
        held: Option<(Arc<str>, apscheduler_core::Held)>,
    ) {
        let outcome = match result {
            Ok(_) => RunOutcome::Success,
            Err(failure) => crate::history::outcome_of(&failure.kind),
        };
        let Some(inner) = self.engine.upgrade() else {
            return;
        };
        let engine = Engine { inner };
        match held {
            Some((alias, held)) => engine.queue_end(&alias, held, outcome, next.map(|n| n.1)),
            None => {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %run.job_id, run_time = %run_time, "the end of this run is not written to its store: this scheduler no longer holds it (its lease ran out); {NOT_RETRIED}");
            }
        }
    }
}

impl RunReporter for Reporter {
    fn submitted(&self, run: &JobRun) {
        if let Some(recorder) = &self.recorder {
            recorder.started(run, 0);
        }
        self.dispatcher.emit(event::EVENT_JOB_SUBMITTED, || {
            Event::submitted(
                run.job_id.clone(),
                run.jobstore.clone(),
                run.run_times.clone(),
            )
        });
    }

    fn outcome(&self, run: &JobRun, run_time: DateTime<Tz>, result: Result<Value, JobFailure>) {
        let result = super::overlap::note_cancel(run, result);
        let next = match &result {
            Err(failure) => retries::next_attempt(run, failure, self.clock.now()),
            Ok(_) => None,
        };
        // With leased runs the store keeps the retry, created with the end: a run this
        // scheduler no longer holds (taken over while it ran) gets none.
        let held = self.leased.then(|| self.held(run, run_time)).flatten();
        let taken_over = self.leased && next.is_some() && held.is_none();
        let next = next.filter(|_| !taken_over);
        // Without leased runs this engine keeps the retry.
        let retry = next
            .filter(|_| !self.leased)
            .map(|next| self.retry(run, run_time, next));
        let after = match next {
            Some((attempt, due_at)) => Some(format!(
                "retry scheduled: attempt {attempt} at {}",
                due_at.to_rfc3339()
            )),
            None if taken_over => Some(NOT_RETRIED.to_owned()),
            None => None,
        };
        if let Some(recorder) = &self.recorder {
            recorder.ended(run, run_time, &result, after.as_deref());
            if let Some(record) = retry.as_ref().and_then(|w| w.record.clone()) {
                recorder.queue_waiting(record);
            }
            // Run times of one submission run in turn: the next starts now.
            if let Some(i) = run.run_times.iter().position(|t| *t == run_time) {
                recorder.started(run, i + 1);
            }
        }
        if self.leased {
            self.end_leased(run, run_time, &result, next, held);
        }
        let attempt = run.attempt;
        // After the record's end is queued: the follow-up reads it from the history.
        // An attempt followed by a retry is not the fire time's final outcome.
        if next.is_none() && super::streaks::has_rules(&run.policy) {
            self.follow_streak(run, run_time, &result);
        }
        match result {
            Ok(retval) => {
                tracing::info!(target: "apscheduler", job_id = %run.job_id, run_time = %run_time, "job executed successfully");
                self.dispatcher.emit(event::EVENT_JOB_EXECUTED, || {
                    Event::executed(run.job_id.clone(), run.jobstore.clone(), run_time, retval)
                        .with_attempt(attempt)
                });
            }
            Err(failure) => {
                apscheduler_core::log_error!(target: "apscheduler", job_id = %run.job_id, run_time = %run_time, attempt, "job raised an error: {failure}");
                self.dispatcher.emit(event::EVENT_JOB_ERROR, || {
                    Event::error(run.job_id.clone(), run.jobstore.clone(), run_time, failure)
                        .with_attempt(attempt)
                });
            }
        }
        let Some((next, due_at)) = next else { return };
        apscheduler_core::log_warn!(target: "apscheduler", job_id = %run.job_id, run_time = %run_time, "attempt {attempt} failed; retry scheduled: attempt {next} at {}", due_at.to_rfc3339());
        self.dispatcher.emit(event::EVENT_JOB_RETRY_SCHEDULED, || {
            Event::retry_scheduled(
                run.job_id.clone(),
                run.jobstore.clone(),
                run_time,
                next,
                due_at,
            )
        });
        let Some(waiting) = retry else { return };
        match self.engine.upgrade() {
            Some(inner) => Engine { inner }.hold_retry(waiting),
            None => {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %run.job_id, "retry (attempt {next}) not held: the scheduler is gone");
            }
        }
    }

    fn finished(&self, run: &JobRun) {
        if run.cancel.is_live() {
            self.cancellable.remove(&run.job_id, &run.cancel);
        }
        // A buffered fire time may start now that an instance is free.
        if self.buffered.load(std::sync::atomic::Ordering::Acquire) > 0 {
            if let Some(inner) = self.engine.upgrade() {
                inner.wake.wake();
            }
        }
    }
}

impl Reporter {
    /// Counts a final outcome of a job with streak rules and hands what follows
    /// (reading the history, pausing, notifying) to a task.
    fn follow_streak(
        &self,
        run: &JobRun,
        run_time: DateTime<Tz>,
        result: &Result<Value, JobFailure>,
    ) {
        let Some(inner) = self.engine.upgrade() else {
            return;
        };
        // Executors call from their own threads: the follow-up runs on the runtime the
        // scheduler started on.
        let Some(runtime) = lock(&inner.runtime).clone() else {
            apscheduler_core::log_error!(target: "apscheduler", job_id = %run.job_id, "failure streak not counted: the scheduler was never started on a runtime");
            return;
        };
        if let Some(ended) = inner.streaks.ended(run, run_time, result) {
            let engine = Engine { inner };
            runtime.spawn(async move { engine.follow_streak(ended).await });
        }
    }
}

impl Engine {
    // ----------------------------------------------------------------- listeners

    /// Calls `callback` for every event whose code is in `mask`
    /// (`EVENT_JOB_EXECUTED | EVENT_JOB_ERROR`). Listeners run on a dedicated thread in
    /// the order events happen; a panicking listener is logged and skipped.
    pub fn add_listener<F>(&self, callback: F, mask: EventMask) -> ListenerId
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        let callback: Arc<ListenerFn> = Arc::new(callback);
        self.inner.dispatcher.add(callback, mask)
    }

    /// Removes a listener; returns whether it was registered.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.inner.dispatcher.remove(id)
    }

    /// Waits until every event so far has reached the listeners.
    pub fn flush_events(&self) {
        self.inner.dispatcher.flush();
    }

    pub(super) fn emit_job(&self, code: EventMask, job_id: &Arc<str>, jobstore: &Arc<str>) {
        self.inner.dispatcher.emit(code, || Event::Job {
            code,
            job_id: job_id.clone(),
            jobstore: Some(jobstore.clone()),
        });
    }

    /// `EVENT_JOB_MODIFIED` for a job added before start: in no store yet, so no alias
    /// (as APScheduler reports it).
    pub(super) fn emit_pending_modified(&self, job_id: &Arc<str>) {
        let code = event::EVENT_JOB_MODIFIED;
        self.inner.dispatcher.emit(code, || Event::Job {
            code,
            job_id: job_id.clone(),
            jobstore: None,
        });
    }

    pub(super) fn emit_scheduler(&self, code: EventMask, alias: Option<Arc<str>>) {
        self.inner
            .dispatcher
            .emit(code, || Event::Scheduler { code, alias });
    }

    pub(super) fn emit_component(&self, code: EventMask, alias: &Arc<str>) {
        self.inner.dispatcher.emit(code, || Event::Component {
            code,
            alias: alias.clone(),
        });
    }

    /// Wakes the main loop so it recomputes its next wake-up.
    pub fn wakeup(&self) {
        self.inner.wake.wake();
    }

    /// What a store calls when another process changed its jobs: wakes the main loop
    /// (and does nothing once the engine is gone).
    pub(super) fn change_listener(&self) -> apscheduler_core::ChangeListener {
        let inner = Arc::downgrade(&self.inner);
        Arc::new(move || {
            if let Some(inner) = inner.upgrade() {
                inner.wake.wake();
            }
        })
    }

    pub(crate) fn wake_signal(&self) -> &WakeSignal {
        &self.inner.wake
    }
}
