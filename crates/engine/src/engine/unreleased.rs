//! Releases a store did not apply, or did not confirm: why their runs are not started
//! here, the retry that may start them late, and what is recorded at shutdown.

use super::pass::PassLookups;
use super::start::PlannedRun;
use super::*;
use apscheduler_core::Released;

impl Engine {
    /// Reports the releases the store did not apply, and returns why each such job's
    /// runs are not started here.
    pub(super) fn report_unreleased(
        &self,
        alias: &Arc<str>,
        released: &Released,
        now: DateTime<Utc>,
    ) -> HashMap<Arc<str>, NotStarted> {
        let mut skipped = HashMap::new();
        for id in &released.lost {
            skipped.insert(id.clone(), NotStarted::Lost);
        }
        for (id, e) in &released.refused {
            apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, job_id = %id, "the new state of job {id} cannot be stored (its lease runs out, and it is claimed again): {e}");
            let failure = JobFailure::new("store", format!("its new state cannot be stored: {e}"));
            self.inner.dispatcher.emit(event::EVENT_JOB_ERROR, || {
                Event::error(
                    id.clone(),
                    alias.clone(),
                    now.with_timezone(&Tz::UTC),
                    failure,
                )
            });
            skipped.insert(id.clone(), NotStarted::Refused(e.to_string()));
        }
        skipped
    }

    /// The runs of releases the store did not confirm, once their retry is answered:
    /// a release applied now proves the first attempt had not (it would have ended the
    /// lease), so its fire times are this node's alone and start, unless past their
    /// misfire grace time. A release the retry finds lost may have applied at the first
    /// attempt (then no scheduler starts its fire times) or the job was taken over: its
    /// fire times are recorded `missed`, saying so.
    pub(super) async fn start_held(
        &self,
        alias: &Arc<str>,
        held: Unreleased,
        released: &Released,
        now: DateTime<Utc>,
        used: &mut PassLookups,
    ) {
        let skipped = self.report_unreleased(alias, released, now);
        let mut starting = Vec::new();
        for run in held.runs {
            let id = run.run.job_id.clone();
            match skipped.get(&*id) {
                Some(NotStarted::Lost) => self.not_started(alias, run, &RetriedLost),
                Some(why) => self.not_started(alias, run, why),
                None => {
                    if run.past_grace(now) {
                        self.not_started(alias, run, &ConfirmedLate);
                    } else {
                        apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %id, "the release of job {id} applied when retried: its run starts late");
                        starting.push((run, Vec::new()));
                    }
                }
            }
        }
        self.start_recorded(alias, starting, used).await;
        used.flush();
    }

    /// At shutdown: the runs still waiting for their release to be confirmed are not
    /// started, and recorded so (their leases run out, and another scheduler takes the
    /// fire times over).
    pub(super) fn drop_unreleased(&self) {
        let held: Vec<(Arc<str>, Unreleased)> = lock(&self.inner.unreleased).drain().collect();
        for (alias, held) in held {
            for run in held.runs {
                self.not_started(&alias, run, &HeldAtShutdown);
            }
        }
    }

    /// A planned run that is not started: its fire times go to the log and the history
    /// (its `running` records become `missed`, saying why), and, unless another
    /// scheduler holds them now (it runs and records them too), to the events.
    pub(super) fn not_started(
        &self,
        alias: &Arc<str>,
        planned: PlannedRun,
        why: &dyn NotStartedReason,
    ) {
        let run = planned.run;
        for (i, &t) in run.run_times.iter().enumerate() {
            let at = apscheduler_core::time::to_rfc3339(&t);
            match why.message() {
                None => {
                    log_lost(alias, &run.job_id, &planned.name, &at);
                    if let Some(recorder) = &self.inner.history {
                        recorder.not_run_as(
                            run.run_ids.get(i),
                            &run.job_id,
                            t,
                            RunOutcome::Missed,
                            format!("not started here: {LOST}"),
                        );
                    }
                }
                Some(message) => {
                    apscheduler_core::log_error!(target: "apscheduler", jobstore = %alias, job_id = %run.job_id, "Run time {at} of job \"{}\" not started: {message}", planned.name);
                    if let Some(recorder) = &self.inner.history {
                        recorder.not_run_as(
                            run.run_ids.get(i),
                            &run.job_id,
                            t,
                            RunOutcome::Missed,
                            format!("not started: {message}"),
                        );
                    }
                    self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
                        Event::missed(run.job_id.clone(), alias.clone(), t)
                    });
                }
            }
        }
    }
}

/// With leased runs: the fire times of a release the store found lost (another
/// scheduler claimed the job once this one's lease expired) are logged, not recorded.
/// This scheduler created no run of them; the one that holds the job now releases the
/// same fire times as runs of its own and records them (run, or missed past their
/// grace), so a record here would be a second one for a fire time that has its own.
pub(super) fn log_lost_release(alias: &Arc<str>, planned: &PlannedRun) {
    for t in &planned.run.run_times {
        let at = apscheduler_core::time::to_rfc3339(t);
        log_lost(alias, &planned.run.job_id, &planned.name, &at);
    }
}

fn log_lost(alias: &Arc<str>, job_id: &Arc<str>, name: &str, at: &str) {
    apscheduler_core::log_warn!(target: "apscheduler", jobstore = %alias, job_id = %job_id, "Run time {at} of job \"{name}\" not started here: {LOST}");
}

/// Why a fire time whose release was lost is not started here.
const LOST: &str = "another scheduler claimed the job after this one's lease expired (it runs and records this fire time), or the job was removed";
/// Why a planned run is not started.
pub(super) trait NotStartedReason {
    /// What to record; `None` when the fire time is another scheduler's to record.
    fn message(&self) -> Option<String>;
}

/// A release the store applied only in part.
pub(super) enum NotStarted {
    /// Another scheduler holds the job now, or it was removed.
    Lost,
    /// The job's new state cannot be stored.
    Refused(String),
}

impl NotStartedReason for NotStarted {
    fn message(&self) -> Option<String> {
        match self {
            NotStarted::Lost => None,
            NotStarted::Refused(e) => Some(format!("the job's new state cannot be stored: {e}")),
        }
    }
}

/// A release that failed: the store may or may not have applied it.
/// Releases a store did not confirm, and the runs they would start.
#[derive(Default)]
pub(super) struct Unreleased {
    pub(super) releases: Vec<JobRelease>,
    pub(super) runs: Vec<PlannedRun>,
}

/// A release the store did not confirm, found lost when retried.
struct RetriedLost;

impl NotStartedReason for RetriedLost {
    fn message(&self) -> Option<String> {
        Some(
            "the store did not confirm its claim, and the retried release found the lease \
             gone: the first attempt applied (then no scheduler starts this fire time) or \
             another scheduler took the job; not started, so that it cannot run twice"
                .to_owned(),
        )
    }
}

/// A release confirmed by its retry only after the fire time's misfire grace time.
struct ConfirmedLate;

impl NotStartedReason for ConfirmedLate {
    fn message(&self) -> Option<String> {
        Some(
            "the store confirmed its claim only after the misfire grace time (the release \
             was retried once the store answered)"
                .to_owned(),
        )
    }
}

/// A release still unconfirmed when the scheduler shut down.
struct HeldAtShutdown;

impl NotStartedReason for HeldAtShutdown {
    fn message(&self) -> Option<String> {
        Some(
            "the store did not confirm its claim before the scheduler shut down; not \
             started, so that it cannot run twice"
                .to_owned(),
        )
    }
}
