//! The compiled form of one or more cron triggers and the wall-clock search.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Weekday};

use super::dst::Dst;
use super::expr::{DayExpr, Range, MAX_YEAR};

/// Day-level rule of one cron trigger: which days of a month it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayRule {
    pub(crate) days: Vec<DayExpr>,
    /// Accepted weekdays, bit 0 = Monday.
    pub(crate) weekdays: u8,
    /// Day expressions of the day-of-week side (crontab `5L`, `1#2`).
    pub(crate) weekday_days: Vec<DayExpr>,
    /// Accepted ISO weeks (bits 1..=53), `None` = every week.
    pub(crate) weeks: Option<u64>,
    /// Crontab rule: a day matching either day of month or day of week fires.
    pub(crate) either: bool,
}

const ALL_WEEKDAYS: u8 = 0x7f;

impl DayRule {
    /// Bits 1..=31 of the days of `year-month` (which has `last_day` days) this rule accepts.
    fn mask(&self, year: i32, month: u32, last_day: u32, first_weekday: u32) -> u64 {
        let month_days: u64 = ((1u64 << (last_day + 1)) - 1) & !1;
        let dom = self
            .days
            .iter()
            .fold(0u64, |m, e| m | day_expr_mask(e, last_day, first_weekday))
            & month_days;
        let dow = self
            .weekday_days
            .iter()
            .fold(weekday_mask(self.weekdays, first_weekday), |m, e| {
                m | day_expr_mask(e, last_day, first_weekday)
            })
            & month_days;
        let mut mask = if self.either { dom | dow } else { dom & dow };
        if let Some(weeks) = self.weeks {
            mask &= week_mask(weeks, year, month, last_day);
        }
        mask
    }
}

fn day_expr_mask(e: &DayExpr, last_day: u32, first_weekday: u32) -> u64 {
    match *e {
        DayExpr::Range(r) => {
            let r = Range {
                last: r.last.min(last_day),
                ..r
            };
            if r.first > r.last {
                0
            } else {
                r.mask()
            }
        }
        DayExpr::Nth { n, weekday } => {
            let first = 1 + (weekday + 7 - first_weekday) % 7;
            let day = first + (n - 1) * 7;
            if day <= last_day {
                1 << day
            } else {
                0
            }
        }
        DayExpr::LastWeekday(weekday) => {
            let first = 1 + (weekday + 7 - first_weekday) % 7;
            let day = first + (last_day - first) / 7 * 7;
            1 << day
        }
        DayExpr::LastDay => 1 << last_day,
        DayExpr::LastDayMinus(n) => {
            if n < last_day {
                1 << (last_day - n)
            } else {
                0
            }
        }
        DayExpr::NearestBusinessDay(day) => {
            if day > last_day {
                // Like a plain `31`: a month without the day has no such weekday.
                0
            } else {
                1 << nearest_business_day(day, last_day, first_weekday)
            }
        }
        DayExpr::LastBusinessDay => 1 << nearest_business_day(last_day, last_day, first_weekday),
    }
}

/// Quartz's `W`: the day itself on Monday to Friday; a Saturday moves to the Friday
/// before (or the Monday after, when it is the 1st); a Sunday to the Monday after (or the
/// Friday before, when it is the last day): never into another month.
fn nearest_business_day(day: u32, last_day: u32, first_weekday: u32) -> u32 {
    match (first_weekday + day - 1) % 7 {
        5 if day == 1 => 3,
        5 => day - 1,
        6 if day == last_day => day - 2,
        6 => day + 1,
        _ => day,
    }
}

fn weekday_mask(weekdays: u8, first_weekday: u32) -> u64 {
    if weekdays == ALL_WEEKDAYS {
        return !0;
    }
    let mut mask = 0u64;
    for wd in 0..7u32 {
        if weekdays & (1 << wd) != 0 {
            let mut day = 1 + (wd + 7 - first_weekday) % 7;
            while day <= 31 {
                mask |= 1 << day;
                day += 7;
            }
        }
    }
    mask
}

fn week_mask(weeks: u64, year: i32, month: u32, last_day: u32) -> u64 {
    let mut mask = 0u64;
    for day in 1..=last_day {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
            if weeks & (1 << date.iso_week().week()) != 0 {
                mask |= 1 << day;
            }
        }
    }
    mask
}

/// The smallest set bit of `mask` at position `>= from`.
#[inline]
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let m = mask & (!0u64 << from);
    (m != 0).then(|| m.trailing_zeros())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Matches wall-clock times against the fields of one cron trigger, or the
