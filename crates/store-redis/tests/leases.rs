//! The leases by holder (`<prefix>held:<scheduler id>`): a claim reads only its
//! caller's own leases, whatever the other schedulers hold; a store written before
//! these sets existed keeps working (its first claim indexes it); removing jobs leaves
//! no set behind. On a private `redis-server`, so the server's command counters
//! (`INFO commandstats`) count this test's commands only.

mod common;

use std::collections::BTreeMap;

use apscheduler_core::chrono::{DateTime, Utc};
use apscheduler_core::JobStore;
use apscheduler_store_redis::RedisJobStore;
use apscheduler_testkit::server::PrivateRedis;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use chrono_tz::Tz;

/// The server's command counters (`cmdstat_<name>` → calls), scripts' calls included.
async fn command_calls(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Adds `n` jobs `<tag>-<i>` due at `at(0)`.
async fn add_due(store: &RedisJobStore, tag: &str, n: usize) {
    add_due_at(store, tag, n, at(0)).await;
}

/// Adds `n` jobs `<tag>-<i>` due at `run`.
async fn add_due_at(store: &RedisJobStore, tag: &str, n: usize, run: DateTime<Tz>) {
    let jobs = (0..n)
        .map(|i| sample_job(&format!("{tag}-{i:03}"), Some(run), interval_trigger(3600)))
        .collect();
    store.add_jobs(jobs, false).await.unwrap();
}

/// A second ago, by this machine's clock (the server's, on loopback): a claim's
/// `now` near the server's time, as a scheduler's is, so that leases held are live
/// and not yet due again.
fn just_due() -> DateTime<Tz> {
    (Utc::now() - chrono::Duration::seconds(1)).with_timezone(&Tz::UTC)
}

/// The commands one claim of 64 due jobs makes on the server, with `holders` other
/// schedulers holding 8 leases each on a store of its own prefix (in real time: the
/// leases are live by the server's clock).
async fn claim_commands(url: &str, holders: usize) -> BTreeMap<String, u64> {
    let store = common::store(url, &format!("h{holders}."));
    for h in 0..holders {
        add_due_at(&store, &format!("held{h}"), 8, just_due()).await;
        let got = store
            .acquire_due_jobs(&format!("node-{h}"), Utc::now(), 8, LEASE)
            .await
            .unwrap();
        assert_eq!(got.jobs.len(), 8);
    }
    add_due_at(&store, "due", 64, just_due()).await;
    let mut conn = common::raw(url).await;
    // The script is loaded by a first, empty claim, so that both counts are of a
    // claim alone.
    store
        .acquire_due_jobs("claimer", Utc::now(), 0, LEASE)
        .await
        .unwrap();
    let before = command_calls(&mut conn).await;
    let got = store
        .acquire_due_jobs("claimer", Utc::now(), 64, LEASE)
        .await
        .unwrap();
    assert_eq!(got.jobs.len(), 64);
    let after = command_calls(&mut conn).await;
    after
        .into_iter()
        .map(|(name, calls)| {
            let was = before.get(&name).copied().unwrap_or(0);
            // `info` itself is counted once between the two reads.
            let calls = calls - was - u64::from(name == "info");
            (name, calls)
        })
        .filter(|(_, calls)| *calls > 0)
        .collect()
}

/// A claim makes the same commands with 30 other schedulers holding 240 leases as
/// with none: it reads no lease but its caller's and those of the jobs it takes.
#[tokio::test]
async fn a_claim_does_not_read_the_other_schedulers_leases() {
    let server = PrivateRedis::new();
    let alone = claim_commands(&server.url(), 0).await;
    let crowded = claim_commands(&server.url(), 30).await;
    eprintln!("commands of one claim of 64: alone {alone:?}, beside 30 holders {crowded:?}");
    assert!(!alone.contains_key("hkeys"), "{alone:?}");
    assert_eq!(alone, crowded);
}

/// The keys under `prefix`, sorted.
async fn keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// A store as the previous layout left it (the same keys, no `held:` sets and no
/// marker): a scheduler's stranded claims are still ended and claimed again by it,
/// another's live leases are still respected, and the first claim indexes every
/// lease.
#[tokio::test]
async fn a_store_written_without_the_lease_index_keeps_working() {
    let server = PrivateRedis::new();
    let url = server.url();
    let store = common::store(&url, "old.");
    add_due(&store, "a", 6).await;
    let first = store
        .acquire_due_jobs("s1", utc(10), 3, LEASE)
        .await
        .unwrap();
    let second = store
        .acquire_due_jobs("s2", utc(10), 3, LEASE)
        .await
        .unwrap();
    assert_eq!((first.jobs.len(), second.jobs.len()), (3, 3));
    let mut conn = common::raw(&url).await;
    assert_eq!(
        keys(&mut conn, "old.held").await,
        ["old.held:s1", "old.held:s2", "old.held_indexed"]
    );
    // The previous layout: the same keys without the index.
    let _: i64 = redis::cmd("DEL")
        .arg(&["old.held:s1", "old.held:s2", "old.held_indexed"])
        .query_async(&mut conn)
        .await
        .unwrap();

    // s1's leases were stranded (it holds no claim between passes): it gets its jobs
    // again, and none of s2's, whose leases are live.
    let again = store
        .acquire_due_jobs("s1", utc(10), 10, LEASE)
        .await
        .unwrap();
    let ids = |a: &apscheduler_core::Acquired| -> Vec<String> {
        a.jobs.iter().map(|j| j.id.to_string()).collect()
    };
    assert_eq!(ids(&again), ids(&first));
    assert_eq!(
        keys(&mut conn, "old.held").await,
        ["old.held:s1", "old.held:s2", "old.held_indexed"],
        "the first claim indexed every lease"
    );
    let held: Vec<String> = redis::cmd("ZRANGE")
        .arg("old.held:s2")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held, ids(&second));
    // s2's stranded claims are now found through the index.
    let again = store
        .acquire_due_jobs("s2", utc(10), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&again), ids(&second));

    // Releases, a removal and removing everything leave no set behind.
    let released = store
        .release_jobs(
            "s2",
            again
                .jobs
                .into_iter()
                .map(apscheduler_core::JobRelease::Update)
                .collect(),
        )
        .await
        .unwrap();
    assert!(released.lost.is_empty());
    assert_eq!(
        keys(&mut conn, "old.held").await,
        ["old.held:s1", "old.held_indexed"]
    );
    store.remove_job("a-000").await.unwrap();
    let held: Vec<String> = redis::cmd("ZRANGE")
        .arg("old.held:s1")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!held.contains(&"a-000".to_owned()), "{held:?}");
    store.remove_all_jobs().await.unwrap();
    let left: Vec<String> = keys(&mut conn, "old.")
        .await
        .into_iter()
        .filter(|k| !k.starts_with("old.run"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `evalsha` calls and microseconds the server has spent in them so far.
async fn script_time(conn: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:"))
        .unwrap_or("calls=0,usec=0");
    let field = |name: &str| -> u64 {
        line.split(',')
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("calls="), field("usec="))
}

/// Benchmark (ignored): the time of a claim of 64 due jobs while `holders` other
/// schedulers hold 64 leases each, on a private `redis-server`: the claim's time seen
/// by the caller (median and 90th percentile of 200 claims) and the server's time per
/// claim script (`INFO commandstats`). Run with
/// `cargo test -p apscheduler-store-redis --test leases -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by name with --ignored"]
async fn bench_claim_beside_lease_holders() {
    let server = PrivateRedis::new();
    let url = server.url();
    let mut conn = common::raw(&url).await;
    for holders in [0usize, 1, 10, 30, 100] {
        let store = common::store(&url, &format!("bench{holders}."));
        for h in 0..holders {
            add_due_at(&store, &format!("held{h}"), 64, just_due()).await;
            store
                .acquire_due_jobs(&format!("node-{h}"), Utc::now(), 64, LEASE)
                .await
                .unwrap();
        }
        // Loads the script, so that every timed claim is one `evalsha`.
        store
            .acquire_due_jobs("claimer", Utc::now(), 0, LEASE)
            .await
            .unwrap();
        let mut times = Vec::new();
        let mut server_us = 0;
        for round in 0..200 {
            add_due_at(&store, &format!("r{round}"), 64, just_due()).await;
            let (calls0, usec0) = script_time(&mut conn).await;
            let started = std::time::Instant::now();
            let got = store
                .acquire_due_jobs("claimer", Utc::now(), 64, LEASE)
                .await
                .unwrap();
            times.push(started.elapsed());
            let (calls1, usec1) = script_time(&mut conn).await;
            assert_eq!(calls1 - calls0, 1);
            server_us += usec1 - usec0;
            assert_eq!(got.jobs.len(), 64);
            store
                .release_jobs(
                    "claimer",
                    got.jobs
                        .into_iter()
                        .map(|j| apscheduler_core::JobRelease::Remove(j.id))
                        .collect(),
                )
                .await
                .unwrap();
        }
        times.sort();
        eprintln!(
            "claim of 64 beside {holders} holders ({} leases): p50 {:.2} ms, p90 {:.2} ms, \
             server {:.0} µs per claim script",
            holders * 64,
            times[100].as_secs_f64() * 1e3,
            times[180].as_secs_f64() * 1e3,
            server_us as f64 / 200.0
        );
    }
}
