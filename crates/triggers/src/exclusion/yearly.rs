//! Yearly recurrence rules of ICS events (`RRULE:FREQ=YEARLY;...`).

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// Occurrences of a yearly rule are not followed past this year.
const LAST_YEAR: i32 = 9_999;

/// `FREQ=YEARLY`: every `interval` years, on the start's month and day or, with
/// `BYMONTH=m;BYDAY=nWD`, on the n-th weekday of a month. An occurrence whose day does
/// not exist that year (Feb 29, a fifth Monday) is skipped and not counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct YearlyRule {
    /// Years between occurrences (at least 1).
    pub(crate) interval: u32,
    /// The last day an occurrence may start on (`UNTIL`, and the last of `COUNT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) until: Option<NaiveDate>,
    /// `BYMONTH=m;BYDAY=nWD` (Thanksgiving: the 4th Thursday of November).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nth_weekday: Option<NthWeekday>,
}

/// The `n`-th `weekday` of `month` (from the end when `n` is negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NthWeekday {
    pub(crate) month: u32,
    pub(crate) n: i8,
    pub(crate) weekday: Weekday,
}

impl NthWeekday {
    /// The day in year `y`, if that month has such a weekday.
    fn in_year(self, y: i32) -> Option<NaiveDate> {
        if self.n > 0 {
            return NaiveDate::from_weekday_of_month_opt(
                y,
                self.month,
                self.weekday,
                u8::try_from(self.n).ok()?,
            );
        }
        let next_month = if self.month == 12 {
            NaiveDate::from_ymd_opt(y.checked_add(1)?, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(y, self.month + 1, 1)?
        };
        let last = next_month.pred_opt()?;
        let back =
            (last.weekday().num_days_from_monday() + 7 - self.weekday.num_days_from_monday()) % 7;
        let weeks = i64::from(self.n.unsigned_abs()) - 1;
        let d = last - Duration::days(i64::from(back) + 7 * weeks);
        (d.month() == self.month).then_some(d)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=12).contains(&self.month) || self.n == 0 || !(-5..=5).contains(&self.n) {
            return Err(format!(
                "a yearly weekday rule needs a month 1 to 12 and a position -5 to 5 other than 0 (got month {}, position {})",
                self.month, self.n
            ));
        }
        Ok(())
    }
}

impl YearlyRule {
    /// Checks a stored rule (as read back from a job store).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.interval == 0 {
            return Err("a yearly interval must be at least 1".into());
        }
        self.nth_weekday.as_ref().map_or(Ok(()), NthWeekday::check)
    }

    /// The day the rule gives in year `y` for an event starting on `start`, before
    /// `until` and exclusions: `None` in a year it skips or in which the day does not
    /// exist.
    pub(crate) fn day_in(&self, start: NaiveDate, y: i32) -> Option<NaiveDate> {
        let since = y.checked_sub(start.year())?;
        if since < 0 || since % i32::try_from(self.interval).ok()? != 0 {
            return None;
        }
        let d = match self.nth_weekday {
            None => NaiveDate::from_ymd_opt(y, start.month(), start.day())?,
            Some(nth) => nth.in_year(y)?,
        };
        (d >= start).then_some(d)
    }

    /// Reads the value of an `RRULE` for an event starting on `start`.
    pub(crate) fn parse(value: &str, start: NaiveDate) -> Result<YearlyRule, String> {
        let mut freq = None;
        let mut interval = 1u32;
        let mut count: Option<u32> = None;
        let mut until: Option<NaiveDate> = None;
        let (mut by_month, mut by_month_day, mut by_day) = (None, None, None);
        for part in value.split(';').filter(|s| !s.is_empty()) {
            let (key, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not NAME=VALUE"))?;
            let number = |what: &str| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("{what}={v}: expected a whole number of at least 1"))
            };
            match key.to_ascii_uppercase().as_str() {
                "FREQ" => freq = Some(v.to_ascii_uppercase()),
                "INTERVAL" => interval = number("INTERVAL")?,
                "COUNT" => count = Some(number("COUNT")?),
                // A date, or a date-time whose day is what matters for all-day events.
                "UNTIL" => {
                    until = Some(
                        super::ics::read_date(v.get(..8).unwrap_or(v))
                            .ok_or_else(|| format!("UNTIL={v}: expected YYYYMMDD"))?,
                    );
                }
                "BYMONTH" => by_month = Some(number("BYMONTH")?),
                "BYMONTHDAY" => by_month_day = Some(number("BYMONTHDAY")?),
                "BYDAY" => by_day = Some(read_nth_weekday(v)?),
                "WKST" => {}
                other => {
                    return Err(format!(
                        "{other}={v} is not supported (supported: FREQ=YEARLY with INTERVAL, COUNT, UNTIL, BYMONTH with BYMONTHDAY or one BYDAY such as 4TH or -1MO)"
                    ))
                }
            }
        }
        match freq.as_deref() {
            Some("YEARLY") => {}
            Some(other) => return Err(format!("FREQ={other} is not supported (only FREQ=YEARLY)")),
            None => return Err("RRULE without FREQ".into()),
        }
        if count.is_some() && until.is_some() {
            return Err("COUNT and UNTIL together (RFC 5545 allows one of them)".into());
        }
        let nth_weekday = match (by_day, by_month, by_month_day) {
            (Some(_), _, Some(_)) => {
                return Err("BYDAY with BYMONTHDAY is not supported".into());
            }
            (Some(_), None, _) => {
                return Err("BYDAY needs BYMONTH (the month of the n-th weekday)".into());
            }
            (Some((n, weekday)), Some(month), None) => {
                let nth = NthWeekday { month, n, weekday };
                nth.check()?;
                // RFC 5545 leaves a start that is not an occurrence undefined.
                if nth.in_year(start.year()) != Some(start) {
                    return Err(format!(
                        "DTSTART {start} is not an occurrence of the rule (the {n}. {weekday} of month {month})"
                    ));
                }
                Some(nth)
            }
            (None, month, day) => {
                if month.is_some_and(|m| m != start.month())
                    || day.is_some_and(|d| d != start.day())
                {
                    return Err(format!(
                        "BYMONTH/BYMONTHDAY must name DTSTART's own month and day ({start})"
                    ));
                }
                None
            }
        };
        let mut rule = YearlyRule {
            interval,
            until,
            nth_weekday,
        };
        if let Some(count) = count {
            rule.until = Some(rule.nth_occurrence(start, count));
        }
        Ok(rule)
    }

    /// The start of the `count`-th occurrence (counting only years in which the day
    /// exists), or the last day of year 9999 when the rule runs past it.
    fn nth_occurrence(&self, start: NaiveDate, count: u32) -> NaiveDate {
        let step = i32::try_from(self.interval).unwrap_or(i32::MAX);
        let (mut found, mut y) = (0u32, start.year());
        while y <= LAST_YEAR {
            if let Some(d) = self.day_in(start, y) {
                found += 1;
                if found == count {
                    return d;
                }
            }
            y = match y.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
        NaiveDate::from_ymd_opt(LAST_YEAR, 12, 31).unwrap_or(start)
    }
}

