//! Time helpers: timezone lookup, local-time resolution under the DST policy,
//! date parsing and RFC 3339 output.
//!
//! # DST policy
//! A wall-clock time that does not exist (clocks jump forward) denotes the instant it
//! would have had with the offset in force before the jump: 02:30 on the New York
//! spring-forward day is 07:30 UTC, shown as 03:30 EDT. A wall-clock time that occurs
//! twice (clocks fall back) resolves to its first occurrence unless the caller asks
//! for both.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

use crate::TriggerError;

/// How a wall-clock time maps onto instants in a timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalInstant {
    /// The local time exists once.
    Single(DateTime<Tz>),
    /// The local time occurs twice (fall-back overlap): earlier, then later.
    Ambiguous(DateTime<Tz>, DateTime<Tz>),
    /// The local time falls in a gap (spring-forward); the instant it denotes with
    /// the offset in force before the jump.
    Gap(DateTime<Tz>),
}

impl LocalInstant {
    /// The instant chosen by the default policy: the only one, the earlier one, or the
    /// gap's pre-jump reading.
    pub fn earliest(self) -> DateTime<Tz> {
        match self {
            LocalInstant::Single(t) | LocalInstant::Ambiguous(t, _) | LocalInstant::Gap(t) => t,
        }
    }
}

/// Looks up an IANA timezone name. `field` names the option it came from.
pub fn parse_timezone(field: &str, name: &str) -> Result<Tz, TriggerError> {
    name.parse::<Tz>()
        .map_err(|_| TriggerError::UnknownTimezone {
            field: field.to_owned(),
            value: name.to_owned(),
        })
}

/// Resolves a wall-clock time in `tz` to its instant(s).
pub fn resolve_local(tz: Tz, naive: NaiveDateTime) -> LocalInstant {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => LocalInstant::Single(t),
        LocalResult::Ambiguous(a, b) => {
            if a <= b {
                LocalInstant::Ambiguous(a, b)
            } else {
                LocalInstant::Ambiguous(b, a)
            }
        }
        LocalResult::None => LocalInstant::Gap(gap_instant(tz, naive)),
    }
}

/// The instant a non-existent local time denotes with the offset in force before the gap.
fn gap_instant(tz: Tz, naive: NaiveDateTime) -> DateTime<Tz> {
    // Walk back until a local time exists: its offset is the one before the jump.
    // Gaps are at most a day long (Samoa, 2011), so this ends within 97 steps.
    let mut probe = naive;
    for _ in 0..200 {
        probe -= Duration::minutes(15);
        let offset_secs = match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => chrono::Offset::fix(t.offset()).local_minus_utc(),
            LocalResult::Ambiguous(_, b) => chrono::Offset::fix(b.offset()).local_minus_utc(),
            LocalResult::None => continue,
        };
        let utc = naive - Duration::seconds(i64::from(offset_secs));
        return tz.from_utc_datetime(&utc);
    }
    // Unreachable with real tz data; fall back to reading the time as UTC.
    tz.from_utc_datetime(&naive)
}

/// The default-policy instant of a wall-clock time (see the module docs).
pub fn localize(tz: Tz, naive: NaiveDateTime) -> DateTime<Tz> {
    resolve_local(tz, naive).earliest()
}

