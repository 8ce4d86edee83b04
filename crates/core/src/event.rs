//! Scheduler events and their bit-flag codes (APScheduler's `apscheduler.events`).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// A set of event codes; combine with `|` (`EVENT_JOB_EXECUTED | EVENT_JOB_ERROR`).
///
/// `Debug` and `Display` name the codes as APScheduler spells them:
///
/// ```
/// use apscheduler_core::event::{EVENT_ALL, EVENT_JOB_ERROR, EVENT_JOB_EXECUTED};
///
/// let mask = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR;
/// assert_eq!(format!("{mask:?}"), "EventMask(EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)");
/// assert_eq!(mask.to_string(), "EVENT_JOB_EXECUTED | EVENT_JOB_ERROR");
/// assert_eq!(EVENT_ALL.to_string(), "EVENT_ALL");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventMask(pub u32);

impl fmt::Display for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == EVENT_ALL {
            return f.write_str("EVENT_ALL");
        }
        if self.0 == 0 {
            return f.write_str("0");
        }
        let mut first = true;
        let mut rest = self.0;
        while rest != 0 {
            let bit = rest & rest.wrapping_neg();
            rest &= !bit;
            let name = event_name(EventMask(bit));
            if !first {
                f.write_str(" | ")?;
            }
            first = false;
            if name == "EVENT_UNKNOWN" {
                write!(f, "{bit:#x}")?;
            } else {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventMask({self})")
    }
}

impl EventMask {
    /// Whether `self` includes every code of `other`.
    pub fn contains(self, other: EventMask) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether the two masks share a code.
    pub fn intersects(self, other: EventMask) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for EventMask {
    type Output = EventMask;
    fn bitor(self, rhs: EventMask) -> EventMask {
        EventMask(self.0 | rhs.0)
    }
}

impl BitOrAssign for EventMask {
    fn bitor_assign(&mut self, rhs: EventMask) {
        self.0 |= rhs.0;
    }
}

/// The scheduler started.
pub const EVENT_SCHEDULER_STARTED: EventMask = EventMask(1 << 0);
/// Alias of [`EVENT_SCHEDULER_STARTED`] (APScheduler's old name).
pub const EVENT_SCHEDULER_START: EventMask = EVENT_SCHEDULER_STARTED;
/// The scheduler shut down.
pub const EVENT_SCHEDULER_SHUTDOWN: EventMask = EventMask(1 << 1);
/// Job processing was paused.
pub const EVENT_SCHEDULER_PAUSED: EventMask = EventMask(1 << 2);
/// Job processing was resumed.
pub const EVENT_SCHEDULER_RESUMED: EventMask = EventMask(1 << 3);
/// An executor was added.
pub const EVENT_EXECUTOR_ADDED: EventMask = EventMask(1 << 4);
/// An executor was removed.
pub const EVENT_EXECUTOR_REMOVED: EventMask = EventMask(1 << 5);
/// A job store was added.
pub const EVENT_JOBSTORE_ADDED: EventMask = EventMask(1 << 6);
/// A job store was removed.
pub const EVENT_JOBSTORE_REMOVED: EventMask = EventMask(1 << 7);
/// All jobs were removed from one or all job stores.
pub const EVENT_ALL_JOBS_REMOVED: EventMask = EventMask(1 << 8);
/// A job was added.
pub const EVENT_JOB_ADDED: EventMask = EventMask(1 << 9);
/// A job was removed.
pub const EVENT_JOB_REMOVED: EventMask = EventMask(1 << 10);
/// A job was modified from outside the scheduler.
pub const EVENT_JOB_MODIFIED: EventMask = EventMask(1 << 11);
/// A job ran successfully.
pub const EVENT_JOB_EXECUTED: EventMask = EventMask(1 << 12);
/// A job's run failed (returned an error or panicked).
pub const EVENT_JOB_ERROR: EventMask = EventMask(1 << 13);
/// A job's run was missed (later than its misfire grace time).
pub const EVENT_JOB_MISSED: EventMask = EventMask(1 << 14);
/// A job was submitted to its executor.
pub const EVENT_JOB_SUBMITTED: EventMask = EventMask(1 << 15);
/// A job's run was skipped because `max_instances` runs were already in flight.
pub const EVENT_JOB_MAX_INSTANCES: EventMask = EventMask(1 << 16);
/// A failed attempt of a fire time gets another attempt later (the job's retry
/// policy): [`Event::RetryScheduled`]. Not an APScheduler event.
pub const EVENT_JOB_RETRY_SCHEDULED: EventMask = EventMask(1 << 17);
/// Every event.
pub const EVENT_ALL: EventMask = EventMask((1 << 18) - 1);

/// Why a job run failed, as carried by `EVENT_JOB_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// A short type name: the error's type, `panic`, `signal`, `exit`, `timeout`, ...
    pub kind: String,
    /// The error's message.
    pub message: String,
    /// The messages of the error's `source()` chain, outermost first (excluding `message`).
    pub chain: Vec<String>,
    /// Structured detail from a [`TaskFailure`](crate::TaskFailure) (exit code, output),
    /// which the run history records.
    pub detail: Option<Box<Value>>,
}

