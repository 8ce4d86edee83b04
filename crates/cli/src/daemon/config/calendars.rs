//! `[calendars.NAME]` tables: exclusion calendars that jobs name with `calendar =
//! "NAME"`. Each is built whole when the config loads (an ICS file is read and parsed
//! then, its days stored), so a job's stored trigger carries its calendar and every
//! daemon sharing the store applies the same one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use apscheduler_triggers::{ExclusionCalendar, NamedCalendar};
use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

/// One `[calendars.NAME]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCalendar {
    /// Excluded days: `"2026-12-24"`.
    pub(super) dates: Option<Vec<Spanned<String>>>,
    /// An iCalendar file of all-day events (relative to the config's folder).
    pub(super) ics: Option<Spanned<String>>,
    /// Excluded weekdays: `"sat"`, `"sunday"`.
    pub(super) weekdays: Option<Vec<Spanned<String>>>,
    /// Excluded times of day: `"22:00-06:00"`.
    pub(super) windows: Option<Vec<Spanned<String>>>,
    /// The zone its days and windows are in (default: the scheduler's).
    pub(super) timezone: Option<Spanned<String>>,
    /// Calendars whose exclusions this one adds.
    pub(super) union: Option<Vec<Spanned<String>>>,
    /// Calendars whose exclusions this one allows again.
    pub(super) except: Option<Vec<Spanned<String>>>,
}

/// The config's calendars by name.
pub(crate) type Calendars = BTreeMap<String, NamedCalendar>;

/// Builds every `[calendars.NAME]` table. `at` turns a byte span into
/// `file:line:column`; `dir` is the config's folder, which relative `ics` paths are
/// read from; `tz` is the scheduler's timezone.
pub(super) fn build(
    raw: &BTreeMap<String, Spanned<RawCalendar>>,
    dir: &Path,
    tz: Tz,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Calendars, String> {
    let mut built = Calendars::new();
    for name in raw.keys() {
        let mut path = Vec::new();
        build_one(name, raw, dir, tz, at, &mut built, &mut path)?;
    }
    Ok(built)
}

/// Builds `name` (and first the calendars it names), erring on a cycle through
/// `path`, the calendars being built.
fn build_one(
    name: &str,
    raw: &BTreeMap<String, Spanned<RawCalendar>>,
    dir: &Path,
    tz: Tz,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
    built: &mut Calendars,
    path: &mut Vec<String>,
) -> Result<(), String> {
    if built.contains_key(name) {
        return Ok(());
    }
    let table = &raw[name];
    let def = table.get_ref();
    let field = |f: &str| format!("calendars.{name}.{f}");
    path.push(name.to_owned());
    let zone = match &def.timezone {
        Some(z) => apscheduler_core::time::parse_timezone("timezone", z.get_ref())
            .map_err(|e| format!("{}: {}: {e}", at(z.span()), field("timezone")))?,
        None => tz,
    };
    let mut cal = ExclusionCalendar::new(zone);
    let mut dates = Vec::new();
    for d in def.dates.iter().flatten() {
        let day = NaiveDate::parse_from_str(d.get_ref().trim(), "%Y-%m-%d").map_err(|e| {
            format!(
                "{}: {}: invalid date '{}' ({e}; expected YYYY-MM-DD)",
                at(d.span()),
                field("dates"),
                d.get_ref()
            )
        })?;
        dates.push(day);
    }
    if !dates.is_empty() {
        cal = cal.dates(dates);
    }
    let mut weekdays = Vec::new();
    for w in def.weekdays.iter().flatten() {
        let day = w.get_ref().trim().parse::<Weekday>().map_err(|_| {
            format!(
                "{}: {}: unknown weekday '{}' (expected mon, tue, wed, thu, fri, sat or sun)",
                at(w.span()),
                field("weekdays"),
                w.get_ref()
            )
        })?;
        weekdays.push(day);
    }
    if !weekdays.is_empty() {
        cal = cal.weekdays(weekdays);
    }
    for w in def.windows.iter().flatten() {
        cal = cal.window(w.get_ref()).map_err(|e| {
            format!(
                "{}: {}: invalid window '{}': {e}",
                at(w.span()),
                field("windows"),
                w.get_ref()
            )
        })?;
    }
    if let Some(ics) = &def.ics {
        let file = dir.join(ics.get_ref());
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "{}: {}: cannot read '{}': {e}",
                at(ics.span()),
                field("ics"),
                file.display()
            )
        })?;
        cal = cal.ics(&text).map_err(|e| {
            format!(
                "{}: {}: {}: {e}",
                at(ics.span()),
                field("ics"),
                file.display()
            )
        })?;
    }
    for (list, key) in [(&def.union, "union"), (&def.except, "except")] {
        for member in list.iter().flatten() {
            let other = member.get_ref();
            if !raw.contains_key(other.as_str()) {
                return Err(format!(
                    "{}: {}: unknown calendar '{other}' (defined: {})",
                    at(member.span()),
                    field(key),
                    known(raw)
                ));
            }
            if let Some(i) = path.iter().position(|p| p == other) {
                let mut cycle: Vec<&str> = path[i..].iter().map(String::as_str).collect();
                cycle.push(other);
                return Err(format!(
                    "{}: {}: '{other}' makes a cycle ({})",
                    at(member.span()),
                    field(key),
                    cycle.join(" -> ")
                ));
            }
            build_one(other, raw, dir, tz, at, built, path)?;
            let named = built[other.as_str()].clone();
            cal = if key == "union" {
                cal.union(named)
            } else {
                cal.except(named)
            };
        }
    }
    path.pop();
    built.insert(
        name.to_owned(),
        NamedCalendar {
            name: name.to_owned(),
            calendar: cal,
        },
    );
    Ok(())
}

/// The defined names, for an error about an unknown one.
pub(crate) fn known<V>(calendars: &BTreeMap<String, V>) -> String {
    let names: BTreeSet<&str> = calendars.keys().map(String::as_str).collect();
    if names.is_empty() {
        "none; define one in a [calendars.NAME] table".to_owned()
    } else {
        names.into_iter().collect::<Vec<_>>().join(", ")
    }
}
