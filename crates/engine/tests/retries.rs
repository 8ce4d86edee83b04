//! Retries (a job's `RetryPolicy`), on an injected clock: each row of the semantics
//! table in docs/scheduler.md ("Run policies") has its test here, and a dead node's
//! waiting retry is taken over and run once by one live node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::{self, Event};
use apscheduler_core::{ManualClock, RetryPolicy, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
use common::{at, entry, wait_for};

/// Each run of the task `flaky`: (node, job id, fire time, attempt, clock at the run).
type Ran = Arc<Mutex<Vec<(String, String, DateTime<Utc>, u32, DateTime<Utc>)>>>;

/// (event name, job id, attempt) of every job event.
type Events = Arc<Mutex<Vec<(&'static str, String, Option<u32>)>>>;

struct Node {
    engine: Engine,
    ran: Ran,
    events: Events,
}

impl Node {
    fn runs(&self) -> Vec<(String, DateTime<Utc>, u32, DateTime<Utc>)> {
        self.ran
            .lock()
            .unwrap()
            .iter()
            .map(|(_, j, t, a, now)| (j.clone(), *t, *a, *now))
            .collect()
    }

    fn events(&self, name: &str) -> Vec<(String, Option<u32>)> {
        self.engine.flush_events();
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.0 == name)
            .map(|e| (e.1.clone(), e.2))
            .collect()
    }

    async fn pass(&self) {
        self.engine.process_jobs().await;
    }
}

/// A node `name` on the clock, with `history` when given; its task `flaky` fails the
/// first `failures` runs of each job and succeeds after.
fn node(
    name: &str,
    clock: &Arc<ManualClock>,
    history: Option<&Arc<MemoryRunHistory>>,
    failures: usize,
) -> Node {
    let mut builder = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id(name);
    if let Some(history) = history {
        builder = builder.run_history(
            history.clone(),
            HistoryOptions {
                heartbeat: Duration::from_millis(20),
                node_timeout: Duration::from_secs(10),
                ..HistoryOptions::default()
            },
        );
    }
    let engine = builder.build();
    let ran = Ran::default();
    let (seen, me, clock2) = (ran.clone(), name.to_owned(), clock.clone());
    engine.register_task("flaky", move |ctx| {
        let mut seen = seen.lock().unwrap();
        let before = seen.iter().filter(|r| *r.1 == *ctx.job_id).count();
        seen.push((
            me.clone(),
            ctx.job_id.to_string(),
            ctx.scheduled_run_time.with_timezone(&Utc),
            ctx.attempt,
            apscheduler_core::Clock::now(&*clock2),
        ));
        if before < failures {
            Err(format!("failure {}", before + 1).into())
        } else {
            Ok(json!(null))
        }
    });
    let events = Events::default();
    let log = events.clone();
    engine.add_listener(
        move |e: &Event| {
            if let Some(job) = e.job_id() {
                log.lock()
                    .unwrap()
                    .push((e.name(), job.to_owned(), e.attempt()));
            }
        },
        event::EVENT_ALL,
    );
    Node {
        engine,
        ran,
        events,
    }
}

/// A job of `flaky` every `every` seconds from 10:00:00, retried up to `attempts` in
/// all, `delay` seconds apart.
fn job(id: &str, every: u64, attempts: u32, delay: u64) -> JobSpec {
    JobSpec::task("flaky")
        .id(id)
        .trigger_args("interval", json!({"seconds": every}))
        .next_run_time(Some(at(10, 0, 0).with_timezone(&chrono_tz::UTC)))
        .retry(RetryPolicy::new(attempts, Duration::from_secs(delay)))
        .misfire_grace_time(None)
}

async fn records(history: &MemoryRunHistory, job: &str) -> Vec<RunRecord> {
    let mut r: Vec<RunRecord> = history
        .query_runs(&RunQuery {
            job_id: Some(job.to_owned()),
            ..RunQuery::default()
        })
        .await
        .unwrap();
    r.sort_by_key(|r| (r.scheduled_at, r.attempt));
    r
}

fn set(clock: &ManualClock, t: DateTime<Utc>) {
    clock.set(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_after_the_delay_until_one_succeeds() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &clock, Some(&history), 2);
    n.engine.start(false).await.unwrap();
    n.engine.add_job(job("j", 3600, 5, 10)).await.unwrap();
    n.pass().await;
    n.engine.flush_history(Duration::from_secs(5)).await;
    // Attempt 1 failed; attempt 2 waits, recorded before it is due.
    let r = records(&history, "j").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((r[0].attempt, r[0].outcome), (1, RunOutcome::Failure));
    assert!(
        r[0].message
            .as_deref()
            .unwrap()
            .contains("retry scheduled: attempt 2 at 2024-01-15T10:00:10"),
        "{:?}",
        r[0].message
    );
    assert_eq!(
        (r[1].attempt, r[1].outcome, r[1].started_at, r[1].due_at),
        (2, RunOutcome::Running, None, Some(at(10, 0, 10)))
    );
    assert_eq!(r[1].scheduled_at, at(10, 0, 0));
    assert_eq!(n.engine.pending_retries().len(), 1);

    // Not before its due time.
    set(&clock, at(10, 0, 9));
    n.pass().await;
    assert_eq!(n.runs().len(), 1);
    set(&clock, at(10, 0, 10));
    n.pass().await;
    set(&clock, at(10, 0, 20));
    n.pass().await;
    // Three attempts: none more after the success.
    set(&clock, at(10, 0, 40));
    n.pass().await;
    assert_eq!(
        n.runs(),
        [
            ("j".to_owned(), at(10, 0, 0), 1, at(10, 0, 0)),
            ("j".to_owned(), at(10, 0, 0), 2, at(10, 0, 10)),
            ("j".to_owned(), at(10, 0, 0), 3, at(10, 0, 20)),
        ]
    );
    n.engine.flush_history(Duration::from_secs(5)).await;
    let r = records(&history, "j").await;
    let rows: Vec<_> = r.iter().map(|r| (r.attempt, r.outcome)).collect();
    assert_eq!(
        rows,
        [
            (1, RunOutcome::Failure),
            (2, RunOutcome::Failure),
            (3, RunOutcome::Success)
        ]
    );
    assert_eq!(r[2].due_at, Some(at(10, 0, 20)));
    assert_eq!(
        n.events("EVENT_JOB_ERROR"),
        [("j".to_owned(), Some(1)), ("j".to_owned(), Some(2))]
    );
    assert_eq!(
        n.events("EVENT_JOB_RETRY_SCHEDULED"),
        [("j".to_owned(), Some(2)), ("j".to_owned(), Some(3))]
    );
    assert_eq!(n.events("EVENT_JOB_EXECUTED"), [("j".to_owned(), Some(3))]);
    assert!(n.engine.pending_retries().is_empty());
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_attempts_failure_is_final() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &clock, Some(&history), 99);
    n.engine.start(false).await.unwrap();
    n.engine.add_job(job("j", 3600, 2, 5)).await.unwrap();
    for s in [0, 5, 10, 20] {
        set(&clock, at(10, 0, s));
        n.pass().await;
    }
    assert_eq!(n.runs().len(), 2);
    n.engine.flush_history(Duration::from_secs(5)).await;
    let r = records(&history, "j").await;
    let rows: Vec<_> = r.iter().map(|r| (r.attempt, r.outcome)).collect();
    assert_eq!(rows, [(1, RunOutcome::Failure), (2, RunOutcome::Failure)]);
    assert!(!r[1].message.as_deref().unwrap().contains("retry scheduled"));
    assert_eq!(n.events("EVENT_JOB_RETRY_SCHEDULED").len(), 1);
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_retry_counts_as_an_instance_and_runs_past_the_next_fire_time() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &clock, Some(&history), 1);
    n.engine.start(false).await.unwrap();
    // Every 10 s, max_instances 1, retry after 25 s.
    n.engine.add_job(job("j", 10, 3, 25)).await.unwrap();
    n.pass().await;
    for s in [10, 20] {
        set(&clock, at(10, 0, s));
        n.pass().await;
    }
    // 10:00:10 and 10:00:20 found the waiting retry as the job's one instance.
    assert_eq!(n.runs().len(), 1);
    assert_eq!(n.events("EVENT_JOB_MAX_INSTANCES").len(), 2);
    set(&clock, at(10, 0, 25));
    n.pass().await;
    set(&clock, at(10, 0, 30));
    n.pass().await;
    let runs: Vec<_> = n.runs().into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        runs,
        [(at(10, 0, 0), 1), (at(10, 0, 0), 2), (at(10, 0, 30), 1)]
    );
    n.engine.flush_history(Duration::from_secs(5)).await;
    let skipped: Vec<_> = records(&history, "j")
        .await
        .into_iter()
        .filter(|r| r.outcome == RunOutcome::Missed)
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0]
        .message
        .as_deref()
        .unwrap()
        .contains("waiting runs"));
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrys_misfire_grace_time_runs_from_its_own_due_time() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &clock, Some(&history), 99);
    n.engine.start(false).await.unwrap();
    let spec = job("j", 3600, 5, 60).misfire_grace_time(Some(Duration::from_secs(5)));
    n.engine.add_job(spec).await.unwrap();
    n.pass().await;
    // 64 s after the fire time, 4 s after the retry's due time: within the grace.
    set(&clock, at(10, 1, 4));
    n.pass().await;
    assert_eq!(n.runs().len(), 2);
    // Attempt 3 is due at 10:02:04; 6 s late is past the grace.
    set(&clock, at(10, 2, 10));
    n.pass().await;
    assert_eq!(n.runs().len(), 2);
    n.engine.flush_history(Duration::from_secs(5)).await;
    let r = records(&history, "j").await;
    let last = r.last().unwrap();
    assert_eq!((last.attempt, last.outcome), (3, RunOutcome::Missed));
    assert!(last.message.as_deref().unwrap().contains("misfire grace"));
    assert_eq!(n.events("EVENT_JOB_MISSED"), [("j".to_owned(), Some(3))]);
    assert!(n.engine.pending_retries().is_empty());
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_not_coalesced_with_fire_times() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let n = node("a", &clock, None, 1);
    n.engine.start(false).await.unwrap();
    // Coalescing, two instances: the retry of 10:00:00 and the fire times 10:00:10 and
    // 10:00:20 (coalesced into one run) all come due in the pass at 10:00:20.
    let spec = job("j", 10, 3, 20).coalesce(true).max_instances(2);
    n.engine.add_job(spec).await.unwrap();
    n.pass().await;
    set(&clock, at(10, 0, 20));
    n.pass().await;
    let mut runs: Vec<_> = n.runs().into_iter().map(|r| (r.1, r.2)).collect();
    runs.sort();
    assert_eq!(
        runs,
        [(at(10, 0, 0), 1), (at(10, 0, 0), 2), (at(10, 0, 20), 1)]
    );
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_jobs_retry_is_dropped_and_a_paused_jobs_runs() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &clock, Some(&history), 1);
    n.engine.start(false).await.unwrap();
    n.engine.add_job(job("gone", 3600, 3, 10)).await.unwrap();
    n.engine.add_job(job("paused", 3600, 3, 10)).await.unwrap();
    n.pass().await;
    assert_eq!(n.engine.pending_retries().len(), 2);
    n.engine.remove_job("gone", None).await.unwrap();
    n.engine.pause_job("paused", None).await.unwrap();
    set(&clock, at(10, 0, 10));
    n.pass().await;
    let runs: Vec<_> = n.runs().into_iter().map(|r| (r.0, r.2)).collect();
    assert_eq!(
        runs,
        [
            ("gone".to_owned(), 1),
            ("paused".to_owned(), 1),
            ("paused".to_owned(), 2)
        ]
    );
    n.engine.flush_history(Duration::from_secs(5)).await;
    let gone = records(&history, "gone").await;
    assert_eq!(
        (gone[1].attempt, gone[1].outcome),
        (2, RunOutcome::Missed),
        "{gone:?}"
    );
    assert!(gone[1]
        .message
        .as_deref()
        .unwrap()
        .contains("job was removed"));
    assert_eq!(n.events("EVENT_JOB_MISSED"), [("gone".to_owned(), Some(2))]);
    n.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_history_retries_are_held_in_memory_and_a_shutdown_drops_them() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let n = node("a", &clock, None, 99);
    n.engine.start(false).await.unwrap();
    n.engine.add_job(job("j", 3600, 3, 10)).await.unwrap();
    n.pass().await;
    set(&clock, at(10, 0, 10));
    n.pass().await;
    assert_eq!(n.runs().iter().map(|r| r.2).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(n.engine.pending_retries().len(), 1);
    n.engine.shutdown(true).await.unwrap();
    assert_eq!(n.events("EVENT_JOB_MISSED"), [("j".to_owned(), Some(3))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_waiting_retry_runs_once_on_one_of_two_live_nodes() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    // What a node killed after attempt 1 failed leaves: its registry entry (stale) and
    // the waiting record of attempt 2, due at 10:00:30.
    history
        .nodes()
        .unwrap()
        .heartbeat(&entry("dead/1", at(9, 59, 30)))
        .await
        .unwrap();
    let mut failed = RunRecord::pending("r-1", "j", at(9, 59, 0), "dead/1");
    failed.started_at = Some(at(9, 59, 0));
    failed.finished_at = Some(at(9, 59, 1));
    failed.outcome = RunOutcome::Failure;
    let mut waiting = RunRecord::pending("r-2", "j", at(9, 59, 0), "dead/1");
    waiting.attempt = 2;
    waiting.due_at = Some(at(10, 0, 30));
    history.record_runs(&[failed, waiting]).await.unwrap();
    let nodes = [
        node("a/2", &clock, Some(&history), 0),
        node("b/3", &clock, Some(&history), 0),
    ];
    for n in &nodes {
        // Hourly from 11:00: only the retry runs in this test.
        let spec =
            job("j", 3600, 3, 30).next_run_time(Some(at(11, 0, 0).with_timezone(&chrono_tz::UTC)));
        n.engine.add_job(spec).await.unwrap();
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let (sa, sb) = tokio::join!(a.engine.start(false), b.engine.start(false));
    sa.unwrap();
    sb.unwrap();
    let reaped = async || {
        let list = history.nodes().unwrap().list_nodes().await.unwrap();
        list.iter().all(|n| n.node != "dead/1")
    };
    wait_for("the dead node's reaping", reaped).await;
    let taken = async || {
        a.pass().await;
        b.pass().await;
        a.engine.pending_retries().len() + b.engine.pending_retries().len() == 1
    };
    wait_for("the takeover", taken).await;
    // Not before its due time; then once.
    a.pass().await;
    b.pass().await;
    assert!(a.runs().is_empty() && b.runs().is_empty());
    // To the due time in steps shorter than the node time-out (10 s), each once both
    // nodes' heartbeats carry it: one jump of 30 s would let a node whose heartbeat
    // comes late be taken for dead by the other while it lives.
    let mut t = at(10, 0, 0);
    while t < at(10, 0, 30) {
        t += chrono::Duration::seconds(2);
        set(&clock, t);
        let beaten = async || {
            let list = history.nodes().unwrap().list_nodes().await.unwrap();
            list.iter().filter(|n| n.heartbeat_at >= t).count() == 2
        };
        wait_for("both heartbeats at the new time", beaten).await;
    }
    for _ in 0..3 {
        a.pass().await;
        b.pass().await;
    }
    let runs: Vec<_> = a.runs().into_iter().chain(b.runs()).collect();
    assert_eq!(runs, [("j".to_owned(), at(9, 59, 0), 2, at(10, 0, 30))]);
    for n in &nodes {
        n.engine.flush_history(Duration::from_secs(5)).await;
    }
    let r = records(&history, "j").await;
    let rows: Vec<_> = r
        .iter()
        .map(|r| (r.run_id.as_str(), r.attempt, r.outcome))
        .collect();
    assert_eq!(
        rows,
        [
            ("r-1", 1, RunOutcome::Failure),
            ("r-2", 2, RunOutcome::Success)
        ]
    );
    assert!(r[1]
        .message
        .as_deref()
        .unwrap()
        .contains("taken over from node dead/1"));
    for n in &nodes {
        n.engine.shutdown(true).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_fire_times_last_attempt_counts_in_its_failure_streak() {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let history = Arc::new(MemoryRunHistory::new());
    let n = node("a", &clock, Some(&history), 99);
    n.engine.start(false).await.unwrap();
    // Every minute, 2 attempts 10 s apart; paused after 2 failed fire times in a row.
    let spec = job("j", 60, 2, 10).pause_after_failures(2);
    n.engine.add_job(spec).await.unwrap();
    let paused = async |n: &Node| {
        n.engine.flush_history(Duration::from_secs(5)).await;
        n.engine
            .get_job("j", None)
            .await
            .unwrap()
            .unwrap()
            .is_paused()
    };
    // Fire time 10:00: attempts 1 and 2 fail; one failed fire time.
    for s in [(10, 0, 0), (10, 0, 10)] {
        set(&clock, at(s.0, s.1, s.2));
        n.pass().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !paused(&n).await,
        "paused after one failed fire time's two attempts"
    );
    // Fire time 10:01, attempt 1 fails: not final yet.
    set(&clock, at(10, 1, 0));
    n.pass().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!paused(&n).await);
    // Its attempt 2 fails: the second failed fire time in a row.
    set(&clock, at(10, 1, 10));
    n.pass().await;
    let done = async || paused(&n).await;
    wait_for("the pause after two failed fire times", done).await;
    assert_eq!(n.runs().len(), 4);
    n.engine.shutdown(true).await.unwrap();
}