impl JobFailure {
    /// A failure from an error value, walking its source chain.
    pub fn from_error(kind: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = Vec::new();
        let mut source = err.source();
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        JobFailure {
            kind: kind.into(),
            message: err.to_string(),
            chain,
            detail: None,
        }
    }

    /// A failure with no chain.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        JobFailure {
            kind: kind.into(),
            message: message.into(),
            chain: Vec::new(),
            detail: None,
        }
    }
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        for cause in &self.chain {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

/// Something that happened in the scheduler (APScheduler's event classes).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `EVENT_SCHEDULER_STARTED`, `_SHUTDOWN`, `_PAUSED`, `_RESUMED`, `EVENT_ALL_JOBS_REMOVED`
    /// (with the store alias, or `None` for all stores).
    Scheduler {
        /// The event code.
        code: EventMask,
        /// The job store alias, for `EVENT_ALL_JOBS_REMOVED`.
        alias: Option<Arc<str>>,
    },
    /// `EVENT_EXECUTOR_ADDED`/`_REMOVED`, `EVENT_JOBSTORE_ADDED`/`_REMOVED`.
    Component {
        /// The event code.
        code: EventMask,
        /// The executor or job store alias.
        alias: Arc<str>,
    },
    /// `EVENT_JOB_ADDED`, `_REMOVED`, `_MODIFIED`.
    Job {
        /// The event code.
        code: EventMask,
        /// The job id.
        job_id: Arc<str>,
        /// The job store alias; `None` for a job that is in no store yet (a job added
        /// before start and modified then, as APScheduler reports it).
        jobstore: Option<Arc<str>>,
    },
    /// `EVENT_JOB_SUBMITTED`, `EVENT_JOB_MAX_INSTANCES`.
    Submission {
        /// The event code.
        code: EventMask,
        /// The job id.
        job_id: Arc<str>,
        /// The job store alias.
        jobstore: Arc<str>,
        /// The run times submitted (or skipped).
        scheduled_run_times: Vec<DateTime<Tz>>,
    },
    /// `EVENT_JOB_EXECUTED`, `EVENT_JOB_ERROR`, `EVENT_JOB_MISSED`.
    Execution {
        /// The event code.
        code: EventMask,
        /// The job id.
        job_id: Arc<str>,
        /// The job store alias.
        jobstore: Arc<str>,
        /// The run time this outcome is for.
        scheduled_run_time: DateTime<Tz>,
        /// The task's return value (executed).
        retval: Option<Value>,
        /// The failure (error).
        exception: Option<JobFailure>,
        /// Which attempt at the fire time this is: 1 for the first run, 2 for the first
        /// retry (see [`RetryPolicy`](crate::policy::RetryPolicy)).
        attempt: u32,
    },
    /// `EVENT_JOB_RETRY_SCHEDULED`: attempt `attempt` of a fire time runs at `due_at`.
    RetryScheduled {
        /// The event code.
        code: EventMask,
        /// The job id.
        job_id: Arc<str>,
        /// The job store alias.
        jobstore: Arc<str>,
        /// The fire time being retried.
        scheduled_run_time: DateTime<Tz>,
        /// The attempt that will run (2 for the first retry).
        attempt: u32,
        /// When it is due.
        due_at: DateTime<Utc>,
    },
}

