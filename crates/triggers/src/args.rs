//! Building triggers from APScheduler-style keyword arguments (JSON).

use apscheduler_core::time::{parse_datetime, parse_timezone};
use apscheduler_core::TriggerError;
use chrono::{DateTime, Duration};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cron::FIELD_NAMES;
use crate::interval::seconds_to_duration;
use crate::{
    AndTrigger, AnyTrigger, CalendarAction, CalendarIntervalTrigger, CronTrigger, DateTrigger, Dst,
    ExcludingTrigger, IntervalTrigger, NamedCalendar, OrTrigger,
};

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn unknown(field: &str, v: &Value, kind: &str) -> TriggerError {
    TriggerError::UnknownArgument {
        field: field.to_owned(),
        value: show(v),
        reason: format!("not an argument of the '{kind}' trigger"),
    }
}

fn expect_string<'a>(field: &str, v: &'a Value) -> Result<&'a str, TriggerError> {
    v.as_str()
        .ok_or_else(|| TriggerError::invalid_field(field, show(v), "expected a string"))
}

fn expect_number(field: &str, v: &Value) -> Result<f64, TriggerError> {
    v.as_f64()
        .ok_or_else(|| TriggerError::invalid_field(field, show(v), "expected a number"))
}

fn expect_uint(field: &str, v: &Value) -> Result<u32, TriggerError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            TriggerError::invalid_field(field, show(v), "expected a non-negative integer")
        })
}

/// A cron field value: an integer or an expression string.
fn cron_field_text(field: &str, v: &Value) -> Result<String, TriggerError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        _ => Err(TriggerError::invalid_field(
            field,
            show(v),
            format!("unrecognized expression '{}' for field '{field}'", show(v)),
        )),
    }
}

fn object<'a>(kind: &str, args: &'a Value) -> Result<&'a Map<String, Value>, TriggerError> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match args {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        other => Err(TriggerError::invalid_field(
            "args",
            show(other),
            format!("the arguments of a '{kind}' trigger must be an object"),
        )),
    }
}

fn timezone(map: &Map<String, Value>, default: Tz) -> Result<Tz, TriggerError> {
    match map.get("timezone") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => parse_timezone("timezone", expect_string("timezone", v)?),
    }
}

fn date_arg(
    map: &Map<String, Value>,
    field: &str,
    tz: Tz,
) -> Result<Option<DateTime<Tz>>, TriggerError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_datetime(field, expect_string(field, v)?, tz).map(Some),
    }
}

fn jitter_arg(map: &Map<String, Value>) -> Result<Option<f64>, TriggerError> {
    match map.get("jitter") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => expect_number("jitter", v).map(Some),
    }
}

/// The `dst` argument of cron and crontab triggers: `"default"` or `"cron"`.
fn dst_arg(map: &Map<String, Value>) -> Result<Dst, TriggerError> {
    match map.get("dst") {
        None | Some(Value::Null) => Ok(Dst::Default),
        Some(v) => Dst::parse("dst", expect_string("dst", v)?),
    }
}

