//! The store behind Redis Sentinel (`redis+sentinel://`), against a private group the
//! tests start: a primary, a replica and three `redis-sentinel` processes on spare
//! loopback ports (`apscheduler_testkit::sentinel`). The conformance suite through the Sentinel URL;
//! a wrong master name and unreachable Sentinels fail clearly within the connect
//! time-out; three schedulers keep running jobs while the primary is SIGKILLed and the
//! Sentinels promote the replica, and no fire time starts twice.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::chrono::{DateTime, Utc};
use apscheduler_core::{ErrorKind, JobStore};
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use apscheduler_store_redis::RedisJobStore;
use apscheduler_testkit::sentinel::{SentinelGroup, MASTER};
use apscheduler_testkit::unreachable::closed_port;
use chrono_tz::Tz;
use serde_json::json;

/// Gated like the other Redis tests: they run (or fail, under CI) together.
fn enabled(test: &str) -> bool {
    common::redis_url(test).is_some()
}

/// The conformance suite through the Sentinels, then the two bad-input cases that need
/// a live group: an unknown master name, and a prefix given twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_sentinel() {
    if !enabled("conformance_through_sentinel") {
        return;
    }
    let group = SentinelGroup::start();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let make = {
        let base = group.url("unused.");
        move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The URL's prefix, so the URL form is what the suite runs on.
            let url = base.replace("prefix=unused.", &format!("prefix=conf{n}."));
            let store = RedisJobStore::builder(url)
                .build()
                .expect("build the store");
            assert_eq!(store.prefix(), format!("conf{n}."));
            async move { store }
        }
    };
    apscheduler_testkit::store::run_all(make).await;

    // A master name no Sentinel monitors: `InvalidInput` naming it, at once.
    let url = group.url("x.").replace(MASTER, "nosuchmaster");
    let started = Instant::now();
    let store = RedisJobStore::builder(&url)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = store.start("default").await.expect_err("unknown master");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("monitor no master named 'nosuchmaster'"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    eprintln!("unknown master: {text}");

    // The prefix in the URL and from the builder must agree.
    let err = RedisJobStore::builder(group.url("a."))
        .prefix("b.")
        .build()
        .expect_err("two prefixes");
    assert!(err.to_string().contains("differs from the URL's"), "{err}");
}

