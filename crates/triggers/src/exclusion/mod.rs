//! Exclusion calendars: days and times at which a job must not run (holidays,
//! weekends, a nightly maintenance window), and [`ExcludingTrigger`], which applies one
//! to any trigger.
//!
//! A calendar is self-contained: an ICS file is read when the calendar is built and its
//! days are stored, so a calendar persisted with a job means the same on every node.

mod ics;
mod trigger;
mod window;
mod yearly;

use std::collections::BTreeSet;
use std::fmt;

use apscheduler_core::time::parse_timezone;
use apscheduler_core::TriggerError;
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use ics::CalendarError;
pub use trigger::{CalendarAction, ExcludingTrigger};

use ics::IcsEvent;
use window::TimeWindow;

/// How far [`ExclusionCalendar::next_allowed`] looks before giving up.
pub(crate) const SEARCH_DAYS: i64 = 3_653;
/// Bound on the steps of one search, so no calendar can make it loop for long (a
/// step is a day boundary, a window edge or a DST change: a few per day).
const MAX_STEPS: usize = 200_000;

/// Days and times at which a job must not run.
///
/// An instant is excluded when the calendar's own rules (dates, days of ICS events,
/// weekdays, daily windows — all read in the calendar's timezone) or any
/// [`union`](Self::union) member exclude it, and no [`except`](Self::except) member
/// excludes it.
///
/// ```
/// use apscheduler_triggers::ExclusionCalendar;
/// use chrono::{NaiveDate, TimeZone, Weekday};
///
/// let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
/// let calendar = ExclusionCalendar::new(tz)
///     .weekdays([Weekday::Sat, Weekday::Sun])
///     .dates([NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()])
///     .window("22:00-06:00")
///     .unwrap();
/// // Friday 2026-12-25 (a holiday) at noon is excluded; Monday the 28th at noon is not.
/// assert!(calendar.excludes(&tz.with_ymd_and_hms(2026, 12, 25, 12, 0, 0).unwrap()));
/// let next = calendar.next_allowed(&tz.with_ymd_and_hms(2026, 12, 25, 12, 0, 0).unwrap());
/// assert_eq!(next.unwrap().to_rfc3339(), "2026-12-28T06:00:00+01:00");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CalendarSpec", into = "CalendarSpec")]
pub struct ExclusionCalendar {
    timezone: Tz,
    dates: BTreeSet<NaiveDate>,
    /// Bit `n` set: weekday `n` (Monday = 0) is excluded.
    weekdays: u8,
    windows: Vec<TimeWindow>,
    events: Vec<IcsEvent>,
    union: Vec<NamedCalendar>,
    except: Vec<NamedCalendar>,
}

/// A calendar with the name jobs and messages refer to it by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedCalendar {
    /// The calendar's name (`"holidays"`).
    pub name: String,
    /// The calendar.
    pub calendar: ExclusionCalendar,
}

impl NamedCalendar {
    /// Names `calendar`.
    pub fn new(name: impl Into<String>, calendar: ExclusionCalendar) -> Self {
        NamedCalendar {
            name: name.into(),
            calendar,
        }
    }
}

impl ExclusionCalendar {
    /// An empty calendar (excluding nothing) whose dates and times are read in `tz`.
    pub fn new(tz: Tz) -> Self {
        ExclusionCalendar {
            timezone: tz,
            dates: BTreeSet::new(),
            weekdays: 0,
            windows: Vec::new(),
            events: Vec::new(),
            union: Vec::new(),
            except: Vec::new(),
        }
    }

    /// Excludes these whole days (midnight to midnight in the calendar's zone).
    #[must_use]
    pub fn dates(mut self, dates: impl IntoIterator<Item = NaiveDate>) -> Self {
        self.dates.extend(dates);
        self
    }

    /// Excludes these days of every week.
    #[must_use]
    pub fn weekdays(mut self, days: impl IntoIterator<Item = Weekday>) -> Self {
        for d in days {
            self.weekdays |= 1 << d.num_days_from_monday();
        }
        self
    }

    /// Excludes a daily span of wall-clock time, `"22:00-06:00"` (`HH:MM` or
    /// `HH:MM:SS`; start inclusive, end exclusive; an end before the start crosses
    /// midnight). Across a DST change the window is wall-clock time: a night window
    /// is an hour shorter or longer in real time, and a window inside the skipped hour
    /// of spring excludes nothing that night.
    ///
    /// # Errors
    /// A [`TriggerError`] on field `window` naming the text.
    pub fn window(mut self, text: &str) -> Result<Self, TriggerError> {
        self.windows.push(TimeWindow::parse(text)?);
        Ok(self)
    }

