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
    /// recorded `missed`, saying why; if this node was silent for half its node
    /// time-out, the runs of jobs with [`Job::recover`] set are recorded `missed` and
    /// the others start. A fire time whose record the history no longer
    /// holds `running` (another node took this one for dead and starts it) is not
    /// started here, and its record is left as that node wrote it.
    pub(super) async fn start_recorded(
        &self,
        alias: &Arc<str>,
        runs: Starting,
        used: &mut PassLookups,
    ) {
        if runs.is_empty() {
            return;
        }
        let (refused, confirmed) = match &self.inner.history {
            Some(recorder) => {
                recorder
                    .confirm_starts(runs.iter().map(|(p, _)| p.run()))
                    .await
            }
            None => (Vec::new(), Ok(())),
        };
        let runs: Starting = if refused.is_empty() {
            runs
        } else {
            runs.into_iter()
                .filter_map(|(planned, elsewhere)| {
                    self.drop_refused(alias, planned, &refused)
                        .map(|p| (p, elsewhere))
                })
                .collect()
        };
        let refusal = confirmed.err().map(NotConfirmed);
        for (planned, elsewhere) in runs {
            match &refusal {
                Some(why) if why.0.refuses(planned.recover) => {
                    self.not_started(alias, planned, why)
                }
                _ => self.start_run(alias, planned, used, &elsewhere),
            }
        }
    }

    /// `planned` without its fire times whose start the history `refused`, each
    /// logged and reported as `EVENT_JOB_MISSED` here (the node that took this one for
    /// dead runs and records it); `None` when none is left.
    fn drop_refused(
        &self,
        alias: &Arc<str>,
        mut planned: PlannedRun,
        refused: &[Arc<str>],
    ) -> Option<PlannedRun> {
        let run = &mut planned.run;
        if !run.run_ids.iter().any(|id| refused.contains(id)) {
            return Some(planned);
        }
        let (mut ids, mut times) = (Vec::new(), Vec::new());
        for (id, t) in run.run_ids.drain(..).zip(run.run_times.drain(..)) {
            if !refused.contains(&id) {
                ids.push(id);
                times.push(t);
                continue;
            }
            let at = apscheduler_core::time::to_rfc3339(&t);
            apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %run.job_id, run_id = %id, "Run time {at} of job \"{}\" not started here: {REFUSED}", planned.name);
            self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
                Event::missed(run.job_id.clone(), alias.clone(), t)
            });
        }
        run.run_ids = ids;
        run.run_times = times;
        (!run.run_times.is_empty()).then_some(planned)
    }
}

/// Why a fire time whose start the history refused is not started here.
const REFUSED: &str = "its run record is no longer running: another node took this one for \
                       dead (it was silent longer than the node time-out), recorded the run \
                       interrupted and starts this fire time itself";
