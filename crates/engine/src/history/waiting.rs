//! The recorder's side of waiting runs (retries, buffered fire times): their records
//! are `running` with no start time and `due_at` set until they start.

use chrono::{DateTime, Utc};

use apscheduler_core::{RunOutcome, RunRecord};

use super::{lock, with_note, InFlight, Recorder, BEGIN_DEADLINE};

impl Recorder {
    /// A waiting run's record (`running`, not started, `due_at` set) for `run_id`: a
    /// retry of `job_id`'s fire time `scheduled_at`, attempt `attempt`, due at `due_at`.
    pub(crate) fn waiting_record(
        &self,
        run_id: &str,
        job_id: &str,
        scheduled_at: DateTime<Utc>,
        attempt: u32,
        due_at: DateTime<Utc>,
    ) -> RunRecord {
        let mut record = self.blank(run_id, job_id, scheduled_at);
        record.attempt = attempt;
        record.due_at = Some(due_at);
        record
    }

    /// Queues a waiting run's record for the writer (after the record of the attempt
    /// that made it, so one batch usually carries both).
    pub(crate) fn queue_waiting(&self, record: RunRecord) {
        self.send(record);
    }

    /// Writes `record` as it is and waits for the history to confirm: whether it did
    /// within [`BEGIN_DEADLINE`] (a waiting run taken over from a dead node is this
    /// node's only once written).
    pub(crate) async fn write_now(&self, record: &RunRecord) -> Result<(), String> {
        self.observe(record);
        match tokio::time::timeout(
            BEGIN_DEADLINE,
            self.history.record_runs(std::slice::from_ref(record)),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {BEGIN_DEADLINE:?}")),
        }
    }

    /// A waiting run starts now: its record gets its start time, written and confirmed
    /// before the run may start (a node that cannot write it keeps the run waiting,
    /// so that a takeover after this node's death cannot run it a second time).
    pub(crate) async fn start_waiting(&self, mut record: RunRecord) -> Result<(), String> {
        // The run's waiting record may still be in the writer's queue: written after
        // the start, it would make the started run look waiting again, and a node
        // taking this one over would run it a second time. What is queued goes first.
        if !self.queued_written(BEGIN_DEADLINE).await {
            return Err(format!(
                "the records queued before it were not written within {BEGIN_DEADLINE:?}"
            ));
        }
        record.started_at = Some(self.clock.now());
        record.node = self.node.to_string();
        self.write_now(&record).await?;
        lock(&self.in_flight).insert(
            record.run_id.as_str().into(),
            InFlight {
                record,
                started: false,
                // Written just above, start time included: nothing for
                // `confirm_starts` to write.
                written: true,
            },
        );
        Ok(())
    }

    /// The fire time `run_id` (its `running` record written, not started) waits instead
    /// of starting: its record becomes a waiting run's, due at `due_at`, queued for the
    /// writer. `None` when this node holds no such record.
    pub(crate) fn to_waiting(&self, run_id: &str, due_at: DateTime<Utc>) -> Option<RunRecord> {
        let mut record = lock(&self.in_flight).remove(run_id)?.record;
        record.started_at = None;
        record.due_at = Some(due_at);
        self.send(record.clone());
        Some(record)
    }

    /// A waiting run that does not start: its record ends with `outcome` and `message`.
    pub(crate) fn end_waiting(&self, mut record: RunRecord, outcome: RunOutcome, message: String) {
        lock(&self.in_flight).remove(record.run_id.as_str());
        record.outcome = outcome;
        record.started_at = None;
        record.finished_at = Some(self.clock.now());
        record.message = with_note(record.message.take(), Some(message));
        self.send(record);
    }
}
