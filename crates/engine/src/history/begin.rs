//! The `running` records a pass writes before the release that makes its claimed fire
//! times the node's.

use std::time::Duration;

use apscheduler_core::JobRun;

use super::{Recorder, BEGIN_DEADLINE, RETRY_CAP};

/// The first pause before a failed write of `running` records is tried again (doubled
/// each time, up to [`RETRY_CAP`]).
const BEGIN_RETRY_FIRST: Duration = Duration::from_millis(100);

impl Recorder {
    /// Writes a `running` record for each fire time of `runs` before the release that
    /// makes them this node's: one write per claimed batch, awaited, so that a node
    /// killed from here on leaves a record that its death turns into `interrupted`,
    /// never a fire time with no trace. A write that fails is tried again (after
    /// 0.1 s, doubling up to 1 s); a history that has not taken the records within
    /// [`BEGIN_DEADLINE`] gets them through the writer (retried), and the pass goes on. `note` is each record's message (a recovery names the run it
    /// recovers); its end keeps it. With [`HistoryOptions::record_starts`](super::HistoryOptions::record_starts), the
    /// records of `claimed` fire times have no start time until
    /// [`confirm_starts`](Self::confirm_starts) writes it.
    pub(crate) async fn begin<'a>(
        &self,
        runs: impl Iterator<Item = &'a JobRun>,
        note: Option<&str>,
        claimed: bool,
    ) {
        self.begin_marked(runs, note, claimed, false).await;
    }

    /// [`begin`](Self::begin), the records marked `backfill` when a backfill starts
    /// the runs (their ends keep the mark).
    pub(crate) async fn begin_marked<'a>(
        &self,
        runs: impl Iterator<Item = &'a JobRun>,
        note: Option<&str>,
        claimed: bool,
        backfill: bool,
    ) {
        let records = self.stage(runs, note, claimed, backfill);
        if records.is_empty() {
            return;
        }
        // A failed write is tried again within the deadline: going on at once would
        // release fire times whose only record waits in this process, lost with it if
        // it dies before the writer gets through.
        // With leased runs a start never replaces a record another node ended (the
        // run taken over while this node stalled before the write), as in the writer.
        let leased = *super::lock(&self.protocol) == apscheduler_core::RunProtocol::LeasedRuns;
        let write = || super::writer::write(&*self.history, &records, leased);
        let began = tokio::time::Instant::now();
        let deadline = began + BEGIN_DEADLINE;
        let mut pause = BEGIN_RETRY_FIRST;
        let error = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, write()).await {
                Ok(Ok(())) => {
                    // How long a write takes now, for the waits on other nodes' writes.
                    self.counts.note_lag(began.elapsed());
                    self.staged_written(&records);
                    return;
                }
                Ok(Err(e))
                    if e.is_retryable() && tokio::time::Instant::now() + pause < deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_CAP);
                }
                Ok(Err(e)) => break e.to_string(),
                Err(_) => break format!("no answer within {BEGIN_DEADLINE:?}"),
            }
        };
        self.staged_unwritten(records, &error);
    }
}
