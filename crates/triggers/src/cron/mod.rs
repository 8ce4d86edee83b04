//! The `cron` trigger (APScheduler's `CronTrigger`) and crontab text.

mod crontab;
mod dst;
mod expr;
mod extend;
mod hashed;
mod matcher;

use std::fmt;

use apscheduler_core::time::{
    parse_rfc3339, parse_timezone, resolve_local, to_rfc3339, LocalInstant,
};
use apscheduler_core::{Trigger, TriggerError};
use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use crontab::{crontab_uses_hash, expand_macro};
pub use dst::Dst;
pub(crate) use expr::FIELD_NAMES;
use expr::{bounds, parse_field, Dialect, Field};
pub(crate) use matcher::Matcher;
use matcher::{DayRule, SECOND};

use crate::util::{apply_jitter, ceil_to_second, check_jitter};

/// Fires when the wall-clock time matches every field (APScheduler's `CronTrigger`).
///
/// Fields: `year`, `month`, `day`, `week` (ISO), `day_of_week` (0 = Monday),
/// `hour`, `minute`, `second`. Expressions: `*`, `*/a`, `a-b`, `a-b/c`, `a/c`,
/// `xth y`, `last x`, `last` (day field), comma lists, month and weekday names.
/// Fields left out that are more significant than the least significant given
/// field are `*`; less significant ones take their minimum.
///
/// DST: a time inside a spring-forward gap fires once, at the instant it denotes with
/// the offset before the jump; in a fall-back overlap a time fires once (at its first
/// occurrence) unless the hour field is `*` or `*/n`, in which case both passes fire.
/// [`Dst::Cron`] selects cronie's rule instead.
///
/// ```
/// use apscheduler_core::Trigger;
/// use apscheduler_triggers::CronTrigger;
///
/// let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
/// let trigger = CronTrigger::builder()
///     .month("6-8,11-12")
///     .day("3rd fri")
///     .hour("0-3")
///     .timezone(tz)
///     .build()
///     .unwrap();
/// assert_eq!(trigger.to_string(), "cron[month='6-8,11-12', day='3rd fri', hour='0-3']");
///
/// let now = apscheduler_core::time::parse_datetime("now", "2024-01-01", tz).unwrap();
/// let next = trigger.next_fire_time(None, &now).unwrap();
/// assert_eq!(next.to_rfc3339(), "2024-06-21T00:00:00-04:00");
///
/// let weekdays = CronTrigger::from_crontab("0 9 * * mon-fri", tz).unwrap();
/// assert!(weekdays.next_fire_time(None, &now).is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CronSpec", into = "CronSpec")]
pub struct CronTrigger {
    spec: CronSpec,
    /// Which fields were given (and so are shown by `Display`).
    given: [bool; 8],
    matcher: Matcher,
    timezone: Tz,
    start_date: Option<DateTime<Tz>>,
    end_date: Option<DateTime<Tz>>,
    jitter: Option<f64>,
}

/// The persisted form of a cron trigger: its field texts, dates and options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct CronSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    year: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    week: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day_of_week: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    second: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_date: Option<String>,
    timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
    /// Standard crontab semantics (Vixie day-of-week numbering, day OR weekday).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    crontab: bool,
    /// The DST policy (absent = the default one).
    #[serde(default, skip_serializing_if = "Dst::is_default")]
    dst: Dst,
    /// The key crontab `H` values are hashed from (the job id); kept so a reload picks
    /// the same values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash_key: Option<String>,
}

impl CronSpec {
    fn field(&self, index: usize) -> Option<&String> {
        [
            &self.year,
            &self.month,
            &self.day,
            &self.week,
            &self.day_of_week,
            &self.hour,
            &self.minute,
            &self.second,
        ][index]
            .as_ref()
    }

    fn field_mut(&mut self, index: usize) -> &mut Option<String> {
        match index {
            0 => &mut self.year,
            1 => &mut self.month,
            2 => &mut self.day,
            3 => &mut self.week,
            4 => &mut self.day_of_week,
            5 => &mut self.hour,
            6 => &mut self.minute,
            _ => &mut self.second,
        }
    }
}

/// Builds a [`CronTrigger`]; every field is optional.
#[derive(Debug, Clone)]
pub struct CronTriggerBuilder {
    fields: [Option<String>; 8],
    start_date: Option<DateTime<Tz>>,
    end_date: Option<DateTime<Tz>>,
    timezone: Option<Tz>,
    jitter: Option<f64>,
    dst: Dst,
}

macro_rules! field_setters {
    ($($name:ident => $index:expr),* $(,)?) => {
        $(
            #[doc = concat!("Sets the `", stringify!($name), "` field expression.")]
            pub fn $name(mut self, expr: impl ToString) -> Self {
                self.fields[$index] = Some(expr.to_string());
                self
            }
        )*
    };
}

