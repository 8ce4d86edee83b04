//! A dead node must not hold its jobs: two engines on one (shared) memory store and
//! one memory run history, under an injected clock. One of them dies in the middle of
//! a run (its tokio runtime is shut down: its heartbeat, its history writer and its
//! passes stop at once, as in a process killed), leaving the run's `running` record
//! behind. The other counts that record as an instance of the job only while the dead
//! node's last heartbeat is younger than one claim lease. And a fire time released to
//! a node that died before starting it (its record has no start time) is started by
//! the node that takes the dead one for dead, once (how starts are written:
//! `start_write.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{JobStore as _, ManualClock, RunHistory as _, RunOutcome, RunQuery};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec, DEFAULT_LEASE};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
#[allow(dead_code)] // most faults are for other tests
mod faulty_store;
use common::{at, entry, running, wait_for};
use faulty_store::{Fault, Faulty};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A node `id` on `store` and `history`, heartbeating every 50 ms (real time), running
/// jobs inline.
fn node(
    id: &str,
    clock: &Arc<ManualClock>,
    store: &Arc<Faulty>,
    history: &Arc<MemoryRunHistory>,
) -> Engine {
    Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store.clone())
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id(id)
        .run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(50),
                cluster_max_instances: true,
                record_starts: true,
                ..HistoryOptions::default()
            },
        )
        .build()
}

