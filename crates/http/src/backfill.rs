//! `POST /api/jobs/{id}/backfill`: runs a job's fire times of a range on this
//! scheduler (see `Engine::backfill`), or with `dry_run` only plans them.

use apscheduler_core::Overlap;
use apscheduler_engine::{
    BackfillReport, BackfillRequest, DEFAULT_BACKFILL_MAX, DEFAULT_BACKFILL_RATE,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::views::utc_text;
use crate::AppState;

/// The body of `POST /api/jobs/{id}/backfill`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackfillInput {
    /// The first instant of the range (RFC 3339, inclusive).
    from: String,
    /// The end of the range (RFC 3339, exclusive).
    to: String,
    /// Only plan: list what would run, run nothing (default false).
    #[serde(default)]
    dry_run: bool,
    /// The overlap policy of the backfill's runs instead of the job's: `skip`,
    /// `buffer_one`, `buffer_all`, `cancel_other`, `terminate_other`, `allow_all`.
    overlap: Option<String>,
    /// Runs started per second at most (default 10).
    rate_per_sec: Option<f64>,
    /// Accept more than `max_fire_times` fire times (default false).
    #[serde(default)]
    force: bool,
    /// Run fire times that already have a `success` run too (default false).
    #[serde(default)]
    rerun_succeeded: bool,
    /// The most fire times accepted without `force` (default 10000).
    max_fire_times: Option<usize>,
}

/// What a backfill runs (or would run) and skips.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BackfillView {
    job_id: String,
    from: String,
    to: String,
    dry_run: bool,
    /// The overlap policy the runs go by.
    overlap: String,
    rate_per_sec: f64,
    /// The fire times run (or to run), oldest first (RFC 3339, UTC).
    to_run: Vec<String>,
    /// Fire times skipped: a run of them already succeeded.
    already_succeeded: Vec<String>,
    /// Fire times skipped: the job's exclusion calendar excludes them.
    excluded: Vec<String>,
    /// How long starting every run takes at the rate.
    estimated_seconds: f64,
}

fn texts(times: &[DateTime<Utc>]) -> Vec<String> {
    times.iter().map(utc_text).collect()
}

impl From<BackfillReport> for BackfillView {
    fn from(r: BackfillReport) -> Self {
        BackfillView {
            job_id: r.job_id,
            from: utc_text(&r.from),
            to: utc_text(&r.to),
            dry_run: r.dry_run,
            overlap: r.overlap.as_str().to_owned(),
            rate_per_sec: r.rate_per_sec,
            to_run: texts(&r.to_run),
            already_succeeded: texts(&r.already_succeeded),
            excluded: texts(&r.excluded),
            estimated_seconds: r.estimated_seconds,
        }
    }
}

fn time(field: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::invalid(
                field,
                format!(
                    "invalid value for field '{field}': '{value}': expected an RFC 3339 time ({e})"
                ),
            )
        })
}

impl BackfillInput {
    fn request(self) -> Result<BackfillRequest, ApiError> {
        let overlap = match &self.overlap {
            Some(o) => Some(
                o.parse::<Overlap>()
                    .map_err(|e| ApiError::from(e).with_field("overlap"))?,
            ),
            None => None,
        };
        Ok(BackfillRequest {
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            dry_run: self.dry_run,
            overlap,
            rate_per_sec: self.rate_per_sec.unwrap_or(DEFAULT_BACKFILL_RATE),
            force: self.force,
            rerun_succeeded: self.rerun_succeeded,
            max_fire_times: self.max_fire_times.unwrap_or(DEFAULT_BACKFILL_MAX),
        })
    }
}

/// The field an engine error is about: `invalid value for field 'X': ...`.
fn field_of(message: &str) -> Option<String> {
    let rest = message.split_once("field '")?.1;
    Some(rest.split_once('\'')?.0.to_owned())
}

/// Runs (or with `dry_run` plans) the job's fire times in `[from, to)` on this
/// scheduler, at most `rate_per_sec` a second, skipping the ones that already have a
/// `success` run (role `operate`). Answers with the plan once the runs are under way;
/// each run is recorded in the history with `backfill: true`.
#[utoipa::path(post, path = "/api/jobs/{id}/backfill", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    request_body = BackfillInput,
    responses((status = 202, description = "The runs are being started", body = BackfillView),
        (status = 200, description = "Dry run: the plan", body = BackfillView),
        (status = 400, description = "Bad request (inverted range, too many fire times without force, range before the trigger's start, bad rate)", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The scheduler is not running, or keeps no run history", body = ErrorBody),
        crate::api::CommonErrors))]
pub(crate) async fn backfill_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Operate)?;
    let input: BackfillInput = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid("body", format!("the body is not a backfill request: {e}"))
    })?;
    let request = input.request()?;
    let report = s
        .scheduler
        .engine()
        .backfill(&id, &request)
        .await
        .map_err(|e| {
            let field = field_of(&e.to_string());
            let error = ApiError::from(e);
            match field {
                Some(f) => error.with_field(f),
                None => error,
            }
        })?;
    if !report.dry_run {
        crate::api::audit(&caller, "backfill", &id);
    }
    let status = if report.dry_run {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(BackfillView::from(report))).into_response())
}