impl CronTriggerBuilder {
    field_setters! {
        year => 0, month => 1, day => 2, week => 3, day_of_week => 4,
        hour => 5, minute => 6, second => 7,
    }

    /// Sets a field by its name (`year` ... `second`).
    ///
    /// # Errors
    /// An unknown field name.
    pub fn field(mut self, name: &str, expr: impl ToString) -> Result<Self, TriggerError> {
        let index = FIELD_NAMES.iter().position(|f| *f == name).ok_or_else(|| {
            TriggerError::UnknownArgument {
                field: name.to_owned(),
                value: expr.to_string(),
                reason: "not a cron field".into(),
            }
        })?;
        self.fields[index] = Some(expr.to_string());
        Ok(self)
    }

    /// Earliest possible fire time.
    pub fn start_date(mut self, start: DateTime<Tz>) -> Self {
        self.start_date = Some(start);
        self
    }

    /// Latest possible fire time.
    pub fn end_date(mut self, end: DateTime<Tz>) -> Self {
        self.end_date = Some(end);
        self
    }

    /// The timezone the fields are read in (default UTC).
    pub fn timezone(mut self, tz: Tz) -> Self {
        self.timezone = Some(tz);
        self
    }

    /// Adds a random delay of up to `seconds` to each fire time.
    pub fn jitter(mut self, seconds: f64) -> Self {
        self.jitter = Some(seconds);
        self
    }

    /// The DST policy (default [`Dst::Default`]).
    pub fn dst(mut self, dst: Dst) -> Self {
        self.dst = dst;
        self
    }

    /// Validates and builds the trigger.
    ///
    /// # Errors
    /// Any invalid field expression, `end_date` before `start_date`, a bad jitter.
    pub fn build(self) -> Result<CronTrigger, TriggerError> {
        let tz = self.timezone.unwrap_or(Tz::UTC);
        let mut spec = CronSpec {
            timezone: tz.name().to_owned(),
            start_date: self.start_date.map(|t| to_rfc3339(&t.with_timezone(&tz))),
            end_date: self.end_date.map(|t| to_rfc3339(&t.with_timezone(&tz))),
            jitter: self.jitter,
            dst: self.dst,
            ..CronSpec::default()
        };
        for (i, value) in self.fields.into_iter().enumerate() {
            *spec.field_mut(i) = value;
        }
        CronTrigger::from_spec(spec)
    }
}

impl CronTrigger {
    /// Starts building a trigger.
    pub fn builder() -> CronTriggerBuilder {
        CronTriggerBuilder {
            fields: Default::default(),
            start_date: None,
            end_date: None,
            timezone: None,
            jitter: None,
            dst: Dst::Default,
        }
    }

    /// This trigger with the DST policy `dst`.
    pub fn with_dst(mut self, dst: Dst) -> CronTrigger {
        self.spec.dst = dst;
        self.matcher.dst = dst;
        self
    }

    /// The DST policy.
    pub fn dst(&self) -> Dst {
        self.spec.dst
    }

    fn from_spec(spec: CronSpec) -> Result<CronTrigger, TriggerError> {
        let dialect = if spec.crontab {
            Dialect::Extended
        } else {
            Dialect::Aps
        };
        CronTrigger::from_spec_in(spec, dialect)
    }

