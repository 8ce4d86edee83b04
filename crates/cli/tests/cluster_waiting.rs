//! Waiting runs across three `aps run` daemons on one shared store: the retries and the
//! buffered fire times a SIGKILLed daemon held waiting are taken over by a survivor
//! and each runs exactly once (one start per (job, fire time, attempt), in the commands'
//! own log and in the history).
//!
//! Real processes, real servers (`APS_TEST_POSTGRES_URL`: a database of its own;
//! `APS_TEST_REDIS_URL`: database 11 on that server, its `apscheduler.` keys cleared
//! before and after; `APS_TEST_ZOOKEEPER_URL`: a path of its own), real time: about
//! 20 s per store.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apscheduler_testkit::server::server_url;
use serde_json::Value;
use support::databases::Database;
use support::{aps_ok, Daemon};

fn history(url: &str) -> Vec<Value> {
    serde_json::from_slice(&aps_ok(&[
        "history", "--limit", "1000000", "--json", "--store", url,
    ]))
    .unwrap()
}

/// (job, fire time µs, attempt) of a record.
fn key(r: &Value) -> (String, i64, u64) {
    (
        r["job_id"].as_str().unwrap().to_owned(),
        micros(r["scheduled_at"].as_str().unwrap()),
        r["attempt"].as_u64().unwrap(),
    )
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

fn waiting(r: &Value) -> bool {
    r["outcome"] == "running" && r["started_at"].is_null() && !r["due_at"].is_null()
}

#[test]
fn three_daemons_on_postgres_run_a_killed_ones_waiting_runs_once() {
    let Some(admin) = server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "three aps daemons taking over waiting runs on one PostgreSQL",
    ) else {
        return;
    };
    take_over_waiting_runs(&Database::postgres(&admin));
}

#[test]
fn three_daemons_on_redis_run_a_killed_ones_waiting_runs_once() {
    let Some(admin) = server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons taking over waiting runs on one Redis",
    ) else {
        return;
    };
    take_over_waiting_runs(&Database::redis(&admin));
}

#[test]
fn three_daemons_on_zookeeper_run_a_killed_ones_waiting_runs_once() {
    let Some(hosts) = server_url(
        "APS_TEST_ZOOKEEPER_URL",
        "127.0.0.1:2181",
        "three aps daemons taking over waiting runs on one ZooKeeper",
    ) else {
        return;
    };
    take_over_waiting_runs(&Database::zookeeper(&hosts));
}

/// Jobs that always fail with retries 4 s apart, and `buffer_one` jobs whose 3 s runs
/// outlast their 2 s interval, on three daemons; the daemon holding the most waiting
/// runs is SIGKILLed. Each of its waiting runs is then run once by a survivor.
fn take_over_waiting_runs(store: &Database) {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts.txt");
    let log = format!(
        "echo \"$APS_JOB_ID $APS_SCHEDULED_AT $APS_ATTEMPT\" >> {}",
        starts.display()
    );
    let mut text = format!(
        "[scheduler]\ntimezone = \"UTC\"\nnode = \"cluster\"\nheartbeat = \"200ms\"\nleased_runs = false\n\
         node_timeout = \"2s\"\n[store]\nurl = \"{}\"\n[job_defaults]\nmisfire_grace_time = 30\n",
        store.url
    );
    for i in 0..6 {
        text.push_str(&format!(
            "[[jobs]]\nid = \"retry-{i}\"\ninterval = 5\ncommand = '{log}; exit 1'\n\
             retry = {{ attempts = 3, delay = \"4s\" }}\n\
             [[jobs]]\nid = \"buffer-{i}\"\ninterval = 2\ncommand = '{log}; sleep 3'\n\
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
    let names: Vec<String> = nodes
        .iter()
        .map(|d| format!("cluster/{}", d.pid()))
        .collect();

    // The daemon holding the most waiting runs, once one holds a retry and a buffered
    // fire time.
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim = loop {
        let runs = history(&store.url);
        let held = |name: &str, retry: bool| {
            runs.iter()
                .filter(|r| r["node"] == name && waiting(r))
                .filter(|r| (r["attempt"].as_u64() > Some(1)) == retry)
                .count()
        };
        let best = (0..3)
            .filter(|&i| held(&names[i], true) > 0 && held(&names[i], false) > 0)
            .max_by_key(|&i| held(&names[i], true) + held(&names[i], false));
        if let Some(i) = best {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no daemon held a waiting retry and a buffered fire time within 30 s: {runs:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut victim = nodes.remove(victim);
    let victim_name = format!("cluster/{}", victim.pid());
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    // What it left waiting: nothing changes its records after its death but a takeover.
    let held: Vec<Value> = history(&store.url)
        .into_iter()
        .filter(|r| r["node"] == victim_name.as_str() && waiting(r))
        .collect();
    assert!(!held.is_empty());

    // Each ends on a survivor: the same record (run id), taken over.
    let deadline = Instant::now() + Duration::from_secs(40);
    let ended = |runs: &[Value], w: &Value| {
        runs.iter()
            .find(|r| {
                r["run_id"] == w["run_id"]
                    && r["node"] != victim_name.as_str()
                    && !r["finished_at"].is_null()
            })
            .cloned()
    };
    loop {
        let runs = history(&store.url);
        if held.iter().all(|w| ended(&runs, w).is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed daemon's waiting runs not run within 40 s: {held:#?}\n{:#?}\nsurvivors' logs:\n{}",
            held.iter().map(|w| runs.iter().filter(|r| key(r) == key(w)).collect::<Vec<_>>()).collect::<Vec<_>>(),
            nodes.iter().map(Daemon::log).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for node in &nodes {
        node.signal("TERM");
    }
    for node in &mut nodes {
        node.child.wait().unwrap();
    }
    let runs = history(&store.url);
    for w in &held {
        let r = ended(&runs, w).unwrap();
        let expected = if key(w).0.starts_with("retry") {
            "failure"
        } else {
            "success"
        };
        assert_eq!(r["outcome"], expected, "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("taken over from node {victim_name}")),
            "{r}"
        );
    }

    // Exactly once: one start per (job, fire time, attempt) in the commands' log and
    // one started record in the history; the taken-over ones started once.
    let mut started: BTreeMap<(String, i64, u64), usize> = BTreeMap::new();
    for line in std::fs::read_to_string(&starts).unwrap().lines() {
        let mut f = line.split(' ');
        let (job, at, attempt) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        *started
            .entry((job.to_owned(), micros(at), attempt.parse().unwrap()))
            .or_default() += 1;
    }
    let twice: Vec<_> = started.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "started more than once: {twice:?}");
    for w in &held {
        assert_eq!(started.get(&key(w)), Some(&1), "{w}");
    }
    let mut records: BTreeMap<(String, i64, u64), usize> = BTreeMap::new();
    for r in runs.iter().filter(|r| !r["started_at"].is_null()) {
        *records.entry(key(r)).or_default() += 1;
    }
    let doubled: Vec<_> = records.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "two started records: {doubled:?}");
    let (retries, buffered) = held
        .iter()
        .partition::<Vec<&Value>, _>(|w| w["attempt"].as_u64() > Some(1));
    eprintln!(
        "waiting runs on {}: {} runs in all; the killed daemon's {} waiting retries and {} buffered fire times each ran once",
        store.url.split(':').next().unwrap_or_default(),
        runs.len(),
        retries.len(),
        buffered.len()
    );
}