/// The records of the job `job` at `t`.
async fn records_at(
    history: &MemoryRunHistory,
    t: DateTime<Utc>,
) -> Vec<apscheduler_core::RunRecord> {
    history
        .query_runs(&RunQuery {
            job_id: Some("job".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.scheduled_at == t)
        .collect()
}

#[test]
fn a_dead_nodes_finished_but_unrecorded_run_stops_blocking_its_job_after_one_lease() {
    assert_eq!(DEFAULT_LEASE, Duration::from_secs(5));
    let clock = Arc::new(ManualClock::new(at(9, 59, 59)));
    let store = Faulty::new(true);
    let history = Arc::new(MemoryRunHistory::new());

    // The node that dies: its run of 10:00:00 blocks until the test lets it end.
    let rt_dead = runtime();
    let dead = node("dead/1", &clock, &store, &history);
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let end_rx = Mutex::new(end_rx);
    dead.register_task("work", move |_| {
        let _ = started_tx.lock().unwrap().send(());
        let _ = end_rx.lock().unwrap().recv();
        Ok(json!(null))
    });
    rt_dead.block_on(async {
        dead.start(false).await.unwrap();
        // Its heartbeat task registers it.
        wait_for("dead/1's registry entry", async || {
            let nodes = history.nodes().unwrap().list_nodes().await.unwrap();
            nodes.iter().any(|n| n.node == "dead/1")
        })
        .await;
        dead.add_job(
            JobSpec::task("work")
                .id("job")
                .trigger_args(
                    "interval",
                    json!({"seconds": 3, "start_date": "2024-01-15 10:00:00"}),
                )
                .max_instances(1)
                .misfire_grace_time(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    });
    clock.set(at(10, 0, 0));
    let passing = dead.clone();
    rt_dead.spawn(async move { passing.process_jobs().await });
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the dead node's run did not start");
    // Killed mid-run; then the run ends, and nothing of it is written.
    rt_dead.shutdown_background();
    std::thread::sleep(Duration::from_millis(200));
    end_tx.send(()).unwrap();

    let rt = runtime();
    let live = node("live/2", &clock, &store, &history);
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    live.register_task("work", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    rt.block_on(async {
        let left = records_at(&history, at(10, 0, 0)).await;
        assert_eq!(left.len(), 1, "{left:#?}");
        assert_eq!(
            (left[0].outcome, &*left[0].node),
            (RunOutcome::Running, "dead/1")
        );
        let job = store.lookup_job("job").await.unwrap().unwrap();
        assert_eq!(job.next_run_time.unwrap(), at(10, 0, 3));
        live.start(false).await.unwrap();

        // 3 s after the dead node's last heartbeat (under a lease): its run may still
        // be going, so it holds the job; the fire time waits, then is skipped.
        clock.set(at(10, 0, 3));
        live.process_jobs().await;
        wait_for("the skip of 10:00:03", async || {
            live.flush_history(Duration::from_secs(5)).await;
            records_at(&history, at(10, 0, 3))
                .await
                .iter()
                .any(|r| r.outcome == RunOutcome::Missed)
        })
        .await;
        let skipped = records_at(&history, at(10, 0, 3)).await;
        let message = skipped[0].message.clone().unwrap_or_default();
        assert!(
            message.contains("1 of them on other nodes: dead/1"),
            "{message}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0);

        // 6 s after it (over a lease, under the 10 s node time-out): the run no
        // longer holds the job, which runs here.
        clock.set(at(10, 0, 6));
        live.process_jobs().await;
        wait_for("the run of 10:00:06", async || {
            runs.load(Ordering::SeqCst) == 1
        })
        .await;
        live.flush_history(Duration::from_secs(5)).await;
        let ran = records_at(&history, at(10, 0, 6)).await;
        assert_eq!(ran.len(), 1, "{ran:#?}");
        assert_eq!(
            (ran[0].outcome, &*ran[0].node),
            (RunOutcome::Success, "live/2")
        );
        // Not reaped yet: the dead node's record is still `running`.
        let left = records_at(&history, at(10, 0, 0)).await;
        assert_eq!(left[0].outcome, RunOutcome::Running, "{left:#?}");
        live.shutdown(true).await.unwrap();
    });
}

#[test]
fn a_fire_time_released_to_a_node_that_died_before_starting_it_runs_once_on_another() {
    let clock = Arc::new(ManualClock::new(at(9, 59, 59)));
    let store = Faulty::new(true);
    let history = Arc::new(MemoryRunHistory::new());
    let counting = |engine: &Engine| {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        engine.register_task("work", move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(json!(null))
        });
        runs
    };

    // The node that dies: its tasks run only inside `block_on`, so it does nothing
    // between the calls below, and nothing once its runtime is dropped.
    let rt_dead = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dead = node("dead/1", &clock, &store, &history);
    let dead_runs = counting(&dead);
    rt_dead.block_on(async {
        dead.start(false).await.unwrap();
        // Its heartbeat task registers it (at 09:59:59).
        wait_for("dead/1's registry entry", async || {
            let nodes = history.nodes().unwrap().list_nodes().await.unwrap();
            nodes.iter().any(|n| n.node == "dead/1")
        })
        .await;
        dead.add_job(JobSpec::task("work").id("job").trigger_args(
            "interval",
            json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
        ))
        .await
        .unwrap();
        // The store applies the release of 10:00:00 and its reply is lost: the fire
        // time is the dead node's, which holds its run until the release's retry.
        store
            .fault
            .lock()
            .unwrap()
            .replace(Fault::AppliedUnconfirmed);
        clock.set(at(10, 0, 0));
        dead.process_jobs().await;
    });
    drop(rt_dead);
    assert_eq!(dead_runs.load(Ordering::SeqCst), 0);

    let rt = runtime();
    rt.block_on(async {
        let job = store.lookup_job("job").await.unwrap().unwrap();
        assert_eq!(job.next_run_time.unwrap(), at(10, 1, 0), "release applied");
        let left = records_at(&history, at(10, 0, 0)).await;
        assert_eq!(left.len(), 1, "{left:#?}");
        assert_eq!(
            (left[0].outcome, &*left[0].node),
            (RunOutcome::Running, "dead/1")
        );
        assert_eq!(left[0].started_at, None, "{left:#?}");

        // Past the dead node's time-out (10 s): the live node reaps it and starts the
        // fire time, although it is past its misfire grace time (1 s).
        clock.set(at(10, 0, 11));
        let live = node("live/2", &clock, &store, &history);
        let live_runs = counting(&live);
        live.start(false).await.unwrap();
        // (The engine has no loop of its own: the test drives its passes.)
        wait_for("the fire time's start on live/2", async || {
            live.process_jobs().await;
            live_runs.load(Ordering::SeqCst) == 1
        })
        .await;
        live.flush_history(Duration::from_secs(5)).await;
        let records = records_at(&history, at(10, 0, 0)).await;
        assert_eq!(records.len(), 2, "{records:#?}");
        let theirs = records.iter().find(|r| r.node == "dead/1").unwrap();
        assert_eq!(theirs.outcome, RunOutcome::Interrupted, "{records:#?}");
        assert_eq!(theirs.started_at, None, "{records:#?}");
        let ours = records.iter().find(|r| r.node == "live/2").unwrap();
        assert_eq!(ours.outcome, RunOutcome::Success, "{records:#?}");
        let message = ours.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("released to node dead/1, which died before starting it"),
            "{message}"
        );
        // Once: further passes (and heartbeats) start it no more.
        live.process_jobs().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        live.process_jobs().await;
        assert_eq!(live_runs.load(Ordering::SeqCst), 1);
        assert_eq!(dead_runs.load(Ordering::SeqCst), 0);
        live.shutdown(true).await.unwrap();
    });
}

/// What the node that reaps a dead one starts from its records, job by job (none asks
/// for recovery): a fire time with no start time, released (its job is past it), runs
/// once; one that another node took over and recorded `missed` does not; nor does a run
/// that may have started (a start time), nor a waiting run (`due_at`: a retry's or a
/// buffered fire time's, kept by other code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_starts_only_the_released_fire_times_a_dead_node_never_started() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = Faulty::new(true);
    let history = Arc::new(MemoryRunHistory::new());
    let nodes = history.nodes().unwrap();
    nodes
        .heartbeat(&entry("dead/1", at(9, 59, 30)))
        .await
        .unwrap();
    let unstarted = |id: &str, job: &str| apscheduler_core::RunRecord {
        started_at: None,
        ..running(id, job, "dead/1")
    };
    let mut missed_elsewhere = running("r-missed", "taken-over", "other/2");
    missed_elsewhere.outcome = RunOutcome::Missed;
    missed_elsewhere.started_at = None;
    missed_elsewhere.finished_at = Some(at(9, 59, 6));
    let mut waiting = unstarted("r-waiting", "waiting");
    waiting.due_at = Some(at(9, 59, 30));
    history
        .record_runs(&[
            unstarted("r-unstarted", "unstarted"),
            unstarted("r-taken-over", "taken-over"),
            missed_elsewhere,
            running("r-started", "started", "dead/1"),
            waiting,
        ])
        .await
        .unwrap();
    let live = node("live/2", &clock, &store, &history);
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let noted = ran.clone();
    live.register_task("work", move |ctx| {
        noted.lock().unwrap().push(ctx.job_id.to_string());
        Ok(json!(null))
    });
    live.start(false).await.unwrap();
    for id in ["unstarted", "taken-over", "started", "waiting"] {
        // Next at 10:01: the dead node's release of 09:59 applied.
        live.add_job(
            JobSpec::task("work")
                .id(id)
                .trigger_args("interval", json!({"minutes": 1}))
                .next_run_time(Some(at(10, 1, 0).with_timezone(&chrono_tz::UTC))),
        )
        .await
        .unwrap();
    }
    wait_for("dead/1's reaping", async || {
        let nodes = history.nodes().unwrap().list_nodes().await.unwrap();
        nodes.iter().all(|n| n.node != "dead/1")
    })
    .await;
    live.process_jobs().await;
    live.process_jobs().await;
    live.flush_history(Duration::from_secs(5)).await;
    // The waiting run (`due_at` set) is the retry code's: it takes it over and runs it
    // at its due time; of the others only the released, never-started fire time runs.
    let mut ran_jobs = ran.lock().unwrap().clone();
    ran_jobs.sort();
    assert_eq!(ran_jobs, ["unstarted", "waiting"]);
    let records = history
        .query_runs(&RunQuery {
            job_id: Some("unstarted".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap();
    let ours = records.iter().find(|r| r.node == "live/2").unwrap();
    assert_eq!(
        (ours.outcome, ours.scheduled_at),
        (RunOutcome::Success, at(9, 59, 0))
    );
    live.shutdown(true).await.unwrap();
}
