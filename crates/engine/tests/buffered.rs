//! Buffered fire times (`overlap = buffer_one | buffer_all`), on an injected clock: a
//! fire time that finds the job's `max_instances` runs in flight waits for one to end
//! instead of being skipped; `buffer_one` keeps one, `buffer_all` every one, run in
//! order; a dead node's buffered fire time is taken over and run once.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use apscheduler_core::{
    async_trait, Error, ManualClock, Overlap, RunHistory, RunOutcome, RunQuery, RunRecord,
};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_executor_thread::ThreadPoolExecutor;
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
use common::{at, entry, wait_for};

/// Fire times run by the task `slow`, in the order they started.
type Ran = Arc<Mutex<Vec<DateTime<Utc>>>>;

/// Held shut, the first run of `slow` waits until it is opened.
type Gate = Arc<(Mutex<bool>, Condvar)>;

struct Node {
    engine: Engine,
    ran: Ran,
    gate: Gate,
    clock: Arc<ManualClock>,
}

impl Node {
    async fn pass_at(&self, t: DateTime<Utc>) {
        self.clock.set(t);
        self.engine.process_jobs().await;
    }

    fn ran(&self) -> Vec<DateTime<Utc>> {
        self.ran.lock().unwrap().clone()
    }

    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

fn node<H: RunHistory + 'static>(name: &str, history: &Arc<H>, thread_pool: bool) -> Node {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let builder = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .scheduler_id(name)
        .run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(20),
                node_timeout: Duration::from_secs(10),
                ..HistoryOptions::default()
            },
        );
    let engine = if thread_pool {
        builder.executor("default", Arc::new(ThreadPoolExecutor::new(4)))
    } else {
        builder.executor("default", Arc::new(InlineExecutor::new()))
    }
    .build();
    let ran = Ran::default();
    let gate: Gate = Arc::default();
    let (seen, shut) = (ran.clone(), gate.clone());
    engine.register_task("slow", move |ctx| {
        let first = {
            let mut seen = seen.lock().unwrap();
            seen.push(ctx.scheduled_run_time.with_timezone(&Utc));
            seen.len() == 1
        };
        if first {
            let mut open = shut.0.lock().unwrap();
            while !*open {
                open = shut.1.wait(open).unwrap();
            }
        }
        Ok(json!(null))
    });
    Node {
        engine,
        ran,
        gate,
        clock,
    }
}

fn job(overlap: Overlap) -> JobSpec {
    JobSpec::task("slow")
        .id("j")
        .trigger_args("interval", json!({"seconds": 10}))
        .next_run_time(Some(at(10, 0, 0).with_timezone(&chrono_tz::UTC)))
        .overlap(overlap)
        .misfire_grace_time(None)
}

async fn records(history: &MemoryRunHistory) -> Vec<RunRecord> {
    let mut r = history.query_runs(&RunQuery::default()).await.unwrap();
    r.sort_by_key(|r| r.scheduled_at);
    r
}

