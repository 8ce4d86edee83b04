//! # apscheduler-triggers
//!
//! The trigger kinds of APScheduler, with its exact semantics and a stated DST policy:
//!
//! | kind | type | APScheduler |
//! |---|---|---|
//! | `date` | [`DateTrigger`] | `DateTrigger` |
//! | `interval` | [`IntervalTrigger`] | `IntervalTrigger` |
//! | `cron` | [`CronTrigger`] (+ [`CronTrigger::from_crontab`]) | `CronTrigger` |
//! | `calendarinterval` | [`CalendarIntervalTrigger`] | APScheduler 4's `CalendarIntervalTrigger` |
//! | `and` / `or` | [`AndTrigger`], [`OrTrigger`] | `AndTrigger`, `OrTrigger` |
//! | `excluding` | [`ExcludingTrigger`]: any trigger with an [`ExclusionCalendar`] applied | — |
//!
//! [`AnyTrigger`] holds any of them, serializes with serde (so job stores can persist
//! it) and is built from APScheduler-style keyword arguments by [`AnyTrigger::from_args`].
//!
//! ## Usage
//! ```
//! use apscheduler_core::Trigger;
//! use apscheduler_triggers::AnyTrigger;
//! use serde_json::json;
//!
//! let tz: chrono_tz::Tz = "Europe/Helsinki".parse().unwrap();
//! let now = apscheduler_core::time::parse_datetime("now", "2024-06-01 12:00:00", tz).unwrap();
//! let trigger = AnyTrigger::from_args("cron", &json!({"day_of_week": "mon-fri", "hour": 9}), tz, now)
//!     .unwrap();
//! assert_eq!(trigger.to_string(), "cron[day_of_week='mon-fri', hour='9']");
//! let next = trigger.next_fire_time(None, &now).unwrap();
//! assert_eq!(next.to_rfc3339(), "2024-06-03T09:00:00+03:00");
//!
//! let err = AnyTrigger::from_args("cron", &json!({"minute": 60}), tz, now).unwrap_err();
//! assert_eq!(err.field(), "minute");
//! ```
//!
//! ## DST policy
//! - A wall-clock time inside a spring-forward gap fires once, at the instant it denotes
//!   with the offset in force before the jump (02:30 in New York on the spring-forward
//!   day fires at 03:30 EDT). The same instant is never produced twice.
//! - In a fall-back overlap, a cron trigger whose hour field is `*` or `*/n` follows real
//!   time and fires in both passes; otherwise each wall-clock time fires once, at its
//!   first occurrence.
//! - Interval triggers measure elapsed time; calendar intervals use wall time with the
//!   two rules above.
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and later.

mod args;
mod calendar;
mod combining;
mod cron;
mod date;
mod exclusion;
mod interval;
mod util;
mod vector;

use std::fmt;

pub use apscheduler_core::{Trigger, TriggerError};
pub use calendar::{CalendarIntervalTrigger, CalendarIntervalTriggerBuilder};
pub use combining::{AndTrigger, OrTrigger};
pub use cron::{crontab_uses_hash, expand_macro, CronTrigger, CronTriggerBuilder, Dst};
pub use date::DateTrigger;
pub use exclusion::{
    CalendarAction, CalendarError, ExcludingTrigger, ExclusionCalendar, NamedCalendar,
};
pub use interval::{IntervalTrigger, IntervalTriggerBuilder, IntoInterval};
pub use vector::{evaluate_vector, MAX_COUNT};

use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Any trigger kind of this crate; what jobs hold and stores persist.
///
/// Serialized with a `type` tag: `{"type": "cron", "hour": "9", "timezone": "UTC"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum AnyTrigger {
    /// A [`CronTrigger`] (boxed: it is by far the largest kind).
    Cron(Box<CronTrigger>),
    /// An [`IntervalTrigger`].
    Interval(IntervalTrigger),
    /// A [`DateTrigger`].
    Date(DateTrigger),
    /// A [`CalendarIntervalTrigger`].
    #[serde(rename = "calendarinterval")]
    CalendarInterval(CalendarIntervalTrigger),
    /// An [`AndTrigger`].
    And(AndTrigger),
    /// An [`OrTrigger`].
    Or(OrTrigger),
    /// An [`ExcludingTrigger`] (boxed: it holds a trigger and a calendar).
    Excluding(Box<ExcludingTrigger>),
}

