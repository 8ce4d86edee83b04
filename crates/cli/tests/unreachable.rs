//! `aps run` (and `aps jobs`) on a store that cannot be reached exits at once, or after
//! `[store] connect_timeout`, with the store, the address and the cause on stderr and
//! exit code 1 — for every kind of store. Loopback only: no server is needed.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use apscheduler_testkit::unreachable::{closed_port, BlackHole, UNKNOWN_HOST};
use support::Dir;

/// Generous for a loaded machine: the time-outs under test are 1 s, the refusals
/// immediate.
const WITHIN: Duration = Duration::from_secs(10);

/// Runs `aps <args>` on a config naming `url` (and `connect_timeout`, when given):
/// its exit code, stderr and how long it took.
fn run(args: &[&str], url: &str, connect_timeout: Option<&str>) -> (Option<i32>, String, Duration) {
    let timeout = connect_timeout
        .map(|t| format!("connect_timeout = {t}\n"))
        .unwrap_or_default();
    let dir = Dir::new(&format!("[store]\nurl = \"{url}\"\n{timeout}"));
    let began = Instant::now();
    let out: Output = dir.aps(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        began.elapsed(),
    )
}

fn assert_fails(args: &[&str], url: &str, connect_timeout: Option<&str>, wanted: &[&str]) {
    let (code, stderr, took) = run(args, url, connect_timeout);
    assert_eq!(code, Some(1), "{url}: {stderr}");
    for w in wanted {
        assert!(stderr.contains(w), "{url}: no {w:?} in {stderr:?}");
    }
    assert!(took < WITHIN, "{url}: exited after {took:?}: {stderr}");
    assert!(!stderr.contains("aps daemon started"), "{stderr}");
}

#[test]
fn a_refused_store_stops_the_daemon_at_once_with_the_cause() {
    let port = closed_port();
    for (url, store) in [
        (
            format!("postgres://root@127.0.0.1:{port}/test"),
            "PostgreSQL",
        ),
        (
            format!("mysql://root@127.0.0.1:{port}/test"),
            "MySQL/MariaDB",
        ),
        (format!("redis://127.0.0.1:{port}/"), "Redis"),
        (
            format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            "MongoDB",
        ),
        (format!("zookeeper://127.0.0.1:{port}/aps"), "ZooKeeper"),
    ] {
        let wanted =
            format!("cannot reach the {store} store at 127.0.0.1:{port}: connection refused");
        assert_fails(&["run"], &url, None, &[&wanted]);
    }
    // The daemon's log has it too, as an error.
    let (_, stderr, _) = run(
        &["run"],
        &format!("postgres://root@127.0.0.1:{port}/test"),
        None,
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("cannot reach the PostgreSQL store")),
        "{stderr}"
    );
}

#[test]
fn a_black_hole_stops_the_daemon_after_the_configured_connect_timeout() {
    let hole = BlackHole::new();
    let port = hole.port();
    for url in [
        format!("postgres://root@127.0.0.1:{port}/test"),
        format!("mysql://root@127.0.0.1:{port}/test"),
        format!("redis://127.0.0.1:{port}/"),
        format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        format!("zookeeper://127.0.0.1:{port}/aps"),
    ] {
        let (code, stderr, took) = run(&["run"], &url, Some("\"1s\""));
        assert_eq!(code, Some(1), "{url}: {stderr}");
        assert!(stderr.contains("timed out after 1.0 s"), "{url}: {stderr}");
        assert!(stderr.contains("connect_timeout = 1s"), "{url}: {stderr}");
        assert!(
            took >= Duration::from_millis(900) && took < WITHIN,
            "{url}: {took:?}"
        );
    }
}

#[test]
fn an_unknown_host_is_named() {
    let url = format!("postgres://root@{UNKNOWN_HOST}:5432/test");
    assert_fails(
        &["run"],
        &url,
        None,
        &[
            "unknown host 'nonexistent.invalid'",
            "name resolution failed",
        ],
    );
}

#[test]
fn management_commands_fail_the_same_way() {
    let url = format!("redis://127.0.0.1:{}/", closed_port());
    assert_fails(
        &["jobs", "list"],
        &url,
        Some("2"),
        &[
            "cannot reach the Redis store",
            "connection refused",
            "connect_timeout = 2s",
        ],
    );
}

#[test]
fn a_bad_connect_timeout_is_a_config_error() {
    for (value, wanted) in [
        ("\"0s\"", "must be more than 0"),
        ("\"soon\"", "invalid duration 'soon'"),
    ] {
        let (code, stderr, _) = run(&["run"], "sqlite:///aps.db", Some(value));
        assert_eq!(code, Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains("aps.toml:3:19: store.connect_timeout"),
            "{value}: {stderr}"
        );
        assert!(stderr.contains(wanted), "{value}: {stderr}");
    }
}
