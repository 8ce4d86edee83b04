//! Three `aps run` daemons on one shared store, and reading back what they did: the
//! cluster tests' helpers, shared by every store's (`cluster.rs`, `sentinel.rs`).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{aps_ok, Daemon};

/// A daemon's node name: the configured host name, then its pid.
pub fn node_name(daemon: &Daemon) -> String {
    format!("cluster/{}", daemon.pid())
}

/// Every run record in the store's history.
pub fn history(url: &str) -> Vec<Value> {
    history_with(url, &[])
}

/// The run records `aps history` lists with these filters.
pub fn history_with(url: &str, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["history", "--limit", "1000000", "--json", "--store", url];
    args.extend_from_slice(filters);
    serde_json::from_slice(&aps_ok(&args)).unwrap()
}

/// One second in microseconds.
pub const SECOND: i64 = 1_000_000;

/// Writes `aps.toml` in `dir`: `scheduler` lines added to `[scheduler]` (UTC, node
/// name `cluster`), the store `url`, `sections`, job defaults (coalesce off, 30 s grace)
/// and `jobs` jobs `job-000`... every second running `command`; starts three daemons on
/// it and waits until each runs its jobs.
pub fn start_three(
    dir: &Path,
    scheduler: &str,
    url: &str,
    sections: &str,
    jobs: usize,
    command: &str,
) -> Vec<Daemon> {
    let config = dir.join("aps.toml");
    let mut text = format!(
        "[scheduler]\ntimezone = \"UTC\"\nnode = \"cluster\"\n{scheduler}[store]\nurl = \"{url}\"\n\
         {sections}[job_defaults]\ncoalesce = false\nmisfire_grace_time = 30\n"
    );
    for i in 0..jobs {
        text.push_str(&format!(
            "[[jobs]]\nid = \"job-{i:03}\"\ninterval = 1\ncommand = \"{command}\"\n"
        ));
    }
    std::fs::write(&config, text).unwrap();
    let mut nodes: Vec<Daemon> = (0..3)
        .map(|i| Daemon::spawn(&config, dir.join(format!("node-{i}.log"))))
        .collect();
    for node in &mut nodes {
        node.wait_started(Duration::from_secs(60));
    }
    nodes
}

/// SIGTERM to each daemon, then waits for all of them.
pub fn stop_all(nodes: &mut [Daemon]) {
    for node in nodes.iter() {
        node.signal("TERM");
    }
    for node in nodes.iter_mut() {
        node.child.wait().unwrap();
    }
}

/// Microseconds since the epoch of an RFC 3339 time.
pub fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}
