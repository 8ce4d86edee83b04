//! A ZooKeeper outage under a running scheduler: a private ZooKeeper server (Debian's
//! `zookeeper` package, its own data directory and loopback port) is killed with SIGKILL
//! for about four seconds and restarted on the same port and data. The scheduler must
//! reconnect, still have its job, run it again, and account for every fire time of the
//! outage by the misfire rules: each one either ran once or was reported missed once.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::event::{Event, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED};
use apscheduler_engine::{BackgroundScheduler, Engine, JobSpec};
use apscheduler_testkit::server::PrivateZooKeeper;
use serde_json::json;

#[test]
fn a_restarted_server_loses_no_job_and_no_fire_time() {
    if !PrivateZooKeeper::available("a_restarted_server_loses_no_job_and_no_fire_time") {
        return;
    }
    let mut server = PrivateZooKeeper::new();
    let store = common::store(&server.hosts(), "/aps_fault");
    let scheduler =
        BackgroundScheduler::from_builder(Engine::builder().jobstore("default", Arc::new(store)))
            .expect("scheduler");
    scheduler.register_task("tick", |_| Ok(json!(null)));
    // Fire time (as text) -> outcomes seen for it.
    let outcomes: Arc<Mutex<BTreeMap<String, Vec<&'static str>>>> = Arc::default();
    let seen = outcomes.clone();
    scheduler.add_listener(
        move |event: &Event| {
            if let Event::Execution {
                code,
                scheduled_run_time,
                ..
            } = event
            {
                let what = if *code == EVENT_JOB_MISSED {
                    "missed"
                } else {
                    "executed"
                };
                seen.lock()
                    .unwrap()
                    .entry(scheduled_run_time.to_rfc3339())
                    .or_default()
                    .push(what);
            }
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_MISSED,
    );
    scheduler
        .add_job(
            JobSpec::task("tick")
                .id("tick")
                .trigger_args("interval", json!({"seconds": 1}))
                .misfire_grace_time(Some(Duration::from_secs(1)))
                .coalesce(false)
                .replace_existing(true),
        )
        .expect("add the job");
    scheduler.start(false).expect("start");

    let count = |what: &str| {
        outcomes
            .lock()
            .unwrap()
            .values()
            .flatten()
            .filter(|o| **o == what)
            .count()
    };
    wait_until(
        "two runs before the outage",
        Duration::from_secs(10),
        || count("executed") >= 2,
    );

    server.kill();
    std::thread::sleep(Duration::from_secs(4));
    let before_restart = count("executed");
    server.start();
    let restarted = Instant::now();
    wait_until("a run after the restart", Duration::from_secs(20), || {
        count("executed") > before_restart
    });
    let recovery = restarted.elapsed();
    wait_until("another run", Duration::from_secs(5), || {
        count("executed") > before_restart + 1
    });
    scheduler.shutdown(true).expect("shutdown");

    let outcomes = outcomes.lock().unwrap().clone();
    eprintln!(
        "first run {recovery:?} after the restart; outcomes: {} executed, {} missed",
        count("executed"),
        count("missed")
    );
    // Every fire time from the first to the last: one outcome each, none skipped.
    let times: Vec<_> = outcomes
        .keys()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
        .collect();
    for pair in times.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a fire time between {} and {} has no outcome: {outcomes:?}",
            pair[0],
            pair[1]
        );
    }
    for (t, seen) in &outcomes {
        assert_eq!(seen.len(), 1, "fire time {t} has {seen:?}");
    }
    assert!(
        count("missed") >= 2,
        "fire times of a 4 s outage past the 1 s grace must be reported missed: {outcomes:?}"
    );
    // The job is still there after the outage.
    let reopened = common::store(&server.hosts(), "/aps_fault");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let job = rt.block_on(async {
        use apscheduler_core::JobStore;
        reopened.start("default").await.expect("reconnect");
        reopened.lookup_job("tick").await.expect("lookup")
    });
    assert!(job.is_some(), "the job was lost");
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
