//! Several `aps run` daemons ride out a restart of their store's server: on a private
//! Redis, MariaDB, MongoDB-wire, ZooKeeper or PostgreSQL server taken down for 3 s in
//! the middle of the run, they reconnect and go on; the fire times due during the
//! outage run late, none started twice, none without a record, and every daemon is
//! registered again.
//!
//! Real processes, private servers on spare loopback ports (gated like the other tests
//! of each store: `APS_TEST_REDIS_URL`, `APS_TEST_MYSQL_URL`, `APS_TEST_MONGODB_URL`,
//! `APS_TEST_ZOOKEEPER_URL`, `APS_TEST_POSTGRES_URL`), real time: the daemons run for
//! 16 s per server, the outage 5 s in. One test at a time (`static_turn`).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use apscheduler_testkit::server::{
    in_ci, random_namespace, server_url, skip_notice, PrivateMariaDb, PrivateMongo,
    PrivatePostgres, PrivateRedis, PrivateZooKeeper,
};
use serde_json::Value;
use support::cluster::{
    gaps, history, micros, node_name, node_names, start_three, static_turn, stop_all,
    taken_over_after_the_stop, HISTORY_RECORDS, SECOND,
};
use support::max_instances::{max_instances_skips, MAX_INSTANCES_SKIP};

/// Three daemons on a private Redis that is SIGKILLed for 3 s in the middle of the run
/// and restarted (its append-only file keeps every acknowledged write): see
/// [`ride_out_a_restart`].
#[test]
fn three_daemons_ride_out_a_redis_restart() {
    if server_url(
        "APS_TEST_REDIS_URL",
        "redis://127.0.0.1:6379/",
        "three aps daemons through a Redis restart (a private redis-server)",
    )
    .is_none()
    {
        return;
    }
    static_turn(|| {
        let mut server = PrivateRedis::new();
        let url = server.url();
        ride_out_a_restart("redis", &url, "", &mut |up| {
            if up {
                server.start();
            } else {
                server.kill();
            }
        });
    });
}

/// Three daemons on a private MariaDB that is SIGKILLed for 3 s in the middle of the run
/// and started again (InnoDB recovers every committed write from its redo log): see
/// [`ride_out_a_restart`].
#[test]
fn three_daemons_ride_out_a_mariadb_restart() {
    if server_url(
        "APS_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
        "three aps daemons through a MariaDB restart (a private server)",
    )
    .is_none()
    {
        return;
    }
    static_turn(|| {
        let Some(mut server) = PrivateMariaDb::new() else {
            assert!(
                !in_ci(),
                "mariadb-install-db is not on PATH: the MariaDB restart test cannot run in CI"
            );
            skip_notice("three_daemons_ride_out_a_mariadb_restart (apscheduler-cli): mariadb-install-db is not on PATH");
            return;
        };
        let url = server.url();
        ride_out_a_restart("mariadb", &url, "", &mut |up| {
            if up {
                server.start();
            } else {
                server.kill();
            }
        });
    });
}

/// Three daemons on a private MongoDB-wire server (SecantusDB, its data on disk)
/// SIGKILLed for 3 s in the middle of the run and started again: see
/// [`ride_out_a_restart`].
#[test]
fn three_daemons_ride_out_a_mongodb_restart() {
    if server_url(
        "APS_TEST_MONGODB_URL",
        "mongodb://127.0.0.1:27017/",
        "three aps daemons through a MongoDB restart (a private server)",
    )
    .is_none()
    {
        return;
    }
    static_turn(|| {
        let Some(mut server) = PrivateMongo::new() else {
            assert!(
                !in_ci(),
                "SecantusDB is not installed: the MongoDB restart test cannot run in CI"
            );
            skip_notice("three_daemons_ride_out_a_mongodb_restart (apscheduler-cli): SecantusDB is not installed (scripts/start-mongo-wire.sh)");
            return;
        };
        let url = server.url(&random_namespace());
        // History records: with leased runs the ends of the runs that ended in the
        // outage reach this server seconds late after its restart, and the jobs' next
        // fire times are skipped at `max_instances` meanwhile (all 250 of the outage's
        // fire times in one of two runs); the history-records protocol waits for such
        // ends.
        ride_out_a_restart("mongodb", &url, HISTORY_RECORDS, &mut |up| {
            if up {
                server.start();
            } else {
                server.kill();
            }
        });
    });
}

