//! The API in library mode (jobs of registered tasks, memory store and history), called
//! through the router: every endpoint's auth rule, and what each operation does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_engine::{AsyncScheduler, Engine, HistoryOptions, JobSpec};
use apscheduler_http::{new_token, Auth, ManagementPlane, Role};
use apscheduler_store_memory::MemoryRunHistory;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt as _;

async fn scheduler() -> AsyncScheduler {
    let history = Arc::new(MemoryRunHistory::new());
    let scheduler = AsyncScheduler::from_builder(
        Engine::builder().run_history(history, HistoryOptions::default()),
    )
    .unwrap();
    scheduler.register_task("hello", |_ctx| Ok(json!("hello from the task")));
    scheduler.start(false).await.unwrap();
    scheduler
        .add_job(
            JobSpec::task("hello")
                .id("daily")
                .trigger_args("cron", json!({"hour": 3})),
        )
        .await
        .unwrap();
    scheduler
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// Every operation under `/api`, with the least role it needs and a body.
fn operations() -> Vec<(Method, &'static str, Role, Option<Value>)> {
    vec![
        (Method::GET, "/api/status", Role::Read, None),
        (Method::GET, "/api/jobs", Role::Read, None),
        (Method::GET, "/api/jobs/daily", Role::Read, None),
        (
            Method::GET,
            "/api/jobs/daily/next?count=3",
            Role::Read,
            None,
        ),
        (Method::GET, "/api/history", Role::Read, None),
        (Method::GET, "/api/nodes", Role::Read, None),
        (Method::GET, "/api/calendars", Role::Read, None),
        (Method::POST, "/api/jobs/daily/pause", Role::Operate, None),
        (Method::POST, "/api/jobs/daily/resume", Role::Operate, None),
        (Method::POST, "/api/jobs/daily/run", Role::Operate, None),
        (
            Method::POST,
            "/api/jobs",
            Role::Admin,
            Some(json!({"func": "hello", "trigger": "interval", "trigger_args": {"hours": 1}})),
        ),
        (
            Method::PATCH,
            "/api/jobs/daily",
            Role::Admin,
            Some(json!({"max_instances": 2})),
        ),
        (Method::DELETE, "/api/jobs/nosuchjob", Role::Admin, None),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_401_403_or_serves_by_role() {
    let scheduler = scheduler().await;
    let tokens: Vec<(Role, String, _)> = [Role::Read, Role::Operate, Role::Admin]
        .into_iter()
        .map(|role| {
            let (token, entry) = new_token(role.as_str(), role);
            (role, token, entry)
        })
        .collect();
    let auth = Auth::new(tokens.iter().map(|(_, _, e)| e.clone()).collect());
    let router = ManagementPlane::new(scheduler.clone()).auth(auth).router();
    let mut checked = 0;
    for (method, path, needs, body) in operations() {
        let (status, _) = call(&router, method.clone(), path, None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        let (status, err) = call(
            &router,
            method.clone(),
            path,
            Some("aps_wrong"),
            body.clone(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong token"
        );
        assert_eq!(err["code"], "unauthorized");
        for (role, token, _) in &tokens {
            let (status, err) =
                call(&router, method.clone(), path, Some(token), body.clone()).await;
            if *role < needs {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} as {role}");
                assert_eq!(err["code"], "forbidden");
            } else {
                // Served: a success, or the operation's own refusal (no such job, a run
                // still going), never an auth answer or a server error.
                assert!(
                    status.is_success()
                        || status == StatusCode::NOT_FOUND
                        || status == StatusCode::CONFLICT,
                    "{method} {path} as {role}: {status} {err}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, operations().len() * 3);
    // Health and the document need no token.
    for path in ["/health", "/health/ready", "/api/openapi.json", "/"] {
        let (status, _) = call(&router, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    scheduler.shutdown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tokens_loopback_is_served_and_other_peers_are_refused() {
    let scheduler = scheduler().await;
    let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let remote: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let router = ManagementPlane::new(scheduler.clone())
        .router()
        .layer(MockConnectInfo(local));
    let (status, body) = call(&router, Method::GET, "/api/status", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["auth"], "loopback");
    assert_eq!(body["role"], "admin");
    let router = ManagementPlane::new(scheduler.clone())
        .router()
        .layer(MockConnectInfo(remote));
    let (status, body) = call(&router, Method::GET, "/api/jobs", None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    scheduler.shutdown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_added_changed_paused_resumed_run_and_removed() {
    let scheduler = scheduler().await;
    let router = ManagementPlane::new(scheduler.clone())
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let add = json!({"id": "hourly", "func": "hello", "trigger": "interval",
                     "trigger_args": {"hours": 1}, "max_instances": 3});
    let (status, job) = call(&router, Method::POST, "/api/jobs", None, Some(add.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["id"], "hourly");
    assert_eq!(job["trigger"], "interval[1:00:00]");
    let (status, err) = call(&router, Method::POST, "/api/jobs", None, Some(add)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    // Bad input names the field and the value.
    let (status, err) = call(
        &router,
        Method::POST,
        "/api/jobs",
        None,
        Some(json!({"func": "hello", "trigger": "cron", "trigger_args": {"minute": 61}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["message"].as_str().unwrap().contains("61"), "{err}");
    let (status, err) = call(
        &router,
        Method::POST,
        "/api/jobs",
        None,
        Some(json!({"func": "hello", "trigger": "date", "max_instances": "two"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["field"], "max_instances", "{err}");
    let (status, err) = call(
        &router,
        Method::POST,
        "/api/jobs",
        None,
        Some(json!({"func": "hello", "trigger": "date", "colour": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["message"].as_str().unwrap().contains("colour"), "{err}");

    let (status, job) = call(
        &router,
        Method::PATCH,
        "/api/jobs/hourly",
        None,
        Some(json!({"name": "every hour"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["name"], "every hour");
    let (_, job) = call(&router, Method::POST, "/api/jobs/hourly/pause", None, None).await;
    assert_eq!(job["paused"], true);
    assert_eq!(job["next_run_time"], Value::Null);
    let (_, job) = call(&router, Method::POST, "/api/jobs/hourly/resume", None, None).await;
    assert_eq!(job["paused"], false);
    let next_before = job["next_run_time"].clone();

    // Run now: a run in the history, the schedule untouched.
    let (status, started) = call(&router, Method::POST, "/api/jobs/hourly/run", None, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let mut found = Value::Null;
    for _ in 0..100 {
        scheduler
            .engine()
            .flush_history(Duration::from_secs(5))
            .await;
        let (_, runs) = call(&router, Method::GET, "/api/history?job=hourly", None, None).await;
        if let Some(r) = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == run_id.as_str() && r["outcome"] != "running")
        {
            found = r.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found["outcome"], "success", "{found}");
    assert!(
        found["message"]
            .as_str()
            .unwrap()
            .contains("token 'loopback'"),
        "{found}"
    );
    let (_, job) = call(&router, Method::GET, "/api/jobs/hourly", None, None).await;
    assert_eq!(
        job["next_run_time"], next_before,
        "run now leaves the schedule alone"
    );
    assert_eq!(job["max_instances"], 3);
    assert_eq!(job["recent_runs"].as_array().unwrap().len(), 1);
    let (_, next) = call(
        &router,
        Method::GET,
        "/api/jobs/hourly/next?count=4",
        None,
        None,
    )
    .await;
    assert_eq!(next["fire_times"].as_array().unwrap().len(), 4);
    let (status, _) = call(
        &router,
        Method::GET,
        "/api/jobs/hourly/next?count=0",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = call(&router, Method::DELETE, "/api/jobs/hourly", None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = call(&router, Method::GET, "/api/jobs/hourly", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "not_found");
    let (status, err) = call(&router, Method::GET, "/api/history?limit=x", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, err) = call(
        &router,
        Method::GET,
        "/api/history?outcome=great",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["field"], "outcome");
    scheduler.shutdown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_every_route_and_the_catalog_bodies() {
    let scheduler = scheduler().await;
    let plane = ManagementPlane::new(scheduler.clone());
    let doc = serde_json::to_value(plane.openapi()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/run",
        "/api/history",
        "/api/nodes",
        "/api/calendars",
        "/health",
        "/health/ready",
        "/api/status",
        "/api/jobs/{id}/next",
        "/api/jobs/{id}/pause",
        "/api/jobs/{id}/resume",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Filters and counts are query parameters, the job id the one path parameter.
    for (path, name) in [
        ("/api/history", "job"),
        ("/api/history", "limit"),
        ("/api/jobs/{id}/next", "count"),
    ] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let param = params.iter().find(|p| p["name"] == name);
        let param = param.unwrap_or_else(|| panic!("{path}: no parameter {name}"));
        assert_eq!(param["in"], "query", "{path} {name}: {param}");
        assert_ne!(param["required"], true, "{path} {name}: {param}");
    }
    let next = doc["paths"]["/api/jobs/{id}/next"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(next.iter().any(|p| p["name"] == "id" && p["in"] == "path"));
    let input = &doc["components"]["schemas"]["JobInput"];
    assert!(input["properties"]["func"].is_object(), "{input}");
    // Every $ref points at a schema the document has.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
    scheduler.shutdown(false).await.unwrap();
}

/// A request with extra headers; its status.
async fn status_with(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let mut request = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn other_sites_cannot_make_a_browser_change_jobs() {
    let scheduler = scheduler().await;
    let router = ManagementPlane::new(scheduler.clone())
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let host = ("host", "127.0.0.1:8642");
    // A form on another site posting to the loopback server (CSRF).
    let forged = status_with(
        &router,
        Method::POST,
        "/api/jobs/daily/pause",
        &[host, ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(forged, StatusCode::FORBIDDEN);
    let opaque = status_with(
        &router,
        Method::POST,
        "/api/jobs/daily/run",
        &[host, ("origin", "null")],
    )
    .await;
    assert_eq!(opaque, StatusCode::FORBIDDEN);
    // Another site's name resolving to 127.0.0.1 (DNS rebinding): refused, reads too.
    let rebound = status_with(
        &router,
        Method::GET,
        "/api/jobs",
        &[("host", "evil.example:8642")],
    )
    .await;
    assert_eq!(rebound, StatusCode::FORBIDDEN);
    // The dashboard itself (same origin), and clients that send no Origin.
    let own = status_with(
        &router,
        Method::POST,
        "/api/jobs/daily/pause",
        &[host, ("origin", "http://127.0.0.1:8642")],
    )
    .await;
    assert_eq!(own, StatusCode::OK);
    let script = status_with(
        &router,
        Method::POST,
        "/api/jobs/daily/resume",
        &[("host", "localhost:8642")],
    )
    .await;
    assert_eq!(script, StatusCode::OK);
    // With tokens, another Host is fine (a proxy's name), a foreign Origin still not.
    let (token, entry) = new_token("ops", Role::Admin);
    let router = ManagementPlane::new(scheduler.clone())
        .auth(Auth::new(vec![entry]))
        .router();
    let bearer = format!("Bearer {token}");
    let named = status_with(
        &router,
        Method::GET,
        "/api/jobs",
        &[("host", "scheduler.internal"), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(named, StatusCode::OK);
    let forged = status_with(
        &router,
        Method::POST,
        "/api/jobs/daily/pause",
        &[
            ("host", "scheduler.internal"),
            ("origin", "https://evil.example"),
            ("authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(forged, StatusCode::FORBIDDEN);
    scheduler.shutdown(false).await.unwrap();
}
