//! Three `aps run` daemons on a Redis Cluster (`redis+cluster://`), a primary SIGKILLed
//! mid-run: its replica takes over its slots, the daemons' cluster client follows, and
//! the failover tests' checks hold (`support::failover`: no fire time started twice, by
//! the commands' own log and by the history; every start recorded; no gap in any job's
//! fire times; the outage's fire times run late). Prints the time from the kill to the
//! promotion and to the first run of a fire time due after it.
//!
//! Real processes: a private cluster (six `redis-server --cluster-enabled yes`, three
//! primaries with one replica each, `cluster-node-timeout 1000`, `appendonly yes`, on
//! spare loopback ports, `apscheduler_testkit::redis_cluster`) and real time, about
//! 30 s. Gated like the other Redis tests (`APS_TEST_REDIS_URL`); `redis-server` and
//! `redis-cli` must be on PATH.
//!
//! The primary killed is the one serving the run history's slot, so the failover
//! interrupts claims, releases and history writes alike.

mod support;

use std::time::Duration;

use apscheduler_testkit::redis_cluster::RedisCluster;
use apscheduler_testkit::server::{random_namespace, server_url};
use support::failover::{check, now, through_failover};

#[test]
fn three_daemons_follow_a_redis_cluster_failover() {
    if server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons through a Redis Cluster failover (a private cluster)",
    )
    .is_none()
    {
        return;
    }
    let mut cluster = RedisCluster::start();
    let prefix = format!("{}.", random_namespace());
    let url = cluster.url(&prefix, "&partitions=8");
    let history_tag = format!("{{{prefix}h}}runs");
    let mut ports = None;
    let (t, starts, runs, _) = through_failover(&url, || {
        let old = cluster
            .primary_for_key(&history_tag)
            .expect("a primary serves the history's slot");
        let replica = cluster.replica_of(old).expect("the primary has a replica");
        cluster.kill_node(old);
        cluster.wait_promoted(replica, Duration::from_secs(60));
        ports = Some((old, replica));
        now()
    });
    let (old, new) = ports.expect("the failover ran");
    eprintln!("redis cluster failover: primary :{old} SIGKILLed, replica :{new} promoted");
    check("redis cluster failover", &t, &starts, &runs);
}
