//! Run policies: what happens around a job's runs beyond APScheduler's
//! `misfire_grace_time`, `coalesce` and `max_instances`.
//!
//! - [`RetryPolicy`]: run a failed fire time again, after a fixed or growing delay.
//! - [`Overlap`]: what a fire time does while a run of the same job is in flight.
//! - [`Catchup`]: how far back fire times missed during downtime still run.
//! - failure streaks: pause a job after N consecutive failed fire times, notify after N.
//!
//! A [`RunPolicy`] travels with its [`Job`](crate::Job) and is stored with it, so every
//! scheduler sharing a store applies the same policy. The default policy is
//! APScheduler's behaviour: no retries, `skip` at `max_instances`, no catch-up beyond the
//! misfire grace time, no streak rules. A job with the default policy stores nothing
//! extra.
//!
//! ```
//! use std::time::Duration;
//! use apscheduler_core::policy::{Overlap, RetryPolicy, RunPolicy};
//!
//! let retry = RetryPolicy::new(5, Duration::from_secs(10))
//!     .backoff(2.0)
//!     .max_delay(Duration::from_secs(600));
//! // The delay before attempt 2 is 10 s, before attempt 3 20 s, and so on, capped at 10 min.
//! assert_eq!(retry.delay_before(3, None), Duration::from_secs(20));
//! assert_eq!(retry.delay_before(9, None), Duration::from_secs(600));
//! let policy = RunPolicy { retry: Some(retry), overlap: Overlap::BufferOne, ..RunPolicy::default() };
//! assert!(policy.validate().is_ok());
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind};

/// Everything a job carries beyond APScheduler's options. `Default` is APScheduler's
/// behaviour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunPolicy {
    /// Run a failed fire time again. `None`: a failure is final.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// What a fire time does while a run of its job is in flight.
    #[serde(skip_serializing_if = "Overlap::is_skip")]
    pub overlap: Overlap,
    /// How far back fire times missed while no scheduler ran are still run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catchup: Option<Catchup>,
    /// Pause the job after this many consecutive failed fire times (a fire time fails
    /// when its last attempt fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_after_failures: Option<u32>,
    /// Send a "failing" notification after this many consecutive failed fire times, and
    /// a "recovered" notification at the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_after_failures: Option<u32>,
}

impl RunPolicy {
    /// Whether this is the default policy (APScheduler's behaviour).
    pub fn is_default(&self) -> bool {
        *self == RunPolicy::default()
    }

    /// Checks every part; the error names the field and the value.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`].
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        if let Some(catchup) = &self.catchup {
            catchup.validate()?;
        }
        for (field, n) in [
            ("pause_after_failures", self.pause_after_failures),
            ("notify_after_failures", self.notify_after_failures),
        ] {
            if n == Some(0) {
                return Err(invalid(field, "0", "expected 1 or more"));
            }
        }
        Ok(())
    }
}

fn invalid(field: &str, value: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid value for field '{field}': '{value}': {why}"),
    )
}

/// Which outcomes of an attempt are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryOn {
    /// The task returned an error or panicked; a command exited non-zero or was killed.
    Failure,
    /// The run exceeded its time-out.
    Timeout,
}

impl RetryOn {
    /// `failure` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryOn::Failure => "failure",
            RetryOn::Timeout => "timeout",
        }
    }
}

impl FromStr for RetryOn {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "failure" => Ok(RetryOn::Failure),
            "timeout" => Ok(RetryOn::Timeout),
            other => Err(invalid("retry.on", other, "expected failure or timeout")),
        }
    }
}

/// Retries of a failed fire time: each attempt is its own run, recorded with its attempt
/// number (1 for the first run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first run included (2 or more to retry at all).
    pub attempts: u32,
    /// The delay before the second attempt.
    #[serde(with = "secs")]
    pub delay: Duration,
    /// Each later delay is the previous one times this (1.0: a fixed delay).
    #[serde(default = "one")]
    pub backoff: f64,
    /// The longest delay; `None`: no cap.
    #[serde(default, with = "opt_secs", skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Duration>,
    /// Full jitter: each delay is drawn uniformly between 0 and the computed delay.
    #[serde(default)]
    pub jitter: bool,
    /// Which outcomes retry.
    #[serde(default = "default_on")]
    pub on: Vec<RetryOn>,
    /// For command jobs: retry a failure only for these exit codes. `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_codes: Option<Vec<i32>>,
}

fn one() -> f64 {
    1.0
}

fn default_on() -> Vec<RetryOn> {
    vec![RetryOn::Failure, RetryOn::Timeout]
}

