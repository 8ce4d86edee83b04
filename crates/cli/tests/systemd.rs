//! `aps run` under systemd's `Type=notify` protocol, for real: the test plays systemd's
//! part with a unix datagram socket named by `NOTIFY_SOCKET`, and `WATCHDOG_USEC` /
//! `WATCHDOG_PID` set as systemd sets them. Also: the default config path
//! (`$APS_CONFIG`, else /etc/aps/aps.toml) of the commands that take `--config`.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Daemon, Dir, APS};

const CONFIG: &str = r#"
[scheduler]
timezone = "UTC"
shutdown_grace = "5s"

[[jobs]]
id = "tick"
command = "true"
interval = "1h"
"#;

/// The datagrams received on `sock` within `limit` until `done` holds for the list.
fn receive_until(
    sock: &UnixDatagram,
    limit: Duration,
    got: &mut Vec<String>,
    done: impl Fn(&[String]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while !done(got) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            // One datagram holds one or more `NAME=value` lines.
            let text = String::from_utf8_lossy(&buf[..n]);
            got.extend(text.lines().map(str::to_owned));
        }
    }
    true
}

fn count(got: &[String], line: &str) -> usize {
    got.iter().filter(|l| *l == line).count()
}

#[test]
fn ready_after_start_watchdog_pings_reloading_then_ready_on_sighup_and_stopping() {
    let dir = Dir::new(CONFIG);
    let socket_path = dir.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let log = dir.dir.path().join("daemon.log");
    // `exec` keeps the shell's pid, so WATCHDOG_PID=$$ names the daemon as systemd does.
    let child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"")
        .arg(APS)
        .arg(dir.config())
        .env("NOTIFY_SOCKET", &socket_path)
        // 1 s: pings every 0.5 s.
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("APS_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, log };

    let mut got = Vec::new();
    assert!(
        receive_until(&sock, Duration::from_secs(60), &mut got, |g| g
            .iter()
            .any(|l| l == "READY=1")),
        "no READY=1 within 60 s; got {got:?}; log:\n{}",
        daemon.log()
    );
    // READY=1 comes once the scheduler runs: the config's jobs are in the store and
    // the scheduler has resumed.
    assert!(
        daemon.log().contains("Resumed scheduler job processing"),
        "READY=1 before the scheduler resumed; log:\n{}",
        daemon.log()
    );
    let jobs = dir.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(
        !got.iter().any(|l| l == "STOPPING=1" || l == "RELOADING=1"),
        "{got:?}"
    );

    // Pings follow, at about half of WATCHDOG_USEC: three within a generous 30 s.
    let ready_at = got.len();
    assert!(
        receive_until(&sock, Duration::from_secs(30), &mut got, |g| count(
            &g[ready_at..],
            "WATCHDOG=1"
        ) >= 3),
        "fewer than 3 WATCHDOG=1 after READY=1; got {got:?}; log:\n{}",
        daemon.log()
    );
    assert!(
        daemon
            .log()
            .contains("systemd watchdog: 1.0s; pinging every 0.5s"),
        "{}",
        daemon.log()
    );

    // SIGHUP: RELOADING=1 (with the monotonic time Type=notify-reload needs), READY=1.
    daemon.signal("HUP");
    let before = got.len();
    assert!(
        receive_until(&sock, Duration::from_secs(30), &mut got, |g| {
            let new = &g[before..];
            new.iter()
                .position(|l| l == "RELOADING=1")
                .is_some_and(|at| new[at..].iter().any(|l| l == "READY=1"))
        }),
        "no RELOADING=1 then READY=1 after SIGHUP; got {:?}; log:\n{}",
        &got[before..],
        daemon.log()
    );
    assert!(
        got[before..]
            .iter()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{:?}",
        &got[before..]
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    daemon.signal("TERM");
    let before = got.len();
    assert!(
        receive_until(&sock, Duration::from_secs(30), &mut got, |g| g[before..]
            .iter()
            .any(|l| l == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM; got {:?}; log:\n{}",
        &got[before..],
        daemon.log()
    );
    assert_eq!(daemon.wait(Duration::from_secs(60)), Some(0));
}

#[test]
fn without_notify_socket_or_watchdog_nothing_is_sent_and_the_daemon_runs() {
    let dir = Dir::new(CONFIG);
    let mut daemon = dir.start();
    assert!(!daemon.log().contains("systemd"), "{}", daemon.log());
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(60)), Some(0));
}

#[test]
fn a_watchdog_for_another_pid_is_not_pinged() {
    // systemd names the main process in WATCHDOG_PID; a child that inherits the
    // variables (a job, a wrapper) must not ping in its name.
    let dir = Dir::new(CONFIG);
    let socket_path = dir.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let log = dir.dir.path().join("daemon.log");
    let child = Command::new(APS)
        .args(["run", "--config"])
        .arg(dir.config())
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, log };
    let mut got = Vec::new();
    assert!(
        receive_until(&sock, Duration::from_secs(60), &mut got, |g| g
            .iter()
            .any(|l| l == "READY=1")),
        "no READY=1; got {got:?}; log:\n{}",
        daemon.log()
    );
    // Five ping intervals (0.1 s each) and more: none comes.
    receive_until(&sock, Duration::from_secs(2), &mut got, |_| false);
    assert_eq!(count(&got, "WATCHDOG=1"), 0, "{got:?}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(60)), Some(0));
}

#[test]
fn a_daemon_that_cannot_start_never_says_ready() {
    // Nothing listens on port 1: the store cannot be reached, start-up fails (exit 1).
    let dir = Dir::new(
        "[store]\nurl = \"postgres://root@127.0.0.1:1/none?connect_timeout=2\"\n\n[[jobs]]\nid = \"tick\"\ncommand = \"true\"\ninterval = \"1h\"\n",
    );
    let socket_path = dir.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let log = dir.dir.path().join("daemon.log");
    let child = Command::new(APS)
        .args(["run", "--config"])
        .arg(dir.config())
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, log };
    let code = daemon.wait(Duration::from_secs(120));
    assert_eq!(code, Some(1), "log:\n{}", daemon.log());
    let mut got = Vec::new();
    receive_until(&sock, Duration::from_millis(500), &mut got, |_| false);
    assert!(!got.iter().any(|l| l == "READY=1"), "{got:?}");
}

