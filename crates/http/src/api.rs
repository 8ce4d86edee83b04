//! The handlers under `/api` and `/health`, each with its OpenAPI description.

use std::collections::HashMap;
use std::time::Duration;

use apscheduler_core::{Job, RunOutcome, RunQuery, RunRecord};
use apscheduler_engine::SchedulerState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, Role};
use crate::catalog::JobUpdate;
use crate::error::{ApiError, ErrorBody};
use crate::views::{
    utc_text, CalendarView, FireTimes, Health, JobDetail, JobView, NodeView, RunStarted, RunView,
    Status,
};
use crate::AppState;

/// The longest a readiness probe waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How far past its planned instant a pass may be before the loop counts as stuck.
const STUCK_AFTER: chrono::Duration = chrono::Duration::seconds(30);

/// Query parameters, with a refusal answered as a JSON error naming the parameter.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(e) => Err(query_error(&e)),
        }
    }
}

fn query_error(e: &QueryRejection) -> ApiError {
    // serde_urlencoded names the parameter in its message ("unknown field `x`",
    // "limit: invalid digit found in string").
    let text = e.body_text();
    let field = text
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "query".to_owned());
    ApiError::invalid(field, text)
}

/// A JSON body read as a value: any syntax error is a 400 naming the body.
fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid("body", format!("the body is not JSON: {e}")))
}

pub(crate) fn audit(caller: &Caller, action: &str, job_id: &str) {
    tracing::info!(target: "apscheduler::audit", token = %caller.name, role = %caller.role, action, job_id, "{action} job '{job_id}' by token '{}'", caller.name);
}

impl AppState {
    fn view(&self, job: &Job, last: Option<&RunRecord>) -> JobView {
        JobView::new(job, self.catalog.describe(job), last)
    }

    async fn latest(&self, jobs: &[Job]) -> HashMap<String, RunRecord> {
        let Some(history) = &self.history else {
            return HashMap::new();
        };
        let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
        match history.latest_runs(&ids).await {
            Ok(runs) => runs.into_iter().map(|r| (r.job_id.clone(), r)).collect(),
            Err(e) => {
                tracing::warn!(target: "apscheduler::http", "the last runs cannot be read: {e}");
                HashMap::new()
            }
        }
    }

    async fn job(&self, id: &str) -> Result<Job, ApiError> {
        self.scheduler
            .engine()
            .get_job(id, None)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no job '{id}'")))
    }

    async fn job_view(&self, job: &Job) -> JobView {
        let last = self.latest(std::slice::from_ref(job)).await;
        self.view(job, last.get(&*job.id))
    }
}

/// The errors every operation may answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum CommonErrors {
    /// Bad input: the message names the field and the value.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// No token, or an unknown one.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// The token's role may not do this, or (no tokens configured) the client is not
    /// on loopback.
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
    /// The store cannot be reached.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// The scheduler's state, and who is asking.
#[utoipa::path(get, path = "/api/status", tag = "scheduler",
    responses((status = 200, body = Status), CommonErrors))]
pub(crate) async fn status(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<Status> {
    let engine = s.scheduler.engine();
    Json(Status {
        state: engine.state().as_str().to_owned(),
        scheduler_id: engine.scheduler_id().to_owned(),
        node: s.node.clone(),
        timezone: engine.timezone().name().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        auth: if s.auth.has_tokens() {
            "tokens"
        } else {
            "loopback"
        }
        .to_owned(),
        caller: caller.name,
        role: caller.role.as_str().to_owned(),
        history: s.history.is_some(),
        nodes: s.history.as_ref().is_some_and(|h| h.nodes().is_some()),
    })
}

/// Every job, ordered by next run time then id, paused last, with its newest run.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    responses((status = 200, body = Vec<JobView>), CommonErrors))]
pub(crate) async fn list_jobs(State(s): State<AppState>) -> Result<Json<Vec<JobView>>, ApiError> {
    let jobs = s.scheduler.engine().get_jobs(None).await?;
    let last = s.latest(&jobs).await;
    Ok(Json(
        jobs.iter().map(|j| s.view(j, last.get(&*j.id))).collect(),
    ))
}

/// One job with its options, definition and its 20 newest runs.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, body = JobDetail),
        (status = 404, description = "No such job", body = ErrorBody), CommonErrors))]
