//! Keeping leased runs (see [`leased`](super::leased)), at the start of each pass:
//! writing the ends the executors reported, renewing the leases of the runs held here
//! and sweeping the stores for runs whose holder stopped renewing (every third of a
//! lease), and starting the waiting runs that are due.

use apscheduler_core::{
    CancelSignal, EndReply, Held, Run, RunQuery, RunRecord, RunState, RunStore, StartReply,
};

use super::leased::QueuedEnd;
use super::pass::PassLookups;
use super::start::PlannedRun;
use super::*;

/// How many expired runs one sweep takes from a store.
const SWEEP_BATCH: usize = 256;

/// How soon a write the store did not answer is tried again.
const RETRY_SOON: Duration = Duration::from_secs(1);

/// How long an ended or interrupted run stays a row, and how often a scheduler prunes
/// older ones. Long enough for a repeated end or start to get the first answer and for
/// a holder's renewal to learn its run's fate; the run history keeps what happened.
/// A store steps through a job's kept runs: fewer rows, cheaper steps.
const KEEP_ENDED: Duration = Duration::from_secs(60);

impl Engine {
    /// Writes the ends, renews and sweeps when due, starts the due waiting runs.
    /// Returns when the next pass is needed for them.
    pub(super) async fn leased_upkeep(
        &self,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) -> Option<DateTime<Utc>> {
        let leased = self.inner.leased()?;
        let stores: Vec<(Arc<str>, Arc<dyn JobStore>)> = self
            .stores()
            .into_iter()
            .filter(|(_, s)| s.runs().is_some())
            .collect();
        let mut next = None;
        let mut at = |t: DateTime<Utc>| {
            if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        let soon = now + chrono::Duration::from_std(RETRY_SOON).unwrap_or_default();
        // Ends go with the pass's release (one store step); first, though, when a
        // run waits here for room that this scheduler's own ended runs may make (a
        // buffered fire time, or a retry now due).
        if leased.waits_for_room(now) && !self.write_ends(&stores).await {
            at(soon);
        }
        let every = chrono::Duration::from_std(self.inner.lease / 3).unwrap_or_default();
        let due = lock(&leased.upkeep_at).is_none_or(|last| now >= last + every);
        if due {
            *lock(&leased.upkeep_at) = Some(now);
            for (alias, store) in &stores {
                if let Some(runs) = store.runs() {
                    self.renew(alias, runs).await;
                    self.sweep(alias, runs).await;
                }
            }
        }
        if let Some(last) = *lock(&leased.upkeep_at) {
            at(last + every);
        }
        let keep = chrono::Duration::from_std(KEEP_ENDED).unwrap_or_default();
        let prune = lock(&leased.pruned_at).is_none_or(|last| now >= last + keep);
        if prune {
            *lock(&leased.pruned_at) = Some(now);
            for (alias, store) in &stores {
                let Some(runs) = store.runs() else { continue };
                match runs.prune_runs(now - keep).await {
                    Ok(n) => {
                        tracing::debug!(target: "apscheduler", jobstore = %alias, "pruned {n} run(s) that ended more than {KEEP_ENDED:?} ago");
                    }
                    Err(e) => {
                        apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "runs that ended could not be pruned ({e}); tried again in {KEEP_ENDED:?}");
                    }
                }
            }
        }
        if self.state() == SchedulerState::Running {
            let _guard = self.inner.jobs_lock.lock().await;
            for (alias, store) in &stores {
                if let Some(runs) = store.runs() {
                    self.start_waiting_rows(alias, store, runs, now, used).await;
                }
            }
        }
        self.note_buffered();
        for h in lock(&leased.held).values() {
            if let RunState::Waiting { due_at: Some(t) } = h.run.state {
                at(t.max(now));
            }
        }
        next
    }

