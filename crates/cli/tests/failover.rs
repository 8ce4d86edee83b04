//! Three `aps run` daemons through the failover of a replicated store:
//! - a three-server ZooKeeper ensemble whose leader is SIGKILLed (the other two elect a
//!   new one; the daemons' sessions move to them);
//! - a PostgreSQL primary with a synchronous standby, behind PgBouncer: the primary is
//!   SIGKILLed, the standby promoted, PgBouncer repointed (ini edited, `RELOAD`).
//!
//! Checked on the commands' own log of their starts and on the run history: no fire
//! time started twice; every fire time from the start to 5 s before the end has a
//! record, those of the outage run late (the grace is 30 s) or recorded `missed` with
//! the reason. Measured (shown with `--nocapture`): the time from the kill to the first
//! run started after it, and how late the outage's fire times started.
//!
//! Real processes, real time: 40 jobs every second, each run 0.2 s, the kill 6 s in,
//! the daemons stopped 15 s after it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use apscheduler_testkit::ensemble::ZooKeeperEnsemble;
use apscheduler_testkit::pg_failover::{PgBouncer, PostgresPair};
use apscheduler_testkit::server::{
    in_ci, random_namespace, server_url, skip_notice, PrivateZooKeeper,
};
use serde_json::Value;
use support::{aps_ok, Daemon};

/// One second in microseconds.
const SECOND: i64 = 1_000_000;

/// Jobs per test, each every second.
const JOBS: usize = 40;

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

/// The starts the commands logged: (job, fire time) → start times, µs.
type Starts = BTreeMap<(String, i64), Vec<i64>>;

/// What happened around the kill, in µs since the epoch.
struct Timeline {
    started: i64,
    killed: i64,
    /// The store took writes again, as far as the test can tell (PostgreSQL: the
    /// standby promoted and PgBouncer repointed; ZooKeeper: a new leader elected).
    recovered: i64,
    ended: i64,
}

