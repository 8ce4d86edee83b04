//! Scheduler-wide defaults and configuration (see [`SchedulerConfig`]): the types here,
//! reading them from TOML, JSON, flat maps and the environment in `sources`, building
//! a scheduler from them in `apply`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Error, ErrorKind, Executor, JobStore, RetryPolicy};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use apscheduler_core::component::{
    describe, parse_bool, parse_u64, show, ComponentConfig, ComponentKind, ComponentRegistry,
};

mod apply;
mod sources;

/// Options every job gets unless it sets its own (APScheduler's `job_defaults`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobDefaults {
    /// How late a run may start; `None` = however late. APScheduler's default: 1 s.
    pub misfire_grace_time: Option<Duration>,
    /// Collapse overdue runs into one. Default `true`.
    pub coalesce: bool,
    /// Concurrent runs per job. Default 1.
    pub max_instances: u32,
    /// Retries of a failed fire time for jobs that set none (`JobSpec::retry`). Default
    /// none, as APScheduler (which has no retries).
    pub retry: Option<RetryPolicy>,
}

impl Default for JobDefaults {
    fn default() -> Self {
        JobDefaults {
            misfire_grace_time: Some(Duration::from_secs(1)),
            coalesce: true,
            max_instances: 1,
            retry: None,
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
        Some(s) if s.is_finite() && (0.0..1e12).contains(&s) => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "invalid value for '{key}': {v}: expected seconds (a non-negative number) or null"
            ),
        )),
    }
}

// ===================================================================== configuration

/// The prefix of APScheduler's flat configuration keys (`apscheduler.timezone`).
pub const FLAT_PREFIX: &str = "apscheduler.";

/// The prefix of configuration environment variables (`APSCHEDULER_TIMEZONE`).
pub const ENV_PREFIX: &str = "APSCHEDULER_";

/// The separator between levels in environment variable names
/// (`APSCHEDULER_JOB_DEFAULTS__COALESCE`).
pub const ENV_SEPARATOR: &str = "__";

/// Job defaults as a configuration gives them: each one optional.
///
/// Options left out keep APScheduler's defaults (see [`JobDefaults`]) when a scheduler is
/// built, and keep their current value with [`Engine::configure_with`](crate::Engine::configure_with).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JobDefaultsConfig {
    /// `coalesce`.
    pub coalesce: Option<bool>,
    /// `max_instances` (at least 1).
    pub max_instances: Option<u32>,
    /// `misfire_grace_time`: `Some(None)` = run however late (`"none"` or JSON null),
    /// `Some(Some(d))` = at most `d` late, `None` = not given.
    pub misfire_grace_time: Option<Option<Duration>>,
    /// `retry`: `Some(None)` = no retries, `Some(Some(p))` = retry with `p`, `None` =
    /// not given.
    pub retry: Option<Option<RetryPolicy>>,
}

impl JobDefaultsConfig {
    /// Nothing given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no job default is given.
    pub fn is_empty(&self) -> bool {
        self.coalesce.is_none()
            && self.max_instances.is_none()
            && self.misfire_grace_time.is_none()
            && self.retry.is_none()
    }

    /// `base` with the options given here applied.
    pub fn apply_to(&self, base: JobDefaults) -> JobDefaults {
        JobDefaults {
            misfire_grace_time: self.misfire_grace_time.unwrap_or(base.misfire_grace_time),
            coalesce: self.coalesce.unwrap_or(base.coalesce),
            max_instances: self.max_instances.unwrap_or(base.max_instances),
            retry: self.retry.clone().unwrap_or(base.retry),
        }
    }

    /// The options of `other` that are given replace those here.
    pub fn merge(&mut self, other: JobDefaultsConfig) {
        if other.coalesce.is_some() {
            self.coalesce = other.coalesce;
        }
        if other.max_instances.is_some() {
            self.max_instances = other.max_instances;
        }
        if other.misfire_grace_time.is_some() {
            self.misfire_grace_time = other.misfire_grace_time;
        }
        if other.retry.is_some() {
            self.retry = other.retry;
        }
    }
}

impl From<JobDefaults> for JobDefaultsConfig {
    /// Every option given.
    fn from(d: JobDefaults) -> Self {
        JobDefaultsConfig {
            coalesce: Some(d.coalesce),
            max_instances: Some(d.max_instances),
            misfire_grace_time: Some(d.misfire_grace_time),
            retry: Some(d.retry),
        }
    }
}

