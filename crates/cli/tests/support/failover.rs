//! Three `aps run` daemons through the failover of a replicated store, checked on the
//! commands' own log of their starts and on the run history (`failover.rs`,
//! `sentinel.rs`).
//!
//! The daemons run [`JOBS`] jobs every second (each run 0.2 s, `coalesce = false`,
//! `misfire_grace_time = 30`); the store's server is taken away 6 s in, the daemons
//! stopped 15 s after that.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::cluster::{micros, start_three, HISTORY_RECORDS, SECOND};
use super::{aps_ok, Daemon};

/// Jobs per test, each every second.
pub const JOBS: usize = 40;

/// Now, µs since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The starts the commands logged: (job, fire time) → start times, µs.
pub type Starts = BTreeMap<(String, i64), Vec<i64>>;

/// What happened around the kill, in µs since the epoch.
pub struct Timeline {
    pub started: i64,
    pub killed: i64,
    /// The store took writes again, as far as the test can tell (PostgreSQL: the
    /// standby promoted and PgBouncer repointed; ZooKeeper: a new leader elected).
    pub recovered: i64,
    pub ended: i64,
}

/// Three daemons on `url` with [`JOBS`] jobs; `fail(&mut |...|)` is called 6 s in:
/// it kills the store's server and brings the replacement in, returning when the
/// store takes writes again. The daemons run 15 s after the kill. Returns the
/// timeline, each start the commands logged ((job, fire time) → start times) and the
/// run history.
pub fn through_failover(
    url: &str,
    fail: impl FnOnce() -> i64,
) -> (Timeline, Starts, Vec<Value>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts.txt");
    let command = format!(
        "echo $APS_JOB_ID $APS_SCHEDULED_AT $(date +%s%N) >> {}; sleep 0.2",
        starts.display()
    );
    // History records: with leased runs a fire time whose job's previous run ended
    // in the outage finds that run still started (its end reaches the store after the
    // outage) and is skipped at `max_instances` (docs/cluster.md, Failures).
    let mut nodes = start_three(dir.path(), HISTORY_RECORDS, url, "", JOBS, &command);
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

/// The checks and figures every failover test shares: no fire time started twice (by
/// the commands' own log and by the history), every start recorded, no gap in any
/// job's fire times, the outage's fire times run late or recorded `missed` with the
/// reason; prints the times from the kill to the store's return and to the first run.
pub fn check(
    label: &str,
    t: &Timeline,
    starts: &BTreeMap<(String, i64), Vec<i64>>,
    runs: &[Value],
) {
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
