//! Where backend tests find their servers, and a namespace of their own on them.
//!
//! One rule for every backend: a test reads its server's URL from an environment
//! variable (`APS_TEST_POSTGRES_URL`, `APS_TEST_REDIS_URL`, ...). When the variable is
//! unset or empty:
//! - under CI (`CI` set to `true` in any case, or `1`) the test **fails**: CI must test
//!   every backend against a real server;
//! - elsewhere the test is skipped and says so with a line on stderr, written to the
//!   process's stderr directly rather than through `eprintln!`, so the test harness's
//!   output capture does not swallow it and `cargo test` shows it even though the test
//!   itself reports `ok`:
//!
//! ```text
//! SKIPPED conformance (apscheduler-store-redis): APS_TEST_REDIS_URL is not set; start a Redis server and set it, e.g. APS_TEST_REDIS_URL=redis://127.0.0.1:6379/
//! ```
//!
//! ```
//! use apscheduler_testkit::server::{random_namespace, server_url};
//!
//! // In a test: `let Some(url) = server_url(...) else { return };`
//! # if !apscheduler_testkit::server::in_ci() {
//! let url = server_url("APS_TEST_DOCS_EXAMPLE_URL", "redis://127.0.0.1:6379/", "doc example");
//! assert!(url.is_none()); // and a SKIPPED line on stderr
//! # }
//! let ns = random_namespace();
//! assert!(ns.starts_with("aps_test_") && ns.len() == 21);
//! ```
//!
//! `scripts/test GROUP...` runs one backend's tests: it sets `APS_TEST_BACKENDS` to
//! the groups asked for, and a test whose server belongs to none of them is skipped
//! with a `SKIPPED ... not selected` line, under CI too (the selection is explicit).
//!
//! Fault tests start servers of their own, one module each: [`PrivateRedis`],
//! [`PrivatePostgres`], [`PrivateMariaDb`], [`PrivateZooKeeper`] and [`PrivateMongo`].

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};

mod mariadb;
mod mongo;
mod postgres;
mod redis;
mod zookeeper;

pub use mariadb::PrivateMariaDb;
pub use mongo::PrivateMongo;
pub use postgres::PrivatePostgres;
pub use redis::PrivateRedis;
pub(crate) use zookeeper::zookeeper_classpath;
pub use zookeeper::PrivateZooKeeper;

/// Whether this run is CI: `CI` is `true` (any case) or `1`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

/// The URL in the environment variable `var`, or `None` when the test must be skipped
/// (after the notice described in the [module docs](self)). `example` is a URL to suggest
/// in the notice; `test` names the test.
///
/// # Panics
/// When `var` is unset or empty under CI.
pub fn server_url(var: &str, example: &str, test: &str) -> Option<String> {
    if !selected(var, test) {
        return None;
    }
    if let Ok(url) = std::env::var(var) {
        if !url.trim().is_empty() {
            return Some(url);
        }
    }
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    assert!(
        !in_ci(),
        "{test} ({package}): {var} is not set, but CI is: CI must run this test against a \
         real server (`scripts/test` starts them and sets the variables)"
    );
    skip_notice(&format!(
        "{test} ({package}): {var} is not set; start a server and set it, e.g. {var}={example}"
    ));
    None
}

/// The backend groups of `scripts/test` whose tests read each URL variable.
const GROUPS_OF_VARS: &[(&str, &[&str])] = &[
    ("APS_TEST_POSTGRES_URL", &["postgres"]),
    ("APS_TEST_MYSQL_URL", &["mysql"]),
    (
        "APS_TEST_REDIS_URL",
        &["redis", "redis-sentinel", "redis-cluster"],
    ),
    ("APS_TEST_MONGODB_URL", &["mongodb"]),
    ("APS_TEST_ZOOKEEPER_URL", &["zookeeper"]),
];

/// Whether the tests that read `var` run in this selection: always, unless
/// `APS_TEST_BACKENDS` (set by `scripts/test GROUP...`, comma-separated groups) names
/// none of their groups. A test left out says so with a `SKIPPED` line; that is not
/// a failure under CI, since the selection was asked for by name.
fn selected(var: &str, test: &str) -> bool {
    let Ok(chosen) = std::env::var("APS_TEST_BACKENDS") else {
        return true;
    };
    let groups = GROUPS_OF_VARS
        .iter()
        .find(|(v, _)| *v == var)
        .map_or(&[][..], |(_, g)| *g);
    if groups.is_empty() || chosen.split(',').any(|c| groups.contains(&c.trim())) {
        return true;
    }
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    skip_notice(&format!(
        "{test} ({package}): not selected (APS_TEST_BACKENDS={chosen}; it needs {var})"
    ));
    false
}

/// Writes `SKIPPED <what>` to the process's stderr, past the test harness's capture.
pub fn skip_notice(what: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {what}");
}

/// A fresh name for this test's tables, key prefix, database or collection:
/// `aps_test_` and 12 random hex digits (valid as an SQL table name, a Redis key prefix
/// and a MongoDB database or collection name).
pub fn random_namespace() -> String {
    format!("aps_test_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A loopback port that is free now, for a server a test starts later (a private
/// server, an `aps run` daemon's `[http] listen`), and that no outgoing connection can
/// take meanwhile: it lies below the system's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), from which the kernel picks the local
/// ports of outgoing connections and of binds to port 0. A port bound to port 0 and
/// released is in that range, and a test's own clients (a store connection, an HTTP
/// call) can take it before the server binds it, or while a killed server is down.
/// Each process walks its own window of the range below, from its process id, and
/// never hands out a port twice.
pub fn spare_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    // Ports 10000 up to the ephemeral range: most well-known servers lie below.
    let (low, span) = (10_000, ephemeral_low.saturating_sub(10_000));
    if span < 1_000 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        return listener.local_addr().expect("local addr").port();
    }
    let start = (std::process::id() * 97) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(low + (start + n) % span).expect("below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {low} and {ephemeral_low}");
}

/// SIGKILLs and reaps a private server's process, if it runs.
pub(crate) fn kill_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `server.log` in a private server's directory, opened for appending (a restart adds
/// to it).
pub(crate) fn server_log(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("open the server's log")
}

/// Whether this process runs as root (servers that refuse root are told which user).
pub(crate) fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`, ...) to the process `pid` with `kill`: the
/// private servers' fault tests pause, resume and kill their nodes with it.
///
/// # Panics
/// When `kill` cannot run or fails.
pub fn signal_pid(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}
