//! Claims on a Redis Cluster (`redis+cluster://`, a private six-node cluster the test
//! starts): a claim that prefers some partitions (the engine's hint) takes their due
//! jobs first and steals from the others only to fill its batch; a store written
//! before the lease index keeps working on a cluster; and while one primary is stopped
//! (SIGSTOP, no failover), the partitions of the other primaries are still claimed,
//! and once it is back everything is claimed exactly once.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use apscheduler_core::{Acquired, ClaimHint, ErrorKind, JobRelease, JobStore};
use apscheduler_store_redis::RedisJobStore;
use apscheduler_testkit::redis_cluster::RedisCluster;
use apscheduler_testkit::sentinel::ask;
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};

const PARTITIONS: u64 = 8;

/// The partition of a job: FNV-1a-64 of its id, modulo the partitions (as documented).
fn partition(id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % PARTITIONS
}

fn ids(acquired: &Acquired) -> Vec<String> {
    acquired.jobs.iter().map(|j| j.id.to_string()).collect()
}

/// Jobs `<tag>-<i>`, job `i` due at `at(i)`.
async fn add_jobs(store: &RedisJobStore, tag: &str, n: i64) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{tag}-{i:02}")).collect();
    let jobs = ids
        .iter()
        .zip(0..)
        .map(|(id, i)| sample_job(id, Some(at(i)), interval_trigger(3600)))
        .collect();
    store.add_jobs(jobs, false).await.unwrap();
    ids
}

async fn remove_claimed(store: &RedisJobStore, holder: &str, acquired: Acquired) {
    let released = store
        .release_jobs(
            holder,
            acquired
                .jobs
                .into_iter()
                .map(|j| JobRelease::Remove(j.id))
                .collect(),
        )
        .await
        .unwrap();
    assert!(released.lost.is_empty(), "{:?}", released.lost);
}

/// The engine's hint on a cluster store: its own partitions' earliest due jobs first,
/// then the earliest of the others; a hint of another partition count is a plain claim.
async fn preferring(cluster: &RedisCluster) {
    let url = cluster.url("prefer.", &format!("&partitions={PARTITIONS}"));
    let store = RedisJobStore::new(&url).unwrap();
    store.start("default").await.unwrap();
    assert_eq!(store.capabilities().partitions, PARTITIONS as u32);
    // One partition: nothing to prefer.
    let one = RedisJobStore::new(&cluster.url("one.", "&partitions=1")).unwrap();
    assert_eq!(one.capabilities().partitions, 0);
    let all = add_jobs(&store, "p", 80).await;
    let owned = [1u32, 3];
    let (own, others): (Vec<String>, Vec<String>) = all
        .iter()
        .cloned()
        .partition(|id| owned.contains(&(partition(id) as u32)));
    assert!(own.len() > 5 && others.len() > 5, "{own:?}");
    let hint = ClaimHint {
        partitions: PARTITIONS as u32,
        owned: &owned,
    };

    let first = store
        .acquire_due_jobs_preferring("s1", utc(1000), 5, LEASE, hint)
        .await
        .unwrap();
    assert_eq!(ids(&first), own[..5], "the earliest of its own partitions");
    // Its own are short of the batch: the rest is stolen, earliest first, and the
    // batch comes back in (run time, id) order. (Another holder: a claimer's own
    // leases on due jobs are stranded claims, which it would take again.)
    let left = own.len() - 5;
    let second = store
        .acquire_due_jobs_preferring("s2", utc(1000), left + 3, LEASE, hint)
        .await
        .unwrap();
    let mut expected: Vec<String> = own[5..].iter().chain(&others[..3]).cloned().collect();
    expected.sort_by_key(|id| all.iter().position(|a| a == id));
    assert_eq!(ids(&second), expected);
    // Another partition count: the hint is ignored.
    let plain = store
        .acquire_due_jobs_preferring(
            "s3",
            utc(1000),
            2,
            LEASE,
            ClaimHint {
                partitions: 1024,
                owned: &[0],
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&plain), others[3..5]);
    for (holder, acquired) in [("s1", first), ("s2", second), ("s3", plain)] {
        remove_claimed(&store, holder, acquired).await;
    }
}

/// A cluster store written before the lease index (no `held:` sets, no markers): a
/// scheduler's stranded claims are found (the read-only look-ahead reads every lease
/// there) and claimed again.
async fn unindexed(cluster: &RedisCluster) {
    let url = cluster.url("old.", &format!("&partitions={PARTITIONS}"));
    let store = RedisJobStore::new(&url).unwrap();
    add_jobs(&store, "o", 12).await;
    let first = store
        .acquire_due_jobs("s9", utc(1000), 6, LEASE)
        .await
        .unwrap();
    assert_eq!(first.jobs.len(), 6);
    for n in 0..PARTITIONS {
        for key in [
            format!("{{old.p{n}}}held:s9"),
            format!("{{old.p{n}}}held_indexed"),
        ] {
            let port = cluster.primary_for_key(&key).expect("a primary serves it");
            assert!(ask(port, &format!("DEL {key}")).is_some());
        }
    }
    let again = store
        .acquire_due_jobs("s9", utc(1000), 6, LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&again), ids(&first));
    let other = store
        .acquire_due_jobs("s8", utc(1000), 20, LEASE)
        .await
        .unwrap();
    assert_eq!(other.jobs.len(), 6, "the other six, none of s9's");
    assert!(ids(&other).iter().all(|id| !ids(&first).contains(id)));
}

