//! Small helpers shared by the trigger kinds.

use chrono::{DateTime, Duration, Timelike};
use chrono_tz::Tz;
use rand::Rng;

/// Rounds up to the next whole second (a time already on a whole second is kept).
pub(crate) fn ceil_to_second(t: DateTime<Tz>) -> DateTime<Tz> {
    let nanos = t.nanosecond();
    if nanos == 0 {
        t
    } else {
        t + Duration::nanoseconds(i64::from(1_000_000_000 - nanos % 1_000_000_000))
    }
}

/// Adds a random delay of 0..=`jitter` seconds (APScheduler's `jitter` option).
pub(crate) fn apply_jitter(t: DateTime<Tz>, jitter: Option<f64>) -> DateTime<Tz> {
    match jitter {
        Some(j) if j > 0.0 => {
            let secs = rand::thread_rng().gen_range(0.0..=j);
            t + Duration::nanoseconds((secs * 1e9) as i64)
        }
        _ => t,
    }
}

/// Validates a jitter value given in seconds.
pub(crate) fn check_jitter(
    jitter: Option<f64>,
) -> Result<Option<f64>, apscheduler_core::TriggerError> {
    match jitter {
        None => Ok(None),
        Some(j) if j.is_finite() && j >= 0.0 => Ok(if j == 0.0 { None } else { Some(j) }),
        Some(j) => Err(apscheduler_core::TriggerError::invalid_field(
            "jitter",
            j.to_string(),
            "jitter must be a non-negative number of seconds",
        )),
    }
}

/// The smallest step used to ask for "strictly after".
pub(crate) const TICK: Duration = Duration::nanoseconds(1);
