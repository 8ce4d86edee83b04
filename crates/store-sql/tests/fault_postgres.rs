//! Fault tolerance: a `BackgroundScheduler` on a SQL store whose PostgreSQL server goes
//! away for ~2 s (`pg_ctl stop -m immediate`) and comes back. The scheduler must not
//! crash, must log the failures, and must not lose the job: it is still in the table
//! and keeps running once the server is back.
//!
//! The server is a private one (`initdb` + `pg_ctl` on a spare port, in a temporary
//! directory), stopped and deleted at the end even when the test fails. As root,
//! `initdb` refuses to run: the server then runs as the `postgres` user through
//! `runuser`. The test runs when `APS_TEST_POSTGRES_URL` is set (PostgreSQL testing is
//! on); it fails when `initdb` is then missing under CI.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::JobStore;
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec, SchedulerState};
use apscheduler_store_sql::SqlJobStore;
use apscheduler_testkit::server::PrivatePostgres;
use serde_json::json;
use support::{server_url, POSTGRES_ENV};

/// Collects the `tracing` output of every thread (the scheduler logs from its own).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn wait_for(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn scheduler_survives_a_postgres_outage() {
    if server_url(POSTGRES_ENV, "scheduler_survives_a_postgres_outage").is_none() {
        return;
    }
    let Some(server) = PrivatePostgres::init() else {
        assert!(
            !apscheduler_testkit::server::in_ci(),
            "initdb is not on PATH: the PostgreSQL fault test cannot run in CI"
        );
        apscheduler_testkit::server::skip_notice(
            "scheduler_survives_a_postgres_outage (apscheduler-store-sql): initdb is not on PATH",
        );
        return;
    };
    server.start();

    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("install the log subscriber");

    let store = SqlJobStore::builder(server.url())
        .table_name("aps_fault")
        .acquire_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // A short lease: a claim whose release was lost in the outage is taken again soon.
    let engine = Engine::builder()
        .timezone(chrono_tz::UTC)
        .lease(Duration::from_secs(2))
        .jobstore("default", Arc::new(store))
        .build();
    let scheduler = BackgroundScheduler::from_engine(engine).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    scheduler.register_task("beat", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    scheduler.start(false).unwrap();
    scheduler
        .add_job(
            JobSpec::task("beat")
                .id("beat")
                .trigger_args("interval", json!({"seconds": 0.2})),
        )
        .unwrap();
    wait_for("runs before the outage", Duration::from_secs(10), || {
        runs.load(Ordering::SeqCst) >= 5
    });

    server.stop();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        scheduler.state(),
        SchedulerState::Running,
        "the scheduler stopped"
    );
    let during = runs.load(Ordering::SeqCst);
    assert!(
        logs.text().contains("error processing job store"),
        "the outage was not logged:\n{}",
        logs.text()
    );

    server.start();
    wait_for("runs after the outage", Duration::from_secs(15), || {
        runs.load(Ordering::SeqCst) >= during + 5
    });
    assert_eq!(scheduler.state(), SchedulerState::Running);
    let job = scheduler
        .get_job("beat")
        .unwrap()
        .expect("the job was lost");
    assert_eq!(&*job.job().id, "beat");
    scheduler.shutdown(true).unwrap();

    // Still in the table, scheduled, not marked corrupt.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqlJobStore::builder(server.url())
            .table_name("aps_fault")
            .build()
            .unwrap();
        let jobs = store.get_all_jobs().await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert!(jobs[0].next_run_time.is_some());
        assert!(store.corrupt_jobs().await.unwrap().is_empty());
        store.shutdown().await.unwrap();
    });
    let warnings = logs.text();
    eprintln!(
        "outage: {} runs in all; {} warning line(s) logged:",
        runs.load(Ordering::SeqCst),
        warnings.lines().count()
    );
    for line in warnings.lines().take(20) {
        eprintln!("    {line}");
    }
}
