//! Leased runs (`[scheduler] leased_runs = true`) across three `aps run` daemons, each
//! in a network namespace of its own, on a Redis server in a fourth: the daemon that
//! started the most is cut off from the store for 8 s (longer than its 5 s lease) while
//! its commands run, then healed, twice. No (job, fire time, attempt) is started twice
//! in the commands' own log, and every fire time of the window has a record.
//!
//! The namespaces, their veth links and a bridge are the test's own (`ip netns`, as
//! root); the addresses are theirs (10.213.0.0/24), nothing leaves them. The cut is
//! silent: the store's end of the daemon's link goes down, so that the daemon's packets
//! are dropped and its connections time out, as across a failed switch. Runs with the
//! Redis group (`scripts/test redis`), which has `redis-server`; real time, about 45 s.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use apscheduler_testkit::server::server_url;
use serde_json::Value;
use support::cluster::{gaps, micros, start_line, starters, starts};
use support::Daemon;

/// The store's address in its namespace, and the daemons' (`.11`, `.12`, `.13`).
const NET: &str = "10.213.0";

/// Four namespaces (the store's and three daemons'), deleted with this value.
struct Namespaces {
    prefix: String,
    redis: Option<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!(
            "`ip {}`: {e} (this test needs iproute2 and root)",
            args.join(" ")
        )
    });
    assert!(
        out.status.success(),
        "`ip {}` failed (this test needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Namespaces {
    fn new() -> Namespaces {
        let prefix = format!("aps{}", std::process::id());
        let mut net = Namespaces {
            prefix,
            redis: None,
        };
        let store = net.store();
        ip(&["netns", "add", &store]);
        ip(&["-n", &store, "link", "set", "lo", "up"]);
        ip(&["-n", &store, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            &store,
            "addr",
            "add",
            &format!("{NET}.1/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", &store, "link", "set", "br0", "up"]);
        for i in 0..3 {
            let ns = net.node(i);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            // eth0 in the daemon's namespace; its peer `s<i>` on the store's bridge.
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
            ]);
            ip(&["-n", &ns, "link", "set", "peer0", "netns", &store]);
            let peer = format!("s{i}");
            ip(&["-n", &store, "link", "set", "peer0", "name", &peer]);
            ip(&["-n", &store, "link", "set", &peer, "master", "br0", "up"]);
            let addr = format!("{NET}.{}/24", 11 + i);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        let redis = Command::new("ip")
            .args(["netns", "exec", &store, "redis-server", "--port", "6379"])
            .args(["--bind", &format!("{NET}.1"), "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server in the store's namespace");
        net.redis = Some(redis);
        let ping = || {
            Command::new("ip")
                .args(["netns", "exec", &net.node(0), "redis-cli"])
                .args(["-h", &format!("{NET}.1"), "ping"])
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
        };
        support::wait_for(
            "Redis in the store's namespace",
            Duration::from_secs(20),
            ping,
        );
        net
    }

    fn store(&self) -> String {
        format!("{}-store", self.prefix)
    }

    fn node(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// Cuts daemon `i` off the store (`up: false`) or heals the link.
    fn link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.store(), "link", "set", &format!("s{i}"), state]);
    }

    /// `aps` run in daemon `i`'s namespace, its output.
    fn aps(&self, i: usize, args: &[&str]) -> Vec<u8> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.node(i), env!("CARGO_BIN_EXE_aps")])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aps {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Some(mut redis) = self.redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
        }
        for ns in [self.store(), self.node(0), self.node(1), self.node(2)] {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

#[test]
fn three_daemons_never_start_a_run_twice_when_one_is_cut_off_from_the_store() {
    // With the Redis group: it has the server's binary. The server is the test's own.
    if server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons in network namespaces, one cut off from Redis",
    )
    .is_none()
    {
        return;
    }
    let net = Namespaces::new();
    let url = format!("redis://{NET}.1:6379/");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts.txt");
    let line = start_line(&log);
    // A fire time a second for each `job-*`, whose 2 s runs make them wait
    // (`buffer_one`) or skip; jobs that fail and retry. Every fire time is its own run
    // (no coalescing), to be accounted for.
    let mut text = format!(
        "[scheduler]\ntimezone = \"UTC\"\nnode = \"partition\"\nleased_runs = true\n\
         heartbeat = \"200ms\"\nnode_timeout = \"4s\"\n[store]\nurl = \"{url}\"\n\
         [job_defaults]\ncoalesce = false\nmisfire_grace_time = 30\n"
    );
    const JOBS: usize = 6;
    for i in 0..JOBS {
        text.push_str(&format!(
            "[[jobs]]\nid = \"job-{i:03}\"\ninterval = 1\ncommand = '{line}; sleep 2'\n\
             overlap = \"buffer_one\"\n\
             [[jobs]]\nid = \"retry-{i}\"\ninterval = 5\ncommand = '{line}; exit 1'\n\
             retry = {{ attempts = 3, delay = \"4s\" }}\n"
        ));
    }
    let config = dir.path().join("aps.toml");
    std::fs::write(&config, text).unwrap();
    let started_at = chrono::Utc::now().timestamp_micros();
    let mut nodes: Vec<Daemon> = (0..3)
        .map(|i| {
            let log = dir.path().join(format!("node-{i}.log"));
            let child = Command::new("ip")
                .args(["netns", "exec", &net.node(i), env!("CARGO_BIN_EXE_aps")])
                .args(["run", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            Daemon { child, log }
        })
        .collect();
    for node in &mut nodes {
        node.wait_started(Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(6));
    for round in 0..2 {
        let started = starts(&log);
        let (busiest, _) = nodes
            .iter()
            .enumerate()
            .max_by_key(|(_, d)| started.iter().filter(|s| s.0 == d.pid()).count())
            .unwrap();
        eprintln!("round {round}: cutting daemon {busiest} off the store for 8 s");
        net.link(busiest, false);
        std::thread::sleep(Duration::from_secs(8));
        net.link(busiest, true);
        std::thread::sleep(Duration::from_secs(5));
    }
    // Time for what the cut-off daemons held in memory to be tried, and refused.
    std::thread::sleep(Duration::from_secs(4));
    let ended = chrono::Utc::now().timestamp_micros();
    for node in &nodes {
        node.signal("TERM");
    }
    for node in &mut nodes {
        node.child.wait().unwrap();
    }
    let logs = || nodes.iter().map(Daemon::log).collect::<Vec<_>>().join("\n");
    let started = starts(&log);
    let count = starters(&started);
    let twice: Vec<_> = count.iter().filter(|(_, pids)| pids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "started more than once: {twice:?}\ndaemons' logs:\n{}",
        logs()
    );
    assert!(count.keys().any(|k| k.2 > 1), "no retry ran:\n{}", logs());
    // Every fire time of the window has a record (started, or missed saying why), to
    // 6 s before the end: a fire time the daemons had not claimed, or that waited
    // (`buffer_one`) when they stopped, stays in the store for the next scheduler; one
    // buffered behind a 2 s run starts within about 4 s (the run, its end written at
    // its holder's next pass, the buffered run's holder's next pass; passes come every
    // second with these jobs).
    let cut = ended - 6 * support::cluster::SECOND;
    let records: Vec<Value> = serde_json::from_slice(&net.aps(
        1,
        &["history", "--limit", "1000000", "--json", "--store", &url],
    ))
    .unwrap();
    let mut times: Vec<(String, i64)> = records
        .iter()
        .map(|r| {
            (
                r["job_id"].as_str().unwrap().to_owned(),
                micros(r["scheduled_at"].as_str().unwrap()),
            )
        })
        .filter(|(job, t)| job.starts_with("job-") && *t <= cut)
        .collect();
    times.sort();
    times.dedup();
    let (gaps, _) = gaps(times.iter(), JOBS, (started_at, cut, 1), |_, _| false);
    assert!(
        gaps.is_empty(),
        "{} fire times without a record (first: {:?})\ndaemons' logs:\n{}",
        gaps.len(),
        gaps.first(),
        logs()
    );
    eprintln!(
        "partition: {} starts, none twice; {} records",
        started.len(),
        records.len()
    );
}