pub(crate) async fn show_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let job = s.job(&id).await?;
    let recent = match &s.history {
        Some(h) => h
            .query_runs(&RunQuery {
                job_id: Some(id.clone()),
                limit: 20,
                ..RunQuery::default()
            })
            .await
            .map_err(ApiError::from)?,
        None => Vec::new(),
    };
    let definition = s.catalog.definition(&job);
    Ok(Json(JobDetail {
        job: s.view(&job, recent.first()),
        executor: job.executor.to_string(),
        misfire_grace_time: job.misfire_grace_time.map(|d| d.as_secs_f64()),
        coalesce: job.coalesce,
        max_instances: job.max_instances,
        calendar_rules: apscheduler_engine::trigger_calendar(&*job.trigger)
            .map(|c| c.calendar().calendar.to_string()),
        failure_streak: apscheduler_engine::failure_streak(&recent, &job.policy),
        definition,
        recent_runs: recent.iter().map(RunView::from).collect(),
    }))
}

/// `count` for the next fire times.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct NextParams {
    /// How many fire times (1 to 100, default 5).
    count: Option<usize>,
}

/// The most fire times `next_fire_times` looks at to find those not excluded.
const MAX_FIRE_TIMES_LOOKED: usize = 10_000;

/// A job's next fire times from now, with its exclusion calendar applied.
#[utoipa::path(get, path = "/api/jobs/{id}/next", tag = "jobs",
    params(("id" = String, Path, description = "The job id"), NextParams),
    responses((status = 200, body = FireTimes),
        (status = 404, description = "No such job", body = ErrorBody), CommonErrors))]
pub(crate) async fn next_fire_times(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<NextParams>,
) -> Result<Json<FireTimes>, ApiError> {
    let count = params.count.unwrap_or(5);
    if !(1..=100).contains(&count) {
        return Err(ApiError::invalid(
            "count",
            format!("invalid value for 'count': {count}: expected 1 to 100"),
        ));
    }
    let job = s.job(&id).await?;
    let mut fire_times = Vec::new();
    // Exclusions applied: the fire times a calendar skips are left out (bounded, for
    // a calendar that excludes nearly all of them).
    let mut next = apscheduler_engine::next_allowed_run_time(&job);
    let mut looked = 0;
    while let Some(t) = next {
        if fire_times.len() >= count || looked == MAX_FIRE_TIMES_LOOKED {
            break;
        }
        looked += 1;
        if job.trigger.excluded_by(&t).is_none() {
            fire_times.push(apscheduler_core::time::to_rfc3339(&t));
        }
        next = job.trigger.next_fire_time(Some(&t), &t).filter(|n| *n > t);
    }
    Ok(Json(FireTimes {
        job_id: id,
        fire_times,
    }))
}

/// Placeholder name of the new-job body in the generated document; the router puts
/// its catalog's schema under this name.
pub(crate) struct JobInput;

impl utoipa::PartialSchema for JobInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new().into()
    }
}

impl ToSchema for JobInput {}

/// Placeholder name of the job-change body (see [`JobInput`]).
pub(crate) struct JobChangesInput;

impl utoipa::PartialSchema for JobChangesInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new().into()
    }
}

impl ToSchema for JobChangesInput {}

/// Adds a job (role `admin`).
#[utoipa::path(post, path = "/api/jobs", tag = "jobs",
    request_body = JobInput,
    responses((status = 201, body = JobView),
        (status = 409, description = "A job with that id exists", body = ErrorBody), CommonErrors))]
pub(crate) async fn add_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let body = json_body(&body)?;
    let spec = s.catalog.new_job(&body, s.scheduler.engine().timezone())?;
    let handle = s.scheduler.add_job(spec).await?;
    let job = handle.job().clone();
    audit(&caller, "add", &job.id);
    Ok((StatusCode::CREATED, Json(s.job_view(&job).await)).into_response())
}

/// Changes a job (role `admin`).
#[utoipa::path(patch, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    request_body = JobChangesInput,
    responses((status = 200, body = JobView),
        (status = 404, description = "No such job", body = ErrorBody), CommonErrors))]
