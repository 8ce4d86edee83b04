//! The catch-up window of a job's run policy ([`Catchup`]): which of the fire times a
//! pass finds overdue (later than the misfire grace time, typically after downtime)
//! still run. The rules, as docs/scheduler.md states them:
//!
//! - A fire time late by no more than `misfire_grace_time` is handled as without
//!   catch-up (`coalesce` collapses several of them into the latest).
//! - A fire time later than the grace but no older than `window` (from now) is caught
//!   up: with `all` each runs, in order, as its own run, `coalesce` notwithstanding; with
//!   `latest` only the most recent due fire time runs and the others are recorded
//!   `missed` ("superseded ...").
//! - A fire time older than both the grace and the window is recorded `missed`
//!   ("older than the catch-up window ...").
//! - Mode `none`, no catch-up, or no grace limit (`misfire_grace_time = None`, where
//!   nothing is late): the pass behaves as without catch-up.

use super::*;
use apscheduler_core::{Catchup, CatchupMode};

impl Engine {
    /// Applies `job`'s catch-up window to its `due` fire times (oldest first, calendar
    /// exclusions already dropped): records the ones that do not run and leaves in
    /// `due` the ones that do. Returns `false`, leaving `due` alone, when the job has no
    /// catch-up to apply; the pass then applies `coalesce` and the misfire grace itself.
    pub(super) fn catch_up(
        &self,
        alias: &Arc<str>,
        job: &Job,
        now: DateTime<Utc>,
        due: &mut Vec<DateTime<Tz>>,
    ) -> bool {
        let (Some(catchup), Some(grace)) = (active(job), job.misfire_grace_time) else {
            return false;
        };
        let late = |t: &DateTime<Tz>| (now - t.with_timezone(&Utc)).to_std().unwrap_or_default();
        // Nothing later than the grace (a pass on time): the rules without catch-up
        // apply as they are, and this costs the usual pass no allocation.
        if due.iter().all(|t| late(t) <= grace) {
            return false;
        }
        let window = catchup.window.max(grace);
        let (kept, too_old): (Vec<_>, Vec<_>) = due.drain(..).partition(|t| late(t) <= window);
        // The limit it passed: the window, or the grace when that is the wider.
        let limit = if catchup.window >= grace {
            format!(
                "older than the catch-up window {}",
                human_std(catchup.window)
            )
        } else {
            "later than the misfire grace time".to_owned()
        };
        for t in too_old {
            let late = apscheduler_core::time::human_duration(now - t.with_timezone(&Utc));
            self.not_caught_up(
                alias,
                job,
                t,
                format!("run time missed by {late} ({limit})"),
            );
        }
        let overdue = kept.iter().any(|t| late(t) > grace);
        *due = kept;
        if catchup.mode == CatchupMode::Latest && overdue {
            let Some(last) = due.pop() else {
                return true;
            };
            for t in due.drain(..) {
                self.not_caught_up(
                    alias,
                    job,
                    t,
                    format!(
                        "run time missed by {}: superseded by the later run time {} (catch-up mode latest)",
                        apscheduler_core::time::human_duration(now - t.with_timezone(&Utc)),
                        last.with_timezone(&Utc).to_rfc3339()
                    ),
                );
            }
            due.push(last);
        } else if job.coalesce {
            // `all`: the overdue fire times each run; coalescing applies to the ones
            // within the grace, as it would without catch-up.
            let split = due.partition_point(|t| late(t) > grace);
            if due.len() - split > 1 {
                let last = due[due.len() - 1];
                due.truncate(split);
                due.push(last);
            }
        }
        true
    }

    /// One fire time the catch-up window does not run: a log line, `EVENT_JOB_MISSED`
    /// and a `missed` record saying why.
    fn not_caught_up(&self, alias: &Arc<str>, job: &Job, t: DateTime<Tz>, why: String) {
        apscheduler_core::log_warn!(target: "apscheduler", job_id = %job.id, "Run time of job \"{}\" not run: {why}", job.name);
        self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
            Event::missed(job.id.clone(), alias.clone(), t)
        });
        if let Some(recorder) = &self.inner.history {
            recorder.not_run(&job.id, t, RunOutcome::Missed, why);
        }
    }
}

/// The job's catch-up when it does anything (mode `all` or `latest`).
fn active(job: &Job) -> Option<&Catchup> {
    job.policy
        .catchup
        .as_ref()
        .filter(|c| c.mode != CatchupMode::None)
}

/// `3h`, `90m`, `45s`: a window as configured.
fn human_std(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
