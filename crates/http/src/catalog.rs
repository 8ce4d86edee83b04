//! What jobs are to the API: how one reads in a listing, and how a request body becomes
//! a new job or a change. The daemon's jobs are shell commands and HTTP requests
//! described by a `[[jobs]]` table; a library's are registered tasks. Each host hands
//! the router its [`JobCatalog`]; [`TaskCatalog`] serves jobs of registered tasks.

use std::fmt;
use std::time::Duration;

use apscheduler_core::Job;
use apscheduler_engine::{JobChanges, JobSpec};
use apscheduler_triggers::NamedCalendar;
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ApiError;

/// How a job reads in a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobDescription {
    /// The trigger in words.
    pub trigger: String,
    /// What it runs, in one line.
    pub action: Option<String>,
    /// Where it came from (`config`, `cli`, `api`, ...).
    pub origin: Option<String>,
    /// The name of its exclusion calendar, when it has one.
    pub calendar: Option<String>,
    /// What its calendar does to an excluded fire time (`skip`, `next_allowed`).
    pub calendar_action: Option<String>,
}

impl JobDescription {
    /// `calendar` and `calendar_action` read from the job's trigger
    /// ([`trigger_calendar`](apscheduler_engine::trigger_calendar)), for a catalog that
    /// keeps no calendar of its own.
    pub fn with_trigger_calendar(mut self, job: &Job) -> Self {
        if let Some(excluding) = apscheduler_engine::trigger_calendar(&*job.trigger) {
            self.calendar = Some(excluding.calendar().name.clone());
            self.calendar_action = Some(excluding.action().to_string());
        }
        self
    }
}

/// What a `PATCH /api/jobs/{id}` does to the job.
#[derive(Debug)]
pub enum JobUpdate {
    /// Change these options (`modify_job`).
    Changes(JobChanges),
    /// Replace the job with this one (same id; a paused job stays paused).
    Replace(JobSpec),
}

/// Turns jobs into their listing and request bodies into jobs (see the module docs).
pub trait JobCatalog: Send + Sync + fmt::Debug + 'static {
    /// How `job` reads in a listing.
    fn describe(&self, job: &Job) -> JobDescription;

    /// `job`'s definition as its maker stored it, shown on its page (`GET
    /// /api/jobs/{id}`) and never in listings (default: none).
    fn definition(&self, _job: &Job) -> Option<Value> {
        None
    }

    /// The job a `POST /api/jobs` body describes (`tz`: the scheduler's timezone).
    ///
    /// # Errors
    /// 400 naming the field and the value.
    fn new_job(&self, body: &Value, tz: Tz) -> Result<JobSpec, ApiError>;

    /// What a `PATCH /api/jobs/{id}` body does to `job`.
    ///
    /// # Errors
    /// 400 naming the field and the value.
    fn change_job(&self, job: &Job, body: &Value, tz: Tz) -> Result<JobUpdate, ApiError>;

    /// The OpenAPI schemas of those bodies: `(new job, job change)`.
    fn schemas(&self) -> (RefOr<Schema>, RefOr<Schema>);

    /// The named schemas that those of [`schemas`](Self::schemas) refer to
    /// (`#/components/schemas/NAME`), put into the document beside them; for a
    /// [`ToSchema`] type, what its [`ToSchema::schemas`] collects (default: none).
    fn referenced_schemas(&self) -> Vec<(String, RefOr<Schema>)> {
        Vec::new()
    }

    /// Whether `job` may be resumed (`POST /api/jobs/{id}/resume`), for a job whose
    /// pause is how it is kept from running by its schedule (default: any job may).
    ///
    /// # Errors
    /// The answer to give instead: for the daemon's jobs that run only at its start,
    /// 409 `invalid_state` naming the job and why.
    fn check_resume(&self, _job: &Job) -> Result<(), ApiError> {
        Ok(())
    }

    /// The exclusion calendars that new jobs and changes may name in their
    /// `calendar` field, listed by `GET /api/calendars` (default: none).
    fn calendars(&self) -> Vec<NamedCalendar> {
        Vec::new()
    }
}

/// A body read as `T`, with serde's error naming the field it is about.
///
/// # Errors
/// 400 `invalid_input` with the field's path.
pub fn read_body<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let message = format!("{}: {}", path, e.inner());
        if path == "." {
            ApiError::invalid("body", e.inner().to_string())
        } else {
            ApiError::invalid(path, message)
        }
    })
}

/// The body of `POST /api/jobs` for [`TaskCatalog`]: a job of a registered task.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskJobInput {
    /// The job's id (generated when left out).
    pub id: Option<String>,
    /// Its name (default: the task's name).
    pub name: Option<String>,
    /// The registered task it runs.
    pub func: String,
    /// The trigger kind: `date`, `interval`, `cron`, `calendarinterval`.
    pub trigger: String,
    /// The trigger's arguments, as APScheduler's keywords (`{"minute": "*/5"}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub trigger_args: Map<String, Value>,
    /// Positional arguments.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Value>,
    /// The executor alias.
    pub executor: Option<String>,
    /// Seconds a run may start late; null: however late.
    #[serde(default, deserialize_with = "some_grace")]
    pub misfire_grace_time: Option<Option<f64>>,
    /// Collapse overdue runs into one.
    pub coalesce: Option<bool>,
    /// Runs allowed at once (at least 1).
    pub max_instances: Option<u32>,
    /// Run again a run its node's death interrupted.
    #[serde(default)]
    pub recover: bool,
    /// Replace a job with the same id instead of answering 409.
    #[serde(default)]
    pub replace_existing: bool,
}

