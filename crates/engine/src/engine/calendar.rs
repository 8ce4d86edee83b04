//! Exclusion calendars in the engine: wrapping a job's trigger in its calendar when
//! the job is built, and recording the fire times a calendar excludes as `missed`.

use super::*;
use apscheduler_triggers::{CalendarAction, ExcludingTrigger, NamedCalendar};
use serde::Deserialize as _;

/// The history message of a fire time the calendar `name` excluded.
pub fn excluded_message(name: &str) -> String {
    format!("{EXCLUDED_PREFIX}{name}")
}

/// The calendar named by a history message of an excluded fire time
/// ([`excluded_message`]'s), or `None` for any other message.
pub fn excluded_calendar(message: &str) -> Option<&str> {
    message.strip_prefix(EXCLUDED_PREFIX)
}

const EXCLUDED_PREFIX: &str = "excluded by calendar ";

/// `trigger` wrapped in `calendar` with `action`, refused when the calendar leaves it
/// no fire time to run (`job_id` names the job in that error when known).
pub(super) fn with_calendar(
    trigger: Arc<dyn Trigger>,
    calendar: NamedCalendar,
    action: CalendarAction,
    now: &DateTime<Tz>,
    job_id: Option<&str>,
) -> Result<Arc<dyn Trigger>, Error> {
    // The wrapper holds a trigger it can persist: a built trigger is read back from
    // its persisted form (custom triggers without one cannot take a calendar).
    let inner = trigger
        .to_state()
        .and_then(|state| AnyTrigger::deserialize(&state).ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid value for 'calendar': '{}': the trigger {trigger} cannot be persisted, so it cannot take a calendar",
                    calendar.name
                ),
            )
        })?;
    let wrapped = ExcludingTrigger::new(inner, calendar, action);
    wrapped.check_runs(now).map_err(|e| {
        let job = job_id.map(|id| format!("job {id} ")).unwrap_or_default();
        Error::new(
            ErrorKind::InvalidInput,
            format!("{job}would never run: {e}"),
        )
    })?;
    Ok(AnyTrigger::from(wrapped).into_shared())
}

impl Engine {
    /// Takes the fire times of `due` that the job's calendar excludes out of it, each
    /// recorded `missed` ("excluded by calendar NAME") with `EVENT_JOB_MISSED`.
    pub(super) fn drop_excluded(&self, alias: &Arc<str>, job: &Job, due: &mut Vec<DateTime<Tz>>) {
        due.retain(|t| {
            let Some(name) = job.trigger.excluded_by(t) else {
                return true;
            };
            tracing::info!(target: "apscheduler", job_id = %job.id, "Run time {t} of job \"{}\" skipped: excluded by calendar {name}", job.name);
            self.inner.dispatcher.emit(event::EVENT_JOB_MISSED, || {
                Event::missed(job.id.clone(), alias.clone(), *t)
            });
            if let Some(recorder) = &self.inner.history {
                recorder.not_run(&job.id, *t, RunOutcome::Missed, excluded_message(name));
            }
            false
        });
    }
}

/// The exclusion calendar a trigger applies, as the [`ExcludingTrigger`] it is (its
/// calendar, action and inner trigger); `None` for a trigger without a calendar.
///
/// Read from the trigger's persisted form (jobs hold their trigger as a trait object),
/// so it costs a serialization: listings of many jobs take the calendar from where
/// their maker keeps it when they can.
pub fn trigger_calendar(trigger: &dyn Trigger) -> Option<ExcludingTrigger> {
    let state = trigger.to_state()?;
    if state.get("type").and_then(serde_json::Value::as_str) != Some("excluding") {
        return None;
    }
    match AnyTrigger::deserialize(&state).ok()? {
        AnyTrigger::Excluding(excluding) => Some(*excluding),
        _ => None,
    }
}

/// The job's next run time with its calendar's exclusions applied: the first of its
/// fire times from `next_run_time` on that will really run
/// ([`Trigger::first_allowed`]); what listings show. `None` when paused, and
/// when no fire time left will run.
pub fn next_allowed_run_time(job: &Job) -> Option<DateTime<Tz>> {
    job.trigger.first_allowed(&job.next_run_time?)
}
