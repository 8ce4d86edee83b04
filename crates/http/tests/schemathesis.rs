//! Property tests of the API against its own OpenAPI document: `schemathesis` (PyPI)
//! generates requests for every operation from `/api/openapi.json` and checks that no
//! answer is a server error and that every answer matches the document (status code,
//! content type, body schema). The server is this crate's router in library mode
//! (jobs of registered tasks, memory store and history), called as `admin`: generated
//! jobs can only run the test's own task, never a command.
//!
//! Without `schemathesis` on the PATH the test is skipped with a `SKIPPED` line
//! (`pip install schemathesis`); under CI it fails instead.

use std::process::Command;
use std::sync::Arc;

use apscheduler_engine::{AsyncScheduler, Engine, HistoryOptions, JobSpec};
use apscheduler_http::{new_token, serve, Auth, ManagementPlane, Role};
use apscheduler_store_memory::MemoryRunHistory;
use apscheduler_testkit::server::{in_ci, skip_notice};
use serde_json::json;

/// How many examples schemathesis generates per operation (bounded: a few seconds).
const MAX_EXAMPLES: &str = "40";

fn schemathesis() -> Option<String> {
    let bin = std::env::var("APS_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    match Command::new(&bin).arg("--version").output() {
        Ok(out) if out.status.success() => Some(bin),
        _ if in_ci() => panic!(
            "schemathesis is not installed ({bin}): `pip install schemathesis` (.ci/services.sh does)"
        ),
        _ => {
            skip_notice("schemathesis (apscheduler-http): schemathesis is not installed; `pip install schemathesis`");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(bin) = schemathesis() else { return };
    let history = Arc::new(MemoryRunHistory::new());
    let scheduler = AsyncScheduler::from_builder(
        Engine::builder().run_history(history, HistoryOptions::default()),
    )
    .unwrap();
    scheduler.register_task("hello", |_ctx| Ok(json!("hello")));
    scheduler.start(false).await.unwrap();
    for (id, args) in [
        ("daily", json!({"hour": 3})),
        ("often", json!({"second": "*/5"})),
    ] {
        scheduler
            .add_job(JobSpec::task("hello").id(id).trigger_args("cron", args))
            .await
            .unwrap();
    }
    let (token, entry) = new_token("schemathesis", Role::Admin);
    let router = ManagementPlane::new(scheduler.clone())
        .auth(Auth::new(vec![entry]))
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, true, async {
        let _ = stopped.await;
    }));
    let report = tempfile_dir();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "run",
                &format!("{base}/api/openapi.json"),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples",
                MAX_EXAMPLES,
                "--phases",
                "examples,coverage,fuzzing",
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--seed",
                "1",
                "-H",
                &format!("Authorization: Bearer {token}"),
            ])
            .env("NO_COLOR", "1")
            .current_dir(&report)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let _ = stop.send(());
    let _ = server.await;
    scheduler.shutdown(false).await.unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "schemathesis found failures (exit {:?}):\n{text}",
        output.status.code()
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("aps-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `openapi-spec-validator` (PyPI) accepts the generated document: a document that
/// declares a query filter as a required path parameter, say, is refused by it.
#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_passes_openapi_spec_validator() {
    let bin = std::env::var("APS_OPENAPI_VALIDATOR")
        .unwrap_or_else(|_| "openapi-spec-validator".to_owned());
    if Command::new(&bin).arg("--help").output().is_err() {
        if in_ci() {
            panic!("openapi-spec-validator is not installed ({bin}): `pip install openapi-spec-validator` (.ci/services.sh does)");
        }
        skip_notice("openapi-spec-validator (apscheduler-http): not installed; `pip install openapi-spec-validator`");
        return;
    }
    let scheduler = AsyncScheduler::from_builder(Engine::builder()).unwrap();
    let doc =
        serde_json::to_string_pretty(&ManagementPlane::new(scheduler.clone()).openapi()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc).unwrap();
    let out = Command::new(&bin).arg(&file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{text}"
    );
    assert!(text.contains("OK"), "{text}");
}
