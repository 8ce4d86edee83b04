//! A dead node must not hold its jobs: two engines on one (shared) memory store and
//! one memory run history, under an injected clock. One of them dies in the middle of
//! a run (its tokio runtime is shut down: its heartbeat, its history writer and its
//! passes stop at once, as in a process killed), leaving the run's `running` record
//! behind. The other counts that record as an instance of the job only while the dead
//! node's last heartbeat is younger than one claim lease. And a fire time released to
//! a node that died before starting it (its record has no start time) is started by
//! the node that takes the dead one for dead, once; a run whose start cannot be
//! written does not start, nor one claimed by a node whose heartbeats went
//! unconfirmed for half its node time-out.

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

/// A memory run history whose next write of run starts fails (a history that went
/// down between a pass's claim and its starts), or, with `fail_begin`, whose next
/// write of claimed records fails (down at the claim, back for the starts).
#[derive(Debug)]
struct StartsFail {
    inner: MemoryRunHistory,
    fail: std::sync::atomic::AtomicBool,
    fail_begin: std::sync::atomic::AtomicBool,
}

#[apscheduler_core::async_trait]
impl apscheduler_core::RunHistory for StartsFail {
    async fn record_runs(
        &self,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<(), apscheduler_core::Error> {
        let starts = records
            .iter()
            .all(|r| r.outcome == RunOutcome::Running && r.started_at.is_some());
        let begins = records
            .iter()
            .all(|r| r.outcome == RunOutcome::Running && r.started_at.is_none());
        if (starts && self.fail.swap(false, Ordering::SeqCst))
            || (begins && self.fail_begin.swap(false, Ordering::SeqCst))
        {
            return Err(apscheduler_core::Error::new(
                apscheduler_core::ErrorKind::Unavailable,
                "connection reset",
            ));
        }
        self.inner.record_runs(records).await
    }
    async fn query_runs(
        &self,
        query: &RunQuery,
    ) -> Result<Vec<apscheduler_core::RunRecord>, apscheduler_core::Error> {
        self.inner.query_runs(query).await
    }
    async fn prune_job_runs(
        &self,
        job_id: &str,
        keep: usize,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_runs_before(before).await
    }
}

/// A run whose start cannot be written does not start (were this node to die, its
/// record without a start would have it started elsewhere): it is recorded `missed`,
/// saying why, and the job's next fire time runs as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_start_cannot_be_written_is_not_started_and_recorded_missed() {
    let clock = Arc::new(ManualClock::new(at(9, 59, 59)));
    let history = Arc::new(StartsFail {
        inner: MemoryRunHistory::new(),
        fail: std::sync::atomic::AtomicBool::new(true),
        fail_begin: std::sync::atomic::AtomicBool::new(false),
    });
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", Faulty::new(false))
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/1")
        .run_history(
            history.clone(),
            HistoryOptions {
                record_starts: true,
                ..HistoryOptions::default()
            },
        )
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    engine.register_task("work", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(JobSpec::task("work").id("job").trigger_args(
            "interval",
            json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
        ))
        .await
        .unwrap();
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    engine.flush_history(Duration::from_secs(5)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "started without its start written"
    );
    let records = history.query_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Missed, "{records:#?}");
    let message = records[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("its start could not be written to the run history (connection reset)"),
        "{message}"
    );
    // The history answers again: the next fire time runs.
    clock.set(at(10, 1, 0));
    engine.process_jobs().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.shutdown(true).await.unwrap();
}

/// A memory run history whose node registry stops answering heartbeats while
/// `stalled` is set (the registry, or the path to it, stalled; the node is alive).
#[derive(Debug)]
struct SilentRegistry {
    inner: MemoryRunHistory,
    stalled: std::sync::atomic::AtomicBool,
}

#[apscheduler_core::async_trait]
impl apscheduler_core::NodeRegistry for SilentRegistry {
    async fn heartbeat(
        &self,
        node: &apscheduler_core::NodeInfo,
    ) -> Result<(), apscheduler_core::Error> {
        while self.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.nodes().unwrap().heartbeat(node).await
    }
    async fn list_nodes(&self) -> Result<Vec<apscheduler_core::NodeInfo>, apscheduler_core::Error> {
        self.inner.nodes().unwrap().list_nodes().await
    }
    async fn remove_node(&self, node: &str) -> Result<bool, apscheduler_core::Error> {
        self.inner.nodes().unwrap().remove_node(node).await
    }
}

