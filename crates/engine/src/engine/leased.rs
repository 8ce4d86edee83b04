//! Leased runs ([`EngineBuilder::leased_runs`]): every run of a store's jobs is a row of
//! the store's [`RunStore`], leased to the one scheduler that holds it.
//!
//! A pass releases its claimed jobs and creates their fire times' runs in one step
//! (`release_with_runs`), then asks the store to start them (`start_runs`): the store
//! decides each start (grace, `max_instances` counted over every scheduler's started
//! runs with a live lease, overlap), and only a run it answers `Started` goes to an
//! executor. Runs that wait (retries, buffered fire times) stay rows this scheduler
//! holds, started at a later pass the same way. An executor's end is written at the
//! next pass (`end_runs`; a failed attempt's retry is created in the same step). The
//! leases are kept up in [`upkeep`](super::leased_upkeep). Nothing but the store holds
//! a run: a scheduler that stalls past its lease finds its runs refused, and the one
//! that took them over starts them.

use std::collections::{BTreeMap, HashMap};

use apscheduler_core::{
    CancelSignal, Held, NewRun, ReleasedAndStarted, Run, RunEnd, RunKey, RunOrigin, RunRecord,
    RunState, RunStore, StartReply, SKIPPED_AT_MAX, SKIPPED_BEHIND_BUFFERED,
};

use super::pass::PassLookups;
use super::start::PlannedRun;
use super::unreleased::NotStarted;
use super::*;

/// The runs this scheduler holds in its stores, and the ends its executors reported
/// that are not written yet.
#[derive(Default)]
pub(super) struct Leased {
    /// By run id.
    pub(super) held: Mutex<BTreeMap<Arc<str>, HeldRun>>,
    /// Ends to write.
    pub(super) ends: Mutex<Vec<QueuedEnd>>,
    /// When the leases were last renewed and the stores swept.
    pub(super) upkeep_at: Mutex<Option<DateTime<Utc>>>,
    /// When the stores' ended runs were last pruned.
    pub(super) pruned_at: Mutex<Option<DateTime<Utc>>>,
    /// The reruns of interrupted `recover` runs this scheduler took in a sweep, by
    /// run id, with the note their record gets ("recovery of run … interrupted on node
    /// …").
    pub(super) recovering: Mutex<BTreeMap<Arc<str>, String>>,
}

/// An end to write: it goes whole ([`RunEnd::recorded`]) once its history record is
/// written. A started run's end goes before as well, unrecorded, so that the run stops
/// counting as an instance of its job while its record is written (`Ending`).
pub(super) struct QueuedEnd {
    /// The run's store.
    pub(super) alias: Arc<str>,
    /// The end, unrecorded.
    pub(super) end: RunEnd,
    /// How many history records must be written before it goes whole (its own among
    /// them: see `Recorder::queued`).
    pub(super) after: u64,
    /// It goes unrecorded first (a started run with a record to write) ...
    pub(super) early: bool,
    /// ... and did.
    pub(super) early_sent: bool,
}

impl QueuedEnd {
    /// An end whose record is written.
    pub(super) fn recorded(alias: Arc<str>, end: RunEnd) -> QueuedEnd {
        QueuedEnd {
            alias,
            end: RunEnd {
                recorded: false,
                ..end
            },
            after: 0,
            early: false,
            early_sent: false,
        }
    }

    /// Its early end is still to send.
    pub(super) fn early_due(&self) -> bool {
        self.early && !self.early_sent
    }
}

/// A run this scheduler holds: its store, its row as the store last answered, and for
/// a started run its cancellation signal.
pub(super) struct HeldRun {
    pub(super) alias: Arc<str>,
    pub(super) run: Run,
    pub(super) cancel: CancelSignal,
    /// A start of it is in flight (`start_rows`, awaiting the store): a pass must not
    /// start it too. A start may come from another task than the loop's (run now), and
    /// the store answers `Started` again to its holder.
    pub(super) starting: bool,
}

