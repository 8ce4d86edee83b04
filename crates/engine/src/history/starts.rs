//! Starts written before runs start
//! ([`HistoryOptions::record_starts`](super::HistoryOptions::record_starts)): a
//! `running` record without a start time then proves its run never started.

use apscheduler_core::JobRun;

use super::{lock, Recorder, BEGIN_DEADLINE};

impl Recorder {
    /// Writes the start time of the `running` records of `runs` (fire times
    /// [`begin`](Self::begin) recorded as claimed), awaited: only then may they start,
    /// so that a record without a start time proves its run never started. One write
    /// for all of them; nothing to do without
    /// [`HistoryOptions::record_starts`](super::HistoryOptions::record_starts).
    ///
    /// # Errors
    /// Why the starts are not recorded (the records were not written, or this write
    /// failed or timed out): the runs must not start.
    pub(crate) async fn confirm_starts<'a>(
        &self,
        runs: impl Iterator<Item = &'a JobRun>,
    ) -> Result<(), String> {
        if !self.options.record_starts {
            return Ok(());
        }
        let now = self.clock.now();
        let mut records = Vec::new();
        {
            let mut in_flight = lock(&self.in_flight);
            for run in runs {
                for id in &run.run_ids {
                    let Some(entry) = in_flight.get_mut(id) else {
                        continue;
                    };
                    if entry.record.started_at.is_some() {
                        continue;
                    }
                    if !entry.written {
                        return Err(
                            "its running record could not be written at the claim".to_owned()
                        );
                    }
                    entry.record.started_at = Some(now);
                    records.push(entry.record.clone());
                }
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(BEGIN_DEADLINE, self.history.record_runs(&records)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {BEGIN_DEADLINE:?}")),
        }
    }
}