/// Runs fire times 10:00:00 (held until opened), 10:00:10 and 10:00:20 while it is held,
/// then opens it; returns once `n` fire times ran.
async fn hold_first_run(node: &Node, n: usize) {
    node.pass_at(at(10, 0, 0)).await;
    let started = async || node.ran().len() == 1;
    wait_for("the first run", started).await;
    node.pass_at(at(10, 0, 10)).await;
    node.pass_at(at(10, 0, 20)).await;
    // Still held: nothing buffered starts.
    node.pass_at(at(10, 0, 25)).await;
    assert_eq!(node.ran(), [at(10, 0, 0)]);
    node.open();
    let done = async || {
        node.engine.process_jobs().await;
        node.ran().len() >= n && node.engine.pending_retries().is_empty()
    };
    wait_for("the buffered runs", done).await;
    node.engine.flush_history(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_one_runs_one_waiting_fire_time_after_the_run_and_skips_the_rest() {
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &history, true);
    n.engine.start(false).await.unwrap();
    n.engine.add_job(job(Overlap::BufferOne)).await.unwrap();
    hold_first_run(&n, 2).await;
    assert_eq!(n.ran(), [at(10, 0, 0), at(10, 0, 10)]);
    let r = records(&history).await;
    let rows: Vec<_> = r.iter().map(|r| (r.scheduled_at, r.outcome)).collect();
    assert_eq!(
        rows,
        [
            (at(10, 0, 0), RunOutcome::Success),
            (at(10, 0, 10), RunOutcome::Success),
            (at(10, 0, 20), RunOutcome::Missed),
        ]
    );
    assert_eq!(r[1].due_at, Some(at(10, 0, 10)));
    assert!(r[2].message.as_deref().unwrap().contains("buffer full"));
    // Nothing more waits: the next fire time runs as usual.
    n.pass_at(at(10, 0, 30)).await;
    let done = async || n.ran().len() == 3;
    wait_for("the next fire time", done).await;
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_all_runs_every_waiting_fire_time_in_order_one_at_a_time() {
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &history, true);
    n.engine.start(false).await.unwrap();
    n.engine.add_job(job(Overlap::BufferAll)).await.unwrap();
    hold_first_run(&n, 3).await;
    assert_eq!(n.ran(), [at(10, 0, 0), at(10, 0, 10), at(10, 0, 20)]);
    let r = records(&history).await;
    assert!(r.iter().all(|r| r.outcome == RunOutcome::Success), "{r:?}");
    // One at a time: each started after the one before ended.
    for pair in r.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "{pair:?}");
    }
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_buffered_fire_time_runs_once_on_a_live_node() {
    let history = Arc::new(MemoryRunHistory::new());
    history
        .nodes()
        .unwrap()
        .heartbeat(&entry("dead/1", at(9, 59, 30)))
        .await
        .unwrap();
    // The dead node's buffered fire time 09:59:50, waiting for its run of 09:59:40.
    let mut waiting = RunRecord::pending("r-buffered", "j", at(9, 59, 50), "dead/1");
    waiting.due_at = Some(at(9, 59, 50));
    history.record_runs(&[waiting]).await.unwrap();
    let n = node("b/2", &history, false);
    n.open();
    let spec =
        job(Overlap::BufferOne).next_run_time(Some(at(11, 0, 0).with_timezone(&chrono_tz::UTC)));
    n.engine.add_job(spec).await.unwrap();
    n.engine.start(false).await.unwrap();
    let done = async || {
        n.engine.process_jobs().await;
        !n.ran().is_empty()
    };
    wait_for("the takeover", done).await;
    for _ in 0..3 {
        n.engine.process_jobs().await;
    }
    assert_eq!(n.ran(), [at(9, 59, 50)]);
    n.engine.flush_history(Duration::from_secs(5)).await;
    let r = records(&history).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].run_id.as_str(), r[0].outcome, r[0].node.as_str()),
        ("r-buffered", RunOutcome::Success, "b/2")
    );
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_buffered_fire_time_in_the_cluster_goes_first() {
    let history = Arc::new(MemoryRunHistory::new());
    // A live node b/9 holds a buffered fire time of the job, 10:00:10.
    history
        .nodes()
        .unwrap()
        .heartbeat(&entry("b/9", at(10, 0, 0)))
        .await
        .unwrap();
    let mut theirs = RunRecord::pending("r-b", "j", at(10, 0, 10), "b/9");
    theirs.due_at = Some(at(10, 0, 10));
    history.record_runs(&[theirs.clone()]).await.unwrap();
    let n = node("a", &history, true);
    n.engine.start(false).await.unwrap();
    // Every 15 s: 10:00:15 waits here while 10:00:00 runs.
    let spec = job(Overlap::BufferOne).trigger_args("interval", json!({"seconds": 15}));
    n.engine.add_job(spec).await.unwrap();
    n.pass_at(at(10, 0, 0)).await;
    let started = async || n.ran().len() == 1;
    wait_for("the first run", started).await;
    // b/9 lives on: its heartbeat keeps up with the clock (else it is reaped, or its
    // records stop counting after one lease, and its fire time is taken over).
    history
        .nodes()
        .unwrap()
        .heartbeat(&entry("b/9", at(10, 0, 15)))
        .await
        .unwrap();
    n.pass_at(at(10, 0, 15)).await;
    assert_eq!(n.engine.pending_retries().len(), 1);
    n.open();
    let ended = async || {
        n.engine.flush_history(Duration::from_secs(5)).await;
        records(&history)
            .await
            .iter()
            .any(|r| r.scheduled_at == at(10, 0, 0) && r.outcome == RunOutcome::Success)
    };
    wait_for("the first run's end", ended).await;
    // Room here, but b/9's older buffered fire time goes first.
    for _ in 0..3 {
        n.engine.process_jobs().await;
    }
    assert_eq!(n.ran(), [at(10, 0, 0)]);
    // b/9 runs it: then this node's starts.
    theirs.started_at = Some(at(10, 0, 16));
    theirs.finished_at = Some(at(10, 0, 17));
    theirs.outcome = RunOutcome::Success;
    history.record_runs(&[theirs]).await.unwrap();
    let done = async || {
        n.engine.process_jobs().await;
        n.ran().len() == 2
    };
    wait_for("this node's buffered fire time", done).await;
    assert_eq!(n.ran(), [at(10, 0, 0), at(10, 0, 15)]);
    n.engine.shutdown(true).await.unwrap();
}

