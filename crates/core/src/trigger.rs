use std::fmt;

use chrono::DateTime;
use chrono_tz::Tz;

/// Decides when a job runs.
///
/// Triggers are stateless: the next fire time is a function of the previous fire time
/// and the current time only, so a trigger can be persisted and shared between
/// schedulers.
///
/// # Behavior
/// - `next_fire_time(None, now)` is the first fire time at or after `now` (a date
///   trigger returns its run date even when it is past; the scheduler's misfire
///   rules then apply).
/// - `next_fire_time(Some(prev), now)` is the fire time after `prev`. When `now` is
///   later than `prev`, cron triggers return the earliest fire time after `prev`
///   (possibly before `now`), so the scheduler can count overdue runs.
/// - `None` means the trigger is exhausted; the job is then removed.
/// - Every returned time is in the trigger's own timezone.
/// - Must not panic and must return in bounded time for every input.
///
/// The `Display` form mirrors APScheduler's: `cron[month='6-8,11-12', day='3rd fri']`,
/// `interval[2:00:00]`, `date[2024-01-15 00:00:00 CET]`.
pub trait Trigger: fmt::Debug + fmt::Display + Send + Sync {
    /// The next fire time (see the trait docs for the contract).
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>>;

    /// The timezone fire times are expressed in.
    fn timezone(&self) -> Tz;

    /// The trigger's persisted form (a JSON object tagged by `type`), or `None` when this
    /// trigger cannot be persisted. Job stores that serialize jobs refuse such triggers.
    fn to_state(&self) -> Option<serde_json::Value> {
        None
    }

    /// The name of the exclusion calendar that excludes `fire_time`, when this trigger's
    /// action for excluded fire times is to skip them; `None` otherwise (the default).
    ///
    /// A fire time this returns a name for is not run: the scheduler records it as
    /// missed ("excluded by calendar NAME") and moves on to the next fire time.
    fn excluded_by(&self, fire_time: &DateTime<Tz>) -> Option<&str> {
        let _ = fire_time;
        None
    }

    /// The first fire time at or after `fire_time` (one of this trigger's) that really
    /// runs, with exclusion calendars applied: what a listing shows as the next run time.
    /// `fire_time` itself for a trigger without an exclusion calendar (the default);
    /// `None` when no later fire time runs.
    fn first_allowed(&self, fire_time: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        Some(*fire_time)
    }

    /// An error when an exclusion calendar excludes every fire time of this trigger from
    /// `now` on, so that a job that would never run is reported instead of kept. Always
    /// `Ok` for a trigger without an exclusion calendar (the default).
    ///
    /// # Errors
    /// A [`TriggerError`](crate::TriggerError) naming the calendar and why.
    fn check_runs(&self, now: &DateTime<Tz>) -> Result<(), crate::TriggerError> {
        let _ = now;
        Ok(())
    }
}