    fn from_spec_in(spec: CronSpec, dialect: Dialect) -> Result<CronTrigger, TriggerError> {
        let tz = parse_timezone("timezone", &spec.timezone)?;
        let jitter = check_jitter(spec.jitter)?;
        let start_date = spec
            .start_date
            .as_deref()
            .map(|s| parse_rfc3339("start_date", s, tz))
            .transpose()?;
        let end_date = spec
            .end_date
            .as_deref()
            .map(|s| parse_rfc3339("end_date", s, tz))
            .transpose()?;
        if let (Some(start), Some(end)) = (start_date, end_date) {
            if end < start {
                return Err(TriggerError::EndBeforeStart {
                    start: to_rfc3339(&start),
                    end: to_rfc3339(&end),
                });
            }
        }
        let vixie = dialect.vixie();
        let hashed = if dialect == Dialect::Extended {
            let texts: [Option<&str>; 8] =
                std::array::from_fn(|i| spec.field(i).map(String::as_str));
            hashed::resolve(&texts, spec.hash_key.as_deref())?
        } else {
            Default::default()
        };

        // Defaults: `*` above the least significant given field, the minimum below it;
        // week and day_of_week are always `*` when not given.
        let least_given = (0..8).rev().find(|&i| spec.field(i).is_some());
        let mut given = [false; 8];
        let mut fields: Vec<Field> = Vec::with_capacity(8);
        for (i, name) in FIELD_NAMES.iter().enumerate() {
            let text = match spec.field(i) {
                Some(t) => {
                    given[i] = true;
                    t.clone()
                }
                None => {
                    let below = least_given.is_some_and(|l| i > l);
                    if below && !matches!(*name, "week" | "day_of_week") {
                        bounds(name, vixie).0.to_string()
                    } else {
                        "*".to_owned()
                    }
                }
            };
            fields.push(parse_field(name, &text, dialect, &hashed[i])?);
        }

        let weekdays = if vixie {
            // Crontab numbering (0 and 7 = Sunday) to Monday-first bits.
            let mask = fields[4].mask();
            (0..=7u32)
                .filter(|v| mask & (1 << v) != 0)
                .fold(0u8, |m, v| m | 1 << ((v + 6) % 7))
        } else {
            fields[4].mask() as u8
        };
        let weeks = if fields[3].all_star && fields[3].text == "*" {
            None
        } else {
            Some(fields[3].mask())
        };
        let day_rule = DayRule {
            days: fields[2].days.clone(),
            weekdays,
            weekday_days: fields[4].days.clone(),
            weeks,
            // Normalized texts: `?` already reads as `*` there.
            either: vixie && !fields[2].text.starts_with('*') && !fields[4].text.starts_with('*'),
        };
        let matcher = Matcher {
            years: vec![fields[0].ranges.clone()],
            months: fields[1].mask(),
            day_rules: vec![day_rule],
            hours: fields[5].mask(),
            minutes: fields[6].mask(),
            seconds: fields[7].mask(),
            hour_wildcard: fields[5].all_star,
            dst: spec.dst,
            // cronie's MIN_STAR/HR_STAR: the field's text starts with `*`.
            cron_wild: fields[6].text.starts_with('*') || fields[5].text.starts_with('*'),
        };
        // Keep the normalized texts for display and persistence.
        let mut spec = spec;
        for (i, f) in fields.iter().enumerate() {
            if given[i] {
                *spec.field_mut(i) = Some(f.text.clone());
            }
        }
        spec.jitter = jitter;
        Ok(CronTrigger {
            spec,
            given,
            matcher,
            timezone: tz,
            start_date,
            end_date,
            jitter,
        })
    }

    /// The field expression as given (normalized), or `None` when it was left out.
    pub fn field(&self, name: &str) -> Option<&str> {
        let i = FIELD_NAMES.iter().position(|f| *f == name)?;
        self.spec.field(i).map(String::as_str)
    }

    /// Earliest possible fire time.
    pub fn start_date(&self) -> Option<DateTime<Tz>> {
        self.start_date
    }

    /// Latest possible fire time.
    pub fn end_date(&self) -> Option<DateTime<Tz>> {
        self.end_date
    }

    pub(crate) fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    pub(crate) fn jitter(&self) -> Option<f64> {
        self.jitter
    }

