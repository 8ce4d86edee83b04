//! [`ExcludingTrigger`]: any trigger with an exclusion calendar applied.

use std::fmt;
use std::str::FromStr;

use apscheduler_core::{Trigger, TriggerError};
use chrono::{DateTime, Duration};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{NamedCalendar, SEARCH_DAYS};
use crate::util::TICK;
use crate::AnyTrigger;

/// Bound on the excluded periods [`ExcludingTrigger::first_allowed`] steps over.
const MAX_SKIPS: usize = 10_000;

/// What happens to a fire time the calendar excludes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarAction {
    /// The fire time does not run: the scheduler records it as missed ("excluded by
    /// calendar NAME") and the job goes on with its next fire time.
    #[default]
    Skip,
    /// The fire time moves to the first instant the calendar allows; several fire
    /// times inside one excluded period run once, at that instant.
    NextAllowed,
}

impl CalendarAction {
    /// The name used in configuration and JSON: `skip` or `next_allowed`.
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarAction::Skip => "skip",
            CalendarAction::NextAllowed => "next_allowed",
        }
    }
}

impl fmt::Display for CalendarAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CalendarAction {
    type Err = TriggerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(CalendarAction::Skip),
            "next_allowed" => Ok(CalendarAction::NextAllowed),
            other => Err(TriggerError::invalid_field(
                "action",
                other,
                "expected 'skip' or 'next_allowed'",
            )),
        }
    }
}

/// Any trigger with an exclusion calendar applied (`type` `"excluding"` when stored).
///
/// - [`CalendarAction::Skip`]: the fire times are the inner trigger's; for an excluded
///   one, [`Trigger::excluded_by`] names the calendar, and the scheduler records it as
///   missed instead of running it.
/// - [`CalendarAction::NextAllowed`]: an excluded fire time is moved to the calendar's
///   [`next_allowed`](super::ExclusionCalendar::next_allowed) instant; the next fire time
///   is the inner trigger's first after that instant, so fire times inside one excluded
///   period collapse into one run. (An interval trigger counts its interval from the
///   moved instant, as it does from a run time given explicitly.)
///
/// ```
/// use apscheduler_core::Trigger;
/// use apscheduler_triggers::{CalendarAction, CronTrigger, ExcludingTrigger, ExclusionCalendar, NamedCalendar};
/// use chrono::{TimeZone, Weekday};
///
/// let tz = chrono_tz::UTC;
/// let weekends = NamedCalendar::new("weekends", ExclusionCalendar::new(tz).weekdays([Weekday::Sat, Weekday::Sun]));
/// let daily = CronTrigger::builder().hour(9).timezone(tz).build().unwrap();
/// let trigger = ExcludingTrigger::new(daily, weekends, CalendarAction::Skip);
/// assert_eq!(trigger.to_string(), "excluding[cron[hour='9'], calendar='weekends', action='skip']");
/// let saturday = tz.with_ymd_and_hms(2026, 3, 7, 9, 0, 0).unwrap();
/// assert_eq!(trigger.excluded_by(&saturday), Some("weekends"));
/// assert_eq!(trigger.first_allowed(&saturday).unwrap().to_rfc3339(), "2026-03-09T09:00:00+00:00");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludingTrigger {
    trigger: Box<AnyTrigger>,
    calendar: NamedCalendar,
    #[serde(default)]
    action: CalendarAction,
}

impl ExcludingTrigger {
    /// Applies `calendar` to `trigger`.
    pub fn new(
        trigger: impl Into<AnyTrigger>,
        calendar: NamedCalendar,
        action: CalendarAction,
    ) -> Self {
        ExcludingTrigger {
            trigger: Box::new(trigger.into()),
            calendar,
            action,
        }
    }

    /// The trigger the calendar applies to.
    pub fn trigger(&self) -> &AnyTrigger {
        &self.trigger
    }

    /// The calendar.
    pub fn calendar(&self) -> &NamedCalendar {
        &self.calendar
    }

    /// What happens to excluded fire times.
    pub fn action(&self) -> CalendarAction {
        self.action
    }

    /// The first fire time at or after `from` (a fire time of this trigger) that really
    /// runs: what a listing shows as the next run time, with exclusions applied. `None`
    /// when the inner trigger is exhausted first, or nothing is allowed within ten years.
    pub fn first_allowed(&self, from: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.search(from).ok()
    }

