//! Fire times that wait for other nodes' runs of their job to end (`max_instances`
//! across the cluster).
//!
//! A node learns that another node's run ended only once that node has written the
//! run's end to the history, a write or so after the run ended (longer under load, or
//! while the history is down). A fire time that finds its job at `max_instances` only
//! because of runs on other nodes is therefore not skipped at once: it waits, the node
//! reading the other nodes' runs again every [`ELSEWHERE_POLL`] (one query for every
//! waiting fire time), and starts as soon as there is room. One still blocked by a read
//! that answered, asked after its wait, or once its misfire grace time has passed, is
//! skipped as any `max_instances` skip is. The wait is [`ELSEWHERE_WAIT`], or twice
//! this node's own history write lag when that is longer (the other nodes write to the
//! same store, so their ends are about as late as this node's records; a loaded store
//! a few seconds behind would otherwise turn runs that ended into false skips), never
//! over [`ELSEWHERE_WAIT_MAX`]. Its release is already applied, so no other node can
//! start it meanwhile: the wait delays a fire time, never doubles it.
//!
//! A waiting fire time waits only for the runs it found after its claim. Those are
//! all the runs of its job claimed before it (each wrote its `running` record before
//! the release that let this claim happen). A run claimed later found this fire
//! time's own `running` record and counted it as an instance, so it started only if
//! there was room beside it. Two waiting fire times therefore never wait for each
//! other (an earlier read counted every `running` record, and two nodes could each
//! hold back the other's next fire time until both were skipped).

use std::collections::HashSet;
// tokio's Instant: the system monotonic clock, and a paused runtime's virtual one (the
// deterministic simulation, crates/sim).
use tokio::time::Instant;

use apscheduler_core::RunElsewhere;

use super::durable_start::Starting;
use super::pass::PassLookups;
use super::start::PlannedRun;
use super::unreleased::NotStartedReason;
use super::*;

/// How often waiting fire times read the other nodes' runs again.
const ELSEWHERE_POLL: Duration = Duration::from_millis(100);

/// How long a fire time blocked only by other nodes' runs waits for one of them to end
/// before it is skipped, while the history keeps up.
const ELSEWHERE_WAIT: Duration = Duration::from_secs(1);

/// The longest such wait, however far behind the history is.
const ELSEWHERE_WAIT_MAX: Duration = Duration::from_secs(10);

/// How long a fire time blocked only by other nodes' runs waits for their ends, for a
/// history writer `lag` behind (see the module doc).
fn elsewhere_wait(lag: Duration) -> Duration {
    lag.saturating_mul(2)
        .clamp(ELSEWHERE_WAIT, ELSEWHERE_WAIT_MAX)
}

/// The fire times waiting on this node, and whether a task polls for them.
#[derive(Default)]
pub(super) struct Waiting {
    runs: Vec<WaitingRun>,
    polling: bool,
}

/// A planned run held back by the runs other nodes have in flight.
struct WaitingRun {
    alias: Arc<str>,
    planned: PlannedRun,
    /// The runs of the job found on other nodes after its claim, less those that have
    /// ended since.
    elsewhere: Vec<RunElsewhere>,
    /// When it began to wait (real time: the wait is for a write, not for the clock).
    since: Instant,
}

/// A waiting fire time the scheduler's shutdown came before.
struct ShutDown;

impl NotStartedReason for ShutDown {
    fn message(&self) -> Option<String> {
        Some(
            "the scheduler shut down while the fire time waited for a run of the job on \
             another node to end (max_instances)"
                .to_owned(),
        )
    }
}

impl Engine {
    /// Holds `runs` (each with its job's runs on other nodes) until those runs leave
    /// room under `max_instances`; starts the poller if none runs.
    pub(super) fn wait_for_ends_elsewhere(
        &self,
        alias: &Arc<str>,
        runs: Vec<(PlannedRun, Vec<RunElsewhere>)>,
    ) {
        let since = Instant::now();
        let start = {
            let mut waiting = lock(&self.inner.waiting_elsewhere);
            waiting
                .runs
                .extend(runs.into_iter().map(|(planned, elsewhere)| WaitingRun {
                    alias: alias.clone(),
                    planned,
                    elsewhere,
                    since,
                }));
            !std::mem::replace(&mut waiting.polling, true)
        };
        if start {
            let engine = self.clone();
            tokio::spawn(async move { engine.poll_elsewhere().await });
        }
    }