/// Reads a date or datetime given as text, as APScheduler does.
///
/// Accepted: `2009-11-06`, `2009-11-06 16:30:05`, `2009-11-06T16:30:05`, with optional
/// fractional seconds (`.25` = 250 ms) and an optional `Z` or `±HH:MM` offset (RFC 3339).
/// A value without an offset is read as wall-clock time in `tz` under the DST policy.
pub fn parse_datetime(field: &str, value: &str, tz: Tz) -> Result<DateTime<Tz>, TriggerError> {
    let err = |reason: &str| TriggerError::InvalidDate {
        field: field.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let text = value.trim();
    let bytes = text.as_bytes();
    let (date_part, rest) = match bytes
        .iter()
        .position(|&b| b == b' ' || b == b'T' || b == b't')
    {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let date = parse_date_part(date_part).map_err(&err)?;
    let Some(rest) = rest else {
        return Ok(localize(tz, date.and_time(NaiveTime::MIN)));
    };
    // Split an offset suffix off the time.
    let (time_part, offset) = if let Some(stripped) = rest.strip_suffix(['Z', 'z']) {
        (stripped, Some(0i32))
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let off = parse_offset(&rest[i..]).ok_or_else(|| err("invalid UTC offset"))?;
        (&rest[..i], Some(off))
    } else {
        (rest, None)
    };
    let time = parse_time_part(time_part).map_err(&err)?;
    let naive = date.and_time(time);
    match offset {
        None => Ok(localize(tz, naive)),
        Some(secs) => {
            let utc = naive - Duration::seconds(i64::from(secs));
            Ok(tz.from_utc_datetime(&utc))
        }
    }
}

/// Reads a date-only value (`YYYY-MM-DD`), as calendar interval start and end dates are.
pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, TriggerError> {
    parse_date_part(value.trim()).map_err(|reason| TriggerError::InvalidDate {
        field: field.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    })
}

fn parse_number(text: &str, min_digits: usize, max_digits: usize) -> Option<u32> {
    if text.len() < min_digits
        || text.len() > max_digits
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

fn parse_date_part(text: &str) -> Result<NaiveDate, &'static str> {
    let mut parts = text.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected YYYY-MM-DD[ HH:MM:SS[.ffffff][±HH:MM]]");
    };
    let year = parse_number(y, 4, 4).ok_or("expected a four-digit year")?;
    let month = parse_number(m, 1, 2).ok_or("expected a numeric month")?;
    let day = parse_number(d, 1, 2).ok_or("expected a numeric day")?;
    if !(1..=12).contains(&month) {
        return Err("month must be in 1..12");
    }
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or("day is out of range for month")
}

fn parse_time_part(text: &str) -> Result<NaiveTime, &'static str> {
    let (hms, frac) = match text.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (text, None),
    };
    let mut parts = hms.split(':');
    let (Some(h), Some(m)) = (parts.next(), parts.next()) else {
        return Err("expected HH:MM[:SS]");
    };
    let s = parts.next();
    if parts.next().is_some() {
        return Err("expected HH:MM[:SS]");
    }
    let hour = parse_number(h, 1, 2).ok_or("expected a numeric hour")?;
    let minute = parse_number(m, 1, 2).ok_or("expected a numeric minute")?;
    let second = match s {
        Some(s) => parse_number(s, 1, 2).ok_or("expected numeric seconds")?,
        None => 0,
    };
    if hour > 23 {
        return Err("hour must be in 0..23");
    }
    if minute > 59 {
        return Err("minute must be in 0..59");
    }
    if second > 59 {
        return Err("second must be in 0..59");
    }
    let nanos = match frac {
        None => 0,
        Some(f) => {
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err("expected up to nine digits of fractional seconds");
            }
            let digits: u32 = f.parse().map_err(|_| "invalid fractional seconds")?;
            digits * 10u32.pow(9 - f.len() as u32)
        }
    };
    NaiveTime::from_hms_nano_opt(hour, minute, second, nanos).ok_or("invalid time of day")
}

fn parse_offset(text: &str) -> Option<i32> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &text[1..];
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None if body.len() == 4 => body.split_at(2),
        None if body.len() == 2 => (body, "00"),
        None => return None,
    };
    let h = parse_number(h, 2, 2)?;
    let m = parse_number(m, 2, 2)?;
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h as i32 * 3600 + m as i32 * 60))
}

