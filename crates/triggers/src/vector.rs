//! Evaluation of conformance vectors (the schema of `tests/conformance/README.md`).

use apscheduler_core::time::{parse_rfc3339, parse_timezone};
use apscheduler_core::{Trigger, TriggerError};
use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::Value;

use crate::AnyTrigger;

/// Upper bound on `count`, so a hostile vector cannot ask for unbounded work.
pub const MAX_COUNT: u64 = 100_000;

/// Builds the vector's trigger and computes its fire times: f1 = next fire time with
/// no previous fire time at `now`; f(k+1) = next fire time with previous = now = f(k);
/// up to `count` fires or until the trigger is exhausted.
///
/// ```
/// use serde_json::json;
/// let v = json!({"trigger": "cron", "args": {"hour": 9}, "timezone": "UTC",
///                "now": "2024-01-01T00:00:00+00:00", "count": 2});
/// let fires = apscheduler_triggers::evaluate_vector(&v).unwrap();
/// assert_eq!(fires[1].to_rfc3339(), "2024-01-02T09:00:00+00:00");
/// ```
///
/// # Errors
/// A malformed vector or an invalid trigger, as a [`TriggerError`].
pub fn evaluate_vector(vector: &Value) -> Result<Vec<DateTime<Tz>>, TriggerError> {
    let field = |name: &str| vector.get(name).unwrap_or(&Value::Null);
    let text = |name: &str| {
        field(name).as_str().ok_or_else(|| {
            TriggerError::invalid_field(name, field(name).to_string(), "expected a string")
        })
    };
    let tz = match field("timezone") {
        Value::Null => Tz::UTC,
        _ => parse_timezone("timezone", text("timezone")?)?,
    };
    let now = parse_rfc3339("now", text("now")?, tz)?;
    let count = match field("count") {
        Value::Null => 1,
        v => v.as_u64().filter(|n| *n <= MAX_COUNT).ok_or_else(|| {
            TriggerError::invalid_field(
                "count",
                v.to_string(),
                format!("expected an integer from 0 to {MAX_COUNT}"),
            )
        })?,
    };
    let trigger = AnyTrigger::from_args(text("trigger")?, field("args"), tz, now)?;
    let mut fires: Vec<DateTime<Tz>> = Vec::new();
    while (fires.len() as u64) < count {
        let next = match fires.last() {
            None => trigger.next_fire_time(None, &now),
            Some(prev) => trigger.next_fire_time(Some(prev), prev),
        };
        match next {
            Some(t) => fires.push(t),
            None => break,
        }
    }
    Ok(fires)
}
