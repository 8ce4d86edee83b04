//! The records of runs a sweep takes over from a scheduler that stopped renewing their
//! leases (leased runs, injected clock, one memory store and history): a started run's
//! record keeps its node and start, an ended one's its outcome; a waiting run's record
//! names the scheduler that holds it now.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::{
    ManualClock, NewRun, Overlap, RunHistory, RunKey, RunOrigin, RunOutcome, RunQuery, RunRecord,
    RunRules, RunState, RunStore,
};
use apscheduler_engine::{Engine, HistoryOptions, InlineExecutor, JobSpec};
use apscheduler_store_memory::{MemoryJobStore, MemoryRunHistory};
use serde_json::json;

mod common;
use common::at;

const LEASE: Duration = Duration::from_secs(5);

fn store(clock: &Arc<ManualClock>) -> Arc<MemoryJobStore> {
    Arc::new(MemoryJobStore::new().with_clock(clock.clone()))
}

/// Scheduler `b` with leased runs and `history`; its task `work` counts its runs.
fn scheduler_b(
    clock: &Arc<ManualClock>,
    store: &Arc<MemoryJobStore>,
    history: &Arc<MemoryRunHistory>,
    ran: &Arc<Mutex<usize>>,
) -> Engine {
    let b = Engine::builder()
        .clock(clock.clone())
        .timezone(chrono_tz::UTC)
        .jobstore("default", store.clone())
        .executor("default", Arc::new(InlineExecutor::new()))
        .scheduler_id("b")
        .lease(LEASE)
        .leased_runs(true)
        .run_history(history.clone(), HistoryOptions::default())
        .build();
    let count = ran.clone();
    b.register_task("work", move |_| {
        *count.lock().unwrap() += 1;
        Ok(json!(null))
    });
    b
}

/// What a test shares: the clock (10:00), the store and history, scheduler `b` started
/// with job `j` (hourly, next due at 11:00: the dead scheduler ran its fire times
/// before), and the count of `b`'s runs.
struct Cluster {
    clock: Arc<ManualClock>,
    store: Arc<MemoryJobStore>,
    history: Arc<MemoryRunHistory>,
    ran: Arc<Mutex<usize>>,
    b: Engine,
}

async fn cluster() -> Cluster {
    let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
    let store = store(&clock);
    let history = Arc::new(MemoryRunHistory::new());
    let ran = Arc::new(Mutex::new(0));
    let b = scheduler_b(&clock, &store, &history, &ran);
    let job = JobSpec::task("work")
        .id("j")
        .trigger_args("interval", json!({"seconds": 3600}))
        .next_run_time(Some(at(11, 0, 0).with_timezone(&chrono_tz::UTC)));
    b.add_job(job).await.unwrap();
    b.start(false).await.unwrap();
    Cluster {
        clock,
        store,
        history,
        ran,
        b,
    }
}