pub(crate) fn build(
    kind: &str,
    args: &Value,
    default_tz: Tz,
    now: DateTime<Tz>,
) -> Result<AnyTrigger, TriggerError> {
    let map = object(kind, args)?;
    let tz = timezone(map, default_tz)?;
    // Converting to the zone it already is in still costs a zone lookup.
    let now = if now.timezone() == tz {
        now
    } else {
        now.with_timezone(&tz)
    };
    match kind {
        "cron" => {
            let mut b = CronTrigger::builder().timezone(tz);
            for (key, value) in map {
                match key.as_str() {
                    "timezone" | "start_date" | "end_date" | "jitter" | "dst" => {}
                    k if FIELD_NAMES.contains(&k) => {
                        if !value.is_null() {
                            b = b.field(k, cron_field_text(k, value)?)?;
                        }
                    }
                    k => return Err(unknown(k, value, kind)),
                }
            }
            if let Some(s) = date_arg(map, "start_date", tz)? {
                b = b.start_date(s);
            }
            if let Some(e) = date_arg(map, "end_date", tz)? {
                b = b.end_date(e);
            }
            if let Some(j) = jitter_arg(map)? {
                b = b.jitter(j);
            }
            Ok(b.dst(dst_arg(map)?).build()?.into())
        }
        "crontab" => {
            for (key, value) in map {
                if !matches!(
                    key.as_str(),
                    "expr" | "timezone" | "start_date" | "end_date" | "jitter" | "dst" | "hash_key"
                ) {
                    return Err(unknown(key, value, kind));
                }
            }
            let expr = match map.get("expr") {
                Some(v) => expect_string("expr", v)?,
                None => {
                    return Err(TriggerError::invalid_field(
                        "expr",
                        "",
                        "a crontab trigger needs 'expr'",
                    ))
                }
            };
            let hash_key = map
                .get("hash_key")
                .map(|v| expect_string("hash_key", v))
                .transpose()?;
            Ok(CronTrigger::from_crontab_keyed(
                expr,
                tz,
                hash_key,
                date_arg(map, "start_date", tz)?,
                date_arg(map, "end_date", tz)?,
                jitter_arg(map)?,
            )?
            .with_dst(dst_arg(map)?)
            .into())
        }
        "interval" => {
            let mut total = Duration::zero();
            for (key, value) in map {
                let unit = match key.as_str() {
                    "weeks" => 604_800.0,
                    "days" => 86_400.0,
                    "hours" => 3_600.0,
                    "minutes" => 60.0,
                    "seconds" => 1.0,
                    "timezone" | "start_date" | "end_date" | "jitter" => continue,
                    k => return Err(unknown(k, value, kind)),
                };
                let n = expect_number(key, value)?;
                total += seconds_to_duration(key, n * unit)?;
            }
            let mut b = IntervalTrigger::builder(total).timezone(tz).now(now);
            if let Some(s) = date_arg(map, "start_date", tz)? {
                b = b.start_date(s);
            }
            if let Some(e) = date_arg(map, "end_date", tz)? {
                b = b.end_date(e);
            }
            if let Some(j) = jitter_arg(map)? {
                b = b.jitter(j);
            }
            Ok(b.build()?.into())
        }
        "date" => {
            for (key, value) in map {
                if !matches!(key.as_str(), "run_date" | "timezone") {
                    return Err(unknown(key, value, kind));
                }
            }
            let run_date = date_arg(map, "run_date", tz)?.unwrap_or(now);
            Ok(DateTrigger::new(run_date).into())
        }
        "calendarinterval" => {
            let start = match map.get("start_date") {
                None | Some(Value::Null) => now.date_naive(),
                Some(v) => CalendarIntervalTrigger::parse_date(
                    "start_date",
                    expect_string("start_date", v)?,
                )?,
            };
            let mut b = CalendarIntervalTrigger::builder(start, tz);
            let (mut hour, mut minute, mut second) = (0, 0, 0);
            for (key, value) in map {
                match key.as_str() {
                    "years" => b = b.years(expect_uint(key, value)?),
                    "months" => b = b.months(expect_uint(key, value)?),
                    "weeks" => b = b.weeks(expect_uint(key, value)?),
                    "days" => b = b.days(expect_uint(key, value)?),
                    "hour" => hour = expect_uint(key, value)?,
                    "minute" => minute = expect_uint(key, value)?,
                    "second" => second = expect_uint(key, value)?,
                    "end_date" => {
                        if !value.is_null() {
                            b = b.end_date(CalendarIntervalTrigger::parse_date(
                                "end_date",
                                expect_string("end_date", value)?,
                            )?);
                        }
                    }
                    "jitter" => {
                        if let Some(j) = jitter_arg(map)? {
                            b = b.jitter(j);
                        }
                    }
                    "timezone" | "start_date" => {}
                    k => return Err(unknown(k, value, kind)),
                }
            }
            Ok(b.time(hour, minute, second).build()?.into())
        }
        "and" | "or" => {
            let mut members = Vec::new();
            for (key, value) in map {
                if !matches!(key.as_str(), "triggers" | "jitter" | "timezone") {
                    return Err(unknown(key, value, kind));
                }
            }
            let list = map
                .get("triggers")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    TriggerError::invalid_field(
                        "triggers",
                        map.get("triggers").map(show).unwrap_or_default(),
                        "expected a list of {\"trigger\", \"args\"} objects",
                    )
                })?;
            for item in list {
                let member_kind = item
                    .get("trigger")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        TriggerError::invalid_field("trigger", show(item), "expected a trigger kind")
                    })?;
                let member_args = item.get("args").unwrap_or(&Value::Null);
                members.push(build(member_kind, member_args, tz, now)?);
            }
            let jitter = jitter_arg(map)?;
            Ok(if kind == "and" {
                AndTrigger::with_jitter(members, jitter)?.into()
            } else {
                OrTrigger::with_jitter(members, jitter)?.into()
            })
        }
        "excluding" => excluding(map, tz, now),
        other => Err(TriggerError::UnknownArgument {
            field: "trigger".into(),
            value: other.into(),
            reason: "unknown trigger kind (expected cron, crontab, interval, date, calendarinterval, and, or, excluding)".into(),
        }),
    }
}

/// `excluding`: `{"trigger": KIND, "args": {...}, "calendar": NAMED_CALENDAR, "action": "skip"}`.
fn excluding(
    map: &Map<String, Value>,
    tz: Tz,
    now: DateTime<Tz>,
) -> Result<AnyTrigger, TriggerError> {
    for (key, value) in map {
        if !matches!(
            key.as_str(),
            "trigger" | "args" | "calendar" | "action" | "timezone"
        ) {
            return Err(unknown(key, value, "excluding"));
        }
    }
    let inner_kind =
        match map.get("trigger") {
            Some(v) => expect_string("trigger", v)?,
            None => return Err(TriggerError::invalid_field(
                "trigger",
                "",
                "an 'excluding' trigger needs 'trigger' (the kind of the trigger it applies to)",
            )),
        };
    let inner = build(inner_kind, map.get("args").unwrap_or(&Value::Null), tz, now)?;
    let calendar_value = map.get("calendar").ok_or_else(|| {
        TriggerError::invalid_field(
            "calendar",
            "",
            "an 'excluding' trigger needs 'calendar' ({\"name\": ..., \"calendar\": {...}})",
        )
    })?;
    let calendar = NamedCalendar::deserialize(calendar_value).map_err(|e| {
        TriggerError::invalid_field("calendar", show(calendar_value), e.to_string())
    })?;
    let action = match map.get("action") {
        None | Some(Value::Null) => CalendarAction::Skip,
        Some(v) => expect_string("action", v)?.parse()?,
    };
    Ok(ExcludingTrigger::new(inner, calendar, action).into())
}