    /// Every [`ELSEWHERE_POLL`] while fire times wait: reads the other nodes' runs once
    /// and starts, skips or keeps each.
    async fn poll_elsewhere(&self) {
        let Some(recorder) = self.inner.history.clone() else {
            return;
        };
        // Whether the reads fail: said once, not at every poll.
        let mut failing = false;
        loop {
            tokio::time::sleep(ELSEWHERE_POLL).await;
            // A fire time is skipped only on a read asked after its wait ended: a slow
            // answer tells what ran when it was asked, not when it came.
            let asked = Instant::now();
            let wait = elsewhere_wait(recorder.write_lag());
            let running: Option<HashSet<String>> = match recorder.read_running_elsewhere().await {
                Some(Ok(runs)) => {
                    failing = false;
                    Some(runs.into_iter().map(|r| r.run_id).collect())
                }
                Some(Err(error)) => {
                    if !std::mem::replace(&mut failing, true) {
                        apscheduler_core::log_warn!(target: "apscheduler", node = %recorder.node(), "cannot read the runs other nodes have in flight; the fire times waiting for their ends keep waiting (at most {ELSEWHERE_WAIT_MAX:?}, never past their grace): {error}");
                    }
                    None
                }
                None => None,
            };
            // Under the jobs lock, as a pass starts its runs: a shutdown sets the state
            // before it takes this lock, and takes the runs still waiting after it.
            let _guard = self.inner.jobs_lock.lock().await;
            let runs = std::mem::take(&mut lock(&self.inner.waiting_elsewhere).runs);
            if self.state() == SchedulerState::Stopped {
                self.record_shut_down(runs);
                lock(&self.inner.waiting_elsewhere).polling = false;
                return;
            }
            let now = self.inner.clock.now();
            let mut used = PassLookups::default();
            let mut still = Vec::new();
            let mut starting: Vec<(Arc<str>, Starting)> = Vec::new();
            for mut w in runs {
                if let Some(running) = &running {
                    w.elsewhere.retain(|r| running.contains(&r.run_id));
                }
                let out_of_grace = w.planned.past_grace(now);
                // A read that did not answer tells nothing: the fire time waits for one
                // that does, up to the longest wait.
                let waited = asked.saturating_duration_since(w.since);
                let over = if running.is_some() {
                    waited >= wait
                } else {
                    waited >= ELSEWHERE_WAIT_MAX
                };
                if w.planned.blocked_only_elsewhere(w.elsewhere.len()) && !over && !out_of_grace {
                    still.push(w);
                } else if w.planned.blocked_only_elsewhere(w.elsewhere.len()) {
                    // Still blocked: skipped by `max_instances`, saying how many runs
                    // of the job are on other nodes.
                    self.start_run(&w.alias, w.planned, &mut used, &w.elsewhere);
                } else {
                    match starting.iter_mut().find(|(a, _)| *a == w.alias) {
                        Some((_, runs)) => runs.push((w.planned, w.elsewhere)),
                        None => starting.push((w.alias, vec![(w.planned, w.elsewhere)])),
                    }
                }
            }
            for (alias, runs) in starting {
                self.start_recorded(&alias, runs, &mut used).await;
            }
            used.flush();
            let mut waiting = lock(&self.inner.waiting_elsewhere);
            waiting.runs.extend(still);
            if waiting.runs.is_empty() {
                waiting.polling = false;
                return;
            }
        }
    }

    /// At shutdown: the fire times still waiting are not started, and recorded so.
    pub(super) fn drop_waiting_elsewhere(&self) {
        let runs = std::mem::take(&mut lock(&self.inner.waiting_elsewhere).runs);
        self.record_shut_down(runs);
    }

    /// Records `runs` as not started because of the shutdown, unless the shutdown's
    /// history flush already recorded them (the poller can take them after it).
    fn record_shut_down(&self, runs: Vec<WaitingRun>) {
        let Some(recorder) = &self.inner.history else {
            return;
        };
        for w in runs {
            if w.planned
                .run
                .run_ids
                .first()
                .is_none_or(|id| recorder.holds(id))
            {
                self.not_started(&w.alias, w.planned, &ShutDown);
            }
        }
    }
}
