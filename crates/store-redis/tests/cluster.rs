//! The store on a Redis Cluster (`redis+cluster://`), against a private cluster the
//! tests start: six `redis-server --cluster-enabled yes` on spare loopback ports, three
//! primaries with a replica each (`apscheduler_testkit::redis_cluster`). The store
//! conformance suite, the run contract's checks, the run history suite, change notifications and releases
//! announced only to waiting schedulers on the cluster;
//! bad input (a node not in cluster mode, nodes of different clusters, nothing
//! reachable) failing clearly at start; what a primary's failover loses of acknowledged writes, without and with
//! `wait_replicas`, and what `WAIT` costs.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::{ErrorKind, JobRelease, JobStore};
use apscheduler_store_redis::RedisJobStore;
use apscheduler_testkit::redis_cluster::{LoneClusterNode, RedisCluster};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use apscheduler_testkit::unreachable::closed_port;

/// Gated like the other Redis tests: they run (or fail, under CI) together.
fn enabled(test: &str) -> bool {
    common::redis_url(test).is_some()
}

/// The conformance suite and the history suite on the cluster (default partitions,
/// and one partition), then the bad-input cases that need live servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_cluster() {
    let Some(single) = common::redis_url("conformance_on_a_cluster") else {
        return;
    };
    let cluster = RedisCluster::start();
    for (round, extra) in ["", "&partitions=1"].into_iter().enumerate() {
        let counter = Arc::new(AtomicUsize::new(0));
        let make = {
            let cluster_url = cluster.url("unused.", extra);
            move || {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                // The URL's prefix, so the URL form is what the suite runs on.
                let url =
                    cluster_url.replace("prefix=unused.", &format!("prefix=conf{round}-{n}."));
                let store = RedisJobStore::builder(url)
                    .build()
                    .expect("build the store");
                assert_eq!(store.prefix(), format!("conf{round}-{n}."));
                async move { store }
            }
        };
        apscheduler_testkit::store::run_all(make).await;
    }
    // The run contract, each job's runs in its own partition.
    let counter = Arc::new(AtomicUsize::new(0));
    let cluster_url = cluster.url("unused.", "");
    apscheduler_testkit::store::runs::run_runs(move || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let url = cluster_url.replace("prefix=unused.", &format!("prefix=runs-{n}."));
        let store = RedisJobStore::builder(url)
            .build()
            .expect("build the store");
        async move { store }
    })
    .await;
    let url = cluster.url("restart.", "");
    let (first, second) = (
        RedisJobStore::new(&url).unwrap(),
        RedisJobStore::new(&url).unwrap(),
    );
    apscheduler_testkit::store::check_survives_restart(&first, &second).await;

    // Change notifications: `PUBLISH` reaches every node, the subscription is on one
    // of them; killing the subscription's connection (on whichever node) makes it
    // subscribe again.
    let url = cluster.url("notify.", "");
    let (listening, writer) = (
        RedisJobStore::new(&url).unwrap(),
        RedisJobStore::new(&url).unwrap(),
    );
    let ports = cluster.ports;
    apscheduler_testkit::store::check_change_notifications(&listening, &writer, || async move {
        for port in ports {
            apscheduler_testkit::sentinel::ask(port, "CLIENT KILL TYPE pubsub");
        }
    })
    .await;

    // A release wakes only a scheduler waiting for it: the wait is recorded in the
    // partition of the lease it waits for, which the release there reads.
    let url = cluster.url("waiters.", "");
    apscheduler_testkit::store::check_release_notifies_only_waiters(|| {
        Arc::new(RedisJobStore::new(&url).unwrap()) as Arc<dyn JobStore>
    })
    .await;

    let store = RedisJobStore::new(&cluster.url("hist.", "")).unwrap();
    assert_eq!(store.partition_keys().len(), 16);
    assert_eq!(store.partition_keys()[5].jobs, "{hist.p5}jobs");
    let history = store.run_history().expect("the Redis store keeps history");
    history.prepare().await.unwrap();
    apscheduler_testkit::history::run_all(history).await;

    // A node not in cluster mode (the shared test server): `InvalidInput` naming it.
    let host = single
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned();
    let url = format!(
        "redis+cluster://127.0.0.1:{},{host}/?prefix=x.",
        cluster.ports[0]
    );
    let store = RedisJobStore::new(&url).unwrap();
    let err = store
        .start("default")
        .await
        .expect_err("not a cluster node");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains(&format!(
            "the Redis server at {host} is not in cluster mode"
        )),
        "{err}"
    );
    eprintln!("not in cluster mode: {err}");

    // Nodes of two clusters: `InvalidInput` naming both, within the connect time-out.
    let lone = LoneClusterNode::start();
    let url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}/?prefix=x.",
        cluster.ports[1], lone.port
    );
    let started = Instant::now();
    let store = RedisJobStore::builder(&url)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = store.start("default").await.expect_err("two clusters");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{} (id ", cluster.ports[1]))
            && text.contains(&format!("127.0.0.1:{} (id ", lone.port))
            && text.contains("belong to different Redis Clusters"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    eprintln!("different clusters: {text}");

    // A named node that is down does not keep the store from starting.
    let url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}/?prefix=y.",
        closed_port(),
        cluster.ports[2]
    );
    let store = RedisJobStore::new(&url).unwrap();
    store
        .start("default")
        .await
        .expect("one named node answers");
    store
        .add_job(sample_job("a", Some(at(0)), interval_trigger(1)), false)
        .await
        .unwrap();
    assert!(store.lookup_job("a").await.unwrap().is_some());
}

