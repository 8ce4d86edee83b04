//! Failure streaks: `pause_after_failures` and `notify_after_failures`.
//!
//! A job's streak is the number of its consecutive failed fire times since its last
//! success (or since it was resumed after a pause by the policy). A fire time fails
//! when its final attempt fails: a failure its retry policy retries does not count yet.
//!
//! With a run history, the streak is read from it (the job's latest ended records), so
//! every node sharing the history counts the same runs, whichever node ran them: the
//! node that ran a fire time counts the streak as of that fire time's record. Without
//! one, the node counts in memory.
//!
//! At `notify_after_failures` failures in a row the run observers (webhooks) get a
//! `job.failing` notification, and at the next success a `job.recovered` one: once per
//! streak. At `pause_after_failures` failures in a row the job is paused (no next run
//! time) with its `paused_reason` saying why; the last failure's record says so too, and
//! the streak ends there. Resuming the job clears the reason and starts a new streak.

use apscheduler_core::{JobRun, RunOutcome, RunPolicy, RunQuery, RunRecord, StreakChange};

use super::*;

/// What the last failure's record message gets when its streak paused the job; a
/// streak read from the history ends at a record carrying it.
pub(super) const PAUSE_NOTE: &str = "the job was paused by its policy after";

/// The ended records read to count a streak, beyond `N` times the attempts.
const READ_MARGIN: usize = 20;

/// Per-job streak state kept by this node.
#[derive(Default)]
pub(super) struct Streaks {
    /// Consecutive final failures by job, counted here (no history).
    counts: Mutex<HashMap<Arc<str>, u32>>,
    /// When this node resumed each job: records that ended before do not count.
    resumed: Mutex<HashMap<Arc<str>, DateTime<Utc>>>,
}

/// A final outcome of a job with streak rules, for the follow-up task.
pub(super) struct Ended {
    job_id: Arc<str>,
    jobstore: Arc<str>,
    policy: Arc<RunPolicy>,
    run_id: Option<Arc<str>>,
    run_time: DateTime<Tz>,
    failed: bool,
    /// The failure in words (`exit status 1`).
    what: String,
    /// The streak counted in memory, this outcome included (before it, for a success).
    counted: u32,
}

/// Whether a policy has streak rules (the only runs whose outcomes are followed).
pub(super) fn has_rules(policy: &RunPolicy) -> bool {
    policy.pause_after_failures.is_some() || policy.notify_after_failures.is_some()
}

/// Whether `record` counts as a failed fire time: it failed (or timed out, could not
/// run, was interrupted) and no retry follows it.
fn is_final_failure(policy: &RunPolicy, record: &RunRecord) -> bool {
    let on = match record.outcome {
        RunOutcome::Failure | RunOutcome::Error | RunOutcome::Interrupted => {
            apscheduler_core::RetryOn::Failure
        }
        RunOutcome::Timeout => apscheduler_core::RetryOn::Timeout,
        _ => return false,
    };
    !policy
        .retry
        .as_ref()
        .is_some_and(|r| r.retries(record.attempt, on, record.exit_code))
}

/// A job's current failure streak read from its records (newest first, as
/// `RunHistory::query_runs` returns them): its failed fire times since its last success
/// or its last pause by the policy (at most as many as `records` hold).
pub fn failure_streak(records: &[RunRecord], policy: &RunPolicy) -> u32 {
    streak_of(records, policy, None)
}

/// The streak as of the record at `records[0]` (newest first, one job's): the final
/// failures from it back to the last success, the last pause by the policy, or the
/// last resume on this node.
pub(crate) fn streak_of(
    records: &[RunRecord],
    policy: &RunPolicy,
    resumed: Option<DateTime<Utc>>,
) -> u32 {
    let mut n = 0;
    for (i, r) in records.iter().enumerate() {
        if resumed.is_some_and(|t| r.finished_at.is_some_and(|f| f < t)) {
            break;
        }
        match r.outcome {
            RunOutcome::Success => break,
            RunOutcome::Running | RunOutcome::Missed => continue,
            _ => {}
        }
        if i > 0 && r.message.as_deref().is_some_and(|m| m.contains(PAUSE_NOTE)) {
            break;
        }
        if is_final_failure(policy, r) {
            n += 1;
        }
    }
    n
}

