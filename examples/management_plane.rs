//! The management plane in a library (beyond APScheduler, which has none): the same
//! router `aps run` serves (HTTP API, dashboard, `/metrics`, `/health`), mounted on a
//! program's own scheduler, with run metrics and a failure webhook hung on its run
//! records.
//!
//! It serves on a free loopback port (no tokens: loopback clients only), asks its own
//! API for the jobs and runs a job now, prints what it got and a few metric lines, and
//! stops after `APS_EXAMPLE_SECONDS` (default 2). Open the printed address in a browser
//! for the dashboard while it runs (`APS_EXAMPLE_SECONDS=600`).
//!
//! Run: `cargo run -p apscheduler --example management_plane --features http`

use std::sync::Arc;
use std::time::Duration;

use apscheduler::core::JobStore;
use apscheduler::http::metrics::{MetricsOptions, RunMetrics};
use apscheduler::http::{serve, ManagementPlane};
use apscheduler::prelude::*;
use apscheduler::scheduler::{EngineBuilder, HistoryOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One plain HTTP/1.1 request to `addr`: the response's body.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(_, body)| body.to_owned()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryJobStore::new());
    let history = store.run_history().expect("the memory store keeps history");
    // Metrics see every run record the scheduler makes.
    let metrics = RunMetrics::prometheus(MetricsOptions::default());
    let scheduler = AsyncScheduler::from_builder(
        EngineBuilder::default()
            .jobstore("default", store)
            .run_history(
                history,
                HistoryOptions::default().observe(Arc::new(metrics.clone())),
            ),
    )?;
    scheduler.register_task("report", |_ctx| Ok(json!("report sent")));
    scheduler.start(false).await?;
    scheduler
        .add_job(
            JobSpec::task("report")
                .id("nightly-report")
                .trigger_args("cron", json!({"hour": 2, "minute": 30})),
        )
        .await?;

    let router = ManagementPlane::new(scheduler.clone())
        .metrics(metrics)
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("dashboard and API at http://{addr}/ (loopback only: no tokens configured)");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, false, async {
        let _ = stopped.await;
    }));

    println!(
        "GET /api/jobs -> {}",
        request(addr, "GET", "/api/jobs").await?
    );
    println!(
        "POST /api/jobs/nightly-report/run -> {}",
        request(addr, "POST", "/api/jobs/nightly-report/run").await?
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = request(addr, "GET", "/metrics").await?;
    for line in text
        .lines()
        .filter(|l| l.starts_with("aps_runs_total") || l.starts_with("aps_jobs"))
    {
        println!("{line}");
    }

    let seconds: u64 = std::env::var("APS_EXAMPLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let _ = stop.send(());
    server.await??;
    scheduler.shutdown(true).await?;
    Ok(())
}
