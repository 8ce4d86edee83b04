//! Jobs: what runs, when, and with which options.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::policy::RunPolicy;
use crate::task::Task;
use crate::time::{parse_rfc3339, to_rfc3339};
use crate::{Error, ErrorKind, Trigger, TriggerError};

/// A scheduled job (APScheduler's `Job`): an id, a task with its arguments, a trigger,
/// options, and the next run time (`None` = paused).
///
/// Cloning is cheap: the strings, arguments and trigger are shared.
#[derive(Clone)]
pub struct Job {
    /// Unique id within its job store.
    pub id: Arc<str>,
    /// Human-readable name (defaults to the task's name).
    pub name: Arc<str>,
    /// What runs.
    pub task: Task,
    /// Positional arguments.
    pub args: Arc<Vec<Value>>,
    /// Keyword arguments.
    pub kwargs: Arc<Map<String, Value>>,
    /// When it runs.
    pub trigger: Arc<dyn Trigger>,
    /// The alias of the executor that runs it.
    pub executor: Arc<str>,
    /// How late a run may start and still run; `None` = however late.
    pub misfire_grace_time: Option<Duration>,
    /// Collapse several overdue runs into one.
    pub coalesce: bool,
    /// How many runs of this job may be in flight at once.
    pub max_instances: u32,
    /// Run again a run of this job that its node's death interrupted (Quartz's
    /// `requestsRecovery`): the node that records the run `interrupted` starts one new
    /// run for the same fire time. Default `false`.
    pub recover: bool,
    /// Retries, overlap, catch-up and failure-streak rules; the default is APScheduler's
    /// behaviour ([`RunPolicy`]).
    pub policy: Arc<RunPolicy>,
    /// Why the job is paused, when the scheduler paused it (a failure streak); `None`
    /// for a job paused by hand or not paused.
    pub paused_reason: Option<Arc<str>>,
    /// The trigger as the program declared it, for a job added as a declared job
    /// (`JobSpec::declared` in the engine): the next declaration of the same trigger
    /// keeps the stored schedule instead of starting it again from its own time. `None`
    /// for other jobs, and once the job is rescheduled by other means.
    pub declaration: Option<Arc<str>>,
    /// The next scheduled run time; `None` means the job is paused.
    pub next_run_time: Option<DateTime<Tz>>,
}

/// A shared empty argument list, so jobs without arguments allocate nothing.
pub fn no_args() -> Arc<Vec<Value>> {
    static EMPTY: OnceLock<Arc<Vec<Value>>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(Vec::new())).clone()
}

/// The shared default run policy, so jobs without one allocate nothing.
pub fn default_policy() -> Arc<RunPolicy> {
    static DEFAULT: OnceLock<Arc<RunPolicy>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| Arc::new(RunPolicy::default()))
        .clone()
}

/// A shared empty keyword-argument map.
pub fn no_kwargs() -> Arc<Map<String, Value>> {
    static EMPTY: OnceLock<Arc<Map<String, Value>>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(Map::new())).clone()
}

impl Job {
    /// Whether the job is paused (has no next run time).
    pub fn is_paused(&self) -> bool {
        self.next_run_time.is_none()
    }

    /// The persisted form of this job.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] for a closure task or a trigger that cannot be
    /// persisted; the message says why.
    pub fn to_state(&self) -> Result<JobState, Error> {
        let task = match self.task.name() {
            Some(n) => n.to_owned(),
            None => {
                return Err(Error::new(
                    ErrorKind::Serialization,
                    format!(
                        "job '{}' runs a closure, which cannot be serialized: register the task \
                         by name (TaskRegistry::register) to store it or send it to a worker process",
                        self.id
                    ),
                ))
            }
        };
        let trigger = self.trigger.to_state().ok_or_else(|| {
            Error::new(
                ErrorKind::Serialization,
                format!(
                    "job '{}' has a trigger that cannot be serialized ({})",
                    self.id, self.trigger
                ),
            )
        })?;
        Ok(JobState {
            version: JobState::VERSION,
            id: self.id.to_string(),
            name: self.name.to_string(),
            task,
            args: self.args.as_ref().clone(),
            kwargs: self.kwargs.as_ref().clone(),
            trigger,
            executor: self.executor.to_string(),
            misfire_grace_time: self.misfire_grace_time.map(|d| d.as_secs_f64()),
            coalesce: self.coalesce,
            max_instances: self.max_instances,
            recover: self.recover,
            policy: self.policy.as_ref().clone(),
            paused_reason: self.paused_reason.as_deref().map(str::to_owned),
            declaration: self.declaration.as_deref().map(str::to_owned),
            next_run_time: self.next_run_time.as_ref().map(to_rfc3339),
            next_run_time_zone: self
                .next_run_time
                .as_ref()
                .map(|t| t.timezone().name().to_owned()),
        })
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("task", &self.task)
            .field("trigger", &self.trigger.to_string())
            .field("executor", &self.executor)
            .field("misfire_grace_time", &self.misfire_grace_time)
            .field("coalesce", &self.coalesce)
            .field("max_instances", &self.max_instances)
            .field("recover", &self.recover)
            .field("policy", &self.policy)
            .field("paused_reason", &self.paused_reason)
            .field("declaration", &self.declaration)
            .field("next_run_time", &self.next_run_time)
            .finish_non_exhaustive()
    }
}

