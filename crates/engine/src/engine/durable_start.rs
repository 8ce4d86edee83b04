//! Starts recorded before they happen, so that a fire time released to a node that
//! died before starting it can be run elsewhere, once.
//!
//! A pass writes each claimed fire time's `running` record without a start time
//! before the release that makes the fire time this node's; just before the runs
//! start it writes their start times (one write for the pass's runs, awaited). A
//! `running` record without a start time, whose job's next run time is past its fire
//! time (the release applied), is therefore a fire time its node owned and never
//! started. When that node dies, the node that takes it for dead gets the record from
//! `RunHistory::interrupt_running` (one node per record) and starts the fire time (see
//! `recovery`). Records with `due_at` set are waiting runs (retries, buffered fire
//! times), left to the code that keeps them.

use apscheduler_core::RunElsewhere;

use super::pass::PassLookups;
use super::start::PlannedRun;
use super::unreleased::NotStartedReason;
use super::*;

/// Planned runs to start, each with its job's runs on other nodes.
pub(super) type Starting = Vec<(PlannedRun, Vec<RunElsewhere>)>;

/// Runs whose start could not be recorded, or that this node may no longer start.
struct NotConfirmed(crate::history::StartRefused);

impl NotStartedReason for NotConfirmed {
    fn message(&self) -> Option<String> {
        Some(self.0.to_string())
    }
}

impl Engine {
    /// Writes the start of `runs` (each with its job's runs on other nodes) to the
    /// history, then starts them; if that write fails, none starts and each is
    /// recorded `missed`, saying why.
    pub(super) async fn start_recorded(
        &self,
        alias: &Arc<str>,
        runs: Starting,
        used: &mut PassLookups,
    ) {
        if runs.is_empty() {
            return;
        }
        let confirmed = match &self.inner.history {
            Some(recorder) => {
                recorder
                    .confirm_starts(runs.iter().map(|(p, _)| p.run()))
                    .await
            }
            None => Ok(()),
        };
        match confirmed {
            Ok(()) => {
                for (planned, elsewhere) in runs {
                    self.start_run(alias, planned, used, &elsewhere);
                }
            }
            Err(e) => {
                let why = NotConfirmed(e);
                for (planned, _) in runs {
                    self.not_started(alias, planned, &why);
                }
            }
        }
    }
}
