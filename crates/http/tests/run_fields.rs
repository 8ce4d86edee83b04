//! Run records in the API carry which attempt they are, whether a backfill started them
//! and, for a run waiting to start, when it is due: `GET /api/history`, a job's recent
//! runs, and the OpenAPI schema that describes them.

use std::net::SocketAddr;
use std::sync::Arc;

use apscheduler_core::{RunHistory, RunOutcome, RunRecord};
use apscheduler_engine::{AsyncScheduler, Engine, HistoryOptions, JobSpec};
use apscheduler_http::ManagementPlane;
use apscheduler_store_memory::MemoryRunHistory;
use apscheduler_testkit::history::{base, record};
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::Duration;
use serde_json::{json, Value};
use tower::ServiceExt as _;

async fn get(router: &Router, path: &str) -> Value {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A first run, its second attempt, a backfilled run and a retry waiting to start.
fn runs() -> Vec<RunRecord> {
    let mut first = record("r-1", "daily", 0);
    first.outcome = RunOutcome::Failure;
    first.exit_code = Some(1);
    let mut second = record("r-2", "daily", 0);
    second.attempt = 2;
    let mut backfilled = record("r-3", "daily", -86_400);
    backfilled.backfill = true;
    let mut waiting = record("r-4", "daily", 60);
    waiting.outcome = RunOutcome::Running;
    waiting.started_at = None;
    waiting.finished_at = None;
    waiting.exit_code = None;
    waiting.attempt = 3;
    waiting.due_at = Some(base() + Duration::seconds(90));
    vec![first, second, backfilled, waiting]
}

#[tokio::test(flavor = "multi_thread")]
async fn run_json_and_its_schema_have_attempt_backfill_and_due_at() {
    let history = Arc::new(MemoryRunHistory::new());
    let scheduler = AsyncScheduler::from_builder(
        Engine::builder().run_history(history.clone(), HistoryOptions::default()),
    )
    .unwrap();
    scheduler.register_task("hello", |_ctx| Ok(json!("hello")));
    scheduler.start(false).await.unwrap();
    scheduler
        .add_job(
            JobSpec::task("hello")
                .id("daily")
                .trigger_args("cron", json!({"hour": 3})),
        )
        .await
        .unwrap();
    history.record_runs(&runs()).await.unwrap();
    let plane = ManagementPlane::new(scheduler.clone());
    check_openapi_schema(&plane);
    let router = plane
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));

    let listed = get(&router, "/api/history?job=daily").await;
    let by_id = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
            .clone()
    };
    let first = by_id("r-1");
    assert_eq!(
        (&first["attempt"], &first["backfill"]),
        (&json!(1), &json!(false))
    );
    assert!(
        first.get("due_at").is_none(),
        "due_at only when set: {first}"
    );
    assert_eq!(by_id("r-2")["attempt"], 2);
    assert_eq!(by_id("r-3")["backfill"], true);
    let waiting = by_id("r-4");
    assert_eq!(waiting["attempt"], 3);
    assert_eq!(waiting["outcome"], "running");
    assert_eq!(waiting["started_at"], Value::Null);
    let due = waiting["due_at"].as_str().expect("due_at is set");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(due).unwrap(),
        base() + Duration::seconds(90)
    );

    // The job's own page lists its recent runs the same way.
    let job = get(&router, "/api/jobs/daily").await;
    let recent = job["recent_runs"].as_array().expect("recent_runs");
    let newest = recent.first().expect("a recent run");
    assert_eq!(
        (&newest["run_id"], &newest["attempt"]),
        (&json!("r-4"), &json!(3))
    );
    scheduler.shutdown(false).await.unwrap();
}

/// The OpenAPI document describes the three fields: `attempt` and `backfill` always
/// there, `due_at` optional.
fn check_openapi_schema(plane: &ManagementPlane) {
    let doc = serde_json::to_value(plane.openapi()).unwrap();
    let view = &doc["components"]["schemas"]["RunView"];
    let props = &view["properties"];
    assert_eq!(props["attempt"]["type"], "integer", "{view}");
    assert_eq!(props["attempt"]["minimum"], 1, "{view}");
    assert_eq!(props["backfill"]["type"], "boolean", "{view}");
    assert!(props["due_at"].is_object(), "{view}");
    let required: Vec<&str> = view["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(required.contains(&"attempt") && required.contains(&"backfill"));
    assert!(
        !required.contains(&"due_at"),
        "due_at is absent when not set"
    );
    for field in ["attempt", "backfill", "due_at"] {
        assert!(
            props[field]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{field} is described: {view}"
        );
    }
}
