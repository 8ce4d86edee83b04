//! The JSON shapes the API answers with. Field names are those of `aps jobs list
//! --json`, `aps history --json` and `aps nodes --json`, so a script reads either.

use apscheduler_core::{Job, NodeInfo, RunRecord};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use apscheduler_triggers::NamedCalendar;

use crate::catalog::JobDescription;

/// RFC 3339 in UTC with microseconds, as the CLI prints history times.
pub(crate) fn utc_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A job in a listing (`GET /api/jobs`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The trigger in words (`cron[minute='*/5']`, or as the daemon's config wrote it).
    pub trigger: String,
    /// The next fire time that will run (RFC 3339, in the trigger's timezone), with
    /// the job's exclusion calendar applied; null when paused or when none will.
    pub next_run_time: Option<String>,
    /// Whether the job is paused.
    pub paused: bool,
    /// Why the scheduler paused it (`pause_after_failures`); null when it runs or was
    /// paused by hand.
    pub paused_reason: Option<String>,
    /// Whether a run its node's death interrupted is run again.
    pub recover: bool,
    /// What it runs, in one line (`sh: echo hi`, `GET https://...`, a task name).
    pub action: Option<String>,
    /// Where it came from (`config`, `cli`, `api`), when known.
    pub origin: Option<String>,
    /// The outcome of its newest run in the history.
    pub last_outcome: Option<String>,
    /// The fire time of its newest run (RFC 3339, UTC).
    pub last_run_at: Option<String>,
    /// The name of its exclusion calendar; null when it has none.
    pub calendar: Option<String>,
    /// What an excluded fire time becomes: `skip` or `next_allowed`; null without a
    /// calendar.
    pub calendar_action: Option<String>,
    /// Its run policy (`retry`, `overlap`, `catchup`, failure streaks; durations in
    /// seconds); null for the default (APScheduler's behaviour).
    #[schema(value_type = Option<Object>)]
    pub policy: Option<Value>,
}

impl JobView {
    /// The view of `job`, described by `description`, with its newest run `last`.
    pub fn new(job: &Job, description: JobDescription, last: Option<&RunRecord>) -> Self {
        JobView {
            id: job.id.to_string(),
            name: job.name.to_string(),
            trigger: description.trigger,
            next_run_time: apscheduler_engine::next_allowed_run_time(job)
                .as_ref()
                .map(apscheduler_core::time::to_rfc3339),
            paused: job.is_paused(),
            // Only while paused: a job scheduled again by a change other than a resume
            // may still carry it.
            paused_reason: job
                .paused_reason
                .as_deref()
                .filter(|_| job.is_paused())
                .map(str::to_owned),
            recover: job.recover,
            action: description.action,
            origin: description.origin,
            last_outcome: last.map(|r| r.outcome.to_string()),
            last_run_at: last.map(|r| utc_text(&r.scheduled_at)),
            calendar: description.calendar,
            calendar_action: description.calendar_action,
            policy: (!job.policy.is_default())
                .then(|| serde_json::to_value(&*job.policy).ok())
                .flatten(),
        }
    }
}

/// An exclusion calendar the host defines (`GET /api/calendars`), which jobs name in
/// their `calendar` field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CalendarView {
    /// The calendar's name.
    pub name: String,
    /// Its rules in words (dates, weekdays, windows, zone, union and except members).
    pub rules: String,
}

impl From<&NamedCalendar> for CalendarView {
    fn from(calendar: &NamedCalendar) -> Self {
        CalendarView {
            name: calendar.name.clone(),
            rules: calendar.calendar.to_string(),
        }
    }
}

/// One job with its options, definition and recent runs (`GET /api/jobs/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobDetail {
    /// The listing's fields.
    #[serde(flatten)]
    pub job: JobView,
    /// The executor alias.
    pub executor: String,
    /// Seconds a run may start late; null: however late.
    pub misfire_grace_time: Option<f64>,
    /// Whether overdue runs collapse into one.
    pub coalesce: bool,
    /// Runs allowed at once.
    pub max_instances: u32,
    /// Its exclusion calendar's rules in words; null when it has none.
    pub calendar_rules: Option<String>,
    /// Its failed fire times in a row since its last success (or its last pause by
    /// `pause_after_failures`), read from the recent runs.
    pub failure_streak: u32,
    /// The job's definition as its maker stored it (the daemon's `[[jobs]]` table,
    /// normalised), when there is one.
    #[schema(value_type = Option<Object>)]
    pub definition: Option<Value>,
    /// The newest runs, newest first.
    pub recent_runs: Vec<RunView>,
}

