//! Parsing of cron field expressions into bit masks and day rules.

use std::borrow::Cow;

use apscheduler_core::TriggerError;

/// The cron fields, most significant first.
pub(crate) const FIELD_NAMES: [&str; 8] = [
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
];

pub(crate) const MIN_YEAR: u32 = 1970;
pub(crate) const MAX_YEAR: u32 = 9999;

/// Which language a field's text is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// APScheduler's keyword fields (`day_of_week` 0 = Monday, `xth y`, `last x`).
    Aps,
    /// Crontab text exactly as cronie reads it.
    Cronie,
    /// Crontab text with the extensions of [`super::extend`] and `H`.
    Extended,
}

impl Dialect {
    /// Crontab numbering and rules (0 and 7 = Sunday, wide steps accepted).
    pub(crate) fn vixie(self) -> bool {
        self != Dialect::Aps
    }
}

/// Value bounds per field, as in APScheduler.
pub(crate) fn bounds(field: &str, vixie: bool) -> (u32, u32) {
    match field {
        "year" => (MIN_YEAR, MAX_YEAR),
        "month" => (1, 12),
        "day" => (1, 31),
        "week" => (1, 53),
        "day_of_week" if vixie => (0, 7),
        "day_of_week" => (0, 6),
        "hour" => (0, 23),
        _ => (0, 59),
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// An inclusive arithmetic range `first..=last` by `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) step: u32,
}

impl Range {
    /// The smallest value of the range that is `>= v`.
    pub(crate) fn next_at_or_after(&self, v: u32) -> Option<u32> {
        if v <= self.first {
            return Some(self.first);
        }
        if v > self.last {
            return None;
        }
        let k = (v - self.first).div_ceil(self.step);
        let n = self.first + k * self.step;
        (n <= self.last).then_some(n)
    }

    pub(crate) fn mask(&self) -> u64 {
        let mut m = 0u64;
        let mut v = self.first;
        while v <= self.last && v < 64 {
            m |= 1 << v;
            v += self.step;
        }
        m
    }
}

/// One expression of the `day` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DayExpr {
    /// Plain days of month (clipped to the month's length).
    Range(Range),
    /// The n-th (1..=5) given weekday (0 = Monday) of the month.
    Nth { n: u32, weekday: u32 },
    /// The last given weekday of the month.
    LastWeekday(u32),
    /// The last day of the month.
    LastDay,
    /// `n` days before the last day of the month (crontab `L-n`).
    LastDayMinus(u32),
    /// The Monday-to-Friday day nearest to the given day, within its month (crontab `15W`).
    NearestBusinessDay(u32),
    /// The last Monday-to-Friday day of the month (crontab `LW`).
    LastBusinessDay,
}

/// A parsed field: its normalized text and expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// Normalized text (pieces trimmed and lowercased, joined by `,`).
    pub(crate) text: String,
    pub(crate) ranges: Vec<Range>,
    /// Day expressions: of the `day` field, or (crontab `5L`, `1#2`) of `day_of_week`.
    pub(crate) days: Vec<DayExpr>,
    /// Every piece is `*` or `*/n`.
    pub(crate) all_star: bool,
}

impl Field {
    pub(crate) fn mask(&self) -> u64 {
        self.ranges.iter().fold(0, |m, r| m | r.mask())
    }
}

pub(crate) fn err(field: &str, value: &str, reason: impl Into<String>) -> TriggerError {
    TriggerError::invalid_field(field, value, reason)
}

pub(crate) fn unrecognized(field: &str, value: &str) -> TriggerError {
    err(
        field,
        value,
        format!("unrecognized expression '{value}' for field '{field}'"),
    )
}