/// One `BYDAY` value with a position: `4TH`, `+1MO`, `-1SU`.
fn read_nth_weekday(value: &str) -> Result<(i8, Weekday), String> {
    let bad = || {
        format!(
            "BYDAY={value}: expected one weekday with its position in the month, such as 4TH or -1MO"
        )
    };
    if value.len() < 3 || value.contains(',') {
        return Err(bad());
    }
    let (position, day) = value.split_at(value.len() - 2);
    let weekday = match day.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return Err(bad()),
    };
    let n: i8 = position
        .strip_prefix('+')
        .unwrap_or(position)
        .parse()
        .map_err(|_| bad())?;
    Ok((n, weekday))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn nth_weekdays_from_either_end() {
        let thanksgiving = NthWeekday {
            month: 11,
            n: 4,
            weekday: Weekday::Thu,
        };
        assert_eq!(thanksgiving.in_year(2026), Some(day(2026, 11, 26)));
        assert_eq!(thanksgiving.in_year(2027), Some(day(2027, 11, 25)));
        let memorial = NthWeekday {
            month: 5,
            n: -1,
            weekday: Weekday::Mon,
        };
        assert_eq!(memorial.in_year(2026), Some(day(2026, 5, 25)));
        let last_sunday_of_december = NthWeekday {
            month: 12,
            n: -1,
            weekday: Weekday::Sun,
        };
        assert_eq!(
            last_sunday_of_december.in_year(2026),
            Some(day(2026, 12, 27))
        );
        // February 2026 has four Mondays.
        let fifth = NthWeekday {
            month: 2,
            n: 5,
            weekday: Weekday::Mon,
        };
        assert_eq!(fifth.in_year(2026), None);
        let fifth_from_end = NthWeekday { n: -5, ..fifth };
        assert_eq!(fifth_from_end.in_year(2026), None);
    }

    #[test]
    fn parse_refuses_what_it_cannot_honour() {
        let start = day(2026, 11, 26);
        for (rule, needle) in [
            ("FREQ=YEARLY;BYMONTH=11;BYDAY=TH", "BYDAY=TH"),
            ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH,3TH", "BYDAY=4TH,3TH"),
            ("FREQ=YEARLY;BYDAY=4TH", "needs BYMONTH"),
            ("FREQ=YEARLY;BYMONTH=11;BYDAY=3TH", "not an occurrence"),
            ("FREQ=YEARLY;BYMONTH=12", "own month and day"),
            ("FREQ=YEARLY;BYWEEKNO=3", "BYWEEKNO=3 is not supported"),
            ("FREQ=WEEKLY", "FREQ=WEEKLY"),
            ("FREQ=YEARLY;COUNT=0", "COUNT=0"),
            ("FREQ=YEARLY;COUNT=2;UNTIL=20300101", "COUNT and UNTIL"),
            ("COUNT=2", "without FREQ"),
        ] {
            let err = YearlyRule::parse(rule, start).unwrap_err();
            assert!(err.contains(needle), "{rule}: {err}");
        }
        let ok = YearlyRule::parse("FREQ=YEARLY;BYMONTH=11;BYDAY=+4TH;COUNT=3", start).unwrap();
        assert_eq!(ok.until, Some(day(2028, 11, 23)));
    }
}