/// Three daemons on `url` with [`JOBS`] jobs; `fail(&mut |...|)` is called 6 s in:
/// it kills the store's server and brings the replacement in, returning when the
/// store takes writes again. The daemons run 15 s after the kill. Returns the
/// timeline, each start the commands logged ((job, fire time) → start times) and the
/// run history.
fn through_failover(
    url: &str,
    fail: impl FnOnce() -> i64,
) -> (Timeline, Starts, Vec<Value>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts.txt");
    let mut text = format!(
        "[scheduler]\ntimezone = \"UTC\"\nnode = \"failover\"\n[store]\nurl = \"{url}\"\n\
         [job_defaults]\ncoalesce = false\nmisfire_grace_time = 30\n"
    );
    for i in 0..JOBS {
        text.push_str(&format!(
            "[[jobs]]\nid = \"job-{i:03}\"\ninterval = 1\n\
             command = 'echo \"$APS_JOB_ID $APS_SCHEDULED_AT $(date +%s%N)\" >> {}; sleep 0.2'\n",
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
    let started = now();
    std::thread::sleep(Duration::from_secs(6));
    let killed = now();
    let recovered = fail();
    std::thread::sleep(
        Duration::from_secs(15).saturating_sub(Duration::from_micros(
            u64::try_from(now() - killed).unwrap_or(0),
        )),
    );
    let ended = now();
    for node in &nodes {
        node.signal("TERM");
    }
    for node in &mut nodes {
        node.wait(Duration::from_secs(60));
    }
    let mut by_fire = Starts::new();
    for line in std::fs::read_to_string(&starts).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let [job, at, start] = f[..] else {
            panic!("a starts line: {line:?}");
        };
        by_fire
            .entry((job.to_owned(), micros(at)))
            .or_default()
            .push(start.parse::<i64>().unwrap() / 1000);
    }
    let runs: Vec<Value> = serde_json::from_slice(&aps_ok(&[
        "history", "--limit", "1000000", "--json", "--store", url,
    ]))
    .unwrap();
    let timeline = Timeline {
        started,
        killed,
        recovered,
        ended,
    };
    let logs = nodes.iter().map(Daemon::log).collect();
    (timeline, by_fire, runs, logs)
}

/// The checks and figures common to both tests (see the module docs).
fn check(label: &str, t: &Timeline, starts: &BTreeMap<(String, i64), Vec<i64>>, runs: &[Value]) {
    // At most once, by the commands' own log.
    let twice: Vec<_> = starts.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{label}: fire times started twice: {twice:?}"
    );
    // Every record's fire time: started (one record not `missed`) at most once.
    let mut records: BTreeMap<(String, i64), Vec<&Value>> = BTreeMap::new();
    for r in runs {
        let key = (
            r["job_id"].as_str().unwrap().to_owned(),
            micros(r["scheduled_at"].as_str().unwrap()),
        );
        records.entry(key).or_default().push(r);
    }
    let doubled: Vec<_> = records
        .iter()
        .filter(|(_, v)| v.iter().filter(|r| r["outcome"] != "missed").count() > 1)
        .collect();
    assert!(
        doubled.is_empty(),
        "{label}: two runs of a fire time: {doubled:?}"
    );
    // Every run the commands logged has its record, and no record says a run succeeded
    // that the commands did not log.
    for (key, _) in starts.iter().filter(|(k, _)| k.1 < t.ended - 2 * SECOND) {
        assert!(
            records.contains_key(key),
            "{label}: no record of the run {key:?}"
        );
    }
    for (key, v) in &records {
        if v.iter().any(|r| r["outcome"] == "success") {
            assert!(
                starts.contains_key(key),
                "{label}: a success never started: {v:?}"
            );
        }
    }
    // Accounted for: each job's fire times, a second apart, follow without a gap from
    // its first to 5 s before the end (what the daemons had not claimed when stopped
    // waits in the store, unrecorded).
    let mut by_job: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (job, at) in records.keys() {
        by_job.entry(job).or_default().push(*at);
    }
    assert_eq!(by_job.len(), JOBS, "{label}: jobs with records");
    let mut gaps = Vec::new();
    for (job, times) in &by_job {
        if times[0] > t.started + 2 * SECOND || *times.last().unwrap() < t.ended - 5 * SECOND {
            gaps.push(format!(
                "{job}: records only from {} to {}",
                times[0],
                times.last().unwrap()
            ));
        }
        for pair in times.windows(2) {
            if pair[1] - pair[0] != SECOND {
                gaps.push(format!(
                    "{job}: {} µs from {} to {}",
                    pair[1] - pair[0],
                    pair[0],
                    pair[1]
                ));
            }
        }
    }
    assert!(
        gaps.is_empty(),
        "{label}: {} gaps, first {:?}",
        gaps.len(),
        gaps.first()
    );
    // The outage's fire times (due from the kill until the store took writes again, and
    // a second more): each ran once, late, or was recorded `missed` with its reason.
    let outage = t.killed..t.recovered + SECOND;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut latest = 0;
    for (key, v) in records.iter().filter(|(k, _)| outage.contains(&k.1)) {
        for r in v {
            let outcome = r["outcome"].as_str().unwrap();
            *outcomes.entry(outcome.to_owned()).or_default() += 1;
            match outcome {
                "success" => {
                    latest = latest.max(starts[key][0] - key.1);
                }
                "missed" => assert!(
                    r["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{label}: a missed record without its reason: {r}"
                ),
                _ => panic!("{label}: a fire time of the outage ended {outcome}: {r}"),
            }
        }
    }
    // The first run of a fire time due after the kill: one the daemons claimed from
    // the store after it (runs claimed before it may still start just after it).
    let first_after = starts
        .iter()
        .filter(|((_, at), _)| *at > t.killed)
        .map(|(_, s)| s[0])
        .min()
        .expect("a run after the kill");
    let mut missed: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs.iter().filter(|r| r["outcome"] == "missed") {
        let m = r["message"].as_str().unwrap_or_default();
        *missed.entry(m.chars().take(60).collect()).or_default() += 1;
    }
    let all: BTreeMap<&str, usize> = runs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["outcome"].as_str().unwrap()).or_default() += 1;
        m
    });
    eprintln!(
        "{label}: {} records {all:?}; store back {} ms after the kill; first fire time due after the kill \
         started {} ms after it; {} fire times due in the outage: {outcomes:?}, started up to \
         {} ms late; missed: {missed:?}",
        runs.len(),
        (t.recovered - t.killed) / 1000,
        (first_after - t.killed) / 1000,
        outcomes.values().sum::<usize>(),
        latest / 1000
    );
    assert!(
        !outcomes.is_empty(),
        "{label}: no fire time fell in the outage"
    );
    // Anything else that did not succeed: only what the stop cut short.
    let bad: Vec<_> = runs
        .iter()
        .filter(|r| r["outcome"] != "success" && r["outcome"] != "missed")
        .filter(|r| {
            r["finished_at"]
                .as_str()
                .is_none_or(|f| micros(f) < t.ended)
        })
        .take(5)
        .collect();
    assert!(
        bad.is_empty(),
        "{label}: runs that did not succeed: {bad:?}"
    );
}