pub(crate) async fn modify_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<JobView>, ApiError> {
    caller.require(Role::Admin)?;
    let body = json_body(&body)?;
    let job = s.job(&id).await?;
    let tz = s.scheduler.engine().timezone();
    let job = match s.catalog.change_job(&job, &body, tz)? {
        JobUpdate::Changes(changes) => s.scheduler.modify_job(&id, changes).await?.job().clone(),
        JobUpdate::Replace(mut spec) => {
            spec = spec.id(id.clone()).replace_existing(true);
            if job.is_paused() {
                spec = spec.next_run_time(None);
            }
            s.scheduler.add_job(spec).await?.job().clone()
        }
    };
    audit(&caller, "modify", &id);
    Ok(Json(s.job_view(&job).await))
}

/// Removes a job (role `admin`).
#[utoipa::path(delete, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such job", body = ErrorBody), CommonErrors))]
pub(crate) async fn remove_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    s.scheduler.remove_job(&id).await?;
    audit(&caller, "remove", &id);
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a job (role `operate`).
#[utoipa::path(post, path = "/api/jobs/{id}/pause", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, body = JobView),
        (status = 404, description = "No such job", body = ErrorBody), CommonErrors))]
pub(crate) async fn pause_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    caller.require(Role::Operate)?;
    let job = s.scheduler.pause_job(&id).await?.job().clone();
    audit(&caller, "pause", &id);
    Ok(Json(s.job_view(&job).await))
}

/// Resumes a paused job (role `operate`). A job whose trigger has no fire time left
/// is removed instead (410); one the catalog keeps paused on purpose (the daemon's
/// jobs that run only at its start) is refused (409).
#[utoipa::path(post, path = "/api/jobs/{id}/resume", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, body = JobView),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job cannot be resumed (the message says why)", body = ErrorBody),
        (status = 410, description = "No fire time left: the job was removed", body = ErrorBody),
        CommonErrors))]
pub(crate) async fn resume_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    caller.require(Role::Operate)?;
    s.catalog.check_resume(&s.job(&id).await?)?;
    let resumed = s.scheduler.resume_job(&id).await?;
    audit(&caller, "resume", &id);
    match resumed {
        Some(h) => Ok(Json(s.job_view(h.job()).await)),
        None => Err(ApiError::new(
            StatusCode::GONE,
            "gone",
            format!("job '{id}' has no fire time left: removed"),
        )),
    }
}

/// Runs a job once, now, on this scheduler, outside its schedule (role `operate`). The
/// run is recorded in the history like any other, with the token's name.
#[utoipa::path(post, path = "/api/jobs/{id}/run", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 202, body = RunStarted),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The scheduler is not running, or the job has max_instances runs going", body = ErrorBody),
        CommonErrors))]
pub(crate) async fn run_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operate)?;
    let note = format!("run now through the HTTP API by token '{}'", caller.name);
    let run_id = s
        .scheduler
        .engine()
        .run_job_now(&id, None, Some(&note))
        .await?;
    audit(&caller, "run", &id);
    Ok((
        StatusCode::ACCEPTED,
        Json(RunStarted { job_id: id, run_id }),
    )
        .into_response())
}

/// History filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    /// Only this job's runs.
    job: Option<String>,
    /// Only runs with this outcome.
    outcome: Option<String>,
    /// Only runs scheduled at or after this time (RFC 3339).
    since: Option<String>,
    /// Only runs scheduled before this time (RFC 3339).
    until: Option<String>,
    /// Only runs by this node.
    node: Option<String>,
    /// At most this many runs (1 to 1000, default 50).
    limit: Option<usize>,
    /// Skip this many of the newest matching runs first (paging; at most 100000).
    offset: Option<usize>,
}

fn time_param(field: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError::invalid(
                        field,
                        format!("invalid value for '{field}': '{v}': expected RFC 3339 ({e})"),
                    )
                })
        })
        .transpose()
}

/// Run history, newest first.
#[utoipa::path(get, path = "/api/history", tag = "history",
    params(HistoryParams),
    responses((status = 200, body = Vec<RunView>),
        (status = 404, description = "The store keeps no run history", body = ErrorBody), CommonErrors))]