impl Event {
    /// `EVENT_JOB_EXECUTED`: a run time finished with `retval`.
    pub fn executed(
        job_id: Arc<str>,
        jobstore: Arc<str>,
        scheduled_run_time: DateTime<Tz>,
        retval: Value,
    ) -> Event {
        Event::Execution {
            code: EVENT_JOB_EXECUTED,
            job_id,
            jobstore,
            scheduled_run_time,
            retval: Some(retval),
            exception: None,
            attempt: 1,
        }
    }

    /// `EVENT_JOB_ERROR`: a run time failed (or could not run) with `failure`.
    pub fn error(
        job_id: Arc<str>,
        jobstore: Arc<str>,
        scheduled_run_time: DateTime<Tz>,
        failure: JobFailure,
    ) -> Event {
        Event::Execution {
            code: EVENT_JOB_ERROR,
            job_id,
            jobstore,
            scheduled_run_time,
            retval: None,
            exception: Some(failure),
            attempt: 1,
        }
    }

    /// `EVENT_JOB_MISSED`: a run time passed beyond the misfire grace time.
    pub fn missed(job_id: Arc<str>, jobstore: Arc<str>, scheduled_run_time: DateTime<Tz>) -> Event {
        Event::Execution {
            code: EVENT_JOB_MISSED,
            job_id,
            jobstore,
            scheduled_run_time,
            retval: None,
            exception: None,
            attempt: 1,
        }
    }

    /// `EVENT_JOB_SUBMITTED`: run times handed to an executor.
    pub fn submitted(
        job_id: Arc<str>,
        jobstore: Arc<str>,
        scheduled_run_times: Vec<DateTime<Tz>>,
    ) -> Event {
        Event::Submission {
            code: EVENT_JOB_SUBMITTED,
            job_id,
            jobstore,
            scheduled_run_times,
        }
    }

    /// `EVENT_JOB_MAX_INSTANCES`: run times skipped, `max_instances` runs in flight.
    pub fn max_instances(
        job_id: Arc<str>,
        jobstore: Arc<str>,
        scheduled_run_times: Vec<DateTime<Tz>>,
    ) -> Event {
        Event::Submission {
            code: EVENT_JOB_MAX_INSTANCES,
            job_id,
            jobstore,
            scheduled_run_times,
        }
    }

    /// `EVENT_JOB_RETRY_SCHEDULED`: attempt `attempt` of `scheduled_run_time` runs at
    /// `due_at`.
    pub fn retry_scheduled(
        job_id: Arc<str>,
        jobstore: Arc<str>,
        scheduled_run_time: DateTime<Tz>,
        attempt: u32,
        due_at: DateTime<Utc>,
    ) -> Event {
        Event::RetryScheduled {
            code: EVENT_JOB_RETRY_SCHEDULED,
            job_id,
            jobstore,
            scheduled_run_time,
            attempt,
            due_at,
        }
    }

    /// This execution event for attempt `n` of its fire time (events are built for
    /// attempt 1).
    pub fn with_attempt(mut self, n: u32) -> Event {
        if let Event::Execution { attempt, .. } = &mut self {
            *attempt = n;
        }
        self
    }

    /// The attempt an execution or retry event is about (1 = the first run).
    pub fn attempt(&self) -> Option<u32> {
        match self {
            Event::Execution { attempt, .. } | Event::RetryScheduled { attempt, .. } => {
                Some(*attempt)
            }
            _ => None,
        }
    }

