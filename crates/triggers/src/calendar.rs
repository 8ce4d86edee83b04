//! The `calendarinterval` trigger (APScheduler 4's `CalendarIntervalTrigger`).

use std::fmt;

use apscheduler_core::time::{localize, parse_date, parse_timezone};
use apscheduler_core::{Trigger, TriggerError};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::util::{apply_jitter, check_jitter, TICK};

/// Fires at a fixed time of day every so many years, months, weeks and days of
/// calendar time (APScheduler 4's `CalendarIntervalTrigger`).
///
/// The first fire is at `start_date` (even when that is before now). Month arithmetic
/// keeps the day of month and skips months where that day does not exist (Jan 31 +
/// 1 month = Mar 31). The time of day follows the DST policy: a time inside a gap fires
/// at the instant it denotes with the offset before the jump, a time in an overlap
/// fires once, at its first occurrence.
///
/// ```
/// use apscheduler_core::Trigger;
/// use apscheduler_triggers::CalendarIntervalTrigger;
/// use chrono::NaiveDate;
///
/// let start = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
/// let trigger = CalendarIntervalTrigger::builder(start, chrono_tz::UTC)
///     .months(1)
///     .time(10, 0, 0)
///     .build()
///     .unwrap();
/// let first = trigger.next_fire_time(None, &trigger.start_instant()).unwrap();
/// let second = trigger.next_fire_time(Some(&first), &first).unwrap();
/// assert_eq!(second.to_rfc3339(), "2024-03-31T10:00:00+00:00");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CalendarSpec", into = "CalendarSpec")]
pub struct CalendarIntervalTrigger {
    years: u32,
    months: u32,
    weeks: u32,
    days: u32,
    time: NaiveTime,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    timezone: Tz,
    jitter: Option<f64>,
}

/// Builds a [`CalendarIntervalTrigger`].
#[derive(Debug, Clone)]
pub struct CalendarIntervalTriggerBuilder {
    spec: CalendarSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CalendarSpec {
    #[serde(default)]
    years: u32,
    #[serde(default)]
    months: u32,
    #[serde(default)]
    weeks: u32,
    #[serde(default)]
    days: u32,
    #[serde(default)]
    hour: u32,
    #[serde(default)]
    minute: u32,
    #[serde(default)]
    second: u32,
    start_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_date: Option<NaiveDate>,
    timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
}

impl CalendarIntervalTriggerBuilder {
    /// Adds years to the interval.
    pub fn years(mut self, n: u32) -> Self {
        self.spec.years = n;
        self
    }
    /// Adds months to the interval.
    pub fn months(mut self, n: u32) -> Self {
        self.spec.months = n;
        self
    }
    /// Adds weeks to the interval.
    pub fn weeks(mut self, n: u32) -> Self {
        self.spec.weeks = n;
        self
    }
    /// Adds days to the interval.
    pub fn days(mut self, n: u32) -> Self {
        self.spec.days = n;
        self
    }
    /// The time of day to fire at (default midnight).
    pub fn time(mut self, hour: u32, minute: u32, second: u32) -> Self {
        self.spec.hour = hour;
        self.spec.minute = minute;
        self.spec.second = second;
        self
    }
    /// The last date that may fire.
    pub fn end_date(mut self, end: NaiveDate) -> Self {
        self.spec.end_date = Some(end);
        self
    }
    /// Adds a random delay of up to `seconds` to each fire time.
    pub fn jitter(mut self, seconds: f64) -> Self {
        self.spec.jitter = Some(seconds);
        self
    }
    /// Validates and builds the trigger.
    ///
    /// # Errors
    /// An interval of zero length, a time of day out of range, `end_date` before `start_date`.
    pub fn build(self) -> Result<CalendarIntervalTrigger, TriggerError> {
        CalendarIntervalTrigger::try_from(self.spec)
    }
}

impl CalendarIntervalTrigger {
    /// Starts building a trigger whose first fire is on `start_date`.
    pub fn builder(start_date: NaiveDate, tz: Tz) -> CalendarIntervalTriggerBuilder {
        CalendarIntervalTriggerBuilder {
            spec: CalendarSpec {
                years: 0,
                months: 0,
                weeks: 0,
                days: 0,
                hour: 0,
                minute: 0,
                second: 0,
                start_date,
                end_date: None,
                timezone: tz.name().to_owned(),
                jitter: None,
            },
        }
    }

    /// Reads a `YYYY-MM-DD` date for `field` (calendar intervals take dates, not datetimes).
    ///
    /// # Errors
    /// Anything but a valid date.
    pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, TriggerError> {
        parse_date(field, value)
    }

    /// The first fire time.
    pub fn start_instant(&self) -> DateTime<Tz> {
        self.fire(self.start_date)
    }

    fn fire(&self, date: NaiveDate) -> DateTime<Tz> {
        localize(self.timezone, date.and_time(self.time))
    }

    fn in_range(&self, date: NaiveDate) -> bool {
        self.end_date.is_none_or(|end| date <= end)
    }