/// A duration as Python prints a `timedelta` (`0:00:05`, `1:00:00.000178`,
/// `2 days, 3:04:05`): APScheduler's `str(trigger)` shows an interval so
/// (`interval[0:00:10]`). Messages for people use [`human_duration`] instead.
///
/// ```
/// use apscheduler_core::time::timedelta;
/// use chrono::Duration;
///
/// assert_eq!(timedelta(Duration::seconds(5)), "0:00:05");
/// assert_eq!(timedelta(Duration::microseconds(3_600_000_178)), "1:00:00.000178");
/// assert_eq!(timedelta(Duration::hours(51) + Duration::seconds(65)), "2 days, 3:01:05");
/// assert_eq!(timedelta(Duration::seconds(-1)), "-1 day, 23:59:59");
/// ```
pub fn timedelta(d: chrono::Duration) -> String {
    // Python normalises to days (possibly negative) plus a non-negative remainder.
    let micros = d.num_microseconds().unwrap_or(i64::MAX);
    const DAY: i64 = 86_400_000_000;
    let (days, rest) = (micros.div_euclid(DAY), micros.rem_euclid(DAY));
    let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
    let clock = format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let clock = if frac == 0 {
        clock
    } else {
        format!("{clock}.{frac:06}")
    };
    match days {
        0 => clock,
        1 | -1 => format!("{days} day, {clock}"),
        _ => format!("{days} days, {clock}"),
    }
}

/// A duration for log and history messages, as `humantime` writes it, rounded so that
/// it reads at a glance: to the second from one second up (`5s`, `1h 30m`,
/// `25years 10months 2days 3h`), to the millisecond below (`250ms`), and a shorter
/// duration exactly (`17us`). A negative duration reads as its length with a minus
/// sign (`-5s`).
///
/// ```
/// use apscheduler_core::time::human_duration;
/// use chrono::Duration;
///
/// assert_eq!(human_duration(Duration::seconds(5)), "5s");
/// assert_eq!(human_duration(Duration::microseconds(3_600_000_178)), "1h");
/// assert_eq!(human_duration(Duration::hours(51) + Duration::seconds(65)), "2days 3h 1m 5s");
/// assert_eq!(human_duration(Duration::milliseconds(10_161)), "10s");
/// assert_eq!(human_duration(Duration::microseconds(250_400)), "250ms");
/// assert_eq!(human_duration(Duration::seconds(-5)), "-5s");
/// assert_eq!(human_duration(Duration::zero()), "0s");
/// ```
pub fn human_duration(d: chrono::Duration) -> String {
    let sign = if d < chrono::Duration::zero() {
        "-"
    } else {
        ""
    };
    let length = d.abs();
    let rounded = match length.num_microseconds() {
        Some(us) if us >= 1_000_000 => {
            std::time::Duration::from_secs(((us + 500_000) / 1_000_000).unsigned_abs())
        }
        Some(us) if us >= 1_000 => {
            std::time::Duration::from_millis(((us + 500) / 1_000).unsigned_abs())
        }
        Some(us) => std::time::Duration::from_micros(us.unsigned_abs()),
        // Beyond ±292,000 years in microseconds: whole seconds are plenty.
        None => std::time::Duration::from_secs(length.num_seconds().unsigned_abs()),
    };
    format!("{sign}{}", humantime::format_duration(rounded))
}