impl Streaks {
    /// Counts a final outcome in memory and returns what the follow-up needs; `None`
    /// for a failure a retry follows.
    pub(super) fn ended(
        &self,
        run: &JobRun,
        run_time: DateTime<Tz>,
        result: &Result<Value, JobFailure>,
    ) -> Option<Ended> {
        let (failed, what, exit_code) = match result {
            Ok(_) => (false, String::new(), None),
            Err(f) => {
                let code = f
                    .detail
                    .as_ref()
                    .and_then(|d| d.get("exit_code"))
                    .and_then(Value::as_i64)
                    .and_then(|c| i32::try_from(c).ok());
                (true, f.message.clone(), code)
            }
        };
        if failed {
            // A failure its retry policy retries is not the fire time's final outcome.
            let on = if result.as_ref().is_err_and(|f| f.kind == "timeout") {
                apscheduler_core::RetryOn::Timeout
            } else {
                apscheduler_core::RetryOn::Failure
            };
            if run
                .policy
                .retry
                .as_ref()
                .is_some_and(|r| r.retries(run.attempt, on, exit_code))
            {
                return None;
            }
        }
        let counted = {
            let mut counts = lock(&self.counts);
            let n = counts.entry(run.job_id.clone()).or_insert(0);
            if failed {
                *n += 1;
                *n
            } else {
                std::mem::take(n)
            }
        };
        Some(Ended {
            job_id: run.job_id.clone(),
            jobstore: run.jobstore.clone(),
            policy: run.policy.clone(),
            run_id: run.run_id(run_time).cloned(),
            run_time,
            failed,
            what,
            counted,
        })
    }

    /// A job resumed here: its streak starts again.
    pub(super) fn reset(&self, job_id: &Arc<str>, now: DateTime<Utc>) {
        lock(&self.counts).remove(job_id);
        lock(&self.resumed).insert(job_id.clone(), now);
    }

    /// The job's current streak counted on this node (no history), for display.
    pub(super) fn counted(&self, job_id: &str) -> u32 {
        lock(&self.counts).get(job_id).copied().unwrap_or(0)
    }
}

impl Engine {
    /// After a final outcome of a job with streak rules: counts the streak (from the
    /// history when there is one), pauses the job and notifies as its policy says.
    pub(super) async fn follow_streak(&self, ended: Ended) {
        if !ended.failed {
            self.notify_streak(StreakChange::Counted, &ended, 0, None);
            // Beyond that, a success matters only to a "recovered" notification.
            if ended.policy.notify_after_failures.is_none() {
                return;
            }
        }
        let (streak, record) = self.streak_at(&ended).await;
        let policy = &ended.policy;
        let at = apscheduler_core::time::to_rfc3339(&ended.run_time);
        if !ended.failed {
            if policy.notify_after_failures.is_some_and(|n| streak >= n) {
                tracing::info!(target: "apscheduler", job_id = %ended.job_id, "Job recovered after {streak} consecutive failures (run at {at} succeeded)");
                self.notify_streak(StreakChange::Recovered, &ended, streak, record);
            }
            return;
        }
        self.notify_streak(StreakChange::Counted, &ended, streak, None);
        if policy.notify_after_failures == Some(streak) {
            apscheduler_core::log_warn!(target: "apscheduler", job_id = %ended.job_id, "Job failing: {streak} consecutive failures; last: run at {at}: {}", ended.what);
            self.notify_streak(StreakChange::Failing, &ended, streak, record.clone());
        }
        if policy.pause_after_failures.is_some_and(|n| streak >= n) {
            let run = ended.run_id.as_deref().unwrap_or("-");
            let reason = format!(
                "paused after {streak} consecutive failures; last: run {run} at {at}: {}",
                ended.what
            );
            self.pause_by_policy(&ended, &reason, streak, record).await;
        }
    }

    /// The streak as of `ended` (this outcome included, for a failure; the failures
    /// before it, for a success) and the outcome's record, when read from the history.
    async fn streak_at(&self, ended: &Ended) -> (u32, Option<RunRecord>) {
        let (Some(recorder), Some(run_id)) = (&self.inner.history, &ended.run_id) else {
            return (ended.counted, None);
        };
        recorder.flush(Duration::from_secs(10), false).await;
        let n = ended
            .policy
            .pause_after_failures
            .max(ended.policy.notify_after_failures)
            .unwrap_or(1) as usize;
        let attempts = ended.policy.retry.as_ref().map_or(1, |r| r.attempts) as usize;
        let query = RunQuery {
            job_id: Some(ended.job_id.to_string()),
            limit: n.saturating_mul(attempts).saturating_add(READ_MARGIN),
            ..RunQuery::default()
        };
        let records = match recorder.history().query_runs(&query).await {
            Ok(records) => records,
            Err(e) => {
                apscheduler_core::log_error!(target: "apscheduler", job_id = %ended.job_id, "failure streak counted on this node only: the run history cannot be read ({e})");
                return (ended.counted, None);
            }
        };
        let Some(pos) = records.iter().position(|r| *r.run_id == **run_id) else {
            return (ended.counted, None);
        };
        let resumed = lock(&self.inner.streaks.resumed)
            .get(&ended.job_id)
            .copied();
        let from = if ended.failed { pos } else { pos + 1 };
        let streak = streak_of(&records[from.min(records.len())..], &ended.policy, resumed);
        (streak, Some(records[pos].clone()))
    }

