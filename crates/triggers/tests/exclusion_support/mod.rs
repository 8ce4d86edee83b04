//! Shared helpers of the exclusion-calendar tests.
#![allow(dead_code)] // each test file uses its own part

use apscheduler_core::Trigger;
use apscheduler_triggers::{ExclusionCalendar, NamedCalendar};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;

pub(crate) fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

/// An RFC 3339 instant, put in `zone`.
pub(crate) fn at(zone: Tz, rfc3339: &str) -> DateTime<Tz> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&zone)
}

pub(crate) fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub(crate) fn rfc(t: Option<DateTime<Tz>>) -> String {
    t.map_or("none".into(), |t| t.to_rfc3339())
}

pub(crate) fn named(name: &str, calendar: ExclusionCalendar) -> NamedCalendar {
    NamedCalendar::new(name, calendar)
}

/// The first `n` fire times of `trigger` from `now`, each asked with the previous one
/// (as the scheduler asks), with the calendar that excludes each, if any.
pub(crate) fn sequence(trigger: &dyn Trigger, now: &DateTime<Tz>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev: Option<DateTime<Tz>> = None;
    for _ in 0..n {
        let asked_at = prev.unwrap_or(*now);
        let Some(next) = trigger.next_fire_time(prev.as_ref(), &asked_at) else {
            break;
        };
        let time = next.format("%m-%d %H:%M").to_string();
        out.push(match trigger.excluded_by(&next) {
            Some(name) => format!("{time} excluded by {name}"),
            None => time,
        });
        prev = Some(next);
    }
    out
}

/// Holidays: Feb 29 every (leap) year from 2024; a winter break 2026-12-23 to 2027-01-01
/// (folded summary, an alarm inside).
pub(crate) const HOLIDAYS_ICS: &str = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//apscheduler-rs tests//EN\r
BEGIN:VEVENT\r
UID:leap@example.com\r
DTSTAMP:20240101T000000Z\r
DTSTART;VALUE=DATE:20240229\r
DTEND;VALUE=DATE:20240301\r
RRULE:FREQ=YEARLY\r
SUMMARY:Leap day\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:break@example.com\r
DTSTART;VALUE=DATE:20261223\r
DTEND;VALUE=DATE:20270102\r
SUMMARY:Winter break, a long\r
  summary folded onto a second line\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER:-PT15M\r
END:VALARM\r
END:VEVENT\r
END:VCALENDAR\r
";