    /// Writes the queued ends, store by store; `false` when a store did not answer
    /// (its ends are queued again).
    pub(super) async fn write_ends(&self, stores: &[(Arc<str>, Arc<dyn JobStore>)]) -> bool {
        let mut all_written = true;
        for (alias, store) in stores {
            let Some(runs) = store.runs() else { continue };
            let ends = self.take_ends(alias);
            if ends.is_empty() {
                continue;
            }
            match runs
                .end_runs(&self.inner.scheduler_id, ends.clone(), self.inner.lease)
                .await
            {
                Ok(replies) => self.apply_ends(alias, &ends, replies),
                Err(e) => {
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "{} run end(s) not written yet ({e}); tried again shortly", ends.len());
                    self.requeue_ends(alias, ends);
                    all_written = false;
                }
            }
        }
        all_written
    }

    /// Whether ends wait to be written to their stores: any (`ready_only` false), or
    /// only those that can go now (true): whose records are written, or a started
    /// run's first end, which goes before its record.
    pub(super) fn ends_queued(&self, ready_only: bool) -> bool {
        let written = self.records_written();
        self.inner.leased().is_some_and(|l| {
            lock(&l.ends)
                .iter()
                .any(|q| !ready_only || q.after <= written || q.early_due())
        })
    }

    fn records_written(&self) -> u64 {
        self.inner.history.as_ref().map_or(0, |r| r.written())
    }

    /// The queued ends of the store `alias` that can go now: those whose records are
    /// written, whole ([`RunEnd::recorded`](apscheduler_core::RunEnd)), and the first
    /// end of a started run whose record is not (it stays queued for its record).
    pub(super) fn take_ends(&self, alias: &Arc<str>) -> Vec<apscheduler_core::RunEnd> {
        let Some(leased) = self.inner.leased() else {
            return Vec::new();
        };
        let written = self.records_written();
        let mut queued = lock(&leased.ends);
        let mut ends = Vec::new();
        queued.retain_mut(|q| {
            if q.alias != *alias {
                return true;
            }
            if q.after <= written {
                ends.push(apscheduler_core::RunEnd {
                    recorded: true,
                    ..q.end.clone()
                });
                return false;
            }
            if q.early_due() {
                q.early_sent = true;
                ends.push(q.end.clone());
            }
            true
        });
        ends
    }

    /// Queues `ends` of `alias` again (their write was not confirmed): a recorded one
    /// as written-record, an early one to be sent again.
    pub(super) fn requeue_ends(&self, alias: &Arc<str>, ends: Vec<apscheduler_core::RunEnd>) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let mut queued = lock(&leased.ends);
        for end in ends {
            if end.recorded {
                queued.push(QueuedEnd::recorded(alias.clone(), end));
            } else if let Some(q) = queued
                .iter_mut()
                .find(|q| q.alias == *alias && q.end.run.id == end.run.id)
            {
                q.early_sent = false;
            }
        }
    }

    /// What the store answered to `ends`: retries held, the ended runs forgotten.
    pub(super) fn apply_ends(
        &self,
        alias: &Arc<str>,
        ends: &[apscheduler_core::RunEnd],
        replies: Vec<EndReply>,
    ) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        for (end, reply) in ends.iter().zip(replies) {
            let mut held = lock(&leased.held);
            // An early end leaves the run held, `Ending`, until its record is written.
            let cancel = match (end.recorded, &reply) {
                (false, EndReply::Ended(_)) => match held.get_mut(&end.run.id) {
                    Some(h) => {
                        h.run.state = RunState::Ending {
                            outcome: end.outcome,
                            at: self.inner.clock.now(),
                        };
                        h.cancel.clone()
                    }
                    None => CancelSignal::default(),
                },
                _ => held
                    .remove(&end.run.id)
                    .map(|h| h.cancel)
                    .unwrap_or_default(),
            };
            match reply {
                // Held once: an early end and the recorded one both answer the retry.
                EndReply::Ended(Some(retry)) if !held.contains_key(&retry.id) => {
                    tracing::debug!(target: "apscheduler", jobstore = %alias, run_id = %retry.id, "retry {} held until {:?}", retry.id, retry.state);
                    drop(held);
                    leased.hold(alias, retry, cancel);
                }
                EndReply::Ended(_) => {}
                EndReply::Refused => {
                    drop(held);
                    if !end.recorded {
                        lock(&leased.ends).retain(|q| q.end.run.id != end.run.id);
                    }
                    // A run taken over is not retried (unless `recover`): say so rather
                    // than let the retry its policy asked for go missing unsaid.
                    let retry = end.retry_at.map_or(String::new(), |at| {
                        format!(
                            "; not retried (the retry was due {}): a run taken over is not retried",
                            at.to_rfc3339()
                        )
                    });
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, run_id = %end.run.id, "the end of run {} ({}) was not written: its lease had run out and another scheduler took it over (it records it){retry}", end.run.id, end.outcome.as_str());
                }
            }
        }
    }

    /// Renews the leases of the runs held in `alias`; a run the store no longer holds
    /// for this scheduler is forgotten, and a started run asked to stop is told so.
    async fn renew(&self, alias: &Arc<str>, runs: &dyn RunStore) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let handles: Vec<Held> = lock(&leased.held)
            .values()
            .filter(|h| h.alias == *alias)
            .map(|h| h.run.held())
            .collect();
        if handles.is_empty() {
            return;
        }
        let renewed = match runs
            .renew_runs(&self.inner.scheduler_id, &handles, self.inner.lease)
            .await
        {
            Ok(renewed) => renewed,
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "the leases of {} run(s) were not renewed ({e}); a run whose lease runs out is taken over by another scheduler", handles.len());
                return;
            }
        };
        let mut held = lock(&leased.held);
        for id in &renewed.lost {
            if let Some(h) = held.remove(id) {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %h.run.key.job_id, run_id = %id, "run {id} is no longer this scheduler's: its lease ran out ({}) and another scheduler took it over or recorded it interrupted", h.run.state.name());
            }
        }
        for run in renewed.held {
            if let Some(h) = held.get_mut(&run.id) {
                if run.stop_requested && !h.run.stop_requested {
                    let terminate = run.rules.overlap == apscheduler_core::Overlap::TerminateOther;
                    h.cancel.cancel(
                        format!(
                            "{}a later fire time (overlap = {})",
                            overlap::CANCELLED_PREFIX,
                            run.rules.overlap
                        ),
                        terminate,
                    );
                }
                // A start whose reply was lost shows as `Started` here while this
                // scheduler never ran it: it stays unstarted in memory, and its start is
                // asked again (a repeated start answers `Started` again, and it runs).
                let state = if h.run.state.is_unstarted() {
                    h.run.state
                } else {
                    run.state
                };
                h.run = Run { state, ..run };
            }
        }
    }

    /// Takes the runs of `alias` whose holder stopped renewing their leases: unstarted
    /// ones become this scheduler's (started at this pass), started ones interrupted.
    async fn sweep(&self, alias: &Arc<str>, runs: &dyn RunStore) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let swept = match runs
            .sweep_runs(&self.inner.scheduler_id, self.inner.lease, SWEEP_BATCH)
            .await
        {
            Ok(swept) => swept,
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "runs whose lease ran out could not be swept ({e}); tried again at the next renewal");
                return;
            }
        };
        // Reruns of `recover` runs whose records say they ended before their holder
        // stopped: not run again (the work is done), with why.
        let mut not_again: HashMap<apscheduler_core::RunKey, String> = HashMap::new();
        for run in swept.interrupted {
            // Recorded, then ended `Interrupted` (with the next pass's step): a sweeper
            // whose reply or end is lost has it taken over and recorded by the next.
            // The record its holder wrote at the start keeps its node and start time.
            let (started, node) = self.taken_record(&run, &swept.interrupted_from).await;
            let why = format!(
                "interrupted: {} stopped renewing its lease during the run; recorded by {}",
                node.as_deref()
                    .map_or_else(|| "its scheduler".to_owned(), |n| format!("node {n}")),
                self.recorder_name()
            );
            let ended = started
                .as_ref()
                .is_some_and(|r| r.outcome != RunOutcome::Running);
            if !ended {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %run.key.job_id, run_id = %run.id, "run {} {why}", run.id);
            }
            let rerun = run.key.rerun();
            if let (Some(record), true) = (&started, ended) {
                not_again.insert(
                    rerun,
                    format!(
                        "not run again: run {} ended ({}) on node {} before its lease ran out",
                        run.id,
                        record.outcome.as_str(),
                        record.node
                    ),
                );
            } else if let Some(taken) = swept.taken.iter().find(|t| t.key == rerun) {
                lock(&leased.recovering).insert(
                    taken.id.clone(),
                    format!(
                        "recovery of run {} interrupted on node {}",
                        run.id,
                        node.as_deref().unwrap_or("(unknown)")
                    ),
                );
            }
            let now = self.inner.clock.now();
            let end = (RunOutcome::Interrupted, now, why);
            self.record_taken(alias, &run, started, node.as_deref(), end);
            let held = run.held();
            leased.hold(alias, run, CancelSignal::default());
            self.queue_end(alias, held, RunOutcome::Interrupted, None);
        }
        for run in swept.missed {
            // A start found it missed and its holder stopped before it recorded it.
            let why = "missed: not started within the misfire grace time, or skipped at \
                       max_instances (its scheduler stopped before it recorded it)";
            self.end_missed(alias, run, why.to_owned());
        }
        for run in swept.ending {
            self.record_ending(alias, run, &swept.interrupted_from)
                .await;
        }
        // A buffered run may wait here long (behind a backfill's runs): its record names
        // this node from now on, not the one that stopped.
        let buffered = (swept.taken.iter())
            .filter(|r| r.state == RunState::Waiting { due_at: None })
            .map(|r| self.record_new_holder(alias, r));
        futures_util::future::join_all(buffered).await;
        for run in swept.taken {
            if let Some(why) = not_again.remove(&run.key) {
                // Ended at once, never held: a pass would start it. Its record may be
                // lost if this scheduler dies now; the fire time keeps its own.
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %run.key.job_id, run_id = %run.id, "run {} not started: {why}", run.id);
                self.record_row(alias, &run, RunOutcome::Missed, why);
                let end = apscheduler_core::RunEnd {
                    run: run.held(),
                    outcome: RunOutcome::Missed,
                    retry_at: None,
                    recorded: true,
                };
                if let Err(e) = runs
                    .end_runs(&self.inner.scheduler_id, vec![end], self.inner.lease)
                    .await
                {
                    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, run_id = %run.id, "the end of run {} was not written ({e}): once its lease runs out a sweeper takes it over and runs it", run.id);
                }
                continue;
            }
            tracing::info!(target: "apscheduler", jobstore = %alias, job_id = %run.key.job_id, run_id = %run.id, "took over run {} ({}), whose lease ran out", run.id, run.state.name());
            leased.hold(alias, run, CancelSignal::default());
        }
    }

    /// A run whose work ended and whose holder stopped before it recorded the end,
    /// taken over by a sweep: recorded with its outcome (unless its holder's record of
    /// the end was written), then ended with the next pass's step.
    async fn record_ending(
        &self,
        alias: &Arc<str>,
        run: Run,
        holders: &std::collections::BTreeMap<apscheduler_core::RunKey, Arc<str>>,
    ) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let RunState::Ending { outcome, at } = run.state else {
            return;
        };
        let (record, node) = self.taken_record(&run, holders).await;
        let why = format!(
            "{}: node {} stopped before it recorded the end; recorded by {}",
            outcome.as_str(),
            node.as_deref().unwrap_or("(unknown)"),
            self.recorder_name()
        );
        if record
            .as_ref()
            .is_none_or(|r| r.outcome == RunOutcome::Running)
        {
            apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %run.key.job_id, run_id = %run.id, "run {} ended {why}", run.id);
        }
        self.record_taken(alias, &run, record, node.as_deref(), (outcome, at, why));
        let held = run.held();
        leased.hold(alias, run, CancelSignal::default());
        self.queue_end(alias, held, outcome, None);
    }

    /// The record of a run taken over from a holder that stopped, and the node that ran
    /// it: the one its record names, else (it died before its writer got to the
    /// record) the scheduler that held it.
    async fn taken_record(
        &self,
        run: &Run,
        holders: &std::collections::BTreeMap<apscheduler_core::RunKey, Arc<str>>,
    ) -> (Option<RunRecord>, Option<String>) {
        let record = self.started_record(run).await;
        let node = (record.as_ref().map(|r| r.node.clone()))
            .or_else(|| holders.get(&run.key).map(|h| h.to_string()));
        (record, node)
    }

    /// The record of an unstarted run taken over (`running`, written by the holder
    /// that stopped) names this node, written before the run is held here (so before
    /// any record of its start or end).
    async fn record_new_holder(&self, alias: &Arc<str>, run: &Run) {
        let Some(recorder) = &self.inner.history else {
            return;
        };
        let Some(mut record) = self.started_record(run).await else {
            return;
        };
        if record.outcome != RunOutcome::Running || record.node == recorder.node() {
            return;
        }
        let from = std::mem::replace(&mut record.node, recorder.node().to_owned());
        match recorder.write_now(&record).await {
            Ok(()) => {
                tracing::info!(target: "apscheduler", jobstore = %alias, job_id = %run.key.job_id, run_id = %run.id, "run {} (waiting) taken over from {from}: its record names this node", run.id);
            }
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %run.key.job_id, run_id = %run.id, "run {} (waiting) taken over from {from}: its record still names {from} ({e}); its end's record names this node", run.id);
            }
        }
    }

    /// This node's name in the history, for the records it writes of others' runs.
    fn recorder_name(&self) -> &str {
        self.inner
            .history
            .as_ref()
            .map_or("this scheduler", |h| h.node())
    }

    /// Records how a run taken over ended (`end`: outcome, time, why): its start record
    /// completed, or one written from the row when there is none. A record that says
    /// how it ended already (its holder wrote it and died before ending the row) stays.
    fn record_taken(
        &self,
        alias: &Arc<str>,
        run: &Run,
        record: Option<RunRecord>,
        node: Option<&str>,
        end: (RunOutcome, DateTime<Utc>, String),
    ) {
        let (outcome, at, why) = end;
        match record {
            Some(r) if r.outcome != RunOutcome::Running => {
                tracing::info!(target: "apscheduler", jobstore = %alias, job_id = %run.key.job_id, run_id = %run.id, "run {} ended ({}) and was recorded before its holder stopped: its record is kept", run.id, r.outcome.as_str());
            }
            Some(mut r) => {
                r.outcome = outcome;
                r.finished_at = Some(at);
                r.message = Some(why);
                if let Some(recorder) = &self.inner.history {
                    recorder.queue_waiting(r);
                }
            }
            None => self.record_row_on(run, node, outcome, why),
        }
    }

    /// The history record of `run` its holder wrote at the start (with its node and
    /// start time), if there is a history and it answers.
    async fn started_record(&self, run: &Run) -> Option<RunRecord> {
        let recorder = self.inner.history.as_ref()?;
        let query = RunQuery {
            job_id: Some(run.key.job_id.to_string()),
            since: Some(run.key.fire_time),
            until: Some(run.key.fire_time + chrono::Duration::microseconds(1)),
            limit: 100,
            ..RunQuery::default()
        };
        match recorder.history().query_runs(&query).await {
            Ok(records) => records.into_iter().find(|r| *r.run_id == *run.id),
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %run.key.job_id, run_id = %run.id, "the record of run {} (taken over) could not be read ({e}): what is written of it is made from its row", run.id);
                None
            }
        }
    }

    /// Starts the runs of `alias` held here that may start now: claimed ones (taken
    /// over), retries that are due, buffered fire times.
    async fn start_waiting_rows(
        &self,
        alias: &Arc<str>,
        store: &Arc<dyn JobStore>,
        runs: &dyn RunStore,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) {
        let Some(leased) = self.inner.leased() else {
            return;
        };
        let due: Vec<Run> = lock(&leased.held)
            .values()
            .filter(|h| h.alias == *alias && !h.starting)
            .filter(|h| match h.run.state {
                RunState::Claimed | RunState::Waiting { due_at: None } => true,
                RunState::Waiting { due_at: Some(t) } => t <= now,
                _ => false,
            })
            .map(|h| h.run.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let handles: Vec<Held> = due.iter().map(Run::held).collect();
        let replies = match runs
            .start_runs(&self.inner.scheduler_id, &handles, now, self.inner.lease)
            .await
        {
            Ok(replies) => replies,
            Err(e) => {
                apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, "the store did not answer the start of {} waiting run(s) ({e}); asked again at the next pass", handles.len());
                return;
            }
        };
        // The runs of a batch this call started go to the executor as one run, which
        // runs their fire times in turn (the store counts them as one instance): the
        // batch is planned once, at its first row, and its job read once.
        let batch_of = |r: &Run| r.rules.batch.map(|b| (r.key.job_id.clone(), b));
        let mut submissions: Vec<(PlannedRun, Vec<Run>)> = Vec::new();
        let mut jobs: HashMap<Arc<str>, Result<Option<Job>, String>> = HashMap::new();
        for (mut row, reply) in due.into_iter().zip(replies) {
            let StartReply::Started { at } = reply else {
                match reply {
                    StartReply::Waiting { due_at } => {
                        if let Some(h) = lock(&leased.held).get_mut(&row.id) {
                            h.run.state = RunState::Waiting { due_at };
                        }
                    }
                    other => self.unstarted_row(alias, row, other),
                }
                continue;
            };
            row.state = RunState::Started { at };
            // (A rerun is a run of its own: never in a batch.)
            let joined = batch_of(&row).and_then(|b| {
                submissions
                    .iter_mut()
                    .find(|(_, rows)| batch_of(&rows[0]).as_ref() == Some(&b))
            });
            if let Some((_, rows)) = joined {
                tracing::info!(target: "apscheduler", jobstore = %alias, job_id = %row.key.job_id, run_id = %row.id, "starting run {} ({:?}) in its batch's instance", row.id, row.origin);
                rows.push(row);
                continue;
            }
            let job = match jobs.entry(row.key.job_id.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
                std::collections::hash_map::Entry::Vacant(e) => e
                    .insert(
                        store
                            .lookup_job(&row.key.job_id)
                            .await
                            .map_err(|e| e.to_string()),
                    )
                    .clone(),
            };
            let job = match job {
                Ok(Some(job)) => job,
                Ok(None) => {
                    self.end_unrunnable(alias, row, "the job was removed".to_owned());
                    continue;
                }
                Err(e) => {
                    self.end_unrunnable(alias, row, format!("its job could not be read: {e}"));
                    continue;
                }
            };
            let tz = job.trigger.timezone();
            let fire = row.key.fire_time.with_timezone(&tz);
            let Some(planned) = self.plan_run(alias, &job, vec![fire], used) else {
                // plan_run recorded why (no executor, no task); held until its end is
                // in the store, like any run's.
                self.queue_end(alias, row.held(), RunOutcome::Error, None);
                continue;
            };
            let recovery = lock(&leased.recovering).remove(&row.id);
            match (&recovery, &self.inner.history) {
                (Some(note), Some(recorder)) => {
                    tracing::info!(target: "apscheduler", jobstore = %alias, job_id = %row.key.job_id, run_id = %row.id, "recovering run: {note}; new run {}", row.id);
                    let mut run = planned.run().clone();
                    run.run_ids = vec![row.id.clone()];
                    run.attempt = row.key.attempt;
                    recorder
                        .begin(std::iter::once(&run), Some(note), false)
                        .await;
                }
                _ => {
                    tracing::info!(target: "apscheduler", jobstore = %alias, job_id = %row.key.job_id, run_id = %row.id, "starting run {} ({:?})", row.id, row.origin)
                }
            }
            submissions.push((planned, vec![row]));
        }
        for (planned, mut rows) in submissions {
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            self.submit_started(alias, planned, rows, used);
        }
    }

    /// A started run whose job cannot run: recorded and ended as an error.
    fn end_unrunnable(&self, alias: &Arc<str>, row: Run, why: String) {
        apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, job_id = %row.key.job_id, run_id = %row.id, "run {} not started: {why}", row.id);
        self.record_row(
            alias,
            &row,
            RunOutcome::Error,
            format!("not started: {why}"),
        );
        self.queue_end(alias, row.held(), RunOutcome::Error, None);
    }
}
