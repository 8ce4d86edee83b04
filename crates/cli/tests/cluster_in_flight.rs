//! Runs in flight across several `aps run` daemons on one shared store: those of a
//! SIGKILLed daemon are recorded `interrupted` by a survivor once it stops
//! heartbeating, which runs again those of `recover` jobs, once, for the same fire
//! time; and `max_instances` counts the runs in flight on every node.
//!
//! Real processes, real servers (`APS_TEST_POSTGRES_URL`, `APS_TEST_MYSQL_URL`,
//! `APS_TEST_REDIS_URL`, `APS_TEST_MONGODB_URL`; each test makes its own database, or
//! on Redis uses the database the URL names, clearing the daemons' `apscheduler.` keys
//! there before and after), real time: a recovery test waits until the killed
//! daemon's runs are recovered (at most 30 s), the `max_instances` test runs its
//! daemons for 10 s. One test at a time (`static_turn`).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apscheduler_testkit::server::server_url;
use serde_json::Value;
use support::cluster::{
    history, history_with, micros, node_name, start_three, static_turn, stop_all, ONE_AT_A_TIME,
};
use support::databases::Database;
use support::max_instances::MAX_INSTANCES_SKIP;
use support::Daemon;

#[test]
fn three_daemons_on_postgres_recover_the_runs_in_flight_of_a_killed_one() {
    let Some(admin) = server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "three aps daemons recovering runs on one PostgreSQL",
    ) else {
        return;
    };
    static_turn(|| recover(&Database::postgres(&admin), "2s"));
}

#[test]
fn three_daemons_on_postgres_with_leased_runs_recover_the_runs_in_flight_of_a_killed_one() {
    let Some(admin) = server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "three aps daemons with leased runs recovering runs on one PostgreSQL",
    ) else {
        return;
    };
    static_turn(|| recover_with(&Database::postgres(&admin), "2s", true));
}

#[test]
fn three_daemons_on_redis_with_leased_runs_recover_the_runs_in_flight_of_a_killed_one() {
    let Some(admin) = server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons with leased runs recovering runs on one Redis",
    ) else {
        return;
    };
    static_turn(|| recover_with(&Database::redis(&admin), "2s", true));
}

#[test]
fn three_daemons_on_mariadb_with_leased_runs_recover_the_runs_in_flight_of_a_killed_one() {
    let Some(admin) = server_url(
        "APS_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
        "three aps daemons recovering runs on one MariaDB",
    ) else {
        return;
    };
    static_turn(|| recover_with(&Database::mysql(&admin), "2s", true));
}

#[test]
fn three_daemons_on_redis_recover_the_runs_in_flight_of_a_killed_one() {
    let Some(admin) = server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons recovering runs on one Redis",
    ) else {
        return;
    };
    static_turn(|| recover(&Database::redis(&admin), "2s"));
}

#[test]
fn three_daemons_on_mongodb_with_leased_runs_recover_the_runs_in_flight_of_a_killed_one() {
    let Some(admin) = server_url(
        "APS_TEST_MONGODB_URL",
        "mongodb://127.0.0.1:27017/",
        "three aps daemons recovering runs on one MongoDB",
    ) else {
        return;
    };
    // The MongoDB-wire test server can fall seconds behind (see the takeover test).
    static_turn(|| recover_with(&Database::mongodb(&admin), "6s", true));
}

/// `recover = true` jobs on three daemons on `db`: the runs in flight on a SIGKILLed
/// daemon are recorded `interrupted` by a survivor (after `node_timeout`), which runs
/// each again, once, for the same fire time (`APS_SCHEDULED_AT`); a fire time the
/// killed daemon had not released is run by its next claimer instead, never both.
fn recover(db: &Database, node_timeout: &str) {
    recover_with(db, node_timeout, false);
}

