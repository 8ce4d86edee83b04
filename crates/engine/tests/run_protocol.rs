//! One run protocol per store: a scheduler refuses to start while a live node of
//! another protocol (leased runs, history records, or the leased runs of an earlier
//! release) is registered, and its own entry names its protocol.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ErrorKind, ManualClock, NodeInfo, RunHistory, RunProtocol};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor};
use apscheduler_store_memory::MemoryRunHistory;

mod common;
use common::{at, entry, wait_for};

fn engine(clock: &Arc<ManualClock>, history: &Arc<MemoryRunHistory>, leased: bool) -> Engine {
    Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/3")
        .leased_runs(leased)
        .run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(20),
                node_timeout: Duration::from_secs(10),
                ..HistoryOptions::default()
            },
        )
        .build()
}

async fn registered(history: &MemoryRunHistory, node: &str) -> Option<NodeInfo> {
    let listed = history.nodes().unwrap().list_nodes().await.unwrap();
    listed.into_iter().find(|n| n.node == node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_of_the_other_protocol_refuses_the_start_until_it_is_silent() {
    for (leased, other) in [
        (true, RunProtocol::HistoryRecords),
        (false, RunProtocol::LeasedRuns),
    ] {
        let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
        let history = Arc::new(MemoryRunHistory::new());
        let nodes = history.nodes().unwrap();
        nodes
            .heartbeat(&NodeInfo {
                protocol: other.clone(),
                ..entry("old/1", at(9, 59, 55))
            })
            .await
            .unwrap();
        let e = engine(&clock, &history, leased);
        let err = e.start(false).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        let mine = if leased {
            "leased_runs.2"
        } else {
            "history_records"
        };
        let message = err.to_string();
        for part in [
            "cannot start: node old/1 (host elsewhere, pid 7, last heartbeat 2024-01-15T09:59:55.000Z)",
            &format!("keeps its runs as {other} and node me/3 as {mine}"),
            "must not share one store",
            "[scheduler] leased_runs",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
        assert!(registered(&history, "me/3").await.is_none());

        // Once the other node is silent past the node time-out, the start goes ahead
        // and this node's entry names its protocol.
        clock.set(at(10, 0, 5) + chrono::Duration::milliseconds(1));
        e.start(false).await.unwrap();
        let me = async || registered(&history, "me/3").await.is_some();
        wait_for("this node's entry", me).await;
        let me = registered(&history, "me/3").await.unwrap();
        assert_eq!(me.protocol.as_str(), mine);
        e.shutdown(true).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_the_same_protocol_and_this_nodes_previous_life_do_not_refuse_it() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let nodes = history.nodes().unwrap();
    nodes
        .heartbeat(&NodeInfo {
            protocol: RunProtocol::LeasedRuns,
            ..entry("peer/1", at(9, 59, 59))
        })
        .await
        .unwrap();
    // This node's own entry, left by its previous life with the other protocol (it
    // was switched to leased runs and restarted).
    nodes
        .heartbeat(&entry("me/3", at(9, 59, 59)))
        .await
        .unwrap();
    let e = engine(&clock, &history, true);
    e.start(false).await.unwrap();
    let switched = async || {
        registered(&history, "me/3")
            .await
            .is_some_and(|n| n.protocol == RunProtocol::LeasedRuns)
    };
    wait_for("this node's entry rewritten with its protocol", switched).await;
    e.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_of_an_earlier_release_of_leased_runs_refuses_the_start() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    // The entry a node of the release before the `ending` state writes.
    let earlier = RunProtocol::from("leased_runs".to_owned());
    assert_eq!(earlier, RunProtocol::Other("leased_runs".to_owned()));
    let nodes = history.nodes().unwrap();
    nodes
        .heartbeat(&NodeInfo {
            protocol: earlier,
            ..entry("old/1", at(9, 59, 59))
        })
        .await
        .unwrap();
    let e = engine(&clock, &history, true);
    let err = e.start(false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let message = err.to_string();
    for part in [
        "keeps its runs as leased_runs and node me/3 as leased_runs.2",
        "must not share one store",
        "leased_runs is the leased runs of an earlier release, which may not read a run that is \
         ending: stop its nodes and start them with this release",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert!(registered(&history, "me/3").await.is_none());
}