/// Three daemons on a private ZooKeeper server (Debian's `zookeeper`) SIGKILLed for 3 s
/// in the middle of the run and started again on the same data: see
/// [`ride_out_a_restart`].
#[test]
fn three_daemons_ride_out_a_zookeeper_restart() {
    if server_url(
        "APS_TEST_ZOOKEEPER_URL",
        "127.0.0.1:2181",
        "three aps daemons through a ZooKeeper restart (a private server)",
    )
    .is_none()
        || !PrivateZooKeeper::available("three_daemons_ride_out_a_zookeeper_restart")
    {
        return;
    }
    static_turn(|| {
        let mut server = PrivateZooKeeper::new();
        let url = format!("zookeeper://{}/{}", server.hosts(), random_namespace());
        // History records: a ZooKeeper session can take longer than the lease (5 s) to
        // come back after the server's restart under load; with leased runs a run
        // started just before the outage is then swept and recorded `interrupted` by a
        // node whose session came back first (a clean-clone CI run: 3 such runs).
        ride_out_a_restart("zookeeper", &url, HISTORY_RECORDS, &mut |up| {
            if up {
                server.start();
            } else {
                server.kill();
            }
        });
    });
}

/// Three daemons on a private PostgreSQL stopped for 3 s in the middle of the run with
/// `pg_ctl stop -m immediate` (every server process quits at once, as in a crash) and
/// started again: see [`ride_out_a_restart`].
#[test]
fn three_daemons_ride_out_a_postgres_restart() {
    if server_url(
        "APS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "three aps daemons through a PostgreSQL restart (a private server)",
    )
    .is_none()
    {
        return;
    }
    static_turn(|| {
        let Some(server) = PrivatePostgres::init() else {
            assert!(
                !in_ci(),
                "initdb is not on PATH: the PostgreSQL restart test cannot run in CI"
            );
            skip_notice("three_daemons_ride_out_a_postgres_restart (apscheduler-cli): initdb is not on PATH");
            return;
        };
        server.start();
        ride_out_a_restart("postgres", &server.url(), "", &mut |up| {
            if up {
                server.start();
            } else {
                server.stop();
            }
        });
    });
}