pub(crate) async fn history(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<HistoryParams>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let history = s
        .history
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this store keeps no run history"))?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("invalid value for 'limit': {limit}: expected 1 to 1000"),
        ));
    }
    let offset = p.offset.unwrap_or(0);
    if offset > 100_000 {
        return Err(ApiError::invalid(
            "offset",
            format!("invalid value for 'offset': {offset}: expected at most 100000"),
        ));
    }
    let outcome = p
        .outcome
        .as_deref()
        .map(str::parse::<RunOutcome>)
        .transpose()
        .map_err(|e| ApiError::invalid("outcome", format!("invalid value for 'outcome': {e}")))?;
    let runs = history
        .query_runs(&RunQuery {
            job_id: p.job,
            outcome,
            since: time_param("since", &p.since)?,
            until: time_param("until", &p.until)?,
            node: p.node,
            limit: limit + offset,
        })
        .await?;
    Ok(Json(runs.iter().skip(offset).map(RunView::from).collect()))
}

/// The exclusion calendars jobs may name in their `calendar` field (the daemon's
/// `[calendars.NAME]` tables), by name.
#[utoipa::path(get, path = "/api/calendars", tag = "jobs",
    responses((status = 200, body = Vec<CalendarView>), CommonErrors))]
pub(crate) async fn calendars(State(s): State<AppState>) -> Json<Vec<CalendarView>> {
    Json(
        s.catalog
            .calendars()
            .iter()
            .map(CalendarView::from)
            .collect(),
    )
}

/// The nodes (schedulers) sharing the store, with their last heartbeat.
#[utoipa::path(get, path = "/api/nodes", tag = "scheduler",
    responses((status = 200, body = Vec<NodeView>),
        (status = 404, description = "The store keeps no node registry", body = ErrorBody), CommonErrors))]
pub(crate) async fn nodes(State(s): State<AppState>) -> Result<Json<Vec<NodeView>>, ApiError> {
    let registry = s
        .history
        .as_ref()
        .and_then(|h| h.nodes())
        .ok_or_else(|| ApiError::not_found("this store keeps no node registry"))?;
    let nodes = registry.list_nodes().await?;
    let now = Utc::now();
    Ok(Json(
        nodes
            .iter()
            .map(|n| NodeView::new(n, now, s.node_timeout))
            .collect(),
    ))
}

fn health_of(s: &AppState) -> Health {
    let engine = s.scheduler.engine();
    let marks = engine.loop_health();
    let state = engine.state();
    let now = engine.now();
    let status = match state {
        SchedulerState::Stopped => "stopped",
        _ if marks.next_pass_at.is_some_and(|at| now > at + STUCK_AFTER) => "stuck",
        _ => "ok",
    };
    Health {
        status: status.to_owned(),
        state: state.as_str().to_owned(),
        last_pass_at: marks.last_pass_at.as_ref().map(utc_text),
        next_pass_at: marks.next_pass_at.as_ref().map(utc_text),
        error: None,
    }
}

fn health_answer(h: Health) -> Response {
    let status = if h.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

/// Liveness: the scheduler runs and its main loop's last pass is recent (no pass more
/// than 30 s overdue). No token needed.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, description = "Stopped or stuck", body = Health)))]
pub(crate) async fn live(State(s): State<AppState>) -> Response {
    health_answer(health_of(&s))
}

/// Readiness: liveness, and the store answers within 5 s. No token needed.
#[utoipa::path(get, path = "/health/ready", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, description = "Not live, or the store does not answer", body = Health)))]
pub(crate) async fn ready(State(s): State<AppState>) -> Response {
    let mut h = health_of(&s);
    if h.status == "ok" {
        let probe = s.scheduler.engine().get_job("aps: readiness probe", None);
        let error = match tokio::time::timeout(READY_TIMEOUT, probe).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {READY_TIMEOUT:?}")),
        };
        if let Some(e) = error {
            h.status = "store unavailable".to_owned();
            h.error = Some(e);
        }
    }
    health_answer(h)
}

/// Prometheus metrics (text exposition format), role `read`.
#[utoipa::path(get, path = "/metrics", tag = "scheduler",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "Metrics are not served here", body = ErrorBody), CommonErrors))]
pub(crate) async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let metrics = s
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::not_found("metrics are not served here"))?;
    // Job counts are read at each scrape: they change without any run record.
    let jobs = s.scheduler.engine().get_jobs(None).await?;
    let paused = jobs.iter().filter(|j| j.is_paused()).count();
    metrics.set_job_counts(jobs.len() - paused, paused);
    let text = metrics.render().ok_or_else(|| {
        ApiError::not_found("these metrics are served by the application's own exporter")
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
