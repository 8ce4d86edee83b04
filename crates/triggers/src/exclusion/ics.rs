//! Reading holiday files (iCalendar, RFC 5545) into the all-day events an exclusion
//! calendar stores.
//!
//! The supported subset: `VEVENT`s with an all-day `DTSTART` (`DTSTART;VALUE=DATE:20261225`,
//! or an eight-digit date without `VALUE`), an optional all-day `DTEND` (exclusive) or a
//! `DURATION` of whole days or weeks, an optional yearly `RRULE` (`FREQ=YEARLY` with
//! `INTERVAL`, `COUNT`, `UNTIL`, and `BYMONTH`/`BYMONTHDAY` naming the start's own month
//! and day or `BYMONTH` with one positioned `BYDAY`, such as `4TH`) and all-day `EXDATE`s. Everything else that would change which days
//! an event covers (a timed event, another frequency, `RDATE`, `RECURRENCE-ID`, ...) is
//! an error naming its line, never silently dropped. Properties that do not (`SUMMARY`,
//! `UID`, `TRANSP`, ...) and components other than `VEVENT` (`VTIMEZONE`, `VTODO`, ...)
//! are ignored; a `STATUS:CANCELLED` event excludes nothing.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use icalendar::parser::{read_calendar_simple, unfold, Component, Property};
use serde::{Deserialize, Serialize};

use super::yearly::YearlyRule;

/// A holiday file (iCalendar text) could not be read into an exclusion calendar.
///
/// Every variant names the line (1-based, in the text as given, before unfolding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// The text is not iCalendar (`BEGIN:`/`END:` blocks of `NAME:VALUE` lines).
    #[error("line {line}: {reason}")]
    Syntax {
        /// The line the parser stopped at.
        line: usize,
        /// Why it was refused.
        reason: String,
    },
    /// A property holds a value that cannot be read, or that this calendar does not
    /// support (a timed event, a monthly rule, ...).
    #[error("line {line}: {property} '{value}': {reason}")]
    Property {
        /// The property's line.
        line: usize,
        /// The property name, such as `DTSTART` or `RRULE`.
        property: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A `VEVENT` that is missing something it needs (its `DTSTART`).
    #[error("line {line}: {reason}")]
    Event {
        /// The line of the event's `BEGIN:VEVENT`.
        line: usize,
        /// Why it was refused.
        reason: String,
    },
}

impl CalendarError {
    /// The line (1-based) the error is about.
    pub fn line(&self) -> usize {
        match self {
            CalendarError::Syntax { line, .. }
            | CalendarError::Property { line, .. }
            | CalendarError::Event { line, .. } => *line,
        }
    }
}

impl From<CalendarError> for apscheduler_core::TriggerError {
    fn from(err: CalendarError) -> Self {
        apscheduler_core::TriggerError::invalid_field(
            "ics",
            format!("line {}", err.line()),
            err.to_string(),
        )
    }
}

/// An event longer than this is refused: no holiday lasts ten years, and it bounds the
/// work of checking a day against a yearly event.
const MAX_EVENT_DAYS: i64 = 3_660;

/// An all-day event, possibly recurring yearly: what a calendar stores of an ICS file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IcsEvent {
    /// The first day.
    pub(crate) start: NaiveDate,
    /// How many days each occurrence covers (at least 1).
    pub(crate) days: u32,
    /// The yearly recurrence, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) yearly: Option<YearlyRule>,
    /// Occurrence start days taken out of the recurrence (`EXDATE`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) exdates: BTreeSet<NaiveDate>,
}

impl IcsEvent {
    /// Checks a stored event (as read back from a job store).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.days == 0 || i64::from(self.days) > MAX_EVENT_DAYS {
            return Err(format!(
                "event on {} covers {} days (expected 1 to {MAX_EVENT_DAYS})",
                self.start, self.days
            ));
        }
        match &self.yearly {
            Some(rule) => rule
                .check()
                .map_err(|reason| format!("event on {}: {reason}", self.start)),
            None => Ok(()),
        }
    }

    /// Whether the event covers the day `d`.
    pub(crate) fn covers(&self, d: NaiveDate) -> bool {
        if d < self.start {
            return false;
        }
        let days = i64::from(self.days);
        let Some(rule) = &self.yearly else {
            return (d - self.start).num_days() < days;
        };
        // Occurrences that started up to `days` days before `d`.
        let back = i32::try_from(days / 365 + 1).unwrap_or(i32::MAX);
        (d.year().saturating_sub(back)..=d.year()).any(|y| {
            self.occurrence(rule, y)
                .is_some_and(|s| s <= d && (d - s).num_days() < days)
        })
    }

    /// The start of the occurrence in year `y`, if there is one.
    fn occurrence(&self, rule: &YearlyRule, y: i32) -> Option<NaiveDate> {
        let s = rule.day_in(self.start, y)?;
        if rule.until.is_some_and(|u| s > u) || self.exdates.contains(&s) {
            return None;
        }
        Some(s)
    }
}

