//! Exclusion calendars through the API in library mode: a job's `calendar` and
//! `calendar_action`, its calendar's rules, the next fire times and `next_run_time` with
//! exclusions applied, and `GET /api/calendars` from the host's catalog.

use std::net::SocketAddr;
use std::sync::Arc;

use apscheduler_core::Job;
use apscheduler_engine::{AsyncScheduler, Engine, JobSpec};
use apscheduler_http::catalog::{JobCatalog, JobDescription, JobUpdate, TaskCatalog};
use apscheduler_http::{ApiError, ManagementPlane};
use apscheduler_triggers::{CalendarAction, ExclusionCalendar, NamedCalendar};
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Datelike, Weekday};
use chrono_tz::Tz;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// Every day but Sunday.
fn sundays_only() -> NamedCalendar {
    NamedCalendar {
        name: "sundays-only".into(),
        calendar: ExclusionCalendar::new(chrono_tz::UTC).weekdays([
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
        ]),
    }
}

/// The task catalog, with calendars to list.
#[derive(Debug)]
struct WithCalendars(Vec<NamedCalendar>);

impl JobCatalog for WithCalendars {
    fn describe(&self, job: &Job) -> JobDescription {
        TaskCatalog.describe(job)
    }
    fn new_job(&self, body: &Value, tz: Tz) -> Result<JobSpec, ApiError> {
        TaskCatalog.new_job(body, tz)
    }
    fn change_job(&self, job: &Job, body: &Value, tz: Tz) -> Result<JobUpdate, ApiError> {
        TaskCatalog.change_job(job, body, tz)
    }
    fn schemas(
        &self,
    ) -> (
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    ) {
        TaskCatalog.schemas()
    }
    fn calendars(&self) -> Vec<NamedCalendar> {
        self.0.clone()
    }
}

async fn get(router: &Router, path: &str) -> (StatusCode, Value) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn weekday(text: &Value) -> Weekday {
    DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .weekday()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_shows_its_calendar_and_its_fire_times_with_exclusions_applied() {
    let scheduler =
        AsyncScheduler::from_builder(Engine::builder().timezone(chrono_tz::UTC)).unwrap();
    scheduler.register_task("hello", |_ctx| Ok(json!(null)));
    scheduler.start(false).await.unwrap();
    scheduler
        .add_job(
            JobSpec::task("hello")
                .id("daily")
                .trigger_args("cron", json!({"hour": 3}))
                .calendar(sundays_only()),
        )
        .await
        .unwrap();
    scheduler
        .add_job(
            JobSpec::task("hello")
                .id("plain")
                .trigger_args("cron", json!({"hour": 3})),
        )
        .await
        .unwrap();
    let router = ManagementPlane::new(scheduler.clone())
        .catalog(Arc::new(WithCalendars(vec![sundays_only()])))
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));

    let (status, job) = get(&router, "/api/jobs/daily").await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["calendar"], "sundays-only");
    assert_eq!(job["calendar_action"], "skip");
    let rules = job["calendar_rules"].as_str().unwrap();
    assert!(rules.to_lowercase().contains("sat"), "{rules}");
    // The stored next run time may be any day; the one shown is a Sunday.
    assert_eq!(weekday(&job["next_run_time"]), Weekday::Sun, "{job}");
    let (status, next) = get(&router, "/api/jobs/daily/next?count=3").await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let times = next["fire_times"].as_array().unwrap();
    assert_eq!(times.len(), 3, "{next}");
    assert!(times.iter().all(|t| weekday(t) == Weekday::Sun), "{next}");
    assert_eq!(times[0], job["next_run_time"]);

    let (_, plain) = get(&router, "/api/jobs/plain").await;
    assert!(plain["calendar"].is_null() && plain["calendar_action"].is_null());
    assert!(plain["calendar_rules"].is_null(), "{plain}");
    let (_, next) = get(&router, "/api/jobs/plain/next?count=7").await;
    assert_eq!(next["fire_times"].as_array().unwrap().len(), 7, "{next}");

    let (status, listed) = get(&router, "/api/calendars").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "sundays-only");
    assert_eq!(listed[0]["rules"].as_str(), Some(rules));
    // The default catalog has none.
    let bare = ManagementPlane::new(scheduler.clone())
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    assert_eq!(get(&bare, "/api/calendars").await.1, json!([]));
    scheduler.shutdown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn next_allowed_shows_as_its_action() {
    let scheduler =
        AsyncScheduler::from_builder(Engine::builder().timezone(chrono_tz::UTC)).unwrap();
    scheduler.register_task("hello", |_ctx| Ok(json!(null)));
    scheduler.start(false).await.unwrap();
    scheduler
        .add_job(
            JobSpec::task("hello")
                .id("moved")
                .trigger_args("cron", json!({"hour": 3}))
                .calendar(sundays_only())
                .calendar_action(CalendarAction::NextAllowed),
        )
        .await
        .unwrap();
    let router = ManagementPlane::new(scheduler.clone())
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let (_, jobs) = get(&router, "/api/jobs").await;
    let job = &jobs[0];
    assert_eq!(job["calendar_action"], "next_allowed", "{job}");
    // Moved to the start of the next Sunday (midnight), then 03:00 that day.
    let (_, next) = get(&router, "/api/jobs/moved/next?count=2").await;
    let times = next["fire_times"].as_array().unwrap();
    assert!(times.iter().all(|t| weekday(t) == Weekday::Sun), "{next}");
    scheduler.shutdown(false).await.unwrap();
}
