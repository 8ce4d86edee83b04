//! The run-policy keys of a `[[jobs]]` table and `[job_defaults]`: `retry`, `overlap`,
//! `catchup`, `pause_after_failures` and `notify_after_failures`, checked into the
//! engine's [`RunPolicy`].

use apscheduler_core::{Catchup, CatchupMode, Overlap, RetryOn, RetryPolicy, RunPolicy};
use serde::Deserialize;

use super::raw::DurationText;

/// `retry = { attempts = 5, delay = "10s", backoff = 2.0, max_delay = "10m", jitter = true,
/// on = ["failure", "timeout"], exit_codes = [75] }`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    /// Attempts in all, the first run included.
    pub(crate) attempts: i64,
    /// Delay before the second attempt: seconds or text ("10s").
    #[schema(value_type = serde_json::Value)]
    pub(crate) delay: DurationText,
    /// Each later delay is the previous one times this; 1.0 (the default) is a fixed delay.
    pub(crate) backoff: Option<f64>,
    /// The longest delay: seconds or text.
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) max_delay: Option<DurationText>,
    /// Full jitter: each delay drawn uniformly between 0 and the computed delay.
    pub(crate) jitter: Option<bool>,
    /// Which outcomes retry: "failure", "timeout" (default: both).
    pub(crate) on: Option<Vec<String>>,
    /// Retry a failed command only for these exit codes (default: any).
    pub(crate) exit_codes: Option<Vec<i32>>,
}

/// `catchup = { window = "3h", mode = "all" }`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCatchup {
    /// How far back a fire time missed during downtime still runs: seconds or text.
    #[schema(value_type = serde_json::Value)]
    pub(crate) window: DurationText,
    /// "all" (each missed fire time, in order; the default), "latest" or "none".
    pub(crate) mode: Option<String>,
}

/// The policy keys as one table or `[job_defaults]` writes them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawPolicy<'a> {
    pub(crate) retry: Option<&'a RawRetry>,
    pub(crate) overlap: Option<&'a str>,
    pub(crate) catchup: Option<&'a RawCatchup>,
    pub(crate) pause_after_failures: Option<i64>,
    pub(crate) notify_after_failures: Option<i64>,
}

/// The policy of a job: its own keys over `defaults`. Errors are `(field, message)`, the
/// field as the config writes it (`retry.attempts`).
pub(crate) fn check_policy(
    raw: RawPolicy<'_>,
    defaults: &RunPolicy,
) -> Result<RunPolicy, (String, String)> {
    let mut policy = defaults.clone();
    if let Some(r) = raw.retry {
        policy.retry = Some(check_retry(r)?);
    }
    if let Some(o) = raw.overlap {
        policy.overlap = o
            .parse::<Overlap>()
            .map_err(|_| ("overlap".to_owned(), overlap_error(o)))?;
    }
    if let Some(c) = raw.catchup {
        policy.catchup = Some(check_catchup(c)?);
    }
    for (field, value, slot) in [
        (
            "pause_after_failures",
            raw.pause_after_failures,
            &mut policy.pause_after_failures,
        ),
        (
            "notify_after_failures",
            raw.notify_after_failures,
            &mut policy.notify_after_failures,
        ),
    ] {
        if let Some(n) = value {
            *slot = match n {
                0 => None,
                1..=1_000_000 => Some(n as u32),
                _ => {
                    return Err((
                        field.to_owned(),
                        format!("invalid value {n}: expected 0 (off) or a count from 1 to 1000000"),
                    ))
                }
            };
        }
    }
    policy
        .validate()
        .map_err(|e| ("policy".to_owned(), e.message().to_owned()))?;
    Ok(policy)
}

fn overlap_error(value: &str) -> String {
    format!(
        "invalid value '{value}': expected skip, buffer_one, buffer_all, cancel_other, \
         terminate_other or allow_all"
    )
}