/// intersection of several (an AND of crons is one matcher with every mask combined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    /// Each inner list is one trigger's year field; a year must match all of them.
    pub(crate) years: Vec<Vec<Range>>,
    pub(crate) months: u64,
    pub(crate) day_rules: Vec<DayRule>,
    pub(crate) hours: u64,
    pub(crate) minutes: u64,
    pub(crate) seconds: u64,
    /// Hour field is `*` or `*/n` in every combined trigger: fall-back overlaps fire twice.
    pub(crate) hour_wildcard: bool,
    /// The DST policy the fire times follow.
    pub(crate) dst: Dst,
    /// cronie's "wildcard job": the minute or the hour field starts with `*`.
    pub(crate) cron_wild: bool,
}

impl Matcher {
    /// Intersection of two matchers.
    pub(crate) fn and(&self, other: &Matcher) -> Matcher {
        let mut years = self.years.clone();
        years.extend(other.years.iter().cloned());
        let mut day_rules = self.day_rules.clone();
        day_rules.extend(other.day_rules.iter().cloned());
        Matcher {
            years,
            months: self.months & other.months,
            day_rules,
            hours: self.hours & other.hours,
            minutes: self.minutes & other.minutes,
            seconds: self.seconds & other.seconds,
            hour_wildcard: self.hour_wildcard && other.hour_wildcard,
            dst: self.dst,
            cron_wild: self.cron_wild && other.cron_wild,
        }
    }

    fn next_year(&self, mut year: u32) -> Option<u32> {
        // Raise the candidate until every year field accepts it.
        loop {
            let mut stable = true;
            for set in &self.years {
                let next = set.iter().filter_map(|r| r.next_at_or_after(year)).min()?;
                if next != year {
                    year = next;
                    stable = false;
                }
            }
            if stable {
                return Some(year);
            }
        }
    }

    fn day_mask(&self, year: i32, month: u32) -> u64 {
        let last_day = days_in_month(year, month);
        let first_weekday = match NaiveDate::from_ymd_opt(year, month, 1) {
            Some(d) => d.weekday().num_days_from_monday(),
            None => return 0,
        };
        let full: u64 = ((1u64 << (last_day + 1)) - 1) & !1;
        self.day_rules.iter().fold(full, |m, rule| {
            m & rule.mask(year, month, last_day, first_weekday)
        })
    }

    /// The first wall-clock time `>= from` (whole seconds) matching every field, or
    /// `None` when there is none up to year 9999.
    pub(crate) fn next_naive(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        if from.year() < 0 {
            return self.next_naive(NaiveDate::from_ymd_opt(0, 1, 1)?.and_hms_opt(0, 0, 0)?);
        }
        let mut year = from.year() as u32;
        let (mut month, mut day) = (from.month(), from.day());
        let (mut hour, mut minute, mut second) = (from.hour(), from.minute(), from.second());
        let mut cached: Option<(u32, u32, u64)> = None;
        loop {
            if year > MAX_YEAR {
                return None;
            }
            let next_year = self.next_year(year)?;
            if next_year != year {
                year = next_year;
                (month, day, hour, minute, second) = (1, 1, 0, 0, 0);
            }
            let Some(next_month) = next_bit(self.months, month).filter(|m| *m <= 12) else {
                year += 1;
                (month, day, hour, minute, second) = (1, 1, 0, 0, 0);
                continue;
            };
            if next_month != month {
                month = next_month;
                (day, hour, minute, second) = (1, 0, 0, 0);
            }
            let days = match cached {
                Some((y, m, mask)) if y == year && m == month => mask,
                _ => {
                    let mask = self.day_mask(year as i32, month);
                    cached = Some((year, month, mask));
                    mask
                }
            };
            let Some(next_day) = next_bit(days, day) else {
                month += 1;
                (day, hour, minute, second) = (1, 0, 0, 0);
                if month > 12 {
                    year += 1;
                    month = 1;
                }
                continue;
            };
            if next_day != day {
                day = next_day;
                (hour, minute, second) = (0, 0, 0);
            }
            let Some(next_hour) = next_bit(self.hours, hour).filter(|h| *h < 24) else {
                day += 1;
                (hour, minute, second) = (0, 0, 0);
                continue;
            };
            if next_hour != hour {
                hour = next_hour;
                (minute, second) = (0, 0);
            }
            let Some(next_minute) = next_bit(self.minutes, minute).filter(|m| *m < 60) else {
                hour += 1;
                (minute, second) = (0, 0);
                continue;
            };
            if next_minute != minute {
                minute = next_minute;
                second = 0;
            }
            let Some(next_second) = next_bit(self.seconds, second).filter(|s| *s < 60) else {
                minute += 1;
                second = 0;
                continue;
            };
            return NaiveDate::from_ymd_opt(year as i32, month, day)?.and_hms_opt(
                hour,
                minute,
                next_second,
            );
        }
    }
}

/// `Weekday` of a date, Monday = 0 (kept for symmetry with the field numbering).
#[allow(dead_code)]
pub(crate) fn weekday_index(w: Weekday) -> u32 {
    w.num_days_from_monday()
}

/// One second.
pub(crate) const SECOND: Duration = Duration::seconds(1);
