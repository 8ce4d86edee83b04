//! Scheduler-wide defaults and configuration.

use std::time::Duration;

use apscheduler_core::{Error, ErrorKind};
use serde_json::Value;

/// Options every job gets unless it sets its own (APScheduler's `job_defaults`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobDefaults {
    /// How late a run may start; `None` = however late. APScheduler's default: 1 s.
    pub misfire_grace_time: Option<Duration>,
    /// Collapse overdue runs into one. Default `true`.
    pub coalesce: bool,
    /// Concurrent runs per job. Default 1.
    pub max_instances: u32,
}

impl Default for JobDefaults {
    fn default() -> Self {
        JobDefaults {
            misfire_grace_time: Some(Duration::from_secs(1)),
            coalesce: true,
            max_instances: 1,
        }
    }
}

/// Reads a grace time: seconds as a number or numeric string, or null for "always run".
pub(crate) fn grace_from_json(key: &str, v: &Value) -> Result<Option<Duration>, Error> {
    let secs = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if s.is_finite() && s >= 0.0 && s < 1e12 => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid value for '{key}': {v}: expected seconds (a non-negative number) or null"),
        )),
    }
}