impl AnyTrigger {
    /// Builds a trigger from its kind name and APScheduler's keyword arguments as JSON.
    ///
    /// Kinds: `cron`, `crontab` (`{"expr": "0 9 * * mon-fri"}`), `interval`, `date`,
    /// `calendarinterval`, `and`, `or` (`{"triggers": [{"trigger": ..., "args": ...}]}`),
    /// `excluding` (`{"trigger": ..., "args": ..., "calendar": {"name": ..., "calendar":
    /// ...}, "action": "skip"}`, the calendar in its stored form).
    /// Every kind takes `timezone` (overriding `tz`) and, except `date`, `jitter`;
    /// date strings without an offset are read in the trigger's timezone. `now` is used
    /// for defaults (an interval's start date, a date trigger without `run_date`).
    ///
    /// # Errors
    /// A [`TriggerError`] naming the field and the value for any invalid input,
    /// including unknown kinds and arguments.
    pub fn from_args(
        kind: &str,
        args: &serde_json::Value,
        tz: Tz,
        now: DateTime<Tz>,
    ) -> Result<AnyTrigger, TriggerError> {
        args::build(kind, args, tz, now)
    }

    fn as_trigger(&self) -> &dyn Trigger {
        match self {
            AnyTrigger::Cron(t) => t.as_ref(),
            AnyTrigger::Interval(t) => t,
            AnyTrigger::Date(t) => t,
            AnyTrigger::CalendarInterval(t) => t,
            AnyTrigger::And(t) => t,
            AnyTrigger::Or(t) => t,
            AnyTrigger::Excluding(t) => t.as_ref(),
        }
    }

    /// The kind name (`cron`, `interval`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            AnyTrigger::Cron(_) => "cron",
            AnyTrigger::Interval(_) => "interval",
            AnyTrigger::Date(_) => "date",
            AnyTrigger::CalendarInterval(_) => "calendarinterval",
            AnyTrigger::And(_) => "and",
            AnyTrigger::Or(_) => "or",
            AnyTrigger::Excluding(_) => "excluding",
        }
    }

    /// The configured jitter in seconds, if any.
    pub fn jitter(&self) -> Option<f64> {
        match self {
            AnyTrigger::Cron(t) => t.jitter(),
            AnyTrigger::Interval(t) => t.jitter(),
            AnyTrigger::Date(_) => None,
            AnyTrigger::CalendarInterval(t) => t.jitter(),
            AnyTrigger::And(t) => t.jitter(),
            AnyTrigger::Or(t) => t.jitter(),
            AnyTrigger::Excluding(t) => t.jitter(),
        }
    }

    /// The first instant of this trigger's own sequence at or after `t`, without jitter.
    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        match self {
            AnyTrigger::Cron(c) => c.first_at_or_after(t),
            AnyTrigger::Interval(i) => i.first_at_or_after(t),
            AnyTrigger::Date(d) => d.first_at_or_after(t),
            AnyTrigger::CalendarInterval(c) => c.first_at_or_after(t),
            AnyTrigger::And(a) => a.first_at_or_after(t),
            AnyTrigger::Or(o) => o.first_at_or_after(t),
            AnyTrigger::Excluding(e) => e.first_at_or_after(t),
        }
    }

    /// The first instant of this trigger's own sequence when started at `now`, without
    /// jitter (a date or calendar interval may start in the past).
    pub(crate) fn first_fire(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        match self {
            AnyTrigger::Cron(c) => c.first_at_or_after(now),
            AnyTrigger::Interval(i) => i.first_at_or_after(now),
            AnyTrigger::Date(d) => Some(d.run_date()),
            AnyTrigger::CalendarInterval(c) => c.first_fire(),
            AnyTrigger::And(a) => a.first_fire(now),
            AnyTrigger::Or(o) => o.first_fire(now),
            AnyTrigger::Excluding(e) => e.first_fire(now),
        }
    }
}

impl Trigger for AnyTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        self.as_trigger().next_fire_time(previous, now)
    }

    fn timezone(&self) -> Tz {
        self.as_trigger().timezone()
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    fn excluded_by(&self, fire_time: &DateTime<Tz>) -> Option<&str> {
        self.as_trigger().excluded_by(fire_time)
    }

    fn first_allowed(&self, fire_time: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.as_trigger().first_allowed(fire_time)
    }

    fn check_runs(&self, now: &DateTime<Tz>) -> Result<(), TriggerError> {
        self.as_trigger().check_runs(now)
    }
}