pub(crate) fn parse_uint(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn month_number(name: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

fn weekday_number(name: &str) -> Option<u32> {
    WEEKDAYS.iter().position(|m| *m == name).map(|i| i as u32)
}

/// Parses one field's text. The dialect selects crontab numbering for `day_of_week`
/// (0 and 7 = Sunday) and the crontab extensions; `hashed` holds the values of the
/// field's `H` pieces, in order (see [`super::hashed`]).
pub(crate) fn parse_field(
    field: &str,
    text: &str,
    dialect: Dialect,
    hashed: &[Range],
) -> Result<Field, TriggerError> {
    let vixie = dialect.vixie();
    let lowered = text.to_ascii_lowercase();
    // Borrowed unless an extension rewrites the piece: triggers are rebuilt on every load.
    let mut pieces: Vec<Cow<'_, str>> = Vec::new();
    let mut ranges = Vec::new();
    let mut days = Vec::new();
    let mut all_star = true;
    let mut hashed = hashed.iter();
    // Lowercasing keeps byte positions (ASCII only), so the raw pieces line up.
    for (raw, original) in lowered.split(',').zip(text.split(',')) {
        let mut piece = raw.trim();
        if piece.is_empty() {
            return Err(unrecognized(field, text.trim()));
        }
        if dialect == Dialect::Extended {
            // `?` (Quartz: "no specific value") is `*` in the day fields.
            if piece == "?" && matches!(field, "day" | "day_of_week") {
                piece = "*";
            } else if super::hashed::is_hash_piece(piece) {
                let range = hashed.next().copied().ok_or_else(|| {
                    err(field, original.trim(), "no value was computed for this `H`")
                })?;
                all_star = false;
                ranges_or_days(field, range, &mut ranges, &mut days);
                pieces.push(Cow::Owned(piece.replacen('h', "H", 1)));
                continue;
            } else if let Some(normalized) =
                super::extend::parse_piece(field, piece, original.trim(), &mut days)?
            {
                all_star = false;
                pieces.push(Cow::Owned(normalized));
                continue;
            }
        }
        if !piece.starts_with('*') {
            all_star = false;
        }
        parse_piece(field, piece, vixie, &mut ranges, &mut days)?;
        pieces.push(Cow::Borrowed(piece));
    }
    Ok(Field {
        text: pieces.join(","),
        ranges,
        days,
        all_star,
    })
}

fn parse_piece(
    field: &str,
    piece: &str,
    vixie: bool,
    ranges: &mut Vec<Range>,
    days: &mut Vec<DayExpr>,
) -> Result<(), TriggerError> {
    let (min, max) = bounds(field, vixie);

    // Day-only forms: `last`, `xth y`, `last y`.
    if field == "day" {
        if piece == "last" {
            days.push(DayExpr::LastDay);
            return Ok(());
        }
        let mut words = piece.split_whitespace();
        if let (Some(option), Some(weekday), None) = (words.next(), words.next(), words.next()) {
            let n = match option {
                "1st" => Some(1),
                "2nd" => Some(2),
                "3rd" => Some(3),
                "4th" => Some(4),
                "5th" => Some(5),
                "last" => None,
                _ => return Err(unrecognized(field, piece)),
            };
            let wd = weekday_number(weekday)
                .ok_or_else(|| err(field, piece, format!("invalid weekday name '{weekday}'")))?;
            days.push(match n {
                Some(n) => DayExpr::Nth { n, weekday: wd },
                None => DayExpr::LastWeekday(wd),
            });
            return Ok(());
        }
    }

    let (body, step) = match piece.split_once('/') {
        Some((body, step)) => {
            let step = parse_uint(step).ok_or_else(|| unrecognized(field, piece))?;
            if step == 0 {
                return Err(err(field, piece, "increment must be higher than 0"));
            }
            (body, Some(step))
        }
        None => (piece, None),
    };

    if vixie && body.contains('~') {
        // cronie draws a random value each time it loads the crontab: every reload (and
        // every node of a cluster) would run the job at another time.
        return Err(err(
            field,
            piece,
            "'~' (a random value cron draws each time it loads the crontab) is not supported: \
             write the value to use, or give the job a jitter",
        ));
    }

    let range = if body == "*" {
        let range = max - min;
        if let Some(step) = step {
            // Crontab text: a step wider than the range is accepted, as cron does, and
            // keeps the range's first value only.
            if step > range && !vixie {
                return Err(err(
                    field,
                    piece,
                    format!("the step value ({step}) is higher than the total range of the expression ({range})"),
                ));
            }
        }
        Range {
            first: min,
            last: max,
            step: step.unwrap_or(1),
        }
    } else {
        let (first_text, last_text) = match body.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (body, None),
        };
        let first = parse_value(field, piece, first_text, vixie, false)?;
        let mut last = match last_text {
            // `sun` closing a range is 7 (`mon-sun`), except after `sun` itself:
            // `sun-sun` is that one day, not 0-7, the whole week.
            Some(t) => Some(parse_value(field, piece, t, vixie, first != 0)?),
            None => None,
        };
        // `sun` reads as 0 in cron too (`mon-sun` is cron's `1-0`).
        let ends_on_zero =
            last_text.is_some_and(|t| t == "sun" || parse_uint(t) == Some(0)) && first > 0;
        if vixie && field == "day_of_week" && ends_on_zero {
            if step.is_some() {
                // cronie applies its `N-0` rule only without a step: it reads `5-0/2`
                // as an empty range, a line that never runs.
                return Err(err(
                    field,
                    piece,
                    format!(
                        "cron reads a weekday range ending in 0 followed by a step as empty \
                         (the job would never run): write '{first}-7/{}' instead",
                        step.unwrap_or(1)
                    ),
                ));
            }
            // cron reads a weekday range ending in 0 as ending on Sunday: `sat-0` = 6-7.
            last = Some(7);
        }
        if let Some(last) = last {
            if last < first {
                return Err(err(
                    field,
                    piece,
                    "the minimum value in a range must not be higher than the maximum",
                ));
            }
        }
        if first < min {
            return Err(err(
                field,
                piece,
                format!("the first value ({first}) is lower than the minimum value ({min})"),
            ));
        }
        if let Some(last) = last {
            if last > max {
                return Err(err(
                    field,
                    piece,
                    format!("the last value ({last}) is higher than the maximum value ({max})"),
                ));
            }
        } else if first > max {
            return Err(err(
                field,
                piece,
                format!("the last value ({first}) is higher than the maximum value ({max})"),
            ));
        }
        // `a/c` runs to the field's maximum; a plain `a` is the single value.
        let last = match (last, step) {
            (Some(l), _) => l,
            (None, Some(_)) => max,
            (None, None) => first,
        };
        if let Some(step) = step {
            let range = last - first;
            if step > range && !vixie {
                return Err(err(
                    field,
                    piece,
                    format!("the step value ({step}) is higher than the total range of the expression ({range})"),
                ));
            }
        }
        Range {
            first,
            last,
            step: step.unwrap_or(1),
        }
    };
    ranges_or_days(field, range, ranges, days);
    Ok(())
}

/// Day-of-month values are day expressions (clipped to each month); others are ranges.
fn ranges_or_days(field: &str, range: Range, ranges: &mut Vec<Range>, days: &mut Vec<DayExpr>) {
    if field == "day" {
        days.push(DayExpr::Range(range));
    } else {
        ranges.push(range);
    }
}

/// Reads one value of a range: a number, or a month/weekday name where the field takes names.
pub(crate) fn parse_value(
    field: &str,
    piece: &str,
    text: &str,
    vixie: bool,
    closes_range: bool,
) -> Result<u32, TriggerError> {
    if let Some(n) = parse_uint(text) {
        return Ok(n);
    }
    let is_name = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphabetic());
    match field {
        "month" if is_name => month_number(text)
            .ok_or_else(|| err(field, piece, format!("invalid month name '{text}'"))),
        "day_of_week" if is_name => {
            let wd = weekday_number(text)
                .ok_or_else(|| err(field, piece, format!("invalid weekday name '{text}'")))?;
            if vixie {
                // Crontab numbering: sun = 0, or 7 when it closes a range (`mon-sun`).
                Ok(match wd {
                    6 if closes_range => 7,
                    6 => 0,
                    w => w + 1,
                })
            } else {
                Ok(wd)
            }
        }
        _ => Err(unrecognized(field, piece)),
    }
}