/// Formats an instant as RFC 3339 with the offset in force in its zone
/// (`2024-06-21T00:00:00-04:00`; fractional seconds only when present).
pub fn to_rfc3339(t: &DateTime<Tz>) -> String {
    t.fixed_offset()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// Reads an RFC 3339 instant and shows it in `tz`.
pub fn parse_rfc3339(field: &str, value: &str, tz: Tz) -> Result<DateTime<Tz>, TriggerError> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&tz))
        .map_err(|e| TriggerError::InvalidDate {
            field: field.to_owned(),
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_durations_are_rounded_and_signed() {
        use chrono::Duration;
        // Years and months as humantime counts them (365.25 and 30.44 days).
        let long = Duration::days(9459) + Duration::hours(3);
        assert_eq!(human_duration(long), "25years 10months 23days 11h 24m");
        assert_eq!(human_duration(-long), "-25years 10months 23days 11h 24m");
        assert_eq!(human_duration(Duration::milliseconds(1_499)), "1s");
        assert_eq!(human_duration(Duration::milliseconds(1_500)), "2s");
        assert_eq!(human_duration(Duration::microseconds(999_600)), "1s");
        assert_eq!(human_duration(Duration::microseconds(17)), "17us");
        assert_eq!(human_duration(Duration::microseconds(-1_500)), "-2ms");
        // Too long for microseconds: whole seconds.
        assert!(human_duration(Duration::MAX).ends_with('s'));
        assert!(human_duration(Duration::MIN).starts_with('-'));
    }

    use super::*;
    use chrono_tz::America::New_York;

    #[test]
    fn gap_uses_offset_before_jump() {
        let naive = NaiveDate::from_ymd_opt(2024, 3, 10)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        let t = localize(New_York, naive);
        assert_eq!(to_rfc3339(&t), "2024-03-10T03:30:00-04:00");
    }

    #[test]
    fn overlap_takes_first_occurrence() {
        let naive = NaiveDate::from_ymd_opt(2024, 11, 3)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(
            to_rfc3339(&localize(New_York, naive)),
            "2024-11-03T01:30:00-04:00"
        );
    }

    #[test]
    fn parses_all_accepted_forms() {
        let tz = chrono_tz::UTC;
        for (input, expected) in [
            ("2009-11-06", "2009-11-06T00:00:00+00:00"),
            ("2009-11-06 16:30:05", "2009-11-06T16:30:05+00:00"),
            ("2009-11-06T16:30:05Z", "2009-11-06T16:30:05+00:00"),
            ("2009-11-06 16:30:05.25", "2009-11-06T16:30:05.250+00:00"),
            ("2009-11-06T16:30:05+02:00", "2009-11-06T14:30:05+00:00"),
        ] {
            let t = parse_datetime("run_date", input, tz).unwrap();
            assert_eq!(to_rfc3339(&t), expected, "{input}");
        }
    }

    #[test]
    fn refuses_bad_dates_naming_field_and_value() {
        for input in [
            "2024-02-30",
            "2024-13-01",
            "tomorrow",
            "2024/01/01",
            "2024-01-01 25:00:00",
        ] {
            let err = parse_datetime("start_date", input, chrono_tz::UTC).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("start_date") && msg.contains(input), "{msg}");
        }
    }
}

/// How persistent stores turn instants into the integer microseconds they index and
/// compare, in one place so that every store rounds alike: a run time rounds **up** and
/// "now" rounds **down**, so a job is never due before its exact run time, and a job
/// written by one store and read by another keeps its run time to the microsecond.
pub mod micros {
    use chrono::{DateTime, TimeZone, Utc};

    /// A run time as microseconds since the epoch, rounded up.
    ///
    /// ```
    /// use apscheduler_core::time::micros;
    /// let t = chrono::DateTime::from_timestamp(10, 1).unwrap(); // 1 ns past 10 s
    /// assert_eq!(micros::run_time(&t), 10_000_001);
    /// assert_eq!(micros::now(&t), 10_000_000);
    /// ```
    pub fn run_time<T: TimeZone>(t: &DateTime<T>) -> i64 {
        let us = t.timestamp_micros();
        if t.timestamp_subsec_nanos().is_multiple_of(1000) {
            us
        } else {
            us.saturating_add(1)
        }
    }

    /// "Now" as microseconds since the epoch, rounded down.
    pub fn now(t: &DateTime<Utc>) -> i64 {
        t.timestamp_micros()
    }

    /// A lease's length in microseconds, at most a century: for stores that add it to
    /// their own clock's time (in SQL, or in Lua numbers, exact below 2^53), which
    /// must not overflow.
    pub fn lease_length(lease: std::time::Duration) -> i64 {
        const CENTURY: i64 = 100 * 366 * 86_400 * 1_000_000;
        i64::try_from(lease.as_micros()).map_or(CENTURY, |us| us.min(CENTURY))
    }

    /// `now + lease` in microseconds, saturating.
    pub fn expiry(now: &DateTime<Utc>, lease: std::time::Duration) -> i64 {
        let lease = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        self::now(now).saturating_add(lease)
    }

    /// Microseconds since the epoch as an instant (saturating at chrono's range).
    pub fn to_instant(us: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(us).unwrap_or(if us < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }
}
