//! Helpers shared by the engine's test files (each file is its own crate and uses a
//! part of them, hence the `dead_code` allowance).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{JobStore, ManualClock, NodeInfo, RunHistory, RunRecord};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use chrono::{DateTime, TimeZone, Utc};

/// 2024-01-15 at `h:m:s` UTC, the tests' day.
pub(crate) fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, h, m, s).unwrap()
}

/// A record `running` on `node` of `job`'s fire time 09:59:00.
pub(crate) fn running(run_id: &str, job: &str, node: &str) -> RunRecord {
    RunRecord {
        started_at: Some(at(9, 59, 0)),
        ..RunRecord::pending(run_id, job, at(9, 59, 0), node)
    }
}

/// A registry entry of another host, last heard from at `heartbeat_at`.
pub(crate) fn entry(node: &str, heartbeat_at: DateTime<Utc>) -> NodeInfo {
    NodeInfo {
        node: node.into(),
        host: "elsewhere".into(),
        pid: 7,
        started_at: at(9, 0, 0),
        heartbeat_at,
        running: 1,
        protocol: apscheduler_core::RunProtocol::HistoryRecords,
    }
}

/// Polls `done` every 20 ms for up to 4 s; panics naming `what` after that.
pub(crate) async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Asserts that `result` is an error of `kind` whose message mentions every needle.
pub(crate) fn assert_err(
    result: Result<impl std::fmt::Debug, apscheduler_core::Error>,
    kind: apscheduler_core::ErrorKind,
    needles: &[&str],
) {
    let err = result.expect_err("expected an error");
    assert_eq!(err.kind(), kind, "wrong kind for: {err}");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} does not mention {n:?}");
    }
}

/// A started node `me/1` on `store`, keeping `history` with `options`, its clock at
/// 09:59:59 of the tests' day, with the job `job` running the task `work` (inline)
/// every minute from 10:00; also the count of the task's runs.
pub(crate) async fn node_with_minutely_job(
    store: Arc<dyn JobStore>,
    history: Arc<dyn RunHistory>,
    options: HistoryOptions,
) -> (Arc<ManualClock>, Engine, Arc<AtomicUsize>) {
    let clock = Arc::new(ManualClock::new(at(9, 59, 59)));
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/1")
        .run_history(history, options)
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    engine.register_task("work", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(serde_json::json!(null))
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(JobSpec::task("work").id("job").trigger_args(
            "interval",
            serde_json::json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
        ))
        .await
        .unwrap();
    (clock, engine, runs)
}

/// What this test process logged, from every thread, from the first call on (a global
/// subscriber: the executors' workers report the outcomes).
pub(crate) fn logs() -> &'static Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
}

/// A writer appending to the captured logs.
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
