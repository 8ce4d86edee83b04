//! End-to-end: `aps backfill` against a running `aps run` (its `[http]` API, the
//! embedded SQLite store): an hour of an every-minute job runs 60 runs, a second
//! backfill of the hour runs none, `--dry-run` lists 60 and runs nothing, and an
//! inverted or unbounded range is refused naming the field.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::{free_port, http_call, token, wait_for, Dir};

/// The hour backfilled (fixed, far from the job's own fire times while the test runs).
const FROM: &str = "2026-01-05T10:00:00Z";
const TO: &str = "2026-01-05T11:00:00Z";

/// The job's runs scheduled in the backfilled hour, by outcome.
fn in_hour(dir: &Dir, outcome: &str) -> usize {
    dir.history("minutely")
        .iter()
        .filter(|r| {
            r["scheduled_at"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-01-05T10:") || t.starts_with("2026-01-05 10:"))
                && r["outcome"] == outcome
        })
        .count()
}

fn backfill(dir: &Dir, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["backfill", "minutely", "--from", FROM, "--to", TO];
    args.extend_from_slice(extra);
    dir.aps(&args)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn an_hour_of_minutes_runs_sixty_runs_once() {
    let port = free_port();
    let dir = Dir::new(&format!(
        r#"
[scheduler]
timezone = "UTC"
[http]
listen = "127.0.0.1:{port}"
[[jobs]]
id = "minutely"
command = "true"
cron = "* * * * *"
"#
    ));
    let mut daemon = dir.spawn();
    daemon.wait_healthy(port, Duration::from_secs(30));

    // The plan: 60 fire times listed, nothing run.
    let out = backfill(&dir, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(listed.contains("would run 60 fire time(s)"), "{listed}");
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("run ")).count(),
        60,
        "{listed}"
    );
    assert!(
        listed.contains("2026-01-05T10:00:00") && listed.contains("2026-01-05T10:59:00"),
        "{listed}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(in_hour(&dir, "success") + in_hour(&dir, "running"), 0);

    // For real, fast.
    // Under the job's `skip` (max_instances 1) one at a time: each waits for the last.
    let out = backfill(&dir, &["--rate", "200/s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("60 run(s) being started"),
        "{}",
        text(&out.stdout)
    );
    wait_for(
        "60 successful backfilled runs",
        Duration::from_secs(60),
        || in_hour(&dir, "success") == 60,
    );

    // Again: every fire time already succeeded.
    let out = backfill(&dir, &["--rate", "200/s", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["to_run"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["already_succeeded"].as_array().unwrap().len(), 60);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(in_hour(&dir, "success"), 60);

    // The counter.
    let (status, metrics) = http_call(
        "GET",
        &format!("http://127.0.0.1:{port}/metrics"),
        None,
        None,
    );
    assert_eq!(status, 200);
    assert!(
        metrics.contains("aps_backfilled_total{job=\"minutely\"} 60"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("backfill"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Refused: inverted, and a year of minutes without --force.
    let out = dir.aps(&["backfill", "minutely", "--from", TO, "--to", FROM]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("field 'to'"),
        "{}",
        text(&out.stderr)
    );
    let out = dir.aps(&[
        "backfill",
        "minutely",
        "--from",
        "2025-01-01T00:00:00Z",
        "--to",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(
        e.contains("field 'to'") && e.contains("more than 10000 fire times"),
        "{e}"
    );
    let out = dir.aps(&["backfill", "nope", "--from", FROM, "--to", TO]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
    let out = backfill(&dir, &["--rate", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--rate"),
        "{}",
        text(&out.stderr)
    );

    assert_eq!(daemon.stop(), Some(0), "log:\n{}", daemon.log());
}

#[test]
fn without_an_http_table_backfill_says_it_needs_the_daemons_api() {
    let dir = Dir::new(
        r#"
[[jobs]]
id = "minutely"
command = "true"
cron = "* * * * *"
"#,
    );
    let out = backfill(&dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("[http]"),
        "{}",
        text(&out.stderr)
    );
}

/// The daemon applies a job's `catchup` after downtime: the fire times missed while it
/// was stopped run (each, with `mode = "all"`), where a job without catch-up records
/// them `missed`.
#[test]
fn after_downtime_the_daemon_catches_up_within_the_window() {
    let dir = Dir::new(
        r#"
[scheduler]
timezone = "UTC"
[[jobs]]
id = "caught"
command = "true"
interval = "2s"
catchup = { window = "1h", mode = "all" }
[[jobs]]
id = "plain"
command = "true"
interval = "2s"
coalesce = false
"#,
    );
    let count = |job: &str, outcome: &str| {
        dir.history(job)
            .iter()
            .filter(|r| r["outcome"] == outcome)
            .count()
    };
    // The job's successful runs scheduled while the daemon was down.
    let during = |job: &str, down: DateTime<Utc>, up: DateTime<Utc>| {
        dir.history(job)
            .iter()
            .filter(|r| r["outcome"] == "success")
            .filter_map(|r| r["scheduled_at"].as_str()?.parse::<DateTime<Utc>>().ok())
            .filter(|t| *t > down && *t < up)
            .count()
    };
    let mut daemon = dir.start();
    wait_for("a first run of each job", Duration::from_secs(30), || {
        count("caught", "success") >= 1 && count("plain", "success") >= 1
    });
    assert_eq!(daemon.stop(), Some(0), "log:\n{}", daemon.log());
    let down = Utc::now();
    // Down long enough for at least 3 fire times of each job to pass their 1 s grace.
    std::thread::sleep(Duration::from_secs(8));
    let up = Utc::now() - chrono::Duration::seconds(1);
    let mut daemon = dir.start();
    wait_for(
        "the plain job's missed fire times",
        Duration::from_secs(30),
        || count("plain", "missed") >= 3,
    );
    wait_for("the caught-up runs", Duration::from_secs(30), || {
        during("caught", down, up) >= 3
    });
    assert_eq!(during("plain", down, up), 0, "{:?}", dir.history("plain"));
    assert_eq!(count("caught", "missed"), 0, "{:?}", dir.history("caught"));
    assert_eq!(daemon.stop(), Some(0), "log:\n{}", daemon.log());
}

/// `POST /api/jobs/{id}/backfill` needs the `operate` role, is in the OpenAPI document,
/// and refuses bad bodies naming the field.
#[test]
fn the_backfill_endpoint_needs_operate_and_is_documented() {
    let port = free_port();
    let (read, read_table) = token("read", "viewer");
    let (operate, operate_table) = token("operate", "ops");
    let dir = Dir::new(&format!(
        r#"
[scheduler]
timezone = "UTC"
[http]
listen = "127.0.0.1:{port}"
{read_table}
{operate_table}
[[jobs]]
id = "minutely"
command = "true"
cron = "* * * * *"
"#
    ));
    let mut daemon = dir.spawn();
    daemon.wait_healthy(port, Duration::from_secs(30));
    let url = format!("http://127.0.0.1:{port}/api/jobs/minutely/backfill");
    let body = format!(r#"{{"from": "{FROM}", "to": "{TO}", "dry_run": true}}"#);
    assert_eq!(http_call("POST", &url, None, Some(&body)).0, 401);
    assert_eq!(http_call("POST", &url, Some(&read), Some(&body)).0, 403);
    let (status, plan) = http_call("POST", &url, Some(&operate), Some(&body));
    assert_eq!(status, 200, "{plan}");
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["to_run"].as_array().unwrap().len(), 60);
    for (bad, field) in [
        (
            r#"{"from": "yesterday", "to": "2026-01-05T11:00:00Z"}"#,
            "from",
        ),
        (
            r#"{"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T11:00:00Z", "overlap": "sometimes"}"#,
            "overlap",
        ),
        (
            r#"{"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T11:00:00Z", "rate_per_sec": -2}"#,
            "rate_per_sec",
        ),
    ] {
        let (status, error) = http_call("POST", &url, Some(&operate), Some(bad));
        assert_eq!(status, 400, "{error}");
        let error: Value = serde_json::from_str(&error).unwrap();
        assert_eq!(error["field"], field, "{error}");
    }
    let (_, doc) = http_call(
        "GET",
        &format!("http://127.0.0.1:{port}/api/openapi.json"),
        Some(&read),
        None,
    );
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(
        doc["paths"]["/api/jobs/{id}/backfill"]["post"].is_object(),
        "not documented"
    );
    assert_eq!(daemon.stop(), Some(0), "log:\n{}", daemon.log());
}