impl RetryPolicy {
    /// `attempts` in all with a fixed `delay`, retrying failures and time-outs.
    pub fn new(attempts: u32, delay: Duration) -> Self {
        RetryPolicy {
            attempts,
            delay,
            backoff: 1.0,
            max_delay: None,
            jitter: false,
            on: default_on(),
            exit_codes: None,
        }
    }

    /// Multiplies each delay by `factor` (exponential backoff).
    #[must_use]
    pub fn backoff(mut self, factor: f64) -> Self {
        self.backoff = factor;
        self
    }

    /// Caps every delay at `max`.
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = Some(max);
        self
    }

    /// Draws each delay uniformly between zero and the computed delay (full jitter).
    #[must_use]
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// Retries only these outcomes.
    #[must_use]
    pub fn on(mut self, outcomes: impl IntoIterator<Item = RetryOn>) -> Self {
        self.on = outcomes.into_iter().collect();
        self
    }

    /// For command jobs: retries a failure only for these exit codes.
    #[must_use]
    pub fn exit_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.exit_codes = Some(codes.into_iter().collect());
        self
    }

    /// Checks the policy; the error names the field (`retry.attempts`, ...) and value.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.attempts == 0 {
            return Err(invalid("retry.attempts", "0", "expected 1 or more"));
        }
        if self.delay.is_zero() {
            return Err(invalid("retry.delay", "0s", "expected a positive delay"));
        }
        if !self.backoff.is_finite() || self.backoff < 1.0 {
            return Err(invalid(
                "retry.backoff",
                &self.backoff.to_string(),
                "expected 1.0 (a fixed delay) or more",
            ));
        }
        if let Some(max) = self.max_delay {
            if max < self.delay {
                return Err(invalid(
                    "retry.max_delay",
                    &humantime::format_duration(max).to_string(),
                    "expected at least retry.delay",
                ));
            }
        }
        if self.on.is_empty() {
            return Err(invalid(
                "retry.on",
                "[]",
                "expected failure, timeout or both",
            ));
        }
        Ok(())
    }

    /// The delay before `attempt` (2 for the first retry), without jitter when `unit`
    /// is `None`; with jitter, `unit` (uniform in `[0, 1)`) scales the computed delay.
    pub fn delay_before(&self, attempt: u32, unit: Option<f64>) -> Duration {
        let retries_before = attempt.saturating_sub(2);
        let factor = self
            .backoff
            .powi(i32::try_from(retries_before).unwrap_or(i32::MAX));
        let secs = self.delay.as_secs_f64() * factor;
        let cap = self.max_delay.map_or(f64::MAX, |d| d.as_secs_f64());
        let secs = secs.min(cap).min(u32::MAX as f64);
        let secs = match (self.jitter, unit) {
            (true, Some(u)) => secs * u.clamp(0.0, 1.0),
            _ => secs,
        };
        Duration::from_secs_f64(secs)
    }

    /// Whether an attempt that ended with `outcome` (and, for commands, `exit_code`)
    /// gets another attempt after `attempt`.
    pub fn retries(&self, attempt: u32, outcome: RetryOn, exit_code: Option<i32>) -> bool {
        if attempt >= self.attempts || !self.on.contains(&outcome) {
            return false;
        }
        match (outcome, &self.exit_codes, exit_code) {
            (RetryOn::Failure, Some(codes), Some(code)) => codes.contains(&code),
            _ => true,
        }
    }
}

/// What a fire time does while a run of the same job is in flight (on this node or, with
/// a run history, on any node sharing the store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip the fire time when `max_instances` runs are in flight (APScheduler's
    /// behaviour, the default).
    #[default]
    Skip,
    /// Run once the current run ends; at most one fire time waits, later ones are
    /// skipped.
    BufferOne,
    /// Queue every fire time and run them in order, one at a time.
    BufferAll,
    /// Ask the running run to stop (cooperative cancellation for library tasks; SIGTERM,
    /// then SIGKILL after the grace, for commands), then run.
    CancelOther,
    /// Kill the running run at once, then run.
    TerminateOther,
    /// No limit: `max_instances` is not applied.
    AllowAll,
}

impl Overlap {
    /// Every policy, in documentation order.
    pub const ALL: [Overlap; 6] = [
        Overlap::Skip,
        Overlap::BufferOne,
        Overlap::BufferAll,
        Overlap::CancelOther,
        Overlap::TerminateOther,
        Overlap::AllowAll,
    ];

    /// The configuration name (`buffer_one`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::BufferOne => "buffer_one",
            Overlap::BufferAll => "buffer_all",
            Overlap::CancelOther => "cancel_other",
            Overlap::TerminateOther => "terminate_other",
            Overlap::AllowAll => "allow_all",
        }
    }

    /// Whether this is [`Overlap::Skip`].
    pub fn is_skip(&self) -> bool {
        *self == Overlap::Skip
    }
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Overlap {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Overlap::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                invalid(
                    "overlap",
                    s,
                    "expected skip, buffer_one, buffer_all, cancel_other, terminate_other or allow_all",
                )
            })
    }
}