    /// The date after `date` in the sequence.
    fn step(&self, date: NaiveDate) -> Option<NaiveDate> {
        let mut next = date;
        if self.years > 0 || self.months > 0 {
            let (mut year, mut month) = (date.year() as i64, date.month() as i64);
            // Skip months where the day does not exist; 48 tries always find one
            // (every day up to 31 exists in some month within 4 years).
            let mut found = None;
            for _ in 0..48 {
                month += i64::from(self.months);
                year += i64::from(self.years) + (month - 1).div_euclid(12);
                month = (month - 1).rem_euclid(12) + 1;
                if year > 9999 {
                    return None;
                }
                if let Some(d) = NaiveDate::from_ymd_opt(year as i32, month as u32, date.day()) {
                    found = Some(d);
                    break;
                }
            }
            next = found?;
        }
        next.checked_add_days(Days::new(u64::from(self.days) + 7 * u64::from(self.weeks)))
    }

    /// The first date of the sequence whose fire time is `>= t`.
    fn first_date_at_or_after(&self, t: &DateTime<Tz>) -> Option<NaiveDate> {
        let mut date = self.start_date;
        if self.years == 0 && self.months == 0 {
            // Pure day steps: jump close to `t` arithmetically.
            let step = i64::from(self.days) + 7 * i64::from(self.weeks);
            let target = t.with_timezone(&self.timezone).date_naive();
            let diff = (target - self.start_date).num_days();
            if diff > 1 {
                let k = (diff - 1) / step;
                date = self
                    .start_date
                    .checked_add_days(Days::new((k * step) as u64))?;
            }
        }
        loop {
            if !self.in_range(date) {
                return None;
            }
            if self.fire(date) >= *t {
                return Some(date);
            }
            date = self.step(date)?;
        }
    }

    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.first_date_at_or_after(t).map(|d| self.fire(d))
    }

    pub(crate) fn first_fire(&self) -> Option<DateTime<Tz>> {
        self.in_range(self.start_date)
            .then(|| self.fire(self.start_date))
    }

    pub(crate) fn jitter(&self) -> Option<f64> {
        self.jitter
    }
}

impl Trigger for CalendarIntervalTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        _now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        let next = match previous {
            None => self.first_fire()?,
            Some(prev) => self.first_at_or_after(&(*prev + TICK))?,
        };
        Some(apply_jitter(next, self.jitter))
    }

    fn timezone(&self) -> Tz {
        self.timezone
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(crate::AnyTrigger::from(self.clone())).ok()
    }
}

impl fmt::Display for CalendarIntervalTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("calendarinterval[")?;
        for (name, value) in [
            ("years", self.years),
            ("months", self.months),
            ("weeks", self.weeks),
            ("days", self.days),
        ] {
            if value > 0 {
                write!(f, "{name}={value}, ")?;
            }
        }
        write!(
            f,
            "time='{}', start_date='{}'",
            self.time.format("%H:%M:%S"),
            self.start_date
        )?;
        if let Some(end) = self.end_date {
            write!(f, ", end_date='{end}'")?;
        }
        f.write_str("]")
    }
}

impl From<CalendarIntervalTrigger> for CalendarSpec {
    fn from(t: CalendarIntervalTrigger) -> Self {
        CalendarSpec {
            years: t.years,
            months: t.months,
            weeks: t.weeks,
            days: t.days,
            hour: t.time.hour(),
            minute: t.time.minute(),
            second: t.time.second(),
            start_date: t.start_date,
            end_date: t.end_date,
            timezone: t.timezone.name().to_owned(),
            jitter: t.jitter,
        }
    }
}

impl TryFrom<CalendarSpec> for CalendarIntervalTrigger {
    type Error = TriggerError;
    fn try_from(s: CalendarSpec) -> Result<Self, Self::Error> {
        let timezone = parse_timezone("timezone", &s.timezone)?;
        if s.years == 0 && s.months == 0 && s.weeks == 0 && s.days == 0 {
            return Err(TriggerError::EmptyInterval {
                field: "interval".into(),
                value: "years=0, months=0, weeks=0, days=0".into(),
            });
        }
        for (field, value, max) in [
            ("hour", s.hour, 23),
            ("minute", s.minute, 59),
            ("second", s.second, 59),
        ] {
            if value > max {
                return Err(TriggerError::invalid_field(
                    field,
                    value.to_string(),
                    format!("{field} must be in 0..{max}"),
                ));
            }
        }
        let time = NaiveTime::from_hms_opt(s.hour, s.minute, s.second).ok_or_else(|| {
            TriggerError::invalid_field("hour", s.hour.to_string(), "invalid time of day")
        })?;
        if let Some(end) = s.end_date {
            if end < s.start_date {
                return Err(TriggerError::EndBeforeStart {
                    start: s.start_date.to_string(),
                    end: end.to_string(),
                });
            }
        }
        Ok(CalendarIntervalTrigger {
            years: s.years,
            months: s.months,
            weeks: s.weeks,
            days: s.days,
            time,
            start_date: s.start_date,
            end_date: s.end_date,
            timezone,
            jitter: check_jitter(s.jitter)?,
        })
    }
}