    /// The event's code.
    pub fn code(&self) -> EventMask {
        match self {
            Event::Scheduler { code, .. }
            | Event::Component { code, .. }
            | Event::Job { code, .. }
            | Event::Submission { code, .. }
            | Event::Execution { code, .. }
            | Event::RetryScheduled { code, .. } => *code,
        }
    }

    /// The job id, for job events.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Event::Job { job_id, .. }
            | Event::Submission { job_id, .. }
            | Event::Execution { job_id, .. }
            | Event::RetryScheduled { job_id, .. } => Some(job_id),
            _ => None,
        }
    }

    /// The job store alias, for job events.
    pub fn jobstore(&self) -> Option<&str> {
        match self {
            Event::Job { jobstore, .. } => jobstore.as_deref(),
            Event::Submission { jobstore, .. }
            | Event::Execution { jobstore, .. }
            | Event::RetryScheduled { jobstore, .. } => Some(jobstore),
            _ => None,
        }
    }

    /// The failure, for `EVENT_JOB_ERROR` (APScheduler's `event.exception`).
    pub fn exception(&self) -> Option<&JobFailure> {
        match self {
            Event::Execution { exception, .. } => exception.as_ref(),
            _ => None,
        }
    }

    /// The return value, for `EVENT_JOB_EXECUTED` (APScheduler's `event.retval`).
    pub fn retval(&self) -> Option<&Value> {
        match self {
            Event::Execution { retval, .. } => retval.as_ref(),
            _ => None,
        }
    }

    /// APScheduler's constant name for this event's code (`EVENT_JOB_EXECUTED`).
    pub fn name(&self) -> &'static str {
        event_name(self.code())
    }
}

/// APScheduler's constant name for a single event code.
pub fn event_name(code: EventMask) -> &'static str {
    const NAMES: [&str; 18] = [
        "EVENT_SCHEDULER_STARTED",
        "EVENT_SCHEDULER_SHUTDOWN",
        "EVENT_SCHEDULER_PAUSED",
        "EVENT_SCHEDULER_RESUMED",
        "EVENT_EXECUTOR_ADDED",
        "EVENT_EXECUTOR_REMOVED",
        "EVENT_JOBSTORE_ADDED",
        "EVENT_JOBSTORE_REMOVED",
        "EVENT_ALL_JOBS_REMOVED",
        "EVENT_JOB_ADDED",
        "EVENT_JOB_REMOVED",
        "EVENT_JOB_MODIFIED",
        "EVENT_JOB_EXECUTED",
        "EVENT_JOB_ERROR",
        "EVENT_JOB_MISSED",
        "EVENT_JOB_SUBMITTED",
        "EVENT_JOB_MAX_INSTANCES",
        "EVENT_JOB_RETRY_SCHEDULED",
    ];
    if code.0.count_ones() == 1 {
        NAMES
            .get(code.0.trailing_zeros() as usize)
            .copied()
            .unwrap_or("EVENT_UNKNOWN")
    } else {
        "EVENT_UNKNOWN"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_prints_its_code_names() {
        assert_eq!(
            format!("{EVENT_JOB_MISSED:?}"),
            "EventMask(EVENT_JOB_MISSED)"
        );
        assert_eq!(
            (EVENT_SCHEDULER_STARTED | EVENT_JOB_MAX_INSTANCES).to_string(),
            "EVENT_SCHEDULER_STARTED | EVENT_JOB_MAX_INSTANCES"
        );
        assert_eq!(EventMask(0).to_string(), "0");
        assert_eq!(
            (EVENT_JOB_ADDED | EventMask(1 << 20)).to_string(),
            "EVENT_JOB_ADDED | 0x100000"
        );
        assert_eq!(format!("{EVENT_ALL:?}"), "EventMask(EVENT_ALL)");
    }
}
