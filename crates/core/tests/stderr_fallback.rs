//! The stderr fallback of `log_warn!` / `log_error!`, checked in child processes: whether a
//! global subscriber is installed is process-wide state, so each case runs in a fresh
//! copy of this test binary.

use std::process::Command;

const MODE: &str = "APS_DIAG_CHILD_MODE";

/// Runs this test binary again with only `child` selected, in `mode`; returns its stderr.
fn child_stderr(mode: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// The child's body: does nothing unless run by `child_stderr`.
#[test]
fn child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    if mode == "subscriber" {
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .finish(),
        )
        .unwrap();
    }
    let job_id = "report";
    apscheduler_core::log_warn!(target: "apscheduler", job_id, "Run time of job \"{job_id}\" was missed by 5s");
    apscheduler_core::log_error!(target: "apscheduler", "job store is unavailable: {}", "refused");
    tracing::info!(target: "apscheduler", "Scheduler started");
}

#[test]
fn without_a_subscriber_warnings_and_errors_reach_stderr() {
    let stderr = child_stderr("none");
    assert!(
        stderr.contains("WARN apscheduler: Run time of job \"report\" was missed by 5s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ERROR apscheduler: job store is unavailable: refused"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Scheduler started"),
        "info is not a fallback level: {stderr}"
    );
}

#[test]
fn an_installed_subscriber_turns_the_fallback_off() {
    let stderr = child_stderr("subscriber");
    assert!(!stderr.contains("was missed"), "{stderr}");
    assert!(!stderr.contains("unavailable"), "{stderr}");
}
