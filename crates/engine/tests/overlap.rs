//! Overlap policies that act on the runs in flight, under an injected clock: `allow_all`
//! lifts `max_instances`; `cancel_other` asks the run in flight to stop and starts the
//! new fire time once it ended (a task that ignores the request runs to its end first);
//! "run now" obeys the policy too.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use apscheduler_core::event::{self, Event};
use apscheduler_core::{ManualClock, Overlap, RunHistory, RunOutcome, RunQuery, RunRecord};
use apscheduler_engine::{Engine, HistoryOptions, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use serde_json::json;

mod common;
use common::{at, wait_for};

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    history: Arc<MemoryRunHistory>,
    events: Arc<Mutex<Vec<Event>>>,
    /// Runs started so far.
    started: Arc<AtomicUsize>,
    /// Ends every task still looping (at the end of a test).
    stop_all: Arc<AtomicBool>,
}

impl Harness {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
        let history = Arc::new(MemoryRunHistory::new());
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .run_history(history.clone(), HistoryOptions::default())
            .build();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        engine.add_listener(
            move |e| sink.lock().unwrap().push(e.clone()),
            event::EVENT_ALL,
        );
        let started = Arc::new(AtomicUsize::new(0));
        let stop_all = Arc::new(AtomicBool::new(false));
        // Loops until asked to stop (or the test ends), then fails saying so.
        let (n, stop) = (started.clone(), stop_all.clone());
        engine.register_task("cooperative", move |ctx| {
            n.fetch_add(1, Ordering::SeqCst);
            let until = Instant::now() + Duration::from_secs(60);
            while !ctx.cancel.is_cancelled() && !stop.load(Ordering::SeqCst) {
                if Instant::now() > until {
                    return Ok(json!("never cancelled"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err("stopped early".into())
        });
        engine.start(false).await.unwrap();
        Harness {
            engine,
            clock,
            history,
            events,
            started,
            stop_all,
        }
    }

    async fn process(&self, h: u32, m: u32) {
        self.clock.set(at(h, m, 0));
        self.engine.process_jobs().await;
    }

    async fn wait_started(&self, n: usize) {
        let started = self.started.clone();
        wait_for(&format!("{n} run(s) started"), async || {
            started.load(Ordering::SeqCst) >= n
        })
        .await;
    }

    /// The job's ended records, oldest fire time first.
    async fn ended(&self, job: &str) -> Vec<RunRecord> {
        self.engine.flush_history(Duration::from_secs(5)).await;
        let mut runs = self
            .history
            .query_runs(&RunQuery {
                job_id: Some(job.into()),
                ..RunQuery::default()
            })
            .await
            .unwrap();
        runs.retain(|r| r.outcome != RunOutcome::Running);
        runs.reverse();
        runs
    }

    async fn wait_ended(&self, job: &str, n: usize) -> Vec<RunRecord> {
        for _ in 0..400 {
            let runs = self.ended(job).await;
            if runs.len() >= n {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {n} ended run(s) of {job}");
    }

    fn event_names(&self) -> Vec<&'static str> {
        self.engine.flush_events();
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(Event::name)
            .collect()
    }

    async fn finish(self) {
        self.stop_all.store(true, Ordering::SeqCst);
        self.engine.shutdown(true).await.unwrap();
    }
}

fn every_minute(task: &str, id: &str, overlap: Overlap) -> JobSpec {
    JobSpec::task(task)
        .id(id)
        .trigger_args("interval", json!({"minutes": 1}))
        .overlap(overlap)
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_all_starts_every_fire_time_beside_the_runs_in_flight() {
    let h = Harness::new().await;
    h.engine
        .add_job(every_minute("cooperative", "all", Overlap::AllowAll).max_instances(1))
        .await
        .unwrap();
    h.process(10, 1).await;
    h.process(10, 2).await;
    h.process(10, 3).await;
    // Three runs at once although max_instances is 1.
    h.wait_started(3).await;
    assert!(
        !h.event_names().contains(&"EVENT_JOB_MAX_INSTANCES"),
        "{:?}",
        h.event_names()
    );
    // "Run now" is not refused either.
    h.engine.run_job_now("all", None, None).await.unwrap();
    h.wait_started(4).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_other_stops_a_cooperative_run_then_starts_the_new_fire_time() {
    let h = Harness::new().await;
    h.engine
        .add_job(every_minute("cooperative", "coop", Overlap::CancelOther))
        .await
        .unwrap();
    h.process(10, 1).await;
    h.wait_started(1).await;
    h.process(10, 2).await;
    // The 10:01 run sees the request, fails, and the 10:02 fire time starts.
    h.wait_started(2).await;
    let runs = h.wait_ended("coop", 1).await;
    assert_eq!(runs[0].scheduled_at, at(10, 1, 0));
    assert_eq!(runs[0].outcome, RunOutcome::Failure);
    let message = runs[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("cancelled by the fire time of 2024-01-15T10:02:00")
            && message.contains("cancel_other"),
        "{message}"
    );
    assert!(!h.event_names().contains(&"EVENT_JOB_MAX_INSTANCES"));

    // "Run now" cancels the 10:02 run the same way instead of being refused.
    h.engine.run_job_now("coop", None, None).await.unwrap();
    h.wait_started(3).await;
    let runs = h.wait_ended("coop", 2).await;
    assert_eq!(runs[1].scheduled_at, at(10, 2, 0));
    assert_eq!(runs[1].outcome, RunOutcome::Failure);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_other_waits_for_a_run_that_ignores_the_request() {
    let h = Harness::new().await;
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let n = h.started.clone();
    // Never looks at its cancellation signal.
    h.engine.register_task("stubborn", move |_ctx| {
        n.fetch_add(1, Ordering::SeqCst);
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(60));
        Ok(json!("done"))
    });
    h.engine
        .add_job(every_minute("stubborn", "stub", Overlap::CancelOther))
        .await
        .unwrap();
    h.process(10, 1).await;
    h.wait_started(1).await;
    h.process(10, 2).await;
    // The 10:02 fire time waits while the 10:01 run goes on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.started.load(Ordering::SeqCst), 1);
    assert!(h.ended("stub").await.is_empty());
    release.send(()).unwrap();
    // The old run ends as it would have (a success), and only then the new one starts.
    h.wait_started(2).await;
    let runs = h.wait_ended("stub", 1).await;
    assert_eq!(runs[0].scheduled_at, at(10, 1, 0));
    assert_eq!(runs[0].outcome, RunOutcome::Success);
    release.send(()).unwrap();
    let runs = h.wait_ended("stub", 2).await;
    assert_eq!(runs[1].scheduled_at, at(10, 2, 0));
    assert_eq!(runs[1].outcome, RunOutcome::Success);
    h.finish().await;
}
