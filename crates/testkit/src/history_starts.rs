//! The run history checks of [`RunHistory::record_starts`], the start write of
//! claimed runs, run by [`history::run_all`](crate::history::run_all).
//!
//! | check | contract |
//! |---|---|
//! | [`check_record_starts`] | on a `running` record without a start: accepted, only `started_at` set; on an `interrupted`, `missed` or ended record: refused, the record unchanged; on an absent record: accepted, written whole; on a record already started: accepted, its start unchanged; written again, the same answers |
//! | [`check_record_starts_against_interrupt`] | racing `interrupt_running` on the same records, each start is accepted exactly when the interruption found the record started |

use std::collections::BTreeSet;

use apscheduler_core::{RunHistory, RunOutcome, RunQuery, RunRecord};
use chrono::Duration;

use crate::history::{base, record};

fn of_job(job: &str) -> RunQuery {
    RunQuery {
        job_id: Some(job.to_owned()),
        limit: 1000,
        ..RunQuery::default()
    }
}

/// A claimed run's `running` record without a start, on `node`.
fn unstarted(id: &str, job: &str, secs: i64, node: &str) -> RunRecord {
    let mut r = record(id, job, secs);
    r.outcome = RunOutcome::Running;
    r.started_at = None;
    r.finished_at = None;
    r.exit_code = None;
    r.output = String::new();
    r.message = Some(format!("note of {id}"));
    r.node = node.to_owned();
    r
}

/// `r` with its start at `started_at`: what a scheduler writes with `record_starts`.
fn starting(r: &RunRecord, started_at: chrono::DateTime<chrono::Utc>) -> RunRecord {
    let mut s = r.clone();
    s.started_at = Some(started_at);
    s
}

/// The stored records of `job`, by run id.
async fn stored(history: &dyn RunHistory, job: &str) -> Vec<RunRecord> {
    let mut found = history.query_runs(&of_job(job)).await.unwrap();
    found.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    found
}

/// Each case of the contract, in one batch, then the same batch again.
pub async fn check_record_starts(history: &dyn RunHistory) {
    let job = "rs-job";
    let node = "rs-node";
    let start = base() + Duration::microseconds(1_234_567);
    let earlier = base() + Duration::microseconds(456);
    // Running, never started: its start is written.
    let fresh = unstarted("rs-1", job, 1, node);
    // Taken for dead before its start was written: interrupted by another node.
    let reaped = unstarted("rs-2", job, 2, "rs-reaped");
    // Begun nowhere (the claim's write failed): written whole with its start.
    let absent = unstarted("rs-3", job, 3, node);
    // Started already (a write whose reply was lost): its first start stays.
    let started = starting(&unstarted("rs-4", job, 4, node), earlier);
    // Ended, and never started (`missed`), by whatever wrote them.
    let mut ended = record("rs-5", job, 5);
    ended.node = node.to_owned();
    let mut missed = unstarted("rs-6", job, 6, node);
    missed.outcome = RunOutcome::Missed;
    missed.finished_at = Some(base() + Duration::seconds(7));
    history
        .record_runs(&[
            fresh.clone(),
            reaped.clone(),
            started.clone(),
            ended.clone(),
            missed.clone(),
        ])
        .await
        .unwrap();
    let reaped_at = base() + Duration::seconds(30);
    let interrupted = history
        .interrupt_running("rs-reaped", reaped_at, "taken for dead")
        .await
        .unwrap();
    assert_eq!(interrupted.len(), 1, "{interrupted:#?}");
    let before = stored(history, job).await;

    let batch: Vec<RunRecord> = [&fresh, &reaped, &absent, &started, &ended, &missed]
        .into_iter()
        .map(|r| starting(r, start))
        .collect();
    for attempt in ["first", "second"] {
        let accepted: BTreeSet<String> = history
            .record_starts(&batch)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let want: BTreeSet<String> = ["rs-1", "rs-3", "rs-4"].map(str::to_owned).into();
        assert_eq!(accepted, want, "{attempt} write: the runs that may start");
        let after = stored(history, job).await;
        let by_id = |id: &str| after.iter().find(|r| r.run_id == id).cloned();
        let was = |id: &str| before.iter().find(|r| r.run_id == id).cloned();
        assert_eq!(
            by_id("rs-1"),
            Some(starting(&fresh, start)),
            "{attempt} write: only the start is set on a running record"
        );
        assert_eq!(
            by_id("rs-2"),
            was("rs-2"),
            "{attempt} write: an interrupted record is left as it is"
        );
        assert_eq!(by_id("rs-2").unwrap().outcome, RunOutcome::Interrupted);
        assert_eq!(
            by_id("rs-3"),
            Some(starting(&absent, start)),
            "{attempt} write: an absent record is written whole"
        );
        assert_eq!(
            by_id("rs-4"),
            Some(started.clone()),
            "{attempt} write: a started record keeps its first start"
        );
        assert_eq!(by_id("rs-5"), Some(ended.clone()), "{attempt} write");
        assert_eq!(by_id("rs-6"), Some(missed.clone()), "{attempt} write");
        assert_eq!(after.len(), 6, "{after:#?}");
    }
    assert!(history.record_starts(&[]).await.unwrap().is_empty());
}

/// `record_starts` and `interrupt_running` on the same 40 unstarted records at once
/// (a node writing its starts as another takes it for dead): for each record, either
/// the interruption came first (its record comes back without a start, and the start
/// is refused), or the start did (accepted, and the interruption finds it started).
/// Anything else would start a fire time on both nodes, or on neither.
pub async fn check_record_starts_against_interrupt(history: &dyn RunHistory) {
    let job = "rsi-job";
    let node = "rsi-node";
    let records: Vec<RunRecord> = (0..40)
        .map(|i| unstarted(&format!("rsi-{i:02}"), job, i, node))
        .collect();
    history.record_runs(&records).await.unwrap();
    let start = base() + Duration::seconds(50);
    let batch: Vec<RunRecord> = records.iter().map(|r| starting(r, start)).collect();
    let now = base() + Duration::seconds(60);
    let (accepted, interrupted) = tokio::join!(
        history.record_starts(&batch),
        history.interrupt_running(node, now, "taken for dead")
    );
    let accepted: BTreeSet<String> = accepted.unwrap().into_iter().collect();
    let interrupted = interrupted.unwrap();
    assert_eq!(interrupted.len(), records.len(), "{interrupted:#?}");
    for r in &interrupted {
        assert_eq!(
            accepted.contains(&r.run_id),
            r.started_at.is_some(),
            "run {}: start accepted: {}, interrupted record: {r:#?}",
            r.run_id,
            accepted.contains(&r.run_id)
        );
    }
    for r in stored(history, job).await {
        assert_eq!(r.outcome, RunOutcome::Interrupted, "{r:#?}");
        assert_eq!(
            r.started_at.is_some(),
            accepted.contains(&r.run_id),
            "{r:#?}"
        );
    }
}