    /// Excludes the days of the all-day events of an iCalendar (`.ics`) text, such as a
    /// public-holiday calendar. The events are read now and stored, not the text.
    ///
    /// Supported: `VEVENT`s with `DTSTART;VALUE=DATE`, an optional `DTEND` (exclusive)
    /// or `DURATION` in days or weeks, an optional yearly `RRULE` (`INTERVAL`, `COUNT`,
    /// `UNTIL`, `BYMONTH` with `BYMONTHDAY` or one positioned `BYDAY` such as `4TH`; an
    /// event on February 29 recurs in leap years only, as RFC 5545 says)
    /// and `EXDATE`. Anything else that would change an event's days (a timed event,
    /// another frequency, `RDATE`) is refused.
    ///
    /// # Errors
    /// A [`CalendarError`] naming the line and the reason.
    pub fn ics(mut self, text: &str) -> Result<Self, CalendarError> {
        self.events.extend(ics::parse(text)?);
        Ok(self)
    }

    /// Also excludes whatever `other` excludes.
    #[must_use]
    pub fn union(mut self, other: NamedCalendar) -> Self {
        self.union.push(other);
        self
    }

    /// Allows whatever `other` excludes, even when this calendar's rules exclude it
    /// ("holidays except company days").
    #[must_use]
    pub fn except(mut self, other: NamedCalendar) -> Self {
        self.except.push(other);
        self
    }

    /// The zone dates, weekdays and windows are read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The whole days given with [`dates`](Self::dates), in order.
    pub fn excluded_dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.dates.iter().copied()
    }

    /// The days of the week given with [`weekdays`](Self::weekdays), Monday first.
    pub fn excluded_weekdays(&self) -> Vec<Weekday> {
        (0..7u8)
            .filter(|i| self.weekdays & (1 << i) != 0)
            .filter_map(|i| Weekday::try_from(i).ok())
            .collect()
    }

    /// The daily windows, as text (`22:00-06:00`).
    pub fn window_texts(&self) -> Vec<String> {
        self.windows.iter().map(ToString::to_string).collect()
    }

    /// How many all-day events were read from ICS text.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The calendars given with [`union`](Self::union).
    pub fn union_members(&self) -> &[NamedCalendar] {
        &self.union
    }

    /// The calendars given with [`except`](Self::except).
    pub fn except_members(&self) -> &[NamedCalendar] {
        &self.except
    }

    /// Whether `t` (in any zone) is excluded.
    pub fn excludes(&self, t: &DateTime<Tz>) -> bool {
        let own = {
            let local = if t.timezone() == self.timezone {
                t.naive_local()
            } else {
                t.with_timezone(&self.timezone).naive_local()
            };
            self.own_excludes(local)
        };
        (own || self.union.iter().any(|m| m.calendar.excludes(t)))
            && !self.except.iter().any(|m| m.calendar.excludes(t))
    }

    fn has_day_rules(&self) -> bool {
        !self.dates.is_empty() || self.weekdays != 0 || !self.events.is_empty()
    }

    fn own_excludes(&self, local: NaiveDateTime) -> bool {
        let day = local.date();
        self.weekdays & (1 << day.weekday().num_days_from_monday()) != 0
            || self.dates.contains(&day)
            || self.windows.iter().any(|w| w.contains(local.time()))
            || self.events.iter().any(|e| e.covers(day))
    }

    /// The first instant at or after `t` that is not excluded, in `t`'s zone; `None`
    /// when everything is excluded for ten years from `t`.
    ///
    /// Fast: it jumps from one day boundary, window edge or DST change to the next.
    pub fn next_allowed(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let limit = t.to_utc().checked_add_signed(Duration::days(SEARCH_DAYS))?;
        let mut c = *t;
        for _ in 0..MAX_STEPS {
            if !self.excludes(&c) {
                return Some(c);
            }
            let next = self.next_change(c.to_utc())?;
            if next > limit {
                return None;
            }
            c = next.with_timezone(&t.timezone());
        }
        None
    }

    /// An instant after `t` no later than the first one at which the excluded state
    /// of this calendar (or a member's) may change; `None` when it never changes.
    fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let own = self.own_next_change(t);
        self.union
            .iter()
            .chain(&self.except)
            .filter_map(|m| m.calendar.next_change(t))
            .chain(own)
            .min()
    }

    fn own_next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let days = self.has_day_rules();
        if !days && self.windows.is_empty() {
            return None;
        }
        let local = t.with_timezone(&self.timezone);
        let offset = local.offset().fix();
        let naive = local.naive_local();
        let mut best: Option<NaiveDateTime> = None;
        let mut consider = |n: NaiveDateTime| {
            if best.is_none_or(|b| n < b) {
                best = Some(n);
            }
        };
        if days {
            consider(naive.date().succ_opt()?.and_time(chrono::NaiveTime::MIN));
        }
        for w in &self.windows {
            for edge in w.edges() {
                let today = naive.date().and_time(edge);
                consider(if today > naive {
                    today
                } else {
                    today + Duration::days(1)
                });
            }
        }
        // The boundary's instant while the offset stays the same; when the offset
        // changes before it, the change itself comes first (wall time jumps there).
        let guess = Utc.from_utc_datetime(&(best? - offset));
        let offset_at = |s: i64| {
            DateTime::from_timestamp(s, 0)
                .map(|u| self.timezone.offset_from_utc_datetime(&u.naive_utc()).fix())
        };
        if offset_at(guess.timestamp()) == Some(offset) {
            return Some(guess);
        }
        // Transitions fall on whole seconds: the first second with the new offset.
        let (mut lo, mut hi) = (t.timestamp(), guess.timestamp());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if offset_at(mid) == Some(offset) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // `hi` is past `t`: `lo` starts at `t`'s whole second and `hi` stays above it.
        DateTime::from_timestamp(hi, 0)
    }
}