/// Three daemons on the private server at `url` (`protocol` added to their
/// `[scheduler]`: the default, leased runs, when empty), 50 jobs every second; after 5 s
/// `switch(false)` takes the server down, 3 s later `switch(true)` brings it back. The
/// daemons reconnect and go on; the fire times due during the outage run late (the
/// grace is 30 s) or, with leased runs, are skipped at `max_instances` while the end of
/// their job's run before them waits for the store, none started twice, none without
/// a record, and every daemon is registered again. A server slow to come back can make the outage outlast the claim
/// lease: a fire time whose lease ran out meanwhile is run by the node that claimed it
/// next, and recorded `missed` by the first. Prints what happened to the outage's fire times.
fn ride_out_a_restart(label: &str, url: &str, protocol: &str, switch: &mut dyn FnMut(bool)) {
    let dir = tempfile::tempdir().unwrap();
    let jobs = 50;
    let mut nodes = start_three(dir.path(), protocol, url, "", jobs, "sleep 0.1");
    let started = chrono::Utc::now().timestamp_micros();
    std::thread::sleep(Duration::from_secs(5));
    switch(false);
    let down = chrono::Utc::now().timestamp_micros();
    std::thread::sleep(Duration::from_secs(3));
    switch(true);
    let up = chrono::Utc::now().timestamp_micros();
    std::thread::sleep(Duration::from_secs(8));
    let mut names: Vec<String> = nodes.iter().map(node_name).collect();
    names.sort();
    assert_eq!(node_names(url), names, "aps nodes after the restart");
    let ended = chrono::Utc::now().timestamp_micros();
    stop_all(&mut nodes);
    let runs = history(url);
    // Every fire time has a record; at most one of them started. A `missed` record is
    // of a fire time not started on that node: one whose release was not confirmed
    // across the outage and found lost on retry, while the lease ran out and another
    // node ran it (at most once comes first).
    let fire_time = |r: &Value| {
        (
            r["job_id"].as_str().unwrap().to_owned(),
            micros(r["scheduled_at"].as_str().unwrap()),
        )
    };
    let mut seen: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for r in &runs {
        *seen.entry(fire_time(r)).or_default() += usize::from(r["outcome"] != "missed");
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fire times started twice: {twice:?}");
    // To 5 s before the end, as in the takeover tests: a store slow after its restart
    // leaves the daemons catching up until then (what they have not claimed when they
    // stop waits in the store, unrecorded). A fire time whose run was still unstarted
    // when they stopped is taken over by the next daemon on the store.
    let gaps_in = |runs: &[Value]| {
        // Fire times after the window are the next daemon's, which leaves its own
        // unstarted rows when it stops.
        let keys: std::collections::BTreeSet<(String, i64)> = runs
            .iter()
            .map(fire_time)
            .filter(|(_, t)| *t <= ended)
            .collect();
        gaps(keys.iter(), jobs, (started, ended, 5), |_, _| false).0
    };
    let (settled, again) = taken_over_after_the_stop(dir.path(), url, gaps_in);
    assert!(
        again.is_empty(),
        "started again by the next daemon: {again:?}"
    );
    let gaps = gaps_in(&settled);
    assert!(
        gaps.is_empty(),
        "{} gaps (first: {:?})",
        gaps.len(),
        gaps.first()
    );
    let in_outage: Vec<&Value> = runs
        .iter()
        .filter(|r| (down..up).contains(&micros(r["scheduled_at"].as_str().unwrap())))
        .collect();
    let latest = in_outage
        .iter()
        .filter_map(|r| {
            Some(micros(r["started_at"].as_str()?) - micros(r["scheduled_at"].as_str()?))
        })
        .max()
        .unwrap_or(0);
    let outcomes: BTreeMap<&str, usize> = runs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["outcome"].as_str().unwrap()).or_default() += 1;
        m
    });
    eprintln!(
        "{label} restart: {} runs, outcomes {outcomes:?}; {} fire times fell in the {:.1} s \
         outage, started up to {} ms late",
        runs.len(),
        in_outage.len(),
        (up - down) as f64 / 1e6,
        latest / 1000
    );
    assert!(!in_outage.is_empty(), "no fire time fell in the outage");
    // A fire time started late after the outage can still run at the job's next
    // fire time, which `max_instances` then skips (recorded `missed`): the rule
    // working, as in the takeover tests. Ends made during the outage are written after
    // it, each node's behind the records it queued meanwhile: until then they hold their
    // jobs' fire times on the other nodes. Excused: a skip in the outage or the 5 s
    // after it, and one that names a node whose last run of the job before the skip
    // ended in the outage (leased runs name no node: any node's).
    let ended_in_outage = |skip: &Value, nodes: &[&str]| {
        let at = micros(skip["finished_at"].as_str().unwrap());
        let names: std::collections::BTreeSet<&str> = if nodes.is_empty() {
            runs.iter().filter_map(|r| r["node"].as_str()).collect()
        } else {
            nodes.iter().copied().collect()
        };
        names.iter().any(|node| {
            let last = runs
                .iter()
                .filter(|r| r["job_id"] == skip["job_id"] && r["node"] == *node)
                .filter(|r| r["outcome"] != "missed")
                .filter_map(|r| r["finished_at"].as_str().map(micros))
                .filter(|t| *t < at)
                .max();
            last.is_some_and(|t| (down..=up).contains(&t))
        })
    };
    let skips = max_instances_skips(
        &runs,
        &|skip, nodes| {
            let at = micros(skip["finished_at"].as_str().unwrap());
            (down..up + 5 * SECOND).contains(&at) || ended_in_outage(skip, nodes)
        },
        &|_| false,
    );
    eprintln!("{label} restart: fire times skipped by max_instances: {skips}");
    // Each fire time of the outage runs late, one after another with the others of its
    // job, and holds at most about one next fire time of its job: the share of skips
    // behind them grows with the machine's load, their number is bounded by theirs.
    // False skips (behind a run that had ended over 1.5 s before, its end not yet in
    // the history) at most 3%: beside a CI build, the Python MongoDB-wire server writes
    // the ends that late before the outage too (15 of 928 fire times in one such run;
    // none in runs alone). The takeover tests hold them to 1%.
    assert!(
        skips.stale.len() * 100 <= runs.len() * 3 && skips.in_flight <= in_outage.len(),
        "{skips} of {} fire times, {} in the outage (first false skip {:#?})",
        runs.len(),
        in_outage.len(),
        skips.stale.first()
    );
    let max_instances = |r: &&Value| {
        r["outcome"] == "missed"
            && r["message"].as_str().is_some_and(|m| {
                m.contains(MAX_INSTANCES_SKIP) || m.contains("shut down while the fire time waited")
            })
    };
    // A release sent as the server died is retried once it is back: its fire times start
    // if the retry applies; if the retry finds the lease gone (the first attempt had
    // applied, its reply lost) they are recorded `missed`, saying so, and never started
    // (at most once comes first). Only around the outage.
    let unconfirmed = |r: &&Value| {
        r["outcome"] == "missed"
            && r["message"].as_str().is_some_and(|m| {
                m.contains("the store did not confirm")
                    || m.contains("the store confirmed its claim only after")
            })
            && r["finished_at"]
                .as_str()
                .is_some_and(|t| (down..up + 5 * SECOND).contains(&micros(t)))
    };
    // An outage longer than the claim lease (5 s: a server slow to come back on a
    // loaded machine) lets a claim's lease run out before its release applies: another
    // node claims the job and runs the fire time, and this node's release, applied
    // after, finds the lease gone and records it `missed`, never started (at most once
    // comes first). Only around the outage, and only beside that other node's record.
    let lease_lost = |r: &&Value| {
        r["outcome"] == "missed"
            && r["message"].as_str().is_some_and(|m| {
                m.contains("another scheduler claimed the job after this one's lease expired")
            })
            && r["finished_at"]
                .as_str()
                .is_some_and(|t| (down..up + 5 * SECOND).contains(&micros(t)))
            && runs
                .iter()
                .any(|o| o["run_id"] != r["run_id"] && fire_time(o) == fire_time(r))
    };
    // (MongoDB) a release the driver sent again after a lost reply, found applied by
    // its token.
    let retried: usize = nodes
        .iter()
        .map(|n| n.log().matches("had applied at the first attempt").count())
        .sum();
    eprintln!(
        "{label} restart: fire times whose release was not confirmed: {}; whose lease ran \
         out in the outage: {}; release writes sent again and found applied: {retried}",
        runs.iter().filter(unconfirmed).count(),
        runs.iter().filter(lease_lost).count()
    );
    let bad: Vec<_> = runs
        .iter()
        .filter(|r| {
            r["outcome"] != "success" && !max_instances(r) && !unconfirmed(r) && !lease_lost(r)
        })
        .filter(|r| r["finished_at"].as_str().is_none_or(|t| micros(t) < ended))
        .take(5)
        .collect();
    assert!(bad.is_empty(), "runs that did not succeed: {bad:?}");
}