/// A memory run history whose writes of waiting records (`running`, not started,
/// `due_at` set) land a second late, as a write queued behind a slow connection does;
/// it notes each record in the order its write landed.
#[derive(Debug, Default)]
struct SlowWaitingWrites {
    inner: MemoryRunHistory,
    landed: Mutex<Vec<RunRecord>>,
}

fn is_waiting(r: &RunRecord) -> bool {
    r.outcome == RunOutcome::Running && r.started_at.is_none() && r.due_at.is_some()
}

#[async_trait]
impl RunHistory for SlowWaitingWrites {
    async fn record_runs(&self, records: &[RunRecord]) -> Result<(), Error> {
        if records.iter().any(is_waiting) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.inner.record_runs(records).await?;
        self.landed.lock().unwrap().extend(records.iter().cloned());
        Ok(())
    }
    async fn record_starts(&self, records: &[RunRecord]) -> Result<Vec<String>, Error> {
        self.inner.record_starts(records).await
    }
    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        self.inner.query_runs(query).await
    }
    async fn prune_job_runs(&self, job_id: &str, keep: usize) -> Result<u64, Error> {
        self.inner.prune_job_runs(job_id, keep).await
    }
    async fn prune_runs_before(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.prune_runs_before(before).await
    }
}

/// A buffered fire time's waiting record is written before its start: a waiting
/// record landing last would make the started run look waiting again, and a node
/// taking this one over after its death would run it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_fire_times_start_is_written_after_its_waiting_record() {
    let history = Arc::new(SlowWaitingWrites::default());
    let n = node("a", &history, true);
    n.engine.start(false).await.unwrap();
    n.engine.add_job(job(Overlap::BufferOne)).await.unwrap();
    hold_first_run(&n, 2).await;
    assert_eq!(n.ran(), [at(10, 0, 0), at(10, 0, 10)]);
    let landed: Vec<_> = history
        .landed
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.scheduled_at == at(10, 0, 10))
        .map(|r| (r.outcome, r.started_at.is_some(), is_waiting(r)))
        .collect();
    let started = landed
        .iter()
        .position(|&(_, started, _)| started)
        .expect("the start was written");
    assert!(
        landed[..started].iter().any(|&(.., waiting)| waiting),
        "the waiting record was not written before the start: {landed:?}"
    );
    assert!(
        !landed[started..].iter().any(|&(.., waiting)| waiting),
        "a waiting record landed after the start: {landed:?}"
    );
    n.engine.shutdown(true).await.unwrap();
}
