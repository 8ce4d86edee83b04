//! Run history recorded by the engine, under an injected clock: starts, ends with
//! their outcome, exit code and output, misses, skips and runs that could not start.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{ManualClock, RunHistory, RunOutcome, RunQuery, RunRecord, TaskFailure};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::MemoryRunHistory;
use chrono::{DateTime, Utc};
use serde_json::json;

mod common;
use common::{at, running};

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    history: Arc<MemoryRunHistory>,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new(options: HistoryOptions) -> Self {
        let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
        let history = Arc::new(MemoryRunHistory::new());
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .executor("default", Arc::new(InlineExecutor::new()))
            .scheduler_id("node-1")
            .run_history(history.clone(), options)
            .build();
        engine.register_task("ok", |ctx| {
            Ok(json!({"output": format!("run {}", ctx.run_id.as_deref().unwrap_or("none")), "exit_code": 0}))
        });
        engine.register_task("exit3", |_| {
            Err(TaskFailure::new("exit", "exit status 3")
                .with_detail(json!({"exit_code": 3, "output": "x".repeat(100)}))
                .into())
        });
        engine.register_task("slow", |_| {
            Err(TaskFailure::new("timeout", "killed after 1s").into())
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Harness {
            engine,
            clock,
            history,
            rt,
        }
    }

    fn process(&self, t: DateTime<Utc>) {
        self.clock.set(t);
        self.rt.block_on(self.engine.process_jobs());
    }

    fn runs(&self, job: &str) -> Vec<RunRecord> {
        self.rt.block_on(async {
            self.engine.flush_history(Duration::from_secs(5)).await;
            self.history
                .query_runs(&RunQuery {
                    job_id: Some(job.into()),
                    ..RunQuery::default()
                })
                .await
                .unwrap()
        })
    }
}

#[test]
fn each_run_is_recorded_with_its_outcome_and_the_task_sees_its_run_id() {
    let h = Harness::new(HistoryOptions {
        output_cap: 10,
        ..HistoryOptions::default()
    });
    h.rt.block_on(h.engine.start(false)).unwrap();
    h.engine
        .add_executor(Arc::new(InlineExecutor::new()), "gone")
        .unwrap();
    let every_minute = json!({"minutes": 1});
    for (id, task, executor) in [
        ("a", "ok", "default"),
        ("b", "exit3", "default"),
        ("c", "slow", "default"),
        ("d", "ok", "gone"),
    ] {
        h.rt.block_on(
            h.engine.add_job(
                JobSpec::task(task)
                    .id(id)
                    .executor(executor)
                    .trigger_args("interval", every_minute.clone()),
            ),
        )
        .unwrap();
    }
    // The job's executor goes away before its fire time: it cannot run.
    h.engine.remove_executor("gone", true).unwrap();
    h.process(at(10, 1, 0));

    let a = h.runs("a");
    assert_eq!(a.len(), 1, "{a:?}");
    let r = &a[0];
    assert_eq!(
        (
            r.outcome,
            r.exit_code,
            r.scheduled_at,
            r.started_at,
            r.finished_at,
            r.node.as_str()
        ),
        (
            RunOutcome::Success,
            Some(0),
            at(10, 1, 0),
            Some(at(10, 1, 0)),
            Some(at(10, 1, 0)),
            "node-1"
        )
    );
    // The task saw the id its record carries (the output is capped to its last 10 bytes).
    assert_eq!(
        r.output,
        format!("run {}", r.run_id)[r.run_id.len() + 4 - 10..]
    );

    let b = &h.runs("b")[0];
    assert_eq!(
        (b.outcome, b.exit_code, b.output.len()),
        (RunOutcome::Failure, Some(3), 10)
    );
    assert_eq!(b.message.as_deref(), Some("exit: exit status 3"));
    assert_eq!(h.runs("c")[0].outcome, RunOutcome::Timeout);
    let d = &h.runs("d")[0];
    assert_eq!((d.outcome, d.started_at), (RunOutcome::Error, None));
    assert!(d.message.as_deref().unwrap().contains("'gone'"), "{d:?}");
}

#[test]
fn missed_fire_times_are_recorded_as_missed() {
    let h = Harness::new(HistoryOptions::default());
    h.rt.block_on(h.engine.start(false)).unwrap();
    h.rt.block_on(
        h.engine.add_job(
            JobSpec::task("ok")
                .id("late")
                .trigger_args("interval", json!({"minutes": 1}))
                .misfire_grace_time(Some(Duration::from_secs(5)))
                .coalesce(false),
        ),
    )
    .unwrap();
    // Three fire times pass; the scheduler wakes 30 s after the third.
    h.process(at(10, 3, 30));
    let runs = h.runs("late");
    let got: Vec<_> = runs.iter().map(|r| (r.scheduled_at, r.outcome)).collect();
    assert_eq!(
        got,
        [
            (at(10, 3, 0), RunOutcome::Missed),
            (at(10, 2, 0), RunOutcome::Missed),
            (at(10, 1, 0), RunOutcome::Missed),
        ]
    );
    assert!(
        runs[0]
            .message
            .as_deref()
            .unwrap()
            .contains("missed by 30s ("),
        "{:?}",
        runs[0]
    );
}

#[test]
fn a_named_node_marks_its_runs_left_running_as_interrupted_at_start() {
    let options = HistoryOptions {
        node: Some("host-a".into()),
        ..HistoryOptions::default()
    };
    let h = Harness::new(options);
    let mut left = RunRecord {
        scheduled_at: at(9, 0, 0),
        started_at: Some(at(9, 0, 0)),
        ..running("r-dead", "j", "host-a")
    };
    let other = RunRecord {
        run_id: "r-other".into(),
        node: "host-b".into(),
        ..left.clone()
    };
    h.rt.block_on(h.history.record_runs(&[left.clone(), other]))
        .unwrap();
    h.rt.block_on(h.engine.start(false)).unwrap();
    let runs = h.runs("j");
    let states: Vec<_> = runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.outcome))
        .collect();
    assert_eq!(
        states,
        [
            ("r-other", RunOutcome::Running),
            ("r-dead", RunOutcome::Interrupted)
        ]
    );
    left.outcome = RunOutcome::Interrupted;
    assert_eq!(runs[1].finished_at, Some(at(10, 0, 0)));
}

#[test]
fn pruning_keeps_the_newest_runs_per_job() {
    let options = HistoryOptions {
        retention: apscheduler_core::Retention {
            max_runs_per_job: Some(2),
            max_age: None,
        },
        prune_interval: Duration::from_millis(20),
        ..HistoryOptions::default()
    };
    let h = Harness::new(options);
    h.rt.block_on(h.engine.start(false)).unwrap();
    h.rt.block_on(
        h.engine.add_job(
            JobSpec::task("ok")
                .id("p")
                .trigger_args("interval", json!({"minutes": 1})),
        ),
    )
    .unwrap();
    for m in 1..=5 {
        h.process(at(10, m, 0));
    }
    assert_eq!(h.runs("p").len(), 5);
    // The writer prunes at its interval (real time: the only sleep in this file).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while h.runs("p").len() > 2 && std::time::Instant::now() < deadline {
        h.rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    }
    let kept: Vec<_> = h.runs("p").iter().map(|r| r.scheduled_at).collect();
    assert_eq!(kept, [at(10, 5, 0), at(10, 4, 0)]);
}