/// Which missed fire times inside the catch-up window run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchupMode {
    /// Every missed fire time, in order.
    All,
    /// Only the latest one.
    Latest,
    /// None (the misfire grace time alone decides).
    None,
}

impl CatchupMode {
    /// `all`, `latest` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchupMode::All => "all",
            CatchupMode::Latest => "latest",
            CatchupMode::None => "none",
        }
    }
}

impl FromStr for CatchupMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "all" => Ok(CatchupMode::All),
            "latest" => Ok(CatchupMode::Latest),
            "none" => Ok(CatchupMode::None),
            other => Err(invalid(
                "catchup.mode",
                other,
                "expected all, latest or none",
            )),
        }
    }
}

/// How far back fire times missed while no scheduler ran (downtime) are still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catchup {
    /// Fire times older than this (at the time they are found) are recorded missed.
    #[serde(with = "secs")]
    pub window: Duration,
    /// Which of the fire times inside the window run.
    pub mode: CatchupMode,
}

impl Catchup {
    /// Checks the window; the error names the field.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.window.is_zero() && self.mode != CatchupMode::None {
            return Err(invalid(
                "catchup.window",
                "0s",
                "expected a positive window",
            ));
        }
        Ok(())
    }
}

/// Durations as seconds (a float) in stored jobs.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_cap_and_jitter() {
        let p = RetryPolicy::new(5, Duration::from_secs(10))
            .backoff(2.0)
            .max_delay(Duration::from_secs(30));
        let d: Vec<u64> = (2..=5).map(|a| p.delay_before(a, None).as_secs()).collect();
        assert_eq!(d, [10, 20, 30, 30]);
        let j = p.clone().jitter(true);
        assert_eq!(j.delay_before(3, Some(0.5)), Duration::from_secs(10));
        assert_eq!(
            RetryPolicy::new(3, Duration::from_secs(7))
                .delay_before(3, None)
                .as_secs(),
            7
        );
    }

    #[test]
    fn which_outcomes_retry() {
        let p = RetryPolicy::new(3, Duration::from_secs(1))
            .on([RetryOn::Failure])
            .exit_codes([75]);
        assert!(p.retries(1, RetryOn::Failure, Some(75)));
        assert!(!p.retries(1, RetryOn::Failure, Some(1)));
        assert!(p.retries(2, RetryOn::Failure, None));
        assert!(
            !p.retries(3, RetryOn::Failure, Some(75)),
            "the last attempt is final"
        );
        assert!(!p.retries(1, RetryOn::Timeout, None));
    }

    #[test]
    fn bad_policies_name_the_field() {
        let bad = [
            (
                RetryPolicy::new(0, Duration::from_secs(1)),
                "retry.attempts",
            ),
            (RetryPolicy::new(2, Duration::ZERO), "retry.delay"),
            (
                RetryPolicy::new(2, Duration::from_secs(1)).backoff(0.5),
                "retry.backoff",
            ),
            (
                RetryPolicy::new(2, Duration::from_secs(9)).max_delay(Duration::from_secs(1)),
                "retry.max_delay",
            ),
            (
                RetryPolicy::new(2, Duration::from_secs(1)).on([]),
                "retry.on",
            ),
        ];
        for (p, field) in bad {
            let err = p.validate().unwrap_err();
            assert!(err.message().contains(field), "{err}");
        }
        assert!("buffer"
            .parse::<Overlap>()
            .unwrap_err()
            .message()
            .contains("'buffer'"));
        let p = RunPolicy {
            pause_after_failures: Some(0),
            ..RunPolicy::default()
        };
        assert!(p
            .validate()
            .unwrap_err()
            .message()
            .contains("pause_after_failures"));
    }

    #[test]
    fn the_default_policy_serializes_to_nothing_and_others_round_trip() {
        assert_eq!(serde_json::to_string(&RunPolicy::default()).unwrap(), "{}");
        let p = RunPolicy {
            retry: Some(
                RetryPolicy::new(5, Duration::from_millis(1500))
                    .backoff(2.0)
                    .jitter(true),
            ),
            overlap: Overlap::BufferAll,
            catchup: Some(Catchup {
                window: Duration::from_secs(3600),
                mode: CatchupMode::All,
            }),
            pause_after_failures: Some(3),
            notify_after_failures: Some(2),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<RunPolicy>(&text).unwrap(), p);
        for o in Overlap::ALL {
            assert_eq!(o.as_str().parse::<Overlap>().unwrap(), o);
        }
    }
}
