//! Recovery of interrupted runs: a dead node's run of a job with `recover` set is run
//! again, once, by the node that records it `interrupted`, for the same fire time;
//! nothing else is (a job without `recover`, a fire time another node started, a fire
//! time the dead node never got).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{ManualClock, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
use common::{at, entry, running, wait_for};

/// The runs of the task `count`: (node, job id, fire time).
type Ran = Arc<Mutex<Vec<(String, String, DateTime<Utc>)>>>;

/// A node `name` on `history` at the clock's 10:00:00, heartbeating every 20 ms, whose
/// task `count` notes each run in `ran`.
fn node(
    name: &str,
    clock: &Arc<ManualClock>,
    history: &Arc<MemoryRunHistory>,
    ran: &Ran,
) -> Engine {
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id(name)
        .run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(20),
                node_timeout: Duration::from_secs(10),
                ..HistoryOptions::default()
            },
        )
        .build();
    let (ran, me) = (ran.clone(), name.to_owned());
    engine.register_task("count", move |ctx| {
        let t = ctx.scheduled_run_time.with_timezone(&Utc);
        ran.lock()
            .unwrap()
            .push((me.clone(), ctx.job_id.to_string(), t));
        Ok(json!(null))
    });
    engine
}

/// A job of the task `count` firing every minute (next at 10:01: the dead node released
/// 09:59), run however late.
fn job(id: &str, recover: bool) -> JobSpec {
    JobSpec::task("count")
        .id(id)
        .trigger_args("interval", json!({"minutes": 1}))
        .recover(recover)
        .misfire_grace_time(None)
}