/// No named node answers: `Unavailable` naming the nodes and the cause, within the
/// connect time-out.
#[tokio::test]
async fn no_node_reachable_fails_within_the_connect_timeout() {
    let url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}/",
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
        text.contains("cannot reach the Redis store at the Redis Cluster at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Claim-and-release cycles on one job for `period` (each cycle: a claim script per
/// partition visited, a release script and, with `wait_replicas`, a `WAIT`).
async fn cycles(store: &RedisJobStore, period: Duration) -> u32 {
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

async fn cycling_store(url: &str) -> RedisJobStore {
    let store = RedisJobStore::new(url).unwrap();
    store.start("default").await.unwrap();
    store
        .add_job(sample_job("w", Some(at(0)), interval_trigger(1)), true)
        .await
        .unwrap();
    store
}

/// Writes jobs `<tag>-0`, `<tag>-1`, ... as fast as the store takes them until
/// `stop`; returns the ids whose write was acknowledged.
async fn write_until(
    store: Arc<RedisJobStore>,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> BTreeSet<String> {
    let mut acknowledged = BTreeSet::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("{tag}-{i}");
        i += 1;
        if store
            .add_job(sample_job(&id, Some(at(3600)), interval_trigger(60)), true)
            .await
            .is_ok()
        {
            acknowledged.insert(id);
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    acknowledged
}

/// What a primary's SIGKILL loses: a writer adds jobs without pause while a primary is
/// killed and its replica promoted; afterwards every acknowledged job must be stored
/// when `wait_replicas=1` (the write was on the replica before the reply), and the
/// count lost without it is printed. Also prints what `WAIT` costs per claim+release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_failover_loses_with_and_without_wait() {
    if !enabled("what_a_failover_loses_with_and_without_wait") {
        return;
    }
    let mut cluster = RedisCluster::start();

    let plain = cycling_store(&cluster.url("nowait.", "")).await;
    let waiting =
        cycling_store(&cluster.url("wait1.", "&wait_replicas=1&wait_timeout_ms=1000")).await;
    // Alternating half-seconds, so that a busy spell of the machine falls on both.
    let (mut without, mut with) = (0, 0);
    for _ in 0..6 {
        without += cycles(&plain, Duration::from_millis(500)).await;
        with += cycles(&waiting, Duration::from_millis(500)).await;
    }
    eprintln!(
        "claim+release cycles a second on the cluster (16 partitions): {} without WAIT, \
         {} with wait_replicas=1 ({:.0}%)",
        without / 3,
        with / 3,
        f64::from(with) / f64::from(without) * 100.0
    );

    // More replicas than a shard has: `Unavailable` after the wait, applied on the
    // primary.
    let too_many = RedisJobStore::builder(cluster.url("wait2.", ""))
        .wait_replicas(2, Duration::from_millis(200))
        .build()
        .unwrap();
    let err = too_many
        .add_job(sample_job("x", Some(at(0)), interval_trigger(1)), false)
        .await
        .expect_err("one replica, two wanted");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string()
            .contains("confirmed by 1 of 2 replicas within 200 ms"),
        "{err}"
    );
    assert!(
        too_many.lookup_job("x").await.unwrap().is_some(),
        "applied on the primary"
    );

    let report = Mutex::new(Vec::new());
    // With WAIT first: after the first failover one shard has no replica left, and
    // every write to it would wait in vain.
    for (round, (tag, extra)) in [
        ("wait", "&wait_replicas=1&wait_timeout_ms=1000"),
        ("nowait", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let url = cluster.url(&format!("loss{round}."), &format!("&partitions=3{extra}"));
        let store = Arc::new(
            RedisJobStore::builder(&url)
                .response_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        );
        store.start("default").await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_until(store.clone(), tag, stop.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A primary that still has its replica (round 0 killed another one).
        let old = *cluster
            .primaries()
            .iter()
            .find(|p| cluster.replica_of(**p).is_some())
            .expect("a primary with a replica");
        let replica = cluster.replica_of(old).unwrap();
        let killed = Instant::now();
        cluster.kill_node(old);
        let promote = {
            let cluster = &cluster;
            async move {
                tokio::task::block_in_place(|| {
                    cluster.wait_promoted(replica, Duration::from_secs(60));
                });
            }
        };
        promote.await;
        let promoted = killed.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let acknowledged = writer.await.unwrap();
        let stored: BTreeSet<String> = store
            .get_all_jobs()
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id.to_string())
            .collect();
        let lost: Vec<&String> = acknowledged.difference(&stored).collect();
        report.lock().unwrap().push(format!(
            "{tag}: {} writes acknowledged, {} lost (primary :{old} killed, replica :{replica} \
             serving after {:.1} s)",
            acknowledged.len(),
            lost.len(),
            promoted.as_secs_f64()
        ));
        if !extra.is_empty() {
            assert!(
                lost.is_empty(),
                "acknowledged with WAIT, then lost: {lost:?}"
            );
        }
    }
    for line in report.into_inner().unwrap() {
        eprintln!("failover loss: {line}");
    }
}