/// APScheduler's `str(job)`: `name (trigger: interval[0:00:10], next run at: 2024-01-15 10:00:00 UTC)`
/// or `name (trigger: ..., paused)`.
impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.next_run_time {
            Some(t) => write!(
                f,
                "{} (trigger: {}, next run at: {})",
                self.name,
                self.trigger,
                t.format("%Y-%m-%d %H:%M:%S %Z")
            ),
            None => write!(f, "{} (trigger: {}, paused)", self.name, self.trigger),
        }
    }
}

/// The persisted form of a [`Job`]: data only, readable with a database client.
///
/// The task is a registered name, never code; the trigger is its tagged JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// Format version of this record ([`JobState::VERSION`]).
    pub version: u32,
    /// Job id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// Registered task name.
    pub task: String,
    /// Positional arguments.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    /// The trigger (tagged by `type`).
    pub trigger: Value,
    /// Executor alias.
    pub executor: String,
    /// Grace time in seconds, `None` = always run.
    pub misfire_grace_time: Option<f64>,
    /// Coalesce overdue runs.
    pub coalesce: bool,
    /// Concurrent runs allowed.
    pub max_instances: u32,
    /// Run again a run its node's death interrupted. Left out when `false`, so the
    /// records of ordinary jobs (and those written before the option existed) are
    /// unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recover: bool,
    /// Run policy. Left out when it is the default (APScheduler's behaviour), so ordinary
    /// jobs' records are unchanged.
    #[serde(default, skip_serializing_if = "RunPolicy::is_default")]
    pub policy: RunPolicy,
    /// Why the scheduler paused the job; left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// The trigger as declared, for a declared job ([`Job::declaration`]); left out
    /// when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration: Option<String>,
    /// Next run time (RFC 3339), `None` = paused.
    pub next_run_time: Option<String>,
    /// The IANA zone the next run time is shown in (the offset alone does not name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time_zone: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl JobState {
    /// The current format version.
    pub const VERSION: u32 = 1;

    /// Rebuilds the job; `decode_trigger` turns the trigger's JSON back into a trigger
    /// (job stores use `apscheduler-triggers` for that).
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] for an unknown version, a trigger that cannot be
    /// decoded or an unreadable time.
    pub fn into_job(
        self,
        decode_trigger: impl FnOnce(&Value) -> Result<Arc<dyn Trigger>, TriggerError>,
    ) -> Result<Job, Error> {
        self.check_version()?;
        let trigger = decode_trigger(&self.trigger).map_err(|e| self.unreadable(&e.to_string()))?;
        self.into_job_with_trigger(trigger)
    }

    /// The error for a stored state that cannot be read, and why.
    fn unreadable(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Serialization,
            format!("stored job '{}' cannot be read: {what}", self.id),
        )
    }

    fn check_version(&self) -> Result<(), Error> {
        if self.version == Self::VERSION {
            Ok(())
        } else {
            Err(self.unreadable(&format!("unknown format version {}", self.version)))
        }
    }

    /// As [`into_job`](JobState::into_job), with the trigger already decoded (from the
    /// state's trigger text, see [`StateCodec::decode_lazy_trigger`]); the state's own
    /// `trigger` value is not read.
    ///
    /// [`StateCodec::decode_lazy_trigger`]: crate::codec::StateCodec::decode_lazy_trigger
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] for an unknown version or an unreadable time.
    pub fn into_job_with_trigger(self, trigger: Arc<dyn Trigger>) -> Result<Job, Error> {
        self.check_version()?;
        let corrupt = |what: String| self.unreadable(&what);
        let zone = match &self.next_run_time_zone {
            Some(name) => crate::time::parse_timezone("next_run_time_zone", name)
                .map_err(|e| corrupt(e.to_string()))?,
            None => trigger.timezone(),
        };
        let next_run_time = match &self.next_run_time {
            Some(t) => {
                Some(parse_rfc3339("next_run_time", t, zone).map_err(|e| corrupt(e.to_string()))?)
            }
            None => None,
        };
        let misfire_grace_time = match self.misfire_grace_time {
            Some(s) if (0.0..1e12).contains(&s) => Some(Duration::from_secs_f64(s)),
            Some(s) => return Err(corrupt(format!("invalid misfire_grace_time {s}"))),
            None => None,
        };
        Ok(Job {
            id: self.id.as_str().into(),
            name: self.name.as_str().into(),
            task: Task::Named(self.task.as_str().into()),
            args: Arc::new(self.args),
            kwargs: Arc::new(self.kwargs),
            trigger,
            executor: self.executor.as_str().into(),
            misfire_grace_time,
            coalesce: self.coalesce,
            max_instances: self.max_instances.max(1),
            recover: self.recover,
            policy: crate::shared_policy(&self.policy),
            paused_reason: self.paused_reason.map(Arc::from),
            declaration: self.declaration.map(Arc::from),
            next_run_time,
        })
    }
}