async fn records_of_j(history: &MemoryRunHistory) -> Vec<RunRecord> {
    let mut records = history
        .query_runs(&RunQuery {
            job_id: Some("j".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap();
    records.sort_by(|a, b| (a.scheduled_at, &a.run_id).cmp(&(b.scheduled_at, &b.run_id)));
    records
}

/// A scheduler that died with two runs of a `recover` job started: one whose end record
/// it wrote before it could end the row, one still running. Once their leases ran out,
/// the sweep keeps the first's record as it is (success) and does not run it again; it
/// records the second interrupted on the node that ran it, keeping its start time, and
/// runs it again with the recovery's note.
#[tokio::test]
async fn a_swept_runs_record_keeps_its_node_and_an_ended_ones_its_outcome() {
    let Cluster {
        clock,
        store,
        history,
        ran,
        b,
    } = cluster().await;
    let rules = RunRules {
        max_instances: 2,
        overlap: Overlap::Skip,
        grace_until: Some(at(10, 0, 30)),
        recover: true,
        batch: None,
    };
    let keys = [
        RunKey::first("j", at(9, 59, 59)),
        RunKey::first("j", at(10, 0, 0)),
    ];
    let runs = store
        .insert_runs(
            "dead/7",
            keys.iter()
                .map(|key| NewRun {
                    key: key.clone(),
                    state: RunState::Claimed,
                    rules,
                    origin: RunOrigin::Scheduled,
                })
                .collect(),
            LEASE,
        )
        .await
        .unwrap();
    let handles: Vec<_> = runs.iter().map(apscheduler_core::Run::held).collect();
    store
        .start_runs("dead/7", &handles, at(10, 0, 0), LEASE)
        .await
        .unwrap();
    let record = |key: &RunKey, outcome: RunOutcome| RunRecord {
        started_at: Some(at(10, 0, 0)),
        outcome,
        finished_at: (outcome != RunOutcome::Running).then(|| at(10, 0, 1)),
        ..RunRecord::pending(key.id(), "j", key.fire_time, "dead/7")
    };
    history
        .record_runs(&[
            record(&keys[0], RunOutcome::Success),
            record(&keys[1], RunOutcome::Running),
        ])
        .await
        .unwrap();

    for s in [6, 8, 10] {
        clock.set(at(10, 0, s));
        b.process_jobs().await;
        b.flush_history(Duration::from_secs(5)).await;
    }
    let records = records_of_j(&history).await;
    assert_eq!(records.len(), 4, "{records:#?}");
    assert_eq!(records[0].outcome, RunOutcome::Success, "{:#?}", records[0]);
    let not_again = &records[1];
    assert_eq!(
        (&*not_again.run_id, not_again.outcome),
        (&*keys[0].rerun().id(), RunOutcome::Missed)
    );
    assert!(
        not_again.message.as_deref().is_some_and(|m| m
            .starts_with("not run again: run j@2024-01-15T09:59:59")
            && m.contains("ended (success) on node dead/7")),
        "{not_again:#?}"
    );
    let recovery = &records[3];
    assert_eq!(
        (&*recovery.run_id, recovery.outcome),
        (&*keys[1].rerun().id(), RunOutcome::Success)
    );
    assert_eq!(
        recovery.message.as_deref(),
        Some(&*format!(
            "recovery of run {} interrupted on node dead/7",
            keys[1].id()
        ))
    );
    let swept = &records[2];
    assert_eq!(
        (swept.outcome, swept.node.as_str(), swept.started_at),
        (RunOutcome::Interrupted, "dead/7", Some(at(10, 0, 0)))
    );
    let message = swept.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("node dead/7 stopped renewing its lease") && message.contains("by b"),
        "{message}"
    );
    for key in &keys {
        let row = store.lookup_run(&key.id()).await.unwrap().unwrap();
        assert_eq!(row.state.name(), "interrupted", "{row:?}");
    }
    // The work ran once more: the recovery.
    assert_eq!(*ran.lock().unwrap(), 1);
    b.shutdown(true).await.unwrap();
}

/// A scheduler that died while a backfill's run of its waited (buffered: the job at
/// `max_instances`, another scheduler's run going): the sweeper that takes the run over
/// keeps it waiting, and its record names the sweeper from then on, not the dead node.
#[tokio::test]
async fn a_waiting_run_taken_over_is_recorded_on_the_node_that_holds_it() {
    let Cluster {
        clock,
        store,
        history,
        ran,
        b,
    } = cluster().await;
    let rules = RunRules {
        max_instances: 1,
        overlap: Overlap::BufferAll,
        grace_until: None,
        recover: false,
        batch: None,
    };
    let new = |fire, state| NewRun {
        key: RunKey::first("j", fire),
        state,
        rules,
        origin: RunOrigin::Backfill,
    };
    // Scheduler `x` runs 09:59 (renewed below); `dead/7`'s run of 09:58 waits.
    let going = store
        .insert_runs("x", vec![new(at(9, 59, 0), RunState::Claimed)], LEASE)
        .await
        .unwrap();
    let going = going[0].held();
    store
        .start_runs("x", std::slice::from_ref(&going), at(10, 0, 0), LEASE)
        .await
        .unwrap();
    let buffered = RunState::Waiting { due_at: None };
    let waiting = store
        .insert_runs("dead/7", vec![new(at(9, 58, 0), buffered)], LEASE)
        .await
        .unwrap();
    let id = waiting[0].id.clone();
    history
        .record_runs(&[RunRecord {
            started_at: Some(at(10, 0, 0)),
            backfill: true,
            ..RunRecord::pending(id.to_string(), "j", at(9, 58, 0), "dead/7")
        }])
        .await
        .unwrap();

    for s in [4, 8] {
        clock.set(at(10, 0, s));
        store
            .renew_runs("x", std::slice::from_ref(&going), LEASE)
            .await
            .unwrap();
        b.process_jobs().await;
        b.flush_history(Duration::from_secs(5)).await;
    }
    let row = store.lookup_run(&id).await.unwrap().unwrap();
    assert_eq!((row.state, &*row.holder), (buffered, "b"), "{row:?}");
    let records = records_of_j(&history).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(
        (
            &*records[0].run_id,
            records[0].outcome,
            records[0].node.as_str()
        ),
        (&*id, RunOutcome::Running, "b"),
        "{records:#?}"
    );
    assert_eq!(*ran.lock().unwrap(), 0, "it waits");
    b.shutdown(true).await.unwrap();
}
