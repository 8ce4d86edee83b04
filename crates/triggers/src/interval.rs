//! The `interval` trigger: fires every fixed length of elapsed time.

use std::fmt;

use apscheduler_core::time::{parse_rfc3339, parse_timezone, to_rfc3339};
use apscheduler_core::{Trigger, TriggerError};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::util::{apply_jitter, check_jitter, TICK};

/// Fires at `start_date + k·interval` (APScheduler's `IntervalTrigger`).
///
/// The interval measures elapsed time, so a 1-hour interval stays 1 hour apart across
/// DST changes. `start_date` defaults to the construction time plus one interval.
///
/// ```
/// use apscheduler_core::Trigger;
/// use apscheduler_triggers::IntervalTrigger;
/// use chrono::{Duration, TimeZone};
///
/// let tz = chrono_tz::UTC;
/// let start = tz.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
/// let trigger = IntervalTrigger::builder(Duration::hours(2))
///     .start_date(start)
///     .build()
///     .unwrap();
/// assert_eq!(trigger.to_string(), "interval[2:00:00]");
/// let now = tz.with_ymd_and_hms(2024, 1, 1, 3, 0, 0).unwrap();
/// let next = trigger.next_fire_time(None, &now).unwrap();
/// assert_eq!(next, tz.with_ymd_and_hms(2024, 1, 1, 4, 0, 0).unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "IntervalSpec", into = "IntervalSpec")]
pub struct IntervalTrigger {
    // Instants are kept in UTC plus one timezone: a `DateTime<Tz>` carries a full offset
    // record (48 bytes), and schedulers hold millions of these triggers.
    interval_nanos: i64,
    start_date: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
    timezone: Tz,
    /// The jitter in seconds as `f32` bits, [`NO_JITTER`] for none: 4 bytes instead of an
    /// `Option<f32>`'s 8 keep the trigger (and its shared allocation) 16 bytes smaller.
    jitter_bits: u32,
}

/// `jitter_bits` of a trigger without jitter (a NaN pattern, never a valid jitter).
const NO_JITTER: u32 = u32::MAX;

/// Builds an [`IntervalTrigger`].
#[derive(Debug, Clone)]
pub struct IntervalTriggerBuilder {
    interval: Duration,
    start_date: Option<DateTime<Tz>>,
    end_date: Option<DateTime<Tz>>,
    timezone: Option<Tz>,
    jitter: Option<f64>,
    now: Option<DateTime<Tz>>,
}

/// An interval given as a `chrono::Duration` or a `std::time::Duration` (the type
/// `misfire_grace_time` and the rest of the standard library use), so either works
/// wherever a trigger takes an interval.
pub trait IntoInterval {
    /// The interval as a `chrono::Duration` (saturating for a `std` duration too long
    /// for it; the builder then refuses it as out of range).
    fn into_interval(self) -> Duration;
}

impl IntoInterval for Duration {
    fn into_interval(self) -> Duration {
        self
    }
}

impl IntoInterval for std::time::Duration {
    fn into_interval(self) -> Duration {
        Duration::from_std(self).unwrap_or(Duration::MAX)
    }
}

impl IntervalTrigger {
    /// Starts building a trigger with the given interval (`chrono::Duration::hours(2)`
    /// or `std::time::Duration::from_secs(7200)`).
    pub fn builder(interval: impl IntoInterval) -> IntervalTriggerBuilder {
        IntervalTriggerBuilder {
            interval: interval.into_interval(),
            start_date: None,
            end_date: None,
            timezone: None,
            jitter: None,
            now: None,
        }
    }

    /// The interval between fires.
    pub fn interval(&self) -> Duration {
        Duration::nanoseconds(self.interval_nanos)
    }

    /// The first fire time of the grid.
    pub fn start_date(&self) -> DateTime<Tz> {
        self.start_date.with_timezone(&self.timezone)
    }

    /// No fire time is later than this.
    pub fn end_date(&self) -> Option<DateTime<Tz>> {
        self.end_date.map(|e| e.with_timezone(&self.timezone))
    }

    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let t = t.with_timezone(&Utc);
        let next = if t <= self.start_date {
            self.start_date
        } else {
            let step = i128::from(self.interval_nanos);
            let diff = (t - self.start_date)
                .num_nanoseconds()
                .map_or(i128::MAX, i128::from);
            let k = (diff + step - 1) / step;
            let offset = i64::try_from(k.checked_mul(step)?).ok()?;
            self.start_date
                .checked_add_signed(Duration::nanoseconds(offset))?
        };
        match self.end_date {
            Some(end) if next > end => None,
            _ => Some(next.with_timezone(&self.timezone)),
        }
    }

    pub(crate) fn jitter(&self) -> Option<f64> {
        (self.jitter_bits != NO_JITTER).then(|| f64::from(f32::from_bits(self.jitter_bits)))
    }
}

impl IntervalTriggerBuilder {
    /// First fire time (default: now + interval).
    pub fn start_date(mut self, start: DateTime<Tz>) -> Self {
        self.start_date = Some(start);
        self
    }

    /// Last possible fire time.
    pub fn end_date(mut self, end: DateTime<Tz>) -> Self {
        self.end_date = Some(end);
        self
    }

    /// Timezone for fire times (default: the start date's, else UTC).
    pub fn timezone(mut self, tz: Tz) -> Self {
        self.timezone = Some(tz);
        self
    }

    /// Adds a random delay of up to `seconds` to each fire time.
    pub fn jitter(mut self, seconds: f64) -> Self {
        self.jitter = Some(seconds);
        self
    }

