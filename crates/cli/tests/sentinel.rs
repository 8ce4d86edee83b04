//! Three `aps run` daemons on Redis behind Sentinel (`redis+sentinel://`), the primary
//! SIGKILLed mid-run: the Sentinels promote the replica, the daemons follow it, and the
//! failover tests' checks hold (`support::failover`: no fire time started twice, by the
//! commands' own log and by the history; every start recorded; no gap in any job's
//! fire times; the outage's fire times run late). Prints the time from the kill to the
//! promotion and to the first run of a fire time due after it.
//!
//! Real processes: a private Sentinel group (a primary and a replica with
//! `appendonly yes`, three Sentinels with `down-after-milliseconds 1000`, on spare
//! loopback ports, `apscheduler_testkit::sentinel`) and real time, about 30 s. Gated
//! like the other Redis tests (`APS_TEST_REDIS_URL`); `redis-server` and
//! `redis-sentinel` must be on PATH.
//!
//! Redis replicates asynchronously, so a write the old primary had not yet sent is lost
//! (docs/stores.md, "What a failover can lose"); on loopback the replica is in sync
//! within a millisecond, and no run of this test has lost one.

mod support;

use std::time::Duration;

use apscheduler_testkit::sentinel::SentinelGroup;
use apscheduler_testkit::server::{random_namespace, server_url};
use support::failover::{check, now, through_failover};

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
    let mut ports = None;
    let (t, starts, runs, _) = through_failover(&url, || {
        let old = group.primary_port().expect("the Sentinels name a primary");
        group.kill_node(old);
        let new = group.wait_promoted(old, Duration::from_secs(60));
        ports = Some((old, new));
        now()
    });
    let (old, new) = ports.expect("the failover ran");
    eprintln!("sentinel failover: primary :{old} SIGKILLed, replica :{new} promoted");
    check("redis sentinel failover", &t, &starts, &runs);
}
