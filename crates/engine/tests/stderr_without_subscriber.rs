//! With no `tracing` subscriber installed, a failing job and a missed run still reach
//! stderr (APScheduler's last-resort handler does the same). Run in a child process: a
//! global subscriber is process-wide state.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use apscheduler_core::event::{EVENT_JOB_ERROR, EVENT_JOB_MISSED};
use apscheduler_engine::{BackgroundScheduler, JobSpec};
use chrono::Utc;

const CHILD: &str = "APS_STDERR_CHILD";

#[test]
fn child() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let scheduler = BackgroundScheduler::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    scheduler.add_listener(
        move |event| {
            let _ = tx.lock().unwrap().send(event.code());
        },
        EVENT_JOB_ERROR | EVENT_JOB_MISSED,
    );
    scheduler.register_task("fails", |_| Err("disk full".into()));
    scheduler.start(false).unwrap();
    scheduler
        .add_job(JobSpec::task("fails").id("failing"))
        .unwrap();
    let long_ago = Utc::now().with_timezone(&chrono_tz::UTC) - chrono::Duration::hours(1);
    scheduler
        .add_job(JobSpec::task("fails").id("late").trigger_args(
            "date",
            serde_json::json!({"run_date": long_ago.to_rfc3339()}),
        ))
        .unwrap();
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    scheduler.shutdown(true).unwrap();
}

#[test]
fn job_errors_and_misses_reach_stderr_without_a_subscriber() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ERROR apscheduler: job raised an error: error: disk full"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WARN apscheduler: Run time of job \"fails\" was missed by 1h"),
        "{stderr}"
    );
}