    /// The "now" used for the default start date (default: the system clock).
    pub fn now(mut self, now: DateTime<Tz>) -> Self {
        self.now = Some(now);
        self
    }

    /// Validates and builds the trigger.
    ///
    /// # Errors
    /// A zero or negative interval, `end_date` before `start_date`, a bad jitter.
    pub fn build(self) -> Result<IntervalTrigger, TriggerError> {
        if self.interval <= Duration::zero() || self.interval.num_nanoseconds().is_none() {
            return Err(TriggerError::EmptyInterval {
                field: "interval".into(),
                value: apscheduler_core::time::human_duration(self.interval),
            });
        }
        let tz = self
            .timezone
            .or(self.start_date.map(|s| s.timezone()))
            .unwrap_or(Tz::UTC);
        let jitter = check_jitter(self.jitter)?;
        // Kept in UTC: converting to the zone costs a lookup, and is needed only for
        // an error message.
        let start: DateTime<Utc> = match self.start_date {
            Some(s) => s.with_timezone(&Utc),
            None => {
                let now = self
                    .now
                    .map_or_else(chrono::Utc::now, |n| n.with_timezone(&Utc));
                now + self.interval
            }
        };
        let end = self.end_date.map(|e| e.with_timezone(&Utc));
        if let Some(end) = end {
            if end < start {
                return Err(TriggerError::EndBeforeStart {
                    start: to_rfc3339(&start.with_timezone(&tz)),
                    end: to_rfc3339(&end.with_timezone(&tz)),
                });
            }
        }
        Ok(IntervalTrigger {
            interval_nanos: self.interval.num_nanoseconds().unwrap_or(i64::MAX),
            start_date: start,
            end_date: end,
            timezone: tz,
            jitter_bits: jitter.map_or(NO_JITTER, |j| (j as f32).to_bits()),
        })
    }
}

impl Trigger for IntervalTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        // With a previous fire time, previous + interval, as APScheduler computes it: a
        // next run time given explicitly (at add_job or modify_job) shifts the grid, and
        // resuming (no previous) realigns to the start_date grid. With jitter the
        // previous fire time was jittered, so the next is the grid point after it
        // instead: jitter does not make the grid drift.
        let next = match previous {
            Some(prev) if self.jitter_bits == NO_JITTER => {
                let next = prev.checked_add_signed(Duration::nanoseconds(self.interval_nanos))?;
                match self.end_date {
                    Some(end) if next > end => return None,
                    _ => next,
                }
            }
            Some(prev) => self.first_at_or_after(&(*prev + TICK))?,
            None => self.first_at_or_after(now)?,
        };
        let next = apply_jitter(next, self.jitter());
        match self.end_date {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    fn timezone(&self) -> Tz {
        self.timezone
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(crate::AnyTrigger::from(self.clone())).ok()
    }
}

impl fmt::Display for IntervalTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interval[{}]",
            apscheduler_core::time::timedelta(self.interval())
        )
    }
}

#[derive(Serialize, Deserialize)]
struct IntervalSpec {
    interval_seconds: f64,
    start_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_date: Option<String>,
    timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
}

impl From<IntervalTrigger> for IntervalSpec {
    fn from(t: IntervalTrigger) -> Self {
        IntervalSpec {
            interval_seconds: t.interval_nanos as f64 / 1e9,
            start_date: to_rfc3339(&t.start_date()),
            end_date: t.end_date().as_ref().map(to_rfc3339),
            timezone: t.timezone.name().to_owned(),
            jitter: t.jitter(),
        }
    }
}

impl TryFrom<IntervalSpec> for IntervalTrigger {
    type Error = TriggerError;
    fn try_from(s: IntervalSpec) -> Result<Self, Self::Error> {
        let tz = parse_timezone("timezone", &s.timezone)?;
        let interval = seconds_to_duration("interval", s.interval_seconds)?;
        let mut b = IntervalTrigger::builder(interval)
            .timezone(tz)
            .start_date(parse_rfc3339("start_date", &s.start_date, tz)?);
        if let Some(end) = s.end_date {
            b = b.end_date(parse_rfc3339("end_date", &end, tz)?);
        }
        if let Some(j) = s.jitter {
            b = b.jitter(j);
        }
        b.build()
    }
}

/// Converts a number of seconds to a duration, refusing NaN, infinities and overflow.
pub(crate) fn seconds_to_duration(field: &str, secs: f64) -> Result<Duration, TriggerError> {
    if !secs.is_finite() || secs.abs() > 9.0e9 {
        return Err(TriggerError::invalid_field(
            field,
            secs.to_string(),
            "not a finite number of seconds in range",
        ));
    }
    Ok(Duration::nanoseconds((secs * 1e9).round() as i64))
}

#[cfg(test)]
mod size {
    /// One allocation per job holds the trigger behind an `Arc` (16 bytes of counts):
    /// at 40 bytes it fits a 64-byte allocator chunk, at 48 it would take 80.
    #[test]
    fn interval_trigger_stays_small() {
        assert!(std::mem::size_of::<super::IntervalTrigger>() <= 40);
    }
}

#[cfg(test)]
mod errors {
    use super::*;

    /// The refused interval reads as a person writes one, negative ones included.
    #[test]
    fn an_empty_interval_names_its_value_in_human_units() {
        let message = |d: Duration| IntervalTrigger::builder(d).build().unwrap_err().to_string();
        assert_eq!(
            message(Duration::zero()),
            "invalid value for field 'interval': '0s': interval must be longer than zero"
        );
        assert!(
            message(Duration::seconds(-5)).contains("'-5s'"),
            "{}",
            message(Duration::seconds(-5))
        );
    }
}