fn check_retry(r: &RawRetry) -> Result<RetryPolicy, (String, String)> {
    let err = |field: &str, msg: String| (format!("retry.{field}"), msg);
    if r.attempts < 1 || r.attempts > 1000 {
        return Err(err(
            "attempts",
            format!(
                "invalid value {}: expected 1 to 1000 (attempts in all, the first run included)",
                r.attempts
            ),
        ));
    }
    let delay = r.delay.parse().map_err(|e| err("delay", e))?;
    if delay.is_zero() {
        return Err(err("delay", "must be more than 0 (e.g. \"10s\")".into()));
    }
    let mut retry = RetryPolicy::new(r.attempts as u32, delay);
    if let Some(b) = r.backoff {
        if !b.is_finite() || b < 1.0 {
            return Err(err(
                "backoff",
                format!("invalid value {b}: expected 1.0 (a fixed delay) or more"),
            ));
        }
        retry = retry.backoff(b);
    }
    if let Some(m) = &r.max_delay {
        let max = m.parse().map_err(|e| err("max_delay", e))?;
        if max < delay {
            return Err(err("max_delay", "must be at least retry.delay".into()));
        }
        retry = retry.max_delay(max);
    }
    retry = retry.jitter(r.jitter.unwrap_or(false));
    if let Some(on) = &r.on {
        if on.is_empty() {
            return Err(err("on", "must name failure, timeout or both".into()));
        }
        let outcomes = on
            .iter()
            .map(|o| match o.as_str() {
                "failure" => Ok(RetryOn::Failure),
                "timeout" => Ok(RetryOn::Timeout),
                other => Err(err(
                    "on",
                    format!("invalid value '{other}': expected failure or timeout"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        retry = retry.on(outcomes);
    }
    if let Some(codes) = &r.exit_codes {
        if codes.is_empty() {
            return Err(err("exit_codes", "must name at least one exit code".into()));
        }
        retry = retry.exit_codes(codes.iter().copied());
    }
    Ok(retry)
}

fn check_catchup(c: &RawCatchup) -> Result<Catchup, (String, String)> {
    let window = c
        .window
        .parse()
        .map_err(|e| ("catchup.window".to_owned(), e))?;
    let mode = match c.mode.as_deref() {
        None => CatchupMode::All,
        Some(m) => m.parse().map_err(|_| {
            (
                "catchup.mode".to_owned(),
                format!("invalid value '{m}': expected all, latest or none"),
            )
        })?,
    };
    if window.is_zero() && mode != CatchupMode::None {
        return Err((
            "catchup.window".to_owned(),
            "must be more than 0 (e.g. \"3h\")".into(),
        ));
    }
    Ok(Catchup { window, mode })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(text: &str) -> RawRetry {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn retry_keys_become_a_policy() {
        let r = retry("attempts = 5\ndelay = \"10s\"\nbackoff = 2.0\nmax_delay = \"10m\"\njitter = true\non = [\"failure\"]");
        let p = check_policy(
            RawPolicy {
                retry: Some(&r),
                overlap: Some("buffer_one"),
                ..RawPolicy::default()
            },
            &RunPolicy::default(),
        )
        .unwrap();
        let got = p.retry.unwrap();
        assert_eq!(got.attempts, 5);
        assert_eq!(got.delay.as_secs(), 10);
        assert_eq!(got.max_delay.unwrap().as_secs(), 600);
        assert!(got.jitter);
        assert_eq!(got.on, [RetryOn::Failure]);
        assert_eq!(p.overlap, Overlap::BufferOne);
    }

    #[test]
    fn bad_values_name_the_field_and_value() {
        let cases = [
            ("attempts = 0\ndelay = 1", "retry.attempts", "0"),
            ("attempts = -2\ndelay = 1", "retry.attempts", "-2"),
            ("attempts = 3\ndelay = \"0s\"", "retry.delay", "more than 0"),
            ("attempts = 3\ndelay = -1", "retry.delay", "-1"),
            (
                "attempts = 3\ndelay = 1\nbackoff = 0.5",
                "retry.backoff",
                "0.5",
            ),
            (
                "attempts = 3\ndelay = 10\nmax_delay = 1",
                "retry.max_delay",
                "at least",
            ),
            (
                "attempts = 3\ndelay = 1\non = [\"crash\"]",
                "retry.on",
                "'crash'",
            ),
        ];
        for (text, field, value) in cases {
            let r = retry(text);
            let (f, msg) = check_policy(
                RawPolicy {
                    retry: Some(&r),
                    ..RawPolicy::default()
                },
                &RunPolicy::default(),
            )
            .unwrap_err();
            assert_eq!(f, field, "{text}");
            assert!(msg.contains(value), "{text}: {msg}");
        }
        let (f, msg) = check_policy(
            RawPolicy {
                overlap: Some("queue"),
                ..RawPolicy::default()
            },
            &RunPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(f, "overlap");
        assert!(
            msg.contains("'queue'") && msg.contains("buffer_all"),
            "{msg}"
        );
        let (f, _) = check_policy(
            RawPolicy {
                pause_after_failures: Some(-1),
                ..RawPolicy::default()
            },
            &RunPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(f, "pause_after_failures");
    }

    #[test]
    fn a_job_overrides_the_defaults_key_by_key() {
        let defaults = RunPolicy {
            overlap: Overlap::BufferAll,
            pause_after_failures: Some(3),
            ..RunPolicy::default()
        };
        let p = check_policy(
            RawPolicy {
                pause_after_failures: Some(0),
                ..RawPolicy::default()
            },
            &defaults,
        )
        .unwrap();
        assert_eq!(p.overlap, Overlap::BufferAll);
        assert_eq!(p.pause_after_failures, None, "0 turns the default off");
    }
}
