//! Cluster membership through the node registry kept beside the run history: a
//! scheduler registers at start, heartbeats, takes a node silent for longer than the
//! node time-out for dead (its running records become `interrupted`, its entry goes)
//! and leaves the registry at shutdown; and a run's `running` record is written before
//! the run starts.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ManualClock, RunHistory, RunOutcome, RunQuery};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use serde_json::json;

mod common;
use common::{at, entry, running, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_taken_for_dead_and_its_running_runs_interrupted() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let nodes = history.nodes().unwrap();
    // A node silent for 30 s (dead) and one that heartbeat a second ago (alive).
    nodes
        .heartbeat(&entry("dead/1", at(9, 59, 30)))
        .await
        .unwrap();
    nodes
        .heartbeat(&entry("alive/2", at(9, 59, 59)))
        .await
        .unwrap();
    history
        .record_runs(&[
            running("r-dead", "job", "dead/1"),
            running("r-alive", "job", "alive/2"),
        ])
        .await
        .unwrap();
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/3")
        .run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(20),
                node_timeout: Duration::from_secs(10),
                ..HistoryOptions::default()
            },
        )
        .build();
    engine.start(false).await.unwrap();

    let registered = async || {
        let listed = nodes.list_nodes().await.unwrap();
        listed.iter().map(|n| n.node.clone()).collect::<Vec<_>>() == ["alive/2", "me/3"]
    };
    wait_for("the dead node's removal and this node's entry", registered).await;
    let me = nodes.list_nodes().await.unwrap().pop().unwrap();
    assert_eq!(
        (me.pid, me.heartbeat_at),
        (std::process::id(), at(10, 0, 0))
    );

    let runs = history.query_runs(&RunQuery::default()).await.unwrap();
    let outcome = |id: &str| runs.iter().find(|r| r.run_id == id).unwrap().clone();
    let dead = outcome("r-dead");
    assert_eq!(dead.outcome, RunOutcome::Interrupted);
    assert_eq!(dead.finished_at, Some(at(10, 0, 0)));
    let message = dead.message.unwrap();
    assert!(
        message.contains("dead/1") && message.contains("me/3"),
        "{message}"
    );
    assert_eq!(outcome("r-alive").outcome, RunOutcome::Running);

    // The live node falls silent too: 10 s is not yet past the time-out, 10.1 s is.
    clock.set(at(10, 0, 9));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(nodes.list_nodes().await.unwrap().len(), 2);
    clock.set(at(10, 0, 9) + chrono::Duration::milliseconds(100));
    let alive_gone = async || nodes.list_nodes().await.unwrap().len() == 1;
    wait_for("the second node's death", alive_gone).await;
    let runs = history.query_runs(&RunQuery::default()).await.unwrap();
    assert!(runs.iter().all(|r| r.outcome == RunOutcome::Interrupted));

    // A clean shutdown leaves the registry.
    engine.shutdown(true).await.unwrap();
    assert!(nodes.list_nodes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_running_record_is_written_before_it_starts() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/1")
        .run_history(history.clone(), HistoryOptions::default())
        .build();
    // The task reads the history as it runs: its own record is there, `running`.
    let seen = history.clone();
    engine.register_task("peek", move |ctx| {
        let run_id = ctx.run_id.clone().unwrap_or_default();
        let history = seen.clone();
        let record = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(history.query_runs(&RunQuery::default()))
                .unwrap()
                .into_iter()
                .find(|r| *r.run_id == *run_id)
        })
        .join()
        .unwrap();
        Ok(json!({"output": format!("{:?}", record.map(|r| (r.outcome, r.started_at)))}))
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(
            JobSpec::task("peek")
                .id("peek")
                .trigger_args("interval", json!({"minutes": 1})),
        )
        .await
        .unwrap();
    clock.set(at(10, 1, 0));
    engine.process_jobs().await;
    engine.flush_history(Duration::from_secs(5)).await;
    let runs = history.query_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].outcome, RunOutcome::Success);
    assert_eq!(
        runs[0].output,
        format!("Some((Running, Some({:?})))", at(10, 1, 0))
    );
    engine.shutdown(true).await.unwrap();
}

/// A node whose entry a reaper removed on a stale read while it was back from a stall,
/// and that died before its next heartbeat registered it again, leaves `running`
/// records and no entry: another node records them `interrupted` once the node is
/// missing at two looks a node time-out apart, and leaves those of a node that is
/// missing at one look only (it registers again at its next heartbeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_records_of_a_node_missing_from_the_registry_are_interrupted_after_a_node_timeout()
{
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let nodes = history.nodes().unwrap();
    history
        .record_runs(&[running("r-gone", "job", "gone/1")])
        .await
        .unwrap();
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/3")
        .run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(20),
                node_timeout: Duration::from_secs(10),
                ..HistoryOptions::default()
            },
        )
        .build();
    engine.start(false).await.unwrap();
    wait_for("this node's entry", async || {
        !nodes.list_nodes().await.unwrap().is_empty()
    })
    .await;
    let outcome = async |id: &str| {
        let runs = history.query_runs(&RunQuery::default()).await.unwrap();
        runs.into_iter().find(|r| r.run_id == id).unwrap()
    };
    // Missing at the first look only: many heartbeats later, still running.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(outcome("r-gone").await.outcome, RunOutcome::Running);
    // A second node's run, whose node is missing at the next look only.
    history
        .record_runs(&[running("r-back", "job", "back/2")])
        .await
        .unwrap();
    clock.set(at(10, 0, 10));
    wait_for("the missing node's run interrupted", async || {
        outcome("r-gone").await.outcome == RunOutcome::Interrupted
    })
    .await;
    let gone = outcome("r-gone").await;
    let message = gone.message.unwrap();
    assert!(
        message.contains("gone/1")
            && message.contains("left the node registry")
            && message.contains("me/3"),
        "{message}"
    );
    assert_eq!(outcome("r-back").await.outcome, RunOutcome::Running);
    // It registers again: never taken for dead.
    nodes
        .heartbeat(&entry("back/2", at(10, 0, 10)))
        .await
        .unwrap();
    clock.set(at(10, 0, 20));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(outcome("r-back").await.outcome, RunOutcome::Running);
    engine.shutdown(true).await.unwrap();
}
