//! `and` / `or` combinations of triggers.

use std::fmt;

use apscheduler_core::{Trigger, TriggerError};
use chrono::{DateTime, Duration};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::cron::Matcher;
use crate::util::{apply_jitter, ceil_to_second, check_jitter, TICK};
use crate::AnyTrigger;

/// How far an AND searches for a common fire time before giving up.
const AND_HORIZON_YEARS: i64 = 400;
/// Bound on alternation steps of an AND search, so no input can loop for long.
const AND_MAX_STEPS: usize = 2_000_000;

/// Fires on the instants at which every member fires (APScheduler's `AndTrigger`,
/// without its endless loop after the first fire: this one yields the whole sequence).
///
/// Gives up (exhausted) after 400 years without a common instant.
///
/// ```
/// use apscheduler_core::Trigger;
/// use apscheduler_triggers::{AndTrigger, AnyTrigger, CronTrigger};
///
/// let fridays = CronTrigger::builder().day_of_week("fri").hour(0).build().unwrap();
/// let thirteenth = CronTrigger::builder().day(13).hour(0).build().unwrap();
/// let trigger = AndTrigger::new(vec![fridays.into(), thirteenth.into()]).unwrap();
/// let now = apscheduler_core::time::parse_datetime("now", "2024-01-01", chrono_tz::UTC).unwrap();
/// let next = trigger.next_fire_time(None, &now).unwrap();
/// assert_eq!(next.to_rfc3339(), "2024-09-13T00:00:00+00:00");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CombinationSpec", into = "CombinationSpec")]
pub struct AndTrigger {
    triggers: Vec<AnyTrigger>,
    jitter: Option<f64>,
    /// Cron members (sharing the first cron's timezone) merged into one matcher, so
    /// crons that never coincide are found out field by field rather than by stepping.
    merged: Option<MergedCron>,
    /// The members not folded into `merged`.
    rest: Vec<AnyTrigger>,
}

#[derive(Debug, Clone, PartialEq)]
struct MergedCron {
    matcher: Matcher,
    timezone: Tz,
    start_date: Option<DateTime<Tz>>,
    end_date: Option<DateTime<Tz>>,
}

impl MergedCron {
    fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let mut start = t.with_timezone(&self.timezone);
        if let Some(s) = self.start_date {
            start = start.max(s);
        }
        let next = crate::cron::next_instant(&self.matcher, self.timezone, ceil_to_second(start))?;
        match self.end_date {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }
}

/// Fires whenever any member fires: the merged sequence of the members' own
/// sequences, each member keeping its own progress (unlike APScheduler 3.x, where
/// date members vanish and interval members restart from another member's fire).
///
/// ```
/// use apscheduler_core::Trigger;
/// use apscheduler_triggers::{CronTrigger, OrTrigger};
///
/// let nine = CronTrigger::builder().hour(9).build().unwrap();
/// let five = CronTrigger::builder().hour(17).build().unwrap();
/// let trigger = OrTrigger::new(vec![nine.into(), five.into()]).unwrap();
/// assert_eq!(trigger.to_string(), "or[cron[hour='9'], cron[hour='17']]");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CombinationSpec", into = "CombinationSpec")]
pub struct OrTrigger {
    triggers: Vec<AnyTrigger>,
    jitter: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct CombinationSpec {
    triggers: Vec<AnyTrigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
}

fn check_members(triggers: &[AnyTrigger]) -> Result<(), TriggerError> {
    if triggers.is_empty() {
        return Err(TriggerError::invalid_field(
            "triggers",
            "[]",
            "a combination needs at least one trigger",
        ));
    }
    Ok(())
}

impl AndTrigger {
    /// Combines `triggers`.
    ///
    /// # Errors
    /// An empty list.
    pub fn new(triggers: Vec<AnyTrigger>) -> Result<Self, TriggerError> {
        Self::with_jitter(triggers, None)
    }