/// `misfire_grace_time`: absent (the default), null (however late) or seconds.
fn some_grace<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// The body of `PATCH /api/jobs/{id}` for [`TaskCatalog`]: the options to change
/// (those of `modify_job`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskJobChanges {
    /// New name.
    pub name: Option<String>,
    /// New positional arguments.
    #[schema(value_type = Option<Vec<Object>>)]
    pub args: Option<Vec<Value>>,
    /// New keyword arguments.
    #[schema(value_type = Option<Object>)]
    pub kwargs: Option<Map<String, Value>>,
    /// New executor alias.
    pub executor: Option<String>,
    /// Seconds a run may start late; null: however late.
    #[serde(default, deserialize_with = "some_grace")]
    pub misfire_grace_time: Option<Option<f64>>,
    /// Collapse overdue runs into one.
    pub coalesce: Option<bool>,
    /// Runs allowed at once (at least 1).
    pub max_instances: Option<u32>,
    /// Run again a run its node's death interrupted.
    pub recover: Option<bool>,
}

fn grace(field: &str, seconds: Option<f64>) -> Result<Option<Duration>, ApiError> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                ApiError::invalid(
                    field,
                    format!("invalid value for '{field}': {s}: expected seconds, 0 or more"),
                )
            })
        })
        .transpose()
}

fn max_instances(n: Option<u32>) -> Result<Option<u32>, ApiError> {
    match n {
        Some(0) => Err(ApiError::invalid(
            "max_instances",
            "invalid value for 'max_instances': 0: expected 1 or more",
        )),
        n => Ok(n),
    }
}

/// The catalog of jobs that run registered tasks (a library's): a body names the task,
/// the trigger and its arguments, and the job options (see [`TaskJobInput`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskCatalog;

impl JobCatalog for TaskCatalog {
    fn describe(&self, job: &Job) -> JobDescription {
        JobDescription {
            trigger: job.trigger.to_string(),
            action: Some(job.task.to_string()),
            origin: None,
            ..JobDescription::default()
        }
        .with_trigger_calendar(job)
    }

    fn new_job(&self, body: &Value, _tz: Tz) -> Result<JobSpec, ApiError> {
        let input: TaskJobInput = read_body(body)?;
        let mut spec = JobSpec::task(input.func)
            .trigger_args(input.trigger, Value::Object(input.trigger_args))
            .args(input.args)
            .kwargs(input.kwargs)
            .recover(input.recover)
            .replace_existing(input.replace_existing);
        if let Some(id) = input.id {
            spec = spec.id(id);
        }
        if let Some(name) = input.name {
            spec = spec.name(name);
        }
        if let Some(executor) = input.executor {
            spec = spec.executor(executor);
        }
        if let Some(g) = input.misfire_grace_time {
            spec = spec.misfire_grace_time(grace("misfire_grace_time", g)?);
        }
        if let Some(c) = input.coalesce {
            spec = spec.coalesce(c);
        }
        if let Some(n) = max_instances(input.max_instances)? {
            spec = spec.max_instances(n);
        }
        Ok(spec)
    }

    fn change_job(&self, _job: &Job, body: &Value, _tz: Tz) -> Result<JobUpdate, ApiError> {
        let input: TaskJobChanges = read_body(body)?;
        let mut changes = JobChanges::new();
        if let Some(name) = input.name {
            changes = changes.name(name);
        }
        if let Some(args) = input.args {
            changes = changes.args(args);
        }
        if let Some(kwargs) = input.kwargs {
            changes = changes.kwargs(kwargs);
        }
        if let Some(executor) = input.executor {
            changes = changes.executor(executor);
        }
        if let Some(g) = input.misfire_grace_time {
            changes = changes.misfire_grace_time(grace("misfire_grace_time", g)?);
        }
        if let Some(c) = input.coalesce {
            changes = changes.coalesce(c);
        }
        if let Some(n) = max_instances(input.max_instances)? {
            changes = changes.max_instances(n);
        }
        if let Some(r) = input.recover {
            changes = changes.recover(r);
        }
        Ok(JobUpdate::Changes(changes))
    }

    fn schemas(&self) -> (RefOr<Schema>, RefOr<Schema>) {
        (TaskJobInput::schema(), TaskJobChanges::schema())
    }

    fn referenced_schemas(&self) -> Vec<(String, RefOr<Schema>)> {
        let mut schemas = Vec::new();
        TaskJobInput::schemas(&mut schemas);
        TaskJobChanges::schemas(&mut schemas);
        schemas
    }
}