#[apscheduler_core::async_trait]
impl apscheduler_core::RunHistory for SilentRegistry {
    async fn record_runs(
        &self,
        records: &[apscheduler_core::RunRecord],
    ) -> Result<(), apscheduler_core::Error> {
        self.inner.record_runs(records).await
    }
    fn nodes(&self) -> Option<&dyn apscheduler_core::NodeRegistry> {
        Some(self)
    }
    async fn query_runs(
        &self,
        query: &RunQuery,
    ) -> Result<Vec<apscheduler_core::RunRecord>, apscheduler_core::Error> {
        self.inner.query_runs(query).await
    }
    async fn prune_job_runs(
        &self,
        job_id: &str,
        keep: usize,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, apscheduler_core::Error> {
        self.inner.prune_runs_before(before).await
    }
}

/// A node whose last confirmed heartbeat was sent half its node time-out ago or more
/// starts none of the fire times it claims (another node may have taken it for dead
/// and started them): they are recorded `missed`, saying why. Once its heartbeats are
/// confirmed again, it runs the next fire time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_silent_for_half_its_node_timeout_starts_nothing_it_claims() {
    let clock = Arc::new(ManualClock::new(at(9, 59, 59)));
    let history = Arc::new(SilentRegistry {
        inner: MemoryRunHistory::new(),
        stalled: std::sync::atomic::AtomicBool::new(false),
    });
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", Faulty::new(true))
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/1")
        .run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(50),
                node_timeout: Duration::from_millis(600),
                ..HistoryOptions::default()
            },
        )
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    engine.register_task("work", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(JobSpec::task("work").id("job").trigger_args(
            "interval",
            json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
        ))
        .await
        .unwrap();
    wait_for("me/1's registry entry", async || {
        let nodes = history.inner.nodes().unwrap().list_nodes().await.unwrap();
        nodes.iter().any(|n| n.node == "me/1")
    })
    .await;
    // Heartbeats stop being confirmed for over half the node time-out (300 ms).
    history.stalled.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "started while silent");
    history.stalled.store(false, Ordering::SeqCst);
    engine.flush_history(Duration::from_secs(5)).await;
    let records = records_at(&history.inner, at(10, 0, 0)).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Missed, "{records:#?}");
    let message = records[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("this node's last confirmed heartbeat was sent")
            && message.contains("another node may have taken it for dead"),
        "{message}"
    );
    // Heartbeats confirmed again (every 50 ms): the next fire time runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    clock.set(at(10, 1, 0));
    engine.process_jobs().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.shutdown(true).await.unwrap();
}

/// A claimed fire time whose `running` record could not be written at the claim (the
/// history down for that write) starts once its record is written whole, start
/// included, just before the run: the record is not left to the writer, which could
/// write it without its start after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_claim_could_not_write_is_written_with_its_start_and_the_run_starts() {
    let clock = Arc::new(ManualClock::new(at(9, 59, 59)));
    let history = Arc::new(StartsFail {
        inner: MemoryRunHistory::new(),
        fail: std::sync::atomic::AtomicBool::new(false),
        fail_begin: std::sync::atomic::AtomicBool::new(true),
    });
    let engine = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", Faulty::new(true))
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("me/1")
        .run_history(history.clone(), HistoryOptions::default())
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    engine.register_task("work", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(json!(null))
    });
    engine.start(false).await.unwrap();
    engine
        .add_job(JobSpec::task("work").id("job").trigger_args(
            "interval",
            json!({"minutes": 1, "start_date": "2024-01-15 10:00:00"}),
        ))
        .await
        .unwrap();
    clock.set(at(10, 0, 0));
    engine.process_jobs().await;
    assert!(
        !history.fail_begin.load(Ordering::SeqCst),
        "the claim's write was not tried"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.flush_history(Duration::from_secs(5)).await;
    let records = records_at(&history.inner, at(10, 0, 0)).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Success, "{records:#?}");
    assert!(records[0].started_at.is_some(), "{records:#?}");
    engine.shutdown(true).await.unwrap();
}