impl Leased {
    /// Holds `run` (of the store `alias`).
    pub(super) fn hold(&self, alias: &Arc<str>, run: Run, cancel: CancelSignal) {
        self.hold_as(alias, run, cancel, false);
    }

    /// Holds `run`, marked [`HeldRun::starting`] or not.
    fn hold_as(&self, alias: &Arc<str>, run: Run, cancel: CancelSignal, starting: bool) {
        lock(&self.held).insert(
            run.id.clone(),
            HeldRun {
                alias: alias.clone(),
                run,
                cancel,
                starting,
            },
        );
    }

    /// The handle to write run `id` with, if held.
    pub(super) fn handle(&self, id: &str) -> Option<(Arc<str>, Held)> {
        lock(&self.held)
            .get(id)
            .map(|h| (h.alias.clone(), h.run.held()))
    }

    /// How many held runs wait with no due time (buffered fire times).
    pub(super) fn buffered(&self) -> usize {
        lock(&self.held)
            .values()
            .filter(|h| matches!(h.run.state, RunState::Waiting { due_at: None }))
            .count()
    }

    /// Whether a held run waits for room that may come at `now`: a buffered fire time,
    /// or a retry due by then.
    pub(super) fn waits_for_room(&self, now: DateTime<Utc>) -> bool {
        lock(&self.held).values().any(|h| match h.run.state {
            RunState::Waiting { due_at: None } => true,
            RunState::Waiting { due_at: Some(t) } => t <= now,
            _ => false,
        })
    }
}