/// Maps positions in the unfolded text back to line numbers of the text as given.
struct Lines<'a> {
    unfolded: &'a str,
    /// The original line number of each unfolded line.
    original: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &str, unfolded: &'a str) -> Self {
        // A line starting with a space or a tab continues the one before (RFC 5545
        // folding), which `unfold` joins to it.
        let original = text
            .split('\n')
            .enumerate()
            .filter(|(i, l)| *i == 0 || !(l.starts_with(' ') || l.starts_with('\t')))
            .map(|(i, _)| i + 1)
            .collect();
        Lines { unfolded, original }
    }

    /// The line of `part`, a slice of the unfolded text (1 when it is not one).
    fn line_of(&self, part: &str) -> usize {
        let base = self.unfolded.as_ptr() as usize;
        let at = (part.as_ptr() as usize).wrapping_sub(base);
        if at > self.unfolded.len() {
            return 1;
        }
        let index = self.unfolded.as_bytes()[..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.original
            .get(index)
            .copied()
            .unwrap_or_else(|| self.original.last().copied().unwrap_or(1))
    }

    /// The unfolded line containing `part`, for messages.
    fn text_at(&self, part: &str) -> String {
        let base = self.unfolded.as_ptr() as usize;
        let at = (part.as_ptr() as usize).wrapping_sub(base);
        if at > self.unfolded.len() {
            return String::new();
        }
        let start = self.unfolded[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = self.unfolded[at..]
            .find('\n')
            .map_or(self.unfolded.len(), |i| at + i);
        self.unfolded[start..end]
            .trim_end()
            .chars()
            .take(80)
            .collect()
    }
}

/// Reads the all-day events of an iCalendar text.
pub(crate) fn parse(text: &str) -> Result<Vec<IcsEvent>, CalendarError> {
    // Files saved by some editors start with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let unfolded = unfold(text);
    let lines = Lines::new(text, &unfolded);
    if unfolded.trim().is_empty() {
        return Err(CalendarError::Syntax {
            line: 1,
            reason: "the text is empty (expected BEGIN:VCALENDAR)".into(),
        });
    }
    let roots = read_calendar_simple(&unfolded).map_err(|e| {
        // The parser backtracks to the block a bad line is in; a line that cannot be a
        // content line at all is the better place to point at.
        match not_a_content_line(&unfolded) {
            Some(bad) => CalendarError::Syntax {
                line: lines.line_of(bad),
                reason: format!("not an iCalendar line (NAME:VALUE or NAME;PARAM=...:VALUE): '{}'", lines.text_at(bad)),
            },
            None => CalendarError::Syntax {
                line: lines.line_of(e.input),
                reason: format!(
                    "not iCalendar (expected BEGIN:/END: blocks of NAME:VALUE lines, each BEGIN closed by its END), at '{}'",
                    lines.text_at(e.input)
                ),
            },
        }
    })?;
    let mut events = Vec::new();
    for root in &roots {
        collect(root, &lines, &mut events)?;
    }
    Ok(events)
}

/// The first line that cannot be a content line: its name (up to `:` or `;`) is empty
/// or holds characters names cannot, or it has no `:` at all.
fn not_a_content_line(unfolded: &str) -> Option<&str> {
    unfolded.split('\n').find(|line| {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            return false;
        }
        let name_end = line.find([':', ';']).unwrap_or(line.len());
        let name = &line[..name_end];
        name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || !line.contains(':')
    })
}

fn collect(
    component: &Component<'_>,
    lines: &Lines<'_>,
    out: &mut Vec<IcsEvent>,
) -> Result<(), CalendarError> {
    if component.name.as_str().eq_ignore_ascii_case("VEVENT") {
        out.extend(event(component, lines)?);
        // Sub-components of an event (alarms) do not change its days.
        return Ok(());
    }
    for child in &component.components {
        collect(child, lines, out)?;
    }
    Ok(())
}

fn prop_error(lines: &Lines<'_>, p: &Property<'_>, reason: impl Into<String>) -> CalendarError {
    CalendarError::Property {
        line: lines.line_of(p.name.as_str()),
        property: p.name.as_str().to_ascii_uppercase(),
        value: p.val.as_str().to_owned(),
        reason: reason.into(),
    }
}

