//! The `date` trigger: one run at a given instant.

use std::fmt;

use apscheduler_core::time::{parse_datetime, parse_rfc3339, to_rfc3339};
use apscheduler_core::{Trigger, TriggerError};
use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Fires once, at `run_date` (APScheduler's `DateTrigger`).
///
/// `next_fire_time(None, now)` returns the run date even when it is past, so the
/// scheduler's misfire rules decide whether a late run still happens.
///
/// ```
/// use apscheduler_core::Trigger;
/// use apscheduler_triggers::DateTrigger;
///
/// let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
/// let trigger = DateTrigger::parse("2024-01-15", tz).unwrap();
/// assert_eq!(trigger.to_string(), "date[2024-01-15 00:00:00 CET]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DateSpec", into = "DateSpec")]
pub struct DateTrigger {
    run_date: DateTime<Tz>,
}

impl DateTrigger {
    /// A trigger firing at `run_date` (expressed in its own timezone).
    pub fn new(run_date: DateTime<Tz>) -> Self {
        DateTrigger { run_date }
    }

    /// Reads `run_date` as text (`2009-11-06 16:30:05`, `2009-11-06`, RFC 3339);
    /// naive values are wall-clock time in `tz`.
    pub fn parse(run_date: &str, tz: Tz) -> Result<Self, TriggerError> {
        Ok(DateTrigger::new(parse_datetime("run_date", run_date, tz)?))
    }

    /// The instant this trigger fires at.
    pub fn run_date(&self) -> DateTime<Tz> {
        self.run_date
    }

    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        (self.run_date >= *t).then_some(self.run_date)
    }
}

impl Trigger for DateTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        _now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        match previous {
            None => Some(self.run_date),
            Some(_) => None,
        }
    }

    fn timezone(&self) -> Tz {
        self.run_date.timezone()
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(crate::AnyTrigger::from(self.clone())).ok()
    }
}

impl fmt::Display for DateTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "date[{}]", self.run_date.format("%Y-%m-%d %H:%M:%S %Z"))
    }
}

#[derive(Serialize, Deserialize)]
struct DateSpec {
    run_date: String,
    timezone: String,
}

impl From<DateTrigger> for DateSpec {
    fn from(t: DateTrigger) -> Self {
        DateSpec {
            run_date: to_rfc3339(&t.run_date),
            timezone: t.run_date.timezone().name().to_owned(),
        }
    }
}

impl TryFrom<DateSpec> for DateTrigger {
    type Error = TriggerError;
    fn try_from(s: DateSpec) -> Result<Self, Self::Error> {
        let tz = apscheduler_core::time::parse_timezone("timezone", &s.timezone)?;
        Ok(DateTrigger::new(parse_rfc3339(
            "run_date",
            &s.run_date,
            tz,
        )?))
    }
}
