//! Recovery of interrupted runs (Quartz's `requestsRecovery`): a run of a job with
//! [`Job::recover`] set that this node recorded `interrupted` (its node died, or this
//! node's previous life did) is started again here, once, for the same fire time.
//!
//! The store hands each record it turns `interrupted` to one caller only
//! (`RunHistory::interrupt_running` is atomic), so each interrupted run is recovered by
//! one node at most. A recovery is a run like any other (executor, `max_instances`,
//! events, history records) except that it ignores the misfire grace time: it starts
//! however late, since the fire time did start once. It is skipped, with a warning,
//! when the fire time was run by another node, or when the dead node never got the fire
//! time (its release was not applied, so whoever claims the job next runs it).

use apscheduler_core::{RunQuery, RunRecord};

use super::pass::PassLookups;
use super::*;
use crate::membership::InterruptedHook;

/// What one interrupted run gets.
enum Decision {
    /// Started again from this job, found in this store.
    Recover(Arc<str>, Job),
    /// Not started again, for the reason given; `warn` when the job asked for it.
    Skip { reason: String, warn: bool },
    /// Not decided: the store or the history could not be reached (tried again at the
    /// next pass).
    Retry(Error),
}

impl Engine {
    /// Hands runs that were recorded `interrupted` to this scheduler for recovery: each
    /// one of a job with [`Job::recover`] set is started again, once, for its fire time
    /// (`scheduled_at`), at the next pass while the scheduler runs (a paused scheduler
    /// keeps them until it resumes). Each recovery, and each recovery skipped or failed,
    /// is logged.
    ///
    /// The scheduler does this itself for the runs it records `interrupted` (a dead
    /// node's, found by its heartbeat, and those its own previous life left `running`,
    /// found at start when [`HistoryOptions::node`](crate::HistoryOptions::node) names
    /// it). Call it for records turned `interrupted` otherwise, such as those
    /// [`RunHistory::interrupt_running`](apscheduler_core::RunHistory::interrupt_running)
    /// returned to you. Hand each record to one scheduler only: every record handed over
    /// is recovered. Needs a run history ([`EngineBuilder::run_history`]).
    pub fn recover_runs(&self, interrupted: Vec<RunRecord>) {
        if interrupted.is_empty() {
            return;
        }
        lock(&self.inner.interrupted).extend(interrupted);
        self.wakeup();
    }

    /// What the recorder hands the records this node turns `interrupted` to (and
    /// nothing once the engine is gone).
    pub(super) fn interrupted_hook(&self) -> InterruptedHook {
        let inner = Arc::downgrade(&self.inner);
        Arc::new(move |records| {
            if let Some(inner) = inner.upgrade() {
                Engine { inner }.recover_runs(records);
            }
        })
    }

    /// At shutdown: the interrupted runs no pass looked at are not recovered (said for
    /// each, in case its job asked for it).
    pub(super) fn drop_recoveries(&self) {
        for r in std::mem::take(&mut *lock(&self.inner.interrupted)) {
            apscheduler_core::log_warn!(target: "apscheduler", job_id = %r.job_id, run_id = %r.run_id, "run {} of job {} (scheduled at {}), interrupted on node {}, not recovered: the scheduler shut down first", r.run_id, r.job_id, r.scheduled_at.to_rfc3339(), r.node);
        }
    }

    /// Starts the recovery runs of `interrupted` (at the start of a pass; they are
    /// flushed with the pass's runs).
    pub(super) async fn recover(&self, interrupted: Vec<RunRecord>, used: &mut PassLookups) {
        let Some(recorder) = self.inner.history.clone() else {
            for r in &interrupted {
                apscheduler_core::log_warn!(target: "apscheduler", job_id = %r.job_id, run_id = %r.run_id, "interrupted run {} of job {} not recovered: this scheduler records no run history (EngineBuilder::run_history), which recovery needs", r.run_id, r.job_id);
            }
            return;
        };
        // Waiting runs (retries, never started, due later) are taken over, not
        // recovered: they run at their due time whatever the job's `recover`.
        let (waiting, interrupted): (Vec<_>, Vec<_>) = interrupted
            .into_iter()
            .partition(|r| r.started_at.is_none() && r.due_at.is_some());
        let mut retry = if waiting.is_empty() {
            Vec::new()
        } else {
            self.take_over(waiting).await
        };
        let _guard = self.inner.jobs_lock.lock().await;
        let stores = self.stores();
        for record in interrupted {
            let decision = self.decide(&stores, recorder.history(), &record).await;
            let what = format!(
                "run {} of job {} (scheduled at {}), interrupted on node {}",
                record.run_id,
                record.job_id,
                record.scheduled_at.to_rfc3339(),
                record.node
            );
            match decision {
                Decision::Recover(alias, job) => {
                    let t = record.scheduled_at.with_timezone(&job.trigger.timezone());
                    let Some(planned) = self.plan_run(&alias, &job, vec![t], used) else {
                        // plan_run logged and recorded why (no executor, no task).
                        apscheduler_core::log_warn!(target: "apscheduler", job_id = %record.job_id, run_id = %record.run_id, "{what}, not recovered: its run cannot be started here");
                        continue;
                    };
                    let note = if never_started(&record) {
                        format!(
                            "run of a fire time released to node {}, which died before \
                             starting it (run {})",
                            record.node, record.run_id
                        )
                    } else {
                        format!(
                            "recovery of run {} interrupted on node {}",
                            record.run_id, record.node
                        )
                    };
                    let new_id = planned.run().run_ids.first().cloned().unwrap_or_default();
                    recorder
                        .begin(std::iter::once(planned.run()), Some(&note), false)
                        .await;
                    if never_started(&record) {
                        apscheduler_core::log_warn!(target: "apscheduler", job_id = %record.job_id, run_id = %new_id, "starting {what}: node {} died before starting it; new run {new_id}", record.node);
                    } else {
                        tracing::info!(target: "apscheduler", job_id = %record.job_id, run_id = %new_id, "recovering {what}: new run {new_id}");
                    }
                    self.start_run(&alias, planned, used, &[]);
                }
                Decision::Skip { reason, warn: true } => {
                    apscheduler_core::log_warn!(target: "apscheduler", job_id = %record.job_id, run_id = %record.run_id, "{what}, not recovered: {reason}");
                }
                Decision::Skip {
                    reason,
                    warn: false,
                } => {
                    tracing::debug!(target: "apscheduler", job_id = %record.job_id, run_id = %record.run_id, "{what}, not recovered: {reason}");
                }
                Decision::Retry(e) => {
                    apscheduler_core::log_warn!(target: "apscheduler", job_id = %record.job_id, run_id = %record.run_id, "{what}: recovery not decided, tried again at the next pass: {e}");
                    retry.push(record);
                }
            }
        }
        if !retry.is_empty() {
            lock(&self.inner.interrupted).extend(retry);
        }
    }

