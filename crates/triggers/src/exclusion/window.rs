//! Daily time windows (`"22:00-06:00"`) of an exclusion calendar.

use std::fmt;

use apscheduler_core::TriggerError;
use chrono::{NaiveTime, Timelike};

/// A daily span of wall-clock time: `start` inclusive, `end` exclusive. A window whose
/// end is before its start crosses midnight (`22:00-06:00` is 22:00 to 24:00 and 00:00
/// to 06:00 of every day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    start: NaiveTime,
    end: NaiveTime,
}

impl TimeWindow {
    /// Reads `HH:MM-HH:MM` (or with seconds, `HH:MM:SS`).
    pub(crate) fn parse(text: &str) -> Result<Self, TriggerError> {
        let bad = |reason: &str| TriggerError::invalid_field("window", text, reason);
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| bad("expected START-END, such as 22:00-06:00"))?;
        let start = parse_time(start.trim()).ok_or_else(|| {
            bad("the start is not a time of day (HH:MM or HH:MM:SS, 00:00 to 23:59:59)")
        })?;
        let end = parse_time(end.trim()).ok_or_else(|| {
            bad("the end is not a time of day (HH:MM or HH:MM:SS, 00:00 to 23:59:59)")
        })?;
        if start == end {
            return Err(bad(
                "start and end are equal: the window would be empty (exclude whole days with weekdays or dates instead)",
            ));
        }
        Ok(TimeWindow { start, end })
    }

    /// Whether the wall-clock time `t` lies inside the window.
    pub(crate) fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// The two wall-clock times at which the window's state changes.
    pub(crate) fn edges(&self) -> [NaiveTime; 2] {
        [self.start, self.end]
    }
}

/// `HH:MM` or `HH:MM:SS`, two digits each.
fn parse_time(text: &str) -> Option<NaiveTime> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let num = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u32>().ok());
    NaiveTime::from_hms_opt(num(0)?, num(1)?, num(2)?)
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let write = |f: &mut fmt::Formatter<'_>, t: NaiveTime| {
            if t.second() == 0 {
                write!(f, "{:02}:{:02}", t.hour(), t.minute())
            } else {
                write!(f, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
            }
        };
        write(f, self.start)?;
        f.write_str("-")?;
        write(f, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_both_forms() {
        assert_eq!(
            TimeWindow::parse("22:00-06:00").unwrap().to_string(),
            "22:00-06:00"
        );
        assert_eq!(
            TimeWindow::parse("08:30:15 - 09:00").unwrap().to_string(),
            "08:30:15-09:00"
        );
    }

    #[test]
    fn refuses_bad_text_naming_it() {
        for bad in [
            "22:00",
            "24:00-01:00",
            "7:00-8:00",
            "10:00-10:00",
            "aa:bb-cc:dd",
            "",
        ] {
            let err = TimeWindow::parse(bad).unwrap_err();
            assert_eq!(err.field(), "window", "{bad}");
            assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn crossing_midnight_covers_both_ends() {
        let w = TimeWindow::parse("22:00-06:00").unwrap();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(w.contains(t(22, 0)));
        assert!(w.contains(t(23, 59)));
        assert!(w.contains(t(0, 0)));
        assert!(w.contains(t(5, 59)));
        assert!(!w.contains(t(6, 0)));
        assert!(!w.contains(t(21, 59)));
        let day = TimeWindow::parse("09:00-17:00").unwrap();
        assert!(day.contains(t(9, 0)) && !day.contains(t(17, 0)) && !day.contains(t(8, 59)));
    }
}