/// Waits until `dead` left the registry: its records are `interrupted` and handed over.
async fn wait_reaped(history: &MemoryRunHistory, dead: &str) {
    let nodes = history.nodes().unwrap();
    let gone = async || {
        nodes
            .list_nodes()
            .await
            .unwrap()
            .iter()
            .all(|n| n.node != dead)
    };
    wait_for("the dead node's reaping", gone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_run_is_recovered_only_for_a_recover_job_not_yet_run_elsewhere() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let ran = Ran::default();
    let nodes = history.nodes().unwrap();
    nodes
        .heartbeat(&entry("dead/1", at(9, 59, 30)))
        .await
        .unwrap();
    let mut taken_over = running("r-taken-over-elsewhere", "taken-over", "other/2");
    taken_over.outcome = RunOutcome::Success;
    taken_over.finished_at = Some(at(9, 59, 1));
    // Released to the dead node, which never started it (no start time): the fire
    // time would be run for any job, but another node had taken it over and started
    // it, and was itself taken for dead while it ran (`interrupted`, with its start).
    let mut unstarted = running("r-unstarted", "started-elsewhere", "dead/1");
    unstarted.started_at = None;
    let mut started_elsewhere = running("r-started-elsewhere", "started-elsewhere", "other/2");
    started_elsewhere.outcome = RunOutcome::Interrupted;
    started_elsewhere.finished_at = Some(at(9, 59, 20));
    history
        .record_runs(&[
            running("r-recover", "recover", "dead/1"),
            running("r-plain", "plain", "dead/1"),
            // The dead node wrote this record and died before its release was applied;
            // another node took the fire time over and ran it.
            running("r-taken-over", "taken-over", "dead/1"),
            taken_over,
            unstarted,
            started_elsewhere,
            // Its claim of this one was not applied either, and nobody claimed it yet:
            // the job still waits at 09:59:00, for its next claim.
            running("r-unreleased", "unreleased", "dead/1"),
        ])
        .await
        .unwrap();
    let engine = node("me/3", &clock, &history, &ran);
    engine.start(true).await.unwrap();
    for (id, recover) in [
        ("recover", true),
        ("plain", false),
        ("taken-over", true),
        ("started-elsewhere", false),
    ] {
        engine.add_job(job(id, recover)).await.unwrap();
    }
    // Hourly, so that the claim runs 09:59:00 alone.
    let unreleased = job("unreleased", true)
        .trigger_args("interval", json!({"hours": 1}))
        .next_run_time(Some(at(9, 59, 0).with_timezone(&chrono_tz::UTC)));
    engine.add_job(unreleased).await.unwrap();
    wait_reaped(&history, "dead/1").await;
    // A paused scheduler starts nothing, recoveries included.
    engine.process_jobs().await;
    assert!(ran.lock().unwrap().is_empty());

    engine.resume().unwrap();
    engine.process_jobs().await;
    engine.flush_history(Duration::from_secs(5)).await;
    // The recovery, and the unreleased fire time run by the claim (once: not recovered).
    let mut runs = ran.lock().unwrap().clone();
    runs.sort();
    assert_eq!(
        runs,
        [
            ("me/3".to_owned(), "recover".to_owned(), at(9, 59, 0)),
            ("me/3".to_owned(), "unreleased".to_owned(), at(9, 59, 0)),
        ]
    );
    let records = history.query_runs(&RunQuery::default()).await.unwrap();
    let of = |job: &str| -> Vec<RunRecord> {
        records
            .iter()
            .filter(|r| r.job_id == job)
            .cloned()
            .collect()
    };
    let recovered = of("recover");
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    let recovery = recovered.iter().find(|r| r.run_id != "r-recover").unwrap();
    assert_eq!(
        (
            recovery.outcome,
            recovery.scheduled_at,
            recovery.node.as_str()
        ),
        (RunOutcome::Success, at(9, 59, 0), "me/3")
    );
    assert_eq!(
        recovery.message.as_deref(),
        Some("recovery of run r-recover interrupted on node dead/1")
    );
    for (job, n) in [
        ("plain", 1),
        ("taken-over", 2),
        ("unreleased", 2),
        ("started-elsewhere", 2),
    ] {
        assert_eq!(of(job).len(), n, "{job}: {:?}", of(job));
    }
    assert!(of("unreleased").iter().all(|r| r
        .message
        .as_deref()
        .is_none_or(|m| !m.starts_with("recovery"))));

    // Handed over once, recovered once: later passes start nothing more.
    engine.process_jobs().await;
    assert_eq!(ran.lock().unwrap().len(), 2);
    engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_reaping_one_dead_node_recover_its_run_once() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let ran = Ran::default();
    history
        .nodes()
        .unwrap()
        .heartbeat(&entry("dead/1", at(9, 59, 30)))
        .await
        .unwrap();
    history
        .record_runs(&[running("r-recover", "recover", "dead/1")])
        .await
        .unwrap();
    // Each live node has the job in its own store, as on a shared one.
    let nodes = [
        node("a/2", &clock, &history, &ran),
        node("b/3", &clock, &history, &ran),
    ];
    for engine in &nodes {
        engine.add_job(job("recover", true)).await.unwrap();
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let (started_a, started_b) = tokio::join!(a.start(false), b.start(false));
    started_a.unwrap();
    started_b.unwrap();
    wait_reaped(&history, "dead/1").await;
    for engine in &nodes {
        engine.process_jobs().await;
        engine.flush_history(Duration::from_secs(5)).await;
    }
    let runs = ran.lock().unwrap().clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0].1.as_str(), runs[0].2), ("recover", at(9, 59, 0)));
    let records = history.query_runs(&RunQuery::default()).await.unwrap();
    let outcomes: Vec<RunOutcome> = records.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes.len(), 2, "{records:?}");
    assert!(outcomes.contains(&RunOutcome::Interrupted) && outcomes.contains(&RunOutcome::Success));
    for engine in &nodes {
        engine.shutdown(true).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_node_recovers_at_start_the_runs_its_previous_life_left_running() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let ran = Ran::default();
    // The previous life of node "worker" was killed during this run.
    history
        .record_runs(&[running("r-recover", "recover", "worker")])
        .await
        .unwrap();
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .run_history(
            history.clone(),
            HistoryOptions {
                node: Some("worker".into()),
                ..HistoryOptions::default()
            },
        )
        .build();
    let seen = ran.clone();
    engine.register_task("count", move |ctx| {
        let t = ctx.scheduled_run_time.with_timezone(&Utc);
        seen.lock()
            .unwrap()
            .push(("worker".into(), ctx.job_id.to_string(), t));
        Ok(json!(null))
    });
    engine.add_job(job("recover", true)).await.unwrap();
    engine.start(false).await.unwrap();
    engine.process_jobs().await;
    engine.flush_history(Duration::from_secs(5)).await;
    assert_eq!(
        ran.lock().unwrap().clone(),
        [("worker".to_owned(), "recover".to_owned(), at(9, 59, 0))]
    );
    let records = history.query_runs(&RunQuery::default()).await.unwrap();
    let outcomes: Vec<(&str, RunOutcome)> = records
        .iter()
        .map(|r| (r.message.as_deref().unwrap_or_default(), r.outcome))
        .collect();
    assert!(
        outcomes.contains(&(
            "recovery of run r-recover interrupted on node worker",
            RunOutcome::Success
        )),
        "{outcomes:?}"
    );
    engine.shutdown(true).await.unwrap();
}
