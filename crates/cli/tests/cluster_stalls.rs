//! Leased runs (`[scheduler] leased_runs = true`) across three `aps run` daemons on one
//! shared store, the busiest stopped with SIGSTOP for longer than its lease (5 s) and
//! continued, three times, while it holds claimed, waiting and started runs (a paused
//! VM, a long GC, a frozen container): no (job, fire time, attempt) is started twice,
//! in the commands' own log.
//!
//! Real processes, real servers (`APS_TEST_POSTGRES_URL`: a database of its own;
//! `APS_TEST_REDIS_URL`: keys under a prefix of its own; `APS_TEST_ZOOKEEPER_URL`: a
//! path of its own; `APS_TEST_MONGODB_URL`: a database of its own), real time: about
//! 45 s per store.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use apscheduler_testkit::server::server_url;
use support::cluster::{start_line, starters, starts};
use support::databases::Database;
use support::Daemon;

#[test]
fn three_daemons_on_postgres_never_start_a_run_twice_when_one_stalls_past_its_lease() {
    let Some(admin) = server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "three aps daemons with leased runs on one PostgreSQL, one stalled",
    ) else {
        return;
    };
    stall_one_of_three(&Database::postgres(&admin));
}

#[test]
fn three_daemons_on_redis_never_start_a_run_twice_when_one_stalls_past_its_lease() {
    let Some(admin) = server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons with leased runs on one Redis, one stalled",
    ) else {
        return;
    };
    stall_one_of_three(&Database::redis(&admin));
}

#[test]
fn three_daemons_on_zookeeper_never_start_a_run_twice_when_one_stalls_past_its_lease() {
    let Some(hosts) = server_url(
        "APS_TEST_ZOOKEEPER_URL",
        "127.0.0.1:2181",
        "three aps daemons with leased runs on one ZooKeeper, one stalled",
    ) else {
        return;
    };
    stall_one_of_three(&Database::zookeeper(&hosts));
}

#[test]
fn three_daemons_on_mongodb_never_start_a_run_twice_when_one_stalls_past_its_lease() {
    let Some(admin) = server_url(
        "APS_TEST_MONGODB_URL",
        "mongodb://127.0.0.1:27017/",
        "three aps daemons with leased runs on one MongoDB, one stalled",
    ) else {
        return;
    };
    stall_one_of_three(&Database::mongodb(&admin));
}

/// Jobs that always fail with retries 4 s apart, and `buffer_one` jobs whose 3 s runs
/// outlast their 2 s interval, on three daemons; the one that started the most is
/// stopped for 7 s and continued, three times.
fn stall_one_of_three(store: &Database) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts.txt");
    // The node time-out (4 s, shorter than the stalls) lets the other daemons take the
    // stalled one for dead, as the run history's own mechanisms would (they do not
    // decide here).
    let line = start_line(&log);
    let mut text = format!(
        "[scheduler]\ntimezone = \"UTC\"\nnode = \"stalls\"\nleased_runs = true\n\
         heartbeat = \"200ms\"\nnode_timeout = \"4s\"\n\
         [store]\nurl = \"{}\"\n[job_defaults]\nmisfire_grace_time = 30\n",
        store.url
    );
    for i in 0..6 {
        text.push_str(&format!(
            "[[jobs]]\nid = \"retry-{i}\"\ninterval = 5\ncommand = '{line}; exit 1'\n\
             retry = {{ attempts = 3, delay = \"4s\" }}\n\
             [[jobs]]\nid = \"buffer-{i}\"\ninterval = 2\ncommand = '{line}; sleep 3'\n\
             overlap = \"buffer_one\"\n"
        ));
    }
    let config = dir.path().join("aps.toml");
    std::fs::write(&config, text).unwrap();
    let mut nodes: Vec<Daemon> = (0..3)
        .map(|i| Daemon::spawn(&config, dir.path().join(format!("node-{i}.log"))))
        .collect();
    for node in &mut nodes {
        node.wait_started(Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(6));
    for round in 0..3 {
        let started = starts(&log);
        let busiest = nodes
            .iter()
            .max_by_key(|d| started.iter().filter(|s| s.0 == d.pid()).count())
            .unwrap();
        eprintln!("round {round}: stopping {} for 7 s", busiest.pid());
        busiest.signal("STOP");
        std::thread::sleep(Duration::from_secs(7));
        busiest.signal("CONT");
        std::thread::sleep(Duration::from_secs(3));
    }
    // Time for what the stalled daemons held in memory to be tried, and refused.
    std::thread::sleep(Duration::from_secs(4));
    for node in &nodes {
        node.signal("TERM");
    }
    for node in &mut nodes {
        node.child.wait().unwrap();
    }
    let started = starts(&log);
    for (_, job, at, attempt, _, key) in &started {
        assert_eq!(*key, format!("{job}@{at}#{attempt}"));
    }
    let count = starters(&started);
    let twice: Vec<_> = count.iter().filter(|(_, pids)| pids.len() > 1).collect();
    let logs = || nodes.iter().map(Daemon::log).collect::<Vec<_>>().join("\n");
    assert!(
        twice.is_empty(),
        "started more than once: {twice:?}\ndaemons' logs:\n{}",
        logs()
    );
    // Each start carries a fence of its own within its job.
    let mut fences: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for s in &started {
        *fences.entry((s.1.clone(), s.4)).or_default() += 1;
    }
    let shared: Vec<_> = fences.iter().filter(|(_, n)| **n > 1).collect();
    assert!(shared.is_empty(), "starts sharing a fence: {shared:?}");
    // Work went on around the stalls: retries ran, and each daemon started runs.
    assert!(count.keys().any(|k| k.2 > 1), "no retry ran:\n{}", logs());
    for node in &nodes {
        assert!(
            started.iter().any(|s| s.0 == node.pid()),
            "daemon {} started nothing:\n{}",
            node.pid(),
            logs()
        );
    }
    eprintln!(
        "stalls on {}: {} starts, none twice",
        store.url.split(':').next().unwrap_or_default(),
        started.len()
    );
}