impl AnyTrigger {
    /// Shares this trigger as a trait object holding the concrete kind (the form jobs
    /// hold: an interval job does not pay for the size of a cron trigger).
    pub fn into_shared(self) -> std::sync::Arc<dyn Trigger> {
        use std::sync::Arc;
        match self {
            AnyTrigger::Cron(t) => Arc::new(*t),
            AnyTrigger::Interval(t) => Arc::new(t),
            AnyTrigger::Date(t) => Arc::new(t),
            AnyTrigger::CalendarInterval(t) => Arc::new(t),
            AnyTrigger::And(t) => Arc::new(t),
            AnyTrigger::Or(t) => Arc::new(t),
            AnyTrigger::Excluding(t) => Arc::new(*t),
        }
    }
}

/// Decodes a trigger's persisted form (`Trigger::to_state`) back into a shared trigger;
/// what job stores use to read jobs.
///
/// # Errors
/// A value that is not a valid persisted trigger.
pub fn decode_trigger(
    state: &serde_json::Value,
) -> Result<std::sync::Arc<dyn Trigger>, TriggerError> {
    use std::sync::Arc;
    // Straight to the kind the tag names: the tagged enum first copies every field into
    // a buffer of its own, a tenth of `aps jobs list`'s time on 10,000 cron jobs. No
    // kind denies unknown fields, so `type` is ignored as the enum ignores it. On an
    // error the enum's own path runs, for its message.
    fn shared<T: Trigger + 'static>(t: T) -> Arc<dyn Trigger> {
        Arc::new(t)
    }
    let direct = match state.get("type").and_then(serde_json::Value::as_str) {
        Some("cron") => CronTrigger::deserialize(state).map(shared).ok(),
        Some("interval") => IntervalTrigger::deserialize(state).map(shared).ok(),
        Some("date") => DateTrigger::deserialize(state).map(shared).ok(),
        Some("calendarinterval") => CalendarIntervalTrigger::deserialize(state).map(shared).ok(),
        _ => None,
    };
    if let Some(trigger) = direct {
        return Ok(trigger);
    }
    AnyTrigger::deserialize(state)
        .map(AnyTrigger::into_shared)
        .map_err(|e| TriggerError::invalid_field("trigger", state.to_string(), e.to_string()))
}

/// [`decode_trigger`] from the persisted form's JSON text, without building its JSON
/// value first where the kind is one of the single kinds (what a job store reading a
/// state with [`StateCodec::decode_lazy_trigger`] has).
///
/// [`StateCodec::decode_lazy_trigger`]: apscheduler_core::codec::StateCodec::decode_lazy_trigger
///
/// # Errors
/// Text that is not a valid persisted trigger; the error is [`decode_trigger`]'s.
pub fn decode_trigger_text(text: &str) -> Result<std::sync::Arc<dyn Trigger>, TriggerError> {
    use std::sync::Arc;
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type")]
        kind: Option<&'a str>,
    }
    fn shared<T: Trigger + 'static>(t: T) -> Arc<dyn Trigger> {
        Arc::new(t)
    }
    let kind = serde_json::from_str::<Kind<'_>>(text)
        .ok()
        .and_then(|k| k.kind);
    let direct = match kind {
        Some("cron") => serde_json::from_str::<CronTrigger>(text).map(shared).ok(),
        Some("interval") => serde_json::from_str::<IntervalTrigger>(text)
            .map(shared)
            .ok(),
        Some("date") => serde_json::from_str::<DateTrigger>(text).map(shared).ok(),
        Some("calendarinterval") => serde_json::from_str::<CalendarIntervalTrigger>(text)
            .map(shared)
            .ok(),
        _ => None,
    };
    if let Some(trigger) = direct {
        return Ok(trigger);
    }
    // Any other kind, and every error, as the JSON value reads.
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| TriggerError::invalid_field("trigger", text, e.to_string()))?;
    decode_trigger(&value)
}

impl fmt::Display for AnyTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_trigger(), f)
    }
}

macro_rules! into_any {
    ($($ty:ident => $variant:ident),*) => {
        $(impl From<$ty> for AnyTrigger {
            fn from(t: $ty) -> Self {
                AnyTrigger::$variant(t)
            }
        })*
    };
}

impl From<CronTrigger> for AnyTrigger {
    fn from(t: CronTrigger) -> Self {
        AnyTrigger::Cron(Box::new(t))
    }
}

impl From<ExcludingTrigger> for AnyTrigger {
    fn from(t: ExcludingTrigger) -> Self {
        AnyTrigger::Excluding(Box::new(t))
    }
}

into_any!(
    IntervalTrigger => Interval,
    DateTrigger => Date,
    CalendarIntervalTrigger => CalendarInterval,
    AndTrigger => And,
    OrTrigger => Or
);