/// Claims as `holder` until `done` says so or `within` passes, removing what it
/// claims; returns every id claimed (a repeat fails the test) and the errors seen.
async fn claim_until(
    store: &RedisJobStore,
    claimed: &mut BTreeSet<String>,
    within: Duration,
    done: impl Fn(&BTreeSet<String>) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut errors = Vec::new();
    while !done(claimed) {
        assert!(
            Instant::now() < deadline,
            "not done within {within:?}: claimed {claimed:?}, errors {errors:?}"
        );
        match store.acquire_due_jobs("s1", utc(1000), 64, LEASE).await {
            Ok(acquired) => {
                for id in ids(&acquired) {
                    assert!(claimed.insert(id.clone()), "{id} claimed twice");
                }
                if !acquired.jobs.is_empty() {
                    remove_claimed(store, "s1", acquired).await;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    errors
}

/// One primary stopped (SIGSTOP: connections stay open, nothing is answered) with
/// failover disabled and partial coverage allowed: the other primaries' partitions
/// are claimed meanwhile, the next run time fails (`Unavailable`) rather than hide the
/// stopped partitions, and after SIGCONT every job has been claimed exactly once.
async fn a_primary_down(cluster: &RedisCluster) {
    cluster.config_set("cluster-require-full-coverage", "no");
    cluster.config_set("cluster-replica-no-failover", "yes");
    let url = cluster.url("down.", &format!("&partitions={PARTITIONS}"));
    let store = RedisJobStore::builder(&url)
        .response_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    store.start("default").await.unwrap();
    let all = add_jobs(&store, "d", 48).await;
    let primary_of = |n: u64| {
        cluster
            .primary_for_key(&format!("{{down.p{n}}}jobs"))
            .expect("a primary serves the partition")
    };
    let victim = primary_of(0);
    let stopped: BTreeSet<u64> = (0..PARTITIONS)
        .filter(|n| primary_of(*n) == victim)
        .collect();
    let elsewhere: BTreeSet<String> = all
        .iter()
        .filter(|id| !stopped.contains(&partition(id)))
        .cloned()
        .collect();
    assert!(
        !elsewhere.is_empty() && elsewhere.len() < all.len(),
        "partitions {stopped:?} on :{victim}"
    );

    cluster.signal_node(victim, "STOP");
    let stopped_at = Instant::now();
    let mut claimed = BTreeSet::new();
    let errors = claim_until(&store, &mut claimed, Duration::from_secs(60), |c| {
        elsewhere.is_subset(c)
    })
    .await;
    eprintln!(
        "primary :{victim} stopped (partitions {stopped:?}): the {} jobs of the other \
         partitions claimed within {:.1} s, claim errors meanwhile: {errors:?}",
        claimed.len(),
        stopped_at.elapsed().as_secs_f64()
    );
    assert_eq!(claimed, elsewhere, "only the other primaries' jobs");
    // Later claims leave the stopped partitions out instead of waiting for them, also
    // once a probe has timed out (and the cluster client tries to reconnect to the
    // stopped node).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let more: Vec<String> = (0..)
        .map(|i| format!("e-{i:02}"))
        .filter(|id| !stopped.contains(&partition(id)))
        .take(12)
        .collect();
    let jobs = more
        .iter()
        .map(|id| sample_job(id, Some(at(0)), interval_trigger(3600)))
        .collect();
    store.add_jobs(jobs, false).await.unwrap();
    let started = Instant::now();
    let wanted: BTreeSet<String> = more.iter().cloned().collect();
    let errors = claim_until(&store, &mut claimed, Duration::from_secs(60), |c| {
        wanted.is_subset(c)
    })
    .await;
    eprintln!(
        "later claims while stopped: the 12 new jobs claimed within {:.0} ms, errors {errors:?}",
        started.elapsed().as_secs_f64() * 1e3
    );
    let err = store
        .get_next_run_time()
        .await
        .expect_err("the stopped partitions cannot be read");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    let named: BTreeSet<u64> = text
        .split_once("partition(s) ")
        .and_then(|(_, rest)| rest.split_once(" failed"))
        .map(|(list, _)| list.split(", ").filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    assert!(stopped.is_subset(&named), "{text}");
    eprintln!("next run time while stopped: {err}");

    cluster.signal_node(victim, "CONT");
    let everything: BTreeSet<String> = all.iter().chain(&more).cloned().collect();
    let errors = claim_until(&store, &mut claimed, Duration::from_secs(60), |c| {
        *c == everything
    })
    .await;
    eprintln!("after SIGCONT: claim errors {errors:?}");
    assert_eq!(claimed, everything);
    // Nothing left: the store answers again, every job claimed once and removed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.get_next_run_time().await {
            Ok(next) => {
                assert_eq!(next, None);
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The three cases on one cluster (starting one takes seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_on_a_cluster() {
    if common::redis_url("claims_on_a_cluster").is_none() {
        return;
    }
    let cluster = RedisCluster::start();
    preferring(&cluster).await;
    unindexed(&cluster).await;
    a_primary_down(&cluster).await;
}