/// No Sentinel answers: `Unavailable` naming the Sentinels and the cause, within the
/// connect time-out.
#[tokio::test]
async fn no_sentinel_reachable_fails_within_the_connect_timeout() {
    let url = format!(
        "redis+sentinel://127.0.0.1:{},127.0.0.1:{}/{MASTER}",
        closed_port(),
        closed_port()
    );
    let started = Instant::now();
    let store = RedisJobStore::builder(&url)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = store.lookup_job("x").await.expect_err("nothing listens");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{text}");
    assert!(
        text.contains(&format!(
            "cannot reach the Redis store at primary '{MASTER}' via the Sentinels at 127.0.0.1:"
        )),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// One run: which job, for which fire time, on which scheduler, when it started.
type Run = (String, DateTime<Tz>, usize, Instant);

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const JOBS: usize = 4;

/// Three schedulers share the store through the Sentinels; the primary is SIGKILLed;
/// the Sentinels promote the replica; the schedulers follow it and every job runs
/// again, with no fire time started twice.
#[test]
fn schedulers_follow_a_failover() {
    if !enabled("schedulers_follow_a_failover") {
        return;
    }
    let mut group = SentinelGroup::start();
    let url = group.url("aps-failover.");
    let runs: Arc<Mutex<Vec<Run>>> = Arc::default();
    let schedulers: Vec<BackgroundScheduler> = (0..3)
        .map(|node| {
            let store = RedisJobStore::builder(&url)
                .connect_timeout(Duration::from_secs(1))
                .response_timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let scheduler = BackgroundScheduler::from_builder(
                Engine::builder()
                    .timezone(Tz::UTC)
                    .lease(Duration::from_secs(5))
                    .jobstore("default", Arc::new(store)),
            )
            .unwrap();
            let runs = runs.clone();
            scheduler.register_task("tick", move |ctx| {
                runs.lock().unwrap().push((
                    ctx.job_id.to_string(),
                    ctx.scheduled_run_time,
                    node,
                    Instant::now(),
                ));
                Ok(json!(null))
            });
            scheduler
        })
        .collect();
    for i in 0..JOBS {
        schedulers[0]
            .add_job(
                JobSpec::task("tick")
                    .id(format!("j{i}"))
                    .trigger_args("interval", json!({"seconds": 1}))
                    .replace_existing(true),
            )
            .unwrap();
    }
    for s in &schedulers {
        s.start(false).unwrap();
    }
    let count_after = |since: Instant| runs.lock().unwrap().iter().filter(|r| r.3 > since).count();
    let begin = Instant::now();
    wait_for("runs before the failover", Duration::from_secs(30), || {
        count_after(begin) >= 3 * JOBS
    });

    let old = group.primary_port().expect("the Sentinels name a primary");
    group.kill_node(old);
    let killed = Instant::now();
    let new = group.wait_promoted(old, Duration::from_secs(60));
    let promoted = killed.elapsed();
    assert_ne!(new, old);
    wait_for(
        "every job to run again after the failover",
        Duration::from_secs(60),
        || {
            let runs = runs.lock().unwrap();
            (0..JOBS).all(|i| {
                let id = format!("j{i}");
                runs.iter().filter(|r| r.0 == id && r.3 > killed).count() >= 3
            })
        },
    );
    for s in &schedulers {
        s.shutdown(true).unwrap();
    }

    let runs = runs.lock().unwrap().clone();
    let mut seen: HashMap<(String, DateTime<Tz>), usize> = HashMap::new();
    for r in &runs {
        if let Some(first) = seen.insert((r.0.clone(), r.1), r.2) {
            panic!(
                "fire time {} of {} started twice (schedulers {first} and {})",
                r.1, r.0, r.2
            );
        }
    }
    let first_after = runs
        .iter()
        .filter(|r| r.3 > killed)
        .map(|r| r.3 - killed)
        .min()
        .expect("a run after the kill");
    // Fire times missed: the gaps in each job's one-second grid.
    let mut by_job: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    for r in &runs {
        by_job
            .entry(&r.0)
            .or_default()
            .push(r.1.with_timezone(&Utc));
    }
    let mut missed = 0;
    for times in by_job.values_mut() {
        times.sort();
        for w in times.windows(2) {
            missed += ((w[1] - w[0]).num_milliseconds() / 1000 - 1).max(0);
        }
    }
    let nodes: std::collections::BTreeSet<usize> =
        runs.iter().filter(|r| r.3 > killed).map(|r| r.2).collect();
    eprintln!(
        "failover: primary :{old} SIGKILLed, replica :{new} promoted after {:.1} s; first \
         run {:.1} s after the kill; {} runs, none twice; {missed} fire times of {JOBS} \
         one-second jobs skipped; schedulers running jobs after: {nodes:?}",
        promoted.as_secs_f64(),
        first_after.as_secs_f64(),
        runs.len()
    );
}

/// Claim-and-release cycles on one job for `period` (each cycle: a claim script, a
/// release script and, with `wait_replicas`, a `WAIT`).
async fn cycles(store: &RedisJobStore, period: Duration) -> u32 {
    use apscheduler_core::JobRelease;
    use apscheduler_testkit::store::{utc, LEASE};
    let started = Instant::now();
    let mut cycles = 0u32;
    while started.elapsed() < period {
        let acquired = store
            .acquire_due_jobs("s1", utc(10), 1, LEASE)
            .await
            .unwrap();
        let job = acquired.jobs.into_iter().next().expect("the job is due");
        let released = store
            .release_jobs("s1", vec![JobRelease::Update(job)])
            .await
            .unwrap();
        assert!(released.lost.is_empty(), "{:?}", released.lost);
        cycles += 1;
    }
    cycles
}

/// A store with the one job [`cycles`] claims.
async fn cycling_store(url: &str) -> RedisJobStore {
    use apscheduler_testkit::store::{at, interval_trigger, sample_job};
    let store = RedisJobStore::new(url).unwrap();
    store.start("default").await.unwrap();
    store
        .add_job(sample_job("w", Some(at(0)), interval_trigger(1)), true)
        .await
        .unwrap();
    store
}

/// `wait_replicas`: writes wait for the replica, at a measured cost; more replicas
/// than exist fail the write with `Unavailable` after the wait time-out, the write
/// standing on the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_replicas_confirms_writes() {
    if !enabled("wait_replicas_confirms_writes") {
        return;
    }
    let group = SentinelGroup::start();
    let plain = cycling_store(&group.url("nowait.")).await;
    let waiting = cycling_store(&format!(
        "{}&wait_replicas=1&wait_timeout_ms=1000",
        group.url("wait1.")
    ))
    .await;
    // Alternating half-seconds, so that a busy spell of the machine falls on both.
    let (mut without, mut with) = (0, 0);
    for _ in 0..6 {
        without += cycles(&plain, Duration::from_millis(500)).await;
        with += cycles(&waiting, Duration::from_millis(500)).await;
    }
    eprintln!(
        "claim+release cycles a second through Sentinel: {} without WAIT, {} with \
         wait_replicas=1 ({:.0}%)",
        without / 3,
        with / 3,
        f64::from(with) / f64::from(without) * 100.0
    );

    let too_many = RedisJobStore::builder(group.url("wait2."))
        .wait_replicas(2, Duration::from_millis(200))
        .build()
        .unwrap();
    let job = apscheduler_testkit::store::sample_job(
        "x",
        Some(apscheduler_testkit::store::at(0)),
        apscheduler_testkit::store::interval_trigger(1),
    );
    let started = Instant::now();
    let err = too_many
        .add_job(job, false)
        .await
        .expect_err("one replica, two wanted");
    let waited = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string()
            .contains("confirmed by 1 of 2 replicas within 200 ms"),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(190), "{waited:?}");
    assert!(
        too_many.lookup_job("x").await.unwrap().is_some(),
        "applied on the primary"
    );
}