/// [`recover`] with `leased_runs` as given: with leased runs the store's sweep takes
/// the killed daemon's started runs once their leases ran out (not the node time-out),
/// records them interrupted on the killed node and runs those of `recover` jobs again.
fn recover_with(db: &Database, node_timeout: &str, leased: bool) {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts.txt");
    // Runs of 3 s every 4 s: a kill finds some in flight. Two instances, so that a
    // recovery does not wait for the job's next run on the survivor.
    let mut text = format!(
        "[scheduler]\ntimezone = \"UTC\"\nnode = \"cluster\"\nheartbeat = \"200ms\"\nleased_runs = {leased}\n\
         node_timeout = \"{node_timeout}\"\n[store]\nurl = \"{}\"\n[job_defaults]\n\
         recover = true\nmax_instances = 2\nmisfire_grace_time = 30\n",
        db.url
    );
    for i in 0..12 {
        text.push_str(&format!(
            "[[jobs]]\nid = \"job-{i:03}\"\ninterval = 4\n\
             command = 'echo \"$APS_JOB_ID $APS_SCHEDULED_AT\" >> {}; sleep 3'\n",
            starts.display()
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
    let names: Vec<String> = nodes.iter().map(node_name).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let victim = loop {
        let running = history_with(&db.url, &["--outcome", "running"]);
        if let Some(i) = (0..3).find(|&i| running.iter().any(|r| r["node"] == names[i].as_str())) {
            break i;
        }
        assert!(Instant::now() < deadline, "no run in flight within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Half a second into its 3 s runs: their commands have started (their records are
    // written before, with the release).
    std::thread::sleep(Duration::from_millis(500));
    let mut victim = nodes.remove(victim);
    let victim_name = node_name(&victim);
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();

    // Each interrupted run of the victim gets its recovery, or was taken over.
    let fire_time = |r: &Value| {
        (
            r["job_id"].as_str().unwrap().to_owned(),
            micros(r["scheduled_at"].as_str().unwrap()),
        )
    };
    let settled = |runs: &[Value]| {
        let interrupted: Vec<&Value> = runs
            .iter()
            .filter(|r| r["node"] == victim_name.as_str() && r["outcome"] == "interrupted")
            .collect();
        !interrupted.is_empty()
            && runs
                .iter()
                .all(|r| r["node"] != victim_name.as_str() || r["outcome"] != "running")
            && interrupted.iter().all(|i| {
                runs.iter().any(|r| {
                    fire_time(r) == fire_time(i)
                        && r["node"] != victim_name.as_str()
                        && ["success", "failure", "error", "timeout"]
                            .contains(&r["outcome"].as_str().unwrap())
                })
            })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut runs = history(&db.url);
    while !settled(&runs) {
        assert!(
            Instant::now() < deadline,
            "the killed daemon's runs not recovered within 30 s: {:#?}\nsurvivors' logs:\n{}",
            runs.iter()
                .filter(|r| r["node"] == victim_name.as_str())
                .collect::<Vec<_>>(),
            nodes.iter().map(Daemon::log).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
        runs = history(&db.url);
    }
    stop_all(&mut nodes);
    let runs = history(&db.url);

    let mut recovered = Vec::new();
    for i in runs
        .iter()
        .filter(|r| r["node"] == victim_name.as_str() && r["outcome"] == "interrupted")
    {
        let note = format!(
            "recovery of run {} interrupted on node {victim_name}",
            i["run_id"].as_str().unwrap()
        );
        let recoveries: Vec<&Value> = runs
            .iter()
            .filter(|r| r["message"].as_str().is_some_and(|m| m.starts_with(&note)))
            .collect();
        assert!(recoveries.len() <= 1, "recovered twice: {recoveries:#?}");
        if let Some(r) = recoveries.first() {
            assert_eq!(fire_time(r), fire_time(i), "{r}");
            assert_eq!(r["outcome"], "success", "{r}");
            recovered.push(fire_time(i));
        }
    }
    assert!(!recovered.is_empty(), "no run recovered: {runs:#?}");
    // The commands started each fire time once, and a recovered one at most twice
    // (the recovery, and the killed daemon's start if its command got as far as its
    // log line: the kill may land between the recorded start and that line): never
    // more.
    let mut started: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for line in std::fs::read_to_string(&starts).unwrap().lines() {
        let (job, at) = line.split_once(' ').unwrap();
        *started.entry((job.to_owned(), micros(at))).or_default() += 1;
    }
    let twice: Vec<&(String, i64)> = started
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    recovered.sort();
    assert!(
        twice.iter().all(|k| recovered.contains(*k)),
        "started twice, not recovered: {twice:?} (recovered: {recovered:?}) {started:?}"
    );
    assert!(
        recovered
            .iter()
            .all(|k| started.get(k).is_some_and(|n| *n >= 1)),
        "recovered in the history, never started by a command: {recovered:?} {started:?}"
    );
    assert!(started.values().all(|n| *n <= 2), "{started:?}");
    eprintln!(
        "cluster recovery on {}: {} runs, {} of the killed daemon's runs recovered",
        db.url.split(':').next().unwrap_or_default(),
        runs.len(),
        recovered.len()
    );
}

/// `max_instances = 1` across three daemons on PostgreSQL (leased runs: the store counts
/// the started runs of every node): jobs fire every second and each run takes 2.5 s, so
/// most fire times find the job running, on this node or on another. No two runs of one
/// job overlap (each starts after the previous one's end), and fire times are recorded
/// `missed` at `max_instances` while their job's run was in flight on another node.
#[test]
fn three_daemons_on_postgres_hold_max_instances_across_the_cluster() {
    let Some(admin) = server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "max_instances across three aps daemons on one PostgreSQL",
    ) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = Database::postgres(&admin);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_three(
        dir.path(),
        "heartbeat = \"200ms\"\nnode_timeout = \"2s\"\n",
        &db.url,
        "",
        12,
        "sleep 2.5",
    );
    std::thread::sleep(Duration::from_secs(10));
    stop_all(&mut nodes);
    let runs = history(&db.url);

    let mut by_job: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r["outcome"] == "success") {
        by_job
            .entry(r["job_id"].as_str().unwrap())
            .or_default()
            .push(r);
    }
    assert_eq!(by_job.len(), 12, "every job ran: {runs:#?}");
    let mut nodes_used = std::collections::BTreeSet::new();
    for (job, ran) in &mut by_job {
        ran.sort_by_key(|r| micros(r["started_at"].as_str().unwrap()));
        for pair in ran.windows(2) {
            let (ended, next) = (
                micros(pair[0]["finished_at"].as_str().unwrap()),
                micros(pair[1]["started_at"].as_str().unwrap()),
            );
            assert!(
                ended <= next,
                "two runs of {job} overlap: {:#} and {:#}; the daemons' warnings:\n{}",
                pair[0],
                pair[1],
                nodes
                    .iter()
                    .flat_map(|n| {
                        n.log()
                            .lines()
                            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                            .map(|l| format!("{}: {l}", node_name(n)))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        nodes_used.extend(ran.iter().map(|r| r["node"].as_str().unwrap()));
    }
    assert!(
        nodes_used.len() > 1,
        "one node ran everything: {nodes_used:?}"
    );
    // Skipped at `max_instances` while a run of the job that another node started
    // before the skip was still going.
    let elsewhere = runs
        .iter()
        .filter(|r| r["outcome"] == "missed")
        .filter(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.contains(MAX_INSTANCES_SKIP))
        })
        .filter(|skip| {
            let at = micros(skip["finished_at"].as_str().unwrap());
            by_job[skip["job_id"].as_str().unwrap()].iter().any(|r| {
                r["node"] != skip["node"]
                    && micros(r["started_at"].as_str().unwrap()) <= at
                    && micros(r["finished_at"].as_str().unwrap()) >= at
            })
        })
        .count();
    let succeeded: usize = by_job.values().map(Vec::len).sum();
    eprintln!(
        "max_instances across the cluster: {} records, {succeeded} runs, {elsewhere} fire times \
         skipped for runs on other nodes, nodes {nodes_used:?}",
        runs.len()
    );
    assert!(
        elsewhere > 0,
        "no fire time was skipped for a run on another node: {runs:#?}"
    );
}