/// `aps <args>` with `APS_CONFIG` set to `env` (or unset).
fn aps_with_env(args: &[&str], env: Option<&std::path::Path>) -> std::process::Output {
    let mut cmd = Command::new(APS);
    cmd.args(args);
    match env {
        Some(path) => cmd.env("APS_CONFIG", path),
        None => cmd.env_remove("APS_CONFIG"),
    };
    cmd.output().unwrap()
}

#[test]
fn aps_config_names_the_config_of_every_command_that_takes_one() {
    let dir = Dir::new(CONFIG);
    // The jobs reach the store through `aps run`, started on $APS_CONFIG alone.
    let log = dir.dir.path().join("daemon.log");
    let child = Command::new(APS)
        .arg("run")
        .env("APS_CONFIG", dir.config())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, log };
    support::wait_for("the daemon to start", Duration::from_secs(60), || {
        daemon.log().contains("Resumed scheduler job processing")
    });
    let list = aps_with_env(&["jobs", "list", "--json"], Some(&dir.config()));
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(jobs[0]["id"], "tick", "{jobs:?}");
    for args in [&["history"][..], &["nodes"], &["config", "check"]] {
        let out = aps_with_env(args, Some(&dir.config()));
        assert!(
            out.status.success(),
            "aps {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // --config wins over the variable.
    let other = Dir::new("[scheduler]\ntimezone = \"UTC\"\n");
    let out = aps_with_env(
        &["config", "check", other.config().to_str().unwrap()],
        Some(&dir.config()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&other.config().display().to_string()),
        "{text}"
    );
    assert!(!text.contains("tick"), "{text}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(60)), Some(0));
}

#[test]
fn a_missing_config_names_aps_config_and_the_default_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    for args in [
        &["run"][..],
        &["jobs", "list"],
        &["history"],
        &["nodes"],
        &["config", "check"],
    ] {
        let out = aps_with_env(args, Some(&missing));
        assert_eq!(out.status.code(), Some(2), "aps {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("APS_CONFIG={}", missing.display()))
                && err.contains("/etc/aps/aps.toml"),
            "aps {args:?}: {err}"
        );
    }
    // Unset: /etc/aps/aps.toml is the config. The Debian package installs it; the CI
    // removes the package after its check, so there it is absent.
    let out = aps_with_env(&["config", "check"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    if std::path::Path::new("/etc/aps/aps.toml").exists() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("/etc/aps/aps.toml") || err.contains("/etc/aps/aps.toml"),
            "{text}{err}"
        );
    } else {
        assert_eq!(out.status.code(), Some(2));
        assert!(
            err.contains("APS_CONFIG is not set") && err.contains("/etc/aps/aps.toml"),
            "{err}"
        );
    }
}