    /// Combines `triggers`, adding up to `jitter` seconds to each fire time.
    ///
    /// # Errors
    /// An empty list or a bad jitter.
    pub fn with_jitter(
        triggers: Vec<AnyTrigger>,
        jitter: Option<f64>,
    ) -> Result<Self, TriggerError> {
        check_members(&triggers)?;
        let jitter = check_jitter(jitter)?;
        let mut merged: Option<MergedCron> = None;
        let mut rest = Vec::new();
        for t in &triggers {
            match (t, &mut merged) {
                (AnyTrigger::Cron(c), None) => {
                    merged = Some(MergedCron {
                        matcher: c.matcher().clone(),
                        timezone: c.timezone(),
                        start_date: c.start_date(),
                        end_date: c.end_date(),
                    });
                }
                (AnyTrigger::Cron(c), Some(m))
                    if c.timezone() == m.timezone && c.matcher().dst == m.matcher.dst =>
                {
                    m.matcher = m.matcher.and(c.matcher());
                    m.start_date = match (m.start_date, c.start_date()) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    m.end_date = match (m.end_date, c.end_date()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                _ => rest.push(t.clone()),
            }
        }
        Ok(AndTrigger {
            triggers,
            jitter,
            merged,
            rest,
        })
    }

    /// The members.
    pub fn triggers(&self) -> &[AnyTrigger] {
        &self.triggers
    }

    /// First common instant at or after `t`.
    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let horizon = *t + Duration::days(366 * AND_HORIZON_YEARS);
        let mut t = *t;
        for _ in 0..AND_MAX_STEPS {
            let mut agreed = true;
            if let Some(m) = &self.merged {
                let c = m.first_at_or_after(&t)?;
                if c > t {
                    t = c;
                    agreed = false;
                }
            }
            for member in &self.rest {
                let c = member.first_at_or_after(&t)?;
                if c > t {
                    t = c;
                    agreed = false;
                }
            }
            if agreed {
                return Some(t);
            }
            if t > horizon {
                return None;
            }
        }
        None
    }

    pub(crate) fn first_fire(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        // Every member's own sequence starts at its own first fire: no common instant
        // can come before the latest of them.
        let mut lower = *now;
        let mut first = true;
        for member in &self.triggers {
            let f = member.first_fire(now)?;
            if first || f > lower {
                lower = f;
            }
            first = false;
        }
        self.first_at_or_after(&lower)
    }

    pub(crate) fn jitter(&self) -> Option<f64> {
        self.jitter
    }
}

impl OrTrigger {
    /// Combines `triggers`.
    ///
    /// # Errors
    /// An empty list.
    pub fn new(triggers: Vec<AnyTrigger>) -> Result<Self, TriggerError> {
        Self::with_jitter(triggers, None)
    }

    /// Combines `triggers`, adding up to `jitter` seconds to each fire time.
    ///
    /// # Errors
    /// An empty list or a bad jitter.
    pub fn with_jitter(
        triggers: Vec<AnyTrigger>,
        jitter: Option<f64>,
    ) -> Result<Self, TriggerError> {
        check_members(&triggers)?;
        Ok(OrTrigger {
            triggers,
            jitter: check_jitter(jitter)?,
        })
    }

    /// The members.
    pub fn triggers(&self) -> &[AnyTrigger] {
        &self.triggers
    }

    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.triggers
            .iter()
            .filter_map(|m| m.first_at_or_after(t))
            .min()
    }

    pub(crate) fn first_fire(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.triggers.iter().filter_map(|m| m.first_fire(now)).min()
    }

    pub(crate) fn jitter(&self) -> Option<f64> {
        self.jitter
    }
}

fn timezone_of(triggers: &[AnyTrigger]) -> Tz {
    triggers.first().map_or(Tz::UTC, |t| t.timezone())
}

impl Trigger for AndTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        let next = match previous {
            None => self.first_fire(now)?,
            Some(prev) => self.first_at_or_after(&(*prev + TICK))?,
        };
        Some(apply_jitter(next, self.jitter))
    }

    fn timezone(&self) -> Tz {
        timezone_of(&self.triggers)
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(crate::AnyTrigger::from(self.clone())).ok()
    }
}

impl Trigger for OrTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        let next = match previous {
            None => self.first_fire(now)?,
            Some(prev) => self.first_at_or_after(&(*prev + TICK))?,
        };
        Some(apply_jitter(next, self.jitter))
    }

    fn timezone(&self) -> Tz {
        timezone_of(&self.triggers)
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(crate::AnyTrigger::from(self.clone())).ok()
    }
}

fn write_members(f: &mut fmt::Formatter<'_>, name: &str, members: &[AnyTrigger]) -> fmt::Result {
    write!(f, "{name}[")?;
    for (i, t) in members.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{t}")?;
    }
    f.write_str("]")
}

impl fmt::Display for AndTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_members(f, "and", &self.triggers)
    }
}

impl fmt::Display for OrTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_members(f, "or", &self.triggers)
    }
}

impl From<AndTrigger> for CombinationSpec {
    fn from(t: AndTrigger) -> Self {
        CombinationSpec {
            triggers: t.triggers,
            jitter: t.jitter,
        }
    }
}

impl TryFrom<CombinationSpec> for AndTrigger {
    type Error = TriggerError;
    fn try_from(s: CombinationSpec) -> Result<Self, Self::Error> {
        AndTrigger::with_jitter(s.triggers, s.jitter)
    }
}

impl From<OrTrigger> for CombinationSpec {
    fn from(t: OrTrigger) -> Self {
        CombinationSpec {
            triggers: t.triggers,
            jitter: t.jitter,
        }
    }
}

impl TryFrom<CombinationSpec> for OrTrigger {
    type Error = TriggerError;
    fn try_from(s: CombinationSpec) -> Result<Self, Self::Error> {
        OrTrigger::with_jitter(s.triggers, s.jitter)
    }
}