    /// Pauses the job with `reason` (unless it is paused already or gone), logs it,
    /// emits `EVENT_JOB_MODIFIED` and notes the pause in the last failure's record.
    async fn pause_by_policy(
        &self,
        ended: &Ended,
        reason: &str,
        streak: u32,
        record: Option<RunRecord>,
    ) {
        let paused = {
            let _guard = self.inner.jobs_lock.lock().await;
            match self.find(&ended.job_id, Some(&ended.jobstore)).await {
                Ok((mut job, alias, store)) if !job.is_paused() => {
                    job.next_run_time = None;
                    job.paused_reason = Some(reason.into());
                    match store.update_job(job).await {
                        Ok(()) => Some(alias),
                        Err(e) => {
                            apscheduler_core::log_error!(target: "apscheduler", job_id = %ended.job_id, "Job not paused after {streak} consecutive failures: the store refused the change ({e})");
                            None
                        }
                    }
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(target: "apscheduler", job_id = %ended.job_id, "job not paused by its policy: {e}");
                    None
                }
            }
        };
        let Some(alias) = paused else {
            return;
        };
        apscheduler_core::log_warn!(target: "apscheduler", job_id = %ended.job_id, "Job {reason}");
        self.emit_job(event::EVENT_JOB_MODIFIED, &ended.job_id, &alias);
        lock(&self.inner.streaks.counts).remove(&ended.job_id);
        if let (Some(recorder), Some(mut record)) = (&self.inner.history, record) {
            let note = format!("{PAUSE_NOTE} {streak} consecutive failures");
            record.message = Some(match record.message.take() {
                Some(m) => format!("{m} ({note})"),
                None => note,
            });
            if let Err(e) = recorder.history().record_runs(&[record]).await {
                apscheduler_core::log_error!(target: "apscheduler", job_id = %ended.job_id, "the pause is not noted in the last failure's record: {e}");
            }
        }
    }

    /// Hands a `job.failing` / `job.recovered` notification to the run observers.
    fn notify_streak(
        &self,
        change: StreakChange,
        ended: &Ended,
        streak: u32,
        record: Option<RunRecord>,
    ) {
        if let Some(recorder) = &self.inner.history {
            recorder.streak_changed(change, &ended.job_id, streak, record.as_ref());
        }
    }

    /// The job's failure streak as this node counted it (no history) — for display;
    /// with a history, the streak is counted from its records instead.
    pub fn failure_streak_here(&self, job_id: &str) -> u32 {
        self.inner.streaks.counted(job_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apscheduler_core::RetryPolicy;
    use chrono::TimeZone;

    fn record(i: u32, outcome: RunOutcome, attempt: u32) -> RunRecord {
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, i, 0).unwrap();
        RunRecord {
            outcome,
            attempt,
            finished_at: Some(at),
            exit_code: (outcome == RunOutcome::Failure).then_some(1),
            ..RunRecord::pending(format!("r{i}"), "job", at, "node")
        }
    }

    #[test]
    fn a_streak_counts_final_failures_back_to_the_last_success() {
        let policy = RunPolicy::default();
        use RunOutcome::*;
        // Newest first.
        let records = [
            record(5, Failure, 1),
            record(4, Missed, 1),
            record(3, Timeout, 1),
            record(2, Success, 1),
            record(1, Failure, 1),
        ];
        assert_eq!(streak_of(&records, &policy, None), 2);
        // A resume at 10:04 leaves only the 10:05 failure.
        let resumed = Utc.with_ymd_and_hms(2024, 1, 15, 10, 4, 30).unwrap();
        assert_eq!(streak_of(&records, &policy, Some(resumed)), 1);
    }

    #[test]
    fn with_retries_only_final_attempts_count() {
        let policy = RunPolicy {
            retry: Some(RetryPolicy::new(2, Duration::from_secs(1))),
            ..RunPolicy::default()
        };
        use RunOutcome::*;
        // Fire times 10:01 and 10:03 failed twice each; 10:05's first attempt failed
        // and is retried: two failed fire times.
        let records = [
            record(5, Failure, 1),
            record(4, Failure, 2),
            record(3, Failure, 1),
            record(2, Failure, 2),
            record(1, Failure, 1),
        ];
        assert_eq!(streak_of(&records, &policy, None), 2);
    }

    #[test]
    fn a_streak_ends_at_the_failure_that_paused_the_job() {
        let policy = RunPolicy::default();
        let mut paused = record(2, RunOutcome::Failure, 1);
        paused.message = Some(format!(
            "exit status 1 ({PAUSE_NOTE} 2 consecutive failures)"
        ));
        let records = [
            record(3, RunOutcome::Failure, 1),
            paused,
            record(1, RunOutcome::Failure, 1),
        ];
        assert_eq!(streak_of(&records, &policy, None), 1);
        // The pausing record itself counts its own streak.
        assert_eq!(streak_of(&records[1..], &policy, None), 2);
    }
}