impl fmt::Display for ExclusionCalendar {
    /// A one-line summary: `calendar[timezone='Europe/Berlin', weekdays='sat,sun',
    /// windows='22:00-06:00', dates=2, events=12, union='a', except='b']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "calendar[timezone='{}'", self.timezone.name())?;
        if self.weekdays != 0 {
            write!(f, ", weekdays='{}'", weekday_names(self.weekdays).join(","))?;
        }
        if !self.windows.is_empty() {
            let w: Vec<String> = self.windows.iter().map(ToString::to_string).collect();
            write!(f, ", windows='{}'", w.join(","))?;
        }
        if !self.dates.is_empty() {
            write!(f, ", dates={}", self.dates.len())?;
        }
        if !self.events.is_empty() {
            write!(f, ", events={}", self.events.len())?;
        }
        for (label, members) in [("union", &self.union), ("except", &self.except)] {
            if !members.is_empty() {
                let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                write!(f, ", {label}='{}'", names.join(","))?;
            }
        }
        f.write_str("]")
    }
}

const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn weekday_names(mask: u8) -> Vec<&'static str> {
    WEEKDAY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The stored form.
#[derive(Serialize, Deserialize)]
struct CalendarSpec {
    timezone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dates: Vec<NaiveDate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    weekdays: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    windows: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<IcsEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    union: Vec<NamedCalendar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    except: Vec<NamedCalendar>,
}

impl From<ExclusionCalendar> for CalendarSpec {
    fn from(c: ExclusionCalendar) -> Self {
        CalendarSpec {
            timezone: c.timezone.name().to_owned(),
            dates: c.dates.into_iter().collect(),
            weekdays: weekday_names(c.weekdays)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            windows: c.windows.iter().map(ToString::to_string).collect(),
            events: c.events,
            union: c.union,
            except: c.except,
        }
    }
}

impl TryFrom<CalendarSpec> for ExclusionCalendar {
    type Error = TriggerError;
    fn try_from(s: CalendarSpec) -> Result<Self, Self::Error> {
        let mut c = ExclusionCalendar::new(parse_timezone("timezone", &s.timezone)?).dates(s.dates);
        for day in &s.weekdays {
            let d: Weekday = day.parse().map_err(|_| {
                TriggerError::invalid_field(
                    "weekdays",
                    day,
                    "not a day of the week (mon, tue, wed, thu, fri, sat, sun)",
                )
            })?;
            c = c.weekdays([d]);
        }
        for w in &s.windows {
            c = c.window(w)?;
        }
        for e in &s.events {
            e.validate().map_err(|reason| {
                TriggerError::invalid_field("events", e.start.to_string(), reason)
            })?;
        }
        c.events = s.events;
        c.union = s.union;
        c.except = s.except;
        Ok(c)
    }
}
