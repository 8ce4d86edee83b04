//! Three `aps run` daemons on Redis behind Sentinel (`redis+sentinel://`), the primary
//! SIGKILLed mid-run: the Sentinels promote the replica, the daemons follow it, no fire
//! time starts twice (by the commands' own log and by the run history) and every job
//! runs again. Prints how long after the kill runs started again.
//!
//! Real processes: a private Sentinel group (a primary, a replica, three Sentinels on
//! spare loopback ports, `apscheduler_testkit::sentinel`) and real time, about 30 s.
//! Gated like the other Redis tests (`APS_TEST_REDIS_URL`); `redis-server` and
//! `redis-sentinel` must be on PATH.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use apscheduler_testkit::sentinel::SentinelGroup;
use apscheduler_testkit::server::{random_namespace, server_url};
use support::cluster::{history, micros, start_three, stop_all, SECOND};

/// One start of a fire time, as the job's command logged it.
#[derive(Debug)]
struct Fired {
    job: String,
    /// The fire time, µs since the epoch.
    scheduled: i64,
    /// When the command ran, µs since the epoch.
    started: i64,
}

/// The lines `echo $APS_JOB_ID $APS_SCHEDULED_AT $(date +%s%6N)` appended to `path`.
fn fired(path: &Path) -> Vec<Fired> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.len(), 3, "a malformed line in the run log: {line:?}");
            Fired {
                job: words[0].to_owned(),
                scheduled: micros(words[1]),
                started: words[2].parse().expect("date +%s%6N"),
            }
        })
        .collect()
}

#[test]
fn three_daemons_follow_a_sentinel_failover() {
    if server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons through a Sentinel failover (a private Sentinel group)",
    )
    .is_none()
    {
        return;
    }
    let mut group = SentinelGroup::start();
    let url = group.url(&format!("{}.", random_namespace()));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fired");
    let jobs = 10;
    // One short line per start, appended in one write: the starts' own record,
    // independent of the history (whose unreplicated writes a failover may lose).
    let command = format!(
        "echo $APS_JOB_ID $APS_SCHEDULED_AT $(date +%s%6N) >> {}",
        log.display()
    );
    let mut nodes = start_three(dir.path(), "", &url, "", jobs, &command);
    std::thread::sleep(Duration::from_secs(6));

    let old = group.primary_port().expect("the Sentinels name a primary");
    group.kill_node(old);
    let killed = chrono::Utc::now().timestamp_micros();
    let killed_at = Instant::now();
    let new = group.wait_promoted(old, Duration::from_secs(60));
    let promoted = killed_at.elapsed();

    // Resumed: every job runs three fire times due after the kill (generous: the
    // daemons reconnect with backoff on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after: BTreeMap<String, usize> = fired(&log)
            .iter()
            .filter(|f| f.scheduled > killed)
            .fold(BTreeMap::new(), |mut m, f| {
                *m.entry(f.job.clone()).or_default() += 1;
                m
            });
        if after.len() == jobs && after.values().all(|n| *n >= 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scheduling did not resume within 60 s of the promotion: fire times due after \
             the kill run per job {after:?} (logs in {})",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop_all(&mut nodes);

    // At most once, by the commands' own log.
    let starts = fired(&log);
    let mut seen: BTreeSet<(&str, i64)> = BTreeSet::new();
    for f in &starts {
        assert!(
            seen.insert((&f.job, f.scheduled)),
            "fire time {} of {} started twice",
            f.scheduled,
            f.job
        );
    }
    // And by the history: at most one started record per fire time.
    let runs = history(&url);
    let mut started: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for r in runs.iter().filter(|r| !r["started_at"].is_null()) {
        let key = (
            r["job_id"].as_str().unwrap().to_owned(),
            micros(r["scheduled_at"].as_str().unwrap()),
        );
        *started.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = started.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fire times started twice: {twice:?}");
    assert!(
        runs.iter()
            .any(|r| micros(r["scheduled_at"].as_str().unwrap()) > killed),
        "no run record of a fire time after the kill"
    );

    let first_start = starts
        .iter()
        .map(|f| f.started)
        .filter(|t| *t > killed)
        .min()
        .expect("a start after the kill");
    let first_due_after = starts
        .iter()
        .filter(|f| f.scheduled > killed)
        .map(|f| f.started)
        .min()
        .expect("a fire time due after the kill started");
    // Fire times never started: the gaps in each job's one-second grid.
    let mut by_job: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for f in &starts {
        by_job.entry(&f.job).or_default().push(f.scheduled);
    }
    let missing: i64 = by_job
        .values_mut()
        .map(|times| {
            times.sort_unstable();
            times
                .windows(2)
                .map(|w| ((w[1] - w[0]) / SECOND - 1).max(0))
                .sum::<i64>()
        })
        .sum();
    let outcomes: BTreeMap<&str, usize> = runs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["outcome"].as_str().unwrap()).or_default() += 1;
        m
    });
    eprintln!(
        "sentinel failover (aps run x3, {jobs} one-second command jobs): primary :{old} \
         SIGKILLed, replica :{new} promoted after {:.1} s; first run {:.1} s after the \
         kill, first fire time due after the kill started {:.1} s after it; {} starts, \
         none twice; {missing} fire times never started; history {} records, outcomes \
         {outcomes:?}",
        promoted.as_secs_f64(),
        (first_start - killed) as f64 / 1e6,
        (first_due_after - killed) as f64 / 1e6,
        starts.len(),
        runs.len(),
    );
}
