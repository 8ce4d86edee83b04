//! Crontab extensions beyond cron's own language, as Quartz, croner and cron-parser read
//! them: `L`, `L-n`, `LW` and `nW` in the day of month; `nL` and `n#k` in the day of week.
//!
//! Each maps onto a day expression of the trigger: `L` is `last`, `5L` is `last fri`,
//! `1#2` is `2nd mon` (crontab numbering: 0 and 7 = Sunday).

use apscheduler_core::TriggerError;

use super::expr::{err, parse_uint, parse_value, DayExpr};

/// The largest `n` of `L-n`: the 1st of a 31-day month.
const MAX_LAST_OFFSET: u32 = 30;

/// Reads `piece` (lowercased; `original` as written, for messages) if it is an extension
/// form, pushing its day expression and returning its normalized text; `None` when it is
/// not one (the caller reads it as plain cron).
///
/// # Errors
/// An extension form that is malformed, out of range or in the wrong field.
pub(crate) fn parse_piece(
    field: &str,
    piece: &str,
    original: &str,
    days: &mut Vec<DayExpr>,
) -> Result<Option<String>, TriggerError> {
    match field {
        "day" => day_of_month(piece, original, days),
        "day_of_week" => day_of_week(piece, original, days),
        _ => Ok(None),
    }
}

fn day_of_month(
    piece: &str,
    original: &str,
    days: &mut Vec<DayExpr>,
) -> Result<Option<String>, TriggerError> {
    const FIELD: &str = "day";
    if piece.contains('#') {
        return Err(err(
            FIELD,
            original,
            "'#' (the n-th weekday, such as 1#2 = the second Monday) belongs in the \
             day-of-week field",
        ));
    }
    if piece == "l" {
        days.push(DayExpr::LastDay);
        return Ok(Some("L".into()));
    }
    if piece == "lw" {
        days.push(DayExpr::LastBusinessDay);
        return Ok(Some("LW".into()));
    }
    if let Some(offset) = piece.strip_prefix("l-") {
        let n = parse_uint(offset).ok_or_else(|| {
            err(
                FIELD,
                original,
                "expected L-n with n a number of days (L-3 = three days before the last day)",
            )
        })?;
        if n > MAX_LAST_OFFSET {
            return Err(err(
                FIELD,
                original,
                format!("the offset ({n}) is higher than the maximum ({MAX_LAST_OFFSET}): L-n counts back from the last day of the month"),
            ));
        }
        days.push(DayExpr::LastDayMinus(n));
        return Ok(Some(format!("L-{n}")));
    }
    if piece.starts_with('l') && !piece.starts_with("last") {
        return Err(err(
            FIELD,
            original,
            "expected L (the last day), L-n (n days before it, n from 0 to 30) or LW (the \
             last weekday)",
        ));
    }
    if let Some(day) = piece.strip_suffix('w') {
        let n = parse_uint(day).ok_or_else(|| {
            err(
                FIELD,
                original,
                "expected nW with n a day of the month (15W = the weekday nearest the 15th)",
            )
        })?;
        if !(1..=31).contains(&n) {
            return Err(err(
                FIELD,
                original,
                format!("the day ({n}) is outside 1-31"),
            ));
        }
        days.push(DayExpr::NearestBusinessDay(n));
        return Ok(Some(format!("{n}W")));
    }
    if piece.len() > 1
        && piece.ends_with('l')
        && piece.bytes().next().is_some_and(|b| b.is_ascii_digit())
    {
        return Err(err(
            FIELD,
            original,
            "nL (the last given weekday, such as 5L = the last Friday) belongs in the \
             day-of-week field",
        ));
    }
    Ok(None)
}

fn day_of_week(
    piece: &str,
    original: &str,
    days: &mut Vec<DayExpr>,
) -> Result<Option<String>, TriggerError> {
    const FIELD: &str = "day_of_week";
    if let Some((weekday, nth)) = piece.split_once('#') {
        let wd = weekday_value(weekday, original)?;
        let n = parse_uint(nth).ok_or_else(|| {
            err(
                FIELD,
                original,
                "expected d#n with n from 1 to 5 (1#2 = the second Monday)",
            )
        })?;
        if !(1..=5).contains(&n) {
            return Err(err(
                FIELD,
                original,
                format!(
                    "the occurrence ({n}) is outside 1-5: a month has at most five of each weekday"
                ),
            ));
        }
        days.push(DayExpr::Nth {
            n,
            weekday: monday_first(wd),
        });
        return Ok(Some(format!("{weekday}#{n}")));
    }
    if piece == "l" || piece == "lw" || piece.starts_with("l-") {
        return Err(err(
            FIELD,
            original,
            "L alone (the last day of the month) belongs in the day-of-month field; \
             in the day of week write nL (5L = the last Friday)",
        ));
    }
    if piece.ends_with('w') && piece.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return Err(err(
            FIELD,
            original,
            "nW (the weekday nearest a day) belongs in the day-of-month field",
        ));
    }
    if let Some(weekday) = piece.strip_suffix('l') {
        // A name ending in `l` is not a weekday name; `5l` and `fril` are the forms.
        if weekday.is_empty() || weekday.contains(['-', '/', '*']) {
            return Ok(None);
        }
        let wd = weekday_value(weekday, original)?;
        days.push(DayExpr::LastWeekday(monday_first(wd)));
        return Ok(Some(format!("{weekday}L")));
    }
    Ok(None)
}

/// A crontab weekday (0-7 or a name; 0 and 7 = Sunday).
fn weekday_value(text: &str, original: &str) -> Result<u32, TriggerError> {
    let wd = parse_value("day_of_week", original, text, true, false)?;
    if wd > 7 {
        return Err(err(
            "day_of_week",
            original,
            format!("the weekday ({wd}) is outside 0-7 (0 and 7 = Sunday)"),
        ));
    }
    Ok(wd)
}

/// Crontab numbering (0 and 7 = Sunday) to the trigger's (0 = Monday).
fn monday_first(cron_weekday: u32) -> u32 {
    (cron_weekday + 6) % 7
}