    /// Whether `record`'s run is started again, and from which job.
    async fn decide(
        &self,
        stores: &[(Arc<str>, Arc<dyn JobStore>)],
        history: &Arc<dyn apscheduler_core::RunHistory>,
        record: &RunRecord,
    ) -> Decision {
        let mut found = None;
        for (alias, store) in stores {
            match store.lookup_job(&record.job_id).await {
                Ok(Some(job)) => {
                    found = Some((alias.clone(), job));
                    break;
                }
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::Unavailable => return Decision::Retry(e),
                Err(e) => {
                    return Decision::Skip {
                        reason: format!("the job cannot be read: {e}"),
                        warn: true,
                    }
                }
            }
        }
        let Some((alias, job)) = found else {
            // Whether it asked for recovery is unknown now: said in case it did.
            return Decision::Skip {
                reason: "the job no longer exists (a job is removed when its last fire time \
                         is released, or by its owner)"
                    .to_owned(),
                warn: true,
            };
        };
        // A fire time released to the dead node and never started there is run here,
        // whatever the job's `recover` (its start would have been written first).
        if !job.recover && !never_started(record) {
            return Decision::Skip {
                reason: "the job does not ask for recovery (recover = false)".to_owned(),
                warn: false,
            };
        }
        // Records are written before the release that moves the job past their fire
        // time: a job still at or before it was never released by the dead node, so
        // the fire time goes to whoever claims the job next (run, or recorded missed).
        // (At the history's precision: a record keeps whole microseconds, a fire time
        // may have nanoseconds, and a job still at its fire time must not look past it.)
        if job
            .next_run_time
            .is_some_and(|next| crate::history::not_past(&next, &record.scheduled_at))
        {
            return Decision::Skip {
                reason: format!(
                    "node {} died before its claim of this fire time was applied; the \
                     scheduler that claims the job next runs it (or records it missed)",
                    record.node
                ),
                warn: true,
            };
        }
        let same_fire_time = RunQuery {
            job_id: Some(record.job_id.clone()),
            since: Some(record.scheduled_at),
            until: Some(record.scheduled_at + chrono::Duration::microseconds(1)),
            limit: 1000,
            ..RunQuery::default()
        };
        let records = match history.query_runs(&same_fire_time).await {
            Ok(records) => records,
            Err(e) if e.kind() == ErrorKind::Unavailable => return Decision::Retry(e),
            Err(e) => {
                return Decision::Skip {
                    reason: format!("the run history cannot be read: {e}"),
                    warn: true,
                }
            }
        };
        // The dead node wrote its record and died before its release was confirmed;
        // another node took the fire time over: run again, it would run twice.
        // A fire time the dead node never started, that another node took over and
        // recorded `missed`, stays missed: it was never the dead node's to run. Another
        // node's `interrupted` record with a start time ran there too (that node was
        // taken for dead while it ran, or just after it started): its job's own
        // recovery, if any, is that record's.
        let unstarted = never_started(record);
        let ran = records.iter().find(|r| {
            r.run_id != record.run_id
                && match r.outcome {
                    RunOutcome::Interrupted => r.started_at.is_some(),
                    RunOutcome::Missed => unstarted,
                    _ => true,
                }
        });
        if let Some(ran) = ran {
            return Decision::Skip {
                reason: format!(
                    "node {} has this fire time's run {} ({})",
                    ran.node, ran.run_id, ran.outcome
                ),
                warn: true,
            };
        }
        Decision::Recover(alias, job)
    }
}

/// Whether `record` (turned `interrupted`) is of a fire time its node never started:
/// no start time written (it is written, awaited, before each claimed run starts), and
/// not a waiting run (`due_at`: a retry or a buffered fire time, kept by other code).
/// Whether the node owned the fire time (its release applied) is checked on the job.
fn never_started(record: &RunRecord) -> bool {
    record.started_at.is_none() && record.due_at.is_none()
}