/// A primary stopped (SIGSTOP: its connections stay open, silent) is replaced by the
/// Sentinels; the change subscription, still open on the stopped node, notices that the
/// primary moved and subscribes on the new one, so changes are heard again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_subscription_follows_a_stopped_primary() {
    if !enabled("change_subscription_follows_a_stopped_primary") {
        return;
    }
    let group = SentinelGroup::start();
    let url = group.url("aps-stop.");
    let heard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listening = RedisJobStore::new(&url).unwrap();
    {
        let heard = heard.clone();
        listening.set_change_listener(Arc::new(move || {
            heard.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    listening.start("default").await.unwrap();
    let count = || heard.load(std::sync::atomic::Ordering::SeqCst);
    let wait_heard = |above: usize, what: &'static str| {
        let count = &count;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while count() <= above {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_heard(0, "the first subscription").await;

    let old = group.primary_port().expect("a primary");
    group.signal_node(old, "STOP");
    let stopped = Instant::now();
    let new = tokio::task::block_in_place(|| group.wait_promoted(old, Duration::from_secs(60)));
    assert_ne!(new, old);
    let before = count();
    wait_heard(before, "the subscription to move to the new primary").await;
    let moved = stopped.elapsed();

    let writer = RedisJobStore::new(&url).unwrap();
    // Let the re-subscription settle before publishing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = count();
    writer
        .add_job(
            apscheduler_testkit::store::sample_job(
                "heard",
                Some(apscheduler_testkit::store::at(0)),
                apscheduler_testkit::store::interval_trigger(1),
            ),
            false,
        )
        .await
        .unwrap();
    wait_heard(before, "the change published on the new primary").await;
    eprintln!(
        "subscription moved to the new primary {:.1} s after the primary was stopped",
        moved.as_secs_f64()
    );
    listening.shutdown().await.unwrap();
}
