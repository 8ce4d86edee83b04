//! Three `aps run` daemons on one shared store, and reading back what they did: the
//! cluster tests' helpers (`cluster_*.rs`; `failover.rs` builds on them), and the turn
//! they take one at a time.

use std::collections::BTreeMap;
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

/// The `[scheduler]` line of the cluster tests that check runs kept as history records
/// (`leased_runs = false`, the protocol's own messages and mechanisms: `record_starts`,
/// the reaper, skips naming nodes). The others run the default, leased runs.
pub const HISTORY_RECORDS: &str = "leased_runs = false\n";

/// Writes `aps.toml` in `dir`: `scheduler` lines added to `[scheduler]` (UTC, node
/// name `cluster`; the run protocol is the default, leased runs, unless `scheduler`
/// sets `leased_runs`), the store `url`, `sections`, job defaults (coalesce off, 30 s
/// grace) and `jobs` jobs `job-000`... every second running `command`; starts three
/// daemons on it and waits until each runs its jobs.
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

/// The nodes `aps nodes` lists as live, by name.
pub fn node_names(url: &str) -> Vec<String> {
    let nodes: Vec<Value> =
        serde_json::from_slice(&aps_ok(&["nodes", "--json", "--store", url])).unwrap();
    for n in &nodes {
        assert_eq!(n["state"], "live", "{n}");
    }
    nodes
        .iter()
        .map(|n| n["node"].as_str().unwrap().to_owned())
        .collect()
}

/// The gaps in each job's fire times (`job-000` .. `job-{jobs-1}`, a second apart) in
/// `times` (the recorded (job, fire time µs) keys, sorted): a job without runs, or
/// whose runs start later than 2 s after `started` or end earlier than `end_slack` s
/// before `ended`, and every missing second, but those `excused` (job, fire time µs;
/// counted instead).
/// Returns the gaps and the number excused.
pub fn gaps<'a>(
    times: impl Iterator<Item = &'a (String, i64)>,
    jobs: usize,
    (started, ended, end_slack): (i64, i64, i64),
    excused: impl Fn(&str, i64) -> bool,
) -> (Vec<String>, usize) {
    let mut by_job: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (job, t) in times {
        by_job.entry(job).or_default().push(*t);
    }
    let (mut gaps, mut excused_count) = (Vec::new(), 0);
    for i in 0..jobs {
        let job = format!("job-{i:03}");
        let times = by_job
            .get(job.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (Some(first), Some(last)) = (times.first(), times.last()) else {
            gaps.push(format!("{job}: no run"));
            continue;
        };
        if *first > started + 2 * SECOND || *last < ended - end_slack * SECOND {
            gaps.push(format!("{job}: runs only from {first} to {last}"));
        }
        for pair in times.windows(2) {
            if (pair[1] - pair[0]) % SECOND != 0 {
                gaps.push(format!(
                    "{job}: {} µs between {} and {}",
                    pair[1] - pair[0],
                    pair[0],
                    pair[1]
                ));
                continue;
            }
            let mut t = pair[0] + SECOND;
            while t < pair[1] {
                if excused(&job, t) {
                    excused_count += 1;
                } else {
                    gaps.push(format!(
                        "{job}: no record of {t} (between {} and {})",
                        pair[0], pair[1]
                    ));
                }
                t += SECOND;
            }
        }
    }
    (gaps, excused_count)
}

/// The history once the rows the stopped daemons left in the store have records: a run
/// still unstarted when the last daemon stopped (a retry, a buffered fire time, a fire
/// time released and not yet started) has none yet, and the next
/// scheduler on the store takes it over once its lease ran out. While `gaps` finds
/// some in the history, one more daemon runs on `dir`'s `aps.toml` (at most 30 s).
/// Answers the history and the fire times that daemon recorded which had a record
/// before (at most once: none).
pub fn taken_over_after_the_stop(
    dir: &Path,
    url: &str,
    gaps: impl Fn(&[Value]) -> Vec<String>,
) -> (Vec<Value>, Vec<(String, String)>) {
    let before = history(url);
    if gaps(&before).is_empty() {
        return (before, Vec::new());
    }
    let key = |r: &Value| {
        (
            r["job_id"].as_str().unwrap_or_default().to_owned(),
            r["scheduled_at"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let had: std::collections::BTreeSet<_> = before.iter().map(key).collect();
    let mut next = Daemon::spawn(&dir.join("aps.toml"), dir.join("node-next.log"));
    next.wait_started(Duration::from_secs(60));
    let name = node_name(&next);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut runs = history(url);
    while !gaps(&runs).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        runs = history(url);
    }
    stop_all(std::slice::from_mut(&mut next));
    let runs = history(url);
    let again = runs
        .iter()
        .filter(|r| r["node"] == name.as_str() && r["outcome"] != "missed")
        .map(key)
        .filter(|k| had.contains(k))
        .collect();
    (runs, again)
}

/// Runs `f` while no other cluster test of this binary runs: two would share the
/// machine's two cores with six daemons. Under `cargo test` the binaries run one after
/// another; `scripts/test` (cargo-nextest, a process per test) limits the daemon tests
/// of every binary together instead (the `real-time` group in `.config/nextest.toml`).
pub fn static_turn(f: impl FnOnce()) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    f();
}

/// One cluster test at a time (see [`static_turn`]).
pub static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A command line that appends one start to `log`: the daemon's pid (`$PPID`, the
/// daemon that spawned the command's shell), the job, the fire time, the attempt, the
/// run's `APS_FENCE` and `APS_IDEMPOTENCY_KEY`.
pub fn start_line(log: &Path) -> String {
    format!(
        "echo \"$PPID $APS_JOB_ID $APS_SCHEDULED_AT $APS_ATTEMPT $APS_FENCE $APS_IDEMPOTENCY_KEY\" >> {}",
        log.display()
    )
}

/// One start in the commands' log ([`start_line`]): daemon pid, job, fire time,
/// attempt, fence, idempotency key.
pub type Start = (u32, String, String, u32, u64, String);

/// The starts in the commands' log.
pub fn starts(path: &Path) -> Vec<Start> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].to_owned(),
                f[2].to_owned(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
                f[5].to_owned(),
            )
        })
        .collect()
}

/// The daemons (pids) that started each (job, fire time, attempt) of `started`.
pub fn starters(started: &[Start]) -> BTreeMap<(String, String, u32), Vec<u32>> {
    let mut count: BTreeMap<(String, String, u32), Vec<u32>> = BTreeMap::new();
    for (pid, job, at, attempt, _, _) in started {
        count
            .entry((job.clone(), at.clone(), *attempt))
            .or_default()
            .push(*pid);
    }
    count
}