/// A three-server ZooKeeper ensemble; the leader (`srvr` says which) is SIGKILLed.
#[test]
fn three_daemons_ride_out_the_loss_of_the_zookeeper_leader() {
    if server_url(
        "APS_TEST_ZOOKEEPER_URL",
        "127.0.0.1:2181",
        "three aps daemons through a ZooKeeper leader's death (a private ensemble)",
    )
    .is_none()
        || !PrivateZooKeeper::available("three_daemons_ride_out_the_loss_of_the_zookeeper_leader")
    {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut ensemble = ZooKeeperEnsemble::new();
    let url = format!("zookeeper://{}/{}", ensemble.hosts(), random_namespace());
    let (t, starts, runs, _) = through_failover(&url, || {
        let leader = ensemble.wait_leader(Duration::from_secs(30));
        ensemble.kill(leader);
        let next = ensemble.wait_leader(Duration::from_secs(60));
        assert_ne!(next, leader);
        now()
    });
    check("zookeeper ensemble", &t, &starts, &runs);
}

/// A PostgreSQL primary and synchronous standby behind PgBouncer: the primary is
/// SIGKILLed, a second later (a failover manager's detection) the standby is promoted
/// and PgBouncer repointed.
#[test]
fn three_daemons_ride_out_a_postgres_failover() {
    postgres_failover("postgres failover", false);
}

/// A switchover: the primary is fenced read-only (it stays up), a second later the
/// standby is promoted and PgBouncer repointed. PgBouncer keeps each daemon connection
/// on its server connection to the old primary: the store closes the connections that
/// got a read-only answer's, so the next ones reach the new primary.
#[test]
fn three_daemons_ride_out_a_postgres_switchover() {
    postgres_failover("postgres switchover", true);
}

/// The two tests above: `fence` keeps the old primary up, read-only, instead of
/// SIGKILLing it.
fn postgres_failover(label: &str, fence: bool) {
    if server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        &format!("three aps daemons through a {label} (a private primary and standby)"),
    )
    .is_none()
    {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut pair) = PostgresPair::start() else {
        assert!(
            !in_ci(),
            "initdb is not installed: the {label} test cannot run in CI"
        );
        skip_notice(&format!(
            "{label} (apscheduler-cli): initdb is not installed"
        ));
        return;
    };
    let bouncer = PgBouncer::start(pair.primary_port());
    let url = bouncer.url("postgres");
    let (t, starts, runs, logs) = through_failover(&url, || {
        if fence {
            pair.fence_primary();
        } else {
            pair.kill_primary();
        }
        std::thread::sleep(Duration::from_secs(1));
        pair.promote_standby();
        bouncer.repoint(pair.standby_port());
        now()
    });
    check(label, &t, &starts, &runs);
    assert_eq!(pair.sql(1, "SELECT pg_is_in_recovery()").trim(), "f");
    if fence {
        assert!(
            logs.iter()
                .any(|l| l.contains("the database answered read-only")),
            "{label}: no daemon said the old primary answered read-only"
        );
    }
}

/// One failover test at a time: each starts several servers and three daemons.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