/// An all-day date property (`DTSTART`, `DTEND`, one `EXDATE` value).
fn date_value(
    lines: &Lines<'_>,
    p: &Property<'_>,
    value: &str,
) -> Result<NaiveDate, CalendarError> {
    let value_type = p
        .params
        .iter()
        .find(|param| param.key.as_str().eq_ignore_ascii_case("VALUE"))
        .and_then(|param| param.val.as_ref())
        .map(|v| v.as_str().to_ascii_uppercase());
    let timed = || {
        prop_error(
            lines,
            p,
            "timed events are not supported: exclusion calendars take all-day events (NAME;VALUE=DATE:YYYYMMDD)",
        )
    };
    match value_type.as_deref() {
        Some("DATE") => {}
        Some("DATE-TIME") => return Err(timed()),
        Some(other) => {
            return Err(prop_error(
                lines,
                p,
                format!("VALUE={other} is not a date (expected VALUE=DATE)"),
            ))
        }
        None if value.contains('T') => return Err(timed()),
        None => {}
    }
    read_date(value).ok_or_else(|| prop_error(lines, p, "not a date (expected YYYYMMDD)"))
}

pub(super) fn read_date(value: &str) -> Option<NaiveDate> {
    let v = value.trim();
    if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(v, "%Y%m%d").ok()
}

/// `DURATION` of whole days or weeks (`P1D`, `P2W`, `P1W2D`).
fn read_days(value: &str) -> Option<i64> {
    let rest = value.trim().strip_prefix('+').unwrap_or(value.trim());
    let rest = rest.strip_prefix('P')?;
    let (mut total, mut number) = (0i64, String::new());
    for c in rest.chars() {
        match c {
            '0'..='9' => number.push(c),
            'W' | 'D' if !number.is_empty() => {
                let n: i64 = number.parse().ok()?;
                total = total.checked_add(n.checked_mul(if c == 'W' { 7 } else { 1 })?)?;
                number.clear();
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(total)
}

/// The event's days; `None` for a cancelled event (`STATUS:CANCELLED`), which excludes
/// nothing.
fn event(component: &Component<'_>, lines: &Lines<'_>) -> Result<Option<IcsEvent>, CalendarError> {
    let mut start: Option<NaiveDate> = None;
    let mut end: Option<(NaiveDate, &Property<'_>)> = None;
    let mut duration: Option<(i64, &Property<'_>)> = None;
    let mut rrule: Option<&Property<'_>> = None;
    let mut exdates = BTreeSet::new();
    for p in &component.properties {
        match p.name.as_str().to_ascii_uppercase().as_str() {
            "DTSTART" => start = Some(date_value(lines, p, p.val.as_str())?),
            "DTEND" => end = Some((date_value(lines, p, p.val.as_str())?, p)),
            "DURATION" => {
                let days = read_days(p.val.as_str()).ok_or_else(|| {
                    prop_error(
                        lines,
                        p,
                        "only whole days or weeks are supported (such as P1D or P2W)",
                    )
                })?;
                duration = Some((days, p));
            }
            "RRULE" => rrule = Some(p),
            "EXDATE" => {
                for v in p.val.as_str().split(',') {
                    exdates.insert(date_value(lines, p, v)?);
                }
            }
            "STATUS" if p.val.as_str().trim().eq_ignore_ascii_case("CANCELLED") => {
                return Ok(None);
            }
            "RDATE" | "EXRULE" | "RECURRENCE-ID" => {
                return Err(prop_error(
                    lines,
                    p,
                    "not supported in exclusion calendars (supported: DTSTART, DTEND or DURATION, a yearly RRULE, EXDATE)",
                ))
            }
            _ => {}
        }
    }
    let Some(start) = start else {
        return Err(CalendarError::Event {
            line: lines.line_of(component.name.as_str()),
            reason: "VEVENT without DTSTART".into(),
        });
    };
    let days = match (end, duration) {
        (Some(_), Some((_, p))) => {
            return Err(prop_error(
                lines,
                p,
                "DTEND and DURATION together (RFC 5545 allows one of them)",
            ));
        }
        (Some((end, p)), None) => {
            let days = (end - start).num_days();
            if days < 1 {
                return Err(prop_error(
                    lines,
                    p,
                    format!("DTEND is not after DTSTART ({start})"),
                ));
            }
            (days, p)
        }
        (None, Some((days, p))) => {
            if days < 1 {
                return Err(prop_error(lines, p, "an event lasts at least one day"));
            }
            (days, p)
        }
        (None, None) => (1, &component.properties[0]),
    };
    if days.0 > MAX_EVENT_DAYS {
        return Err(prop_error(
            lines,
            days.1,
            format!("an event may last at most {MAX_EVENT_DAYS} days"),
        ));
    }
    let yearly = rrule
        .map(|p| {
            YearlyRule::parse(p.val.as_str(), start).map_err(|reason| prop_error(lines, p, reason))
        })
        .transpose()?;
    Ok(Some(IcsEvent {
        start,
        days: u32::try_from(days.0).unwrap_or(1),
        yearly,
        exdates,
    }))
}
