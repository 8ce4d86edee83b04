//! Failure streaks under an injected clock: `pause_after_failures` pauses a job after N
//! failed fire times in a row, with the reason on the job and in the last failure's
//! record; a success resets the streak, and so does a resume. Counted from the run
//! history when there is one, in memory otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::{self, Event};
use apscheduler_core::{ManualClock, RunHistory, RunOutcome, RunQuery};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use serde_json::json;

mod common;
use common::{at, wait_for};

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    history: Option<Arc<MemoryRunHistory>>,
    events: Arc<Mutex<Vec<Event>>>,
    /// Whether the task fails.
    failing: Arc<AtomicBool>,
}

impl Harness {
    async fn new(with_history: bool) -> Self {
        let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
        let history = with_history.then(|| Arc::new(MemoryRunHistory::new()));
        let mut builder = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .executor("default", Arc::new(InlineExecutor::new()));
        if let Some(h) = &history {
            builder = builder.run_history(h.clone(), HistoryOptions::default());
        }
        let engine = builder.build();
        let failing = Arc::new(AtomicBool::new(true));
        let f = failing.clone();
        engine.register_task("flaky", move |_| {
            if f.load(Ordering::SeqCst) {
                Err("boom".into())
            } else {
                Ok(json!("ok"))
            }
        });
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        engine.add_listener(
            move |e| sink.lock().unwrap().push(e.clone()),
            event::EVENT_JOB_MODIFIED,
        );
        engine.start(false).await.unwrap();
        Harness {
            engine,
            clock,
            history,
            events,
            failing,
        }
    }

    /// Runs the fire time at 10:`m` and waits until its outcome was followed up.
    async fn fire(&self, m: u32, fail: bool) {
        self.failing.store(fail, Ordering::SeqCst);
        self.clock.set(at(10, m, 0));
        self.engine.process_jobs().await;
        // The follow-up runs on a task: give it its turn (the history is in memory).
        if let Some(h) = &self.history {
            let h = h.clone();
            wait_for(&format!("the 10:{m:02} run's end"), async || {
                h.query_runs(&RunQuery::default())
                    .await
                    .unwrap()
                    .iter()
                    .any(|r| r.scheduled_at == at(10, m, 0) && r.outcome != RunOutcome::Running)
            })
            .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    async fn paused_reason(&self) -> Option<String> {
        let job = self.engine.get_job("flaky", None).await.unwrap().unwrap();
        assert_eq!(
            job.is_paused(),
            job.paused_reason.is_some(),
            "paused by the policy or not at all"
        );
        job.paused_reason.map(|r| r.to_string())
    }

    async fn wait_paused(&self) -> String {
        for _ in 0..200 {
            if let Some(reason) = self.paused_reason().await {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the job was not paused");
    }

    fn modified(&self) -> usize {
        self.engine.flush_events();
        self.events.lock().unwrap().len()
    }
}

fn spec(n: u32) -> JobSpec {
    JobSpec::task("flaky")
        .id("flaky")
        .trigger_args("interval", json!({"minutes": 1}))
        .pause_after_failures(n)
}

#[tokio::test(flavor = "multi_thread")]
async fn n_failures_in_a_row_pause_the_job_a_success_resets_and_a_resume_clears() {
    let h = Harness::new(true).await;
    h.engine.add_job(spec(3)).await.unwrap();
    h.fire(1, true).await;
    h.fire(2, true).await;
    h.fire(3, false).await;
    h.fire(4, true).await;
    h.fire(5, true).await;
    // Two failures since the success: not yet.
    assert_eq!(h.paused_reason().await, None);
    let before = h.modified();
    h.fire(6, true).await;
    let reason = h.wait_paused().await;
    assert!(
        reason.starts_with("paused after 3 consecutive failures; last: run ")
            && reason.contains("boom")
            && reason.contains("2024-01-15T10:06:00"),
        "{reason}"
    );
    assert_eq!(h.modified(), before + 1, "EVENT_JOB_MODIFIED for the pause");
    // The last failure's record says so.
    let history = h.history.as_ref().unwrap();
    let mut last = None;
    wait_for("the pause noted in the record", async || {
        last = history
            .query_runs(&RunQuery::default())
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.scheduled_at == at(10, 6, 0));
        last.as_ref()
            .and_then(|r| r.message.as_deref())
            .is_some_and(|m| m.contains("paused by its policy after 3 consecutive failures"))
    })
    .await;

    // Resuming clears the reason and the streak: one more failure does not pause.
    h.clock.set(at(10, 10, 30));
    h.engine.resume_job("flaky", None).await.unwrap();
    assert_eq!(h.paused_reason().await, None);
    h.fire(11, true).await;
    h.fire(12, true).await;
    assert_eq!(h.paused_reason().await, None);
    h.fire(13, true).await;
    assert!(h
        .wait_paused()
        .await
        .starts_with("paused after 3 consecutive failures"));
    h.engine.shutdown(true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_history_the_streak_is_counted_in_memory() {
    let h = Harness::new(false).await;
    h.engine.add_job(spec(2)).await.unwrap();
    h.fire(1, true).await;
    h.fire(2, false).await;
    h.fire(3, true).await;
    assert_eq!(h.paused_reason().await, None);
    h.fire(4, true).await;
    let reason = h.wait_paused().await;
    assert!(
        reason.starts_with("paused after 2 consecutive failures; last: run - "),
        "{reason}"
    );
    h.clock.set(at(10, 5, 30));
    h.engine.resume_job("flaky", None).await.unwrap();
    assert_eq!(h.paused_reason().await, None);
    h.fire(6, true).await;
    assert_eq!(h.paused_reason().await, None);
    h.engine.shutdown(true).await.unwrap();
}