impl Engine {
    /// The store's runs, when this scheduler leases runs and the store keeps them.
    pub(super) fn run_store<'a>(&self, store: &'a Arc<dyn JobStore>) -> Option<&'a dyn RunStore> {
        self.inner.leased()?;
        store.runs()
    }

    /// The leased path of a pass's release: releases `releases` and creates the runs of
    /// `planned` in one step, then starts them. Returns the next run time the store
    /// read with the release, if it did, and the jobs whose release was not applied.
    pub(super) async fn release_leased(
        &self,
        alias: &Arc<str>,
        runs: &dyn RunStore,
        releases: Vec<JobRelease>,
        planned: Vec<PlannedRun>,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) -> Result<(Option<Option<DateTime<Utc>>>, HashMap<Arc<str>, NotStarted>), Error> {
        let mut new_runs: HashMap<Arc<str>, Vec<NewRun>> = HashMap::new();
        for p in &planned {
            let list = new_runs.entry(p.run.job_id.clone()).or_default();
            for t in &p.run.run_times {
                let fire = t.with_timezone(&Utc);
                list.push(NewRun {
                    key: RunKey::first(p.run.job_id.clone(), fire),
                    state: RunState::Claimed,
                    rules: p.release_rules(fire, now),
                    origin: RunOrigin::Scheduled,
                });
            }
        }
        let batch: Vec<(JobRelease, Vec<NewRun>)> = releases
            .into_iter()
            .map(|release| {
                let id = match &release {
                    JobRelease::Update(job) => &job.id,
                    JobRelease::Remove(id) => id,
                };
                let runs = new_runs.remove(id).unwrap_or_default();
                (release, runs)
            })
            .collect();
        // The ends reported since the last pass go in the same step.
        let ends = self.take_ends(alias);
        if ends.is_empty() && batch.is_empty() {
            return Ok((None, HashMap::new()));
        }
        // The releases' runs are created unstarted, then started in a second step (the
        // store may send it with the first's commit): a reply lost before the first's
        // answer leaves runs a sweep starts once their lease ran out.
        let ReleasedAndStarted { step, starts } = match runs
            .end_release_and_start(
                &self.inner.scheduler_id,
                ends.clone(),
                batch,
                self.inner.clock.now(),
                self.inner.lease,
            )
            .await
        {
            Ok(both) => both,
            Err(e) => {
                // Applied or not: if it was, its runs are this scheduler's rows and the
                // sweep after their lease starts them; if not, the jobs are claimed again.
                apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, "the store did not confirm the release of the pass's jobs and the creation of their {} run(s) ({e}): if it applied them, they start once their lease runs out; if not, the jobs are claimed again", planned.len());
                self.requeue_ends(alias, ends);
                return Err(e);
            }
        };
        self.apply_ends(alias, &ends, step.ended);
        let released = step.released;
        let skipped = self.report_unreleased(alias, &released.jobs, now);
        // Each created run with the store's answer to its start.
        let mut rows: HashMap<Arc<str>, (Run, Option<StartReply>)> = match starts {
            Ok(replies) => released
                .runs
                .into_iter()
                .zip(replies.into_iter().map(Some))
                .map(|(r, reply)| (r.id.clone(), (r, reply)))
                .collect(),
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "the store did not answer the start of {} run(s) ({e}); they are asked again at the next pass", released.runs.len());
                released
                    .runs
                    .into_iter()
                    .map(|r| (r.id.clone(), (r, None)))
                    .collect()
            }
        };
        let mut starting = Vec::with_capacity(planned.len());
        let mut replies = Vec::new();
        for p in planned {
            match skipped.get(&*p.run.job_id) {
                Some(NotStarted::Lost) => {
                    super::unreleased::log_lost_release(alias, &p);
                    continue;
                }
                Some(why) => {
                    self.not_started(alias, p, why);
                    continue;
                }
                None => {}
            }
            let mut mine = Vec::with_capacity(p.run.run_times.len());
            for t in &p.run.run_times {
                let id = RunKey::first(p.run.job_id.clone(), t.with_timezone(&Utc)).id();
                match rows.remove(id.as_str()) {
                    Some((row, reply)) => {
                        mine.push(row);
                        replies.push(reply);
                    }
                    None => {
                        apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %p.run.job_id, "fire time {} of job \"{}\" not started here: the store already has its run {id}", t.to_rfc3339(), p.name);
                    }
                }
            }
            if !mine.is_empty() {
                starting.push((p, mine));
            }
        }
        // Held whatever the answer: a start whose reply was lost is asked again at the
        // next pass (a repeated start answers as the first).
        if let Some(leased) = self.inner.leased() {
            for (p, rows) in &starting {
                for row in rows {
                    leased.hold(alias, row.clone(), p.run.cancel.clone());
                }
            }
        }
        if replies.iter().all(Option::is_some) {
            let replies = replies.into_iter().flatten().collect();
            self.apply_starts(alias, starting, replies, used);
        }
        Ok((released.jobs.next_run_time, skipped))
    }

    /// Asks the store to start `starting` (planned runs with their rows), holds what
    /// it keeps waiting, submits what it started and records what it ended.
    pub(super) async fn start_rows(
        &self,
        alias: &Arc<str>,
        runs: &dyn RunStore,
        starting: Vec<(PlannedRun, Vec<Run>)>,
        used: &mut PassLookups,
    ) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        if starting.is_empty() {
            return;
        }
        let handles: Vec<Held> = starting
            .iter()
            .flat_map(|(_, rows)| rows.iter().map(Run::held))
            .collect();
        // Held before the answer: a reply lost to a store outage leaves rows this
        // scheduler keeps renewing and tries again. Marked as starting until then, so
        // that a pass meanwhile does not start them as well (every row is held again
        // or dropped once the answer is applied).
        for (p, rows) in &starting {
            for row in rows {
                leased.hold_as(alias, row.clone(), p.run.cancel.clone(), true);
            }
        }
        let replies = match runs
            .start_runs(
                &self.inner.scheduler_id,
                &handles,
                self.inner.clock.now(),
                self.inner.lease,
            )
            .await
        {
            Ok(replies) => replies,
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "the store did not answer the start of {} run(s) ({e}); they are asked again at the next pass", handles.len());
                let mut held = lock(&leased.held);
                for handle in &handles {
                    if let Some(h) = held.get_mut(&handle.id) {
                        h.starting = false;
                    }
                }
                return;
            }
        };
        self.apply_starts(alias, starting, replies, used);
    }

    /// Submits the runs of `starting` the store answered `Started` (`replies`: one per
    /// row, in order), holds those that wait, records those it ended.
    fn apply_starts(
        &self,
        alias: &Arc<str>,
        starting: Vec<(PlannedRun, Vec<Run>)>,
        replies: Vec<StartReply>,
        used: &mut PassLookups,
    ) {
        let mut replies = replies.into_iter();
        for (planned, rows) in starting {
            let mut started = Vec::with_capacity(rows.len());
            for mut row in rows {
                let reply = replies.next().unwrap_or(StartReply::Refused);
                match reply {
                    StartReply::Started { at } => {
                        row.state = RunState::Started { at };
                        started.push(row);
                    }
                    other => self.unstarted_row(alias, row, other),
                }
            }
            if !started.is_empty() {
                self.submit_started(alias, planned, started, used);
            }
        }
    }

    /// Submits `planned` for its `started` rows (the store answered `Started`).
    pub(super) fn submit_started(
        &self,
        alias: &Arc<str>,
        mut planned: PlannedRun,
        started: Vec<Run>,
        used: &mut PassLookups,
    ) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let tz = planned.run.run_times[0].timezone();
        planned.run.run_times = started
            .iter()
            .map(|r| r.key.fire_time.with_timezone(&tz))
            .collect();
        planned.run.run_ids = started.iter().map(|r| r.id.clone()).collect();
        planned.run.fences = started.iter().map(|r| r.fence).collect();
        planned.run.attempt = started[0].key.attempt;
        // The store counted every scheduler's instances: the executor's own count
        // would refuse a run whose predecessor here lost its lease.
        planned.run.max_instances = u32::MAX;
        let cancel = planned.run.cancel.clone();
        for row in &started {
            leased.hold(alias, row.clone(), cancel.clone());
        }
        let executor = planned.executor.clone();
        match executor.submit_deferred(planned.run) {
            Ok(()) => used.add(&executor),
            Err(e) => {
                apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, "Error submitting job \"{}\" to its executor: {e}", planned.name);
                // Still held: its end goes like any run's, early while its record is
                // queued, so that it stops counting at `max_instances` at once.
                for row in started {
                    let failure = JobFailure::new("submit", e.to_string());
                    self.record_row(alias, &row, RunOutcome::Error, failure.to_string());
                    self.queue_end(alias, row.held(), RunOutcome::Error, None);
                }
            }
        }
    }

    /// `run_job_now` with leased runs: the run is a row (`RunOrigin::RunNow`, keyed by
    /// this instant, no misfire grace) started by the store like a fire time, so that
    /// it counts toward `max_instances` on every scheduler.
    pub(super) async fn run_now_leased(
        &self,
        alias: &Arc<str>,
        runs: &dyn RunStore,
        job: &Job,
        note: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let mut used = PassLookups::default();
        let now = self.now_tz(job.trigger.timezone());
        let Some(mut planned) = self.plan_run(alias, job, vec![now], &mut used) else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "job '{}' cannot run here: its executor '{}' or its task is missing",
                    job.id, job.executor
                ),
            ));
        };
        let fire = now.with_timezone(&Utc);
        let new = NewRun {
            key: RunKey::first(job.id.clone(), fire),
            state: RunState::Claimed,
            rules: apscheduler_core::RunRules {
                grace_until: None,
                ..planned.rules(fire)
            },
            origin: RunOrigin::RunNow,
        };
        let row = runs
            .insert_runs(&self.inner.scheduler_id, vec![new], self.inner.lease)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Conflict,
                    format!("job '{}' has a run at this very instant already", job.id),
                )
            })?;
        let id = row.id.clone();
        planned.run.run_ids = vec![id.clone()];
        if let Some(recorder) = &self.inner.history {
            recorder
                .begin(std::iter::once(planned.run()), note, false)
                .await;
        }
        tracing::info!(target: "apscheduler", job_id = %job.id, run_id = %id, "running job \"{}\" now, outside its schedule", job.name);
        self.start_rows(alias, runs, vec![(planned, vec![row])], &mut used)
            .await;
        used.flush();
        match runs.lookup_run(&id).await? {
            Some(Run {
                state: RunState::Ended { .. } | RunState::Missing { .. },
                ..
            }) => Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "job '{}' was not run now: {} (max_instances = {})",
                    job.id, SKIPPED_AT_MAX, job.max_instances
                ),
            )),
            _ => Ok(Some(id.to_string())),
        }
    }

    /// A run the store did not start: held while it waits, otherwise recorded and
    /// forgotten.
    pub(super) fn unstarted_row(&self, alias: &Arc<str>, mut row: Run, reply: StartReply) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let at = row.key.fire_time.to_rfc3339();
        match reply {
            StartReply::Waiting { due_at } => {
                row.state = RunState::Waiting { due_at };
                if due_at.is_none() {
                    tracing::info!(target: "apscheduler", job_id = %row.key.job_id, "fire time {at} of job {} waits for a running instance to end ({})", row.key.job_id, row.rules.overlap.as_str());
                    self.cancel_local(&row, &at);
                }
                leased.hold(alias, row, CancelSignal::default());
                self.note_buffered();
            }
            StartReply::Ended { reason, .. } => {
                row.state = RunState::Missing {
                    at: self.inner.clock.now(),
                };
                self.end_missed(alias, row, reason);
            }
            StartReply::Refused | StartReply::Started { .. } => {
                lock(&leased.held).remove(&row.id);
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %row.key.job_id, "run {} of job {} not started here: the store no longer holds it for this scheduler (its lease ran out and another scheduler took it over, or it ended)", row.id, row.key.job_id);
            }
        }
    }

    /// A run decided missed (its start found it past its grace or at `max_instances`,
    /// or a sweep took it over `Missing`): logged, recorded and announced, then ended
    /// with the next pass's step; held meanwhile, so that a sweeper records it if this
    /// scheduler stops first.
    pub(super) fn end_missed(&self, alias: &Arc<str>, row: Run, reason: String) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let (job_id, t) = (
            row.key.job_id.clone(),
            row.key.fire_time.with_timezone(&Tz::UTC),
        );
        apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %job_id, run_id = %row.id, "Run time {} of job {job_id} not started: {reason}", row.key.fire_time.to_rfc3339());
        let at_max = reason.starts_with(SKIPPED_AT_MAX) || reason == SKIPPED_BEHIND_BUFFERED;
        self.record_row(alias, &row, RunOutcome::Missed, reason);
        let held = row.held();
        leased.hold(alias, row, CancelSignal::default());
        self.queue_end(alias, held, RunOutcome::Missed, None);
        if at_max {
            self.inner
                .dispatcher
                .emit(event::EVENT_JOB_MAX_INSTANCES, || {
                    Event::max_instances(job_id, alias.clone(), vec![t])
                });
        } else {
            self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
                Event::missed(job_id, alias.clone(), t)
            });
        }
    }

    /// How many runs of `job_id` this scheduler holds claimed or started: instances of
    /// the job in its store until their ends are written there (0 without leased runs).
    pub(super) fn held_instances(&self, job_id: &str) -> usize {
        self.inner.leased().map_or(0, |leased| {
            lock(&leased.held)
                .values()
                .filter(|h| {
                    *h.run.key.job_id == *job_id
                        && matches!(h.run.state, RunState::Claimed | RunState::Started { .. })
                })
                .count()
        })
    }

    /// A `cancel_other` / `terminate_other` fire time waits: asks this node's runs of
    /// its job to stop (other nodes' runs learn it at their next renewal).
    fn cancel_local(&self, row: &Run, at: &str) {
        let terminate = match row.rules.overlap {
            apscheduler_core::Overlap::CancelOther => false,
            apscheduler_core::Overlap::TerminateOther => true,
            _ => return,
        };
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let reason = format!(
            "{}{at} (overlap = {})",
            overlap::CANCELLED_PREFIX,
            row.rules.overlap
        );
        for h in lock(&leased.held).values() {
            if h.run.key.job_id == row.key.job_id && matches!(h.run.state, RunState::Started { .. })
            {
                h.cancel.cancel(reason.clone(), terminate);
            }
        }
    }

    /// Tells the executors' reporter whether buffered fire times wait (it wakes the
    /// loop at each end while some do).
    pub(super) fn note_buffered(&self) {
        if let Some(leased) = self.inner.leased() {
            self.inner
                .buffered
                .store(leased.buffered(), std::sync::atomic::Ordering::Release);
        }
    }

    /// Writes `row`'s record: an end without a start (`outcome`, saying why).
    pub(super) fn record_row(
        &self,
        _alias: &Arc<str>,
        row: &Run,
        outcome: RunOutcome,
        why: String,
    ) {
        self.record_row_on(row, None, outcome, why);
    }

    /// [`record_row`](Self::record_row), naming `node` (this scheduler's when `None`).
    pub(super) fn record_row_on(
        &self,
        row: &Run,
        node: Option<&str>,
        outcome: RunOutcome,
        why: String,
    ) {
        if let Some(recorder) = &self.inner.history {
            let mut record = RunRecord::pending(
                &*row.id,
                &*row.key.job_id,
                row.key.fire_time,
                node.unwrap_or(recorder.node()).to_owned(),
            );
            record.attempt = row.key.attempt;
            record.outcome = outcome;
            record.finished_at = Some(self.inner.clock.now());
            record.message = Some(why);
            recorder.queue_waiting(record);
        }
    }

    /// Queues the end of a held run, written whole at the first pass after its record
    /// (queued before this call): a run ended in its store with its record unwritten
    /// would have none if this scheduler died then. A started run's end goes at the
    /// next pass too, unrecorded (`Ending`: live, so that a sweeper records it if this
    /// scheduler dies, and no longer an instance of its job).
    pub(super) fn queue_end(
        &self,
        alias: &Arc<str>,
        run: Held,
        outcome: RunOutcome,
        retry_at: Option<DateTime<Utc>>,
    ) {
        if let Some(leased) = self.inner.leased() {
            let after = self.inner.history.as_ref().map_or(0, |r| r.queued());
            let early = after > 0
                && lock(&leased.held)
                    .get(&run.id)
                    .is_some_and(|h| matches!(h.run.state, RunState::Started { .. }));
            lock(&leased.ends).push(QueuedEnd {
                alias: alias.clone(),
                end: RunEnd {
                    run,
                    outcome,
                    retry_at,
                    recorded: false,
                },
                after,
                early,
                early_sent: false,
            });
            self.inner.wake.wake();
        }
    }
}

/// Wakes the engine when the history writer wrote records queued ends waited for
/// (with leased runs: whether they are on is decided at the first start).
pub(super) fn wake_on_written(engine: &Engine) {
    let Some(recorder) = &engine.inner.history else {
        return;
    };
    let weak = Arc::downgrade(&engine.inner);
    recorder.on_written(Arc::new(move || {
        let Some(inner) = weak.upgrade() else { return };
        let waits = inner
            .leased()
            .is_some_and(|l| lock(&l.ends).iter().any(|q| q.after > 0));
        if waits {
            inner.wake.wake();
        }
    }));
}