    /// An error when the calendar excludes every remaining fire time from `now` on: the
    /// inner trigger is exhausted before any allowed fire time, or none is allowed within
    /// ten years. A trigger that has no fire time left at all is not an error here.
    /// Bounded in time (it jumps over excluded periods, at most 10,000 of them).
    ///
    /// # Errors
    /// A [`TriggerError`] on field `calendar` naming the calendar and why.
    pub fn check_runs(&self, now: &DateTime<Tz>) -> Result<(), TriggerError> {
        let Some(first) = self.trigger.next_fire_time(None, now) else {
            return Ok(());
        };
        self.search(&first).map(|_| ()).map_err(|why| {
            TriggerError::invalid_field(
                "calendar",
                &self.calendar.name,
                format!(
                    "the calendar excludes every fire time of {} from {}: {why}",
                    self.trigger,
                    first.format("%Y-%m-%d %H:%M:%S %Z")
                ),
            )
        })
    }

    /// [`first_allowed`](Self::first_allowed), saying why there is none.
    fn search(&self, from: &DateTime<Tz>) -> Result<DateTime<Tz>, &'static str> {
        const NOTHING_ALLOWED: &str = "nothing is allowed within ten years";
        let calendar = &self.calendar.calendar;
        if self.action == CalendarAction::NextAllowed {
            return calendar.next_allowed(from).ok_or(NOTHING_ALLOWED);
        }
        let limit = *from + Duration::days(SEARCH_DAYS);
        let mut f = *from;
        for _ in 0..MAX_SKIPS {
            // Past this calendar's excluded period, or (excluded by a calendar of the
            // inner trigger) to the inner trigger's next fire time.
            let allowed = if calendar.excludes(&f) {
                calendar.next_allowed(&f).ok_or(NOTHING_ALLOWED)?
            } else if self.trigger.excluded_by(&f).is_some() {
                f + TICK
            } else {
                return Ok(f);
            };
            f = self
                .inner_at_or_after(&f, &allowed)
                .ok_or("the trigger has no fire time left after the excluded ones")?;
            if f > limit {
                return Err("none of its fire times within ten years is allowed");
            }
        }
        Err("none of its next 10,000 excluded periods is followed by an allowed fire time")
    }

    /// The inner trigger's first fire time at or after `at`, continuing its sequence from
    /// the fire time `prev` (as the scheduler steps it).
    fn inner_at_or_after(&self, prev: &DateTime<Tz>, at: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        if let AnyTrigger::Interval(i) = self.trigger.as_ref() {
            if i.jitter().is_none() {
                // previous + k × interval, without stepping k times.
                let step = i.interval().num_nanoseconds()?;
                let gap = (*at - *prev).num_nanoseconds()?;
                let k = if gap <= 0 { 1 } else { (gap + step - 1) / step };
                let before = *prev + Duration::nanoseconds(step.checked_mul(k - 1)?);
                return i.next_fire_time(Some(&before), at);
            }
        }
        self.trigger.next_fire_time(Some(&(*at - TICK)), at)
    }

    /// The first instant this trigger really runs at, from the inner sequence's instant
    /// `f` (what AND/OR combinations see of it).
    fn runs_from(&self, f: DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.search(&f).ok()
    }

    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.runs_from(self.trigger.first_at_or_after(t)?)
    }

    pub(crate) fn first_fire(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.runs_from(self.trigger.first_fire(now)?)
    }

    pub(crate) fn jitter(&self) -> Option<f64> {
        self.trigger.jitter()
    }
}

impl Trigger for ExcludingTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        match self.action {
            CalendarAction::Skip => self.trigger.next_fire_time(previous, now),
            CalendarAction::NextAllowed => {
                // Never before `previous`, even when asked with an earlier `now`: a moved
                // fire time must not be moved to again.
                let now = previous.map_or(*now, |p| (*now).max(*p));
                let f = self.trigger.next_fire_time(previous, &now)?;
                if self.calendar.calendar.excludes(&f) {
                    self.calendar.calendar.next_allowed(&f)
                } else {
                    Some(f)
                }
            }
        }
    }

    fn timezone(&self) -> Tz {
        self.trigger.timezone()
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(AnyTrigger::from(self.clone())).ok()
    }

    fn excluded_by(&self, fire_time: &DateTime<Tz>) -> Option<&str> {
        if self.action == CalendarAction::Skip && self.calendar.calendar.excludes(fire_time) {
            return Some(&self.calendar.name);
        }
        self.trigger.excluded_by(fire_time)
    }

    fn first_allowed(&self, fire_time: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        ExcludingTrigger::first_allowed(self, fire_time)
    }

    fn check_runs(&self, now: &DateTime<Tz>) -> Result<(), TriggerError> {
        ExcludingTrigger::check_runs(self, now)
    }
}

impl fmt::Display for ExcludingTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "excluding[{}, calendar='{}', action='{}']",
            self.trigger, self.calendar.name, self.action
        )
    }
}