    /// First unjittered fire time at or after `t`, within the start and end dates.
    pub(crate) fn first_at_or_after(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let mut start = t.with_timezone(&self.timezone);
        if let Some(s) = self.start_date {
            start = start.max(s);
        }
        let next = next_instant(&self.matcher, self.timezone, ceil_to_second(start))?;
        match self.end_date {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }
}

/// The first instant `>= start` (a whole second) whose wall-clock time in `tz` matches,
/// under the DST policy (see [`CronTrigger`]).
pub(crate) fn next_instant(m: &Matcher, tz: Tz, start: DateTime<Tz>) -> Option<DateTime<Tz>> {
    if m.dst == Dst::Cron {
        return dst::next_instant_cron(m, tz, start);
    }
    let local = start.naive_local();
    let mut best: Option<DateTime<Tz>> = None;
    let mut consider = |t: DateTime<Tz>| {
        if t >= start && best.is_none_or(|b| t < b) {
            best = Some(t);
        }
    };

    // (a) The first matching wall-clock time at or after the start's own.
    let mut from = local;
    while let Some(n) = m.next_naive(from) {
        match resolve_local(tz, n) {
            LocalInstant::Single(t) if t >= start => {
                consider(t);
                break;
            }
            // A time inside a spring-forward gap denotes an instant after the jump (read
            // with the pre-jump offset), so a real wall-clock time after the gap can
            // still come first (Lord Howe's 30-minute gap: 02:05 denotes 02:35, after a
            // real 02:30): keep looking until the first real match.
            LocalInstant::Gap(t) if t >= start => {
                consider(t);
                from = n + SECOND;
            }
            LocalInstant::Ambiguous(early, late) => {
                if early >= start {
                    consider(early);
                    break;
                }
                if m.hour_wildcard && late >= start {
                    consider(late);
                    break;
                }
                // This wall-clock time already fired in the first pass; skip every time
                // whose first occurrence lies before the start.
                let early_offset =
                    Duration::seconds(i64::from(early.offset().fix().local_minus_utc()));
                from = (n + SECOND).max(ceil_naive(start.naive_utc() + early_offset));
            }
            _ => from = n + SECOND,
        }
    }

    // (b) The start is in the first pass of a fall-back overlap: with an `*` hour the
    // second pass fires too, and all of it comes after the start.
    if m.hour_wildcard {
        if let LocalInstant::Ambiguous(early, late) = resolve_local(tz, local) {
            if start < late {
                let overlap = late - early;
                let mut lo = local - overlap;
                let mut hi = local;
                while hi - lo > SECOND {
                    let mid = lo + Duration::seconds((hi - lo).num_seconds() / 2);
                    if matches!(resolve_local(tz, mid), LocalInstant::Ambiguous(..)) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                if let Some(n) = m.next_naive(hi) {
                    if let LocalInstant::Ambiguous(_, late) = resolve_local(tz, n) {
                        consider(late);
                    }
                }
            }
        }
    }

    // (c) The start lies just after a spring-forward gap: wall-clock times inside the gap
    // denote instants after the jump, possibly at or after the start.
    let offset_now = start.offset().fix().local_minus_utc();
    let before = start.naive_utc() - Duration::hours(49);
    let offset_before = tz.offset_from_utc_datetime(&before).fix().local_minus_utc();
    if offset_now > offset_before {
        let gap = Duration::seconds(i64::from(offset_now - offset_before));
        let probe = local - gap;
        if matches!(resolve_local(tz, probe), LocalInstant::Gap(_)) {
            if let Some(n) = m.next_naive(probe) {
                if n < local {
                    if let LocalInstant::Gap(t) = resolve_local(tz, n) {
                        consider(t);
                    }
                }
            }
        }
    }
    best
}

fn ceil_naive(t: NaiveDateTime) -> NaiveDateTime {
    use chrono::Timelike;
    if t.nanosecond() == 0 {
        t
    } else {
        t.with_nanosecond(0).unwrap_or(t) + SECOND
    }
}

impl Trigger for CronTrigger {
    fn next_fire_time(
        &self,
        previous: Option<&DateTime<Tz>>,
        now: &DateTime<Tz>,
    ) -> Option<DateTime<Tz>> {
        // The start instant is worked out in UTC and put into the trigger's zone once, at
        // the end: every `with_timezone` or `+` on a `DateTime<Tz>` is a chrono-tz offset
        // search, and four of them took over a third of a chained call (a profile of the
        // chained call, docs/PERFORMANCE.md, "Trigger engine"). Instants compare and add the same in any zone.
        let now = now.to_utc();
        let start = match previous {
            Some(prev) => {
                let prev = prev.to_utc();
                // The smallest step (1 ns): "strictly after `prev`" even when `prev` has
                // a sub-microsecond part, as jittered fire times do.
                let step = crate::util::TICK;
                let start = now.min(prev + step);
                if start == prev {
                    start + step
                } else {
                    start
                }
            }
            None => match self.start_date {
                Some(s) => now.max(s.to_utc()),
                None => now,
            },
        };
        // Rounding up to a whole second in UTC is the same as in the zone: offsets are
        // whole seconds.
        let start = self
            .timezone
            .from_utc_datetime(&ceil_naive(start.naive_utc()));
        let next = next_instant(&self.matcher, self.timezone, start)?;
        if let Some(end) = self.end_date {
            if next > end {
                return None;
            }
        }
        let next = apply_jitter(next, self.jitter);
        Some(match self.end_date {
            Some(end) => next.min(end),
            None => next,
        })
    }

    fn timezone(&self) -> Tz {
        self.timezone
    }

    fn to_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(crate::AnyTrigger::from(self.clone())).ok()
    }
}

impl fmt::Display for CronTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cron[")?;
        let mut first = true;
        for (i, name) in FIELD_NAMES.iter().enumerate() {
            if let (true, Some(text)) = (self.given[i], self.spec.field(i)) {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                write!(f, "{name}='{text}'")?;
            }
        }
        if !self.spec.dst.is_default() {
            write!(f, ", dst='{}'", self.spec.dst)?;
        }
        f.write_str("]")
    }
}

impl From<CronTrigger> for CronSpec {
    fn from(t: CronTrigger) -> Self {
        t.spec
    }
}

impl TryFrom<CronSpec> for CronTrigger {
    type Error = TriggerError;
    fn try_from(spec: CronSpec) -> Result<Self, Self::Error> {
        CronTrigger::from_spec(spec)
    }
}