/// A run record (`GET /api/history`), as `aps history --json` prints it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    /// The run's id.
    pub run_id: String,
    /// Its job.
    pub job_id: String,
    /// The fire time it ran for (RFC 3339, UTC).
    pub scheduled_at: String,
    /// When it started; null when it never did (missed).
    pub started_at: Option<String>,
    /// When it ended; null while running.
    pub finished_at: Option<String>,
    /// `running`, `success`, `failure`, `timeout`, `missed`, `interrupted` or `error`.
    pub outcome: String,
    /// The command's exit code, when there is one.
    pub exit_code: Option<i32>,
    /// The HTTP job's response status, when there is one.
    pub http_status: Option<u16>,
    /// The last bytes of its output.
    pub output: String,
    /// Why it failed, was missed or skipped; who ran it by hand.
    pub message: Option<String>,
    /// The node (scheduler) that ran it.
    pub node: String,
    /// Which attempt at its fire time this run is: 1 for the first run, 2 for the
    /// first retry.
    #[schema(minimum = 1, example = 1)]
    pub attempt: u32,
    /// Whether a backfill started it (rather than the schedule).
    pub backfill: bool,
    /// For a run waiting to start (a retry, a buffered fire time): when it is due
    /// (RFC 3339, UTC). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
}

impl From<&RunRecord> for RunView {
    fn from(r: &RunRecord) -> Self {
        RunView {
            run_id: r.run_id.clone(),
            job_id: r.job_id.clone(),
            scheduled_at: utc_text(&r.scheduled_at),
            started_at: r.started_at.as_ref().map(utc_text),
            finished_at: r.finished_at.as_ref().map(utc_text),
            outcome: r.outcome.to_string(),
            exit_code: r.exit_code,
            http_status: r.http_status,
            output: r.output.clone(),
            message: r.message.clone(),
            node: r.node.clone(),
            attempt: r.attempt,
            backfill: r.backfill,
            due_at: r.due_at.as_ref().map(utc_text),
        }
    }
}

/// A node sharing the store (`GET /api/nodes`), as `aps nodes --json` prints it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    /// The node's name.
    pub node: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Its last heartbeat (RFC 3339, UTC).
    pub heartbeat_at: String,
    /// Runs it had going at that heartbeat.
    pub running: u64,
    /// `live`, or `silent` once its heartbeat is older than the node time-out.
    pub state: String,
    /// How it keeps its runs: `history_records`, `leased_runs.2`, or `leased_runs` (an
    /// earlier release's leased runs); nodes of two protocols must not share a store.
    pub protocol: String,
}

impl NodeView {
    /// The view of `n` at `now`, silent past `node_timeout`.
    pub fn new(n: &NodeInfo, now: DateTime<Utc>, node_timeout: std::time::Duration) -> Self {
        NodeView {
            node: n.node.clone(),
            host: n.host.clone(),
            pid: n.pid,
            started_at: utc_text(&n.started_at),
            heartbeat_at: utc_text(&n.heartbeat_at),
            running: u64::from(n.running),
            state: if n.is_stale(now, node_timeout) {
                "silent"
            } else {
                "live"
            }
            .to_owned(),
            protocol: n.protocol.to_string(),
        }
    }
}

/// A job's next fire times (`GET /api/jobs/{id}/next`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FireTimes {
    /// The job.
    pub job_id: String,
    /// The next fire times from now (RFC 3339, in the trigger's timezone); fewer when
    /// the trigger ends sooner, none when paused.
    pub fire_times: Vec<String>,
}

/// What `POST /api/jobs/{id}/run` started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunStarted {
    /// The job.
    pub job_id: String,
    /// The run's id in the history (null when the scheduler records none).
    pub run_id: Option<String>,
}

/// The scheduler and the caller (`GET /api/status`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    /// `running`, `paused` or `stopped`.
    pub state: String,
    /// This scheduler's id in shared stores.
    pub scheduler_id: String,
    /// The node name its run records carry (`host/pid` for `aps run`), when known.
    pub node: Option<String>,
    /// The default timezone of triggers.
    pub timezone: String,
    /// The version of apscheduler-http.
    pub version: String,
    /// `tokens` (bearer tokens required) or `loopback` (no tokens: loopback only).
    pub auth: String,
    /// The caller's token name (`loopback` without tokens).
    pub caller: String,
    /// The caller's role: `read`, `operate` or `admin`.
    pub role: String,
    /// Whether the store keeps run history.
    pub history: bool,
    /// Whether the store keeps a node registry (a cluster can be shown).
    pub nodes: bool,
}

/// Liveness (`GET /health`) and readiness (`GET /health/ready`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or what is wrong: `stopped`, `stuck` (the main loop's pass is overdue),
    /// `store unavailable`.
    pub status: String,
    /// The scheduler's state.
    pub state: String,
    /// When the main loop last finished a pass (RFC 3339, UTC).
    pub last_pass_at: Option<String>,
    /// When it means to pass next (RFC 3339, UTC); null: when woken.
    pub next_pass_at: Option<String>,
    /// Readiness only: the store's error, when it does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
