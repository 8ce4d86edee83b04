//! A job that runs only when the daemon starts (`at_start = true`, no trigger; cron's
//! `@reboot`) has no fire time to resume to: `aps jobs resume` and `POST
//! /api/jobs/{id}/resume` refuse it, naming the job and why, and leave it stored as it
//! was (paused, run at the next start) instead of scheduling it for 1970.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{free_port, http_call, Dir};

fn config(port: u16) -> String {
    format!(
        r#"
[scheduler]
timezone = "UTC"
[http]
listen = "127.0.0.1:{port}"
[[jobs]]
id = "boot"
command = "true"
at_start = true
[[jobs]]
id = "nightly"
command = "true"
cron = "0 3 * * *"
"#
    )
}

/// `boot` as `aps jobs list --json` shows it.
fn boot(dir: &Dir) -> Value {
    dir.jobs()
        .into_iter()
        .find(|j| j["id"] == "boot")
        .expect("the job 'boot' is listed")
}

/// The job is still waiting for the next start: no fire time, and no run recorded
/// missed for a resume.
fn still_start_only(dir: &Dir) {
    let job = boot(dir);
    assert!(job["next_run_time"].is_null(), "{job}");
    assert!(
        !dir.outcomes("boot").iter().any(|o| o == "missed"),
        "{:?}",
        dir.history("boot")
    );
}

#[test]
fn resuming_a_start_only_job_is_refused_by_the_cli_and_the_api() {
    let port = free_port();
    let dir = Dir::new(&config(port));
    let mut daemon = dir.spawn();
    daemon.wait_healthy(port, Duration::from_secs(30));
    support::wait_for("the start's run of boot", Duration::from_secs(20), || {
        !dir.history("boot").is_empty()
    });

    let (status, body) = http_call(
        "POST",
        &format!("http://127.0.0.1:{port}/api/jobs/boot/resume"),
        None,
        None,
    );
    assert_eq!(status, 409, "{body}");
    let error: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(error["code"], "invalid_state", "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("'boot'") && message.contains("at_start"),
        "the message names the job and why: {error}"
    );
    still_start_only(&dir);

    let out = dir.aps(&["jobs", "resume", "boot"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "resumed: {}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("'boot'") && stderr.contains("at_start"),
        "the message names the job and why: {stderr}"
    );
    still_start_only(&dir);

    // A job with a trigger still resumes.
    let (status, body) = http_call(
        "POST",
        &format!("http://127.0.0.1:{port}/api/jobs/nightly/pause"),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_call(
        "POST",
        &format!("http://127.0.0.1:{port}/api/jobs/nightly/resume"),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(daemon.stop(), Some(0), "log:\n{}", daemon.log());
}