/// A whole scheduler configuration: APScheduler's `timezone`, `job_defaults`,
/// `jobstores` and `executors`.
///
/// APScheduler configures a scheduler in three equivalent ways; all three exist here:
///
/// 1. builder arguments: [`Engine::builder`]`().jobstore(..).executor(..).job_defaults(..).timezone(..)`;
/// 2. one configuration map, a [`SchedulerConfig`] read from TOML
///    ([`SchedulerConfig::from_toml_str`]), JSON ([`SchedulerConfig::from_json_str`]),
///    APScheduler's flat dictionary with the hard-coded `apscheduler.` prefix
///    ([`SchedulerConfig::from_flat`]) or environment variables
///    ([`SchedulerConfig::from_env`]), then [`EngineBuilder::config`] or
///    [`Engine::from_config`];
/// 3. [`Engine::configure_with`] on a scheduler that is not started yet.
///
/// Job stores and executors are named by a `type` alias (`memory`, `threadpool`, ...) or
/// by APScheduler's `class` string, and built by the [`ComponentRegistry`].
///
/// # The nested form (TOML, JSON)
/// ```toml
/// timezone = "UTC"              # an IANA name; omitted: the machine's zone
///
/// [job_defaults]
/// coalesce = false              # booleans also as "true"/"false", "yes"/"no", "on"/"off", "1"/"0"
/// max_instances = 3             # at least 1
/// misfire_grace_time = 30       # seconds (fractions allowed); omitted: 1 s;
///                               # "none" (or JSON null): run however late
///
/// [jobstores.default]
/// type = "memory"
///
/// [executors.default]
/// type = "threadpool"           # or class = "apscheduler.executors.pool:ThreadPoolExecutor"
/// max_workers = 20              # every other key is an option of the component
/// ```
///
/// # The flat form (APScheduler's configuration dictionary)
/// Keys start with `apscheduler.` and name the nested path with dots:
/// `apscheduler.timezone`, `apscheduler.job_defaults.coalesce`,
/// `apscheduler.jobstores.sql` (a table) or `apscheduler.jobstores.sql.url` (one option).
/// Values may be strings (`"false"`, `"20"`). As in APScheduler, keys without the prefix
/// are ignored by [`SchedulerConfig::from_flat`] (they belong to the rest of an
/// application's configuration).
///
/// # Environment variables
/// `APSCHEDULER_` followed by the nested path, with **double underscores** between
/// levels; names are case-insensitive (lower-cased), so single underscores stay part of
/// a name:
///
/// | variable | key |
/// |---|---|
/// | `APSCHEDULER_TIMEZONE=UTC` | `timezone` |
/// | `APSCHEDULER_JOB_DEFAULTS__COALESCE=false` | `job_defaults.coalesce` |
/// | `APSCHEDULER_JOB_DEFAULTS__MISFIRE_GRACE_TIME=none` | `job_defaults.misfire_grace_time` |
/// | `APSCHEDULER_JOBSTORES__SQL__TYPE=sqlalchemy` | `jobstores.sql.type` |
/// | `APSCHEDULER_JOBSTORES__SQL__URL=sqlite:///jobs.sqlite` | `jobstores.sql.url` |
/// | `APSCHEDULER_EXECUTORS__DEFAULT__MAX_WORKERS=20` | `executors.default.max_workers` |
///
/// Aliases therefore are lower case and contain no `__`. Every `APSCHEDULER_` variable
/// must map to a known key.
///
/// # Values and errors
/// Option values of components are kept as text when they are scalars, so `20` and
/// `"20"` are the same configuration; factories read them with the typed getters of
/// [`ConfigTable`]. Every error is an [`Error`] of kind `InvalidInput` (or `NotFound`
/// for a component type that is not part of this build) whose message names the field
/// and the value.
///
/// [`Engine::builder`]: crate::Engine::builder
/// [`Engine::from_config`]: crate::Engine::from_config
/// [`Engine::configure_with`]: crate::Engine::configure_with
/// [`EngineBuilder::config`]: crate::EngineBuilder::config
/// [`ComponentRegistry`]: crate::ComponentRegistry
/// [`ConfigTable`]: crate::ConfigTable
///
/// # Example
/// ```
/// use apscheduler_engine::SchedulerConfig;
///
/// let from_toml = SchedulerConfig::from_toml_str(r#"
///     timezone = "UTC"
///     [job_defaults]
///     coalesce = false
///     max_instances = 3
///     [executors.default]
///     type = "threadpool"
///     max_workers = 20
/// "#).unwrap();
/// let from_flat = SchedulerConfig::from_flat([
///     ("apscheduler.executors.default", serde_json::json!({
///         "class": "apscheduler.executors.pool:ThreadPoolExecutor", "max_workers": "20"})),
///     ("apscheduler.job_defaults.coalesce", "false".into()),
///     ("apscheduler.job_defaults.max_instances", "3".into()),
///     ("apscheduler.timezone", "UTC".into()),
/// ]).unwrap();
/// assert_eq!(from_toml, from_flat);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// The default timezone of triggers; `None` = not given (the machine's zone for a
    /// new scheduler).
    pub timezone: Option<Tz>,
    /// Job defaults given.
    pub job_defaults: JobDefaultsConfig,
    /// Job stores by alias.
    pub jobstores: BTreeMap<String, ComponentConfig>,
    /// Executors by alias.
    pub executors: BTreeMap<String, ComponentConfig>,
}

/// How the fields of a source are named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Naming {
    /// `job_defaults.coalesce`
    Nested,
    /// `apscheduler.job_defaults.coalesce`
    Flat,
    /// `APSCHEDULER_JOB_DEFAULTS__COALESCE`
    Env,
}

impl Naming {
    pub(super) fn name(self, path: &[&str]) -> String {
        match self {
            Naming::Nested => path.join("."),
            Naming::Flat => format!("{FLAT_PREFIX}{}", path.join(".")),
            Naming::Env => format!("{ENV_PREFIX}{}", path.join(ENV_SEPARATOR).to_uppercase()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SchedulerConfig {
    /// Deserializes the nested form (or flat `apscheduler.` keys), so a
    /// `SchedulerConfig` can be a field of an application's own configuration.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        SchedulerConfig::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for SchedulerConfig {
    type Err = Error;
    /// Parses TOML ([`SchedulerConfig::from_toml_str`]).
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_toml_str(s)
    }
}
