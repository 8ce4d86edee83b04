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

use std::time::Duration;

use apscheduler_testkit::ensemble::ZooKeeperEnsemble;
use apscheduler_testkit::pg_failover::{PgBouncer, PostgresPair};
use apscheduler_testkit::server::{
    in_ci, random_namespace, server_url, skip_notice, PrivateZooKeeper,
};
use support::failover::{check, now, through_failover};

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
